//! Claiming work and ending attempts: `claim_batch`, `heartbeat`, and the fenced finishes
//! (`complete`, `fail`, `snooze`, `acknowledge_cancel`), all batched through one statement.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::Value as JsonValue;
use sqlx::{PgExecutor, PgPool};

use crate::{
    ingest::caused_by_a_row,
    job::{Job, JobStatus, Lease},
    outcome::FailKind,
    storable,
};

/// A [`Job`] from a row of a claim query (`sql/claim*.sql` return the whole row under the same names).
macro_rules! job_from_row {
    ($row:expr) => {{
        let row = $row;
        Job {
            id: row.id,
            tenant_id: row.tenant_id,
            source_id: row.source_id,
            kind: row.kind,
            status: row.status,
            priority: row.priority,
            run_at: row.run_at,
            attempt: row.attempt,
            max_attempts: row.max_attempts,
            lease_owner: row.lease_owner,
            lease_expires_at: row.lease_expires_at,
            cancel_requested_at: row.cancel_requested_at,
            dedupe_key: row.dedupe_key,
            input: row.input,
            raw_body: row.raw_body,
            headers: row.headers,
            result: row.result,
            last_error: row.last_error,
            replay_of: row.replay_of,
            created_at: row.created_at,
            started_at: row.started_at,
            finished_at: row.finished_at,
        }
    }};
}
pub(crate) use job_from_row;

/// The lease named no running attempt: it expired and the job was rescued (and perhaps claimed by
/// another worker), or the job was canceled. The caller's write was discarded.
#[derive(Debug, thiserror::Error)]
#[error("lease lost for job {job_id} attempt {attempt}: the job was rescued, finished or canceled by someone else")]
pub struct LeaseLost {
    pub job_id: i64,
    pub attempt: i32,
}

/// An error from a fenced write.
#[derive(Debug, thiserror::Error)]
pub enum FinishError {
    #[error(transparent)]
    LeaseLost(#[from] LeaseLost),
    #[error(transparent)]
    Database(#[from] sqlx::Error),
}

/// The stage of a job's processing that runs next (`jobs.stage`). Healing jobs start at
/// [`Stage::New`], where the deterministic lane takes them in bulk; one that needs the model to
/// heal is handed off to [`Stage::LlmHeal`], one that needs it only for the agent's reply to
/// [`Stage::Model`]. Other kinds stay at [`Stage::New`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    New,
    /// The model's lane: the agent's reply (and `llm.generate`, which starts there as `new`).
    Model,
    /// The LLM healing step, on its own share of the model's slots.
    LlmHeal,
    /// An inbound message for a source whose agent is external or forward: the agent lane makes
    /// its `agent.turn` or `agent.forward` job (see [`crate::agent`]).
    Agent,
}

impl Stage {
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::New => "new",
            Stage::Model => "model",
            Stage::LlmHeal => "llm_heal",
            Stage::Agent => "agent",
        }
    }
}

/// What a claimer takes: each kind at one stage.
#[derive(Debug, Clone, Default)]
pub struct Claimable {
    kinds: Vec<String>,
    stages: Vec<String>,
}

impl Claimable {
    /// `kinds` at [`Stage::New`], where every kind starts.
    pub fn new<S: AsRef<str>>(kinds: &[S]) -> Self {
        Self::default().with(kinds, Stage::New)
    }

    /// Adds `kinds` at `stage`.
    pub fn with<S: AsRef<str>>(mut self, kinds: &[S], stage: Stage) -> Self {
        for kind in kinds {
            self.kinds.push(kind.as_ref().to_owned());
            self.stages.push(stage.as_str().to_owned());
        }
        self
    }

    pub fn is_empty(&self) -> bool {
        self.kinds.is_empty()
    }
}

/// Claims up to `n_free_slots` ready jobs that `claimable` names for `worker_id`, fairly across
/// tenants (by their running jobs, see `sql/claim.sql`). Each claimed job is `running` with
/// `attempt` incremented and a lease of `lease` from now.
pub async fn claim_batch(
    executor: impl PgExecutor<'_>,
    worker_id: &str,
    claimable: &Claimable,
    n_free_slots: usize,
    lease: Duration,
) -> sqlx::Result<Vec<Job>> {
    claim_batch_within(executor, worker_id, claimable, n_free_slots, lease, None).await
}

/// [`claim_batch`] under a byte budget: the claimed jobs' stored input and raw body add up to at
/// most `max_bytes` (a single job larger than that is still claimed alone).
pub async fn claim_batch_within(
    executor: impl PgExecutor<'_>,
    worker_id: &str,
    claimable: &Claimable,
    n_free_slots: usize,
    lease: Duration,
    max_bytes: Option<usize>,
) -> sqlx::Result<Vec<Job>> {
    if n_free_slots == 0 || claimable.is_empty() {
        return Ok(Vec::new());
    }
    let n_free_slots = i64::try_from(n_free_slots).unwrap_or(i64::MAX);
    let rows = sqlx::query_file!(
        "sql/claim.sql",
        worker_id,
        &claimable.kinds,
        n_free_slots,
        lease.as_secs_f64(),
        &claimable.stages,
        max_bytes.map(|bytes| i64::try_from(bytes).unwrap_or(i64::MAX))
    )
    .fetch_all(executor)
    .await?;
    Ok(rows.into_iter().map(|row| job_from_row!(row)).collect())
}

/// What a heartbeat learned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Heartbeat {
    /// The lease was extended; carry on.
    Extended,
    /// The lease was extended, and cancellation was requested: stop, then `acknowledge_cancel`.
    CancelRequested,
}

/// Extends the lease of a running attempt to `lease` from now.
pub async fn heartbeat(
    executor: impl PgExecutor<'_>,
    held: &Lease,
    lease: Duration,
) -> Result<Heartbeat, FinishError> {
    let cancel_requested = sqlx::query_scalar!(
        r#"UPDATE jobs SET lease_expires_at = clock_timestamp() + make_interval(secs => $4::float8)
           WHERE id = $1 AND attempt = $2 AND lease_owner = $3 AND status = 'running'
           RETURNING cancel_requested_at IS NOT NULL AS "cancel_requested!""#,
        held.job_id,
        held.attempt,
        held.worker_id,
        lease.as_secs_f64()
    )
    .fetch_optional(executor)
    .await?
    .ok_or(LeaseLost {
        job_id: held.job_id,
        attempt: held.attempt,
    })?;
    Ok(if cancel_requested {
        Heartbeat::CancelRequested
    } else {
        Heartbeat::Extended
    })
}

/// How one attempt ended, as the worker reports it.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Succeeded {
        result: JsonValue,
    },
    Failed {
        kind: FailKind,
        error: JsonValue,
    },
    /// Run again after the delay without spending an attempt (a platform's 429 with Retry-After).
    Snoozed {
        delay: Duration,
        /// Kept in `last_error` and the attempt's audit row, when given.
        error: Option<JsonValue>,
    },
    /// The worker stopped because cancellation was requested.
    Canceled,
    /// Queue the job again at once for the lane that runs `stage`, without spending an attempt.
    HandedOff {
        stage: Stage,
    },
}

/// One attempt's end, fenced by its lease.
#[derive(Debug, Clone, PartialEq)]
pub struct Finish {
    pub lease: Lease,
    pub outcome: Outcome,
}

/// Where a finished attempt left its job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    pub job_id: i64,
    pub status: JobStatus,
    pub run_at: DateTime<Utc>,
}

/// Ends a batch of attempts in one statement: job rows, audit rows and events together.
/// Returns the attempts that were still held; a lost lease is simply absent from the result.
pub async fn finish_many(
    executor: impl PgExecutor<'_>,
    finishes: &[Finish],
) -> sqlx::Result<Vec<Finished>> {
    if finishes.is_empty() {
        return Ok(Vec::new());
    }
    let mut columns = FinishColumns::default();
    for finish in finishes {
        columns.push(finish);
    }
    let rows = sqlx::query_file!(
        "sql/finish.sql",
        &columns.job_ids,
        &columns.attempts,
        &columns.worker_ids as &[&str],
        &columns.requested as &[&str],
        &columns.results as &[Option<JsonValue>],
        &columns.errors as &[Option<JsonValue>],
        &columns.delays as &[Option<f64>],
        &columns.stages as &[Option<&str>],
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Finished {
            job_id: row.job_id,
            status: row.status,
            run_at: row.run_at,
        })
        .collect())
}

/// Ends a batch like [`finish_many`], but a value the database refuses fails only its own job: the
/// batch is split in halves until the refused finish stands alone, and that one is written as a
/// fatal failure (`unstorable_outcome`) naming the database's error. Any other error (a lost
/// connection, a saturated pool) is returned for the caller to retry; halves already written are
/// fenced by their leases, so a retry of the whole batch changes nothing twice.
pub async fn finish_many_isolated(
    pool: &PgPool,
    finishes: &[Finish],
) -> sqlx::Result<Vec<Finished>> {
    let mut finished = Vec::with_capacity(finishes.len());
    let mut pending = vec![finishes];
    while let Some(chunk) = pending.pop() {
        match finish_many(pool, chunk).await {
            Ok(rows) => finished.extend(rows),
            Err(error) if caused_by_a_row(&error) && chunk.len() > 1 => {
                let (first, second) = chunk.split_at(chunk.len() / 2);
                pending.push(second);
                pending.push(first);
            }
            Err(error) if caused_by_a_row(&error) => {
                let refused = &chunk[0];
                tracing::warn!(%error, job.id = refused.lease.job_id, "an attempt's outcome could not be written; failing the job");
                let replacement = Finish {
                    lease: refused.lease.clone(),
                    outcome: Outcome::Failed {
                        kind: FailKind::Fatal,
                        error: serde_json::json!({
                            "code": "unstorable_outcome",
                            "message": format!("the attempt's outcome could not be written: {error}"),
                        }),
                    },
                };
                finished.extend(finish_many(pool, std::slice::from_ref(&replacement)).await?);
            }
            Err(error) => return Err(error),
        }
    }
    Ok(finished)
}

/// A batch of finishes as parallel arrays, the shape `unnest` takes.
#[derive(Default)]
struct FinishColumns<'a> {
    job_ids: Vec<i64>,
    attempts: Vec<i32>,
    worker_ids: Vec<&'a str>,
    requested: Vec<&'static str>,
    results: Vec<Option<JsonValue>>,
    errors: Vec<Option<JsonValue>>,
    delays: Vec<Option<f64>>,
    stages: Vec<Option<&'static str>>,
}

impl<'a> FinishColumns<'a> {
    fn push(&mut self, finish: &'a Finish) {
        let mut stage = None;
        let (requested, result, error, delay) = match &finish.outcome {
            Outcome::Succeeded { result } => ("succeeded", Some(result.clone()), None, None),
            Outcome::Failed {
                kind: FailKind::Retryable { retry_in },
                error,
            } => (
                "retry",
                None,
                Some(error.clone()),
                Some(retry_in.as_secs_f64()),
            ),
            Outcome::Failed {
                kind: FailKind::Fatal,
                error,
            } => ("dead", None, Some(error.clone()), None),
            Outcome::Snoozed { delay, error } => {
                ("snoozed", None, error.clone(), Some(delay.as_secs_f64()))
            }
            Outcome::Canceled => ("canceled", None, None, None),
            Outcome::HandedOff { stage: next } => {
                stage = Some(next.as_str());
                ("handed_off", None, None, None)
            }
        };
        self.job_ids.push(finish.lease.job_id);
        self.attempts.push(finish.lease.attempt);
        self.worker_ids.push(&finish.lease.worker_id);
        self.requested.push(requested);
        // U+0000 cannot be stored in jsonb; one such result would fail the whole batch.
        self.results.push(result.map(|mut result| {
            storable::json(&mut result);
            result
        }));
        self.errors.push(error.map(|mut error| {
            storable::json(&mut error);
            error
        }));
        self.delays.push(delay);
        self.stages.push(stage);
    }
}

/// Ends one attempt with `outcome`, fenced by its lease ([`LeaseLost`] when it was not held).
pub async fn finish_one(
    executor: impl PgExecutor<'_>,
    lease: &Lease,
    outcome: Outcome,
) -> Result<Finished, FinishError> {
    let finish = Finish {
        lease: lease.clone(),
        outcome,
    };
    finish_many(executor, std::slice::from_ref(&finish))
        .await?
        .pop()
        .ok_or_else(|| {
            LeaseLost {
                job_id: lease.job_id,
                attempt: lease.attempt,
            }
            .into()
        })
}

/// Marks a running attempt succeeded with `result`.
pub async fn complete(
    executor: impl PgExecutor<'_>,
    lease: &Lease,
    result: JsonValue,
) -> Result<Finished, FinishError> {
    finish_one(executor, lease, Outcome::Succeeded { result }).await
}

/// Completes a batch of attempts; see [`finish_many`].
pub async fn complete_many(
    executor: impl PgExecutor<'_>,
    completions: impl IntoIterator<Item = (Lease, JsonValue)>,
) -> sqlx::Result<Vec<Finished>> {
    let finishes: Vec<Finish> = completions
        .into_iter()
        .map(|(lease, result)| Finish {
            lease,
            outcome: Outcome::Succeeded { result },
        })
        .collect();
    finish_many(executor, &finishes).await
}

/// Fails a running attempt. A retryable failure requeues the job after its delay, or kills it when
/// its attempts are spent; a fatal one kills it at once. `error` is kept in `last_error`.
pub async fn fail(
    executor: impl PgExecutor<'_>,
    lease: &Lease,
    kind: FailKind,
    error: JsonValue,
) -> Result<Finished, FinishError> {
    finish_one(executor, lease, Outcome::Failed { kind, error }).await
}

/// Puts a running job back in the queue for `delay` without spending an attempt.
pub async fn snooze(
    executor: impl PgExecutor<'_>,
    lease: &Lease,
    delay: Duration,
) -> Result<Finished, FinishError> {
    finish_one(executor, lease, Outcome::Snoozed { delay, error: None }).await
}

/// Ends a running attempt as canceled, after the worker saw the cancellation request.
pub async fn acknowledge_cancel(
    executor: impl PgExecutor<'_>,
    lease: &Lease,
) -> Result<Finished, FinishError> {
    finish_one(executor, lease, Outcome::Canceled).await
}

/// Appends a `job.progress` event for a running attempt (fenced like every other write) and tells
/// the gateways. Returns false when the lease was lost.
pub async fn progress(
    executor: impl PgExecutor<'_>,
    lease: &Lease,
    data: JsonValue,
) -> sqlx::Result<bool> {
    let data = storable::json_cow(&data);
    let row = sqlx::query!(
        r#"WITH appended AS (
               INSERT INTO events (tenant_id, job_id, type, data)
               SELECT tenant_id, id, 'job.progress', job_event_data(id, kind, status, attempt, $4::jsonb)
               FROM jobs
               WHERE id = $1 AND attempt = $2 AND lease_owner = $3 AND status = 'running'
               RETURNING seq
           )
           SELECT count(*) AS "appended!",
                  (SELECT count(*) FROM (SELECT pg_notify('sentinel_events', '')
                                         WHERE EXISTS (SELECT 1 FROM appended)) n) AS "notified!"
           FROM appended"#,
        lease.job_id,
        lease.attempt,
        lease.worker_id,
        data.as_ref()
    )
    .fetch_one(executor)
    .await?;
    Ok(row.appended > 0)
}
