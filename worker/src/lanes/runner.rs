//! The claim loop: GPU-aware admission (never more jobs in flight than free slots), wake-ups on
//! LISTEN/NOTIFY with a poll fallback, heartbeats that extend the lease and notice cancellation,
//! fenced finishes, and a drain on shutdown that finishes or releases what it holds.

use std::{future::Future, panic::AssertUnwindSafe, pin::Pin, sync::Arc, time::Duration};

use futures::FutureExt;

use sentinel_queue::{
    acknowledge_cancel, agent, claim::FinishError, claim_batch, finish_many_isolated, heartbeat,
    Claimable, FailKind, Finish, Heartbeat, Job, JobError, JobResult, Lease, Outcome, RetryPolicy,
    Waiter,
};
use sqlx::PgPool;
use tokio::{
    sync::{watch, Notify, Semaphore},
    task::JoinSet,
};

pub use crate::attempt::JobContext;

pub type HandlerFuture = Pin<Box<dyn Future<Output = JobResult> + Send>>;

/// Runs one job to its result, or says how it failed ([`JobError`]); the runner decides what
/// that means for the job ([`RetryPolicy::decide`], with the kind's policy).
pub type Handler = Arc<dyn Fn(Job, JobContext) -> HandlerFuture + Send + Sync>;

/// What a lane claims.
#[derive(Clone)]
pub enum Claims {
    /// These kinds at these stages, fairly across tenants (`claim_batch`).
    Kinds(Claimable),
    /// `agent.forward` jobs, within each source's `max_in_flight` and `tenant_max` running
    /// forwards per tenant, across all workers (`agent::claim_forwards`).
    Forwards { tenant_max: usize },
}

impl Claims {
    /// Whether a job's end can make another claimable when free slots found nothing: a finished
    /// forward frees a place under its source's `max_in_flight`, which no notification announces.
    fn freed_by_finishes(&self) -> bool {
        matches!(self, Claims::Forwards { .. })
    }

    async fn claim(
        &self,
        pool: &PgPool,
        worker_id: &str,
        n: usize,
        lease: Duration,
    ) -> sqlx::Result<Vec<Job>> {
        match self {
            Claims::Kinds(claimable) => claim_batch(pool, worker_id, claimable, n, lease).await,
            Claims::Forwards { tenant_max } => {
                agent::claim_forwards(pool, worker_id, n, *tenant_max, lease.as_secs_f64()).await
            }
        }
    }
}

#[derive(Clone)]
pub struct RunnerConfig {
    pub worker_id: String,
    pub claims: Claims,
    /// Jobs in flight at once: the claim slots.
    pub max_slots: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
}

/// Claims and runs jobs until `shutdown` turns true, then drains: in-flight jobs get until the end
/// of their lease to finish; any still running then are released (requeued without spending an
/// attempt).
pub async fn run(
    pool: PgPool,
    config: RunnerConfig,
    mut waiter: Waiter,
    handler: Handler,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut in_flight = InFlight::new(config.max_slots);
    loop {
        if *shutdown.borrow() {
            break;
        }
        waiter.mark_seen();
        let claimed_all_free = in_flight.claim_and_start(&pool, &config, &handler).await;
        while in_flight.running.try_join_next().is_some() {}
        let full = in_flight.slots.available_permits() == 0;
        if claimed_all_free {
            // More work may be waiting: claim again as soon as a slot frees up.
            if full {
                tokio::select! {
                    _ = in_flight.freed.notified() => {}
                    _ = shutdown.wait_for(|stop| *stop) => break,
                }
            }
            continue;
        }
        tokio::select! {
            _ = waiter.wait(config.poll_interval) => {}
            _ = in_flight.freed.notified(), if full || config.claims.freed_by_finishes() => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    in_flight.drain(config.lease).await;
}

/// The jobs a runner has in flight, at most one per slot.
struct InFlight {
    slots: Arc<Semaphore>,
    /// Notified each time a job ends and frees its slot.
    freed: Arc<Notify>,
    running: JoinSet<()>,
}

impl InFlight {
    fn new(max_slots: usize) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max_slots.max(1))),
            freed: Arc::new(Notify::new()),
            running: JoinSet::new(),
        }
    }

    /// Claims as many jobs as there are free slots and starts each; true when the claim filled
    /// every free slot.
    async fn claim_and_start(
        &mut self,
        pool: &PgPool,
        config: &RunnerConfig,
        handler: &Handler,
    ) -> bool {
        let free = self.slots.available_permits();
        if free == 0 {
            return false;
        }
        let jobs = match config
            .claims
            .claim(pool, &config.worker_id, free, config.lease)
            .await
        {
            Ok(jobs) => jobs,
            Err(error) => {
                tracing::warn!(%error, "claim failed; retrying after the poll interval");
                return false;
            }
        };
        let claimed_all_free = jobs.len() == free;
        for job in jobs {
            let Ok(permit) = self.slots.clone().try_acquire_owned() else {
                break;
            };
            let (pool, handler, freed, lease) = (
                pool.clone(),
                handler.clone(),
                self.freed.clone(),
                config.lease,
            );
            self.running.spawn(async move {
                run_job(pool, job, handler, lease).await;
                drop(permit);
                freed.notify_one();
            });
        }
        claimed_all_free
    }

    /// Gives the jobs in flight until the end of their lease to finish, then releases the rest.
    async fn drain(mut self, lease: Duration) {
        let in_flight = self.running.len();
        if in_flight > 0 {
            tracing::info!(
                jobs.in_flight = in_flight,
                "draining: waiting for in-flight jobs"
            );
        }
        let drained = tokio::time::timeout(lease, async {
            while self.running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            // run_job releases its job when aborted mid-way (see ReleaseOnDrop).
            self.running.shutdown().await;
        }
    }
}

/// Runs one job with heartbeats, then ends its attempt with a fenced write.
async fn run_job(pool: PgPool, job: Job, handler: Handler, lease_length: Duration) {
    let Some(lease) = job.lease() else { return };
    let release = ReleaseOnDrop::new(pool.clone(), lease.clone());
    let (cancel_tx, cancel_rx) = watch::channel(false);
    let context = JobContext {
        lease: lease.clone(),
        canceled: cancel_rx,
    };
    // A panic is a failed attempt like any other: caught here, it spends an attempt and retries
    // with backoff, so a job that always panics ends dead instead of being requeued forever.
    let policy = RetryPolicy::for_kind(&job.kind);
    let work = AssertUnwindSafe(handler(job, context))
        .catch_unwind()
        .map(move |caught| caught.unwrap_or_else(|panic| Err(panicked(&*panic))));
    tokio::pin!(work);
    let mut ticker = tokio::time::interval((lease_length / 3).max(Duration::from_millis(100)));
    ticker.tick().await;
    let ended = loop {
        tokio::select! {
            result = &mut work => break Some(result),
            _ = ticker.tick() => match heartbeat(&pool, &lease, lease_length).await {
                Ok(Heartbeat::Extended) => {}
                Ok(Heartbeat::CancelRequested) => { let _ = cancel_tx.send(true); }
                Err(FinishError::LeaseLost(lost)) => {
                    tracing::warn!(job.id = lost.job_id, "lease lost; abandoning the job");
                    break None;
                }
                Err(error) => tracing::warn!(job.id = lease.job_id, %error, "heartbeat failed; retrying"),
            },
        }
    };
    release.disarm();
    let Some(result) = ended else { return };
    let outcome = policy.decide(lease.attempt, result);
    log_failure(&lease, &outcome);
    let result = if *cancel_tx.borrow() && !matches!(outcome, Outcome::Succeeded { .. }) {
        acknowledge_cancel(&pool, &lease).await.map(|_| ())
    } else {
        finish_many_isolated(
            &pool,
            &[Finish {
                lease: lease.clone(),
                outcome,
            }],
        )
        .await
        .map_err(FinishError::from)
        .and_then(|finished| {
            if finished.is_empty() {
                Err(FinishError::LeaseLost(sentinel_queue::LeaseLost {
                    job_id: lease.job_id,
                    attempt: lease.attempt,
                }))
            } else {
                Ok(())
            }
        })
    };
    if let Err(error) = result {
        tracing::warn!(job.id = lease.job_id, %error, "could not record the job's outcome");
    }
}

/// The failure of an attempt whose handler panicked: retried with backoff, spending the attempt.
pub fn panicked(panic: &(dyn std::any::Any + Send)) -> JobError {
    let message = panic
        .downcast_ref::<&str>()
        .map(|text| text.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".into());
    JobError::retry("handler_panicked", message)
}

/// Logs a failed attempt with its error (errors never carry secrets: see `deliver`).
pub fn log_failure(lease: &Lease, outcome: &Outcome) {
    if let Outcome::Failed { kind, error } = outcome {
        let retry = matches!(kind, FailKind::Retryable { .. });
        tracing::warn!(
            job.id = lease.job_id,
            job.attempt = lease.attempt,
            job.retry = retry,
            error = %error,
            "job attempt failed"
        );
    }
}

/// Requeues a job (without spending an attempt) if its task is dropped before it finished, so a
/// drain that runs out of time hands the job back instead of leaving it to the rescuer.
struct ReleaseOnDrop {
    pool: PgPool,
    lease: Option<Lease>,
}

impl ReleaseOnDrop {
    fn new(pool: PgPool, lease: Lease) -> Self {
        Self {
            pool,
            lease: Some(lease),
        }
    }

    fn disarm(mut self) {
        self.lease = None;
    }
}

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        if let Some(lease) = self.lease.take() {
            let pool = self.pool.clone();
            tokio::spawn(async move {
                if let Err(error) = sentinel_queue::snooze(&pool, &lease, Duration::ZERO).await {
                    tracing::warn!(job.id = lease.job_id, %error, "could not release the job");
                }
            });
        }
    }
}
