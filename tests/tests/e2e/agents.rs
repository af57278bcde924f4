//! End to end, without the model: the agents a source can have (`external` through the worker API,
//! `forward` to an HTTP agent on loopback, `none`), and the send API, against a real gateway, a real
//! worker and fake platform APIs.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use poem::{
    http::{HeaderMap, StatusCode},
    listener::{Acceptor, Listener, TcpListener},
    Body, Request, Response,
};
use sentinel_e2e::{
    gateway_config, wait_jobs, worker_config, FakePlatform, TestGateway, TestWorker,
};
use sentinel_queue::{kinds, platform::standard, JobStatus};
use serde_json::{json, Value};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};
use uuid::Uuid;

const WAIT: Duration = Duration::from_secs(30);
const TG_SECRET: &str = "tg-secret-0123456789";

/// A gateway, a worker without the model, a fake platform API, and a tenant.
struct Agents {
    pool: PgPool,
    gateway: TestGateway,
    worker: TestWorker,
    platform: FakePlatform,
    key: String,
}

impl Agents {
    /// The gateway allows forwards to `gateway_allow`, the worker to `worker_allow`.
    async fn start(
        pool_options: PgPoolOptions,
        options: PgConnectOptions,
        gateway_allow: &str,
        worker_allow: &str,
    ) -> Self {
        let pool = pool_options.connect_with(options.clone()).await.unwrap();
        let platform = FakePlatform::start().await;
        let gateway = TestGateway::spawn_with(
            sentinel_api::Config {
                forward_allow: gateway_allow.parse().unwrap(),
                claim_max_wait: Duration::from_secs(10),
                ..gateway_config()
            },
            options.clone(),
        )
        .await;
        let key = gateway.tenant().await;
        let config = sentinel_worker::Config {
            forward_allow: worker_allow.parse().unwrap(),
            ..worker_config(&platform)
        };
        let worker = TestWorker::spawn(config, options, None);
        Self {
            pool,
            gateway,
            worker,
            platform,
            key,
        }
    }

    async fn call(&self, method: &str, path: &str, key: &str, body: Value) -> (u16, Value) {
        let request = match method {
            "POST" => self.gateway.client.post(self.gateway.url(path)),
            "PATCH" => self.gateway.client.patch(self.gateway.url(path)),
            _ => self.gateway.client.get(self.gateway.url(path)),
        };
        let response = request.bearer_auth(key).json(&body).send().await.unwrap();
        let status = response.status().as_u16();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// A Telegram source with reply credentials and `agent`; returns the creation answer.
    async fn telegram_source(&self, agent: Value) -> Value {
        let (status, body) = self
            .call(
                "POST",
                "/v1/sources",
                &self.key,
                json!({"platform": "telegram", "secrets": {"secret_token": TG_SECRET},
                       "reply": {"bot_token": "123456:TEST-token"}, "agent": agent}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body
    }

    /// A Telegram message from chat 7001.
    async fn message(&self, source: &Value, update_id: u64, text: &str) {
        self.message_in(source, 7001, update_id, text).await;
    }

    /// A Telegram message from `chat` (each chat is a conversation of its own).
    async fn message_in(&self, source: &Value, chat: u64, update_id: u64, text: &str) {
        let update = json!({"update_id": update_id, "message": {"message_id": update_id, "date": 1735689600,
            "from": {"id": chat, "is_bot": false, "first_name": "Ada"},
            "chat": {"id": chat, "type": "private"}, "text": text}});
        let id: Uuid = source["id"].as_str().unwrap().parse().unwrap();
        self.gateway
            .hook(
                id,
                &[("x-telegram-bot-api-secret-token", TG_SECRET.into())],
                &update.to_string(),
            )
            .await;
    }

    async fn stop(self) {
        self.worker.stop().await;
        self.gateway.stop().await;
    }
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn an_external_agent_answers_through_the_worker_api(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = Agents::start(pool_options, options, "", "").await;
    let source = stack.telegram_source(json!({"mode": "external"})).await;
    assert_eq!(source["agent"], json!({"mode": "external"}));
    stack.message(&source, 101, "Where is my order?").await;

    // Another tenant's worker sees nothing of it.
    let other = stack.gateway.tenant_with(json!({"name": "other"})).await;
    let claim = json!({"kinds": ["agent.turn"], "worker_id": "py-1", "wait_ms": 300});
    let (status, body) = stack.call("POST", "/v1/worker/claim", &other, claim).await;
    assert_eq!((status, body["jobs"].as_array().unwrap().len()), (200, 0));

    let claim = json!({"kinds": ["agent.turn"], "worker_id": "py-1", "wait_ms": 10000});
    let (status, body) = stack
        .call("POST", "/v1/worker/claim", &stack.key, claim.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    let turn = &body["jobs"][0];
    assert_eq!(turn["kind"], "agent.turn");
    assert_eq!(turn["message"]["text"], "Where is my order?");
    assert_eq!(turn["message"]["conversation_id"], "7001");
    assert_eq!(turn["input"]["history"], json!([]));
    assert_eq!(turn["input"]["address"]["chat_id"], "7001");
    let inbound = wait_jobs(&stack.pool, kinds::WEBHOOK_INBOUND, 1, WAIT).await;
    assert_eq!(inbound[0].status, JobStatus::Succeeded);
    let result = inbound[0].result.clone().unwrap();
    assert_eq!(result["turn"]["mode"], "external");
    assert_eq!(result["turn"]["conversation_id"], "7001");
    assert_eq!(turn["input"]["inbound_job_id"], json!(inbound[0].id));

    let id = turn["id"].as_i64().unwrap();
    let complete = format!("/v1/worker/jobs/{id}/complete");
    // Hostile replies: empty, U+0000, longer than a platform takes.
    for (reply, code) in [
        (json!("  "), 422),
        (json!("a\u{0}b"), 422),
        (json!("x".repeat(4097)), 400),
    ] {
        let body = json!({"lease": turn["lease"], "reply": reply});
        let (status, answer) = stack.call("POST", &complete, &stack.key, body).await;
        assert_eq!(status, code, "{answer}");
    }
    let body = json!({"lease": turn["lease"], "result": {"tool_calls": 2}, "reply": "Your order ships today."});
    let (status, ended) = stack
        .call("POST", &complete, &stack.key, body.clone())
        .await;
    assert_eq!(status, 200, "{ended}");
    assert_eq!(ended["status"], "succeeded");
    let sent = stack.platform.wait_for(1, WAIT).await;
    assert!(sent[0].path.ends_with("/sendMessage"), "{}", sent[0].path);
    assert_eq!(sent[0].body["text"], "Your order ships today.");
    assert_eq!(sent[0].body["chat_id"], 7001);
    let delivery = wait_jobs(&stack.pool, kinds::REPLY_DELIVER, 1, WAIT).await;
    assert_eq!(ended["reply_job_id"], json!(delivery[0].id));
    // Completing again (a late or repeated call) changes nothing and sends nothing.
    let (status, answer) = stack.call("POST", &complete, &stack.key, body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (409, Some("lease_lost"))
    );

    // The next message's turn carries the conversation so far.
    stack.message(&source, 102, "And the invoice?").await;
    let (_, body) = stack
        .call("POST", "/v1/worker/claim", &stack.key, claim)
        .await;
    let turn = &body["jobs"][0];
    assert_eq!(
        turn["input"]["history"],
        json!([{"role": "user", "text": "Where is my order?"},
               {"role": "agent", "text": "Your order ships today."}])
    );
    // A reply belongs to an agent turn only.
    let (status, job) = stack
        .call(
            "POST",
            "/v1/jobs",
            &stack.key,
            json!({"kind": "doc.x", "input": {}}),
        )
        .await;
    assert_eq!(status, 202, "{job}");
    let claim = json!({"kinds": ["doc.x"], "worker_id": "py-1"});
    let (_, body) = stack
        .call("POST", "/v1/worker/claim", &stack.key, claim)
        .await;
    let doc = &body["jobs"][0];
    let path = format!("/v1/worker/jobs/{}/complete", doc["id"]);
    let body = json!({"lease": doc["lease"], "reply": "hi"});
    let (status, answer) = stack.call("POST", &path, &stack.key, body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("reply_not_allowed"))
    );
    stack.stop().await;
}

/// A burst of three messages to an external agent is one turn; a fourth message while that turn
/// is open waits for it, and its turn's history holds the burst and the reply. Another tenant's
/// conversation with the same chat id is a lane of its own.
#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_burst_is_one_turn_and_the_next_turn_waits_for_the_reply(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let stack = Agents::start(pool_options, options, "", "").await;
    let turns = json!({"quiet_ms": 400, "max_wait_ms": 3000});
    let (status, source) = stack
        .call(
            "POST",
            "/v1/sources",
            &stack.key,
            json!({"platform": "telegram", "secrets": {"secret_token": TG_SECRET},
                   "reply": {"bot_token": "123456:TEST-token"}, "agent": {"mode": "external"},
                   "turns": turns}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    assert_eq!(
        source["turns"],
        json!({"quiet_ms": 400, "max_wait_ms": 3000, "on_new_message": "wait", "typing": false})
    );
    let other = stack.gateway.tenant_with(json!({"name": "other"})).await;
    let (status, other_source) = stack
        .call(
            "POST",
            "/v1/sources",
            &other,
            json!({"platform": "telegram", "secrets": {"secret_token": TG_SECRET},
                   "agent": {"mode": "external"}, "turns": {"quiet_ms": 0, "max_wait_ms": 0}}),
        )
        .await;
    assert_eq!(status, 201, "{other_source}");

    for (update_id, text) in [
        (101, "hi"),
        (102, "I need help"),
        (103, "with my order 1234"),
    ] {
        stack.message(&source, update_id, text).await;
    }
    stack.message(&other_source, 900, "the other tenant").await;
    let claim = json!({"kinds": ["agent.turn"], "worker_id": "py-1", "max": 10, "wait_ms": 10000});
    let (status, body) = stack
        .call("POST", "/v1/worker/claim", &stack.key, claim.clone())
        .await;
    assert_eq!(status, 200, "{body}");
    let jobs = body["jobs"].as_array().unwrap();
    assert_eq!(jobs.len(), 1, "{body}");
    let turn = &jobs[0];
    let texts: Vec<&str> = turn["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["text"].as_str().unwrap())
        .collect();
    assert_eq!(texts, ["hi", "I need help", "with my order 1234"]);
    assert_eq!(turn["message"]["text"], "with my order 1234");
    assert_eq!(turn["input"]["history"], json!([]));

    // A fourth message while the turn is open starts nothing beside it.
    stack.message(&source, 104, "are you there?").await;
    let short = json!({"kinds": ["agent.turn"], "worker_id": "py-2", "max": 10, "wait_ms": 1500});
    let (_, body) = stack
        .call("POST", "/v1/worker/claim", &stack.key, short)
        .await;
    assert_eq!(
        body["jobs"],
        json!([]),
        "a second turn ran beside the first"
    );

    let complete = format!("/v1/worker/jobs/{}/complete", turn["id"]);
    let body = json!({"lease": turn["lease"], "reply": "Let me look at order 1234."});
    let (status, ended) = stack.call("POST", &complete, &stack.key, body).await;
    assert_eq!(status, 200, "{ended}");
    let (_, body) = stack
        .call("POST", "/v1/worker/claim", &stack.key, claim.clone())
        .await;
    let next = &body["jobs"][0];
    assert_eq!(next["message"]["text"], "are you there?", "{body}");
    assert_eq!(
        next["input"]["history"],
        json!([{"role": "user", "text": "hi"},
               {"role": "user", "text": "I need help"},
               {"role": "user", "text": "with my order 1234"},
               {"role": "agent", "text": "Let me look at order 1234."}])
    );

    // The other tenant's conversation was its own lane, with its own message only.
    let (_, body) = stack.call("POST", "/v1/worker/claim", &other, claim).await;
    let theirs = &body["jobs"][0];
    assert_eq!(theirs["message"]["text"], "the other tenant", "{body}");
    assert_eq!(theirs["input"]["history"], json!([]));
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_new_message_interrupts_the_running_turn_and_the_conversation_shows_it(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = Agents::start(pool_options, options, "", "").await;
    let turns =
        json!({"quiet_ms": 0, "max_wait_ms": 0, "on_new_message": "interrupt", "typing": true});
    let (status, source) = stack
        .call(
            "POST",
            "/v1/sources",
            &stack.key,
            json!({"platform": "telegram", "secrets": {"secret_token": TG_SECRET},
                   "reply": {"bot_token": "123456:TEST-token"}, "agent": {"mode": "external"},
                   "turns": turns}),
        )
        .await;
    assert_eq!(status, 201, "{source}");
    assert_eq!(source["turns"], turns);
    let path = format!("/v1/sources/{}", source["id"].as_str().unwrap());
    for (turns, code) in [
        (json!({"quiet_ms": 9000}), "invalid_turns"),
        (json!({"on_new_message": "shout"}), "invalid_request"),
    ] {
        let (status, body) = stack
            .call("PATCH", &path, &stack.key, json!({"turns": turns}))
            .await;
        assert!(status == 422 || status == 400, "{status} {body}");
        if code == "invalid_turns" {
            assert_eq!(body["error"]["code"], code, "{body}");
            assert!(
                body["error"]["message"]
                    .as_str()
                    .unwrap()
                    .contains("turns.max_wait_ms"),
                "{body}"
            );
        }
    }
    // The other tenant keeps the defaults: new messages wait, no typing for its own agent.
    let other = stack.gateway.tenant_with(json!({"name": "other"})).await;
    let (status, other_source) = stack
        .call(
            "POST",
            "/v1/sources",
            &other,
            json!({"platform": "telegram", "secrets": {"secret_token": TG_SECRET},
                   "reply": {"bot_token": "123456:TEST-token"}, "agent": {"mode": "external"}}),
        )
        .await;
    assert_eq!(status, 201, "{other_source}");
    assert_eq!(
        other_source["turns"],
        json!({"quiet_ms": 1500, "max_wait_ms": 8000, "on_new_message": "wait", "typing": false})
    );

    stack.message(&source, 101, "what is my balance").await;
    stack.message(&other_source, 900, "the other tenant").await;
    let claim = json!({"kinds": ["agent.turn"], "worker_id": "py-1", "max": 10, "wait_ms": 10000});
    let (_, body) = stack
        .call("POST", "/v1/worker/claim", &stack.key, claim.clone())
        .await;
    let first = body["jobs"][0].clone();
    assert_eq!(first["message"]["text"], "what is my balance", "{body}");
    let first_id = first["id"].as_i64().unwrap();

    // While the turn runs, the worker shows "typing…" in the chat.
    let deadline = Instant::now() + WAIT;
    while stack.platform.typing().is_empty() {
        assert!(Instant::now() < deadline, "no typing indicator was sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let typing = stack.platform.typing();
    assert!(typing[0]
        .path
        .ends_with("/bot123456:TEST-token/sendChatAction"));
    assert_eq!(typing[0].body, json!({"chat_id": 7001, "action": "typing"}));

    // The user adds to the question: the running turn's worker is asked to stop.
    stack.message(&source, 102, "on my savings account").await;
    let heartbeat = format!("/v1/worker/jobs/{first_id}/heartbeat");
    let deadline = Instant::now() + WAIT;
    loop {
        let (status, beat) = stack
            .call(
                "POST",
                &heartbeat,
                &stack.key,
                json!({"lease": first["lease"]}),
            )
            .await;
        assert_eq!(status, 200, "{beat}");
        if beat["cancel_requested"] == true {
            break;
        }
        assert!(Instant::now() < deadline, "the turn was not interrupted");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let fail = format!("/v1/worker/jobs/{first_id}/fail");
    let (status, ended) = stack
        .call(
            "POST",
            &fail,
            &stack.key,
            json!({"lease": first["lease"], "error": "stopped: a newer message"}),
        )
        .await;
    assert_eq!(
        (status, ended["status"].as_str()),
        (200, Some("canceled")),
        "{ended}"
    );

    // The next turn answers both messages; the interrupted turn left no reply in the history.
    let (_, body) = stack
        .call("POST", "/v1/worker/claim", &stack.key, claim.clone())
        .await;
    let next = &body["jobs"][0];
    let texts: Vec<&str> = next["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|message| message["text"].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        ["what is my balance", "on my savings account"],
        "{body}"
    );
    assert_eq!(next["input"]["history"], json!([]));
    let complete = format!("/v1/worker/jobs/{}/complete", next["id"]);
    let (status, ended) = stack
        .call(
            "POST",
            &complete,
            &stack.key,
            json!({"lease": next["lease"], "reply": "Your savings balance is 10."}),
        )
        .await;
    assert_eq!(status, 200, "{ended}");
    let sent = stack.platform.wait_for(1, WAIT).await;
    assert_eq!(sent[0].body["text"], "Your savings balance is 10.");
    assert_eq!(sent.len(), 1, "the interrupted turn sent nothing");

    // The conversation, as the API shows it.
    let source_id = source["id"].as_str().unwrap();
    let (status, page) = stack
        .call(
            "GET",
            &format!("/v1/conversations?source_id={source_id}"),
            &stack.key,
            Value::Null,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    let items = page["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{page}");
    assert_eq!(items[0]["conversation_id"], "7001");
    assert_eq!(items[0]["state"], "idle");
    assert_eq!(items[0]["turns"], 2);
    let transcript_path = format!("/v1/conversations/{source_id}/7001");
    let (status, transcript) = stack
        .call("GET", &transcript_path, &stack.key, Value::Null)
        .await;
    assert_eq!(status, 200, "{transcript}");
    let messages: Vec<(i64, &str)> = transcript["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| (m["position"].as_i64().unwrap(), m["text"].as_str().unwrap()))
        .collect();
    assert_eq!(
        messages,
        [(1, "what is my balance"), (2, "on my savings account")]
    );
    let turns: Vec<(&str, Option<&str>)> = transcript["turns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["status"].as_str().unwrap(), t["reply"].as_str()))
        .collect();
    assert_eq!(
        turns,
        [
            ("interrupted", None),
            ("answered", Some("Your savings balance is 10."))
        ]
    );
    assert_eq!(transcript["turns"][0]["job_id"], json!(first_id));
    assert_eq!(transcript["turns"][0]["job_status"], "canceled");
    // The other tenant sees neither the conversation nor its list.
    let (status, body) = stack
        .call("GET", &transcript_path, &other, Value::Null)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("conversation_not_found"))
    );
    let (_, theirs) = stack
        .call("GET", "/v1/conversations", &other, Value::Null)
        .await;
    let ids: Vec<&str> = theirs["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["source_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [other_source["id"].as_str().unwrap()]);
    // Its turn was left alone: queued, waiting for its own workers.
    let (status, body) = stack.call("POST", "/v1/worker/claim", &other, claim).await;
    assert_eq!(status, 200);
    assert_eq!(
        body["jobs"][0]["message"]["text"], "the other tenant",
        "{body}"
    );

    // The turns' events, as SSE streams them.
    let events: Vec<(String, String)> = sqlx::query_as(
        "SELECT type, data ->> 'status' FROM events
         WHERE type LIKE 'turn.%' AND data ->> 'source_id' = $1 ORDER BY seq",
    )
    .bind(source_id)
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    let events: Vec<(&str, &str)> = events
        .iter()
        .map(|(t, s)| (t.as_str(), s.as_str()))
        .collect();
    assert_eq!(
        events,
        [
            ("turn.started", "open"),
            ("turn.ended", "interrupted"),
            ("turn.started", "open"),
            ("turn.ended", "answered"),
        ]
    );
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_source_whose_agent_is_none_heals_and_answers_nothing(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = Agents::start(pool_options, options, "", "").await;
    let source = stack.telegram_source(json!({"mode": "none"})).await;
    stack.message(&source, 201, "Hello?").await;
    let inbound = wait_jobs(&stack.pool, kinds::WEBHOOK_INBOUND, 1, WAIT).await;
    let result = inbound[0].result.clone().unwrap();
    assert_eq!(result["message"]["text"], "Hello?");
    assert_eq!(result["delivery"]["skipped"], "the source's agent is none");
    let others: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind <> 'webhook.inbound'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(others, 0);
    stack.stop().await;
}

/// A scripted answer: status, headers, body.
type Answer = (u16, Vec<(&'static str, String)>, String);

/// One request the agent received.
#[derive(Debug, Clone)]
struct Forwarded {
    headers: HeaderMap,
    body: Vec<u8>,
    at: Instant,
}

/// An agent on loopback: records what it is sent and how many requests it holds at once, waits
/// `delay` before answering, and answers what the test scripted (else `{"reply": "…"}`).
#[derive(Clone)]
struct Agent {
    url: String,
    received: Arc<Mutex<Vec<Forwarded>>>,
    script: Arc<Mutex<Vec<Answer>>>,
    delay: Arc<Mutex<Duration>>,
    in_flight: Arc<AtomicUsize>,
    peak: Arc<AtomicUsize>,
}

impl Agent {
    async fn start() -> Self {
        let acceptor = TcpListener::bind("127.0.0.1:0")
            .into_acceptor()
            .await
            .unwrap();
        let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
        let agent = Agent {
            url: format!("http://{addr}/agent"),
            received: Arc::default(),
            script: Arc::default(),
            delay: Arc::default(),
            in_flight: Arc::default(),
            peak: Arc::default(),
        };
        let state = agent.clone();
        let endpoint = poem::endpoint::make(move |request: Request| {
            let state = state.clone();
            async move {
                let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                state.peak.fetch_max(now, Ordering::SeqCst);
                let headers = request.headers().clone();
                let body = request.into_body().into_vec().await.unwrap_or_default();
                state.received.lock().unwrap().push(Forwarded {
                    headers,
                    body,
                    at: Instant::now(),
                });
                let delay = *state.delay.lock().unwrap();
                tokio::time::sleep(delay).await;
                let scripted = {
                    let mut script = state.script.lock().unwrap();
                    (!script.is_empty()).then(|| script.remove(0))
                };
                let (status, headers, body) = scripted.unwrap_or_else(|| {
                    (
                        200,
                        Vec::new(),
                        json!({"reply": "Forwarded hello"}).to_string(),
                    )
                });
                let mut response =
                    Response::builder().status(StatusCode::from_u16(status).unwrap());
                for (name, value) in headers {
                    response = response.header(name, value);
                }
                state.in_flight.fetch_sub(1, Ordering::SeqCst);
                response.body(Body::from_string(body))
            }
        });
        tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
        agent
    }

    fn answer(&self, status: u16, headers: Vec<(&'static str, String)>, body: &str) {
        self.script
            .lock()
            .unwrap()
            .push((status, headers, body.to_owned()));
    }

    async fn wait_for(&self, n: usize) -> Vec<Forwarded> {
        let deadline = Instant::now() + WAIT;
        loop {
            let received = self.received.lock().unwrap().clone();
            if received.len() >= n {
                return received;
            }
            assert!(
                Instant::now() < deadline,
                "the agent got {} of {n} requests",
                received.len()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Whether `request` carries a valid Standard Webhooks signature by `secret`.
fn signed_by(request: &Forwarded, secret: &str) -> bool {
    let keys = standard::secret_keys(&json!({ "secret": secret })).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    standard::accept_with_keys(&keys, &request.headers, &request.body, now).is_ok()
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_forwarded_agent_gets_signed_messages_and_its_reply_is_sent(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = Agents::start(pool_options, options, "127.0.0.0/8", "127.0.0.0/8").await;
    let agent = Agent::start().await;
    let source = stack
        .telegram_source(json!({"mode": "forward", "url": agent.url}))
        .await;
    let secret = source["agent"]["secret"].as_str().unwrap().to_owned();
    assert!(secret.starts_with("whsec_"), "{source}");
    assert_eq!(source["agent"]["max_in_flight"], 4);
    assert_eq!(source["agent"]["timeout_ms"], 10000);
    let path = format!("/v1/sources/{}", source["id"].as_str().unwrap());
    let (_, shown) = stack.call("GET", &path, &stack.key, Value::Null).await;
    assert_eq!(shown["agent"]["url"], json!(agent.url));
    assert!(
        shown["agent"].get("secret").is_none(),
        "shown once: {shown}"
    );

    stack.message(&source, 301, "Is the shop open?").await;
    let received = agent.wait_for(1).await;
    assert!(signed_by(&received[0], &secret));
    assert!(!signed_by(
        &received[0],
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    ));
    let body: Value = serde_json::from_slice(&received[0].body).unwrap();
    assert_eq!(body["type"], "message.received");
    assert_eq!(body["data"]["source_id"], source["id"]);
    assert_eq!(body["data"]["message"]["text"], "Is the shop open?");
    assert_eq!(body["data"]["history"], json!([]));
    let sent = stack.platform.wait_for(1, WAIT).await;
    assert_eq!(sent[0].body["text"], "Forwarded hello");
    assert_eq!(sent[0].body["chat_id"], 7001);
    let forwards = wait_jobs(&stack.pool, kinds::AGENT_FORWARD, 1, WAIT).await;
    assert_eq!(forwards[0].status, JobStatus::Succeeded);
    assert_eq!(
        received[0].headers["webhook-id"],
        format!("msg_sentinel_{}", forwards[0].id)
    );

    // Rotation: the new secret is shown once, and both sign through the overlap.
    let (status, rotated) = stack
        .call(
            "PATCH",
            &path,
            &stack.key,
            json!({"rotate_agent_secret": true, "secrets_overlap_secs": 600}),
        )
        .await;
    assert_eq!(status, 200, "{rotated}");
    let new_secret = rotated["agent"]["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_secret, secret);
    assert!(rotated["agent"]["previous_secret_until"].is_string());
    stack.message(&source, 302, "Thanks!").await;
    let received = agent.wait_for(2).await;
    assert!(signed_by(&received[1], &new_secret));
    assert!(
        signed_by(&received[1], &secret),
        "the old key signs during the overlap"
    );
    let body: Value = serde_json::from_slice(&received[1].body).unwrap();
    assert_eq!(
        body["data"]["history"],
        json!([{"role": "user", "text": "Is the shop open?"},
               {"role": "agent", "text": "Forwarded hello"}])
    );
    // Rotating with no overlap ends the old key at once.
    let body = json!({"rotate_agent_secret": true, "secrets_overlap_secs": 0});
    let (_, rotated) = stack.call("PATCH", &path, &stack.key, body).await;
    let newest = rotated["agent"]["secret"].as_str().unwrap().to_owned();
    stack.message(&source, 303, "Bye").await;
    let received = agent.wait_for(3).await;
    assert!(signed_by(&received[2], &newest));
    assert!(!signed_by(&received[2], &new_secret));
    // Rotating a source that does not forward is refused.
    let plain = stack.telegram_source(json!({"mode": "external"})).await;
    let plain_path = format!("/v1/sources/{}", plain["id"].as_str().unwrap());
    let body = json!({"rotate_agent_secret": true});
    let (status, answer) = stack.call("PATCH", &plain_path, &stack.key, body).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (422, Some("invalid_agent"))
    );
    // Another tenant cannot see or change the source.
    let other = stack.gateway.tenant_with(json!({"name": "other"})).await;
    let (status, _) = stack.call("GET", &path, &other, Value::Null).await;
    assert_eq!(status, 404);
    let body = json!({"rotate_agent_secret": true});
    let (status, _) = stack.call("PATCH", &path, &other, body).await;
    assert_eq!(status, 404);
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn forwards_hold_max_in_flight_against_a_slow_agent(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = Agents::start(pool_options, options, "127.0.0.0/8", "127.0.0.0/8").await;
    let agent = Agent::start().await;
    *agent.delay.lock().unwrap() = Duration::from_millis(400);
    let source = stack
        .telegram_source(json!({"mode": "forward", "url": agent.url, "max_in_flight": 2}))
        .await;
    // A second worker claims forwards too: the cap holds across workers.
    let second = TestWorker::spawn(
        sentinel_worker::Config {
            forward_allow: "127.0.0.0/8".parse().unwrap(),
            ..worker_config(&stack.platform)
        },
        (*stack.pool.connect_options()).clone(),
        None,
    );
    // Eight conversations: one turn runs per conversation, so eight can be forwarded at once.
    for n in 0..8 {
        stack
            .message_in(&source, 7000 + n, 400 + n, &format!("message {n}"))
            .await;
    }
    let forwards = wait_jobs(&stack.pool, kinds::AGENT_FORWARD, 8, WAIT).await;
    assert!(forwards
        .iter()
        .all(|job| job.status == JobStatus::Succeeded));
    assert_eq!(agent.received.lock().unwrap().len(), 8);
    assert_eq!(
        agent.peak.load(Ordering::SeqCst),
        2,
        "at most max_in_flight at once, and the cap is used"
    );
    second.stop().await;
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_forward_honours_retry_after_retries_5xx_and_ends_dead_on_4xx(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = Agents::start(pool_options, options, "127.0.0.0/8", "127.0.0.0/8").await;
    let agent = Agent::start().await;
    let source = stack
        .telegram_source(json!({"mode": "forward", "url": agent.url, "max_in_flight": 1}))
        .await;
    // 429 with Retry-After: 2 s later, without spending an attempt; then a 500, retried; then the
    // answer, with no body: nothing is sent.
    agent.answer(429, vec![("retry-after", "2".into())], "busy");
    agent.answer(500, Vec::new(), "oops");
    agent.answer(204, Vec::new(), "");
    stack.message(&source, 501, "first").await;
    let received = agent.wait_for(3).await;
    let waited = received[1].at - received[0].at;
    assert!(waited >= Duration::from_millis(1900), "{waited:?}");
    let forward = wait_jobs(&stack.pool, kinds::AGENT_FORWARD, 1, WAIT).await;
    assert_eq!(forward[0].status, JobStatus::Succeeded);
    assert_eq!(forward[0].result.clone().unwrap()["reply"], Value::Null);
    let outcomes: Vec<String> = sqlx::query_scalar(
        "SELECT outcome FROM job_attempts WHERE job_id = $1 ORDER BY finished_at",
    )
    .bind(forward[0].id)
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert_eq!(outcomes, ["snoozed", "retry", "succeeded"]);
    let ids: Vec<&str> = received
        .iter()
        .map(|r| r.headers["webhook-id"].to_str().unwrap())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "one webhook-id per job: {ids:?}"
    );
    // A 4xx ends the job dead with the answer kept; a reply that is not text too.
    agent.answer(422, Vec::new(), r#"{"error": "unknown customer"}"#);
    stack.message(&source, 502, "second").await;
    agent.answer(200, Vec::new(), r#"{"reply": {"rich": true}}"#);
    // Another chat: in the same one, "third" would join "second"'s turn.
    stack.message_in(&source, 7002, 503, "third").await;
    let forwards = wait_jobs(&stack.pool, kinds::AGENT_FORWARD, 3, WAIT).await;
    let dead = &forwards[1];
    assert_eq!(dead.status, JobStatus::Dead);
    let error = dead.last_error.clone().unwrap();
    assert_eq!(error["code"], "agent_refused");
    assert_eq!(error["status"], 422);
    assert!(error["body"].as_str().unwrap().contains("unknown customer"));
    assert_eq!(dead.attempt, 1);
    assert_eq!(forwards[2].status, JobStatus::Dead);
    assert_eq!(
        forwards[2].last_error.clone().unwrap()["code"],
        "invalid_reply"
    );
    assert!(stack.platform.requests().is_empty(), "nothing was sent");
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn forwards_to_private_addresses_are_refused_unless_allowed(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    // The gateway's list allows loopback, the worker's does not: the worker refuses on its own.
    let stack = Agents::start(pool_options, options, "127.0.0.0/8", "").await;
    let agent = Agent::start().await;
    let source = stack
        .telegram_source(json!({"mode": "forward", "url": agent.url}))
        .await;
    stack.message(&source, 601, "hello").await;
    let forward = wait_jobs(&stack.pool, kinds::AGENT_FORWARD, 1, WAIT).await;
    assert_eq!(forward[0].status, JobStatus::Dead);
    let error = forward[0].last_error.clone().unwrap();
    assert_eq!(error["code"], "forward_refused", "{error}");
    // A name that resolves to loopback is refused by the resolver, not only a literal address.
    let by_name = agent.url.replace("127.0.0.1", "localhost");
    let path = format!("/v1/sources/{}", source["id"].as_str().unwrap());
    let (status, body) = stack
        .call(
            "PATCH",
            &path,
            &stack.key,
            json!({"agent": {"mode": "forward", "url": by_name}}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    stack.message(&source, 602, "hello again").await;
    let forwards = wait_jobs(&stack.pool, kinds::AGENT_FORWARD, 2, WAIT).await;
    assert_eq!(forwards[1].status, JobStatus::Dead);
    let error = forwards[1].last_error.clone().unwrap();
    assert_eq!(error["code"], "forward_refused", "{error}");
    assert!(agent.received.lock().unwrap().is_empty());

    // The gateway refuses what its list does not allow, and every malformed setting.
    let other = TestGateway::spawn((*stack.pool.connect_options()).clone()).await;
    let key = other.tenant().await;
    for (agent, code) in [
        (
            json!({"mode": "forward", "url": "http://127.0.0.1:9/x"}),
            422,
        ),
        (
            json!({"mode": "forward", "url": "http://169.254.169.254/latest/meta-data"}),
            422,
        ),
        (json!({"mode": "forward", "url": "http://[::1]/x"}), 422),
        (json!({"mode": "forward", "url": "http://localhost/x"}), 422),
        (json!({"mode": "forward", "url": "file:///etc/passwd"}), 422),
        (
            json!({"mode": "forward", "url": "https://user:pw@agent.example.com/x"}),
            422,
        ),
        (
            json!({"mode": "forward", "url": "https://agent.example.com/\u{0}"}),
            422,
        ),
        (json!({"mode": "forward"}), 422),
        (
            json!({"mode": "forward", "url": format!("https://a.example.com/{}", "x".repeat(3000))}),
            400,
        ),
        (
            json!({"mode": "forward", "url": "https://agent.example.com/", "max_in_flight": 0}),
            400,
        ),
        (
            json!({"mode": "forward", "url": "https://agent.example.com/", "timeout_ms": 10}),
            400,
        ),
        (
            json!({"mode": "external", "url": "https://agent.example.com/"}),
            422,
        ),
        (json!({"mode": "robot"}), 400),
    ] {
        let response = other
            .client
            .post(other.url("/v1/sources"))
            .bearer_auth(&key)
            .json(&json!({"platform": "telegram", "secrets": {"secret_token": TG_SECRET}, "agent": agent}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status().as_u16(), code, "{agent}");
    }
    other.stop().await;
    stack.stop().await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn the_send_api_reaches_telegram_whatsapp_and_slack(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::shared().await;
    let stack = Agents::start(pool_options, options, "", "").await;
    let mut ids = Vec::new();
    for body in [
        json!({"platform": "telegram", "secrets": {"secret_token": TG_SECRET},
               "reply": {"bot_token": "123456:TEST-token"}}),
        json!({"platform": "whatsapp", "secrets": {"app_secret": "wa-app-secret-0123456789", "verify_token": "verify-me"},
               "reply": {"access_token": "EAAG-test", "phone_number_id": "106540352242922"}}),
        json!({"platform": "slack", "secrets": {"signing_secret": "slack-signing-0123456789"},
               "reply": {"bot_token": "xoxb-test"}}),
    ] {
        let (status, source) = stack.call("POST", "/v1/sources", &stack.key, body).await;
        assert_eq!(status, 201, "{source}");
        ids.push(source["id"].as_str().unwrap().to_owned());
    }
    let sends = [
        json!({"conversation_id": "7001", "text": "Your parcel left.", "reply_to": "52"}),
        json!({"conversation_id": "15551234567", "text": "Your parcel left.", "reply_to": "wamid.HBgL"}),
        json!({"conversation_id": "C024BE91L", "text": "Your parcel left.", "reply_to": "1700000000.000100"}),
    ];
    for (id, send) in ids.iter().zip(&sends) {
        let path = format!("/v1/sources/{id}/messages");
        let (status, accepted) = stack.call("POST", &path, &stack.key, send.clone()).await;
        assert_eq!(status, 202, "{accepted}");
        assert_eq!(accepted["status"], "queued");
    }
    let sent = stack.platform.wait_for(3, WAIT).await;
    let by_path = |suffix: &str| {
        sent.iter()
            .find(|request| request.path.ends_with(suffix))
            .unwrap_or_else(|| panic!("nothing sent to {suffix}: {sent:?}"))
            .clone()
    };
    let telegram = by_path("/bot123456:TEST-token/sendMessage");
    assert_eq!(telegram.body["chat_id"], 7001);
    assert_eq!(telegram.body["reply_parameters"]["message_id"], 52);
    let whatsapp = by_path("/106540352242922/messages");
    assert_eq!(whatsapp.body["to"], "15551234567");
    assert_eq!(whatsapp.body["text"]["body"], "Your parcel left.");
    assert_eq!(whatsapp.body["context"]["message_id"], "wamid.HBgL");
    assert_eq!(whatsapp.authorization.as_deref(), Some("Bearer EAAG-test"));
    let slack = by_path("/chat.postMessage");
    assert_eq!(slack.body["channel"], "C024BE91L");
    assert_eq!(slack.body["thread_ts"], "1700000000.000100");
    let deliveries = wait_jobs(&stack.pool, kinds::REPLY_DELIVER, 3, WAIT).await;
    assert!(deliveries
        .iter()
        .all(|job| job.status == JobStatus::Succeeded));

    // An Idempotency-Key makes a repeat return the first job.
    let path = format!("/v1/sources/{}/messages", ids[0]);
    let mut first = None;
    for _ in 0..2 {
        let response = stack
            .gateway
            .client
            .post(stack.gateway.url(&path))
            .bearer_auth(&stack.key)
            .header("Idempotency-Key", "notice-17")
            .json(&sends[0])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        let id = response.json::<Value>().await.unwrap()["id"].clone();
        assert_eq!(*first.get_or_insert(id.clone()), id);
    }
    // Hostile and wrong requests cost only themselves.
    let other = stack.gateway.tenant_with(json!({"name": "other"})).await;
    let (status, _) = stack.call("POST", &path, &other, sends[0].clone()).await;
    assert_eq!(status, 404, "another tenant's source");
    let (_, bare) = stack
        .call(
            "POST",
            "/v1/sources",
            &stack.key,
            json!({"platform": "telegram", "secrets": {"secret_token": TG_SECRET}}),
        )
        .await;
    let (_, standard) = stack
        .call("POST", "/v1/sources", &stack.key,
              json!({"platform": "standard", "secrets": {"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}))
        .await;
    let bare = format!("/v1/sources/{}/messages", bare["id"].as_str().unwrap());
    let standard = format!("/v1/sources/{}/messages", standard["id"].as_str().unwrap());
    for (path, body, status, code) in [
        (&bare, sends[0].clone(), 409, Some("no_reply_credentials")),
        (&standard, sends[0].clone(), 422, Some("no_send_api")),
        (
            &path,
            json!({"conversation_id": "7001", "text": "a\u{0}b"}),
            422,
            Some("invalid_message"),
        ),
        (
            &path,
            json!({"conversation_id": "70\u{0}01", "text": "hi"}),
            422,
            Some("invalid_message"),
        ),
        (
            &path,
            json!({"conversation_id": "7001", "text": "   "}),
            422,
            Some("invalid_message"),
        ),
        (
            &path,
            json!({"conversation_id": "7001", "text": "x".repeat(5000)}),
            400,
            None,
        ),
        (
            &path,
            json!({"conversation_id": "", "text": "hi"}),
            400,
            None,
        ),
        (
            &path,
            json!({"conversation_id": ["7001"], "text": "hi"}),
            400,
            None,
        ),
        (
            &format!("/v1/sources/{}/messages", Uuid::new_v4()),
            sends[0].clone(),
            404,
            Some("source_not_found"),
        ),
    ] {
        let (got, answer) = stack.call("POST", path, &stack.key, body.clone()).await;
        assert_eq!(got, status, "{body}: {answer}");
        if let Some(code) = code {
            assert_eq!(answer["error"]["code"], code, "{body}");
        }
    }
    let deliveries: i64 =
        sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'reply.deliver'")
            .fetch_one(&stack.pool)
            .await
            .unwrap();
    assert_eq!(deliveries, 4, "three sends and one idempotent pair");
    stack.stop().await;
}
