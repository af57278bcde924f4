//! Retention by partition, measured (issue 30): one retention pass that removes the older half of
//! N events (10,000,000 by default), done two ways on the same data.
//!
//! - **Batch deletes** (the retention before issue 30): `events_flat`, a copy of the table as it
//!   was before partitioning (same columns and indexes), emptied of its old rows by the statement
//!   retention used, 10,000 rows at a time, until a batch comes back short.
//! - **Dropping partitions**: `events`, partitioned by day, through
//!   `sentinel_queue::retention::purge_events` (make the coming days' partitions, drop the old
//!   days' after counting their rows, delete what the default partition holds).
//!
//! The events are spread evenly over the 10 whole UTC days before today, time rising with seq, and
//! the cutoff is midnight 5 days ago, so both ways remove exactly the older half. Both tables are
//! loaded the same way (indexes in place, 1,000,000 rows per statement), vacuumed and analyzed,
//! and a CHECKPOINT precedes each measurement, so each starts with the same full-page-write state.
//! For each: the pass's wall time and WAL written (`pg_current_wal_lsn()` before and after; the
//! whole server's, so anything else writing at the time counts too), the table's total size with
//! its indexes and TOAST (`pg_total_relation_size`, summed over the partitions) before, right
//! after the pass and after a plain VACUUM, and the VACUUM's own time and WAL.
//!
//! Run: `DATABASE_URL=postgres://… cargo bench -p sentinel-queue --bench event_retention`
//! It creates and drops a database of its own next to the one DATABASE_URL names.
//! `SENTINEL_BENCH_EVENTS` sets N (default 10000000; an even number splits exactly in half).
#![allow(clippy::unwrap_used)] // Benchmarks fail loudly on purpose.

use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use sentinel_queue::{db, retention};
use sqlx::{postgres::PgConnectOptions, Connection, PgConnection, PgPool};

const DAYS: i64 = 10;
const BATCH: i64 = 10_000;
const LOAD_CHUNK: i64 = 1_000_000;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL must name a Postgres server")?;
    let n: i64 = sentinel_queue::config::var_or("SENTINEL_BENCH_EVENTS", 10_000_000)?;
    anyhow::ensure!(n >= 2, "SENTINEL_BENCH_EVENTS must be at least 2");
    let admin_options = db::connect_options(&url)?;
    let bench_db = format!("sentinel_bench_retention_{}", std::process::id());
    let mut admin = PgConnection::connect_with(&admin_options).await?;
    sqlx::raw_sql(&format!("CREATE DATABASE {bench_db}"))
        .execute(&mut admin)
        .await?;
    let options = admin_options.clone().database(&bench_db);
    let outcome = run(options, n).await;
    sqlx::raw_sql(&format!("DROP DATABASE {bench_db} WITH (FORCE)"))
        .execute(&mut admin)
        .await?;
    let rows = outcome?;
    println!(
        "\n{n} events over {DAYS} days; one retention pass removes the {} older than 5 days.\n",
        n / 2
    );
    println!(
        "| way | rows removed | pass wall time | pass WAL | size before | size after the pass | VACUUM time | VACUUM WAL | size after VACUUM |"
    );
    println!("|---|---|---|---|---|---|---|---|---|");
    for row in rows {
        println!(
            "| {} | {} | {:.2} s | {} | {} | {} | {:.2} s | {} | {} |",
            row.way,
            row.removed,
            row.pass.as_secs_f64(),
            bytes(row.pass_wal),
            bytes(row.size_before),
            bytes(row.size_after_pass),
            row.vacuum.as_secs_f64(),
            bytes(row.vacuum_wal),
            bytes(row.size_after_vacuum),
        );
    }
    Ok(())
}

struct Measured {
    way: &'static str,
    removed: u64,
    pass: Duration,
    pass_wal: i64,
    size_before: i64,
    size_after_pass: i64,
    vacuum: Duration,
    vacuum_wal: i64,
    size_after_vacuum: i64,
}

/// Which table a measurement reads: its size is summed over its partitions, if it has any.
#[derive(Clone, Copy)]
enum Table {
    Flat,
    Partitioned,
}

impl Table {
    fn name(self) -> &'static str {
        match self {
            Table::Flat => "events_flat",
            Table::Partitioned => "events",
        }
    }
}

async fn run(options: PgConnectOptions, n: i64) -> anyhow::Result<Vec<Measured>> {
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect_with(options.clone().options(db::SESSION_OPTIONS))
        .await?;
    db::migrate(&pool).await?;

    // The data's days: [today - 10 days, today), the cutoff midnight 5 days ago.
    let (start, cutoff, step_secs): (DateTime<Utc>, DateTime<Utc>, f64) = sqlx::query_as(
        "SELECT date_trunc('day', now(), 'UTC') - make_interval(days => $1::int),
                date_trunc('day', now(), 'UTC') - make_interval(days => $1::int / 2),
                $1::float8 * 86400 / $2",
    )
    .bind(DAYS as i32)
    .bind(n)
    .fetch_one(&pool)
    .await?;

    sqlx::raw_sql(FLAT_TABLE).execute(&pool).await?;
    sqlx::query(
        "SELECT sentinel_events_create_partition((now() AT TIME ZONE 'UTC')::date - back)
         FROM generate_series(1, $1::int) AS back",
    )
    .bind(DAYS as i32)
    .execute(&pool)
    .await?;
    for table in [Table::Flat, Table::Partitioned] {
        let began = Instant::now();
        for first in (1..=n).step_by(LOAD_CHUNK as usize) {
            let last = (first + LOAD_CHUNK - 1).min(n);
            sqlx::query(match table {
                Table::Flat => LOAD_FLAT,
                Table::Partitioned => LOAD_PARTITIONED,
            })
            .bind(first)
            .bind(last)
            .bind(start)
            .bind(step_secs)
            .execute(&pool)
            .await?;
            eprintln!("{}: {last} of {n} rows loaded", table.name());
        }
        eprintln!(
            "{}: loaded in {:.1} s",
            table.name(),
            began.elapsed().as_secs_f64()
        );
    }
    // The retention pass's own work only: hint bits set, visibility map and statistics made.
    // (VACUUM cannot share a query string with another statement.)
    for vacuum in ["VACUUM ANALYZE events_flat", "VACUUM ANALYZE events"] {
        sqlx::raw_sql(vacuum).execute(&pool).await?;
    }

    let mut rows = Vec::new();

    // The retention before issue 30, on the table before issue 30.
    let size_before = size(&pool, Table::Flat).await?;
    let (pass, pass_wal, removed) = measured(&pool, || async {
        let mut removed = 0;
        loop {
            let deleted = sqlx::query(
                "DELETE FROM events_flat WHERE seq IN (
                     SELECT seq FROM events_flat
                     WHERE created_at < $1
                     ORDER BY seq
                     LIMIT $2)",
            )
            .bind(cutoff)
            .bind(BATCH)
            .execute(&pool)
            .await?
            .rows_affected();
            removed += deleted;
            if deleted < BATCH as u64 {
                return Ok(removed);
            }
        }
    })
    .await?;
    rows.push(
        vacuumed(
            &pool,
            Table::Flat,
            "batch deletes of 10,000 rows",
            removed,
            pass,
            pass_wal,
            size_before,
        )
        .await?,
    );

    // Dropping partitions: the retention that ends `cutoff` ago, as the worker runs it.
    let size_before = size(&pool, Table::Partitioned).await?;
    let (pass, pass_wal, removed) = measured(&pool, || async {
        let since_cutoff: f64 =
            sqlx::query_scalar("SELECT extract(epoch FROM now() - $1::timestamptz)::float8")
                .bind(cutoff)
                .fetch_one(&pool)
                .await?;
        let purged =
            retention::purge_events(&pool, Duration::from_secs_f64(since_cutoff), BATCH).await?;
        Ok(purged.rows)
    })
    .await?;
    rows.push(
        vacuumed(
            &pool,
            Table::Partitioned,
            "dropping day partitions",
            removed,
            pass,
            pass_wal,
            size_before,
        )
        .await?,
    );

    for row in &rows {
        anyhow::ensure!(
            row.removed == (n / 2) as u64,
            "{} removed {} rows, not the older half ({})",
            row.way,
            row.removed,
            n / 2
        );
    }
    pool.close().await;
    Ok(rows)
}

/// Runs `pass` after a CHECKPOINT; its wall time, the WAL written meanwhile and what it returned.
async fn measured<F, Fut>(pool: &PgPool, pass: F) -> anyhow::Result<(Duration, i64, u64)>
where
    F: FnOnce() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<u64>>,
{
    sqlx::raw_sql("CHECKPOINT").execute(pool).await?;
    let lsn: String = sqlx::query_scalar("SELECT pg_current_wal_lsn()::text")
        .fetch_one(pool)
        .await?;
    let began = Instant::now();
    let out = pass().await?;
    let elapsed = began.elapsed();
    let wal: i64 =
        sqlx::query_scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), $1::pg_lsn)::bigint")
            .bind(lsn)
            .fetch_one(pool)
            .await?;
    Ok((elapsed, wal, out))
}

/// The row of one way: its sizes after the pass, then a plain VACUUM's time, WAL and the size
/// after it.
#[allow(clippy::too_many_arguments)]
async fn vacuumed(
    pool: &PgPool,
    table: Table,
    way: &'static str,
    removed: u64,
    pass: Duration,
    pass_wal: i64,
    size_before: i64,
) -> anyhow::Result<Measured> {
    let size_after_pass = size(pool, table).await?;
    let (vacuum, vacuum_wal, _) = measured(pool, || async {
        sqlx::raw_sql(match table {
            Table::Flat => "VACUUM events_flat",
            Table::Partitioned => "VACUUM events",
        })
        .execute(pool)
        .await?;
        Ok(0)
    })
    .await?;
    Ok(Measured {
        way,
        removed,
        pass,
        pass_wal,
        size_before,
        size_after_pass,
        vacuum,
        vacuum_wal,
        size_after_vacuum: size(pool, table).await?,
    })
}

/// The table's bytes with its indexes and TOAST, over all its partitions.
async fn size(pool: &PgPool, table: Table) -> anyhow::Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT coalesce((SELECT sum(pg_total_relation_size(relid))
                          FROM pg_partition_tree($1::regclass)),
                         pg_total_relation_size($1::regclass))::bigint",
    )
    .bind(table.name())
    .fetch_one(pool)
    .await?)
}

fn bytes(n: i64) -> String {
    let n = n as f64;
    if n >= 1024.0 * 1024.0 * 1024.0 {
        format!("{:.2} GiB", n / (1024.0 * 1024.0 * 1024.0))
    } else if n >= 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / (1024.0 * 1024.0))
    } else {
        format!("{:.1} KiB", n / 1024.0)
    }
}

/// `events` as migrations/20261122000001_init.sql made it, before partitioning.
const FLAT_TABLE: &str = "
CREATE TABLE events_flat (
    seq        bigint PRIMARY KEY,
    tenant_id  uuid NOT NULL,
    job_id     bigint,
    type       text NOT NULL,
    data       jsonb NOT NULL,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX events_flat_tenant_seq ON events_flat (tenant_id, seq);
CREATE INDEX events_flat_job ON events_flat (job_id, seq);
CREATE INDEX events_flat_created ON events_flat USING brin (created_at);
ALTER TABLE events_flat SET (
    autovacuum_vacuum_insert_scale_factor = 0.05,
    autovacuum_vacuum_scale_factor = 0.05
);";

/// Rows $1..=$2 of the data: 100 tenants, four events per job (queued, running, succeeded and a
/// progress report), created at $3 + (row - 1) × $4 seconds.
const LOAD_FLAT: &str = "
INSERT INTO events_flat (seq, tenant_id, job_id, type, data, created_at)
SELECT g, md5((g % 100)::text)::uuid, g / 4,
       (ARRAY['job.queued', 'job.running', 'job.progress', 'job.succeeded'])[g % 4 + 1],
       jsonb_build_object('id', g / 4, 'kind', 'webhook.inbound', 'attempt', 1,
                          'status', (ARRAY['queued', 'running', 'running', 'succeeded'])[g % 4 + 1]),
       $3::timestamptz + make_interval(secs => (g - 1) * $4::float8)
FROM generate_series($1::bigint, $2::bigint) AS g";

/// The same rows into `events`, seq from its sequence (in the same order).
const LOAD_PARTITIONED: &str = "
INSERT INTO events (tenant_id, job_id, type, data, created_at)
SELECT md5((g % 100)::text)::uuid, g / 4,
       (ARRAY['job.queued', 'job.running', 'job.progress', 'job.succeeded'])[g % 4 + 1],
       jsonb_build_object('id', g / 4, 'kind', 'webhook.inbound', 'attempt', 1,
                          'status', (ARRAY['queued', 'running', 'running', 'succeeded'])[g % 4 + 1]),
       $3::timestamptz + make_interval(secs => (g - 1) * $4::float8)
FROM generate_series($1::bigint, $2::bigint) AS g";
