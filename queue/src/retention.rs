//! Retention: finished jobs, ingress drops and idle conversations are deleted in bounded batches,
//! so the hot tables stay small without long-running deletes that hold locks or bloat the WAL in
//! one go. `events` is partitioned by UTC day (migrations/…_partitioned_events.sql): its old days
//! go whole, a `DROP TABLE` each, and only the rows its default partition caught are deleted in
//! batches.

use std::{future::Future, time::Duration};

use sqlx::{postgres::PgQueryResult, PgPool};
use tokio::sync::watch;

/// The days after today whose `events` partitions every pass makes ahead of time
/// (`sentinel_events_ensure_partitions`), so rows find their day's partition even when no pass
/// runs for that long.
pub const EVENT_DAYS_AHEAD: i32 = 3;

/// What one retention pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub jobs: u64,
    /// Events removed: the rows of the dropped partitions (counted before the drop) and those
    /// deleted from the default partition.
    pub events: u64,
    /// Days' partitions of `events` dropped.
    pub event_partitions: u64,
    pub ingress_drops: u64,
    /// Conversations idle longer than the retention, with no turn open and nothing unanswered:
    /// their messages and turns go with them.
    pub conversations: u64,
}

/// Deletes finished jobs (with their attempts), ingress drops and idle conversations older than
/// `retention`, `batch` rows per statement, until nothing older remains; then removes old events
/// ([`purge_events`]).
///
/// Events go a UTC day at a time: an event in a day's partition is removed by the first pass after
/// its day ended `retention` ago, so it lives between `retention` and `retention` + 1 day (plus the
/// time to the next pass). An event in the default partition (a day no partition was made for) is
/// removed by the first pass after it is older than `retention`.
pub async fn purge(pool: &PgPool, retention: Duration, batch: i64) -> sqlx::Result<Purged> {
    let secs = retention.as_secs_f64();
    let jobs = drain(batch, || {
        sqlx::query!(
            r#"DELETE FROM jobs WHERE id IN (
                   SELECT id FROM jobs
                   WHERE finished_at < now() - make_interval(secs => $1::float8)
                     AND status IN ('succeeded', 'dead', 'canceled')
                   LIMIT $2
                   FOR UPDATE SKIP LOCKED)"#,
            secs,
            batch
        )
        .execute(pool)
    })
    .await?;
    let ingress_drops = drain(batch, || {
        sqlx::query!(
            r#"DELETE FROM ingress_drops WHERE id IN (
                   SELECT id FROM ingress_drops
                   WHERE received_at < now() - make_interval(secs => $1::float8)
                   LIMIT $2)"#,
            secs,
            batch
        )
        .execute(pool)
    })
    .await?;
    let conversations = drain(batch, || {
        sqlx::query!(
            r#"DELETE FROM conversations WHERE (source_id, conversation_id) IN (
                   SELECT source_id, conversation_id FROM conversations
                   WHERE updated_at < now() - make_interval(secs => $1::float8)
                     AND turn_job_id IS NULL AND next_start_at IS NULL
                   LIMIT $2
                   FOR UPDATE SKIP LOCKED)"#,
            secs,
            batch
        )
        .execute(pool)
    })
    .await?;
    // Last: a lock timeout on a partition (see purge_events) leaves the other tables purged.
    let events = purge_events(pool, retention, batch).await?;
    Ok(Purged {
        jobs,
        events: events.rows,
        event_partitions: events.partitions,
        ingress_drops,
        conversations,
    })
}

/// What [`purge_events`] removed.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct PurgedEvents {
    /// Rows removed, dropped with their partition or deleted from the default partition.
    pub rows: u64,
    /// Days' partitions dropped.
    pub partitions: u64,
}

/// One pass of `events`' retention, in three steps:
/// 1. make today's partition and the [`EVENT_DAYS_AHEAD`] next days' (rows the default partition
///    caught for those days move into them);
/// 2. drop every day's partition that ended at least `retention` ago, counting its rows first;
/// 3. delete, `batch` rows per statement, the rows of the default partition older than `retention`.
///
/// The partition whose day the cutoff falls in is kept whole until its day ends `retention` ago:
/// deleting its old rows one by one would delete every row of every day that way, a little each
/// pass, and leave nothing for the drop. The partition functions wait at most 1 s for a lock
/// (`lock_timeout`), then fail, and the next pass tries again.
pub async fn purge_events(
    pool: &PgPool,
    retention: Duration,
    batch: i64,
) -> sqlx::Result<PurgedEvents> {
    let secs = retention.as_secs_f64();
    let made = sqlx::query_scalar!(
        r#"SELECT sentinel_events_ensure_partitions($1) AS "made!""#,
        EVENT_DAYS_AHEAD
    )
    .fetch_one(pool)
    .await?;
    if made > 0 {
        tracing::info!(
            partitions.made = made,
            "made the coming days' event partitions"
        );
    }
    let dropped = sqlx::query!(
        r#"SELECT n_partitions AS "partitions!", n_events AS "rows!"
           FROM sentinel_events_drop_partitions(now() - make_interval(secs => $1::float8))"#,
        secs
    )
    .fetch_one(pool)
    .await?;
    let deleted = drain(batch, || {
        sqlx::query!(
            r#"DELETE FROM events_default WHERE seq IN (
                   SELECT seq FROM events_default
                   WHERE created_at < now() - make_interval(secs => $1::float8)
                   ORDER BY seq
                   LIMIT $2)"#,
            secs,
            batch
        )
        .execute(pool)
    })
    .await?;
    Ok(PurgedEvents {
        rows: dropped.rows.unsigned_abs() + deleted,
        partitions: u64::from(dropped.partitions.unsigned_abs()),
    })
}

/// Repeats a bounded delete until a batch comes back short; returns the rows deleted.
async fn drain<F, Fut>(batch: i64, mut delete_batch: F) -> sqlx::Result<u64>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = sqlx::Result<PgQueryResult>>,
{
    let mut total = 0;
    loop {
        let deleted = delete_batch().await?.rows_affected();
        total += deleted;
        if deleted < batch.unsigned_abs() {
            return Ok(total);
        }
    }
}

/// Runs [`purge`] every `interval` until `shutdown` turns true.
pub async fn run_retention(
    pool: PgPool,
    retention: Duration,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match purge(&pool, retention, 1_000).await {
            Ok(purged) if purged != Purged::default() => tracing::info!(
                purged.jobs = purged.jobs,
                purged.events = purged.events,
                purged.event_partitions = purged.event_partitions,
                purged.ingress_drops = purged.ingress_drops,
                purged.conversations = purged.conversations,
                "retention pass"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "retention pass failed; retrying next interval"),
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
