//! End to end, without the model: the forward lane is fair across tenants. One tenant's agent is
//! slow and it has a backlog, with a high `max_in_flight`; another tenant's one message is still
//! forwarded at once, and the first tenant never holds more than the tenant cap of running
//! forwards (`SENTINEL_FORWARD_TENANT_MAX`, by default half of a worker's forward slots), across
//! two workers.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use poem::{
    listener::{Acceptor, Listener, TcpListener},
    Body, Request, Response,
};
use sentinel_e2e::{gateway_config, worker_config, FakePlatform, TestGateway, TestWorker};
use serde_json::json;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};
use uuid::Uuid;

const TG_SECRET: &str = "tg-secret-0123456789";
/// How long the slow agent holds each request.
const SLOW_AGENT_HOLD: Duration = Duration::from_secs(5);
/// The forward slots of each worker; the tenant cap is half of them.
const FORWARD_SLOTS: usize = 4;
const TENANT_MAX: usize = FORWARD_SLOTS / 2;

/// An agent on loopback that holds each request for `hold`, then answers with a reply, and
/// records when each request came and how many it held at once.
#[derive(Clone)]
struct Agent {
    url: String,
    arrivals: Arc<Mutex<Vec<Instant>>>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Agent {
    async fn start(hold: Duration) -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let agent = Agent {
            url: format!("http://{addr}/agent"),
            arrivals: Arc::default(),
            in_flight: Arc::default(),
            peak: Arc::default(),
        };
        let state = agent.clone();
        let endpoint = poem::endpoint::make(move |request: Request| {
            let state = state.clone();
            async move {
                let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                state.peak.fetch_max(now, Ordering::SeqCst);
                state.arrivals.lock().unwrap().push(Instant::now());
                let _ = request.into_body().into_vec().await;
                tokio::time::sleep(hold).await;
                state.in_flight.fetch_sub(1, Ordering::SeqCst);
                Response::builder()
                    .content_type("application/json")
                    .body(Body::from_string(json!({"reply": "On it"}).to_string()))
            }
        });
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
        agent
    }

    fn received(&self) -> usize {
        self.arrivals.lock().unwrap().len()
    }

    /// Waits until the agent got `n` requests; returns when the `n`th came.
    async fn wait_for(&self, n: usize, within: Duration) -> Instant {
        let deadline = Instant::now() + within;
        loop {
            if let Some(at) = self.arrivals.lock().unwrap().get(n - 1) {
                return *at;
            }
            assert!(
                Instant::now() < deadline,
                "the agent got {} of {n} requests in {within:?}",
                self.received()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// A tenant's Telegram source that forwards to `agent` with a high `max_in_flight`.
async fn forwarding_source(gateway: &TestGateway, name: &str, agent: &Agent) -> Uuid {
    let key = gateway.tenant_with(json!({ "name": name })).await;
    gateway
        .source(
            &key,
            json!({"platform": "telegram", "secrets": {"secret_token": TG_SECRET},
                   "reply": {"bot_token": "123456:TEST-token"},
                   "agent": {"mode": "forward", "url": agent.url, "max_in_flight": 128,
                             "timeout_ms": 60_000},
                   // Each turn at once: this is about the lane's fairness, not about bursts.
                   "turns": {"quiet_ms": 0, "max_wait_ms": 0}}),
        )
        .await
}

/// A message from its own chat (a conversation of its own: one turn runs per conversation).
async fn message(gateway: &TestGateway, source: Uuid, update_id: u64) {
    let update = json!({"update_id": update_id, "message": {"message_id": update_id, "date": 1735689600,
        "from": {"id": update_id, "is_bot": false, "first_name": "Ada"},
        "chat": {"id": update_id, "type": "private"}, "text": format!("message {update_id}")}});
    gateway
        .hook(
            source,
            &[("x-telegram-bot-api-secret-token", TG_SECRET.into())],
            &update.to_string(),
        )
        .await;
}

/// The forwards of `source_id`'s tenant in `status`.
async fn tenant_forwards(pool: &PgPool, source_id: Uuid, status: &str) -> i64 {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM jobs
           WHERE kind = 'agent.forward' AND status = $2
             AND tenant_id = (SELECT tenant_id FROM sources WHERE id = $1)"#,
        source_id,
        status
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_slow_tenant_holds_its_share_and_another_tenants_forward_goes_at_once(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    // It times the second tenant's forward.
    let _machine = sentinel_e2e::alone().await;
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let platform = FakePlatform::start().await;
    let gateway = TestGateway::spawn_with(
        sentinel_api::Config {
            forward_allow: "127.0.0.0/8".parse().unwrap(),
            ..gateway_config()
        },
        options.clone(),
    )
    .await;
    let worker = || {
        TestWorker::spawn(
            sentinel_worker::Config {
                forward_allow: "127.0.0.0/8".parse().unwrap(),
                forward_slots: FORWARD_SLOTS,
                ..worker_config(&platform)
            },
            options.clone(),
            None,
        )
    };
    // Two workers: the tenant cap holds across them, as max_in_flight does.
    let workers = [worker(), worker()];
    let (slow_agent, quick_agent) = (
        Agent::start(SLOW_AGENT_HOLD).await,
        Agent::start(Duration::ZERO).await,
    );
    let slow = forwarding_source(&gateway, "slow", &slow_agent).await;
    let quick = forwarding_source(&gateway, "quick", &quick_agent).await;

    for n in 0..16 {
        message(&gateway, slow, 100 + n).await;
    }
    slow_agent
        .wait_for(TENANT_MAX, Duration::from_secs(30))
        .await;
    // Time enough for the workers' 8 slots to take more of the slow tenant's backlog, if they
    // would.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert!(tenant_forwards(&pool, slow, "running").await <= TENANT_MAX as i64);

    let sent = Instant::now();
    message(&gateway, quick, 1).await;
    let arrived = quick_agent.wait_for(1, Duration::from_secs(30)).await;
    let waited = arrived - sent;
    assert!(
        waited < Duration::from_millis(2_500),
        "the quick tenant's forward waited {waited:?} behind the slow tenant's backlog"
    );
    assert!(
        tenant_forwards(&pool, slow, "queued").await > 0,
        "the slow tenant's backlog had not drained"
    );
    assert_eq!(
        slow_agent.peak.load(Ordering::SeqCst),
        TENANT_MAX,
        "the slow tenant never held more than the tenant cap"
    );
    assert!(tenant_forwards(&pool, slow, "running").await <= TENANT_MAX as i64);
    for worker in workers {
        worker.stop().await;
    }
    gateway.stop().await;
}
