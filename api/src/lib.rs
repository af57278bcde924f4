//! Sentinel's gateway: webhook ingress for five platforms, the async job API, SSE, metrics and
//! the OpenAPI spec, on poem + poem-openapi. It never links the LLM runtime.

pub mod admin;
pub mod admission;
pub mod auth;
pub mod claims;
pub mod conversations;
pub mod directory;
pub mod error;
pub mod events;
pub mod hub;
pub mod ingress;
pub mod jobs;
pub mod limits;
pub mod metrics;
pub mod ops;
pub mod server;
pub mod sources;
pub mod worker_api;

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::Context;
use poem::{Endpoint, EndpointExt, IntoResponse, Route};
use poem_openapi::{OpenApiService, Tags};
use sentinel_queue::{
    agent::ForwardAllow, config, conversations as lanes, db, rescue::run_rescuer, Ingestor,
    IngestorConfig, Listener, Notice, EVENTS_CHANNEL, WORKER_JOBS_CHANNEL,
};
use sqlx::PgPool;
use tokio::{net::TcpListener, sync::watch};
use tracing::Instrument;
use uuid::Uuid;

use crate::{
    admission::{QueueCounts, RequestBudget},
    auth::JwtVerifier,
    claims::{Dispatcher, PollLimits},
    directory::{Directory, CONFIG_CHANNEL},
    error::{code_for_status, error_response},
    hub::Hub,
    limits::Limits,
    metrics::Metrics,
    server::{BodyError, HttpLimits},
};

#[derive(Tags)]
pub enum ApiTags {
    /// Tenants and API keys (admin token).
    Admin,
    /// A tenant's ingress endpoints.
    Sources,
    /// Where platforms deliver webhooks.
    Ingress,
    /// The async job API.
    Jobs,
    /// Conversations: one turn at a time per chat, their transcripts and turns.
    Conversations,
    /// Job events over Server-Sent Events.
    Events,
    /// Your own workers: claim jobs of your own kinds, heartbeat, report progress, complete or
    /// fail them; and the per-kind controls.
    Worker,
    /// Health and metrics.
    Operations,
}

/// The gateway's settings, read once from the environment at start-up.
#[derive(Clone)]
pub struct Config {
    pub database_url: String,
    pub listen: SocketAddr,
    pub public_url: String,
    pub admin_token: Option<String>,
    pub jwt_secret: Option<String>,
    pub jwt_public_key: Option<String>,
    pub jwt_issuer: Option<String>,
    pub jwt_audience: Option<String>,
    pub max_body_bytes: usize,
    pub auto_migrate: bool,
    /// How long ingress waits for its commit before answering 503.
    pub ack_deadline: Duration,
    /// Commit webhooks through the group-commit ingestor (the default) or, for comparison, one
    /// transaction per request (`SENTINEL_INGEST_BATCHING=0`).
    pub ingest_batching: bool,
    pub ingestor: IngestorConfig,
    /// The API's pool (`SENTINEL_DB_MAX_CONNECTIONS`). Ingress and the worker API's claims have
    /// pools of their own, so none of the three can starve another.
    pub db_max_connections: u32,
    /// Ingress's pool: the ingestor's commits and the source, key and tenant lookups
    /// (`SENTINEL_DB_INGEST_CONNECTIONS`).
    pub db_ingest_connections: u32,
    /// The worker API's claims (`SENTINEL_DB_CLAIM_CONNECTIONS`).
    pub db_claim_connections: u32,
    /// How long a request waits for a database connection before failing.
    pub db_acquire_timeout: Duration,
    /// `statement_timeout` and `lock_timeout` of every connection.
    pub db_timeouts: db::DbTimeouts,
    /// What each tenant's API requests (every authenticated call: reads, the worker API, job
    /// submissions) may spend per second, apart from the events budget of its own row
    /// (`SENTINEL_TENANT_REQUESTS_PER_SEC`, `SENTINEL_TENANT_REQUEST_BURST`).
    pub tenant_requests: RequestBudget,
    /// A tenant's requests in flight on this gateway at once (`SENTINEL_TENANT_MAX_IN_FLIGHT`;
    /// 429 `too_many_in_flight` beyond it). A waiting long poll or an open event stream is not
    /// counted: they have caps of their own.
    pub tenant_max_in_flight: usize,
    /// Long polls waiting at once, per tenant and in all (429 `too_many_polls` beyond them).
    pub claim_polls: PollLimits,
    /// How often one waiting claim per tenant and kind looks again without a notification
    /// (`SENTINEL_CLAIM_POLL_MS`): retries that came due, a capped kind's freed slot.
    pub claim_poll_interval: Duration,
    /// The dashboard's built files, served at `/dashboard/`.
    pub dashboard_dir: PathBuf,
    /// Connection and body-read limits of the HTTP server.
    pub http: HttpLimits,
    /// Most events one webhook may carry (413 `too_many_events` beyond it).
    pub max_events_per_request: usize,
    /// Bearer token `/metrics` asks for; unset leaves it open.
    pub metrics_token: Option<String>,
    /// Open event streams per tenant, and in all (429 `too_many_streams` beyond them).
    pub sse_max_per_tenant: usize,
    pub sse_max_total: usize,
    /// Bytes of events an event stream may hold for a client that is not reading them; past
    /// this, once its socket has written nothing for a few seconds, the stream's connection is
    /// closed and the client resumes with `Last-Event-ID` (`SENTINEL_SSE_MAX_BUFFER_BYTES`).
    pub sse_max_buffer_bytes: usize,
    /// Uncached tenant, key and source lookups per second, across all callers (see [`directory`]).
    pub directory_lookups_per_sec: u32,
    /// How often expired leases are looked for (`SENTINEL_RESCUE_INTERVAL_MS`).
    pub rescue_interval: Duration,
    /// The longest a worker API claim waits, whatever its `wait_ms` (`SENTINEL_CLAIM_MAX_WAIT_MS`):
    /// lower it when a proxy in front of the gateway times requests out sooner.
    pub claim_max_wait: Duration,
    /// The private addresses and hosts a source's forward URL may name (`SENTINEL_FORWARD_ALLOW`;
    /// the worker enforces the same list on every connection).
    pub forward_allow: ForwardAllow,
}

impl std::fmt::Debug for Config {
    // Secrets never reach a log line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Config")
            .field("listen", &self.listen)
            .field("public_url", &self.public_url)
            .field("admin_token", &self.admin_token.as_ref().map(|_| "<set>"))
            .field(
                "jwt",
                &(self.jwt_secret.is_some() || self.jwt_public_key.is_some()),
            )
            .field("max_body_bytes", &self.max_body_bytes)
            .field("http", &self.http)
            .field(
                "metrics_token",
                &self.metrics_token.as_ref().map(|_| "<set>"),
            )
            .finish_non_exhaustive()
    }
}

/// The gateway's pools: the API's, ingress's and the worker API's claims', each of its configured
/// size, so none of the three can starve another; the schema migrated first when the config asks.
async fn open_pools(
    config: &Config,
    connections: &db::Connections,
) -> anyhow::Result<(PgPool, PgPool, PgPool)> {
    let pool_of = |size: u32| connections.pool(size, config.db_acquire_timeout);
    let pool = pool_of(config.db_max_connections);
    if config.auto_migrate {
        db::migrate_on(&connections.direct).await?;
    }
    Ok((
        pool,
        pool_of(config.db_ingest_connections),
        pool_of(config.db_claim_connections),
    ))
}

/// A variable that is set and not blank.
fn optional(name: &str) -> Option<String> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())
}

/// A duration in milliseconds, at least 1.
fn millis(name: &str, default: Duration) -> anyhow::Result<Duration> {
    let ms: u64 = config::var_or(name, default.as_millis() as u64)?;
    if ms == 0 {
        anyhow::bail!("{name} must be at least 1 (milliseconds)");
    }
    Ok(Duration::from_millis(ms))
}

/// `value` of `name`, refused when it is 0.
fn at_least_one(name: &str, value: usize) -> anyhow::Result<usize> {
    if value == 0 {
        anyhow::bail!("{name} must be at least 1");
    }
    Ok(value)
}

/// A pool's size, at least 1.
fn pool_size(name: &str, default: u32) -> anyhow::Result<u32> {
    let n: u32 = config::var_or(name, default)?;
    if n == 0 {
        anyhow::bail!("{name} must be at least 1");
    }
    Ok(n)
}

/// `SENTINEL_LISTEN`, and `SENTINEL_PUBLIC_URL` (an http:// or https:// URL, by default the
/// listen address) without a trailing slash.
fn listen_from_env() -> anyhow::Result<(SocketAddr, String)> {
    let listen: SocketAddr =
        config::var_or("SENTINEL_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)))?;
    let public_url: String = config::var_or("SENTINEL_PUBLIC_URL", format!("http://{listen}"))?;
    if !(public_url.starts_with("http://") || public_url.starts_with("https://")) {
        anyhow::bail!(
            "SENTINEL_PUBLIC_URL={public_url:?} is invalid: it must start with http:// or https://"
        );
    }
    Ok((listen, public_url.trim_end_matches('/').to_owned()))
}

/// The HTTP server's timeouts and connection limits (`SENTINEL_HTTP_*`).
fn http_limits_from_env() -> anyhow::Result<HttpLimits> {
    let defaults = HttpLimits::default();
    let http = HttpLimits {
        header_read_timeout: millis(
            "SENTINEL_HTTP_HEADER_TIMEOUT_MS",
            defaults.header_read_timeout,
        )?,
        idle_timeout: millis("SENTINEL_HTTP_IDLE_TIMEOUT_MS", defaults.idle_timeout)?,
        body_read_timeout: millis("SENTINEL_HTTP_BODY_TIMEOUT_MS", defaults.body_read_timeout)?,
        http2_max_streams: config::var_or(
            "SENTINEL_HTTP2_MAX_STREAMS",
            defaults.http2_max_streams,
        )?,
        max_connections: config::var_or("SENTINEL_HTTP_MAX_CONNECTIONS", defaults.max_connections)?,
    };
    if http.http2_max_streams == 0 || http.max_connections == 0 {
        anyhow::bail!(
            "SENTINEL_HTTP2_MAX_STREAMS and SENTINEL_HTTP_MAX_CONNECTIONS must be at least 1"
        );
    }
    Ok(http)
}

/// The events one webhook may carry, and the event streams' caps.
struct StreamLimits {
    max_events_per_request: usize,
    sse_max_per_tenant: usize,
    sse_max_total: usize,
    sse_max_buffer_bytes: usize,
}

impl StreamLimits {
    fn from_env() -> anyhow::Result<Self> {
        let max_events_per_request: usize = config::var_or(
            "SENTINEL_MAX_EVENTS_PER_REQUEST",
            DEFAULT_MAX_EVENTS_PER_REQUEST,
        )?;
        let sse_max_per_tenant: usize = config::var_or("SENTINEL_SSE_MAX_PER_TENANT", 64)?;
        let sse_max_total: usize = config::var_or("SENTINEL_SSE_MAX_TOTAL", 4_096)?;
        let sse_max_buffer_bytes: usize = config::var_or(
            "SENTINEL_SSE_MAX_BUFFER_BYTES",
            events::DEFAULT_MAX_BUFFER_BYTES,
        )?;
        if !(1..=u32::MAX as usize).contains(&sse_max_buffer_bytes) {
            anyhow::bail!("SENTINEL_SSE_MAX_BUFFER_BYTES must be from 1 to 4294967295 (bytes)");
        }
        if max_events_per_request == 0 || sse_max_per_tenant == 0 || sse_max_total == 0 {
            anyhow::bail!("SENTINEL_MAX_EVENTS_PER_REQUEST, SENTINEL_SSE_MAX_PER_TENANT and SENTINEL_SSE_MAX_TOTAL must be at least 1");
        }
        Ok(Self {
            max_events_per_request,
            sse_max_per_tenant,
            sse_max_total,
            sse_max_buffer_bytes,
        })
    }
}

/// Each tenant's API requests budget (`SENTINEL_TENANT_REQUESTS_PER_SEC`,
/// `SENTINEL_TENANT_REQUEST_BURST`).
fn request_budget_from_env() -> anyhow::Result<RequestBudget> {
    Ok(RequestBudget {
        per_sec: at_least_one(
            "SENTINEL_TENANT_REQUESTS_PER_SEC",
            config::var_or(
                "SENTINEL_TENANT_REQUESTS_PER_SEC",
                RequestBudget::default().per_sec,
            )?,
        )?,
        burst: at_least_one(
            "SENTINEL_TENANT_REQUEST_BURST",
            config::var_or(
                "SENTINEL_TENANT_REQUEST_BURST",
                RequestBudget::default().burst,
            )?,
        )?,
    })
}

/// The caps on waiting long polls (`SENTINEL_CLAIM_MAX_POLLS_PER_TENANT`, `SENTINEL_CLAIM_MAX_POLLS`).
fn poll_limits_from_env() -> anyhow::Result<PollLimits> {
    Ok(PollLimits {
        per_tenant: at_least_one(
            "SENTINEL_CLAIM_MAX_POLLS_PER_TENANT",
            config::var_or("SENTINEL_CLAIM_MAX_POLLS_PER_TENANT", 1_000)?,
        )?,
        total: at_least_one(
            "SENTINEL_CLAIM_MAX_POLLS",
            config::var_or("SENTINEL_CLAIM_MAX_POLLS", 8_000)?,
        )?,
    })
}

/// The group-commit ingestor's batch size, wait and commits in flight (`SENTINEL_INGEST_*`).
fn ingestor_from_env() -> anyhow::Result<IngestorConfig> {
    Ok(IngestorConfig {
        max_batch_rows: config::var_or(
            "SENTINEL_INGEST_MAX_BATCH",
            IngestorConfig::default().max_batch_rows,
        )?,
        max_wait: Duration::from_micros(config::var_or(
            "SENTINEL_INGEST_MAX_WAIT_US",
            IngestorConfig::default().max_wait.as_micros() as u64,
        )?),
        max_in_flight: config::var_or(
            "SENTINEL_INGEST_IN_FLIGHT",
            IngestorConfig::default().max_in_flight,
        )?,
        ..IngestorConfig::default()
    })
}

/// Readies a request for its handler: ingress reads raw bytes whatever their type (and applies
/// the body limit itself, after finding the source); every other request is refused for U+0000
/// in its URI, and its body is read under the body limit and deadline.
fn prepare_request(
    mut req: poem::Request,
    max_body_bytes: usize,
    body_deadline: Duration,
) -> poem::Result<poem::Request> {
    if req.uri().path().starts_with("/hooks/") {
        // Some senders omit Content-Type; ingress reads raw bytes whatever the type
        // (and applies the body limit itself, after finding the source).
        if !req.headers().contains_key("content-type") {
            req.headers_mut().insert(
                "content-type",
                poem::http::HeaderValue::from_static("application/octet-stream"),
            );
        }
    } else {
        // U+0000 in the path or a query value can never be stored or matched.
        if let Some(message) = nul_in_uri(req.uri()) {
            return Err(poem::Error::from_response(error_response(
                poem::http::StatusCode::BAD_REQUEST,
                error::INVALID_TEXT,
                &message,
            )));
        }
        // Every other body is read under the same limit and deadline, whether or not
        // it declared its length, and only when the handler reads it: after the
        // caller is authenticated, so an anonymous request never costs a body read.
        if server::declares_more_than(req.headers(), max_body_bytes) {
            return Err(poem::Error::from_response(body_error_response(
                BodyError::TooLarge,
                max_body_bytes,
            )));
        }
        let body = req.take_body();
        req.set_body(server::limited_body(body, max_body_bytes, body_deadline));
    }
    Ok(req)
}

/// The JSON error answer of an error no handler answered itself.
fn error_answer(error: poem::Error, max_body_bytes: usize) -> poem::Response {
    let status = error.status();
    // Our own errors (ApiError, ingress answers) already have their JSON body.
    if error.is_from_response() {
        return error.into_response();
    }
    // A body that broke its limit or deadline while a handler read it.
    if let Some(body_error) = server::BodyError::from_read_error(&error.to_string()) {
        return body_error_response(body_error, max_body_bytes);
    }
    let message = if status == poem::http::StatusCode::UNAUTHORIZED {
        "missing or malformed Authorization header: expected `Bearer <api key or JWT>`".to_owned()
    } else if status.is_server_error() {
        tracing::error!(%error, "unhandled error");
        "internal error; see the gateway log".to_owned()
    } else {
        error.to_string()
    };
    error_response(status, code_for_status(status), &message)
}

/// Where `npm run build` puts the dashboard, relative to the repository root.
pub const DEFAULT_DASHBOARD_DIR: &str = "dashboard/dist";
/// Meta batches up to 1,000 changes in one WhatsApp webhook; no platform sends more.
pub const DEFAULT_MAX_EVENTS_PER_REQUEST: usize = 1_000;

impl Config {
    /// The defaults, for `database_url` and `listen`: no admin token, no JWTs.
    pub fn new(database_url: String, listen: SocketAddr) -> Self {
        Self {
            database_url,
            listen,
            public_url: format!("http://{listen}"),
            admin_token: None,
            jwt_secret: None,
            jwt_public_key: None,
            jwt_issuer: None,
            jwt_audience: None,
            max_body_bytes: 4 * 1024 * 1024,
            auto_migrate: false,
            ack_deadline: Duration::from_millis(2_000),
            ingest_batching: true,
            ingestor: IngestorConfig::default(),
            db_max_connections: 16,
            db_ingest_connections: 8,
            db_claim_connections: 4,
            db_acquire_timeout: Duration::from_millis(1_000),
            db_timeouts: db::DbTimeouts::default(),
            tenant_requests: RequestBudget::default(),
            tenant_max_in_flight: 8,
            claim_polls: PollLimits {
                per_tenant: 1_000,
                total: 8_000,
            },
            claim_poll_interval: Duration::from_secs(2),
            dashboard_dir: PathBuf::from(DEFAULT_DASHBOARD_DIR),
            http: HttpLimits::default(),
            max_events_per_request: DEFAULT_MAX_EVENTS_PER_REQUEST,
            metrics_token: None,
            sse_max_per_tenant: 64,
            sse_max_total: 4_096,
            sse_max_buffer_bytes: events::DEFAULT_MAX_BUFFER_BYTES,
            directory_lookups_per_sec: directory::DEFAULT_LOOKUPS_PER_SEC,
            rescue_interval: Duration::from_secs(1),
            claim_max_wait: Duration::from_secs(30),
            forward_allow: ForwardAllow::default(),
        }
    }

    /// The defaults, overridden by the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        // Checked now, so that a bad SENTINEL_RETRY_<KIND> (the worker API's `fail` and every
        // enqueue read it) stops the gateway at start-up.
        sentinel_queue::outcome::RetryPolicies::from_env()?;
        let (listen, public_url) = listen_from_env()?;
        let max_body_bytes = at_least_one(
            "SENTINEL_MAX_BODY_BYTES",
            config::var_or("SENTINEL_MAX_BODY_BYTES", 4 * 1024 * 1024)?,
        )?;
        let http = http_limits_from_env()?;
        let streams = StreamLimits::from_env()?;
        let directory_lookups_per_sec: u32 = config::var_or(
            "SENTINEL_DIRECTORY_LOOKUPS_PER_SEC",
            directory::DEFAULT_LOOKUPS_PER_SEC,
        )?;
        if directory_lookups_per_sec == 0 {
            anyhow::bail!("SENTINEL_DIRECTORY_LOOKUPS_PER_SEC must be at least 1");
        }
        let tenant_requests = request_budget_from_env()?;
        let claim_polls = poll_limits_from_env()?;
        let config = Self {
            db_ingest_connections: pool_size("SENTINEL_DB_INGEST_CONNECTIONS", 8)?,
            db_claim_connections: pool_size("SENTINEL_DB_CLAIM_CONNECTIONS", 4)?,
            db_timeouts: db::DbTimeouts::from_env()?,
            tenant_requests,
            tenant_max_in_flight: at_least_one(
                "SENTINEL_TENANT_MAX_IN_FLIGHT",
                config::var_or("SENTINEL_TENANT_MAX_IN_FLIGHT", 8)?,
            )?,
            claim_polls,
            claim_poll_interval: millis("SENTINEL_CLAIM_POLL_MS", Duration::from_secs(2))?,
            rescue_interval: millis("SENTINEL_RESCUE_INTERVAL_MS", Duration::from_secs(1))?,
            claim_max_wait: millis("SENTINEL_CLAIM_MAX_WAIT_MS", Duration::from_secs(30))?,
            forward_allow: config::var_or("SENTINEL_FORWARD_ALLOW", String::new())?
                .parse()
                .map_err(|error| anyhow::anyhow!("SENTINEL_FORWARD_ALLOW: {error}"))?,
            directory_lookups_per_sec,
            http,
            max_events_per_request: streams.max_events_per_request,
            metrics_token: optional("SENTINEL_METRICS_TOKEN"),
            sse_max_per_tenant: streams.sse_max_per_tenant,
            sse_max_total: streams.sse_max_total,
            sse_max_buffer_bytes: streams.sse_max_buffer_bytes,
            dashboard_dir: config::var_or(
                "SENTINEL_DASHBOARD_DIR",
                PathBuf::from(DEFAULT_DASHBOARD_DIR),
            )?,
            database_url: config::required("DATABASE_URL")?,
            listen,
            public_url,
            admin_token: optional("SENTINEL_ADMIN_TOKEN"),
            jwt_secret: optional("SENTINEL_JWT_SECRET"),
            jwt_public_key: optional("SENTINEL_JWT_PUBLIC_KEY"),
            jwt_issuer: optional("SENTINEL_JWT_ISSUER"),
            jwt_audience: optional("SENTINEL_JWT_AUDIENCE"),
            max_body_bytes,
            auto_migrate: config::flag("SENTINEL_AUTO_MIGRATE")?,
            ack_deadline: Duration::from_millis(config::var_or("SENTINEL_ACK_DEADLINE_MS", 2_000)?),
            ingest_batching: config::var_or("SENTINEL_INGEST_BATCHING", 1u8)? != 0,
            ingestor: ingestor_from_env()?,
            db_max_connections: pool_size("SENTINEL_DB_MAX_CONNECTIONS", 16)?,
            db_acquire_timeout: Duration::from_millis(config::var_or(
                "SENTINEL_DB_ACQUIRE_TIMEOUT_MS",
                1_000,
            )?),
        };
        config.check_tokens()?;
        config.jwt_verifier()?;
        Ok(config)
    }

    /// The admin and metrics tokens, when set, are long enough to guess at no cost.
    fn check_tokens(&self) -> anyhow::Result<()> {
        if let Some(token) = &self.admin_token {
            if token.len() < 16 {
                anyhow::bail!("SENTINEL_ADMIN_TOKEN is too short: use at least 16 characters");
            }
        }
        if let Some(token) = &self.metrics_token {
            if token.len() < 16 {
                anyhow::bail!("SENTINEL_METRICS_TOKEN is too short: use at least 16 characters");
            }
        }
        Ok(())
    }

    fn jwt_verifier(&self) -> anyhow::Result<Option<JwtVerifier>> {
        let (issuer, audience) = (self.jwt_issuer.as_deref(), self.jwt_audience.as_deref());
        Ok(match (&self.jwt_secret, &self.jwt_public_key) {
            (Some(_), Some(_)) => {
                anyhow::bail!("set SENTINEL_JWT_SECRET or SENTINEL_JWT_PUBLIC_KEY, not both")
            }
            (Some(secret), None) => Some(JwtVerifier::hs256(secret.as_bytes(), issuer, audience)),
            (None, Some(pem)) => Some(JwtVerifier::rs256(pem.as_bytes(), issuer, audience)?),
            (None, None) => None,
        })
    }
}

/// Everything a request handler needs.
pub struct AppState {
    pub config: Config,
    /// The API's pool.
    pub pool: PgPool,
    /// Ingress's pool (the ingestor and the directory use it too).
    pub ingest_pool: PgPool,
    /// The worker API's claims.
    pub claim_pool: PgPool,
    /// The worker API's waiting long polls, by tenant and kind.
    pub claims: Arc<Dispatcher>,
    pub ingestor: Ingestor,
    pub directory: Directory,
    pub jwt: Option<JwtVerifier>,
    pub hub: Hub,
    pub metrics: Arc<Metrics>,
    /// Queued jobs by tenant, for the queue cap (see [`admission`]).
    pub queue_counts: Arc<QueueCounts>,
    /// Each tenant's requests in flight, for their cap.
    pub in_flight: admission::InFlight,
    /// Open event streams, for their caps.
    pub subscribers: Arc<events::Subscribers>,
    /// The tenants' limits shared with every other gateway.
    pub limits: Arc<Limits>,
    /// The LISTEN connection's fan-out (the worker API's long-polling claims wait on it).
    pub listener: Listener,
    pub shutdown: watch::Receiver<bool>,
}

impl AppState {
    pub fn ingest_url(&self, source_id: Uuid) -> String {
        format!("{}/hooks/{source_id}", self.config.public_url)
    }
}

/// Every documented API, by tag.
type Apis = (
    admin::AdminApi,
    sources::SourcesApi,
    ingress::IngressApi,
    jobs::JobsApi,
    conversations::ConversationsApi,
    worker_api::WorkerApi,
    events::EventsApi,
    ops::OpsApi,
);

/// The OpenAPI service: every documented endpoint.
pub fn api_service(public_url: &str) -> OpenApiService<Apis, ()> {
    let apis: Apis = (
        admin::AdminApi,
        sources::SourcesApi,
        ingress::IngressApi,
        jobs::JobsApi,
        conversations::ConversationsApi,
        worker_api::WorkerApi,
        events::EventsApi,
        ops::OpsApi,
    );
    OpenApiService::new(apis, "Sentinel", env!("CARGO_PKG_VERSION"))
        .description(
            "Edge gateway and job system for AI agents. Errors are JSON: \
         {\"error\": {\"code\": \"snake_case_code\", \"message\": \"what was wrong\"}}.",
        )
        .server(public_url)
}

/// The committed spec's text: `sentinel-api openapi` prints it.
pub fn openapi_json() -> String {
    api_service("http://127.0.0.1:8080").spec()
}

/// A running gateway's parts, for `serve` and for tests.
pub struct Gateway {
    pub state: Arc<AppState>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
    ingest_task: tokio::task::JoinHandle<()>,
}

/// The dashboard's files when they are built; otherwise a 404 that says how to build them.
fn dashboard(dir: &Path) -> poem::endpoint::BoxEndpoint<'static> {
    if dir.join("index.html").is_file() {
        tracing::info!(dir = %dir.display(), "serving the dashboard at /dashboard/");
        return poem::endpoint::StaticFilesEndpoint::new(dir)
            .index_file("index.html")
            .no_cache_index()
            .redirect_to_slash_directory()
            .boxed();
    }
    let message = format!(
        "the dashboard is not built: {} has no index.html (run `npm ci && npm run build` in the \
     repository root, or set SENTINEL_DASHBOARD_DIR)",
        dir.display()
    );
    tracing::warn!("{message}");
    poem::endpoint::make_sync(move |_| {
        error_response(
            poem::http::StatusCode::NOT_FOUND,
            "dashboard_not_built",
            &message,
        )
    })
    .boxed()
}

impl Gateway {
    /// Connects, migrates if asked, and starts the background tasks.
    /// `DATABASE_URL`, or a pooler in front of it (`SENTINEL_DB_POOLER`, with LISTEN on
    /// `SENTINEL_DATABASE_DIRECT_URL`; see [`db::Connections::from_env`]).
    pub async fn start(config: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<Gateway> {
        let connections = db::Connections::from_env(&config.database_url, config.db_timeouts)?;
        Self::start_connected(config, connections, shutdown).await
    }

    /// Like [`Gateway::start`], with the connection options given (tests point them elsewhere).
    pub async fn start_with(
        config: Config,
        options: sqlx::postgres::PgConnectOptions,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Gateway> {
        let options = config.db_timeouts.apply(options);
        Self::start_connected(config, db::Connections::direct(options), shutdown).await
    }

    /// Like [`Gateway::start`], with the connections given.
    pub async fn start_connected(
        config: Config,
        mut connections: db::Connections,
        shutdown: watch::Receiver<bool>,
    ) -> anyhow::Result<Gateway> {
        connections.locate_primary().await;
        let (pool, ingest_pool, claim_pool) = open_pools(&config, &connections).await?;
        let failover = connections.spawn_failover(shutdown.clone());
        let (listener, listen_task) = Listener::spawn_on(
            connections.listen_pool(),
            &[
                EVENTS_CHANNEL,
                CONFIG_CHANNEL,
                WORKER_JOBS_CHANNEL,
                lanes::TURNS_CHANNEL,
            ],
            shutdown.clone(),
        );
        let claims = Dispatcher::new(config.claim_polls);
        let dispatcher = tokio::spawn(claims.clone().run(
            listener.notices(WORKER_JOBS_CHANNEL),
            config.claim_poll_interval,
            shutdown.clone(),
        ));
        let hub = Hub::start(
            pool.clone(),
            listener.waiter(EVENTS_CHANNEL),
            shutdown.clone(),
        )
        .await
        .context("reading the event log (is the database up and migrated?)")?;
        db::check_schema(&pool).await?;
        let (ingestor, ingest_task) = Ingestor::spawn(ingest_pool.clone(), config.ingestor.clone());
        let limits = Limits::new(ingest_pool.clone());
        let leases = tokio::spawn(limits.clone().run(shutdown.clone()));
        let directory = Directory::new(
            ingest_pool.clone(),
            limits.clone(),
            config.directory_lookups_per_sec,
            config.tenant_requests,
        );
        let invalidator = tokio::spawn(invalidate_on_change(
            directory.clone(),
            listener.notices(CONFIG_CHANNEL),
            shutdown.clone(),
        ));
        let jwt = config.jwt_verifier()?;
        let metrics = Arc::new(Metrics::new());
        let queue_counts = Arc::new(QueueCounts::default());
        let counter = tokio::spawn(admission::refresh_counts(
            pool.clone(),
            queue_counts.clone(),
            metrics.clone(),
            shutdown.clone(),
        ));
        // The worker API's jobs go back to the queue when their worker vanishes, whether or not a
        // built-in worker (which runs a rescuer too) is running. Rescuers skip each other's rows.
        let rescuer = tokio::spawn(run_rescuer(
            pool.clone(),
            config.rescue_interval,
            shutdown.clone(),
        ));
        // Conversations' turns start from gateways too, so the turns of an external agent move on
        // when no built-in worker runs. Starters split the due lanes between them.
        let starter = tokio::spawn(lanes::run_starter(
            pool.clone(),
            listener.waiter(lanes::TURNS_CHANNEL),
            config.claim_poll_interval,
            shutdown.clone(),
        ));
        let config_in_flight = config.tenant_max_in_flight;
        let state = Arc::new(AppState {
            listener,
            config,
            pool,
            ingest_pool,
            claim_pool,
            claims,
            ingestor,
            directory,
            jwt,
            hub,
            metrics,
            queue_counts,
            in_flight: admission::InFlight::new(config_in_flight),
            subscribers: Arc::default(),
            limits,
            shutdown,
        });
        Ok(Gateway {
            state,
            tasks: vec![
                listen_task,
                invalidator,
                counter,
                rescuer,
                dispatcher,
                starter,
                leases,
            ]
            .into_iter()
            .chain(failover)
            .collect(),
            ingest_task,
        })
    }

    /// The HTTP application.
    pub fn endpoint(&self) -> impl Endpoint + 'static {
        let service = api_service(&self.state.config.public_url);
        let max_body_bytes = self.state.config.max_body_bytes;
        let body_deadline = self.state.config.http.body_read_timeout;
        let spec = service.spec();
        let ui = service.swagger_ui();
        Route::new()
            .nest("/", service)
            .at(
                "/openapi.json",
                poem::endpoint::make_sync(move |_| {
                    spec.clone().with_content_type("application/json")
                }),
            )
            .nest("/docs", ui)
            .nest("/dashboard", dashboard(&self.state.config.dashboard_dir))
            .before(move |req: poem::Request| async move {
                prepare_request(req, max_body_bytes, body_deadline)
            })
            .data(self.state.clone())
            .catch_all_error(move |error: poem::Error| async move {
                error_answer(error, max_body_bytes)
            })
            .around(|endpoint, req| async move {
                // The query string never reaches the log: it can carry secrets (WhatsApp's
                // `hub.verify_token`, an ingest `token`). Only its parameter names are kept.
                let span = tracing::info_span!(
                    "request",
                    remote_addr = %req.remote_addr(),
                    method = %req.method(),
                    path = %req.uri().path(),
                    query = %query_names(req.uri().query()),
                );
                async move {
                    let started = std::time::Instant::now();
                    let response = endpoint.call(req).await?.into_response();
                    tracing::info!(status = %response.status(), duration = ?started.elapsed(), "response");
                    Ok(response)
                }
                .instrument(span)
                .await
            })
    }

    /// Waits for the background tasks after shutdown, flushing the ingestor.
    pub async fn stop(self) {
        let Gateway {
            state,
            tasks,
            ingest_task,
        } = self;
        let pools = [
            state.pool.clone(),
            state.ingest_pool.clone(),
            state.claim_pool.clone(),
        ];
        drop(state);
        for task in tasks {
            let _ = task.await;
        }
        // The ingestor stops once the last handle (held by the state) is gone.
        let _ = tokio::time::timeout(Duration::from_secs(10), ingest_task).await;
        for pool in pools {
            pool.close().await;
        }
    }
}

/// Drops what a configuration change made stale: the one tenant, key or source its payload names
/// (`tenant:<id>`, `api_key:<prefix>`, `source:<id>`), so one tenant's change never empties every
/// tenant's cached entries; everything when notifications may have been missed or a payload is
/// not understood.
async fn invalidate_on_change(
    directory: Directory,
    mut notices: sentinel_queue::Notices,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let notice = tokio::select! {
            notice = notices.next() => notice,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        match notice {
            Some(Notice::Payload(payload)) => directory.invalidate(&payload).await,
            Some(Notice::Resync) => directory.invalidate_all(),
            None => return,
        }
    }
}

/// Serves until `shutdown` turns true: stops accepting, ends the SSE streams, flushes the
/// ingestor, then returns.
pub async fn serve(config: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let gateway = Gateway::start(config.clone(), shutdown.clone()).await?;
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding SENTINEL_LISTEN={}", config.listen))?;
    serve_on(gateway, listener, shutdown).await
}

/// Serves a started gateway on a bound listener until `shutdown` turns true.
pub async fn serve_on(
    gateway: Gateway,
    listener: TcpListener,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let app = gateway.endpoint();
    if let Ok(addr) = listener.local_addr() {
        tracing::info!(listen = %addr, "gateway listening");
    }
    server::serve(
        listener,
        app,
        gateway.state.config.http.clone(),
        shutdown,
        Duration::from_secs(10),
    )
    .await
    .context("serving HTTP")?;
    gateway.stop().await;
    tracing::info!("gateway stopped");
    Ok(())
}

/// The error answer for a request body that was not read.
pub(crate) fn body_error_response(error: BodyError, max_body_bytes: usize) -> poem::Response {
    use poem::http::StatusCode;
    match error {
        BodyError::TooLarge => error_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            &format!("the request body is over SENTINEL_MAX_BODY_BYTES ({max_body_bytes} bytes)"),
        ),
        BodyError::TimedOut => error_response(
            StatusCode::REQUEST_TIMEOUT,
            "body_timeout",
            "the request body did not arrive within SENTINEL_HTTP_BODY_TIMEOUT_MS",
        ),
        BodyError::Unreadable(error) => error_response(
            StatusCode::BAD_REQUEST,
            "unreadable_body",
            &format!("the request body could not be read: {error}"),
        ),
    }
}

/// Which part of an API request's URI holds U+0000 (`%00`), if any, as a message naming it.
fn nul_in_uri(uri: &poem::http::Uri) -> Option<String> {
    let path = uri.path();
    if path.contains("%00") {
        return Some("the request path contains U+0000 (%00), which no id or name can hold".into());
    }
    let query = uri.query()?;
    form_urlencoded::parse(query.as_bytes())
        .find(|(name, value)| name.contains('\0') || value.contains('\0'))
        .map(|(name, _)| {
            format!(
                "the query parameter {:?} contains U+0000 (%00), which cannot be stored or matched",
                name.replace('\0', "\u{FFFD}")
            )
        })
}

/// The names of a query string's parameters, for the log; values are left out.
fn query_names(query: Option<&str>) -> String {
    query
        .map(|query| {
            form_urlencoded::parse(query.as_bytes())
                .map(|(name, _)| name.into_owned())
                .collect::<Vec<_>>()
                .join(",")
        })
        .unwrap_or_default()
}
