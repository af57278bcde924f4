//! More than one machine: two gateways and two workers against one Postgres. An event
//! acknowledged by gateway 1 streams from gateway 2; a platform retry sent to the other gateway is
//! still one job; and no job is processed twice. Conversations keep one turn at a time across
//! them.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures::StreamExt;
use sentinel_e2e::{worker_config, FakePlatform, TestGateway, TestWorker};
use serde_json::{json, Value};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

const UPDATES: i64 = 120;

/// A photo without a caption: a message the workers heal without the model (nothing to answer).
fn update(id: i64) -> String {
    json!({"update_id": id, "message": {"message_id": id, "date": 1735689600,
        "from": {"id": 7001, "is_bot": false, "first_name": "Ada"},
        "chat": {"id": 7001, "type": "private"},
        "photo": [{"file_id": format!("photo-{id}"), "file_unique_id": format!("u{id}"), "width": 90, "height": 90}]}})
    .to_string()
}

async fn count(pool: &PgPool, sql: &str) -> i64 {
    sqlx::query_scalar(sql).fetch_one(pool).await.unwrap()
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn two_gateways_and_two_workers_share_one_postgres(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::alone().await;
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let platform = FakePlatform::start().await;
    let gateways = [
        TestGateway::spawn(options.clone()).await,
        TestGateway::spawn(options.clone()).await,
    ];
    let workers: Vec<TestWorker> = (0..2)
        .map(|_| TestWorker::spawn(worker_config(&platform), options.clone(), None))
        .collect();
    let key = gateways[0].tenant().await;
    let source = gateways[0]
        .source(
            &key,
            json!({"platform": "telegram", "secrets": {"secret_token": "tg-secret-0123456789"}}),
        )
        .await;

    // Gateway 2 streams the tenant's events while webhooks arrive through both gateways.
    let stream = gateways[1]
        .client
        .get(gateways[1].url("/v1/events"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let secret = [(
        "x-telegram-bot-api-secret-token",
        "tg-secret-0123456789".to_string(),
    )];
    for id in 1..=UPDATES {
        let (first, retry) = if id % 2 == 0 { (0, 1) } else { (1, 0) };
        gateways[first].hook(source, &secret, &update(id)).await;
        // The platform's retry lands on the other gateway: acknowledged, never a second job.
        gateways[retry].hook(source, &secret, &update(id)).await;
    }

    // Every job succeeds, and gateway 2's stream shows it, including those gateway 1 acknowledged.
    let succeeded = read_until_succeeded(stream, UPDATES as usize).await;
    let jobs: Vec<i64> = sqlx::query_scalar("SELECT id FROM jobs WHERE kind = 'webhook.inbound'")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(
        jobs.len() as i64,
        UPDATES,
        "one job per update, retries included"
    );
    for id in &jobs {
        assert_eq!(
            succeeded.get(id),
            Some(&1),
            "job {id}: one job.succeeded on gateway 2's stream"
        );
    }

    // No job processed twice: one attempt each, one job.succeeded event each.
    assert_eq!(
        count(&pool, "SELECT count(*) FROM job_attempts").await,
        UPDATES
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM (SELECT job_id FROM job_attempts GROUP BY job_id HAVING count(*) > 1) t"
        )
        .await,
        0
    );
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM events WHERE type = 'job.succeeded'"
        )
        .await,
        UPDATES
    );
    let by_worker: Vec<(String, i64)> = sqlx::query_as(
        "SELECT worker_id, count(*) FROM job_attempts GROUP BY worker_id ORDER BY worker_id",
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    println!("attempts by worker: {by_worker:?}");

    for worker in workers {
        worker.stop().await;
    }
    for gateway in gateways {
        gateway.stop().await;
    }
}

/// Reads an SSE stream until `n` distinct jobs have a `job.succeeded` event; returns the count of
/// such events per job id.
async fn read_until_succeeded(response: reqwest::Response, n: usize) -> HashMap<i64, usize> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut succeeded: HashMap<i64, usize> = HashMap::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while succeeded.len() < n {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .unwrap_or_else(|_| panic!("{} of {n} jobs succeeded on the stream", succeeded.len()))
            .unwrap()
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            if !frame.lines().any(|line| line == "event: job.succeeded") {
                continue;
            }
            let data: Value = frame
                .lines()
                .find_map(|line| line.strip_prefix("data: "))
                .map(|data| serde_json::from_str(data).unwrap())
                .unwrap();
            *succeeded
                .entry(data["job_id"].as_i64().unwrap())
                .or_default() += 1;
        }
    }
    succeeded
}

/// A turn an agent answered: its tenant, chat, messages' texts and the history it was given.
type Answered = (usize, String, Vec<String>, Value);

/// A text message `text` in chat `chat`, update `id`.
fn text_update(id: i64, chat: i64, text: &str) -> String {
    json!({"update_id": id, "message": {"message_id": id, "date": 1735689600,
        "from": {"id": chat, "is_bot": false, "first_name": "Ada"},
        "chat": {"id": chat, "type": "private"}, "text": text}})
    .to_string()
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn conversations_hold_one_turn_at_a_time_across_two_gateways_and_two_workers(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::alone().await;
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let platform = FakePlatform::start().await;
    let gateways = [
        TestGateway::spawn(options.clone()).await,
        TestGateway::spawn(options.clone()).await,
    ];
    let workers: Vec<TestWorker> = (0..2)
        .map(|_| TestWorker::spawn(worker_config(&platform), options.clone(), None))
        .collect();
    let secret = [(
        "x-telegram-bot-api-secret-token",
        "tg-secret-0123456789".to_string(),
    )];
    // Two tenants, each with its own agent behind the worker API, turns at once (no quiet time).
    let mut tenants = Vec::new();
    for name in ["a", "b"] {
        let key = gateways[0].tenant_with(json!({"name": name})).await;
        let source = gateways[0]
            .source(
                &key,
                json!({"platform": "telegram", "secrets": {"secret_token": "tg-secret-0123456789"},
                       "reply": {"bot_token": "1:T"}, "agent": {"mode": "external"},
                       "turns": {"quiet_ms": 0, "max_wait_ms": 0}}),
            )
            .await;
        tenants.push((key, source));
    }
    // Three chats of A and one of B, three messages each, through both gateways in turn.
    let mut id = 0;
    for round in 1..=3 {
        for (tenant, chat) in [(0, 1), (0, 2), (0, 3), (1, 1)] {
            id += 1;
            let (_, source) = &tenants[tenant];
            let text = format!("chat {chat} message {round}");
            gateways[id as usize % 2]
                .hook(*source, &secret, &text_update(id, chat, &text))
                .await;
        }
    }

    // Two agents per tenant claim through different gateways and answer slowly; each checks that
    // no other turn of its conversation is open while it holds one.
    let open: std::sync::Arc<std::sync::Mutex<HashMap<(usize, String), usize>>> =
        Default::default();
    let answered: std::sync::Arc<std::sync::Mutex<Vec<Answered>>> = Default::default();
    let deadline = Instant::now() + Duration::from_secs(60);
    let agents: Vec<_> = (0..4)
        .map(|n| {
            let tenant = n % 2;
            let (key, _) = tenants[tenant].clone();
            let gateway = &gateways[n / 2];
            let (client, claim_url, base) = (
                gateway.client.clone(),
                gateway.url("/v1/worker/claim"),
                gateway.url(""),
            );
            let (open, answered) = (open.clone(), answered.clone());
            let expected = if tenant == 0 { 9 } else { 3 };
            tokio::spawn(async move {
                loop {
                    let total = answered
                        .lock()
                        .unwrap()
                        .iter()
                        .filter(|(t, ..)| *t == tenant)
                        .map(|(_, _, texts, _)| texts.len())
                        .sum::<usize>();
                    if total >= expected {
                        return;
                    }
                    assert!(
                        Instant::now() < deadline,
                        "tenant {tenant}: {total} of {expected} answered"
                    );
                    let body: Value = client
                        .post(&claim_url)
                        .bearer_auth(&key)
                        .json(
                            &json!({"kinds": ["agent.turn"], "worker_id": format!("agent-{n}"),
                                      "max": 10, "wait_ms": 500}),
                        )
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    for job in body["jobs"].as_array().unwrap() {
                        let chat = job["message"]["conversation_id"]
                            .as_str()
                            .unwrap()
                            .to_owned();
                        {
                            let mut open = open.lock().unwrap();
                            let holders = open.entry((tenant, chat.clone())).or_default();
                            *holders += 1;
                            assert_eq!(*holders, 1, "two turns of chat {chat} at once");
                        }
                        tokio::time::sleep(Duration::from_millis(150)).await;
                        let texts: Vec<String> = job["messages"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|m| m["text"].as_str().unwrap().to_owned())
                            .collect();
                        let reply = format!("answer to {}", texts.join(" + "));
                        // Released before the completion: once it commits, the next turn may
                        // start and be claimed.
                        *open
                            .lock()
                            .unwrap()
                            .get_mut(&(tenant, chat.clone()))
                            .unwrap() -= 1;
                        let response = client
                            .post(format!("{base}/v1/worker/jobs/{}/complete", job["id"]))
                            .bearer_auth(&key)
                            .json(&json!({"lease": job["lease"], "reply": reply}))
                            .send()
                            .await
                            .unwrap();
                        assert_eq!(response.status(), 200);
                        answered.lock().unwrap().push((
                            tenant,
                            chat,
                            texts,
                            job["input"]["history"].clone(),
                        ));
                    }
                }
            })
        })
        .collect();
    for agent in agents {
        agent.await.unwrap();
    }

    // Every message was answered once, in the user's order, each turn seeing the replies before.
    let answered = answered.lock().unwrap().clone();
    for (tenant, chat) in [(0, "1"), (0, "2"), (0, "3"), (1, "1")] {
        let turns: Vec<&Answered> = answered
            .iter()
            .filter(|(t, c, ..)| *t == tenant && c == chat)
            .collect();
        let texts: Vec<String> = turns.iter().flat_map(|(_, _, t, _)| t.clone()).collect();
        let expected: Vec<String> = (1..=3)
            .map(|r| format!("chat {chat} message {r}"))
            .collect();
        assert_eq!(texts, expected, "tenant {tenant} chat {chat}: {turns:?}");
        for (n, (_, _, _, history)) in turns.iter().enumerate() {
            let replies = history
                .as_array()
                .unwrap()
                .iter()
                .filter(|entry| entry["role"] == "agent")
                .count();
            assert_eq!(
                replies, n,
                "turn {n} of chat {chat} sees every reply before it"
            );
        }
    }
    // Each turn's reply reached the platform once.
    let turns = answered.len();
    let sent = platform.wait_for(turns, Duration::from_secs(30)).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(platform.requests().len(), turns, "{sent:?}");
    assert_eq!(
        count(
            &pool,
            "SELECT count(*) FROM conversation_turns WHERE status = 'answered'"
        )
        .await,
        turns as i64
    );

    for worker in workers {
        worker.stop().await;
    }
    for gateway in gateways {
        gateway.stop().await;
    }
}
