//! `jobs`, as the gateway and the outbox read and change them outside the queue's lifecycle
//! (which is `enqueue`, `claim`, `rescue` and `job`): counts, pages, bulk replay, reply approval
//! and the outbox's standing.

use chrono::{DateTime, Utc};
use serde_json::Value as JsonValue;
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::Job;

/// A tenant's count of queued jobs.
#[derive(Debug, Clone, Copy)]
pub struct TenantCount {
    pub tenant_id: Uuid,
    pub n: i64,
}

/// Every tenant's count of queued jobs (tenants with none are left out).
pub async fn queued_by_tenant(executor: impl PgExecutor<'_>) -> sqlx::Result<Vec<TenantCount>> {
    sqlx::query_as!(
        TenantCount,
        r#"SELECT tenant_id, count(*) AS "n!" FROM jobs WHERE status = 'queued' GROUP BY tenant_id"#
    )
    .fetch_all(executor)
    .await
}

/// The count of jobs in one status.
#[derive(Debug, Clone)]
pub struct StatusCount {
    pub status: String,
    pub n: i64,
}

/// The count of jobs in each status (statuses with none are left out).
pub async fn count_by_status(executor: impl PgExecutor<'_>) -> sqlx::Result<Vec<StatusCount>> {
    sqlx::query_as!(
        StatusCount,
        r#"SELECT status AS "status!", count(*) AS "n!" FROM jobs GROUP BY status"#
    )
    .fetch_all(executor)
    .await
}

/// Which of a tenant's jobs a page lists; `None` matches any.
#[derive(Debug, Clone, Copy)]
pub struct ListFilter<'a> {
    pub tenant_id: Uuid,
    pub status: Option<&'a str>,
    pub kind: Option<&'a str>,
    pub source_id: Option<Uuid>,
    /// Only ids below this one (the cursor).
    pub before: Option<i64>,
}

/// A job of a page, with the bytes of `input`, `result` and `last_error` (as text) of the page up
/// to and including it.
#[derive(Debug, Clone, Copy)]
pub struct PageEntry {
    pub id: i64,
    pub bytes_through: i64,
}

/// The newest `limit` jobs that `filter` matches, newest first, each with the bytes of the page
/// through it.
pub async fn page_bytes(
    executor: impl PgExecutor<'_>,
    filter: ListFilter<'_>,
    limit: i64,
) -> sqlx::Result<Vec<PageEntry>> {
    sqlx::query_as!(
        PageEntry,
        r#"SELECT id AS "id!",
                      (sum(bytes) OVER (ORDER BY id DESC ROWS UNBOUNDED PRECEDING))::bigint AS "bytes_through!"
               FROM (SELECT id,
                            octet_length(input::text)::bigint
                              + coalesce(octet_length(result::text), 0)
                              + coalesce(octet_length(last_error::text), 0) AS bytes
                     FROM jobs
                     WHERE tenant_id = $1
                       AND ($2::text IS NULL OR status = $2)
                       AND ($3::text IS NULL OR kind = $3)
                       AND ($4::uuid IS NULL OR source_id = $4)
                       AND ($5::bigint IS NULL OR id < $5)
                     ORDER BY id DESC
                     LIMIT $6) AS page
               ORDER BY id DESC"#,
        filter.tenant_id,
        filter.status,
        filter.kind,
        filter.source_id,
        filter.before,
        limit
    )
    .fetch_all(executor)
    .await
}

/// What the API shows of a job: never `raw_body` or `headers`, which can be as large again.
#[derive(Debug, Clone)]
pub struct JobSummary {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub priority: i16,
    pub source_id: Option<Uuid>,
    pub input: JsonValue,
    pub result: Option<JsonValue>,
    pub last_error: Option<JsonValue>,
    pub replay_of: Option<i64>,
    pub created_at: DateTime<Utc>,
    pub started_at: Option<DateTime<Utc>>,
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<Job> for JobSummary {
    fn from(job: Job) -> Self {
        JobSummary {
            id: job.id,
            kind: job.kind,
            status: job.status.as_str().to_owned(),
            attempt: job.attempt,
            max_attempts: job.max_attempts,
            priority: job.priority,
            source_id: job.source_id,
            input: job.input,
            result: job.result,
            last_error: job.last_error,
            replay_of: job.replay_of,
            created_at: job.created_at,
            started_at: job.started_at,
            finished_at: job.finished_at,
        }
    }
}

/// The tenant's jobs among `ids`, newest first.
pub async fn summaries(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    ids: &[i64],
) -> sqlx::Result<Vec<JobSummary>> {
    sqlx::query_as!(
        JobSummary,
        r#"SELECT id, kind, status, attempt, max_attempts, priority, source_id, input, result,
                      last_error, replay_of, created_at, started_at, finished_at
               FROM jobs WHERE tenant_id = $1 AND id = ANY($2) ORDER BY id DESC"#,
        tenant_id,
        ids
    )
    .fetch_all(executor)
    .await
}

/// Takes the tenant's bulk-replay lock for the rest of the transaction, without waiting: false
/// when another bulk replay of the tenant holds it.
pub async fn try_lock_bulk_replay(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT pg_try_advisory_xact_lock(hashtextextended('replay_jobs:' || $1::text, 0)) AS "locked!""#,
        tenant_id.to_string()
    )
    .fetch_one(executor)
    .await
}

/// Which finished jobs of a tenant a bulk replay takes (the SQL function `replay_jobs`).
#[derive(Debug, Clone, Copy)]
pub struct BulkReplayFilter<'a> {
    pub tenant_id: Uuid,
    pub status: &'a str,
    pub kind: Option<&'a str>,
    pub source_id: Option<Uuid>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// The ids of at most `limit` jobs `filter` takes, oldest first, replaying none (a dry run of
/// `replay_jobs`).
pub async fn bulk_replay_matches(
    executor: impl PgExecutor<'_>,
    filter: BulkReplayFilter<'_>,
    limit: i32,
) -> sqlx::Result<Vec<i64>> {
    sqlx::query_scalar!(
        r#"SELECT job_id AS "id!" FROM replay_jobs($1, $2, $3, $4, $5, $6, $7, true)"#,
        filter.tenant_id,
        filter.status,
        filter.kind,
        filter.source_id,
        filter.since,
        filter.until,
        limit
    )
    .fetch_all(executor)
    .await
}

/// A job and its replay.
#[derive(Debug, Clone, Copy)]
pub struct Replayed {
    pub id: i64,
    pub replay_id: i64,
}

/// Replays each job of `ids`, in order (`replay_job`).
pub async fn replay_each(
    executor: impl PgExecutor<'_>,
    ids: &[i64],
) -> sqlx::Result<Vec<Replayed>> {
    sqlx::query_as!(
        Replayed,
        r#"SELECT id AS "id!", replay_job(id) AS "replay_id!"
                   FROM unnest($1::bigint[]) WITH ORDINALITY AS m (id, ord) ORDER BY ord"#,
        ids
    )
    .fetch_all(executor)
    .await
}

/// Replays job `id` (`replay_job`), whoever's it is: the replay's id.
pub async fn replay_job(executor: impl PgExecutor<'_>, id: i64) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT replay_job($1) AS "id!""#, id)
        .fetch_one(executor)
        .await
}

/// What approving a job's skipped reply needs to know of it.
#[derive(Debug, Clone)]
pub struct ReplyApproval {
    pub kind: String,
    pub status: String,
    /// `result.reply_skipped`.
    pub reply_skipped: Option<JsonValue>,
    /// A replay of it carries `reply_approved` already.
    pub approved: bool,
}

/// The tenant's job `id`, its row locked for the rest of the transaction, so two approvals at
/// once make one reply.
pub async fn lock_for_reply_approval(
    executor: impl PgExecutor<'_>,
    id: i64,
    tenant_id: Uuid,
) -> sqlx::Result<Option<ReplyApproval>> {
    sqlx::query_as!(
        ReplyApproval,
        r#"SELECT kind, status, result -> 'reply_skipped' AS reply_skipped,
                      EXISTS (SELECT 1 FROM jobs r WHERE r.replay_of = j.id AND r.input ? 'reply_approved')
                          AS "approved!"
               FROM jobs j WHERE id = $1 AND tenant_id = $2 FOR UPDATE"#,
        id,
        tenant_id
    )
    .fetch_optional(executor)
    .await
}

/// Marks job `id`'s input `reply_approved`, which the worker's reply policy honours.
pub async fn mark_reply_approved(executor: impl PgExecutor<'_>, id: i64) -> sqlx::Result<()> {
    sqlx::query!(
        "UPDATE jobs SET input = input || jsonb_build_object('reply_approved', true) WHERE id = $1",
        id
    )
    .execute(executor)
    .await
    .map(|_| ())
}

/// A tenant's jobs by status, and the age of its oldest ready job.
#[derive(Debug, Clone, Copy)]
pub struct TenantTotals {
    pub queued: i64,
    pub running: i64,
    pub succeeded: i64,
    pub dead: i64,
    pub canceled: i64,
    pub oldest_queued_age_ms: Option<i64>,
}

/// The tenant's job counts by status and the age of its oldest ready job.
pub async fn tenant_totals(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
) -> sqlx::Result<TenantTotals> {
    sqlx::query_as!(
        TenantTotals,
        r#"SELECT count(*) FILTER (WHERE status = 'queued') AS "queued!",
                      count(*) FILTER (WHERE status = 'running') AS "running!",
                      count(*) FILTER (WHERE status = 'succeeded') AS "succeeded!",
                      count(*) FILTER (WHERE status = 'dead') AS "dead!",
                      count(*) FILTER (WHERE status = 'canceled') AS "canceled!",
                      (extract(epoch FROM now() - min(run_at) FILTER (WHERE status = 'queued' AND run_at <= now())) * 1000)::bigint
                          AS oldest_queued_age_ms
               FROM jobs WHERE tenant_id = $1"#,
        tenant_id
    )
    .fetch_one(executor)
    .await
}

/// The jobs of a tenant that finished in one minute, by how.
#[derive(Debug, Clone, Copy)]
pub struct MinuteTotals {
    pub minute: DateTime<Utc>,
    pub succeeded: i64,
    pub dead: i64,
    pub canceled: i64,
}

/// The tenant's finished jobs in each of the last 15 minutes (this one included), oldest first.
pub async fn finished_per_minute(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
) -> sqlx::Result<Vec<MinuteTotals>> {
    sqlx::query_as!(
        MinuteTotals,
        r#"SELECT minute AS "minute!",
                      count(j.id) FILTER (WHERE j.status = 'succeeded') AS "succeeded!",
                      count(j.id) FILTER (WHERE j.status = 'dead') AS "dead!",
                      count(j.id) FILTER (WHERE j.status = 'canceled') AS "canceled!"
               FROM generate_series(date_trunc('minute', now()) - interval '14 minutes',
                                    date_trunc('minute', now()), interval '1 minute') AS minute
               LEFT JOIN jobs j ON j.tenant_id = $1
                               AND j.finished_at >= minute AND j.finished_at < minute + interval '1 minute'
               GROUP BY minute ORDER BY minute"#,
        tenant_id
    )
    .fetch_all(executor)
    .await
}

/// A job's kind and whether its cancellation was asked for.
#[derive(Debug, Clone)]
pub struct KindAndCancel {
    pub kind: String,
    pub cancel_requested: bool,
}

/// The kind of the tenant's job `id`, and whether its cancellation was asked for.
pub async fn kind_and_cancel(
    executor: impl PgExecutor<'_>,
    id: i64,
    tenant_id: Uuid,
) -> sqlx::Result<Option<KindAndCancel>> {
    sqlx::query_as!(
        KindAndCancel,
        r#"SELECT kind, cancel_requested_at IS NOT NULL AS "cancel_requested!"
           FROM jobs WHERE id = $1 AND tenant_id = $2"#,
        id,
        tenant_id
    )
    .fetch_optional(executor)
    .await
}

/// What the database says about a reply before it is sent.
#[derive(Debug, Clone)]
pub struct OutboxStanding {
    /// The source's reply credentials; `None` when it has none or was deleted.
    pub reply: Option<JsonValue>,
    /// The source's `reply_ttl` in seconds, or the default given.
    pub reply_ttl: i32,
    /// The database's clock (the one `created_at` was written with).
    pub now: DateTime<Utc>,
    /// Older replies of the same source and conversation that are not final yet.
    pub older: i64,
    /// The oldest of them.
    pub first_id: Option<i64>,
    /// When the earliest of them may run.
    pub next_run_at: Option<DateTime<Utc>>,
}

/// One statement: the credentials and ttl of source `source_id` (`default_reply_ttl_secs` when it
/// sets none), the database's clock, and the older undelivered replies of the conversation of
/// `reply.deliver` job `job_id` (through the partial index jobs_reply_order).
pub async fn outbox_standing(
    executor: impl PgExecutor<'_>,
    source_id: Uuid,
    job_id: i64,
    default_reply_ttl_secs: i32,
) -> sqlx::Result<OutboxStanding> {
    sqlx::query_as!(
        OutboxStanding,
        r#"SELECT s.reply AS "reply?", coalesce(s.reply_ttl, $3::int4) AS "reply_ttl!",
                      now() AS "now!", older.n AS "older!", older.first_id, older.next_run_at
               FROM (SELECT 1) one
               LEFT JOIN sources s ON s.id = $1 AND s.deleted_at IS NULL
               CROSS JOIN LATERAL (
                   SELECT count(*) AS n, min(o.id) AS first_id, min(o.run_at) AS next_run_at
                   FROM jobs o
                   WHERE o.kind = 'reply.deliver' AND o.status IN ('queued', 'running')
                     AND o.source_id = $1
                     AND reply_conversation(o.input) = (SELECT reply_conversation(input) FROM jobs WHERE id = $2)
                     AND o.id < $2
               ) older"#,
        source_id,
        job_id,
        default_reply_ttl_secs,
    )
    .fetch_one(executor)
    .await
}

/// Whether the tenant has a job of one of `kinds` ready for the worker API to claim (queued and
/// due), read from the partial index jobs_worker_claim, whose predicate this repeats word for word:
/// the look a claim takes before it locks anything.
pub async fn any_ready_for_worker_api(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    kinds: &[String],
) -> sqlx::Result<bool> {
    sqlx::query_scalar!(
        r#"SELECT EXISTS (
               SELECT 1 FROM jobs
               WHERE tenant_id = $1 AND kind = ANY($2) AND status = 'queued' AND run_at <= now()
                 AND kind <> ALL (sentinel_builtin_kinds())
           ) AS "ready!""#,
        tenant_id,
        kinds
    )
    .fetch_one(executor)
    .await
}

/// The running jobs of one tenant, kind and source (`None`: jobs without a source).
#[derive(Debug, Clone)]
pub struct RunningCount {
    pub tenant_id: Uuid,
    pub kind: String,
    pub source_id: Option<Uuid>,
    pub running: i64,
}

/// The running jobs of `kinds` of `tenants`, by tenant, kind and source (through the partial
/// index jobs_running_tenant). The capped claims' count ([`crate::caps::Running`]).
pub async fn count_running(
    executor: impl PgExecutor<'_>,
    tenants: &[Uuid],
    kinds: &[String],
) -> sqlx::Result<Vec<RunningCount>> {
    sqlx::query_as!(
        RunningCount,
        r#"SELECT tenant_id, kind, source_id, count(*) AS "running!" FROM jobs
           WHERE status = 'running' AND tenant_id = ANY($1) AND kind = ANY($2)
           GROUP BY tenant_id, kind, source_id"#,
        tenants,
        kinds
    )
    .fetch_all(executor)
    .await
}
