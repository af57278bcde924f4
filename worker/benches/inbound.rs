//! Deterministic healing throughput, end to end through the queue: `webhook.inbound` jobs
//! (WhatsApp delivery statuses, which need no reply) enqueued up front, then drained by the
//! worker's model lane with no model loaded (the deterministic path must never need one).
//!
//! Run: `DATABASE_URL=postgres://… cargo bench -p sentinel-worker --bench inbound`
//! Knobs: `SENTINEL_BENCH_JOBS` (default 20000), `SENTINEL_BENCH_SLOTS` (comma list, default 4,32).
//! It creates and drops a database of its own next to the one DATABASE_URL names.
#![allow(clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use sentinel_queue::{
    db, enqueue_many, kinds, tenant::create_tenant, Listener, NewJob, JOBS_CHANNEL,
};
use sentinel_worker::{
    deliver::ApiBases,
    runner::{self, RunnerConfig},
    Services,
};
use serde_json::json;
use sqlx::{Connection, PgConnection, PgPool};
use tokio::sync::watch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL must name a Postgres server")?;
    let jobs: usize = sentinel_queue::config::var_or("SENTINEL_BENCH_JOBS", 20_000)?;
    let slots: String = sentinel_queue::config::var_or("SENTINEL_BENCH_SLOTS", "4,32".to_string())?;
    let admin_options = db::connect_options(&url)?;
    let mut admin = PgConnection::connect_with(&admin_options).await?;
    println!("| model-lane slots | jobs | seconds | healed jobs/s |");
    println!("|---|---|---|---|");
    for slots in slots.split(',').map(|n| n.trim().parse::<usize>()) {
        let slots = slots.context("SENTINEL_BENCH_SLOTS takes numbers")?;
        let bench_db = format!("sentinel_bench_inbound_{}_{slots}", std::process::id());
        sqlx::raw_sql(&format!("CREATE DATABASE {bench_db}"))
            .execute(&mut admin)
            .await?;
        let options = admin_options.clone().database(&bench_db);
        let pool = db::pool(options.clone(), 8, Duration::from_secs(5));
        db::migrate(&pool).await?;
        let seconds = drain(&pool, options, jobs, slots).await;
        pool.close().await;
        sqlx::raw_sql(&format!("DROP DATABASE {bench_db} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
        let seconds = seconds?;
        println!(
            "| {slots} | {jobs} | {seconds:.2} | {:.0} |",
            jobs as f64 / seconds
        );
    }
    Ok(())
}

async fn drain(
    pool: &PgPool,
    options: sqlx::postgres::PgConnectOptions,
    jobs: usize,
    slots: usize,
) -> anyhow::Result<f64> {
    let tenant_id = create_tenant(pool, "bench", 1_000_000, 1_000_000).await?;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(1_000) {
        let batch: Vec<NewJob> = chunk
            .iter()
            .map(|i| {
                let status = json!({"id": format!("wamid.{i}"), "status": "delivered",
                    "timestamp": "1749416383", "recipient_id": "16505551234"});
                NewJob::new(
                    tenant_id,
                    kinds::WEBHOOK_INBOUND,
                    json!({"platform": "whatsapp", "payload": {"object": "whatsapp_business_account",
                        "metadata": {"phone_number_id": "106540352242922"}, "status": status}}),
                )
                .with_dedupe_key(format!("status:wamid.{i}:delivered"))
            })
            .collect();
        enqueue_many(pool, &batch).await?;
    }
    let (stop, shutdown) = watch::channel(false);
    let (listener, listen_task) = Listener::spawn(options, &[JOBS_CHANNEL], shutdown.clone());
    let services = Services::new(
        pool.clone(),
        None,
        32,
        ApiBases::default(),
        Duration::from_secs(5),
    )?;
    let started = Instant::now();
    let runner = tokio::spawn(runner::run(
        pool.clone(),
        RunnerConfig {
            worker_id: "bench".into(),
            kinds: sentinel_worker::MODEL_KINDS
                .iter()
                .map(|k| k.to_string())
                .collect(),
            max_slots: slots,
            lease: Duration::from_secs(60),
            poll_interval: Duration::from_millis(100),
        },
        listener.waiter(JOBS_CHANNEL),
        sentinel_worker::handler(Arc::new(services)),
        shutdown,
    ));
    loop {
        let (done, dead): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'dead') FROM jobs",
        )
        .fetch_one(pool)
        .await?;
        anyhow::ensure!(dead == 0, "{dead} jobs failed");
        if done as usize >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.send(true)?;
    let _ = runner.await;
    let _ = listen_task.await;
    Ok(seconds)
}
