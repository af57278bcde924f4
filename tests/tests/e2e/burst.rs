//! The burst from the article: 500 users message the bot at the same instant. Every webhook is
//! acknowledged in under a second, the worker never runs more generations at once than its
//! sequence slots, and the queue drains with one reply delivered to each user.

use std::{
    collections::BTreeSet,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use sentinel_e2e::{wait_jobs, Stack};
use sentinel_queue::{kinds, JobStatus};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use tokio::sync::Barrier;

/// `SENTINEL_BURST_USERS` changes the crowd's size (default 500, as in the article).
fn users() -> usize {
    std::env::var("SENTINEL_BURST_USERS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(500)
}

const SLOTS: usize = 4;
const SECRET: &str = "burst-secret-0123456789";

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn five_hundred_users_at_once_are_acked_fast_and_answered_within_the_slots(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::alone().await;
    let users = users();
    let stack = Stack::start_with(pool_options, options, |config| {
        config.max_slots = SLOTS;
        config.max_tokens = 4;
        config.delivery_slots = 16;
    })
    .await;
    // A tenant whose rate limit admits the whole crowd in one instant (and the source's creation,
    // which spends a token too).
    let key = &stack
        .gateway
        .tenant_with(json!({"name": "burst", "rate_limit_per_sec": 1000, "burst": users + 1}))
        .await;
    let source = stack
        .gateway
        .source(
            key,
            json!({"platform": "telegram", "secrets": {"secret_token": SECRET},
                   "reply": {"bot_token": "42:BURST"}, "system_prompt": "Be brief."}),
        )
        .await;
    let url = stack.gateway.url(&format!("/hooks/{source}"));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(users)
        .build()
        .unwrap();

    // Every request is built and its connection task started, then all wait at one barrier and
    // go together.
    let barrier = Arc::new(Barrier::new(users));
    let sends = (0..users).map(|user| {
        let (client, url, barrier) = (client.clone(), url.clone(), barrier.clone());
        async move {
            let chat = 50_000 + user as i64;
            let body = json!({"update_id": 900_000 + user, "message": {"message_id": 1,
                "date": 1_735_689_600, "from": {"id": chat, "first_name": "User"},
                "chat": {"id": chat, "type": "private"}, "text": "Hi!"}})
            .to_string();
            let request = client
                .post(&url)
                .header("x-telegram-bot-api-secret-token", SECRET)
                .header("content-type", "application/json")
                .body(body);
            barrier.wait().await;
            let sent = Instant::now();
            let status = request
                .send()
                .await
                .map(|response| response.status().as_u16());
            (status, sent.elapsed())
        }
    });
    let started = Instant::now();
    let answers = join_all(sends).await;
    let burst_took = started.elapsed();

    let mut latencies: Vec<Duration> = Vec::with_capacity(users);
    for (status, latency) in &answers {
        assert_eq!(
            status.as_ref().ok(),
            Some(&200),
            "an ack failed: {status:?}"
        );
        latencies.push(*latency);
    }
    latencies.sort();
    let slowest = *latencies.last().unwrap();
    assert!(
        slowest < Duration::from_secs(1),
        "the slowest ack took {slowest:?}"
    );

    // The model lane drains the queue, never running more generations than its slots.
    let inbound = wait_jobs(
        &stack.pool,
        kinds::WEBHOOK_INBOUND,
        users,
        Duration::from_secs(1200),
    )
    .await;
    assert_eq!(inbound.len(), users, "one job per user");
    assert!(inbound.iter().all(|job| job.status == JobStatus::Succeeded));
    // Each user's conversation gets one turn of the built-in agent, which generates the reply.
    let turns = wait_jobs(
        &stack.pool,
        kinds::AGENT_REPLY,
        users,
        Duration::from_secs(1200),
    )
    .await;
    assert_eq!(turns.len(), users, "one turn per user");
    assert!(turns.iter().all(|job| job.status == JobStatus::Succeeded));
    let generated: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id
          WHERE j.kind = 'agent.reply' AND a.outcome <> 'handed_off'",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert_eq!(generated as usize, users, "no reply was generated twice");
    let deliveries = wait_jobs(
        &stack.pool,
        kinds::REPLY_DELIVER,
        users,
        Duration::from_secs(120),
    )
    .await;
    assert!(deliveries
        .iter()
        .all(|job| job.status == JobStatus::Succeeded));
    let drained_in = started.elapsed();
    let peak = stack.llm.peak_in_flight();
    assert!(
        (1..=SLOTS).contains(&peak),
        "{peak} generations ran at once with {SLOTS} slots"
    );
    assert_eq!(stack.llm.in_flight(), 0);

    let chats: BTreeSet<String> = stack
        .platform
        .requests()
        .iter()
        .map(|request| request.body["chat_id"].to_string())
        .collect();
    assert_eq!(chats.len(), users, "every user got exactly one reply");
    assert_eq!(stack.platform.requests().len(), users);

    let quantile = |q: f64| latencies[((users as f64 * q).ceil() as usize).clamp(1, users) - 1];
    println!("| users | acks | burst sent in | ack p50 | ack p99 | slowest ack | peak generations (slots) | drained in |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {users} | {} | {:.0} ms | {:.1} ms | {:.1} ms | {:.1} ms | {peak} ({SLOTS}) | {:.1} s |",
        answers.len(),
        burst_took.as_secs_f64() * 1000.0,
        quantile(0.5).as_secs_f64() * 1000.0,
        quantile(0.99).as_secs_f64() * 1000.0,
        slowest.as_secs_f64() * 1000.0,
        drained_in.as_secs_f64()
    );
    stack.stop().await;
}
