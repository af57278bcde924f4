//! Faults that fit in the test command's time: a retry storm through the gateway. (The longer
//! process-level faults are scripts: see docs/RELIABILITY.md.)

use std::time::{Duration, Instant};

use futures::{stream, StreamExt};
use sentinel_e2e::{slack_signature, worker_config, FakePlatform, TestGateway, TestWorker};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const EVENTS: usize = 10_000;
const COPIES: usize = 3;
const SLACK_SECRET: &str = "storm-signing-secret";

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_retry_storm_of_three_copies_per_event_leaves_one_job_per_event(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _machine = sentinel_e2e::alone().await;
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let platform = FakePlatform::start().await;
    let gateway = TestGateway::spawn(options.clone()).await;
    let worker = TestWorker::spawn(worker_config(&platform), options, None);
    let key = &gateway
        .tenant_with(json!({"name": "storm", "rate_limit_per_sec": 1_000_000, "burst": 1_000_000, "max_queued_jobs": 100_000_000}))
        .await;
    let source = gateway
        .source(
            key,
            json!({"platform": "slack", "secrets": {"signing_secret": SLACK_SECRET}}),
        )
        .await;
    let url = gateway.url(&format!("/hooks/{source}"));

    // Each event goes out three times at once: the original and two retries carrying Slack's
    // retry headers, as Slack sends them when an answer is late.
    let started = Instant::now();
    let requests = (0..EVENTS).flat_map(|event| (0..COPIES).map(move |copy| (event, copy)));
    let statuses: Vec<u16> = stream::iter(requests)
        .map(|(event, copy)| {
            let (client, url) = (&gateway.client, &url);
            async move {
                let body = json!({"type": "event_callback", "team_id": "T1", "api_app_id": "A1",
                    "event_id": format!("EvSTORM{event}"), "event_time": 1_735_689_600,
                    "event": {"type": "reaction_added", "user": "U1", "reaction": "thumbsup",
                              "item": {"type": "message", "channel": "C1", "ts": "1.0"},
                              "event_ts": "1.0"}})
                .to_string();
                let ts = chrono_now();
                let mut request = client
                    .post(url)
                    .header("content-type", "application/json")
                    .header("x-slack-request-timestamp", ts.to_string())
                    .header(
                        "x-slack-signature",
                        slack_signature(SLACK_SECRET, ts, &body),
                    );
                if copy > 0 {
                    request = request
                        .header("x-slack-retry-num", copy.to_string())
                        .header("x-slack-retry-reason", "http_timeout");
                }
                request.body(body).send().await.unwrap().status().as_u16()
            }
        })
        .buffer_unordered(64)
        .collect()
        .await;
    let sent_in = started.elapsed();
    let acked = statuses.iter().filter(|status| **status == 200).count();
    assert_eq!(acked, EVENTS * COPIES, "every copy is acknowledged");

    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE kind = 'webhook.inbound'")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs as usize, EVENTS, "exactly one job per event");
    let distinct: i64 = sqlx::query_scalar(
        "SELECT count(DISTINCT dedupe_key) FROM jobs WHERE kind = 'webhook.inbound'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(distinct as usize, EVENTS);

    // And the queue drains: every job healed once.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let done: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'succeeded'")
            .fetch_one(&pool)
            .await
            .unwrap();
        if done as usize == EVENTS {
            break;
        }
        assert!(Instant::now() < deadline, "{done} of {EVENTS} jobs drained");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let attempts: i64 = sqlx::query_scalar("SELECT count(*) FROM job_attempts")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(attempts as usize, EVENTS, "no job ran twice");
    println!(
        "retry storm: {} requests ({EVENTS} events × {COPIES}) acknowledged in {:.2} s, {jobs} jobs, drained in {:.2} s",
        EVENTS * COPIES,
        sent_in.as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
    worker.stop().await;
    gateway.stop().await;
}

fn chrono_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}
