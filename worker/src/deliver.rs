//! `reply.deliver`, the outbox: sends the agent's reply through the platform's API with the
//! source's reply credentials (read at delivery time, so a rotated token is used at once), and
//! holds it through platform outages.
//!
//! Before a reply is sent, in this order:
//!
//! | check | outcome |
//! |---|---|
//! | past `created_at + reply_ttl` (the source's, default an hour) | dead, `reply_expired` (replayable) |
//! | an older reply of the same source and conversation is still queued or running | snoozed behind it (Postgres decides, so this holds across workers) |
//! | the breaker of the platform and credential is open, probing, or held by a 429 | snoozed until its next probe; no attempt spent, no slot held |
//!
//! Then the answer:
//!
//! | answer | outcome | breaker |
//! |---|---|---|
//! | 2xx (Slack: and `ok: true`) | succeeded, with the platform's message id | closes |
//! | 429, Slack `ratelimited` | snoozed for `Retry-After` (seconds or an HTTP date; Telegram: `parameters.retry_after`); no attempt spent | held until then |
//! | 5xx, a network error, a timeout, Slack's transient errors | retried: at the breaker's next probe when it is open, else with backoff (capped by `SENTINEL_DELIVERY_BACKOFF_MAX_MS`) | counts a failure |
//! | other 4xx, Slack `ok: false`, Telegram `ok: false` | dead at once, with the platform's error body | closes (the platform answers) |
//!
//! Every delay stops at the reply's ttl, so a reply ends when its ttl does, not later. A reply's
//! attempts are many ([`agent::DELIVERY_ATTEMPTS`]): the ttl ends it, not a count.
//!
//! The breaker ([`Breakers`]) is per process and per platform and credential (a hash of the base
//! URL and the reply credentials; logs name only that hash): after
//! `SENTINEL_BREAKER_THRESHOLD` consecutive transient failures it opens, and the deliveries of that
//! credential are snoozed until its probe time; then exactly one delivery goes through as the probe
//! (half-open). Its success closes the breaker; its failure reopens it with twice the cooldown, up
//! to `SENTINEL_BREAKER_MAX_COOLDOWN_MS`. Other platforms and credentials are not affected.

use std::{
    collections::HashMap,
    fmt,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use chrono::{DateTime, NaiveDateTime, Utc};
use reqwest::{header::RETRY_AFTER, RequestBuilder, StatusCode};
use sentinel_queue::{
    agent,
    platform::{Outgoing, Platform, ReplyApi},
    FailKind, Job, Outcome, RetryPolicy,
};
use serde_json::{json, Value as JsonValue};
use sha2::{Digest, Sha256};

use crate::{generate_job::fatal, Services};

/// Where each platform's reply API lives: its [`ReplyApi::default_base`] unless set; tests point
/// these at loopback.
#[derive(Debug, Clone, Default)]
pub struct ApiBases(HashMap<Platform, String>);

impl ApiBases {
    /// `platform`'s API at `base` instead of its default.
    pub fn with(mut self, platform: Platform, base: impl Into<String>) -> Self {
        self.0.insert(platform, base.into());
        self
    }

    /// Every reply API's [`ReplyApi::base_variable`] that is set.
    pub fn from_env(mut self) -> anyhow::Result<Self> {
        for &platform in Platform::ALL {
            if let Some(api) = &platform.spec().reply {
                let base = sentinel_queue::config::var_or(api.base_variable, String::new())?;
                if !base.is_empty() {
                    self.0.insert(platform, base);
                }
            }
        }
        Ok(self)
    }

    fn base(&self, platform: Platform, api: &ReplyApi) -> String {
        self.0
            .get(&platform)
            .map_or(api.default_base, String::as_str)
            .trim_end_matches('/')
            .to_owned()
    }
}

/// The outbox's settings (`SENTINEL_BREAKER_*`, `SENTINEL_DELIVERY_BACKOFF_MAX_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Consecutive transient failures of one platform and credential that open its breaker.
    pub breaker_threshold: u32,
    /// How long an opened breaker waits before its first probe.
    pub breaker_cooldown: Duration,
    /// The longest wait between probes: each failed probe doubles the wait up to this.
    pub breaker_max_cooldown: Duration,
    /// The longest backoff between two attempts of one reply, so the platform is tried at least
    /// this often (the backoff starts at a second, or at this when it is shorter).
    pub backoff_max: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            breaker_max_cooldown: Duration::from_secs(30),
            backoff_max: Duration::from_secs(60),
        }
    }
}

impl OutboxConfig {
    /// The defaults, overridden by the environment; each bad value is named.
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::default();
        let ms = |name: &str, default: Duration| -> anyhow::Result<Duration> {
            let ms: u64 = sentinel_queue::config::var_or(name, default.as_millis() as u64)?;
            if ms == 0 {
                anyhow::bail!("{name} must be at least 1 millisecond");
            }
            Ok(Duration::from_millis(ms))
        };
        let config = Self {
            breaker_threshold: sentinel_queue::config::var_or(
                "SENTINEL_BREAKER_THRESHOLD",
                d.breaker_threshold,
            )?,
            breaker_cooldown: ms("SENTINEL_BREAKER_COOLDOWN_MS", d.breaker_cooldown)?,
            breaker_max_cooldown: ms("SENTINEL_BREAKER_MAX_COOLDOWN_MS", d.breaker_max_cooldown)?,
            backoff_max: ms("SENTINEL_DELIVERY_BACKOFF_MAX_MS", d.backoff_max)?,
        };
        config.check()?;
        Ok(config)
    }

    /// The checks [`Self::from_env`] makes, with the variables' names.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.breaker_threshold == 0 {
            anyhow::bail!("SENTINEL_BREAKER_THRESHOLD must be at least 1");
        }
        if self.breaker_cooldown > self.breaker_max_cooldown {
            anyhow::bail!(
                "SENTINEL_BREAKER_COOLDOWN_MS ({} ms) must not exceed SENTINEL_BREAKER_MAX_COOLDOWN_MS ({} ms)",
                self.breaker_cooldown.as_millis(),
                self.breaker_max_cooldown.as_millis()
            );
        }
        if self.backoff_max.is_zero() || self.breaker_cooldown.is_zero() {
            anyhow::bail!("SENTINEL_DELIVERY_BACKOFF_MAX_MS and SENTINEL_BREAKER_COOLDOWN_MS must be at least 1 millisecond");
        }
        Ok(())
    }

    /// The backoff between attempts: from a second, doubling, capped at [`Self::backoff_max`].
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            base: Duration::from_secs(1).min(self.backoff_max),
            max: self.backoff_max,
        }
    }
}

/// The longest snooze a `Retry-After` may ask for.
const MAX_SNOOZE: Duration = Duration::from_secs(3600);
/// The snooze for a 429 that names no delay.
const DEFAULT_SNOOZE: Duration = Duration::from_secs(1);
/// The most of a platform's error body kept in the job's error.
const ERROR_BODY_BYTES: usize = 4096;
/// How long a reply waits behind each older undelivered reply of its conversation (beyond the
/// time the oldest one may next run), before it looks again.
const ORDER_WAIT: Duration = Duration::from_millis(100);
/// The longest such wait.
const MAX_ORDER_WAIT: Duration = Duration::from_secs(30);

pub async fn handle(services: &Services, job: &Job) -> Outcome {
    match deliver(services, job).await {
        Ok(outcome) | Err(outcome) => outcome,
    }
}

/// What a `reply.deliver` job's input says.
struct Reply<'a> {
    platform: Platform,
    api: &'static ReplyApi,
    text: &'a str,
    address: JsonValue,
}

impl<'a> Reply<'a> {
    fn read(job: &'a Job) -> Result<Self, Outcome> {
        let input = &job.input;
        let text = input.get("text").and_then(JsonValue::as_str).unwrap_or("");
        let platform = match input
            .get("platform")
            .and_then(JsonValue::as_str)
            .map(str::parse::<Platform>)
        {
            Some(Ok(platform)) => platform,
            _ => {
                return Err(fatal(
                    "invalid_input",
                    "input.platform is missing or unknown".into(),
                ))
            }
        };
        if text.is_empty() {
            return Err(fatal("invalid_input", "input.text is empty".into()));
        }
        let Some(api) = &platform.spec().reply else {
            return Err(fatal(
                "no_reply_api",
                format!("{platform} has no reply API"),
            ));
        };
        Ok(Self {
            platform,
            api,
            text,
            address: input.get("address").cloned().unwrap_or(JsonValue::Null),
        })
    }
}

/// What the database says about a reply before it is sent.
struct Standing {
    credentials: JsonValue,
    /// How long the reply may still be retried; zero once its ttl is over.
    remaining: Duration,
    ttl_secs: i32,
    /// How long since the reply was queued.
    elapsed: Duration,
    /// Older replies of the same source and conversation that are not final yet.
    older: i64,
    /// The oldest of them, and how long until the earliest of them may run.
    oldest: Option<i64>,
    older_due_in: Duration,
}

impl Standing {
    async fn read(services: &Services, job: &Job) -> Result<Self, Outcome> {
        let Some(source_id) = job.source_id else {
            return Err(no_credentials());
        };
        // One statement: the source's credentials and ttl, the database's clock (the one
        // created_at was written with), and the older undelivered replies of the conversation
        // (through the partial index jobs_reply_order).
        let row = sqlx::query!(
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
            job.id,
            agent::DEFAULT_REPLY_TTL_SECS,
        )
        .fetch_one(&services.pool)
        .await
        .map_err(|error| {
            Outcome::Failed {
                kind: services.outbox.config.retry_policy().retryable(job.attempt),
                error: json!({"code": "database", "message": error.to_string()}),
            }
        })?;
        let Some(credentials) = row.reply else {
            return Err(no_credentials());
        };
        let elapsed = (row.now - job.created_at)
            .to_std()
            .unwrap_or(Duration::ZERO);
        let ttl = Duration::from_secs(u64::try_from(row.reply_ttl).unwrap_or(0));
        let older_due_in = row
            .next_run_at
            .and_then(|at| (at - row.now).to_std().ok())
            .unwrap_or(Duration::ZERO);
        Ok(Self {
            credentials,
            remaining: ttl.saturating_sub(elapsed),
            ttl_secs: row.reply_ttl,
            elapsed,
            older: row.older,
            oldest: row.first_id,
            older_due_in,
        })
    }

    /// Dead with `reply_expired` once the ttl is over.
    fn check_ttl(&self, job: &Job) -> Result<(), Outcome> {
        if !self.remaining.is_zero() {
            return Ok(());
        }
        Err(Outcome::Failed {
            kind: FailKind::Fatal,
            error: json!({
                "code": "reply_expired",
                "message": format!(
                    "the reply was not delivered within its source's reply_ttl of {} s: it was tried for {} s; replay the job to send it again",
                    self.ttl_secs,
                    self.elapsed.as_secs()
                ),
                "reply_ttl_secs": self.ttl_secs,
                "tried_secs": self.elapsed.as_secs(),
                "last_error": job.last_error,
            }),
        })
    }

    /// Snoozed while an older reply of the conversation is undelivered: until the earliest of
    /// them may run, and a little more for each of them, so the queue drains in order.
    fn check_order(&self) -> Result<(), Outcome> {
        if self.older == 0 {
            return Ok(());
        }
        let behind = u32::try_from(self.older).unwrap_or(u32::MAX);
        let delay = (self.older_due_in + ORDER_WAIT.saturating_mul(behind)).min(MAX_ORDER_WAIT);
        Err(self.snooze(
            delay,
            json!({
                "code": "waiting_for_earlier_reply",
                "message": format!(
                    "{} older repl{} of this conversation (job {}) not delivered yet; replies of a conversation go out in order",
                    self.older,
                    if self.older == 1 { "y is" } else { "ies are" },
                    self.oldest.unwrap_or_default()
                ),
            }),
        ))
    }

    /// Snoozed for `delay`, but never past the ttl: the next run then ends the reply.
    fn snooze(&self, delay: Duration, error: JsonValue) -> Outcome {
        Outcome::Snoozed {
            delay: delay.min(self.remaining),
            error: Some(error),
        }
    }
}

fn no_credentials() -> Outcome {
    fatal(
        "no_credentials",
        "the source has no reply credentials (or was deleted)".into(),
    )
}

async fn deliver(services: &Services, job: &Job) -> Result<Outcome, Outcome> {
    let reply = Reply::read(job)?;
    let standing = Standing::read(services, job).await?;
    standing.check_ttl(job)?;
    standing.check_order()?;
    let base = services.api_bases.base(reply.platform, reply.api);
    let outbox = &services.outbox;
    let key = BreakerKey::new(reply.platform, &base, &standing.credentials);
    let ticket = match outbox.admit(key, Instant::now()) {
        Admission::Send(ticket) => ticket,
        Admission::Wait { delay, error } => return Err(standing.snooze(delay, error)),
    };
    let outgoing = (reply.api.request)(&Outgoing {
        base: &base,
        credentials: &standing.credentials,
        address: &reply.address,
        text: reply.text,
    });
    let mut request = services.http.post(outgoing.url).json(&outgoing.body);
    if let Some(token) = outgoing.bearer {
        request = request.bearer_auth(token);
    }
    let delivery = send(request, reply.platform, reply.api).await;
    Ok(match delivery {
        Delivery::Delivered(result) => {
            outbox.record(ticket, Signal::Reachable, Instant::now());
            Outcome::Succeeded { result }
        }
        Delivery::Rejected(error) => {
            outbox.record(ticket, Signal::Reachable, Instant::now());
            Outcome::Failed {
                kind: FailKind::Fatal,
                error,
            }
        }
        Delivery::RateLimited { delay, error } => {
            outbox.record(ticket, Signal::Throttled(delay), Instant::now());
            standing.snooze(delay, error)
        }
        Delivery::Transient(error) => {
            let next_probe = outbox.record(ticket, Signal::Failed(error.clone()), Instant::now());
            let retry_in = next_probe
                .unwrap_or_else(|| outbox.config.retry_policy().delay(job.attempt))
                .min(standing.remaining);
            Outcome::Failed {
                kind: FailKind::Retryable { retry_in },
                error,
            }
        }
    })
}

/// How the platform answered one send.
enum Delivery {
    Delivered(JsonValue),
    /// A final refusal: the platform answered, and retrying cannot help.
    Rejected(JsonValue),
    /// A 429 or Slack's `ratelimited`: wait `delay`.
    RateLimited {
        delay: Duration,
        error: JsonValue,
    },
    /// A network error, a timeout, a 5xx, or a transient error in the body.
    Transient(JsonValue),
}

async fn send(request: RequestBuilder, platform: Platform, api: &ReplyApi) -> Delivery {
    let unreachable = |error: reqwest::Error| {
        // Without the URL: a Telegram URL carries the bot token.
        Delivery::Transient(json!({
            "code": "platform_unreachable",
            "platform": platform.as_str(),
            "message": error.without_url().to_string(),
        }))
    };
    let response = match request.send().await {
        Ok(response) => response,
        Err(error) => return unreachable(error),
    };
    let status = response.status();
    let retry_after_header = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| retry_after(value, Utc::now()));
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return unreachable(error),
    };
    let parsed: JsonValue = serde_json::from_slice(&body).unwrap_or(JsonValue::Null);
    let kept = String::from_utf8_lossy(&body[..body.len().min(ERROR_BODY_BYTES)]).into_owned();
    let error = |code: &str| {
        json!({
            "code": code,
            "platform": platform.as_str(),
            "status": status.as_u16(),
            "body": kept,
        })
    };
    let slack_error = parsed.get("error").and_then(JsonValue::as_str);
    if status == StatusCode::TOO_MANY_REQUESTS || slack_error == Some("ratelimited") {
        let delay = retry_after_header
            .or_else(|| {
                parsed
                    .pointer("/parameters/retry_after")
                    .and_then(JsonValue::as_u64)
                    .map(Duration::from_secs)
            })
            .unwrap_or(DEFAULT_SNOOZE)
            .min(MAX_SNOOZE);
        let mut error = error("rate_limited");
        error["retry_after_secs"] = json!(delay.as_secs_f64());
        return Delivery::RateLimited { delay, error };
    }
    if status.is_server_error() {
        return Delivery::Transient(error("platform_error"));
    }
    if !status.is_success() {
        return Delivery::Rejected(error("platform_rejected"));
    }
    // 2xx: Slack and Telegram still say `ok: false` in the body for most errors.
    if parsed.get("ok") == Some(&JsonValue::Bool(false)) {
        let transient = matches!(
            slack_error,
            Some("internal_error" | "fatal_error" | "service_unavailable" | "request_timeout")
        );
        return if transient {
            Delivery::Transient(error("platform_error"))
        } else {
            Delivery::Rejected(error("platform_rejected"))
        };
    }
    let message_id = parsed.pointer(api.sent_id).cloned();
    Delivery::Delivered(json!({
        "delivered": true,
        "platform": platform.as_str(),
        "status": status.as_u16(),
        "platform_message_id": message_id,
    }))
}

/// `Retry-After` (RFC 9110): a number of seconds, or an HTTP date (IMF-fixdate, or the obsolete
/// RFC 850 and asctime forms), as the wait from `now`; a date already past waits nothing. `None`
/// for anything else.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // Beyond u64 seconds is "a very long time": the caller's cap applies.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .map(|at| at.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
                .map(|naive| naive.and_utc())
        })?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// A platform and one of its credentials: what a breaker is for. Shown as the platform and the
/// first 8 hex digits of a SHA-256 over the API's base URL and the credentials, never the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BreakerKey {
    platform: Platform,
    digest: [u8; 16],
}

impl BreakerKey {
    pub fn new(platform: Platform, base: &str, credentials: &JsonValue) -> Self {
        let hash = Sha256::new()
            .chain_update(platform.as_str())
            .chain_update([0])
            .chain_update(base)
            .chain_update([0])
            .chain_update(credentials.to_string())
            .finalize();
        let mut digest = [0; 16];
        digest.copy_from_slice(&hash[..16]);
        Self { platform, digest }
    }
}

impl fmt::Display for BreakerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform, hex::encode(&self.digest[..4]))
    }
}

/// Where one breaker is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    /// Nothing is sent until `probe_at`; the first delivery then is the probe.
    Open {
        probe_at: Instant,
    },
    /// The probe is in flight; the others wait.
    Probing,
}

#[derive(Debug)]
struct Breaker {
    state: State,
    /// Consecutive transient failures while closed.
    failures: u32,
    /// The wait before the next probe once the current one fails.
    cooldown: Duration,
    /// A 429's hold: nothing is sent before this.
    held_until: Option<Instant>,
    /// The last transient failure, shown in the snoozed deliveries' error.
    last_error: JsonValue,
    touched: Instant,
}

/// A breaker that has not changed for this long, and is closed, is forgotten once the table is
/// large; it would start from closed anyway.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// The table's size from which closed, idle breakers are forgotten.
const FORGET_FROM: usize = 1024;

/// The circuit breakers of one worker process, per [`BreakerKey`]. Only credentials that failed
/// lately have an entry.
#[derive(Debug)]
pub struct Breakers {
    pub config: OutboxConfig,
    states: Mutex<HashMap<BreakerKey, Breaker>>,
}

/// Whether a delivery may be sent now.
pub enum Admission<'a> {
    /// Send it, and report how it went with [`Breakers::record`].
    Send(Ticket<'a>),
    /// Snooze it for `delay`; `error` says why.
    Wait { delay: Duration, error: JsonValue },
}

/// A delivery let through. A probe whose ticket is dropped unreported (the job panicked, lost its
/// lease, or the worker stopped) lets the next delivery probe.
pub struct Ticket<'a> {
    breakers: &'a Breakers,
    key: BreakerKey,
    probe: bool,
    reported: bool,
}

impl Ticket<'_> {
    /// Whether this delivery is its breaker's probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut states = self.breakers.lock();
            if let Some(breaker) = states.get_mut(&self.key) {
                if breaker.state == State::Probing {
                    breaker.state = State::Open {
                        probe_at: Instant::now(),
                    };
                }
            }
        }
    }
}

/// How a send went, as a breaker counts it.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The platform answered (a success, or a final refusal).
    Reachable,
    /// A 429: hold the credential for this long.
    Throttled(Duration),
    /// A transient failure, with its error.
    Failed(JsonValue),
}

impl Breakers {
    pub fn new(config: OutboxConfig) -> Self {
        Self {
            config,
            states: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<BreakerKey, Breaker>> {
        // The table holds no invariant a panic could break halfway.
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a delivery for `key` may be sent at `now`.
    pub fn admit(&self, key: BreakerKey, now: Instant) -> Admission<'_> {
        let send = |probe| {
            Admission::Send(Ticket {
                breakers: self,
                key,
                probe,
                reported: false,
            })
        };
        let mut states = self.lock();
        let Some(breaker) = states.get_mut(&key) else {
            return send(false);
        };
        if let Some(until) = breaker.held_until {
            if until > now {
                return Admission::Wait {
                    delay: until - now,
                    error: json!({
                        "code": "rate_limited",
                        "message": format!(
                            "{key} is held by the platform's 429 for {:.1} s more",
                            (until - now).as_secs_f64()
                        ),
                    }),
                };
            }
            breaker.held_until = None;
        }
        match breaker.state {
            State::Closed => send(false),
            State::Open { probe_at } if now >= probe_at => {
                breaker.state = State::Probing;
                breaker.touched = now;
                send(true)
            }
            State::Open { probe_at } => Admission::Wait {
                delay: probe_at - now,
                error: json!({
                    "code": "platform_unavailable",
                    "message": format!(
                        "the circuit breaker of {key} is open; its next probe is in {:.1} s",
                        (probe_at - now).as_secs_f64()
                    ),
                    "last_error": breaker.last_error,
                }),
            },
            // The probe's answer usually comes within milliseconds; a timeout takes longer,
            // and then the others look again after the shortest cooldown.
            State::Probing => Admission::Wait {
                delay: self.config.breaker_cooldown,
                error: json!({
                    "code": "platform_unavailable",
                    "message": format!("the circuit breaker of {key} is probing the platform"),
                    "last_error": breaker.last_error,
                }),
            },
        }
    }

    /// Records how a send went; returns how long until the breaker's next probe when it is open
    /// (or probing) afterwards.
    pub fn record(&self, mut ticket: Ticket<'_>, signal: Signal, now: Instant) -> Option<Duration> {
        ticket.reported = true;
        let (key, probe) = (ticket.key, ticket.probe);
        let config = self.config;
        let mut states = self.lock();
        match signal {
            Signal::Reachable => {
                let breaker = states.get_mut(&key)?;
                if breaker.state != State::Closed {
                    tracing::info!(breaker.key = %key, "delivery breaker closed: the platform answers again");
                }
                if breaker.held_until.is_some_and(|until| until > now) {
                    breaker.state = State::Closed;
                    breaker.failures = 0;
                    breaker.cooldown = config.breaker_cooldown;
                    breaker.touched = now;
                } else {
                    states.remove(&key);
                }
                None
            }
            Signal::Throttled(delay) => {
                let breaker = Self::entry(&mut states, key, &config, now);
                if breaker.state != State::Closed {
                    tracing::info!(breaker.key = %key, "delivery breaker closed: the platform answers again (with 429)");
                }
                let until = now + delay;
                breaker.held_until = Some(breaker.held_until.map_or(until, |held| held.max(until)));
                breaker.state = State::Closed;
                breaker.failures = 0;
                breaker.cooldown = config.breaker_cooldown;
                None
            }
            Signal::Failed(error) => {
                let breaker = Self::entry(&mut states, key, &config, now);
                breaker.last_error = error;
                match breaker.state {
                    State::Probing if probe => {
                        breaker.cooldown = breaker
                            .cooldown
                            .saturating_mul(2)
                            .min(config.breaker_max_cooldown);
                        breaker.state = State::Open {
                            probe_at: now + breaker.cooldown,
                        };
                        tracing::warn!(
                            breaker.key = %key,
                            breaker.cooldown_ms = breaker.cooldown.as_millis() as u64,
                            "delivery breaker stays open: the probe failed"
                        );
                    }
                    State::Closed => {
                        breaker.failures += 1;
                        if breaker.failures >= config.breaker_threshold {
                            breaker.cooldown = config.breaker_cooldown;
                            breaker.state = State::Open {
                                probe_at: now + breaker.cooldown,
                            };
                            tracing::warn!(
                                breaker.key = %key,
                                breaker.failures = breaker.failures,
                                breaker.cooldown_ms = breaker.cooldown.as_millis() as u64,
                                "delivery breaker opened: deliveries of this credential wait for a probe"
                            );
                        }
                    }
                    // A send that started before the breaker opened: it changes nothing.
                    State::Open { .. } | State::Probing => {}
                }
                match breaker.state {
                    State::Open { probe_at } => Some(probe_at.saturating_duration_since(now)),
                    State::Probing => Some(config.breaker_cooldown),
                    State::Closed => None,
                }
            }
        }
    }

    fn entry<'m>(
        states: &'m mut HashMap<BreakerKey, Breaker>,
        key: BreakerKey,
        config: &OutboxConfig,
        now: Instant,
    ) -> &'m mut Breaker {
        if states.len() >= FORGET_FROM && !states.contains_key(&key) {
            states.retain(|_, breaker| {
                breaker.state != State::Closed
                    || now.saturating_duration_since(breaker.touched) < FORGET_AFTER
            });
        }
        let breaker = states.entry(key).or_insert_with(|| Breaker {
            state: State::Closed,
            failures: 0,
            cooldown: config.breaker_cooldown,
            held_until: None,
            last_error: JsonValue::Null,
            touched: now,
        });
        breaker.touched = now;
        breaker
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()
    }

    #[test]
    fn retry_after_reads_seconds() {
        assert_eq!(retry_after("7", now()), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            retry_after("99999999999999999999999", now()),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn retry_after_reads_each_http_date_form() {
        // IMF-fixdate, RFC 850 and asctime, 90 s after now().
        for date in [
            "Sat, 05 Dec 2026 12:01:30 GMT",
            "Saturday, 05-Dec-26 12:01:30 GMT",
            "Sat Dec  5 12:01:30 2026",
        ] {
            assert_eq!(
                retry_after(date, now()),
                Some(Duration::from_secs(90)),
                "{date}"
            );
        }
        // A date already past waits nothing.
        assert_eq!(
            retry_after("Sat, 05 Dec 2026 11:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_refuses_garbage() {
        let huge = "a".repeat(10_000);
        for garbage in [
            "",
            "soon",
            "-5",
            "1.5",
            "+3",
            "Sat, 99 Dec 2026 12:01:30 GMT",
            "Sat, 05 Dec 2026",
            "\u{0}",
            huge.as_str(),
        ] {
            assert_eq!(retry_after(garbage, now()), None, "{garbage:?}");
        }
    }

    fn breakers(threshold: u32) -> Breakers {
        Breakers::new(OutboxConfig {
            breaker_threshold: threshold,
            breaker_cooldown: Duration::from_secs(1),
            breaker_max_cooldown: Duration::from_secs(4),
            backoff_max: Duration::from_secs(60),
        })
    }

    fn key(platform: Platform, token: &str) -> BreakerKey {
        BreakerKey::new(
            platform,
            "https://api.example",
            &json!({"bot_token": token}),
        )
    }

    fn failed() -> Signal {
        Signal::Failed(json!({"code": "platform_error"}))
    }

    /// Admits a delivery that must be let through, and records `signal` for it.
    fn send(breakers: &Breakers, key: BreakerKey, at: Instant, signal: Signal) -> Option<Duration> {
        match breakers.admit(key, at) {
            Admission::Send(ticket) => breakers.record(ticket, signal, at),
            Admission::Wait { delay, error } => panic!("held for {delay:?}: {error}"),
        }
    }

    fn waits(breakers: &Breakers, key: BreakerKey, at: Instant) -> Duration {
        match breakers.admit(key, at) {
            Admission::Send(ticket) => panic!("let through (probe: {})", ticket.is_probe()),
            Admission::Wait { delay, .. } => delay,
        }
    }

    #[test]
    fn the_breaker_opens_probes_once_and_closes() {
        let breakers = breakers(3);
        let (telegram, other) = (key(Platform::Telegram, "a"), key(Platform::Telegram, "b"));
        let slack = key(Platform::Slack, "a");
        let t0 = Instant::now();
        assert_eq!(send(&breakers, telegram, t0, failed()), None);
        assert_eq!(send(&breakers, telegram, t0, failed()), None);
        assert_eq!(
            send(&breakers, telegram, t0, failed()),
            Some(Duration::from_secs(1)),
            "the third failure opens it"
        );
        assert_eq!(waits(&breakers, telegram, t0), Duration::from_secs(1));
        // Another credential of the platform, and another platform, are not held.
        assert_eq!(send(&breakers, other, t0, Signal::Reachable), None);
        assert_eq!(send(&breakers, slack, t0, Signal::Reachable), None);

        // After the cooldown exactly one probe goes; the others wait for it.
        let t1 = t0 + Duration::from_secs(1);
        let Admission::Send(probe) = breakers.admit(telegram, t1) else {
            panic!("no probe after the cooldown");
        };
        assert!(probe.is_probe());
        assert_eq!(waits(&breakers, telegram, t1), Duration::from_secs(1));
        // It fails: open again, the cooldown doubled, then capped.
        assert_eq!(
            breakers.record(probe, failed(), t1),
            Some(Duration::from_secs(2))
        );
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(
            send(&breakers, telegram, t2, failed()),
            Some(Duration::from_secs(4))
        );
        let t3 = t2 + Duration::from_secs(4);
        assert_eq!(
            send(&breakers, telegram, t3, failed()),
            Some(Duration::from_secs(4))
        );
        // The platform is back: the probe closes it, and everything flows.
        let t4 = t3 + Duration::from_secs(4);
        assert_eq!(send(&breakers, telegram, t4, Signal::Reachable), None);
        assert_eq!(send(&breakers, telegram, t4, Signal::Reachable), None);
        assert!(breakers.lock().is_empty(), "a closed breaker is forgotten");
    }

    #[test]
    fn a_success_between_failures_keeps_the_breaker_closed() {
        let breakers = breakers(2);
        let telegram = key(Platform::Telegram, "a");
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(send(&breakers, telegram, t0, failed()), None);
            assert_eq!(send(&breakers, telegram, t0, Signal::Reachable), None);
        }
    }

    #[test]
    fn a_dropped_probe_lets_the_next_delivery_probe() {
        let breakers = breakers(1);
        let telegram = key(Platform::Telegram, "a");
        let t0 = Instant::now();
        send(&breakers, telegram, t0, failed());
        let t1 = t0 + Duration::from_secs(1);
        match breakers.admit(telegram, t1) {
            Admission::Send(probe) => drop(probe),
            Admission::Wait { .. } => panic!("no probe"),
        }
        match breakers.admit(telegram, t1) {
            Admission::Send(probe) => assert!(probe.is_probe()),
            Admission::Wait { .. } => panic!("the abandoned probe held the breaker"),
        };
    }

    #[test]
    fn a_429_holds_the_credential_until_its_retry_after() {
        let breakers = breakers(3);
        let (telegram, slack) = (key(Platform::Telegram, "a"), key(Platform::Slack, "a"));
        let t0 = Instant::now();
        send(
            &breakers,
            telegram,
            t0,
            Signal::Throttled(Duration::from_secs(7)),
        );
        assert_eq!(waits(&breakers, telegram, t0), Duration::from_secs(7));
        assert_eq!(
            waits(&breakers, telegram, t0 + Duration::from_secs(5)),
            Duration::from_secs(2)
        );
        assert_eq!(send(&breakers, slack, t0, Signal::Reachable), None);
        assert_eq!(
            send(
                &breakers,
                telegram,
                t0 + Duration::from_secs(7),
                Signal::Reachable
            ),
            None
        );
    }

    #[test]
    fn the_key_names_the_platform_and_never_the_token() {
        let shown = key(Platform::Telegram, "123456:SECRET-token").to_string();
        assert!(shown.starts_with("telegram:") && shown.len() == "telegram:".len() + 8);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_ne!(key(Platform::Telegram, "a"), key(Platform::Telegram, "b"));
    }

    #[test]
    fn settings_are_checked() {
        assert!(OutboxConfig::default().check().is_ok());
        let bad = OutboxConfig {
            breaker_cooldown: Duration::from_secs(60),
            ..OutboxConfig::default()
        };
        let error = bad.check().unwrap_err().to_string();
        assert!(error.contains("SENTINEL_BREAKER_COOLDOWN_MS"), "{error}");
        let bad = OutboxConfig {
            breaker_threshold: 0,
            ..OutboxConfig::default()
        };
        assert!(bad.check().is_err());
        let policy = OutboxConfig {
            backoff_max: Duration::from_millis(300),
            ..OutboxConfig::default()
        }
        .retry_policy();
        assert!(policy.delay(30) <= Duration::from_millis(300));
    }
}
