//! Deterministic healing throughput, end to end through the queue: `webhook.inbound` jobs
//! (WhatsApp delivery statuses, which need no reply; every tenth one a raw body with a trailing
//! comma, healed by repair) enqueued up front, then drained by a whole worker with no model loaded
//! (the deterministic path must never need one).
//!
//! Run: `DATABASE_URL=postgres://… cargo bench --workspace --bench inbound`
//! Knobs: `SENTINEL_BENCH_JOBS` (default 20000), `SENTINEL_BENCH_BATCHES` (the deterministic
//! lane's claim batch sizes to try, comma list, default 64,256,1024).
//! It creates and drops a database of its own next to the one DATABASE_URL names.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use anyhow::Context;
use sentinel_queue::{db, enqueue_many, kinds, tenant::create_tenant, NewJob};
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL must name a Postgres server")?;
    let jobs: usize = sentinel_queue::config::var_or("SENTINEL_BENCH_JOBS", 20_000)?;
    let batches: String =
        sentinel_queue::config::var_or("SENTINEL_BENCH_BATCHES", "64,256,1024".to_string())?;
    let admin_options = db::connect_options(&url)?;
    let mut admin = PgConnection::connect_with(&admin_options).await?;
    println!("| heal batch | jobs | seconds | healed jobs/s |");
    println!("|---|---|---|---|");
    for batch in batches.split(',').map(|n| n.trim().parse::<usize>()) {
        let batch = batch.context("SENTINEL_BENCH_BATCHES takes numbers")?;
        let bench_db = format!("sentinel_bench_inbound_{}_{batch}", std::process::id());
        sqlx::raw_sql(&format!("CREATE DATABASE {bench_db}"))
            .execute(&mut admin)
            .await?;
        let options = admin_options.clone().database(&bench_db);
        let pool = db::pool(options.clone(), 8, Duration::from_secs(5));
        db::migrate(&pool).await?;
        let seconds = drain(&pool, options, jobs, batch).await;
        pool.close().await;
        sqlx::raw_sql(&format!("DROP DATABASE {bench_db} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        let seconds = seconds?;
        println!(
            "| {batch} | {jobs} | {seconds:.2} | {:.0} |",
            jobs as f64 / seconds
        );
    }
    Ok(())
}

async fn drain(
    pool: &PgPool,
    options: sqlx::postgres::PgConnectOptions,
    jobs: usize,
    heal_batch: usize,
) -> anyhow::Result<f64> {
    let tenant_id = create_tenant(pool, "bench", 1_000_000, 1_000_000).await?;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(1_000) {
        let batch: Vec<NewJob> = chunk
            .iter()
            .map(|i| {
                let status = json!({"id": format!("wamid.{i}"), "status": "delivered",
                    "timestamp": "1749416383", "recipient_id": "16505551234"});
                let payload = json!({"object": "whatsapp_business_account",
                    "metadata": {"phone_number_id": "106540352242922"}, "status": status});
                let mut job = if i % 10 == 0 {
                    // Drifted: only a raw body, with a trailing comma.
                    let mut job = NewJob::new(
                        tenant_id,
                        kinds::WEBHOOK_INBOUND,
                        json!({"platform": "whatsapp", "payload": null}),
                    );
                    let raw = payload.to_string();
                    job.raw_body = Some(format!("{},}}", &raw[..raw.len() - 1]).into_bytes());
                    job
                } else {
                    NewJob::new(
                        tenant_id,
                        kinds::WEBHOOK_INBOUND,
                        json!({"platform": "whatsapp", "payload": payload}),
                    )
                };
                job = job.with_dedupe_key(format!("status:wamid.{i}:delivered"));
                job
            })
            .collect();
        enqueue_many(pool, &batch).await?;
    }
    let (stop, shutdown) = watch::channel(false);
    let config = sentinel_worker::Config {
        worker_id: "bench".into(),
        heal_batch,
        poll_interval: Duration::from_millis(100),
        ..sentinel_worker::Config::new(String::new())
    };
    let started = Instant::now();
    let worker = tokio::spawn(sentinel_worker::run_with(config, options, None, shutdown));
    loop {
        let (done, dead): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'dead') FROM jobs",
        )
        .fetch_one(pool)
        .await?;
        if dead > 0 {
            let error: Option<serde_json::Value> =
                sqlx::query_scalar("SELECT last_error FROM jobs WHERE status = 'dead' LIMIT 1")
                    .fetch_one(pool)
                    .await?;
            anyhow::bail!("{dead} jobs failed, for example: {error:?}");
        }
        if done as usize >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.send(true)?;
    worker.await??;
    Ok(seconds)
}
