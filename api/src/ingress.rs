//! `POST /hooks/{source_id}` (and `GET` for the WhatsApp handshake): where platforms deliver.
//!
//! The order is the contract: find the source (404), check its ingest token if it has one (401),
//! read at most the body limit within the body deadline (413, 408), verify the signature over the
//! raw bytes (401/403, nothing written; off the async executor for large bodies), drop a suspended
//! tenant's events at the edge (200 with `X-Sentinel-Dropped`), cap the events of one request
//! (413), apply the tenant's queue cap and rate limit at one token per event (429), then commit
//! every event through the group-commit ingestor and only then answer 200. A database that cannot
//! commit within the deadline gets 503 with `Retry-After`, never a hang.

use std::{sync::Arc, time::Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use poem::{http::StatusCode, web::Data, Body, IntoResponse, Request, Response};
use poem_openapi::{
    param::{Path, Query},
    payload::Binary,
    registry::{
        MetaHeader, MetaMediaType, MetaResponse, MetaResponses, MetaSchema, MetaSchemaRef, Registry,
    },
    types::Type,
    ApiResponse, OpenApi,
};
use sentinel_queue::{
    kinds::webhook_inbound,
    platform::{
        secure_eq, whatsapp, Accepted, Ack, InboundEvent, Platform, Rejected, INGEST_TOKEN_FIELD,
    },
    tables::ingress_drops,
    IngestError, NewJob,
};
use uuid::Uuid;

use crate::{
    admission::{self, Refusal},
    body_error_response,
    directory::{SourceRecord, TenantRecord},
    error::{error_response, ErrorBody},
    server::{declares_more_than, read_body, BodyError},
    ApiTags, AppState,
};

/// The header that says an event was dropped at the edge, and why.
pub const DROPPED_HEADER: &str = "x-sentinel-dropped";

/// Request headers kept with a job for auditing. Secrets (Telegram's token) are never kept.
const KEPT_HEADERS: [&str; 8] = [
    "content-type",
    "user-agent",
    "x-slack-retry-num",
    "x-slack-retry-reason",
    "x-slack-request-timestamp",
    "webhook-id",
    "webhook-timestamp",
    "x-request-id",
];

/// Bodies larger than this are authenticated and parsed on the blocking pool.
const BLOCKING_BODY_BYTES: usize = 64 * 1024;

/// Bodies up to this size are kept whole on every job of a batch; a larger batch keeps its raw
/// bytes on its first job only, so a 3 MB WhatsApp batch is not stored once per message.
const RAW_BODY_PER_JOB_LIMIT: usize = 64 * 1024;

/// Any answer of the ingress endpoint. Its content type depends on the platform.
pub struct IngressResponse(Response);

impl IntoResponse for IngressResponse {
    fn into_response(self) -> Response {
        self.0
    }
}

fn error_media() -> Vec<MetaMediaType> {
    vec![MetaMediaType {
        content_type: "application/json; charset=utf-8",
        schema: <ErrorBody as Type>::schema_ref(),
    }]
}

fn retry_after() -> Vec<MetaHeader> {
    vec![MetaHeader {
        name: "Retry-After".into(),
        description: Some("Seconds to wait before retrying".into()),
        required: true,
        deprecated: false,
        schema: <u64 as Type>::schema_ref(),
    }]
}

impl ApiResponse for IngressResponse {
    fn meta() -> MetaResponses {
        let text = |content_type| MetaMediaType {
            content_type,
            schema: MetaSchemaRef::Inline(Box::new(MetaSchema::new("string"))),
        };
        let error = |status, description| MetaResponse {
            description,
            status: Some(status),
            status_range: None,
            content: error_media(),
            headers: vec![],
        };
        MetaResponses {
            responses: vec![
                MetaResponse {
                    description: "Committed (or a handshake answered). Empty for Telegram, WhatsApp, Slack and Standard Webhooks; the challenge for Slack's url_verification (JSON) and the WhatsApp GET handshake (text); the SOAP Ack for Salesforce. With `X-Sentinel-Dropped`, the event was dropped at the edge and no job exists.",
                    status: Some(200),
                    status_range: None,
                    content: vec![text("text/plain"), text("application/json"), text("text/xml")],
                    headers: vec![MetaHeader {
                        name: "X-Sentinel-Dropped".into(),
                        description: Some("Why the event was dropped, such as `tenant_suspended`".into()),
                        required: false,
                        deprecated: false,
                        schema: <String as Type>::schema_ref(),
                    }],
                },
                error(400, "The body cannot be authenticated because it cannot be read (Salesforce)"),
                error(401, "Missing or wrong signature, a stale timestamp, or a missing or wrong ingest `token`; nothing was written"),
                error(403, "Authenticated as another organisation, or a failed WhatsApp handshake"),
                error(404, "Unknown or deleted source"),
                error(408, "The body did not arrive within SENTINEL_HTTP_BODY_TIMEOUT_MS"),
                error(413, "Body over SENTINEL_MAX_BODY_BYTES (`payload_too_large`), or more events than SENTINEL_MAX_EVENTS_PER_REQUEST or the tenant's burst (`too_many_events`)"),
                MetaResponse {
                    description: "The tenant is over its rate limit (`rate_limited`, one token per event) or its queued-job cap (`queue_full`)",
                    status: Some(429),
                    status_range: None,
                    content: error_media(),
                    headers: retry_after(),
                },
                MetaResponse {
                    description: "The event could not be committed in time; the platform should retry",
                    status: Some(503),
                    status_range: None,
                    content: error_media(),
                    headers: retry_after(),
                },
            ],
        }
    }

    fn register(registry: &mut Registry) {
        <ErrorBody as Type>::register(registry);
    }
}

fn answer(status: StatusCode, code: &str, message: &str) -> IngressResponse {
    IngressResponse(error_response(status, code, message))
}

fn with_retry_after(mut response: IngressResponse, secs: u64) -> IngressResponse {
    response
        .0
        .headers_mut()
        .insert("retry-after", poem::http::HeaderValue::from(secs.max(1)));
    response
}

pub struct IngressApi;

#[OpenApi(tag = "ApiTags::Ingress")]
impl IngressApi {
    /// Receive a platform's webhook.
    #[oai(
        path = "/hooks/:source_id",
        method = "post",
        operation_id = "receiveWebhook"
    )]
    async fn receive(
        &self,
        req: &Request,
        state: Data<&Arc<AppState>>,
        source_id: Path<String>,
        body: Binary<Body>,
    ) -> IngressResponse {
        let started = Instant::now();
        let (platform, outcome, response) = receive(&state, req, &source_id.0, body.0).await;
        let label = platform.map_or("unknown", Platform::as_str);
        state
            .metrics
            .acks
            .with_label_values(&[label, outcome])
            .inc();
        state
            .metrics
            .ack_latency
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        response
    }

    /// WhatsApp's subscription handshake: echoes `hub.challenge` when `hub.verify_token` matches.
    #[oai(
        path = "/hooks/:source_id",
        method = "get",
        operation_id = "verifyWebhook"
    )]
    async fn handshake(
        &self,
        state: Data<&Arc<AppState>>,
        source_id: Path<String>,
        #[oai(name = "hub.mode")] mode: Query<Option<String>>,
        #[oai(name = "hub.verify_token")] verify_token: Query<Option<String>>,
        #[oai(name = "hub.challenge")] challenge: Query<Option<String>>,
    ) -> IngressResponse {
        let source = match find_source(&state, &source_id.0).await {
            Ok(source) => source,
            Err(response) => return response,
        };
        if source.platform == Platform::Whatsapp {
            // During a rotation's overlap, the replaced verify token still answers.
            if let Some(challenge) = source.verifiers(chrono::Utc::now()).find_map(|verifier| {
                whatsapp::handshake(
                    verifier.secrets(),
                    mode.0.as_deref(),
                    verify_token.0.as_deref(),
                    challenge.0.as_deref(),
                )
            }) {
                return IngressResponse(
                    challenge
                        .to_owned()
                        .with_content_type("text/plain; charset=utf-8")
                        .into_response(),
                );
            }
        }
        answer(
            StatusCode::FORBIDDEN,
            "handshake_refused",
            "hub.mode or hub.verify_token does not match",
        )
    }
}

async fn find_source(
    state: &AppState,
    source_id: &str,
) -> Result<Arc<SourceRecord>, IngressResponse> {
    let not_found = || answer(StatusCode::NOT_FOUND, "source_not_found", "no such source");
    let id: Uuid = source_id.parse().map_err(|_| not_found())?;
    match state.directory.source(id).await {
        Ok(Some(source)) => Ok(source),
        Ok(None) => Err(not_found()),
        Err(error) => Err(IngressResponse(error.into_response())),
    }
}

/// The whole ingress path; returns the platform (when known) and the outcome label for metrics.
async fn receive(
    state: &AppState,
    req: &Request,
    source_id: &str,
    body: Body,
) -> (Option<Platform>, &'static str, IngressResponse) {
    let source = match find_source(state, source_id).await {
        Ok(source) => source,
        Err(response) => return (None, "not_found", response),
    };
    let (outcome, response) = match ingest(state, req, &source, body).await {
        Ok(ack) => ("acked", ack),
        Err(Stop(outcome, response)) => (outcome, response),
    };
    (Some(source.platform), outcome, response)
}

/// How a webhook was answered before its events were committed (refused, dropped, a handshake):
/// the outcome label for metrics, and the answer.
struct Stop(&'static str, IngressResponse);

/// The steps of a webhook to a known source, each of which may answer it early: its credentials
/// and body, the platform's check of it, the tenant's admission, then the commit of its events;
/// the platform's ack once they are committed.
async fn ingest(
    state: &AppState,
    req: &Request,
    source: &Arc<SourceRecord>,
    body: Body,
) -> Result<IngressResponse, Stop> {
    if let Some(refused) = refuse_without_ingest_token(source, req) {
        return Err(Stop("unauthenticated", refused));
    }
    let body = read_limited(state, req, body).await?;
    let now = Utc::now();
    let (events, ack) = match accept(source, req, &body, now).await? {
        Accepted::Handshake(ack) => return Err(Stop("handshake", ack_response(ack))),
        Accepted::Events { events, ack } => (events, ack),
    };
    let tenant = admit(state, source, &events, &ack).await?;
    let jobs = inbound_jobs(req, source, &tenant, events, &body, now);
    commit_in_time(state, source, jobs).await?;
    Ok(ack_response(ack))
}

/// The platform's success answer.
fn ack_response(ack: Ack) -> IngressResponse {
    IngressResponse(ack.body.with_content_type(ack.content_type).into_response())
}

/// The body, refused when it says or turns out to be over the limit, or is not read in time.
async fn read_limited(state: &AppState, req: &Request, body: Body) -> Result<Bytes, Stop> {
    let limit = state.config.max_body_bytes;
    if declares_more_than(req.headers(), limit) {
        return Err(Stop(
            "too_large",
            IngressResponse(body_error_response(BodyError::TooLarge, limit)),
        ));
    }
    read_body(body, limit, state.config.http.body_read_timeout)
        .await
        .map_err(|error| {
            let outcome = match error {
                BodyError::TooLarge => "too_large",
                BodyError::TimedOut => "body_timeout",
                BodyError::Unreadable(_) => "bad_body",
            };
            Stop(outcome, IngressResponse(body_error_response(error, limit)))
        })
}

/// The platform's check of the webhook (signature, timestamp, shape) and its events.
async fn accept(
    source: &Arc<SourceRecord>,
    req: &Request,
    body: &Bytes,
    now: DateTime<Utc>,
) -> Result<Accepted, Stop> {
    let accepted = if body.len() > BLOCKING_BODY_BYTES {
        // A large body's signature check and parse run on the blocking pool, so a slow request
        // never delays the async executor (and /healthz with it).
        let (source, headers, body) = (source.clone(), req.headers().clone(), body.clone());
        tokio::task::spawn_blocking(move || source.accept(&headers, &body, now))
            .await
            .unwrap_or_else(|error| {
                Err(Rejected::Malformed(format!(
                    "the body could not be read: {error}"
                )))
            })
    } else {
        source.accept(req.headers(), body, now)
    };
    accepted.map_err(|rejected| {
        let (status, code, outcome) = match &rejected {
            Rejected::Unauthenticated(_) => (
                StatusCode::UNAUTHORIZED,
                "invalid_signature",
                "unauthenticated",
            ),
            Rejected::Stale(_) => (StatusCode::UNAUTHORIZED, "stale_timestamp", "stale"),
            Rejected::Forbidden(_) => (StatusCode::FORBIDDEN, "wrong_organization", "forbidden"),
            Rejected::Malformed(_) => (StatusCode::BAD_REQUEST, "malformed_body", "malformed"),
            Rejected::Misconfigured(_) => {
                tracing::error!(source.id = %source.id, error = %rejected, "source misconfigured");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "source_misconfigured",
                    "misconfigured",
                )
            }
        };
        Stop(outcome, answer(status, code, &rejected.to_string()))
    })
}

/// The source's tenant, once it takes `events`: a suspended tenant's webhook is acknowledged and
/// dropped (and the drop recorded); too many events, the tenant's rate or its queue cap refuse it.
async fn admit(
    state: &AppState,
    source: &SourceRecord,
    events: &[InboundEvent],
    ack: &Ack,
) -> Result<Arc<TenantRecord>, Stop> {
    let tenant = match state.directory.tenant(source.tenant_id).await {
        Ok(Some(tenant)) => tenant,
        Ok(None) => {
            return Err(Stop(
                "not_found",
                answer(StatusCode::NOT_FOUND, "source_not_found", "no such source"),
            ))
        }
        Err(error) => return Err(Stop("unavailable", IngressResponse(error.into_response()))),
    };
    if !tenant.active {
        return Err(drop_suspended(state, source, &tenant, events, ack).await);
    }
    if events.len() > state.config.max_events_per_request {
        return Err(Stop(
            "too_many_events",
            answer(
                StatusCode::PAYLOAD_TOO_LARGE,
                "too_many_events",
                &format!(
                    "the webhook carries {} events; at most {} are accepted per request (SENTINEL_MAX_EVENTS_PER_REQUEST)",
                    events.len(),
                    state.config.max_events_per_request
                ),
            ),
        ));
    }
    if let Err(refusal) = admission::admit(&state.queue_counts, &tenant, events.len()).await {
        let mut response = answer(refusal.status(), refusal.code(), &refusal.message());
        if let Some(secs) = refusal.retry_after_secs() {
            response = with_retry_after(response, secs);
        }
        let outcome = match refusal {
            Refusal::OverBurst { .. } => "too_many_events",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::QueueFull { .. } => "queue_full",
            Refusal::Unavailable => "unavailable",
        };
        return Err(Stop(outcome, response));
    }
    Ok(tenant)
}

/// A suspended tenant's webhook: recorded in `ingress_drops` and acknowledged, so the platform
/// does not retry it, with the header that says it was dropped.
async fn drop_suspended(
    state: &AppState,
    source: &SourceRecord,
    tenant: &TenantRecord,
    events: &[InboundEvent],
    ack: &Ack,
) -> Stop {
    let first_key = events.first().map(|event| event.dedupe_key.clone());
    if let Err(error) = ingress_drops::record_suspended(
        &state.ingest_pool,
        tenant.id,
        source.id,
        source.platform.as_str(),
        first_key.as_deref(),
    )
    .await
    {
        tracing::warn!(%error, tenant.id = %tenant.id, "could not record an ingress drop");
    }
    let mut response = ack
        .body
        .clone()
        .with_content_type(ack.content_type)
        .into_response();
    response.headers_mut().insert(
        DROPPED_HEADER,
        poem::http::HeaderValue::from_static("tenant_suspended"),
    );
    Stop("dropped", IngressResponse(response))
}

/// One `webhook.inbound` job per event, each with the kept headers; the raw body goes with the
/// first job, and with every job when it is small.
fn inbound_jobs(
    req: &Request,
    source: &SourceRecord,
    tenant: &TenantRecord,
    events: Vec<InboundEvent>,
    body: &Bytes,
    now: DateTime<Utc>,
) -> Vec<NewJob> {
    let headers = kept_headers(req);
    let n_events = events.len();
    events
        .into_iter()
        .enumerate()
        .map(|(i, event)| {
            let mut job = webhook_inbound::job(webhook_inbound::Event {
                tenant_id: tenant.id,
                source_id: source.id,
                platform: source.platform.as_str(),
                payload: event.payload,
                received_at: now,
                batch: (n_events > 1).then_some(webhook_inbound::Batch {
                    index: i,
                    size: n_events,
                }),
                dedupe_key: event.dedupe_key,
            });
            if i == 0 || body.len() <= RAW_BODY_PER_JOB_LIMIT {
                job.raw_body = Some(body.to_vec());
            }
            job.headers = Some(headers.clone());
            job
        })
        .collect()
}

/// Commits the jobs before the ack deadline, or answers 503.
async fn commit_in_time(
    state: &AppState,
    source: &SourceRecord,
    jobs: Vec<NewJob>,
) -> Result<(), Stop> {
    let submitted = tokio::time::timeout(state.config.ack_deadline, commit(state, jobs)).await;
    match submitted {
        Ok(Ok(())) => Ok(()),
        Ok(Err(IngestError::Database(error))) => {
            tracing::warn!(%error, source.id = %source.id, "ingest failed; answering 503");
            Err(Stop("unavailable", unavailable()))
        }
        Ok(Err(IngestError::Closed)) => Err(Stop("unavailable", unavailable())),
        Err(_elapsed) => {
            tracing::warn!(source.id = %source.id, "ingest did not commit before the deadline; answering 503");
            Err(Stop("unavailable", unavailable()))
        }
    }
}

/// Commits a webhook's jobs: through the ingestor, or in a transaction of its own when batching is
/// off (kept to measure what group commit buys; see docs/BENCHMARKS.md).
async fn commit(state: &AppState, jobs: Vec<NewJob>) -> Result<(), IngestError> {
    if state.config.ingest_batching {
        return state.ingestor.submit_all(jobs).await.map(|_| ());
    }
    let database = |error| IngestError::Database(Arc::new(error));
    let mut tx = state.ingest_pool.begin().await.map_err(database)?;
    sentinel_queue::enqueue_many(&mut *tx, &jobs)
        .await
        .map_err(database)?;
    tx.commit().await.map_err(database)
}

fn unavailable() -> IngressResponse {
    with_retry_after(
        answer(
            StatusCode::SERVICE_UNAVAILABLE,
            "database_unavailable",
            "the event could not be committed in time; retry",
        ),
        1,
    )
}

/// A source with `secrets.ingest_token` takes webhooks only at an ingest URL that carries it as
/// `?token=`, compared in constant time before the body is read: the 401 for a request without it.
fn refuse_without_ingest_token(source: &SourceRecord, req: &Request) -> Option<IngressResponse> {
    let expected = source
        .secrets()
        .get(INGEST_TOKEN_FIELD)
        .and_then(serde_json::Value::as_str)?;
    let given = req.uri().query().and_then(|query| {
        form_urlencoded::parse(query.as_bytes())
            .find(|(name, _)| name == "token")
            .map(|(_, value)| value.into_owned())
    });
    // During a rotation's overlap, the replaced token (if it had one) still opens the URL.
    let replaced = source
        .previous_at(chrono::Utc::now())
        .and_then(|previous| previous.secrets().get(INGEST_TOKEN_FIELD))
        .and_then(serde_json::Value::as_str);
    match given {
        Some(given)
            if secure_eq(given.as_bytes(), expected.as_bytes())
                || replaced.is_some_and(|old| secure_eq(given.as_bytes(), old.as_bytes())) =>
        {
            None
        }
        Some(_) => Some(answer(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "the ingest URL's token does not match",
        )),
        None => Some(answer(
            StatusCode::UNAUTHORIZED,
            "invalid_token",
            "this source takes webhooks only at its ingest URL with ?token=",
        )),
    }
}

fn kept_headers(req: &Request) -> serde_json::Value {
    let mut kept = serde_json::Map::new();
    for name in KEPT_HEADERS {
        if let Some(value) = req
            .headers()
            .get(name)
            .and_then(|value| value.to_str().ok())
        {
            kept.insert(name.to_owned(), serde_json::Value::String(value.to_owned()));
        }
    }
    serde_json::Value::Object(kept)
}
