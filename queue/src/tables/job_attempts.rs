//! `job_attempts`: the audit of each ended attempt (written by the queue's finishes).

use chrono::{DateTime, Utc};
use serde_json::Value as JsonValue;
use sqlx::PgExecutor;
use uuid::Uuid;

/// One ended attempt; every field `None` for a job with none (the job's own row, so a job with
/// no attempts is told from no job).
#[derive(Debug, Clone)]
pub struct AttemptRow {
    pub attempt: Option<i32>,
    pub worker_id: Option<String>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub error: Option<JsonValue>,
}

/// The attempts of the tenant's job `job_id`, in order; empty when there is no such job.
pub async fn for_job(
    executor: impl PgExecutor<'_>,
    job_id: i64,
    tenant_id: Uuid,
) -> sqlx::Result<Vec<AttemptRow>> {
    sqlx::query_as!(
        AttemptRow,
        r#"SELECT a.attempt AS "attempt?", a.worker_id AS "worker_id?", a.started_at AS "started_at?",
                      a.finished_at AS "finished_at?", a.outcome AS "outcome?", a.error
               FROM jobs j LEFT JOIN job_attempts a ON a.job_id = j.id
               WHERE j.id = $1 AND j.tenant_id = $2
               ORDER BY a.id"#,
        job_id,
        tenant_id
    )
    .fetch_all(executor)
    .await
}
