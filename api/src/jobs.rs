//! `/v1/jobs` and `/v1/stats`: the async job API, scoped to the caller's tenant (another tenant's
//! job id answers 404).

use std::sync::Arc;

use base64::Engine as _;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Header, Path, Query},
    payload::Json,
    ApiResponse, Object, OpenApi,
};
use sentinel_queue::{
    cancel, conversations, enqueue, kinds, replay,
    tables::{self, job_attempts},
    CancelOutcome, Job, JobStatus, NewJob,
};
use serde_json::Value as JsonValue;
use uuid::Uuid;

use crate::{admission, auth::TenantAuth, error::ApiError, ApiTags, AppState};

#[derive(Debug, Object)]
pub struct CreateJob {
    /// `payload.heal` or `llm.generate`, which Sentinel's worker runs; or a kind of your own, which
    /// your workers claim through `/v1/worker/claim`. A kind of your own has 1 to 64 characters:
    /// lowercase ASCII letters, digits, `_` and `-`, in segments separated by single dots, starting
    /// with a letter (for example `doc.summarise`). Sentinel's kinds (`webhook.inbound`,
    /// `payload.heal`, `llm.generate`, `reply.deliver`, `agent.turn`, `agent.forward`) and names
    /// starting with `sentinel.` are reserved.
    #[oai(validator(min_length = 1, max_length = 64))]
    pub kind: String,
    /// `payload.heal`: `{payload, platform?}`, the payload as text (the raw body as received) or
    /// as JSON (an object or a list). `llm.generate`: `{messages, json_schema?, max_tokens?}`.
    /// A kind of your own: any JSON your workers take.
    pub input: JsonValue,
    /// Lower runs first; default 0.
    #[oai(validator(minimum(value = "-1000"), maximum(value = "1000")))]
    pub priority: Option<i16>,
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub max_attempts: Option<i32>,
    /// Not before this time; default now.
    pub run_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
pub struct JobAccepted {
    pub id: i64,
    pub status: String,
}

#[derive(Debug, Object)]
pub struct JobView {
    pub id: i64,
    pub kind: String,
    pub status: String,
    pub attempt: i32,
    pub max_attempts: i32,
    pub priority: i16,
    #[oai(nullable)]
    pub source_id: Option<Uuid>,
    pub input: JsonValue,
    #[oai(nullable)]
    pub result: Option<JsonValue>,
    #[oai(nullable)]
    pub last_error: Option<JsonValue>,
    #[oai(nullable)]
    pub replay_of: Option<i64>,
    pub created_at: DateTime<Utc>,
    #[oai(nullable)]
    pub started_at: Option<DateTime<Utc>>,
    #[oai(nullable)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<tables::jobs::JobSummary> for JobView {
    fn from(job: tables::jobs::JobSummary) -> Self {
        JobView {
            id: job.id,
            kind: job.kind,
            status: job.status,
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

impl From<Job> for JobView {
    fn from(job: Job) -> Self {
        tables::jobs::JobSummary::from(job).into()
    }
}

/// The canonical message: the one healed form of every inbound event (`docs/CANONICAL.md`). The
/// same schema, as JSON Schema, is served at `/v1/schemas/canonical-message`.
#[derive(Debug, Object, serde::Deserialize)]
#[oai(rename = "CanonicalMessage")]
pub struct CanonicalMessageView {
    pub platform: CanonicalPlatform,
    pub event_type: CanonicalEventType,
    #[oai(nullable)]
    pub event_id: Option<String>,
    #[oai(nullable)]
    pub conversation_id: Option<String>,
    #[oai(nullable)]
    pub sender_id: Option<String>,
    #[oai(nullable)]
    pub sender_name: Option<String>,
    #[oai(nullable)]
    pub text: Option<String>,
    /// RFC 3339.
    #[oai(nullable)]
    pub sent_at: Option<String>,
    #[oai(nullable)]
    pub reply_to: Option<String>,
    pub attachments: Vec<CanonicalAttachment>,
}

// A canonical message's platform: every platform of the registry in `sentinel_queue::platform`,
// and `unknown`.
macro_rules! canonical_platforms {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        #[derive(Debug, poem_openapi::Enum, serde::Deserialize)]
        #[oai(rename_all = "lowercase")]
        #[serde(rename_all = "lowercase")]
        pub enum CanonicalPlatform {
            $($variant,)+
            Unknown,
        }
    };
}

sentinel_queue::with_platforms!(canonical_platforms);

#[derive(Debug, poem_openapi::Enum, serde::Deserialize)]
#[oai(rename_all = "snake_case")]
#[serde(rename_all = "snake_case")]
pub enum CanonicalEventType {
    Message,
    Status,
    Command,
    RecordChange,
    Other,
}

#[derive(Debug, Object, serde::Deserialize)]
#[oai(rename = "Attachment")]
pub struct CanonicalAttachment {
    /// `image`, `audio`, `video`, `file`, `sticker`, `location` or `other`.
    pub kind: String,
    pub id: String,
    #[oai(nullable)]
    pub url: Option<String>,
    #[oai(nullable)]
    pub mime_type: Option<String>,
}

/// Which step produced the message.
#[derive(Debug, poem_openapi::Enum, serde::Deserialize)]
#[oai(rename_all = "lowercase")]
#[serde(rename_all = "lowercase")]
pub enum HealedBy {
    Adapter,
    Repair,
    /// The generic extractor, for shapes no adapter knows.
    Extractor,
    Llm,
}

/// A healing job's result, typed: `webhook.inbound` and `payload.heal`.
#[derive(Debug, Object, serde::Deserialize)]
pub struct HealedMessage {
    pub message: CanonicalMessageView,
    // Documented on `HealedBy` (a doc comment here would make the field an `allOf`).
    pub healed_by: HealedBy,
    /// The agent's reply (inbound messages with text): the reply of the conversation's turn that
    /// answered it (a burst of messages gets one reply), null until that turn has answered.
    #[serde(default)]
    #[oai(nullable)]
    pub reply: Option<String>,
    /// `{job_id}` of the `reply.deliver` job, or `{skipped}` with the reason.
    #[serde(default)]
    #[oai(nullable)]
    pub delivery: Option<JsonValue>,
    /// `high` for the adapter and repair, `medium` for the extractor; for the model, `medium` when
    /// every field it chose was one of the paths it was shown and some layer's keys name the
    /// conversation it chose without a rival, `low` otherwise: a guess.
    /// Absent on messages healed before this field existed.
    #[serde(default)]
    #[oai(skip_serializing_if_is_none)]
    pub heal_confidence: Option<String>,
    /// How the message was made: `unwrapped`, how the object it was read from was reached,
    /// outermost first (`"<pointer>: <decoder>"` for a string decoded inside a layer, e.g.
    /// `"/Records/0/body: json"`; `"<decoder>"` for a decoded text, e.g. `"json"` after
    /// `base64`; then the object's pointer in its layer, e.g. `"/detail"`), and `fields`, the JSON
    /// pointer each field was read from in that layer (every step but the model;
    /// docs/CANONICAL.md). Absent when neither.
    #[serde(default)]
    #[oai(skip_serializing_if_is_none)]
    pub heal_trace: Option<JsonValue>,
    /// Why no automatic reply was sent although the message has text: `{reason, healed_by,
    /// reply_policy}`, when the source's `reply_policy` does not cover the step that healed it.
    #[serde(default)]
    #[oai(skip_serializing_if_is_none)]
    pub reply_skipped: Option<JsonValue>,
}

#[derive(Debug, Object)]
pub struct JobPage {
    pub items: Vec<JobView>,
    /// Pass as `cursor` for the next (older) page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
pub struct Replayed {
    pub id: i64,
    pub replay_of: i64,
}

/// Which finished jobs a bulk replay takes.
#[derive(Debug, Object)]
pub struct ReplayFilter {
    /// `dead` (the default), `succeeded` or `canceled`.
    pub status: Option<String>,
    #[oai(validator(max_length = 100))]
    pub kind: Option<String>,
    pub source_id: Option<Uuid>,
    /// Created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Created before this time.
    pub until: Option<DateTime<Utc>>,
}

#[derive(Debug, Object)]
pub struct BulkReplay {
    pub filter: ReplayFilter,
    /// The most jobs to replay, oldest first; default 100.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
    pub limit: Option<i32>,
    /// `true` (the default) only says which jobs would be replayed; `false` replays them.
    pub dry_run: Option<bool>,
}

#[derive(Debug, Object)]
pub struct BulkReplayed {
    pub dry_run: bool,
    /// The jobs the filter takes (up to `limit`), oldest first, each with its replay's id once
    /// replayed. A job replayed before is left out, so the same filter never replays it twice.
    pub items: Vec<ReplayedItem>,
    /// More jobs match beyond `limit`: run it again for the next ones.
    pub more: bool,
}

#[derive(Debug, Object)]
pub struct ReplayedItem {
    pub id: i64,
    #[oai(skip_serializing_if_is_none)]
    pub replay_id: Option<i64>,
}

#[derive(Debug, Object)]
pub struct StatusCounts {
    pub queued: i64,
    pub running: i64,
    pub succeeded: i64,
    pub dead: i64,
    pub canceled: i64,
}

#[derive(Debug, Object)]
pub struct Stats {
    pub counts: StatusCounts,
    /// Age of the oldest job that is ready to run and not yet claimed; null when none is.
    #[oai(nullable)]
    pub oldest_queued_age_ms: Option<i64>,
    /// Jobs finished in each of the last 15 minutes, oldest first; the last entry is the current
    /// (partial) minute.
    pub per_minute: Vec<MinuteCounts>,
}

#[derive(Debug, Object)]
pub struct MinuteCounts {
    /// The minute's start (RFC 3339).
    pub minute: DateTime<Utc>,
    pub succeeded: i64,
    pub dead: i64,
    pub canceled: i64,
}

/// A job's stored request, as the gateway received it: `webhook.inbound` jobs (and their replays).
#[derive(Debug, Object)]
pub struct JobPayload {
    /// The body: UTF-8 text, or base64 when it is not valid UTF-8 (see `encoding`).
    pub body: String,
    pub encoding: PayloadEncoding,
    pub size_bytes: i64,
    /// The request headers kept for auditing (never the secret ones).
    #[oai(nullable)]
    pub headers: Option<JsonValue>,
}

#[derive(Debug, poem_openapi::Enum)]
#[oai(rename_all = "lowercase")]
pub enum PayloadEncoding {
    Utf8,
    Base64,
}

/// One attempt at a job, from the `job_attempts` audit table.
#[derive(Debug, Object)]
pub struct AttemptView {
    pub attempt: i32,
    pub worker_id: String,
    pub started_at: DateTime<Utc>,
    pub finished_at: DateTime<Utc>,
    /// `succeeded`, `retry`, `dead`, `snoozed`, `canceled`, `lease_expired` or `handed_off`.
    pub outcome: String,
    #[oai(nullable)]
    pub error: Option<JsonValue>,
}

#[derive(Debug, Object)]
pub struct AttemptList {
    /// Oldest first. A running attempt is not listed until it ends.
    pub items: Vec<AttemptView>,
}

/// Enqueues an accepted job, deduplicated by its `Idempotency-Key` when one was given (a repeat
/// answers with the first job), and answers 202 with where to follow it.
pub async fn submit(
    state: &AppState,
    mut job: NewJob,
    idempotency_key: Option<&str>,
) -> Result<JobCreated, ApiError> {
    job.dedupe_key = idempotency_key.map(|key| format!("idempotency:{key}"));
    let enqueued = enqueue(&state.pool, &job).await?;
    Ok(JobCreated::Accepted(
        Json(JobAccepted {
            id: enqueued.id,
            status: enqueued.status.as_str().to_owned(),
        }),
        format!("/v1/jobs/{}", enqueued.id),
    ))
}

#[derive(ApiResponse)]
pub enum JobCreated {
    /// Accepted; follow it at `Location` or on `/v1/events?job_id=`.
    #[oai(status = 202)]
    Accepted(Json<JobAccepted>, #[oai(header = "Location")] String),
}

#[derive(ApiResponse)]
pub enum ReplayAccepted {
    #[oai(status = 202)]
    Accepted(Json<Replayed>, #[oai(header = "Location")] String),
}

impl ReplayAccepted {
    fn of(id: i64, replay_of: i64) -> Self {
        ReplayAccepted::Accepted(Json(Replayed { id, replay_of }), format!("/v1/jobs/{id}"))
    }
}

pub struct JobsApi;

async fn tenant_job(state: &AppState, tenant_id: Uuid, id: i64) -> Result<Job, ApiError> {
    Job::fetch(&state.pool, id)
        .await?
        .filter(|job| job.tenant_id == tenant_id)
        .ok_or_else(|| ApiError::not_found("job_not_found", format!("no job {id}")))
}

#[OpenApi(tag = "ApiTags::Jobs")]
impl JobsApi {
    /// Submit a job. With an `Idempotency-Key`, a repeated submission returns the first job.
    #[oai(path = "/v1/jobs", method = "post", operation_id = "createJob")]
    async fn create(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        #[oai(name = "Idempotency-Key", validator(max_length = 200))] idempotency_key: Header<
            Option<String>,
        >,
        body: Json<CreateJob>,
    ) -> Result<JobCreated, ApiError> {
        kinds::validate_api_input(&body.kind, &body.input)
            .map_err(|message| ApiError::unprocessable("invalid_job", message))?;
        admission::admit(&state.queue_counts, &auth.0.tenant, 1).await?;
        let mut job = NewJob::new(auth.0.tenant_id(), body.kind.clone(), body.input.clone());
        job.priority = body.priority.unwrap_or(0);
        job.max_attempts = body.max_attempts.unwrap_or(NewJob::DEFAULT_MAX_ATTEMPTS);
        job.run_at = body.run_at;
        submit(&state, job, idempotency_key.0.as_deref()).await
    }

    /// One job.
    #[oai(path = "/v1/jobs/:id", method = "get", operation_id = "getJob")]
    async fn get(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<i64>,
    ) -> Result<Json<JobView>, ApiError> {
        Ok(Json(
            tenant_job(&state, auth.0.tenant_id(), id.0).await?.into(),
        ))
    }

    /// The healed message of a `webhook.inbound` or `payload.heal` job that succeeded.
    #[oai(
        path = "/v1/jobs/:id/message",
        method = "get",
        operation_id = "getJobMessage"
    )]
    async fn message(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<i64>,
    ) -> Result<Json<HealedMessage>, ApiError> {
        let tenant_id = auth.0.tenant_id();
        let job = tenant_job(&state, tenant_id, id.0).await?;
        let mut healed = job
            .result
            .and_then(|result| serde_json::from_value::<HealedMessage>(result).ok());
        if let Some(healed) = healed.as_mut().filter(|healed| healed.reply.is_none()) {
            // A message its conversation's turn answers: the turn's reply.
            if let Some((reply, delivery)) =
                conversations::reply_to(&state.pool, tenant_id, job.id).await?
            {
                healed.reply = reply;
                healed.delivery = delivery.or(healed.delivery.take());
            }
        }
        healed.map(Json).ok_or_else(|| {
            ApiError::not_found(
                "not_healed",
                format!(
                    "job {} ({}, {}) has no healed message",
                    job.id,
                    job.kind,
                    job.status.as_str()
                ),
            )
        })
    }

    /// The request a `webhook.inbound` job was made from: its body and kept headers.
    #[oai(
        path = "/v1/jobs/:id/payload",
        method = "get",
        operation_id = "getJobPayload"
    )]
    async fn payload(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<i64>,
    ) -> Result<Json<JobPayload>, ApiError> {
        let job = tenant_job(&state, auth.0.tenant_id(), id.0).await?;
        let body = job.raw_body.ok_or_else(|| {
            ApiError::not_found(
                "no_payload",
                format!("job {} ({}) has no stored request body", job.id, job.kind),
            )
        })?;
        let size_bytes = body.len() as i64;
        let (body, encoding) = match String::from_utf8(body) {
            Ok(text) => (text, PayloadEncoding::Utf8),
            Err(error) => (
                base64::engine::general_purpose::STANDARD.encode(error.into_bytes()),
                PayloadEncoding::Base64,
            ),
        };
        Ok(Json(JobPayload {
            body,
            encoding,
            size_bytes,
            headers: job.headers,
        }))
    }

    /// The job's attempts, from the audit table: who ran each, when, and how it ended.
    #[oai(
        path = "/v1/jobs/:id/attempts",
        method = "get",
        operation_id = "listJobAttempts"
    )]
    async fn attempts(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<i64>,
    ) -> Result<Json<AttemptList>, ApiError> {
        let rows = job_attempts::for_job(&state.pool, id.0, auth.0.tenant_id()).await?;
        if rows.is_empty() {
            return Err(ApiError::not_found(
                "job_not_found",
                format!("no job {}", id.0),
            ));
        }
        let items = rows
            .into_iter()
            .filter_map(|row| {
                Some(AttemptView {
                    attempt: row.attempt?,
                    worker_id: row.worker_id?,
                    started_at: row.started_at?,
                    finished_at: row.finished_at?,
                    outcome: row.outcome?,
                    error: row.error,
                })
            })
            .collect();
        Ok(Json(AttemptList { items }))
    }

    /// The canonical message's JSON Schema (draft 2020-12), as the workers check it.
    #[oai(
        path = "/v1/schemas/canonical-message",
        method = "get",
        operation_id = "getCanonicalMessageSchema"
    )]
    async fn canonical_schema(&self) -> Json<JsonValue> {
        Json(sentinel_queue::canonical::schema())
    }

    /// The tenant's jobs, newest first, a page at a time. A page holds at most `limit` jobs and
    /// stops once their `input`, `result` and `last_error` pass 4 MiB (it always holds at least
    /// one job), so it can hold fewer than `limit`: follow `next_cursor` until it is absent.
    #[oai(path = "/v1/jobs", method = "get", operation_id = "listJobs")]
    #[allow(clippy::too_many_arguments)]
    async fn list(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        status: Query<Option<String>>,
        kind: Query<Option<String>>,
        source_id: Query<Option<Uuid>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<i64>>,
        cursor: Query<Option<String>>,
    ) -> Result<Json<JobPage>, ApiError> {
        if let Some(status) = status.0.as_deref() {
            status
                .parse::<JobStatus>()
                .map_err(|error| ApiError::bad_request("invalid_status", error.to_string()))?;
        }
        let before: Option<i64> = match cursor.0.as_deref() {
            None | Some("") => None,
            Some(text) => Some(text.parse().map_err(|_| {
                ApiError::bad_request(
                    "invalid_cursor",
                    "cursor must be a next_cursor from an earlier page",
                )
            })?),
        };
        /// Bytes of `input`, `result` and `last_error` (as text) past which a page stops.
        const PAGE_BYTES: i64 = 4 * 1024 * 1024;
        let limit = limit.0.unwrap_or(50);
        // One more than the limit, to say whether more match, each with the bytes of the page up
        // to and including it.
        let filter = tables::jobs::ListFilter {
            tenant_id: auth.0.tenant_id(),
            status: status.0.as_deref(),
            kind: kind.0.as_deref(),
            source_id: source_id.0,
            before,
        };
        let rows = tables::jobs::page_bytes(&state.pool, filter, limit + 1).await?;
        let mut ids: Vec<i64> = Vec::with_capacity(rows.len());
        for row in &rows {
            let over_bytes = !ids.is_empty() && row.bytes_through > PAGE_BYTES;
            if ids.len() as i64 == limit || over_bytes {
                break;
            }
            ids.push(row.id);
        }
        let has_more = ids.len() < rows.len();
        // Only what a JobView shows: never `raw_body` or `headers`, which can be as large again.
        let items = tables::jobs::summaries(&state.pool, auth.0.tenant_id(), &ids)
            .await?
            .into_iter()
            .map(JobView::from)
            .collect();
        // The cursor is the last id the page covered, even if that job was deleted meanwhile.
        let next_cursor = has_more
            .then(|| ids.last().map(|id| id.to_string()))
            .flatten();
        Ok(Json(JobPage { items, next_cursor }))
    }

    /// Cancel a job: a queued job at once; a running one at its worker's next heartbeat.
    #[oai(
        path = "/v1/jobs/:id/cancel",
        method = "post",
        operation_id = "cancelJob"
    )]
    async fn cancel(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<i64>,
    ) -> Result<Json<JobView>, ApiError> {
        let tenant_id = auth.0.tenant_id();
        if cancel(&state.pool, tenant_id, id.0).await? == CancelOutcome::NotFound {
            return Err(ApiError::not_found(
                "job_not_found",
                format!("no job {}", id.0),
            ));
        }
        Ok(Json(tenant_job(&state, tenant_id, id.0).await?.into()))
    }

    /// Replay a job as a new job with the same input and raw body.
    #[oai(
        path = "/v1/jobs/:id/replay",
        method = "post",
        operation_id = "replayJob"
    )]
    async fn replay(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<i64>,
    ) -> Result<ReplayAccepted, ApiError> {
        admission::admit(&state.queue_counts, &auth.0.tenant, 1).await?;
        let new_id = replay(&state.pool, auth.0.tenant_id(), id.0)
            .await?
            .ok_or_else(|| ApiError::not_found("job_not_found", format!("no job {}", id.0)))?;
        Ok(ReplayAccepted::of(new_id, id.0))
    }

    /// Replay the tenant's finished jobs that match a filter (the dead jobs of one source since a
    /// time, say), oldest first and at most `limit`: a dry run by default, which lists them. The
    /// same as the SQL function `replay_jobs`.
    #[oai(path = "/v1/jobs/replay", method = "post", operation_id = "replayJobs")]
    async fn replay_many(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        body: Json<BulkReplay>,
    ) -> Result<Json<BulkReplayed>, ApiError> {
        let status = body.filter.status.as_deref().unwrap_or("dead");
        if !matches!(status, "dead" | "succeeded" | "canceled") {
            return Err(ApiError::unprocessable(
                "invalid_filter",
                format!("filter.status must be dead, succeeded or canceled, not {status:?}"),
            ));
        }
        let limit = body.limit.unwrap_or(100);
        let dry_run = body.dry_run.unwrap_or(true);
        let filter = &body.filter;
        let tenant_id = auth.0.tenant_id();
        let mut tx = state.pool.begin().await?;
        // One bulk replay of a tenant at a time, so two at once never replay the same jobs; a
        // second one is refused rather than left waiting on a pooled connection.
        if !tables::jobs::try_lock_bulk_replay(&mut *tx, tenant_id).await? {
            return Err(ApiError::conflict(
                "replay_in_progress",
                "another bulk replay of this tenant is running; retry when it has answered",
            ));
        }
        // One more than the limit, to say whether more match.
        let matches = tables::jobs::BulkReplayFilter {
            tenant_id,
            status,
            kind: filter.kind.as_deref(),
            source_id: filter.source_id,
            since: filter.since,
            until: filter.until,
        };
        let matched = tables::jobs::bulk_replay_matches(&mut *tx, matches, limit + 1).await?;
        let more = matched.len() > limit as usize;
        let ids: Vec<i64> = matched.into_iter().take(limit as usize).collect();
        let items = if dry_run || ids.is_empty() {
            // Rolled back now, not when the connection is next used: that ends the lock.
            tx.rollback().await?;
            ids.into_iter()
                .map(|id| ReplayedItem {
                    id,
                    replay_id: None,
                })
                .collect()
        } else {
            // The tokens are spent for exactly the jobs replayed, in the transaction that replays
            // them: a refusal replays nothing and spends nothing.
            if let Err(refusal) =
                admission::admit(&state.queue_counts, &auth.0.tenant, ids.len()).await
            {
                tx.rollback().await?;
                return Err(refusal.into());
            }
            let replayed = tables::jobs::replay_each(&mut *tx, &ids).await?;
            tx.commit().await?;
            replayed
                .into_iter()
                .map(|row| ReplayedItem {
                    id: row.id,
                    replay_id: Some(row.replay_id),
                })
                .collect()
        };
        Ok(Json(BulkReplayed {
            dry_run,
            items,
            more,
        }))
    }

    /// Send the agent's reply to a message whose automatic reply was skipped (`result.reply_skipped`:
    /// the source's `reply_policy` does not answer the step that healed it), after a person
    /// reviewed the healed message. Replays the job with `input.reply_approved`, so the worker
    /// heals it again and answers it whatever the policy; the reply still goes only to the
    /// conversation the healed message names. Once per job: 409 `reply_not_skipped` when there was
    /// nothing to approve, `reply_already_approved` when it was approved before.
    #[oai(
        path = "/v1/jobs/:id/reply",
        method = "post",
        operation_id = "approveJobReply"
    )]
    async fn approve_reply(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<i64>,
    ) -> Result<ReplayAccepted, ApiError> {
        admission::admit(&state.queue_counts, &auth.0.tenant, 1).await?;
        let mut tx = state.pool.begin().await?;
        // The job's row, locked: two approvals at once make one reply.
        let job = tables::jobs::lock_for_reply_approval(&mut *tx, id.0, auth.0.tenant_id())
            .await?
            .ok_or_else(|| ApiError::not_found("job_not_found", format!("no job {}", id.0)))?;
        let skipped = job.reply_skipped.is_some_and(|skipped| !skipped.is_null());
        if job.kind != kinds::WEBHOOK_INBOUND || job.status != "succeeded" || !skipped {
            return Err(ApiError::conflict(
                "reply_not_skipped",
                format!(
                    "job {} is a {} job that is {} with no skipped reply; only a webhook.inbound job whose result has reply_skipped can be answered after review",
                    id.0, job.kind, job.status
                ),
            ));
        }
        if job.approved {
            return Err(ApiError::conflict(
                "reply_already_approved",
                format!("the reply to job {} was already approved", id.0),
            ));
        }
        let new_id = tables::jobs::replay_job(&mut *tx, id.0).await?;
        // Before the commit, so no worker claims the replay without its approval.
        tables::jobs::mark_reply_approved(&mut *tx, new_id).await?;
        tx.commit().await?;
        Ok(ReplayAccepted::of(new_id, id.0))
    }

    /// Job counts by status, the age of the oldest ready job, and jobs finished per minute.
    #[oai(
        path = "/v1/stats",
        method = "get",
        operation_id = "getStats",
        tag = "ApiTags::Jobs"
    )]
    async fn stats(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
    ) -> Result<Json<Stats>, ApiError> {
        let row = tables::jobs::tenant_totals(&state.pool, auth.0.tenant_id()).await?;
        let per_minute = tables::jobs::finished_per_minute(&state.pool, auth.0.tenant_id())
            .await?
            .into_iter()
            .map(|row| MinuteCounts {
                minute: row.minute,
                succeeded: row.succeeded,
                dead: row.dead,
                canceled: row.canceled,
            })
            .collect();
        Ok(Json(Stats {
            per_minute,
            counts: StatusCounts {
                queued: row.queued,
                running: row.running,
                succeeded: row.succeeded,
                dead: row.dead,
                canceled: row.canceled,
            },
            oldest_queued_age_ms: row.oldest_queued_age_ms,
        }))
    }
}
