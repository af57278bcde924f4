//! The job model: statuses, the row, what a caller enqueues, the lease that fences a worker's
//! writes, and the operations on a job as a whole (cancel, replay).

use std::{fmt, str::FromStr};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;
use sqlx::{
    encode::IsNull,
    error::BoxDynError,
    postgres::{PgArgumentBuffer, PgTypeInfo, PgValueRef},
    Decode, Encode, PgExecutor, Postgres, Type,
};
use uuid::Uuid;

/// Where a job is in its life. Stored as text in `jobs.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Queued,
    Running,
    Succeeded,
    Dead,
    Canceled,
}

impl JobStatus {
    pub const ALL: [JobStatus; 5] = [
        JobStatus::Queued,
        JobStatus::Running,
        JobStatus::Succeeded,
        JobStatus::Dead,
        JobStatus::Canceled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Queued => "queued",
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Dead => "dead",
            JobStatus::Canceled => "canceled",
        }
    }

    /// True once the job will not run again (unless replayed as a new job).
    pub fn is_final(self) -> bool {
        matches!(
            self,
            JobStatus::Succeeded | JobStatus::Dead | JobStatus::Canceled
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown status string.
#[derive(Debug, thiserror::Error)]
#[error("unknown job status {0:?}; expected one of queued, running, succeeded, dead, canceled")]
pub struct UnknownStatus(pub String);

impl FromStr for JobStatus {
    type Err = UnknownStatus;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        JobStatus::ALL
            .into_iter()
            .find(|status| status.as_str() == s)
            .ok_or_else(|| UnknownStatus(s.to_owned()))
    }
}

impl Type<Postgres> for JobStatus {
    fn type_info() -> PgTypeInfo {
        <&str as Type<Postgres>>::type_info()
    }

    fn compatible(ty: &PgTypeInfo) -> bool {
        <&str as Type<Postgres>>::compatible(ty)
    }
}

impl<'r> Decode<'r, Postgres> for JobStatus {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        Ok(<&str as Decode<Postgres>>::decode(value)?.parse()?)
    }
}

impl Encode<'_, Postgres> for JobStatus {
    fn encode_by_ref(&self, buf: &mut PgArgumentBuffer) -> Result<IsNull, BoxDynError> {
        <&str as Encode<Postgres>>::encode(self.as_str(), buf)
    }
}

/// One row of `jobs`.
#[derive(Debug, Clone, Serialize)]
pub struct Job {
    pub id: i64,
    pub tenant_id: Uuid,
    pub source_id: Option<Uuid>,
    pub kind: String,
    pub status: JobStatus,
    pub priority: i16,
    pub run_at: DateTime<Utc>,
    pub attempt: i32,
    pub max_attempts: i32,
    pub lease_owner: Option<String>,
    pub lease_expires_at: Option<DateTime<Utc>>,
    pub cancel_requested_at: Option<DateTime<Utc>>,
    pub dedupe_key: Option<String>,
    pub input: JsonValue,
    #[serde(skip)]
    pub raw_body: Option<Vec<u8>>,
    pub headers: Option<JsonValue>,
    pub result: Option<JsonValue>,
    pub last_error: Option<JsonValue>,
    pub replay_of: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl Job {
    /// The fencing token of the attempt this row is in, if it is running.
    pub fn lease(&self) -> Option<Lease> {
        self.lease_owner.as_ref().map(|owner| Lease {
            job_id: self.id,
            attempt: self.attempt,
            worker_id: owner.clone(),
        })
    }

    /// Reads one job by id.
    pub async fn fetch(executor: impl PgExecutor<'_>, job_id: i64) -> sqlx::Result<Option<Job>> {
        sqlx::query_as!(
            Job,
            r#"SELECT id, tenant_id, source_id, kind, status AS "status: JobStatus", priority, run_at,
                      attempt, max_attempts, lease_owner, lease_expires_at, cancel_requested_at,
                      dedupe_key, input, raw_body, headers, result, last_error, replay_of,
                      created_at, started_at, finished_at
               FROM jobs WHERE id = $1"#,
            job_id
        )
        .fetch_optional(executor)
        .await
    }

    /// Reads several jobs by id, in the order of `ids`.
    pub async fn fetch_many(executor: impl PgExecutor<'_>, ids: &[i64]) -> sqlx::Result<Vec<Job>> {
        sqlx::query_as!(
            Job,
            r#"SELECT j.id, tenant_id, source_id, kind, status AS "status: JobStatus", priority, run_at,
                      attempt, max_attempts, lease_owner, lease_expires_at, cancel_requested_at,
                      dedupe_key, input, raw_body, headers, result, last_error, replay_of,
                      created_at, started_at, finished_at
               FROM unnest($1::int8[]) WITH ORDINALITY AS wanted (id, ord)
               JOIN jobs j ON j.id = wanted.id
               ORDER BY wanted.ord"#,
            ids
        )
        .fetch_all(executor)
        .await
    }
}

/// What a caller hands to [`crate::enqueue`] or the [`crate::Ingestor`].
#[derive(Debug, Clone)]
pub struct NewJob {
    pub tenant_id: Uuid,
    pub source_id: Option<Uuid>,
    pub kind: String,
    pub priority: i16,
    /// When the job may first run; `None` means now (the database's clock).
    pub run_at: Option<DateTime<Utc>>,
    pub max_attempts: i32,
    /// A platform event id or an `Idempotency-Key`: a second job with the same key for the same
    /// tenant and source is never created.
    pub dedupe_key: Option<String>,
    pub input: JsonValue,
    /// The exact bytes received from a platform.
    pub raw_body: Option<Vec<u8>>,
    pub headers: Option<JsonValue>,
}

impl NewJob {
    pub const DEFAULT_MAX_ATTEMPTS: i32 = 5;

    /// A job of `kind` for `tenant_id` with the defaults: priority 0, now, 5 attempts.
    pub fn new(tenant_id: Uuid, kind: impl Into<String>, input: JsonValue) -> Self {
        Self {
            tenant_id,
            source_id: None,
            kind: kind.into(),
            priority: 0,
            run_at: None,
            max_attempts: Self::DEFAULT_MAX_ATTEMPTS,
            dedupe_key: None,
            input,
            raw_body: None,
            headers: None,
        }
    }

    pub fn with_dedupe_key(mut self, key: impl Into<String>) -> Self {
        self.dedupe_key = Some(key.into());
        self
    }

    pub fn with_max_attempts(mut self, max_attempts: i32) -> Self {
        self.max_attempts = max_attempts.max(1);
        self
    }

    pub fn with_source(mut self, source_id: Uuid) -> Self {
        self.source_id = Some(source_id);
        self
    }
}

/// The fencing token of one attempt: a write that names a job must also name the attempt and the
/// worker that owns it, so a worker whose lease expired cannot overwrite a rescued job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    pub job_id: i64,
    pub attempt: i32,
    pub worker_id: String,
}

/// What [`cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CancelOutcome {
    /// The job was queued and is now canceled.
    Canceled,
    /// The job is running; its worker sees the request at its next heartbeat.
    Requested,
    /// The job had already finished; nothing changed.
    AlreadyFinished(JobStatus),
    /// No such job for this tenant.
    NotFound,
}

/// Cancels a tenant's job: a queued job at once, a running one by request.
pub async fn cancel(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    job_id: i64,
) -> sqlx::Result<CancelOutcome> {
    let row = sqlx::query_file!("sql/cancel.sql", job_id, tenant_id)
        .fetch_optional(executor)
        .await?;
    let Some(row) = row else {
        return Ok(CancelOutcome::NotFound);
    };
    let status: JobStatus = row
        .status
        .parse()
        .map_err(|error| sqlx::Error::Decode(Box::new(error)))?;
    Ok(match (row.changed.unwrap_or(false), status) {
        (true, JobStatus::Canceled) => CancelOutcome::Canceled,
        (_, JobStatus::Running | JobStatus::Queued) => CancelOutcome::Requested,
        (_, status) => CancelOutcome::AlreadyFinished(status),
    })
}

/// Replays a tenant's job as a new queued job whose `replay_of` names the original. This calls the
/// SQL function `replay_job`, so the API and an operator's `SELECT replay_job(id)` do the same thing.
/// Returns `None` when the tenant has no such job.
pub async fn replay(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    job_id: i64,
) -> sqlx::Result<Option<i64>> {
    sqlx::query_scalar!(
        r#"SELECT replay_job(id) AS "new_id!" FROM jobs WHERE id = $1 AND tenant_id = $2"#,
        job_id,
        tenant_id
    )
    .fetch_optional(executor)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_round_trip_and_unknown_ones_are_named() {
        for status in JobStatus::ALL {
            assert_eq!(status.as_str().parse::<JobStatus>().unwrap(), status);
        }
        let error = "paused".parse::<JobStatus>().unwrap_err().to_string();
        assert!(error.contains("\"paused\""), "{error}");
    }
}
