//! A slow platform API: the fake answers a reply after 10 s, or with 429 and `Retry-After`.
//! Delivery waits or backs off in its own lane, and the gateway's acknowledgements do not slow
//! down while deliveries hang.

use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use sentinel_e2e::{wait_jobs, Stack};
use sentinel_queue::{kinds, JobStatus};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

const SECRET: &str = "slow-secret-0123456789";
const CHATS: i64 = 6;
const ACKS: usize = 200;
const PLATFORM_DELAY: Duration = Duration::from_secs(10);
const RETRY_AFTER_SECS: u64 = 3;

/// Sends `ACKS` location updates (no reply needed) with 8 at a time; returns the sorted latencies.
async fn ack_latencies(stack: &Stack, source: Uuid, first_update: usize) -> Vec<Duration> {
    let url = stack.gateway.url(&format!("/hooks/{source}"));
    let mut latencies: Vec<Duration> = stream::iter(0..ACKS)
        .map(|n| {
            let (client, url) = (&stack.gateway.client, &url);
            async move {
                let body = json!({"update_id": first_update + n, "message": {"message_id": n,
                    "date": 1_735_689_600, "from": {"id": 1, "first_name": "Map"},
                    "chat": {"id": 1, "type": "private"},
                    "location": {"latitude": 52.52, "longitude": 13.40}}})
                .to_string();
                let sent = Instant::now();
                let response = client
                    .post(url)
                    .header("x-telegram-bot-api-secret-token", SECRET)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), 200);
                sent.elapsed()
            }
        })
        .buffer_unordered(8)
        .collect()
        .await;
    latencies.sort();
    latencies
}

fn ms(latencies: &[Duration], q: f64) -> f64 {
    let index = ((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1;
    latencies[index].as_secs_f64() * 1000.0
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_slow_or_throttling_platform_delays_delivery_but_not_ingress(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::alone().await;
    let stack = Stack::start_with(pool_options, options, |config| {
        config.max_tokens = 4;
        config.delivery_timeout = Duration::from_secs(15);
        config.delivery_slots = 8;
    })
    .await;
    // 400 webhooks in two quick rounds: over the default burst (200), so a tenant that allows it.
    let key = stack
        .gateway
        .tenant_with(json!({"name": "busy", "rate_limit_per_sec": 100_000, "burst": 100_000}))
        .await;
    let source = stack
        .gateway
        .source(
            &key,
            json!({"platform": "telegram", "secrets": {"secret_token": SECRET},
                   "reply": {"bot_token": "42:SLOW"}, "system_prompt": "Be brief."}),
        )
        .await;
    let before = ack_latencies(&stack, source, 1_000).await;

    // The first reply is throttled; every other answer takes 10 s.
    stack.platform.answer(
        429,
        vec![("retry-after", RETRY_AFTER_SECS.to_string())],
        json!({"ok": false, "error_code": 429, "description": "Too Many Requests: retry after 3",
               "parameters": {"retry_after": RETRY_AFTER_SECS}}),
    );
    stack.platform.slow_down(PLATFORM_DELAY);
    for chat in 0..CHATS {
        let body = json!({"update_id": 5_000 + chat, "message": {"message_id": 1,
            "date": 1_735_689_600, "from": {"id": 70 + chat, "first_name": "Ada"},
            "chat": {"id": 70 + chat, "type": "private"}, "text": "Hello?"}})
        .to_string();
        stack
            .gateway
            .hook(
                source,
                &[("x-telegram-bot-api-secret-token", SECRET.into())],
                &body,
            )
            .await;
    }
    // Every reply generated and every delivery waiting on the platform: measure ingress now.
    let inbound = wait_jobs(
        &stack.pool,
        kinds::WEBHOOK_INBOUND,
        ACKS + CHATS as usize,
        Duration::from_secs(300),
    )
    .await;
    assert!(inbound.iter().all(|job| job.status == JobStatus::Succeeded));
    stack
        .platform
        .wait_for(CHATS as usize, Duration::from_secs(30))
        .await;
    let hanging_since = Instant::now();
    let during = ack_latencies(&stack, source, 2_000).await;
    let measured_in = hanging_since.elapsed();
    assert!(
        measured_in < PLATFORM_DELAY,
        "the measurement ({measured_in:?}) outlasted the platform's delay"
    );
    let pending: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM jobs WHERE kind = 'reply.deliver' AND status <> 'succeeded'",
    )
    .fetch_one(&stack.pool)
    .await
    .unwrap();
    assert!(
        pending > 0,
        "the deliveries were meant to be hanging during the measurement"
    );

    let deliveries = wait_jobs(
        &stack.pool,
        kinds::REPLY_DELIVER,
        CHATS as usize,
        Duration::from_secs(120),
    )
    .await;
    assert!(
        deliveries
            .iter()
            .all(|job| job.status == JobStatus::Succeeded),
        "{:?}",
        deliveries
            .iter()
            .map(|job| &job.last_error)
            .collect::<Vec<_>>()
    );
    // The throttled reply came back no sooner than Retry-After, without spending an attempt.
    let requests = stack.platform.requests();
    let throttled_chat = &requests[0].body["chat_id"];
    let again = requests[1..]
        .iter()
        .find(|request| &request.body["chat_id"] == throttled_chat)
        .expect("the throttled reply was sent again");
    let waited = again.at - requests[0].at;
    assert!(
        waited >= Duration::from_secs(RETRY_AFTER_SECS),
        "retried after {waited:?}"
    );
    assert_eq!(requests.len(), CHATS as usize + 1);
    // The 429 is a snooze, not a failed attempt, and it holds the credential: the replies queued
    // behind it wait for Retry-After too (snoozed) instead of each running into the 429.
    let outcomes: Vec<(String, i64)> = sqlx::query_as(
        "SELECT a.outcome, count(*) FROM job_attempts a JOIN jobs j ON j.id = a.job_id
          WHERE j.kind = 'reply.deliver' GROUP BY a.outcome ORDER BY a.outcome",
    )
    .fetch_all(&stack.pool)
    .await
    .unwrap();
    assert!(
        outcomes
            .iter()
            .any(|(outcome, n)| outcome == "snoozed" && *n >= 1),
        "{outcomes:?}"
    );
    assert!(
        outcomes.iter().all(|(outcome, _)| outcome != "retry"),
        "a 429 spent an attempt: {outcomes:?}"
    );

    // Ingress stays inside the platforms' deadlines while deliveries hang.
    assert!(ms(&during, 0.99) < 1000.0);
    println!("| acks | before: p50 / p99 / max | while deliveries hang 10 s: p50 / p99 / max | throttled reply resent after |");
    println!("|---|---|---|---|");
    println!(
        "| {ACKS} + {ACKS} | {:.1} / {:.1} / {:.1} ms | {:.1} / {:.1} / {:.1} ms | {:.1} s (Retry-After: {RETRY_AFTER_SECS}) |",
        ms(&before, 0.5),
        ms(&before, 0.99),
        ms(&before, 1.0),
        ms(&during, 0.5),
        ms(&during, 0.99),
        ms(&during, 1.0),
        waited.as_secs_f64()
    );
    stack.stop().await;
}
