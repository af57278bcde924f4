//! The rescuer: jobs whose worker vanished (its lease expired) go back to the queue, or to `dead`
//! when their attempts are spent.

use std::time::Duration;

use sqlx::{PgExecutor, PgPool};
use tokio::sync::watch;

use crate::job::JobStatus;

/// What one rescue pass did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Rescued {
    pub requeued: u64,
    pub dead: u64,
    pub canceled: u64,
}

impl Rescued {
    pub fn total(&self) -> u64 {
        self.requeued + self.dead + self.canceled
    }
}

/// Rescues up to `limit` jobs with expired leases in one statement.
pub async fn rescue_expired(executor: impl PgExecutor<'_>, limit: i64) -> sqlx::Result<Rescued> {
    let rows = sqlx::query_file!("sql/rescue.sql", limit)
        .fetch_all(executor)
        .await?;
    let mut rescued = Rescued::default();
    for row in rows {
        match row.status {
            JobStatus::Queued => rescued.requeued += 1,
            JobStatus::Dead => rescued.dead += 1,
            _ => rescued.canceled += 1,
        }
    }
    Ok(rescued)
}

/// Runs rescue passes every `interval` until `shutdown` turns true. Each pass repeats in batches of
/// 1,000 until a batch comes back short.
pub async fn run_rescuer(pool: PgPool, interval: Duration, mut shutdown: watch::Receiver<bool>) {
    const BATCH: i64 = 1_000;
    loop {
        loop {
            match rescue_expired(&pool, BATCH).await {
                Ok(rescued) => {
                    if rescued.total() > 0 {
                        tracing::warn!(
                            rescued.requeued = rescued.requeued,
                            rescued.dead = rescued.dead,
                            rescued.canceled = rescued.canceled,
                            "rescued jobs whose lease expired"
                        );
                    }
                    if rescued.total() < BATCH as u64 {
                        break;
                    }
                }
                Err(error) => {
                    tracing::warn!(%error, "rescue pass failed; retrying next interval");
                    break;
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}
