//! More than one machine: two gateways and two workers against one Postgres. An event
//! acknowledged by gateway 1 streams from gateway 2; a platform retry sent to the other gateway is
//! still one job; and no job is processed twice.

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
