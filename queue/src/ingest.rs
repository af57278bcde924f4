//! The group-commit ingestor: concurrent callers hand their jobs to one batcher, which writes up to
//! `max_batch_rows` rows, or whatever arrived within `max_wait`, in one transaction with one NOTIFY.
//!
//! A caller is resolved only after COMMIT returns, so `Ok` always means durable. When a transaction
//! fails because of a row, the batch is retried in halves until only the request that carries the
//! row fails; any other failure reaches every caller in the batch, and nothing of it is written. Several batches may be in
//! flight at once (`max_in_flight`), so the next batch fills while the last one commits.

use std::{sync::Arc, time::Duration};

use sqlx::PgPool;
use tokio::{
    sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore},
    task::JoinHandle,
    time::Instant,
};

use crate::{
    enqueue::{enqueue_many, Enqueued},
    job::NewJob,
};

/// Batching knobs. See `docs/BENCHMARKS.md` for how they were chosen.
#[derive(Debug, Clone)]
pub struct IngestorConfig {
    /// Most rows in one transaction.
    pub max_batch_rows: usize,
    /// How long a batch stays open for more rows after its first one arrives.
    pub max_wait: Duration,
    /// Transactions in flight at once.
    pub max_in_flight: usize,
    /// Requests waiting for a batch; beyond this, `submit` waits (back-pressure).
    pub queue_capacity: usize,
}

impl Default for IngestorConfig {
    fn default() -> Self {
        Self {
            max_batch_rows: 500,
            max_wait: Duration::from_micros(500),
            max_in_flight: 4,
            queue_capacity: 16_384,
        }
    }
}

/// Why a submission was not committed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    /// The batch's transaction failed; nothing of it was written.
    #[error("the batch transaction failed: {0}")]
    Database(Arc<sqlx::Error>),
    /// The ingestor is shutting down and takes no more work.
    #[error("the ingestor is shut down")]
    Closed,
}

type Reply = oneshot::Sender<Result<Vec<Enqueued>, IngestError>>;

struct Request {
    jobs: Vec<NewJob>,
    reply: Reply,
}

/// A cheap, clonable handle for submitting jobs. The batcher stops once every handle is dropped
/// and the last batch has committed.
#[derive(Clone)]
pub struct Ingestor {
    tx: mpsc::Sender<Request>,
}

impl Ingestor {
    pub fn spawn(pool: PgPool, config: IngestorConfig) -> (Ingestor, JoinHandle<()>) {
        let (tx, rx) = mpsc::channel(config.queue_capacity.max(1));
        let task = tokio::spawn(run_batcher(pool, config, rx));
        (Ingestor { tx }, task)
    }

    /// Writes one job durably and returns what it resolved to.
    pub async fn submit(&self, job: NewJob) -> Result<Enqueued, IngestError> {
        let mut resolved = self.submit_all(vec![job]).await?;
        resolved.pop().ok_or(IngestError::Closed)
    }

    /// Writes several jobs durably, all in the same transaction (one webhook that carries many
    /// events is acknowledged all or nothing).
    pub async fn submit_all(&self, jobs: Vec<NewJob>) -> Result<Vec<Enqueued>, IngestError> {
        if jobs.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, resolved) = oneshot::channel();
        self.tx
            .send(Request { jobs, reply })
            .await
            .map_err(|_| IngestError::Closed)?;
        resolved.await.map_err(|_| IngestError::Closed)?
    }
}

async fn run_batcher(pool: PgPool, config: IngestorConfig, mut rx: mpsc::Receiver<Request>) {
    let in_flight = Arc::new(Semaphore::new(config.max_in_flight.max(1)));
    let max_rows = config.max_batch_rows.max(1);
    while let Some(first) = rx.recv().await {
        let deadline = Instant::now() + config.max_wait;
        let mut rows = first.jobs.len();
        let mut batch = vec![first];
        while rows < max_rows {
            // Take what is already waiting without a timer, then wait out the window.
            let next = match rx.try_recv() {
                Ok(request) => Some(request),
                Err(mpsc::error::TryRecvError::Empty) => {
                    // A timeout closes the batch, like a closed channel.
                    tokio::time::timeout_at(deadline, rx.recv())
                        .await
                        .unwrap_or_default()
                }
                Err(mpsc::error::TryRecvError::Disconnected) => None,
            };
            let Some(request) = next else { break };
            rows += request.jobs.len();
            batch.push(request);
        }
        let Ok(permit) = in_flight.clone().acquire_owned().await else {
            break;
        };
        tokio::spawn(flush(pool.clone(), batch, permit));
    }
    // Wait for the batches still committing before reporting the ingestor stopped.
    let _ = in_flight
        .acquire_many(config.max_in_flight.max(1) as u32)
        .await;
}

async fn flush(pool: PgPool, batch: Vec<Request>, _permit: OwnedSemaphorePermit) {
    // A statement error caused by a row (a value the database refuses) must fail only the request
    // that carries it: the batch is split in halves until the failing request stands alone. A
    // request's own jobs stay all or nothing (one webhook is acknowledged whole or not at all).
    let mut pending = vec![batch];
    while let Some(batch) = pending.pop() {
        let jobs: Vec<&NewJob> = batch.iter().flat_map(|request| &request.jobs).collect();
        match write_batch(&pool, &jobs).await {
            Ok(resolved) => {
                let mut resolved = resolved.into_iter();
                for request in batch {
                    let n = request.jobs.len();
                    let _ = request.reply.send(Ok(resolved.by_ref().take(n).collect()));
                }
            }
            Err(error) if batch.len() > 1 && caused_by_a_row(&error) => {
                tracing::warn!(%error, batch.requests = batch.len(), "ingest batch failed; retrying it in halves");
                let mut first = batch;
                let second = first.split_off(first.len() / 2);
                pending.push(second);
                pending.push(first);
            }
            Err(error) => {
                tracing::warn!(%error, batch.rows = jobs.len(), "ingest batch failed; every caller in it is told");
                let error = IngestError::Database(Arc::new(error));
                for request in batch {
                    let _ = request.reply.send(Err(error.clone()));
                }
            }
        }
    }
}

/// Whether a failed statement may succeed without some of its rows: the database refused a value
/// or a constraint. A lost connection or a saturated pool fails every row alike.
pub(crate) fn caused_by_a_row(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(_) | sqlx::Error::Encode(_))
}

async fn write_batch(pool: &PgPool, jobs: &[&NewJob]) -> sqlx::Result<Vec<Enqueued>> {
    let mut tx = pool.begin().await?;
    // The enqueue statement's plan does not depend on the batch's size, and planning it afresh
    // (what `db::connect_options` asks for) costs more than it saves: measured 14.3k vs 11.9k
    // enqueues/s with 64 producers.
    sqlx::query!("SET LOCAL plan_cache_mode = auto")
        .execute(&mut *tx)
        .await?;
    let resolved = enqueue_many(&mut *tx, jobs).await?;
    tx.commit().await?;
    Ok(resolved)
}
