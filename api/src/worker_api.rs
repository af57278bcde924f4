//! `/v1/worker/*` and `/v1/kinds`: the worker API, through which a tenant's own workers run the
//! jobs of the tenant's own kinds (`POST /v1/jobs` with any kind name the rule allows), and the
//! per-kind controls an operator sets.
//!
//! A claim answers each job with a lease: an opaque fencing token naming the attempt and a lease
//! owner that is the worker's id plus a random nonce. Every later call (heartbeat, progress,
//! complete, fail) must carry it; the write is fenced on it in the database, so a worker whose
//! lease expired, and whose job was claimed again, changes nothing and gets 409 `lease_lost`.

use std::{
    num::NonZeroU32,
    sync::Arc,
    time::{Duration, Instant},
};

use base64::Engine as _;
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    types::MaybeUndefined,
    ApiResponse, Object, OpenApi,
};
use sentinel_queue::{
    agent,
    claim::FinishError,
    conversations, enqueue,
    kinds::{self, reply_deliver},
    storable,
    tenant_kinds::{self, ControlsChange, KindState, TenantClaim},
    Heartbeat, Job, JobError, Lease, RetryPolicy,
};
use serde_json::Value as JsonValue;
use uuid::Uuid;

use tokio::sync::watch;

use crate::{
    admission,
    auth::{Principal, TenantAuth},
    claims::Registration,
    error::ApiError,
    limits::Slot,
    ApiTags, AppState,
};

/// How often a waiting long poll checks its credential again, so a revoked key or a suspended
/// tenant ends it within seconds (from the caches; no database read unless they were dropped).
const RECHECK_INTERVAL: Duration = Duration::from_secs(2);
/// How soon a claim looks again when a capped kind's row was held by another claim.
const CONTENDED_RETRY: Duration = Duration::from_millis(25);
/// The most a claim answer carries in job inputs; a larger single job is still answered alone.
const MAX_CLAIM_BYTES: usize = 8 * 1024 * 1024;
/// The longest lease token a claim hands out is far shorter; anything longer is not one.
const MAX_LEASE_LEN: usize = 512;
/// The largest `progress` one report may carry (its JSON text): each report is an event that
/// every follower of the job is sent, so it is kept far smaller than a result.
pub const MAX_PROGRESS_BYTES: usize = 64 * 1024;
/// The largest `error` a `fail` may carry (its JSON text).
pub const MAX_ERROR_BYTES: usize = 16 * 1024;
/// The largest `result` a `complete` may carry (its JSON text).
pub const MAX_RESULT_BYTES: usize = 1024 * 1024;
/// Kinds per page of `GET /v1/kinds`, by default and at most.
const KINDS_PAGE: i64 = 100;
const KINDS_PAGE_MAX: i64 = 500;

#[derive(Debug, Object)]
pub struct ClaimRequest {
    /// Kinds to take jobs of: your own (the name rule is under `POST /v1/jobs`), and `agent.turn`
    /// for the messages of sources whose agent is `external`.
    #[oai(validator(min_items = 1, max_items = 32))]
    pub kinds: Vec<String>,
    /// The most jobs to take; default 1.
    #[oai(validator(minimum(value = "1"), maximum(value = "100")))]
    pub max: Option<u32>,
    /// Wait up to this long for a job when none is ready (long poll); default 0, answer at once.
    /// The gateway may cap it lower (`SENTINEL_CLAIM_MAX_WAIT_MS`).
    #[oai(validator(minimum(value = "0"), maximum(value = "30000")))]
    pub wait_ms: Option<u32>,
    /// How long each job's lease lasts before another worker may claim it; default 30. Extend it
    /// with a heartbeat.
    #[oai(validator(minimum(value = "5"), maximum(value = "3600")))]
    pub lease_secs: Option<u32>,
    /// The worker's name, kept in the attempts' audit rows.
    #[oai(validator(min_length = 1, max_length = 100))]
    pub worker_id: String,
}

#[derive(Debug, Object)]
pub struct ClaimedJob {
    pub id: i64,
    pub kind: String,
    /// 1 on the first attempt.
    pub attempt: i32,
    pub max_attempts: i32,
    pub priority: i16,
    /// The fencing token every later call about this job must carry.
    pub lease: String,
    pub lease_expires_at: DateTime<Utc>,
    /// An `agent.turn`'s input is `{source_id, platform, inbound_job_id, message, messages,
    /// history, address}`: `history` is the conversation's last messages before the turn's own
    /// (`{role: user | agent, text}`, oldest first, read when the job is claimed, so it holds the
    /// reply of the turn before), and `address` where the reply goes.
    pub input: JsonValue,
    /// For an `agent.turn`: the canonical message to answer, the last of `messages`. Answer the
    /// turn with `complete`'s `reply`.
    #[oai(skip_serializing_if_is_none)]
    pub message: Option<JsonValue>,
    /// For an `agent.turn`: every message the turn answers, oldest first (a burst of messages is
    /// one turn).
    #[oai(skip_serializing_if_is_none)]
    pub messages: Option<Vec<JsonValue>>,
    pub created_at: DateTime<Utc>,
}

#[derive(Debug, Object)]
pub struct ClaimResponse {
    /// Empty when no job was ready within `wait_ms`.
    pub jobs: Vec<ClaimedJob>,
}

#[derive(Debug, Object)]
pub struct HeartbeatRequest {
    #[oai(validator(max_length = 512))]
    pub lease: String,
    /// Extend the lease to this many seconds from now; default 30.
    #[oai(validator(minimum(value = "5"), maximum(value = "3600")))]
    pub lease_secs: Option<u32>,
}

#[derive(Debug, Object)]
pub struct HeartbeatResponse {
    /// When the lease now expires (the gateway's clock).
    pub lease_expires_at: DateTime<Utc>,
    /// Someone asked to cancel the job: stop, then call `fail`, which ends it `canceled`.
    pub cancel_requested: bool,
}

#[derive(Debug, Object)]
pub struct ProgressRequest {
    #[oai(validator(max_length = 512))]
    pub lease: String,
    /// Anything the job's followers should see; it is appended as a `job.progress` event, whose
    /// data carries it as `progress`. At most 64 KiB of JSON (413 `progress_too_large`); each
    /// report spends one of the tenant's event tokens, as a submission does.
    pub progress: JsonValue,
}

#[derive(Debug, Object)]
pub struct CompleteRequest {
    #[oai(validator(max_length = 512))]
    pub lease: String,
    /// The job's result, kept in the job; default null. At most 1 MiB of JSON (413
    /// `result_too_large`).
    pub result: Option<JsonValue>,
    /// For an `agent.turn`: the answer to send to the user, through the outbox (a `reply.deliver`
    /// job, in the same transaction as the completion), at most 4096 characters. Other kinds
    /// refuse it (422 `reply_not_allowed`).
    #[oai(validator(max_length = 4096))]
    pub reply: Option<String>,
}

#[derive(Debug, Object)]
pub struct FailRequest {
    #[oai(validator(max_length = 512))]
    pub lease: String,
    /// What went wrong: a message, or an object (kept as `last_error`). At most 16 KiB of JSON
    /// (413 `error_too_large`).
    pub error: JsonValue,
    /// `true` (the default): try again after the queue's backoff, while attempts remain.
    /// `false`: fatal, the job ends `dead` at once.
    pub retry: Option<bool>,
    /// Snooze instead: run again after this many seconds without spending an attempt (a rate
    /// limit, a dependency that said when to come back). Not with `retry: false`.
    #[oai(validator(minimum(value = "1"), maximum(value = "86400")))]
    pub retry_after_secs: Option<u32>,
}

#[derive(Debug, Object)]
pub struct AttemptEnded {
    pub id: i64,
    /// `succeeded`, `queued` (it runs again at `run_at`), `dead` or `canceled`.
    pub status: String,
    /// When the job runs again, if it does.
    #[oai(skip_serializing_if_is_none)]
    pub run_at: Option<DateTime<Utc>>,
    /// The `reply.deliver` job that sends `complete`'s `reply`.
    #[oai(skip_serializing_if_is_none)]
    pub reply_job_id: Option<i64>,
}

#[derive(ApiResponse)]
pub enum ProgressAppended {
    /// Appended.
    #[oai(status = 204)]
    Appended,
}

#[derive(Debug, Object)]
pub struct KindView {
    pub kind: String,
    /// A paused kind is not claimed; its jobs wait.
    pub paused: bool,
    /// At most this many jobs of the kind run at once, across all workers; null for no cap.
    #[oai(nullable)]
    pub max_running: Option<i32>,
    pub queued: i64,
    pub running: i64,
    /// When the controls last changed; null when they never were set.
    #[oai(nullable)]
    pub updated_at: Option<DateTime<Utc>>,
}

impl From<KindState> for KindView {
    fn from(state: KindState) -> Self {
        KindView {
            kind: state.kind,
            paused: state.controls.paused,
            max_running: state.controls.max_running,
            queued: state.queued,
            running: state.running,
            updated_at: state.updated_at,
        }
    }
}

#[derive(Debug, Object)]
pub struct KindList {
    /// The tenant-defined kinds with controls, or with jobs queued or running, by name.
    pub items: Vec<KindView>,
    /// More kinds follow: pass this as `cursor` for the next page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
pub struct KindPatch {
    /// Pause (`true`) or resume (`false`) claims of the kind.
    pub paused: Option<bool>,
    /// The concurrency cap across all workers; `null` removes it, `0` stops claims as a pause does.
    #[oai(nullable, validator(minimum(value = "0"), maximum(value = "100000")))]
    pub max_running: MaybeUndefined<i32>,
}

/// A lease as the worker carries it: `<attempt>.<lease owner, base64url>`.
fn lease_token(job: &Job) -> Option<String> {
    let owner = job.lease_owner.as_deref()?;
    Some(format!(
        "{}.{}",
        job.attempt,
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(owner)
    ))
}

fn parse_lease(job_id: i64, token: &str) -> Result<Lease, ApiError> {
    let invalid = || {
        ApiError::bad_request(
            "invalid_lease",
            "lease is not a token from /v1/worker/claim",
        )
    };
    if token.len() > MAX_LEASE_LEN {
        return Err(invalid());
    }
    let (attempt, owner) = token.split_once('.').ok_or_else(invalid)?;
    let attempt: i32 = attempt.parse().map_err(|_| invalid())?;
    // A claim never hands out an owner with U+0000 (the worker id is made storable first).
    let owner = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(owner)
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|owner| !owner.is_empty() && !owner.contains('\0'))
        .ok_or_else(invalid)?;
    Ok(Lease {
        job_id,
        attempt,
        worker_id: owner,
    })
}

fn lease_lost(job_id: i64) -> ApiError {
    ApiError::conflict(
        "lease_lost",
        format!(
            "the lease on job {job_id} is not the running attempt's: it expired and the job was \
             claimed again, or the job finished or was canceled; nothing was changed"
        ),
    )
}

impl From<FinishError> for ApiError {
    fn from(error: FinishError) -> Self {
        match error {
            FinishError::LeaseLost(lost) => lease_lost(lost.job_id),
            FinishError::Database(error) => error.into(),
        }
    }
}

/// What the fenced calls need to know first: the job is this tenant's, and of a kind the worker
/// API runs (a built-in worker's job's lease is never the worker API's to write).
struct Held {
    lease: Lease,
    kind: String,
    cancel_requested: bool,
}

async fn held(
    state: &AppState,
    tenant_id: Uuid,
    job_id: i64,
    token: &str,
) -> Result<Held, ApiError> {
    let lease = parse_lease(job_id, token)?;
    let job = sentinel_queue::tables::jobs::kind_and_cancel(&state.pool, job_id, tenant_id)
        .await?
        .ok_or_else(|| ApiError::not_found("job_not_found", format!("no job {job_id}")))?;
    if !kinds::worker_api_claims(&job.kind) {
        return Err(lease_lost(job_id));
    }
    Ok(Held {
        lease,
        kind: job.kind,
        cancel_requested: job.cancel_requested,
    })
}

fn lease_for(secs: Option<u32>) -> Duration {
    Duration::from_secs(u64::from(secs.unwrap_or(30)))
}

/// Refuses a value whose JSON text is over `max` bytes (413 `<what>_too_large`, naming the limit).
fn check_size(what: &str, value: &JsonValue, max: usize) -> Result<(), ApiError> {
    let mut counter = ByteCounter(0);
    // Serialising into a counter allocates nothing; it stops counting nothing early either, but
    // the body limit already bounds the value.
    let _ = serde_json::to_writer(&mut counter, value);
    if counter.0 > max {
        return Err(ApiError::payload_too_large(
            &format!("{what}_too_large"),
            format!(
                "{what} is {} bytes of JSON; at most {max} are accepted",
                counter.0
            ),
        ));
    }
    Ok(())
}

struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn check_depth(what: &str, value: &JsonValue) -> Result<(), ApiError> {
    let depth = storable::depth(value);
    if depth > storable::MAX_DEPTH {
        return Err(ApiError::unprocessable(
            "too_deep",
            format!(
                "{what} nests {depth} levels deep; at most {} are accepted",
                storable::MAX_DEPTH
            ),
        ));
    }
    Ok(())
}

fn check_kind(kind: &str) -> Result<(), ApiError> {
    if kind == kinds::AGENT_TURN {
        return Ok(());
    }
    kinds::check_custom_kind(kind).map_err(|error| {
        ApiError::unprocessable(
            "invalid_kind",
            format!("{error}; the worker API runs tenant-defined kinds and agent.turn"),
        )
    })
}

fn ended(finished: sentinel_queue::Finished) -> AttemptEnded {
    AttemptEnded {
        id: finished.job_id,
        status: finished.status.as_str().to_owned(),
        run_at: (!finished.status.is_final()).then_some(finished.run_at),
        reply_job_id: None,
    }
}

/// Claims; with `wait` over zero and nothing claimed, waits for jobs (woken by the queue's
/// notifications, looking again at the poll interval) and claims again, until some are claimed,
/// the wait is over or the gateway stops.
async fn claim_or_wait(
    state: &AppState,
    principal: &mut Principal,
    claim: &TenantClaim<'_>,
    wait: Duration,
) -> Result<Vec<Job>, ApiError> {
    let mut pause = Pause {
        deadline: Instant::now() + wait,
        shutdown: state.shutdown.clone(),
        checked_at: Instant::now(),
        may_retry_contended: true,
    };
    // Listed before the first look, so a job queued while it runs wakes this claim.
    let waiting = if wait.is_zero() {
        None
    } else {
        // The tenant's cap holds across all gateways; this gateway's total is its own.
        let place = state
            .limits
            .slot(
                claim.tenant_id,
                Slot::Polls,
                state.config.claim_polls.per_tenant,
            )
            .await
            .map_err(|denied| {
                denied.into_api_error(
                    "too_many_polls",
                    "claims waiting",
                    "SENTINEL_CLAIM_MAX_POLLS_PER_TENANT",
                    1,
                )
            })?;
        Some(
            state
                .claims
                .register(Some(place), claim.tenant_id, claim.kinds)?,
        )
    };
    loop {
        state.claims.record_claim();
        let claimed = tenant_kinds::claim_for_tenant(&state.claim_pool, claim).await?;
        if !claimed.jobs.is_empty() {
            // More may be ready: the next waiting claim of these kinds looks too.
            if let Some(waiting) = &waiting {
                waiting.pass_on();
            }
            return Ok(claimed.jobs);
        }
        let Some(waiting) = &waiting else {
            return Ok(Vec::new());
        };
        // Waiting holds no database connection and none of the tenant's places in flight.
        principal.in_flight = None;
        if !pause
            .until_woken(state, principal, waiting, claimed.contended)
            .await?
        {
            return Ok(Vec::new());
        }
    }
}

/// A waiting claim between two looks.
struct Pause {
    deadline: Instant,
    shutdown: watch::Receiver<bool>,
    /// When the credential was last checked again.
    checked_at: Instant,
    /// A claim that found a capped kind's row held looks once more, shortly; after that the
    /// holder's turn passing on, or the poll interval, brings it back (a crowd of claims retrying
    /// on their own would keep colliding on the row).
    may_retry_contended: bool,
}

impl Pause {
    /// Waits until the claim is woken or should look again (true), or the wait is over or the
    /// gateway stops (false), checking the credential again every [`RECHECK_INTERVAL`].
    async fn until_woken(
        &mut self,
        state: &AppState,
        principal: &Principal,
        waiting: &Registration,
        contended: bool,
    ) -> Result<bool, ApiError> {
        let retry_soon = contended && std::mem::take(&mut self.may_retry_contended);
        loop {
            let now = Instant::now();
            if now >= self.deadline || *self.shutdown.borrow() {
                return Ok(false);
            }
            let nap = if retry_soon {
                CONTENDED_RETRY.mul_f64(rand::random_range(0.5..=1.5))
            } else {
                RECHECK_INTERVAL
            };
            let woke = tokio::select! {
                woke = waiting.wait(nap.min(self.deadline - now)) => woke,
                _ = self.shutdown.wait_for(|stop| *stop) => false,
            };
            if self.checked_at.elapsed() >= RECHECK_INTERVAL {
                state.reauthenticate(principal).await?;
                self.checked_at = Instant::now();
            }
            if woke || retry_soon {
                return Ok(true);
            }
        }
    }
}

/// Writes each claimed turn's history into its input, read now that the turn has started: every
/// earlier message of its conversation and the reply each got, the turn before's included. A
/// turn made before conversations were lanes keeps the history it was made with.
async fn with_history(state: &AppState, jobs: &mut [Job]) -> Result<(), ApiError> {
    let turns: Vec<i64> = jobs
        .iter()
        .filter(|job| job.kind == kinds::AGENT_TURN)
        .map(|job| job.id)
        .collect();
    if turns.is_empty() {
        return Ok(());
    }
    let mut histories = conversations::history(&state.pool, &turns).await?;
    for job in jobs.iter_mut() {
        let Some(history) = histories.remove(&job.id) else {
            continue;
        };
        if let Some(input) = job.input.as_object_mut() {
            input.insert(
                "history".into(),
                serde_json::to_value(history).unwrap_or_default(),
            );
        }
    }
    Ok(())
}

/// A claimed job as the worker API answers it (`None` for a job without a lease, which a claim
/// never returns).
fn claimed_job(job: Job) -> Option<ClaimedJob> {
    let turn = job.kind == kinds::AGENT_TURN;
    let message = turn.then(|| job.input.get("message").cloned()).flatten();
    let messages = turn
        .then(|| match job.input.get("messages") {
            Some(JsonValue::Array(messages)) if !messages.is_empty() => Some(messages.clone()),
            _ => message.clone().map(|message| vec![message]),
        })
        .flatten();
    Some(ClaimedJob {
        lease: lease_token(&job)?,
        lease_expires_at: job.lease_expires_at?,
        id: job.id,
        kind: job.kind,
        attempt: job.attempt,
        max_attempts: job.max_attempts,
        priority: job.priority,
        message,
        messages,
        input: job.input,
        created_at: job.created_at,
    })
}

pub struct WorkerApi;

#[OpenApi(tag = "ApiTags::Worker")]
impl WorkerApi {
    /// Claim jobs of your own kinds. With `wait_ms`, waits for one (woken by the queue's
    /// notification) and answers empty when none came. Paused kinds are skipped, and a kind's
    /// concurrency cap is held across all workers.
    #[oai(path = "/v1/worker/claim", method = "post", operation_id = "claimJobs")]
    async fn claim(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        body: Json<ClaimRequest>,
    ) -> Result<Json<ClaimResponse>, ApiError> {
        let TenantAuth(mut principal) = auth;
        for kind in &body.kinds {
            check_kind(kind)?;
        }
        let mut kinds = body.kinds.clone();
        kinds.sort_unstable();
        kinds.dedup();
        let nonce: u64 = rand::random();
        // Stored as the lease owner, so made storable here: the lease token carries the same text.
        let lease_owner = format!("{}#{nonce:016x}", storable::text(&body.worker_id));
        let tenant_id = principal.tenant_id();
        let claim = TenantClaim {
            tenant_id,
            lease_owner: &lease_owner,
            kinds: &kinds,
            max: body.max.unwrap_or(1) as usize,
            lease: lease_for(body.lease_secs),
            max_bytes: MAX_CLAIM_BYTES,
        };
        let wait = Duration::from_millis(u64::from(body.wait_ms.unwrap_or(0)))
            .min(state.config.claim_max_wait);
        let mut jobs = claim_or_wait(&state, &mut principal, &claim, wait).await?;
        with_history(&state, &mut jobs).await?;
        let jobs = jobs.into_iter().filter_map(claimed_job).collect();
        Ok(Json(ClaimResponse { jobs }))
    }

    /// Extend a job's lease, and learn whether a cancel was requested.
    #[oai(
        path = "/v1/worker/jobs/:id/heartbeat",
        method = "post",
        operation_id = "heartbeatJob"
    )]
    async fn heartbeat(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<i64>,
        body: Json<HeartbeatRequest>,
    ) -> Result<Json<HeartbeatResponse>, ApiError> {
        let held = held(&state, auth.0.tenant_id(), id.0, &body.lease).await?;
        let lease = lease_for(body.lease_secs);
        let beat = sentinel_queue::heartbeat(&state.pool, &held.lease, lease).await?;
        Ok(Json(HeartbeatResponse {
            lease_expires_at: Utc::now() + chrono::Duration::seconds(lease.as_secs() as i64),
            cancel_requested: beat == Heartbeat::CancelRequested,
        }))
    }

    /// Append a `job.progress` event, which the job's followers see on `/v1/events`.
    #[oai(
        path = "/v1/worker/jobs/:id/progress",
        method = "post",
        operation_id = "reportJobProgress"
    )]
    async fn progress(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<i64>,
        body: Json<ProgressRequest>,
    ) -> Result<ProgressAppended, ApiError> {
        check_size("progress", &body.progress, MAX_PROGRESS_BYTES)?;
        check_depth("progress", &body.progress)?;
        // Each report is an event row and a notification every gateway reads: an event token.
        admission::spend(&auth.0.tenant, NonZeroU32::MIN).await?;
        let held = held(&state, auth.0.tenant_id(), id.0, &body.lease).await?;
        let data = serde_json::json!({ "progress": body.progress });
        if sentinel_queue::progress(&state.pool, &held.lease, data).await? {
            Ok(ProgressAppended::Appended)
        } else {
            Err(lease_lost(id.0))
        }
    }

    /// End the attempt in success, with the job's result; for an `agent.turn`, with the `reply` to
    /// send too.
    #[oai(
        path = "/v1/worker/jobs/:id/complete",
        method = "post",
        operation_id = "completeJob"
    )]
    async fn complete(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<i64>,
        body: Json<CompleteRequest>,
    ) -> Result<Json<AttemptEnded>, ApiError> {
        let CompleteRequest {
            lease,
            result,
            reply,
        } = body.0;
        let result = result.unwrap_or(JsonValue::Null);
        check_size("result", &result, MAX_RESULT_BYTES)?;
        check_depth("result", &result)?;
        if let Some(text) = &reply {
            agent::check_reply_text(text)
                .map_err(|message| ApiError::unprocessable("invalid_reply", message))?;
        }
        let held = held(&state, auth.0.tenant_id(), id.0, &lease).await?;
        let Some(text) = reply else {
            let finished = sentinel_queue::complete(&state.pool, &held.lease, result).await?;
            return Ok(Json(ended(finished)));
        };
        if held.kind != kinds::AGENT_TURN {
            return Err(ApiError::unprocessable(
                "reply_not_allowed",
                format!(
                    "reply answers an agent.turn; job {} is a {} job",
                    id.0, held.kind
                ),
            ));
        }
        let job = Job::fetch(&state.pool, id.0)
            .await?
            .ok_or_else(|| ApiError::not_found("job_not_found", format!("no job {}", id.0)))?;
        let deliver = reply_deliver::answer(&job, &text)
            .map_err(|message| ApiError::unprocessable("invalid_reply", message))?;
        // The reply is queued only if the completion holds: one transaction.
        let mut tx = state.pool.begin().await?;
        // Recorded on the turn before it ends, so the turn ends answered and the next turn's
        // history holds the reply.
        let enqueued = enqueue(&mut *tx, &deliver).await?;
        conversations::record_reply(&mut *tx, job.id, &text, enqueued.id).await?;
        let finished = sentinel_queue::complete(&mut *tx, &held.lease, result).await?;
        tx.commit().await?;
        Ok(Json(AttemptEnded {
            reply_job_id: Some(enqueued.id),
            ..ended(finished)
        }))
    }

    /// End the attempt in failure: retried with backoff (the default), fatal (`retry: false`), or
    /// snoozed (`retry_after_secs`). After a requested cancel, the job ends `canceled`.
    #[oai(
        path = "/v1/worker/jobs/:id/fail",
        method = "post",
        operation_id = "failJob"
    )]
    async fn fail(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        id: Path<i64>,
        body: Json<FailRequest>,
    ) -> Result<Json<AttemptEnded>, ApiError> {
        let FailRequest {
            lease,
            error,
            retry,
            retry_after_secs,
        } = body.0;
        if retry == Some(false) && retry_after_secs.is_some() {
            return Err(ApiError::unprocessable(
                "invalid_failure",
                "retry: false ends the job; it cannot also be snoozed with retry_after_secs",
            ));
        }
        check_size("error", &error, MAX_ERROR_BYTES)?;
        check_depth("error", &error)?;
        let error = match error {
            JsonValue::String(message) => {
                serde_json::json!({"code": "worker_error", "message": message})
            }
            other => other,
        };
        let held = held(&state, auth.0.tenant_id(), id.0, &lease).await?;
        let failure = if held.cancel_requested {
            JobError::Canceled
        } else if let Some(secs) = retry_after_secs {
            JobError::snooze(Duration::from_secs(u64::from(secs)), error)
        } else if retry == Some(false) {
            JobError::Fatal(error)
        } else {
            JobError::retry_with(error)
        };
        let outcome = RetryPolicy::for_kind(&held.kind).decide(held.lease.attempt, Err(failure));
        let finished = sentinel_queue::finish_one(&state.pool, &held.lease, outcome).await?;
        Ok(Json(ended(finished)))
    }

    /// The tenant's own kinds: their controls and jobs in flight, by name, a page at a time.
    #[oai(path = "/v1/kinds", method = "get", operation_id = "listKinds")]
    async fn kinds(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        /// Kinds per page; default 100.
        #[oai(validator(minimum(value = "1"), maximum(value = "500")))]
        limit: Query<Option<i64>>,
        /// The `next_cursor` of the page before.
        #[oai(validator(max_length = 64))]
        cursor: Query<Option<String>>,
    ) -> Result<Json<KindList>, ApiError> {
        let limit = limit.0.unwrap_or(KINDS_PAGE).clamp(1, KINDS_PAGE_MAX);
        let mut items: Vec<KindView> = tenant_kinds::list(
            &state.pool,
            auth.0.tenant_id(),
            None,
            cursor.0.as_deref(),
            limit + 1,
        )
        .await?
        .into_iter()
        .map(KindView::from)
        .collect();
        let next_cursor = if items.len() as i64 > limit {
            items.truncate(limit as usize);
            items.last().map(|kind| kind.kind.clone())
        } else {
            None
        };
        Ok(Json(KindList { items, next_cursor }))
    }

    /// Pause or resume a kind, or set its concurrency cap across all workers. Applies from the
    /// next claim; running jobs finish.
    #[oai(
        path = "/v1/kinds/:kind",
        method = "patch",
        operation_id = "updateKind"
    )]
    async fn set_kind(
        &self,
        auth: TenantAuth,
        state: Data<&Arc<AppState>>,
        kind: Path<String>,
        body: Json<KindPatch>,
    ) -> Result<Json<KindView>, ApiError> {
        check_kind(&kind.0)?;
        let change = ControlsChange {
            paused: body.paused,
            max_running: match &body.max_running {
                MaybeUndefined::Undefined => None,
                MaybeUndefined::Null => Some(None),
                MaybeUndefined::Value(cap) => Some(Some(*cap)),
            },
        };
        let tenant_id = auth.0.tenant_id();
        // A change of controls is a configuration change: an event token, as a source change is.
        admission::spend(&auth.0.tenant, NonZeroU32::MIN).await?;
        if tenant_kinds::set_controls(&state.pool, tenant_id, &kind.0, change)
            .await?
            .is_none()
        {
            return Err(ApiError::unprocessable(
                "too_many_kinds",
                format!(
                    "the tenant already has controls for {} kinds, the most allowed",
                    tenant_kinds::MAX_CONTROLLED_KINDS
                ),
            ));
        }
        let view = tenant_kinds::list(&state.pool, tenant_id, Some(&kind.0), None, 1)
            .await?
            .pop()
            .map(KindView::from)
            .ok_or_else(|| ApiError::internal("a kind's controls vanished after they were set"))?;
        Ok(Json(view))
    }
}
