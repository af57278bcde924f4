//! Forward-mode throughput: `agent.forward` jobs of one source, enqueued up front, POSTed signed by
//! a whole worker (no model loaded) to a fast agent on loopback that answers 204 at once, for each
//! `max_in_flight`. Beside it, in the same run, the same number of signed POSTs of the same body
//! sent straight from a reqwest loop with the same concurrency: what the HTTP path itself allows
//! on this machine, without the queue. The ratio is the queue's cost.
//!
//! Run: `DATABASE_URL=postgres://… cargo bench --workspace --bench forward`
//! Knobs: `SENTINEL_BENCH_JOBS` (default 5000), `SENTINEL_BENCH_IN_FLIGHT` (the source's
//! `max_in_flight` values to try, comma list, default 4,16,64).
//! It creates and drops a database of its own next to the one DATABASE_URL names.
#![allow(clippy::unwrap_used)]

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use futures::{stream, StreamExt};
use poem::{
    listener::{Acceptor, Listener, TcpListener},
    Request, Response,
};
use sentinel_queue::{agent, db, enqueue_many, kinds, tenant::create_tenant, NewJob};
use serde_json::json;
use sqlx::{Connection, PgConnection};
use tokio::sync::watch;

const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL must name a Postgres server")?;
    let jobs: usize = sentinel_queue::config::var_or("SENTINEL_BENCH_JOBS", 5_000)?;
    let in_flight: String =
        sentinel_queue::config::var_or("SENTINEL_BENCH_IN_FLIGHT", "4,16,64".to_string())?;
    let admin_options = db::connect_options(&url)?;
    let mut admin = PgConnection::connect_with(&admin_options).await?;
    let received = Arc::new(AtomicUsize::new(0));
    let agent_url = receiver(received.clone()).await;

    println!("| max_in_flight | jobs | Sentinel forwards/s | direct POSTs/s (reqwest, same concurrency) | ratio |");
    println!("|---|---|---|---|---|");
    for cap in in_flight.split(',').map(|n| n.trim().parse::<u32>()) {
        let cap = cap.context("SENTINEL_BENCH_IN_FLIGHT takes numbers")?;
        let name = format!("sentinel_bench_forward_{}_{cap}", std::process::id());
        sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
            .execute(&mut admin)
            .await?;
        let options = admin_options.clone().database(&name);
        let pool = db::pool(options.clone(), 8, Duration::from_secs(5));
        db::migrate(&pool).await?;
        let tenant_id = create_tenant(&pool, "bench", 1_000_000, 1_000_000).await?;
        let settings =
            json!({"mode": "forward", "url": agent_url, "max_in_flight": cap, "timeout_ms": 10000});
        let source_id: sqlx::types::Uuid = sqlx::query_scalar(
            "INSERT INTO sources (tenant_id, platform, secrets, agent, agent_secret)
             VALUES ($1, 'telegram', '{}', $2, $3) RETURNING id",
        )
        .bind(tenant_id)
        .bind(&settings)
        .bind(SECRET)
        .fetch_one(&pool)
        .await?;
        let message = json!({"platform": "telegram", "event_type": "message", "event_id": "1",
            "conversation_id": "7001", "text": "Where is my order?", "sender": {"id": "7001", "name": "Ada"}});
        for chunk in (0..jobs).collect::<Vec<_>>().chunks(1_000) {
            let batch: Vec<NewJob> = chunk
                .iter()
                .map(|i| {
                    NewJob::new(
                        tenant_id,
                        kinds::AGENT_FORWARD,
                        json!({"source_id": source_id, "platform": "telegram", "inbound_job_id": i,
                               "message": message, "history": [], "address": {"chat_id": "7001"}}),
                    )
                    .with_source(source_id)
                })
                .collect();
            enqueue_many(&pool, &batch).await?;
        }

        received.store(0, Ordering::SeqCst);
        let (stop, shutdown) = watch::channel(false);
        let config = sentinel_worker::Config {
            worker_id: "bench".into(),
            poll_interval: Duration::from_millis(100),
            forward_allow: "127.0.0.0/8".parse().unwrap(),
            forward_slots: 64,
            // One tenant: its cap must not hide the source's max_in_flight being measured.
            forward_tenant_max: Some(64),
            ..sentinel_worker::Config::new(String::new())
        };
        let started = Instant::now();
        let worker = tokio::spawn(sentinel_worker::run_with(config, options, None, shutdown));
        loop {
            let done: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE kind = 'agent.forward' AND status IN ('succeeded', 'dead')",
            )
            .fetch_one(&pool)
            .await?;
            if done as usize >= jobs {
                break;
            }
            anyhow::ensure!(
                started.elapsed() < Duration::from_secs(600),
                "the forwards did not finish"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let sentinel = started.elapsed().as_secs_f64();
        let dead: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE kind = 'agent.forward' AND status = 'dead'",
        )
        .fetch_one(&pool)
        .await?;
        anyhow::ensure!(dead == 0, "{dead} forwards ended dead");
        let _ = stop.send(true);
        let _ = worker.await;
        pool.close().await;
        sqlx::raw_sql(&format!("DROP DATABASE {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;

        let direct = direct_posts(&agent_url, jobs, cap as usize, &message).await?;
        let (sentinel_rate, direct_rate) = (jobs as f64 / sentinel, jobs as f64 / direct);
        println!(
            "| {cap} | {jobs} | {sentinel_rate:.0} | {direct_rate:.0} | {:.2} |",
            sentinel_rate / direct_rate
        );
    }
    Ok(())
}

/// The agent: answers every POST with 204 at once, counting them.
async fn receiver(received: Arc<AtomicUsize>) -> String {
    let acceptor = TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let endpoint = poem::endpoint::make(move |request: Request| {
        let received = received.clone();
        async move {
            let _ = request.into_body().into_bytes().await;
            received.fetch_add(1, Ordering::Relaxed);
            Response::builder()
                .status(poem::http::StatusCode::NO_CONTENT)
                .finish()
        }
    });
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    format!("http://{addr}/agent")
}

/// `jobs` signed POSTs of a forward's body, `concurrency` at a time; the seconds they took.
async fn direct_posts(
    url: &str,
    jobs: usize,
    concurrency: usize,
    message: &serde_json::Value,
) -> anyhow::Result<f64> {
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let started = Instant::now();
    let results: Vec<anyhow::Result<()>> = stream::iter(0..jobs)
        .map(|i| {
            let client = client.clone();
            async move {
                let body =
                    json!({"type": "message.received", "timestamp": "2026-12-05T00:00:00.000Z",
                    "data": {"job_id": i, "source_id": "bench", "message": message, "history": []}})
                    .to_string()
                    .into_bytes();
                let id = format!("msg_direct_{i}");
                let timestamp = chrono::Utc::now().timestamp().to_string();
                let signature = agent::signature_header(&[SECRET], &id, &timestamp, &body);
                let response = client
                    .post(url)
                    .header("content-type", "application/json")
                    .header("webhook-id", id)
                    .header("webhook-timestamp", timestamp)
                    .header("webhook-signature", signature)
                    .body(body)
                    .send()
                    .await?;
                anyhow::ensure!(response.status().is_success(), "{}", response.status());
                Ok(())
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    for result in results {
        result?;
    }
    Ok(started.elapsed().as_secs_f64())
}
