//! The outbox through platform outages: a fake Telegram API on loopback that drops connections,
//! then answers 503, then comes back; a second tenant's Slack replies beside it; a reply whose
//! `reply_ttl` runs out; a 429 that holds its credential. The worker runs without the model: the
//! replies are sent through `POST /v1/sources/{id}/messages`, which queues `reply.deliver` jobs.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sentinel_e2e::{worker_config, FakePlatform, TestGateway, TestWorker};
use sentinel_queue::{
    platform::{self, Platform},
    Job, JobStatus,
};
use sentinel_worker::outbox::OutboxConfig;
use serde_json::{json, Value};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(20);
const TG_SECRET: &str = "tg-secret-0123456789";
/// The scaled-down outbox: 3 failures open a breaker, probes 100 ms → 800 ms apart, and at most
/// 400 ms between two attempts of one reply.
const OUTBOX: OutboxConfig = OutboxConfig {
    breaker_threshold: 3,
    breaker_cooldown: Duration::from_millis(100),
    breaker_max_cooldown: Duration::from_millis(800),
    backoff_max: Duration::from_millis(400),
};

/// The outage's length: 4 s with the scaled-down [`OUTBOX`] in the test command; with
/// `SENTINEL_OUTAGE_SECS` set, that long with the outbox's default settings (the recorded run in
/// docs/RELIABILITY.md, "Platform outages").
fn recorded_outage() -> Option<Duration> {
    std::env::var("SENTINEL_OUTAGE_SECS")
        .ok()?
        .parse()
        .ok()
        .map(Duration::from_secs)
}

/// How the fake Telegram API answers.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Mode {
    Up,
    /// Reads the request, then closes the connection without an answer (a network error).
    Dropping,
    /// 503 Service Unavailable.
    Unavailable,
    /// 429 with `Retry-After` (and Telegram's `parameters.retry_after`) until this instant.
    ThrottledUntil(Instant),
}

/// One request the fake received, and its answer's status (0: the connection was dropped).
#[derive(Debug, Clone)]
struct Received {
    chat_id: String,
    text: String,
    status: u16,
    at: Instant,
}

/// A Telegram Bot API on loopback, one HTTP/1.1 request per connection, whose availability the
/// test switches.
#[derive(Clone)]
struct FakeTelegram {
    base: String,
    mode: Arc<Mutex<Mode>>,
    received: Arc<Mutex<Vec<Received>>>,
}

impl FakeTelegram {
    async fn start(mode: Mode) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let fake = Self {
            base: format!("http://{}", listener.local_addr().unwrap()),
            mode: Arc::new(Mutex::new(mode)),
            received: Arc::new(Mutex::new(Vec::new())),
        };
        let server = fake.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(server.clone().answer(stream));
            }
        });
        fake
    }

    fn set(&self, mode: Mode) {
        *self.mode.lock().unwrap() = mode;
    }

    fn received(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// The requests answered with `status`.
    fn answered(&self, status: u16) -> Vec<Received> {
        self.received()
            .into_iter()
            .filter(|request| request.status == status)
            .collect()
    }

    async fn answer(self, mut stream: TcpStream) {
        let Some(body) = read_request(&mut stream).await else {
            return;
        };
        let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        let mode = match *self.mode.lock().unwrap() {
            Mode::ThrottledUntil(until) if Instant::now() >= until => Mode::Up,
            mode => mode,
        };
        let (status, headers, answer) = match mode {
            Mode::Up => (
                200,
                String::new(),
                json!({"ok": true, "result": {"message_id": 9001, "chat": {"id": request["chat_id"]}, "date": 0}}),
            ),
            Mode::Dropping => (0, String::new(), Value::Null),
            Mode::Unavailable => (
                503,
                String::new(),
                json!({"ok": false, "error_code": 503, "description": "Service Unavailable"}),
            ),
            Mode::ThrottledUntil(until) => {
                let secs = until
                    .saturating_duration_since(Instant::now())
                    .as_secs_f64()
                    .ceil() as u64;
                (
                    429,
                    format!("Retry-After: {secs}\r\n"),
                    json!({"ok": false, "error_code": 429,
                           "description": format!("Too Many Requests: retry after {secs}"),
                           "parameters": {"retry_after": secs}}),
                )
            }
        };
        self.received.lock().unwrap().push(Received {
            chat_id: request["chat_id"].to_string(),
            text: request["text"].as_str().unwrap_or_default().to_owned(),
            status,
            at: Instant::now(),
        });
        if status == 0 {
            return; // dropped: the worker sees the connection close without an answer
        }
        let answer = answer.to_string();
        let reason = match status {
            200 => "OK",
            429 => "Too Many Requests",
            _ => "Service Unavailable",
        };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n{headers}\r\n{answer}",
            answer.len()
        );
        let _ = stream.write_all(response.as_bytes()).await;
        let _ = stream.shutdown().await;
    }
}

/// Reads one HTTP/1.1 request with a `content-length` body; returns the body.
async fn read_request(stream: &mut TcpStream) -> Option<Vec<u8>> {
    let mut buffer = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break at + 4;
        }
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 || buffer.len() > 1 << 20 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).to_ascii_lowercase();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length:"))
        .and_then(|value| value.trim().parse().ok())
        .unwrap_or(0);
    while buffer.len() < head_end + length {
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    Some(buffer[head_end..head_end + length].to_vec())
}

/// A gateway, a worker without the model and with the scaled-down outbox, the fake Telegram API,
/// and the harness's fake platform for Slack.
struct Outbox {
    pool: PgPool,
    gateway: TestGateway,
    worker: TestWorker,
    telegram: FakeTelegram,
    slack: FakePlatform,
    key: String,
}

impl Outbox {
    async fn start(pool_options: PgPoolOptions, options: PgConnectOptions, mode: Mode) -> Self {
        let pool = pool_options.connect_with(options.clone()).await.unwrap();
        let telegram = FakeTelegram::start(mode).await;
        let slack = FakePlatform::start().await;
        let gateway = TestGateway::spawn(options.clone()).await;
        let key = gateway.tenant().await;
        let mut config = worker_config(&slack);
        config.api_bases = config
            .api_bases
            .clone()
            .with(Platform::Telegram, telegram.base.clone());
        if recorded_outage().is_some() {
            config.outbox = OutboxConfig::default();
            config.delivery_timeout = Duration::from_secs(15);
            config.poll_interval = Duration::from_secs(1);
        } else {
            config.outbox = OUTBOX;
            config.delivery_timeout = Duration::from_secs(2);
        }
        let worker = TestWorker::spawn(config, options, None);
        Self {
            pool,
            gateway,
            worker,
            telegram,
            slack,
            key,
        }
    }

    async fn call(&self, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
        let url = self.gateway.url(path);
        let request = match method {
            "POST" => self.gateway.client.post(url),
            "PATCH" => self.gateway.client.patch(url),
            _ => self.gateway.client.get(url),
        };
        let response = request.bearer_auth(key).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// Creates a source from its body; returns it as the API shows it.
    async fn source(&self, key: &str, body: Value) -> Value {
        let (status, source) = self.call("POST", "/v1/sources", key, body).await;
        assert_eq!(status, 201, "{source}");
        source
    }

    async fn telegram_source(&self, extra: Value) -> Uuid {
        let mut body = json!({"platform": "telegram", "secrets": {"secret_token": TG_SECRET},
                              "reply": {"bot_token": "123456:OUTAGE-token"}});
        if let (Some(body), Some(extra)) = (body.as_object_mut(), extra.as_object()) {
            body.extend(extra.clone());
        }
        self.source(&self.key, body).await["id"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    }

    /// Queues a message through the send API; returns its `reply.deliver` job's id.
    async fn send(&self, key: &str, source: Uuid, conversation: &str, text: &str) -> i64 {
        let (status, accepted) = self
            .call(
                "POST",
                &format!("/v1/sources/{source}/messages"),
                key,
                json!({"conversation_id": conversation, "text": text}),
            )
            .await;
        assert_eq!(status, 202, "{accepted}");
        accepted["id"].as_i64().unwrap()
    }

    async fn stop(self) {
        self.worker.stop().await;
        self.gateway.stop().await;
    }
}

/// Waits until every job in `ids` is final; returns them in that order.
async fn finished(pool: &PgPool, ids: &[i64], timeout: Duration) -> Vec<Job> {
    let deadline = Instant::now() + timeout;
    loop {
        let jobs = Job::fetch_many(pool, ids).await.unwrap();
        if jobs.iter().all(|job| job.status.is_final()) {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "jobs not final in {timeout:?}: {:?}",
            jobs.iter()
                .map(|job| (job.id, job.status, job.last_error.clone()))
                .collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `job_attempts` rows of `ids` by outcome.
async fn attempts(pool: &PgPool, ids: &[i64]) -> HashMap<String, i64> {
    sqlx::query_as::<_, (String, i64)>(
        "SELECT outcome, count(*) FROM job_attempts WHERE job_id = ANY($1) GROUP BY outcome",
    )
    .bind(ids)
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .collect()
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn replies_queued_during_an_outage_are_delivered_once_in_order_while_other_tenants_flow(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = Outbox::start(pool_options, options, Mode::Dropping).await;
    let telegram = stack.telegram_source(json!({})).await;
    let other = stack
        .gateway
        .tenant_with(json!({"name": "other-tenant"}))
        .await;
    let slack: Uuid = stack
        .source(
            &other,
            json!({"platform": "slack", "secrets": {"signing_secret": "slack-signing-0123456789"},
                   "reply": {"bot_token": "xoxb-other-tenant"}}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();

    // Telegram drops every connection: 12 replies in 3 conversations, interleaved.
    let outage = Instant::now();
    let chats = ["1001", "1002", "1003"];
    let mut ids = Vec::new();
    for n in 0..4 {
        for chat in chats {
            ids.push(
                stack
                    .send(&stack.key, telegram, chat, &format!("{chat}-{n}"))
                    .await,
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(1500)).await;
    // Then it answers 503; meanwhile the other tenant's Slack replies go out at once.
    stack.telegram.set(Mode::Unavailable);
    for n in 0..3 {
        let sent = Instant::now();
        stack
            .send(&other, slack, "C024BE91L", &format!("slack-{n}"))
            .await;
        let requests = stack.slack.wait_for(n + 1, Duration::from_secs(3)).await;
        assert_eq!(requests[n].body["text"], format!("slack-{n}"));
        println!(
            "slack reply {n} delivered in {:?} during the outage",
            sent.elapsed()
        );
    }
    assert!(
        stack.telegram.answered(200).is_empty(),
        "Telegram is still down"
    );
    let outage_len = recorded_outage().unwrap_or(Duration::from_secs(4));
    let down_for = outage_len.saturating_sub(outage.elapsed());
    tokio::time::sleep(down_for).await;
    stack.telegram.set(Mode::Up);
    let outage = outage.elapsed();
    let back = Instant::now();

    // At the defaults an open breaker probes every 30 s at most.
    let wait = if recorded_outage().is_some() {
        Duration::from_secs(120)
    } else {
        WAIT
    };
    let jobs = finished(&stack.pool, &ids, wait).await;
    for job in &jobs {
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.last_error);
    }
    println!(
        "all 12 delivered {:?} after Telegram came back",
        back.elapsed()
    );
    // Each reply exactly once, and in each chat in the order it was queued.
    let delivered = stack.telegram.answered(200);
    assert_eq!(delivered.len(), 12, "{delivered:?}");
    for chat in chats {
        let texts: Vec<&str> = delivered
            .iter()
            .filter(|request| request.chat_id == chat)
            .map(|request| request.text.as_str())
            .collect();
        let queued: Vec<String> = (0..4).map(|n| format!("{chat}-{n}")).collect();
        assert_eq!(texts, queued, "chat {chat}");
    }
    // The breaker held the tries down. Without it (measured with a threshold no outage reaches)
    // the oldest reply of each chat (the others wait behind it) was tried every 200-400 ms, the
    // backoff's cap: 30 failed sends in these 4 s. With it: the failures that open it (3, and
    // whatever was in flight then) and one probe per cooldown (100, 200, 400, 800, 800, ... ms):
    // 9 measured.
    let failed: Vec<Received> = stack
        .telegram
        .received()
        .into_iter()
        .filter(|request| request.status != 200)
        .collect();
    let by_outcome = attempts(&stack.pool, &ids).await;
    println!(
        "outage {outage:?}: {} failed sends, job_attempts {by_outcome:?}",
        failed.len()
    );
    assert_eq!(
        by_outcome.get("retry").copied().unwrap_or(0),
        failed.len() as i64,
        "every failed send is one spent attempt; waits are snoozes"
    );
    // A longer outage adds at most one probe per 30 s (the default cooldown's cap).
    let bound = 20 + (outage_len.as_secs() as usize) / 30;
    assert!(
        failed.len() <= bound,
        "{} failed sends in a {outage:?} outage: {failed:?}",
        failed.len()
    );
    assert!(
        failed.iter().any(|request| request.status == 0)
            && failed.iter().any(|request| request.status == 503),
        "both kinds of outage were tried: {failed:?}"
    );
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_reply_past_its_ttl_ends_dead_with_reply_expired_and_can_be_replayed(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = Outbox::start(pool_options, options, Mode::Unavailable).await;

    // reply_ttl_secs: checked, shown, changed, reset.
    let base = json!({"platform": "telegram", "secrets": {"secret_token": TG_SECRET},
                      "reply": {"bot_token": "123456:TTL-token"}});
    for bad in [json!(59), json!(604_801), json!(-1)] {
        let mut body = base.clone();
        body["reply_ttl_secs"] = bad.clone();
        let (status, answer) = stack.call("POST", "/v1/sources", &stack.key, body).await;
        assert_eq!(status, 422, "{bad}: {answer}");
        assert_eq!(answer["error"]["code"], "invalid_source");
        let message = answer["error"]["message"].as_str().unwrap();
        assert!(message.contains("reply_ttl_secs"), "{message}");
    }
    let plain = stack.source(&stack.key, base.clone()).await;
    assert_eq!(plain["reply_ttl_secs"], 3600, "the default");
    let source = stack.telegram_source(json!({"reply_ttl_secs": 600})).await;
    let path = format!("/v1/sources/{source}");
    for (change, shown, status) in [
        (json!(30), 600, 422),
        (json!(null), 3600, 200),
        (json!(60), 60, 200),
    ] {
        let (got, answer) = stack
            .call(
                "PATCH",
                &path,
                &stack.key,
                json!({"reply_ttl_secs": change}),
            )
            .await;
        assert_eq!(got, status, "{answer}");
        let (_, view) = stack.call("GET", &path, &stack.key, Value::Null).await;
        assert_eq!(view["reply_ttl_secs"], shown, "after {change}");
    }

    // Telegram answers 503; once the reply was tried, it is made to have waited past its ttl.
    let id = stack
        .send(&stack.key, source, "7001", "Your parcel left.")
        .await;
    let deadline = Instant::now() + WAIT;
    while stack.telegram.received().is_empty() {
        assert!(Instant::now() < deadline, "the reply was never tried");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let queued_for_secs: f64 = sqlx::query_scalar(
        "UPDATE jobs SET created_at = created_at - interval '61 seconds' WHERE id = $1
         RETURNING extract(epoch FROM now() - created_at)::float8",
    )
    .bind(id)
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert!(queued_for_secs > 60.0);
    let dead = finished(&stack.pool, &[id], WAIT).await.remove(0);
    assert_eq!(dead.status, JobStatus::Dead);
    let error = dead.last_error.clone().unwrap();
    assert_eq!(error["code"], "reply_expired", "{error}");
    let message = error["message"].as_str().unwrap();
    assert!(
        message.contains("reply_ttl of 60 s") && message.contains("tried for 6"),
        "{message}"
    );
    assert_eq!(error["reply_ttl_secs"], 60);
    assert!(
        error["last_error"].is_object(),
        "the last failure is kept: {error}"
    );
    assert!(
        dead.max_attempts > 1_000,
        "ended by its ttl, not a count of attempts"
    );

    // Telegram is back: the dead reply is replayed, with a fresh ttl, and delivered.
    stack.telegram.set(Mode::Up);
    let (status, answer) = stack
        .call(
            "POST",
            &format!("/v1/jobs/{id}/replay"),
            &stack.key,
            Value::Null,
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let replay: i64 = sqlx::query_scalar("SELECT id FROM jobs WHERE replay_of = $1")
        .bind(id)
        .fetch_one(&stack.pool)
        .await
        .unwrap();
    let replayed = finished(&stack.pool, &[replay], WAIT).await.remove(0);
    assert_eq!(
        replayed.status,
        JobStatus::Succeeded,
        "{:?}",
        replayed.last_error
    );
    let delivered = stack.telegram.answered(200);
    assert_eq!(delivered.len(), 1);
    assert_eq!(delivered[0].text, "Your parcel left.");
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_429_holds_its_credential_so_the_queued_replies_wait_instead_of_hitting_it(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let hold = Duration::from_secs(2);
    let throttled = Instant::now() + hold;
    let stack = Outbox::start(pool_options, options, Mode::ThrottledUntil(throttled)).await;
    let source = stack.telegram_source(json!({})).await;
    let first = stack.send(&stack.key, source, "2001", "first").await;
    let deadline = Instant::now() + WAIT;
    while stack.telegram.received().is_empty() {
        assert!(Instant::now() < deadline, "the reply was never tried");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Five more replies of the same credential, other chats, while the 429's hold lasts.
    let mut ids = vec![first];
    for chat in ["2002", "2003", "2004", "2005", "2006"] {
        ids.push(stack.send(&stack.key, source, chat, chat).await);
    }
    let jobs = finished(&stack.pool, &ids, WAIT).await;
    assert!(jobs.iter().all(|job| job.status == JobStatus::Succeeded));
    let throttled_answers = stack.telegram.answered(429);
    assert_eq!(
        throttled_answers.len(),
        1,
        "only the first reply met the 429: {:?}",
        stack.telegram.received()
    );
    let delivered = stack.telegram.answered(200);
    assert_eq!(delivered.len(), 6);
    assert!(
        delivered.iter().all(|request| request.at >= throttled),
        "nothing was sent before Retry-After: {delivered:?}"
    );
    // A 429 is a snooze: no attempt spent.
    let by_outcome = attempts(&stack.pool, &ids).await;
    assert_eq!(by_outcome.get("retry"), None, "{by_outcome:?}");
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn every_platforms_reply_address_names_its_conversation_for_the_order_of_replies(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options).await.unwrap();
    for &platform in Platform::ALL {
        let Ok(address) = platform::send_address(platform, "C-42", Some("m-1")) else {
            continue;
        };
        for input in [
            json!({"address": address}),
            json!({"address": address, "conversation_id": "C-42"}),
        ] {
            let conversation: Option<String> = sqlx::query_scalar("SELECT reply_conversation($1)")
                .bind(&input)
                .fetch_one(&pool)
                .await
                .unwrap();
            assert_eq!(conversation.as_deref(), Some("C-42"), "{platform}: {input}");
        }
    }
}
