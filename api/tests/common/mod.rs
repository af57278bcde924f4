//! Spawns a real gateway on 127.0.0.1:0 against the test's own database, and talks HTTP to it.
//! Database faults are made real with a TCP proxy on loopback between the gateway and Postgres.
#![allow(clippy::unwrap_used, dead_code)] // Tests fail loudly on purpose; not every test uses every helper.

use std::{
    net::SocketAddr,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc,
    },
    time::Duration,
};

use sentinel_api::{Config, Gateway};
use serde_json::{json, Value};
use sqlx::postgres::PgConnectOptions;
use tokio::{net::TcpStream, sync::watch};
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789";
pub const JWT_SECRET: &str = "test-jwt-secret";
/// A Telegram source's `secret_token` in the tests that send Telegram webhooks.
pub const TG_TOKEN: &str = "tg-token-0123456789";

/// The headers of a Telegram webhook to a source made with [`TG_TOKEN`].
pub fn telegram_headers() -> [(&'static str, String); 2] {
    [
        ("x-telegram-bot-api-secret-token", TG_TOKEN.to_owned()),
        ("content-type", "application/json".to_owned()),
    ]
}

pub struct TestApp {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    pub state: Arc<sentinel_api::AppState>,
    stop: watch::Sender<bool>,
    server: tokio::task::JoinHandle<()>,
}

pub fn config() -> Config {
    Config {
        public_url: "http://sentinel.test".into(),
        admin_token: Some(ADMIN_TOKEN.into()),
        jwt_secret: Some(JWT_SECRET.into()),
        max_body_bytes: 64 * 1024,
        ..Config::new(String::new(), SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

impl TestApp {
    pub async fn spawn(options: PgConnectOptions) -> TestApp {
        Self::spawn_with(config(), options).await
    }

    pub async fn spawn_with(config: Config, options: PgConnectOptions) -> TestApp {
        let (stop, shutdown) = watch::channel(false);
        let options = options.options(sentinel_queue::db::SESSION_OPTIONS);
        let gateway = Gateway::start_with(config, options, shutdown.clone())
            .await
            .unwrap();
        let state = gateway.state.clone();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            sentinel_api::serve_on(gateway, listener, shutdown)
                .await
                .unwrap();
        });
        TestApp {
            addr,
            // The gateway closes an idle keep-alive connection when its header-read timeout
            // passes (1 s in some tests); a client that reused one closed under it would see
            // `IncompleteMessage`, so pooled connections are dropped well before that.
            client: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_millis(500))
                .build()
                .expect("a reqwest client"),
            state,
            stop,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        drop(self.state);
        let _ = tokio::time::timeout(Duration::from_secs(15), self.server).await;
    }

    /// Creates a tenant through the admin API; returns its id and API key.
    pub async fn tenant(&self, name: &str) -> (Uuid, String) {
        self.tenant_with(json!({"name": name})).await
    }

    pub async fn tenant_with(&self, body: Value) -> (Uuid, String) {
        let response = self
            .client
            .post(self.url("/v1/admin/tenants"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201);
        let body: Value = response.json().await.unwrap();
        (
            body["id"].as_str().unwrap().parse().unwrap(),
            body["api_key"].as_str().unwrap().to_owned(),
        )
    }

    /// Creates a source; returns its id.
    pub async fn source(&self, key: &str, platform: &str, secrets: Value) -> Uuid {
        let response = self
            .client
            .post(self.url("/v1/sources"))
            .bearer_auth(key)
            .json(&json!({"platform": platform, "secrets": secrets}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 201, "{}", response.text().await.unwrap());
        let body: Value = response.json().await.unwrap();
        assert_eq!(
            body["ingest_url"].as_str().unwrap(),
            format!(
                "http://sentinel.test/hooks/{}",
                body["id"].as_str().unwrap()
            )
        );
        body["id"].as_str().unwrap().parse().unwrap()
    }

    pub async fn post_hook(
        &self,
        source: Uuid,
        headers: &[(&str, String)],
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        let mut request = self.client.post(self.url(&format!("/hooks/{source}")));
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        request.body(body).send().await.unwrap()
    }

    pub async fn get(&self, key: &str, path: &str) -> reqwest::Response {
        self.client
            .get(self.url(path))
            .bearer_auth(key)
            .send()
            .await
            .unwrap()
    }

    /// A GET whose answer is JSON, read whatever its status.
    pub async fn get_json(&self, key: &str, path: &str) -> Value {
        self.get(key, path).await.json().await.unwrap()
    }

    /// Submits a job through `POST /v1/jobs`; returns its id.
    pub async fn submit(&self, key: &str, kind: &str, input: Value) -> i64 {
        let response = self
            .post(key, "/v1/jobs", json!({"kind": kind, "input": input}))
            .await;
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
        response.json::<Value>().await.unwrap()["id"]
            .as_i64()
            .unwrap()
    }

    /// `PATCH /v1/kinds/{kind}`.
    pub async fn patch_kind(&self, key: &str, kind: &str, body: Value) -> reqwest::Response {
        self.client
            .patch(self.url(&format!("/v1/kinds/{kind}")))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }

    pub async fn post(&self, key: &str, path: &str, body: Value) -> reqwest::Response {
        self.client
            .post(self.url(path))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .unwrap()
    }
}

/// A TCP proxy on loopback that can cut the database off and let it back.
pub struct DbProxy {
    pub port: u16,
    up: Arc<AtomicBool>,
    generation: watch::Sender<u64>,
}

impl DbProxy {
    pub async fn start(target: SocketAddr) -> DbProxy {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let up = Arc::new(AtomicBool::new(true));
        let (generation, _) = watch::channel(0u64);
        let proxy = DbProxy {
            port,
            up: up.clone(),
            generation: generation.clone(),
        };
        tokio::spawn(async move {
            loop {
                let Ok((inbound, _)) = listener.accept().await else {
                    return;
                };
                if !up.load(Ordering::SeqCst) {
                    drop(inbound);
                    continue;
                }
                let mut cut = generation.subscribe();
                tokio::spawn(async move {
                    let Ok(outbound) = TcpStream::connect(target).await else {
                        return;
                    };
                    let (mut a, mut b) = (inbound, outbound);
                    tokio::select! {
                        _ = tokio::io::copy_bidirectional(&mut a, &mut b) => {}
                        _ = cut.changed() => {}
                    }
                });
            }
        });
        proxy
    }

    /// Drops every open connection and refuses new ones.
    pub fn down(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.generation.send_modify(|g| *g += 1);
    }

    pub fn up(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}
