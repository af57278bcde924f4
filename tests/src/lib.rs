//! The end-to-end harness: a real gateway and a real worker (with the real default model) against
//! the test's own database, and a fake platform API on loopback that records what it is sent and
//! answers what the test scripted.
#![allow(clippy::unwrap_used)] // A harness that cannot start should fail the test loudly.

use std::{
    collections::VecDeque,
    net::SocketAddr,
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use poem::{
    http::StatusCode,
    listener::{Acceptor, Listener, TcpListener},
    Body, Request, Response,
};
use sentinel_api::Gateway;
use sentinel_queue::{
    platform::{hmac_sha256, Platform},
    Job,
};
use sentinel_worker::{
    model::llm::{Llm, ModelConfig},
    outbox::ApiBases,
};
use serde_json::{json, Value};
use sqlx::{postgres::PgConnectOptions, PgPool};
use tokio::{
    sync::{watch, RwLock, RwLockReadGuard, RwLockWriteGuard},
    task::JoinHandle,
};
use uuid::Uuid;

pub const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789";

/// The end-to-end tests are one binary, so they run on threads of one process. A test that times
/// itself, captures every log line of the process or loads the machine on purpose holds this
/// exclusively ([`alone`]); the others hold it shared ([`shared`]) and run beside each other.
static MACHINE: RwLock<()> = RwLock::const_new(());

/// Waits until no other end-to-end test runs, and keeps it so until the guard drops.
pub async fn alone() -> RwLockWriteGuard<'static, ()> {
    MACHINE.write().await
}

/// Runs beside the other shared tests, never beside one that runs [`alone`].
pub async fn shared() -> RwLockReadGuard<'static, ()> {
    MACHINE.read().await
}

/// The model the tests run: `SENTINEL_MODEL`, else the fetched default model.
pub fn model_path() -> PathBuf {
    sentinel_worker::model::llm::model_path_or_default(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    )
}

/// Loads the model; a missing file fails with the fetch command in the message.
pub async fn load_model(max_seqs: usize) -> Arc<Llm> {
    match Llm::load(&ModelConfig {
        path: model_path(),
        max_seqs,
        paged_attn_mb: None,
        context_tokens: None,
        heal_seqs: 0,
    })
    .await
    {
        Ok(llm) => Arc::new(llm),
        Err(error) => panic!("{error:#}"),
    }
}

/// The gateway's settings for a test: the admin token, no JWTs.
pub fn gateway_config() -> sentinel_api::Config {
    sentinel_api::Config {
        public_url: "http://sentinel.test".into(),
        admin_token: Some(ADMIN_TOKEN.into()),
        max_body_bytes: 256 * 1024,
        db_max_connections: 8,
        ..sentinel_api::Config::new(String::new(), SocketAddr::from(([127, 0, 0, 1], 0)))
    }
}

/// A gateway served on 127.0.0.1:0.
pub struct TestGateway {
    pub addr: SocketAddr,
    pub client: reqwest::Client,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
}

impl TestGateway {
    pub async fn spawn(options: PgConnectOptions) -> Self {
        Self::spawn_with(gateway_config(), options).await
    }

    pub async fn spawn_with(config: sentinel_api::Config, options: PgConnectOptions) -> Self {
        let (stop, shutdown) = watch::channel(false);
        let options = options.options(sentinel_queue::db::SESSION_OPTIONS);
        let gateway = Gateway::start_with(config, options, shutdown.clone())
            .await
            .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            sentinel_api::serve_on(gateway, listener, shutdown)
                .await
                .unwrap();
        });
        Self {
            addr,
            client: reqwest::Client::new(),
            stop,
            server,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// Creates a tenant; returns its API key.
    pub async fn tenant(&self) -> String {
        self.tenant_with(json!({"name": "acme"})).await
    }

    /// Creates a tenant from its full JSON body (name, rate limit, burst); returns its API key.
    pub async fn tenant_with(&self, body: Value) -> String {
        let body = self
            .send(
                self.client
                    .post(self.url("/v1/admin/tenants"))
                    .bearer_auth(ADMIN_TOKEN)
                    .json(&body),
                201,
            )
            .await;
        body["api_key"].as_str().unwrap().to_owned()
    }

    /// Creates a source from its full JSON body; returns its id.
    pub async fn source(&self, key: &str, body: Value) -> Uuid {
        let body = self
            .send(
                self.client
                    .post(self.url("/v1/sources"))
                    .bearer_auth(key)
                    .json(&body),
                201,
            )
            .await;
        body["id"].as_str().unwrap().parse().unwrap()
    }

    /// Posts a webhook and expects it acknowledged.
    pub async fn hook(&self, source: Uuid, headers: &[(&str, String)], body: &str) {
        let mut request = self
            .client
            .post(self.url(&format!("/hooks/{source}")))
            .header("content-type", "application/json");
        for (name, value) in headers {
            request = request.header(*name, value);
        }
        self.send(request.body(body.to_owned()), 200).await;
    }

    async fn send(&self, request: reqwest::RequestBuilder, expected: u16) -> Value {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert_eq!(status, expected, "{text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(15), self.server).await;
    }
}

/// A worker running in this process.
pub struct TestWorker {
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// The worker's settings for a test: short lease and poll, replies to `platform`.
pub fn worker_config(platform: &FakePlatform) -> sentinel_worker::Config {
    sentinel_worker::Config {
        worker_id: format!("e2e-{}", Uuid::new_v4()),
        lease: Duration::from_secs(10),
        max_slots: 2,
        delivery_slots: 4,
        heal_batch: 64,
        delivery_timeout: Duration::from_secs(5),
        model: model_path(),
        max_tokens: 24,
        api_bases: ApiBases::default()
            .with(Platform::Telegram, platform.base())
            .with(Platform::Whatsapp, format!("{}/v21.0", platform.base()))
            .with(Platform::Slack, format!("{}/api", platform.base())),
        poll_interval: Duration::from_millis(200),
        ..sentinel_worker::Config::new(String::new())
    }
}

impl TestWorker {
    pub fn spawn(
        config: sentinel_worker::Config,
        options: PgConnectOptions,
        llm: Option<Arc<Llm>>,
    ) -> Self {
        let (stop, shutdown) = watch::channel(false);
        let task = tokio::spawn(sentinel_worker::run_with(config, options, llm, shutdown));
        Self { stop, task }
    }

    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = tokio::time::timeout(Duration::from_secs(30), self.task).await;
    }
}

/// The whole system for one test: its database, a gateway, a worker with the real model, a fake
/// platform API, and a tenant's API key.
pub struct Stack {
    pub pool: PgPool,
    pub gateway: TestGateway,
    pub worker: TestWorker,
    pub platform: FakePlatform,
    pub llm: Arc<Llm>,
    pub key: String,
}

impl Stack {
    /// The stack with [`worker_config`] and at most `max_tokens` per generation.
    pub async fn start(
        pool_options: sqlx::postgres::PgPoolOptions,
        options: PgConnectOptions,
        max_tokens: usize,
    ) -> Self {
        Self::start_with(pool_options, options, |config| {
            config.max_tokens = max_tokens;
        })
        .await
    }

    /// The stack with [`worker_config`] changed by `configure`; the model gets the configured
    /// number of sequence slots.
    pub async fn start_with(
        pool_options: sqlx::postgres::PgPoolOptions,
        options: PgConnectOptions,
        configure: impl FnOnce(&mut sentinel_worker::Config),
    ) -> Self {
        let pool = pool_options.connect_with(options.clone()).await.unwrap();
        let platform = FakePlatform::start().await;
        let gateway = TestGateway::spawn(options.clone()).await;
        let key = gateway.tenant().await;
        let mut config = worker_config(&platform);
        configure(&mut config);
        let llm = load_model(config.max_slots).await;
        let worker = TestWorker::spawn(config, options, Some(llm.clone()));
        Self {
            pool,
            gateway,
            worker,
            platform,
            llm,
            key,
        }
    }

    /// Submits a job through the job API and expects it accepted.
    pub async fn submit(&self, body: Value) {
        let response = self
            .gateway
            .client
            .post(self.gateway.url("/v1/jobs"))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202, "{}", response.text().await.unwrap());
    }

    pub async fn stop(self) {
        self.worker.stop().await;
        self.gateway.stop().await;
    }
}

/// One request the fake platform received.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub path: String,
    pub authorization: Option<String>,
    pub body: Value,
    pub at: Instant,
}

/// A scripted answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(&'static str, String)>,
    pub body: Value,
}

/// A platform API on loopback. Unscripted requests get the platform's success answer.
#[derive(Clone)]
pub struct FakePlatform {
    addr: SocketAddr,
    recorded: Arc<Mutex<Vec<Recorded>>>,
    /// Typing indicators (Telegram `sendChatAction`, WhatsApp's `typing_indicator`): kept apart
    /// from the messages, always answered with success, never taking a scripted answer.
    typing: Arc<Mutex<Vec<Recorded>>>,
    script: Arc<Mutex<VecDeque<Scripted>>>,
    delay: Arc<Mutex<Duration>>,
}

impl FakePlatform {
    pub async fn start() -> Self {
        let recorded = Arc::new(Mutex::new(Vec::new()));
        let typing = Arc::new(Mutex::new(Vec::new()));
        let script = Arc::new(Mutex::new(VecDeque::<Scripted>::new()));
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let delay = Arc::new(Mutex::new(Duration::ZERO));
        let (log, answers, slowness) = (recorded.clone(), script.clone(), delay.clone());
        let typed = typing.clone();
        let endpoint = poem::endpoint::make(move |request: Request| {
            let (log, answers, slowness) = (log.clone(), answers.clone(), slowness.clone());
            let typed = typed.clone();
            async move {
                let path = request.uri().path().to_owned();
                let authorization = request.header("authorization").map(str::to_owned);
                let bytes = request.into_body().into_vec().await.unwrap_or_default();
                let body: Value = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
                let is_typing =
                    path.ends_with("/sendChatAction") || body.get("typing_indicator").is_some();
                let recorded = Recorded {
                    path: path.clone(),
                    authorization,
                    body,
                    at: Instant::now(),
                };
                if is_typing {
                    typed.lock().unwrap().push(recorded);
                    return Response::builder().content_type("application/json").body(
                        Body::from_string(r#"{"ok":true,"success":true}"#.to_owned()),
                    );
                }
                log.lock().unwrap().push(recorded);
                let scripted = answers.lock().unwrap().pop_front();
                if scripted.is_none() {
                    let delay = *slowness.lock().unwrap();
                    tokio::time::sleep(delay).await;
                }
                let answer = scripted.unwrap_or_else(|| Scripted {
                    status: 200,
                    headers: Vec::new(),
                    body: success_body(&path),
                });
                let mut response = Response::builder()
                    .status(StatusCode::from_u16(answer.status).unwrap())
                    .content_type("application/json");
                for (name, value) in answer.headers {
                    response = response.header(name, value);
                }
                response.body(Body::from_string(answer.body.to_string()))
            }
        });
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
        Self {
            addr,
            recorded,
            typing,
            script,
            delay,
        }
    }

    /// The typing indicators received so far.
    pub fn typing(&self) -> Vec<Recorded> {
        self.typing.lock().unwrap().clone()
    }

    /// Makes every unscripted answer from now on wait `delay` first (a slow platform).
    pub fn slow_down(&self, delay: Duration) {
        *self.delay.lock().unwrap() = delay;
    }

    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues an answer for the next request.
    pub fn answer(&self, status: u16, headers: Vec<(&'static str, String)>, body: Value) {
        self.script.lock().unwrap().push_back(Scripted {
            status,
            headers,
            body,
        });
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.recorded.lock().unwrap().clone()
    }

    /// Waits until at least `n` requests arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<Recorded> {
        let deadline = Instant::now() + timeout;
        loop {
            let requests = self.requests();
            if requests.len() >= n {
                return requests;
            }
            assert!(
                Instant::now() < deadline,
                "the fake platform got {} of {n} requests in {timeout:?}",
                requests.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn success_body(path: &str) -> Value {
    if path.ends_with("/sendMessage") {
        json!({"ok": true, "result": {"message_id": 9001, "chat": {"id": 0}, "date": 0}})
    } else if path.ends_with("/messages") {
        json!({"messaging_product": "whatsapp", "contacts": [], "messages": [{"id": "wamid.REPLY"}]})
    } else if path.ends_with("/chat.postMessage") {
        json!({"ok": true, "channel": "C0", "ts": "1700000000.000100"})
    } else {
        json!({"ok": false, "error": "unknown_method"})
    }
}

/// Waits until every job of `kind` (at least `n`) reaches a final status.
pub async fn wait_jobs(pool: &PgPool, kind: &str, n: usize, timeout: Duration) -> Vec<Job> {
    let deadline = Instant::now() + timeout;
    loop {
        let ids: Vec<i64> = sqlx::query_scalar("SELECT id FROM jobs WHERE kind = $1 ORDER BY id")
            .bind(kind)
            .fetch_all(pool)
            .await
            .unwrap();
        let jobs = Job::fetch_many(pool, &ids).await.unwrap();
        if jobs.len() >= n && jobs.iter().all(|job| job.status.is_final()) {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "{kind} jobs did not finish in {timeout:?}: {:?}",
            jobs.iter()
                .map(|job| (job.id, job.status, job.last_error.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Slack's request signature over `body` at `timestamp`.
pub fn slack_signature(secret: &str, timestamp: i64, body: &str) -> String {
    let base = format!("v0:{timestamp}:{body}");
    format!(
        "v0={}",
        hex::encode(hmac_sha256(secret.as_bytes(), &[base.as_bytes()]))
    )
}

/// Meta's `X-Hub-Signature-256` over `body`.
pub fn meta_signature(app_secret: &str, body: &str) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(app_secret.as_bytes(), &[body.as_bytes()]))
    )
}
