//! Retention: finished jobs and old events are deleted in bounded batches, so the hot tables stay
//! small without long-running deletes that hold locks or bloat the WAL in one go.

use std::{future::Future, time::Duration};

use sqlx::{postgres::PgQueryResult, PgPool};
use tokio::sync::watch;

/// What one retention pass deleted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Purged {
    pub jobs: u64,
    pub events: u64,
    pub ingress_drops: u64,
    /// Conversations idle longer than the retention, with no turn open and nothing unanswered:
    /// their messages and turns go with them.
    pub conversations: u64,
}

/// Deletes finished jobs (with their attempts), events, ingress drops and idle conversations older
/// than `retention`,
/// `batch` rows per statement, until nothing older remains.
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
    let events = drain(batch, || {
        sqlx::query!(
            r#"DELETE FROM events WHERE seq IN (
                   SELECT seq FROM events
                   WHERE created_at < now() - make_interval(secs => $1::float8)
                   ORDER BY seq
                   LIMIT $2)"#,
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
    Ok(Purged {
        jobs,
        events,
        ingress_drops,
        conversations,
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
                purged.ingress_drops = purged.ingress_drops,
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
