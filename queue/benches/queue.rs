//! Queue benchmark: enqueue throughput (group-commit ingestor vs one transaction per enqueue),
//! no-op jobs/s through batched claim + complete, and enqueue→claim latency over LISTEN/NOTIFY.
//!
//! Run: `DATABASE_URL=postgres://… cargo bench -p sentinel-queue --bench queue`
//! It creates and drops a database of its own next to the one DATABASE_URL names.
//! `SENTINEL_BENCH_SECS` sets each throughput phase's length (default 5).
#![allow(clippy::unwrap_used)] // Tests and benchmarks fail loudly on purpose.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::Context;
use sentinel_queue::{
    claim_batch, complete_many, db, enqueue, enqueue_many, tenant::create_tenant, Claimable,
    Ingestor, IngestorConfig, Listener, NewJob, JOBS_CHANNEL,
};
use serde_json::json;
use sqlx::{postgres::PgConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::watch;
use uuid::Uuid;

const KIND: &str = "bench.noop";
const PRODUCERS: usize = 64;

struct Row {
    measure: String,
    result: String,
    target: String,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL must name a Postgres server")?;
    let secs: u64 = sentinel_queue::config::var_or("SENTINEL_BENCH_SECS", 5)?;
    let phase = Duration::from_secs(secs);
    let claimers: usize = sentinel_queue::config::var_or("SENTINEL_BENCH_CLAIMERS", 2)?;
    let claim_batch_size: usize =
        sentinel_queue::config::var_or("SENTINEL_BENCH_CLAIM_BATCH", 500)?;
    let only: String = sentinel_queue::config::var_or("SENTINEL_BENCH_ONLY", String::new())?;
    let knobs = Knobs {
        claimers,
        claim_batch_size,
        only,
    };
    let admin_options = db::connect_options(&url)?;
    let bench_db = format!("sentinel_bench_{}", std::process::id());
    let mut admin = PgConnection::connect_with(&admin_options).await?;
    sqlx::raw_sql(&format!("CREATE DATABASE {bench_db}"))
        .execute(&mut admin)
        .await?;
    let options = admin_options.clone().database(&bench_db);
    let outcome = run(options, phase, &knobs).await;
    sqlx::raw_sql(&format!("DROP DATABASE {bench_db} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    let rows = outcome?;
    println!("\n| measure | result | target |\n|---|---|---|");
    for row in rows {
        println!("| {} | {} | {} |", row.measure, row.result, row.target);
    }
    Ok(())
}

struct Knobs {
    claimers: usize,
    claim_batch_size: usize,
    only: String,
}

async fn run(
    options: PgConnectOptions,
    phase: Duration,
    knobs: &Knobs,
) -> anyhow::Result<Vec<Row>> {
    let (n_claimers, batch) = (knobs.claimers, knobs.claim_batch_size);
    let wants = |phase: &str| knobs.only.is_empty() || knobs.only == phase;
    let pool = db::pool(options.clone(), 32, Duration::from_secs(10));
    db::migrate(&pool).await?;
    let tenant_id = create_tenant(&pool, "bench", 1_000_000, 1_000_000).await?;
    let mut rows = Vec::new();

    // 1. Enqueue throughput, 64 producers.
    let mut ingested = f64::NAN;
    if wants("enqueue") {
        let (ingestor, task) = Ingestor::spawn(pool.clone(), IngestorConfig::default());
        ingested = produce_for(phase, tenant_id, {
            let ingestor = ingestor.clone();
            move |job| {
                let ingestor = ingestor.clone();
                async move {
                    ingestor
                        .submit(job)
                        .await
                        .map(|_| ())
                        .map_err(anyhow::Error::from)
                }
            }
        })
        .await;
        drop(ingestor);
        task.await?;
        let direct = produce_for(phase, tenant_id, {
            let pool = pool.clone();
            move |job| {
                let pool = pool.clone();
                async move {
                    enqueue(&pool, &job)
                        .await
                        .map(|_| ())
                        .map_err(anyhow::Error::from)
                }
            }
        })
        .await;
        rows.push(Row {
            measure: format!("enqueues/s, {PRODUCERS} producers, group-commit ingestor"),
            result: format!("{ingested:.0}"),
            target: verdict(ingested, 50_000.0, "≥ 50,000"),
        });
        rows.push(Row {
            measure: format!("enqueues/s, {PRODUCERS} producers, one transaction per enqueue"),
            result: format!("{direct:.0} (ingestor is {:.1}×)", ingested / direct),
            target: "—".into(),
        });
        sqlx::raw_sql("TRUNCATE jobs, events, job_attempts")
            .execute(&pool)
            .await?;
    }

    // 2. No-op jobs through claim + complete.
    let mut jobs_per_sec = f64::NAN;
    if wants("claim") {
        let n_jobs = 200_000usize;
        let jobs: Vec<NewJob> = (0..n_jobs)
            .map(|i| NewJob::new(tenant_id, KIND, json!({ "i": i })))
            .collect();
        for chunk in jobs.chunks(5_000) {
            enqueue_many(&pool, chunk).await?;
        }
        sqlx::raw_sql("VACUUM ANALYZE jobs").execute(&pool).await?;
        let started = Instant::now();
        let claimers: Vec<_> = (0..n_claimers)
            .map(|n| {
                let pool = pool.clone();
                tokio::spawn(async move {
                    let worker = format!("bench-{n}");
                    let kinds = Claimable::new(&[KIND]);
                    let mut done = 0usize;
                    loop {
                        let claimed =
                            claim_batch(&pool, &worker, &kinds, batch, Duration::from_secs(60))
                                .await?;
                        if claimed.is_empty() {
                            return Ok::<_, sqlx::Error>(done);
                        }
                        done += claimed.len();
                        complete_many(
                            &pool,
                            claimed
                                .into_iter()
                                .filter_map(|job| job.lease())
                                .map(|lease| (lease, json!(null))),
                        )
                        .await?;
                    }
                })
            })
            .collect();
        let mut processed = 0;
        for claimer in claimers {
            processed += claimer.await??;
        }
        jobs_per_sec = processed as f64 / started.elapsed().as_secs_f64();
        rows.push(Row {
        measure: format!("no-op jobs/s, {n_claimers} claimers, claim batch {batch}, batched completion ({processed} jobs)"),
        result: format!("{jobs_per_sec:.0}"),
        target: verdict(jobs_per_sec, 40_000.0, "≥ 40,000"),
    });
        sqlx::raw_sql("TRUNCATE jobs, events, job_attempts")
            .execute(&pool)
            .await?;
        sqlx::raw_sql("VACUUM ANALYZE jobs").execute(&pool).await?;
    }

    // 3. enqueue→claim latency, idle and at half of the measured peak.
    if wants("latency") {
        let idle = latency(&pool, &options, tenant_id, None, phase, knobs).await?;
        rows.push(Row {
            measure: format!("enqueue→claim latency, idle queue ({} probes)", idle.n),
            result: format!("p50 {:.2} ms, p99 {:.2} ms", idle.p50_ms, idle.p99_ms),
            target: format!(
                "p50 ≤ 1 ms {}, p99 ≤ 5 ms {}",
                mark(idle.p50_ms <= 1.0),
                mark(idle.p99_ms <= 5.0)
            ),
        });
        let peak = if jobs_per_sec.is_nan() || ingested.is_nan() {
            4_000.0
        } else {
            jobs_per_sec.min(ingested)
        };
        let half = (peak / 2.0).max(100.0);
        let loaded = latency(&pool, &options, tenant_id, Some(half), phase, knobs).await?;
        rows.push(Row {
        measure: format!(
            "enqueue→claim latency at {half:.0} jobs/s background load ({} probes, {:.0} jobs/s processed)",
            loaded.n, loaded.background_per_sec
        ),
        result: format!("p50 {:.2} ms, p99 {:.2} ms", loaded.p50_ms, loaded.p99_ms),
        target: "—".into(),
    });
    }
    pool.close().await;
    Ok(rows)
}

fn mark(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "MISSED"
    }
}

fn verdict(value: f64, target: f64, label: &str) -> String {
    if value >= target {
        format!("{label}: met")
    } else {
        format!("{label}: MISSED by {:.0}%", (1.0 - value / target) * 100.0)
    }
}

/// Runs 64 closed-loop producers for `phase` and returns enqueues per second.
async fn produce_for<F, Fut>(phase: Duration, tenant_id: Uuid, submit: F) -> f64
where
    F: Fn(NewJob) -> Fut + Clone + Send + 'static,
    Fut: std::future::Future<Output = anyhow::Result<()>> + Send,
{
    let stop = Arc::new(AtomicBool::new(false));
    let count = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let producers: Vec<_> = (0..PRODUCERS)
        .map(|p| {
            let (stop, count, submit) = (stop.clone(), count.clone(), submit.clone());
            tokio::spawn(async move {
                let mut i = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    let job = NewJob::new(tenant_id, KIND, json!({ "producer": p, "i": i }))
                        .with_dedupe_key(format!("{p}-{i}"));
                    if submit(job).await.is_ok() {
                        count.fetch_add(1, Ordering::Relaxed);
                    }
                    i += 1;
                }
            })
        })
        .collect();
    tokio::time::sleep(phase).await;
    stop.store(true, Ordering::Relaxed);
    for producer in producers {
        let _ = producer.await;
    }
    count.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64()
}

struct Latency {
    n: usize,
    p50_ms: f64,
    p99_ms: f64,
    background_per_sec: f64,
}

/// Enqueues a probe every 5 ms while claimers wait on LISTEN/NOTIFY (poll 1 s), optionally under a
/// background load of `background_rate` jobs/s, and measures commit-to-claim time of the probes.
async fn latency(
    pool: &PgPool,
    options: &PgConnectOptions,
    tenant_id: Uuid,
    background_rate: Option<f64>,
    phase: Duration,
    knobs: &Knobs,
) -> anyhow::Result<Latency> {
    let (stop_tx, stop_rx) = watch::channel(false);
    let (listener, listen_task) =
        Listener::spawn(options.clone(), &[JOBS_CHANNEL], stop_rx.clone());
    while !listener.is_connected() {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let claimed_at: Arc<Mutex<HashMap<i64, Instant>>> = Arc::default();
    let processed = Arc::new(AtomicU64::new(0));
    let n_claimers = if background_rate.is_some() {
        knobs.claimers
    } else {
        1
    };
    let batch = knobs.claim_batch_size;
    let claimers: Vec<_> = (0..n_claimers)
        .map(|n| {
            let (pool, claimed_at, processed) =
                (pool.clone(), claimed_at.clone(), processed.clone());
            let mut waiter = listener.waiter(JOBS_CHANNEL);
            let stop = stop_rx.clone();
            tokio::spawn(async move {
                let worker = format!("latency-{n}");
                let kinds = Claimable::new(&[KIND]);
                while !*stop.borrow() {
                    waiter.mark_seen();
                    let claimed =
                        claim_batch(&pool, &worker, &kinds, batch, Duration::from_secs(60)).await?;
                    let now = Instant::now();
                    if claimed.is_empty() {
                        waiter.wait(Duration::from_secs(1)).await;
                        continue;
                    }
                    {
                        let mut map = claimed_at.lock().expect("lock");
                        for job in claimed
                            .iter()
                            .filter(|job| job.input.get("probe").is_some())
                        {
                            map.insert(job.id, now);
                        }
                    }
                    processed.fetch_add(claimed.len() as u64, Ordering::Relaxed);
                    complete_many(
                        &pool,
                        claimed
                            .into_iter()
                            .filter_map(|j| j.lease())
                            .map(|l| (l, json!(null))),
                    )
                    .await?;
                }
                Ok::<_, sqlx::Error>(())
            })
        })
        .collect();

    let background = background_rate.map(|rate| {
        let pool = pool.clone();
        let stop = stop_rx.clone();
        tokio::spawn(async move {
            // Open loop: every 10 ms, the jobs due in that slice, as one batch.
            let per_tick = (rate / 100.0).round().max(1.0) as usize;
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            while !*stop.borrow() {
                tick.tick().await;
                let jobs: Vec<NewJob> = (0..per_tick)
                    .map(|_| NewJob::new(tenant_id, KIND, json!({})))
                    .collect();
                let _ = enqueue_many(&pool, &jobs).await;
            }
        })
    });

    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut committed_at = HashMap::new();
    let started = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(5));
    while started.elapsed() < phase {
        tick.tick().await;
        let id = enqueue(pool, &NewJob::new(tenant_id, KIND, json!({"probe": true})))
            .await?
            .id;
        committed_at.insert(id, Instant::now());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let background_per_sec =
        processed.load(Ordering::Relaxed) as f64 / started.elapsed().as_secs_f64();
    stop_tx.send(true)?;
    for claimer in claimers {
        claimer.await??;
    }
    if let Some(task) = background {
        task.await?;
    }
    listen_task.await?;

    let claimed_at = std::mem::take(&mut *claimed_at.lock().expect("lock"));
    let mut samples: Vec<f64> = committed_at
        .iter()
        .filter_map(|(id, committed)| {
            claimed_at
                .get(id)
                .map(|claimed| claimed.saturating_duration_since(*committed).as_secs_f64() * 1e3)
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    anyhow::ensure!(!samples.is_empty(), "no probe was claimed");
    let pct = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    sqlx::raw_sql("TRUNCATE jobs, events, job_attempts")
        .execute(pool)
        .await?;
    Ok(Latency {
        n: samples.len(),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        background_per_sec,
    })
}
