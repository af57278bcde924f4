//! Enqueueing jobs through any executor, so a caller can enqueue inside its own transaction.
//!
//! Both functions run a single statement: the rows, their `job.queued` events and the wake-up
//! NOTIFY commit together or not at all.

use std::borrow::Borrow;

use chrono::{DateTime, Utc};
use serde_json::Value as JsonValue;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::{
    job::{JobStatus, NewJob},
    storable,
};

/// The job a [`NewJob`] resolved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Enqueued {
    pub id: i64,
    /// False when the dedupe key matched an existing job (or an earlier row of the same batch),
    /// whose id is returned instead.
    pub inserted: bool,
    /// The status of the job `id` names, as of this statement.
    pub status: JobStatus,
}

/// Enqueues one job. A duplicate dedupe key inserts nothing and returns the existing job's id.
pub async fn enqueue(executor: impl PgExecutor<'_>, job: &NewJob) -> sqlx::Result<Enqueued> {
    let mut resolved = enqueue_many(executor, std::slice::from_ref(job)).await?;
    resolved
        .pop()
        .ok_or_else(|| sqlx::Error::Protocol("enqueue returned no row".into()))
}

/// Enqueues a batch of jobs in one statement and returns one [`Enqueued`] per input, in order.
pub async fn enqueue_many<J: Borrow<NewJob>>(
    executor: impl PgExecutor<'_>,
    jobs: &[J],
) -> sqlx::Result<Vec<Enqueued>> {
    if jobs.is_empty() {
        return Ok(Vec::new());
    }
    let mut columns = Columns::with_capacity(jobs.len());
    for job in jobs {
        columns.push(job.borrow());
    }
    let rows = sqlx::query_file!(
        "sql/enqueue_many.sql",
        &columns.tenant_id,
        &columns.source_id as &[Option<Uuid>],
        &columns.kind,
        &columns.priority,
        &columns.run_at as &[Option<DateTime<Utc>>],
        &columns.max_attempts,
        &columns.dedupe_key as &[Option<String>],
        &columns.input,
        &columns.raw_body as &[Option<Vec<u8>>],
        &columns.headers as &[Option<JsonValue>],
    )
    .fetch_all(executor)
    .await?;

    if rows.len() != jobs.len() {
        return Err(sqlx::Error::Protocol(format!(
            "enqueue_many resolved {} of {} rows",
            rows.len(),
            jobs.len()
        )));
    }
    rows.into_iter()
        .map(|row| {
            Ok(Enqueued {
                id: row.id,
                inserted: row.inserted,
                status: row
                    .status
                    .parse()
                    .map_err(|error| sqlx::Error::Decode(Box::new(error)))?,
            })
        })
        .collect()
}

/// The batch as parallel arrays, the shape `unnest` takes.
struct Columns {
    tenant_id: Vec<Uuid>,
    source_id: Vec<Option<Uuid>>,
    kind: Vec<String>,
    priority: Vec<i16>,
    run_at: Vec<Option<DateTime<Utc>>>,
    max_attempts: Vec<i32>,
    dedupe_key: Vec<Option<String>>,
    input: Vec<JsonValue>,
    raw_body: Vec<Option<Vec<u8>>>,
    headers: Vec<Option<JsonValue>>,
}

impl Columns {
    fn with_capacity(n: usize) -> Self {
        Self {
            tenant_id: Vec::with_capacity(n),
            source_id: Vec::with_capacity(n),
            kind: Vec::with_capacity(n),
            priority: Vec::with_capacity(n),
            run_at: Vec::with_capacity(n),
            max_attempts: Vec::with_capacity(n),
            dedupe_key: Vec::with_capacity(n),
            input: Vec::with_capacity(n),
            raw_body: Vec::with_capacity(n),
            headers: Vec::with_capacity(n),
        }
    }

    fn push(&mut self, job: &NewJob) {
        self.tenant_id.push(job.tenant_id);
        self.source_id.push(job.source_id);
        self.kind.push(job.kind.clone());
        self.priority.push(job.priority);
        self.run_at.push(job.run_at);
        self.max_attempts.push(job.max_attempts);
        // U+0000 cannot be stored in jsonb or text; one such row would fail the whole batch.
        self.dedupe_key.push(
            job.dedupe_key
                .as_deref()
                .map(|key| storable::text(key).into_owned()),
        );
        self.input.push(storable::json_cow(&job.input).into_owned());
        self.raw_body.push(job.raw_body.clone());
        self.headers.push(
            job.headers
                .as_ref()
                .map(|headers| storable::json_cow(headers).into_owned()),
        );
    }
}
