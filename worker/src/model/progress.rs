//! `job.progress` events for a generation: the partial text goes into a watch channel after every
//! token, and one task per job writes the latest value at most ten times a second, so a slow
//! database never slows the model and a fast model never floods the events table.

use std::time::Duration;

use sentinel_queue::Lease;
use serde_json::json;
use sqlx::PgPool;
use tokio::{sync::watch, task::JoinHandle};

use super::llm::Progress;

/// The shortest gap between two progress events of one job.
pub const PROGRESS_INTERVAL: Duration = Duration::from_millis(100);

/// Writes a job's progress until the returned sender is dropped; await the handle afterwards so
/// the last value lands before the job's final event.
pub fn spawn_writer(
    pool: PgPool,
    lease: Lease,
    stage: &'static str,
    max_tokens: usize,
) -> (watch::Sender<Progress>, JoinHandle<()>) {
    let (sender, mut receiver) = watch::channel(Progress::default());
    let writer = tokio::spawn(async move {
        while receiver.changed().await.is_ok() {
            let latest = receiver.borrow_and_update().clone();
            let data = json!({
                "stage": stage,
                "tokens": latest.tokens,
                "max_tokens": max_tokens,
                "text": latest.text,
            });
            if let Err(error) = sentinel_queue::progress(&pool, &lease, data).await {
                tracing::warn!(job.id = lease.job_id, %error, "could not write a progress event");
            }
            tokio::time::sleep(PROGRESS_INTERVAL).await;
        }
    });
    (sender, writer)
}
