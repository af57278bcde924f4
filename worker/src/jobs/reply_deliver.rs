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
//! attempts are many (`reply.deliver`'s retry policy, see `sentinel_queue::outcome`): the ttl
//! ends it, not a count.

//!
//! The breakers and the outbox's settings are in [`crate::outbox`].

use std::time::{Duration, Instant};

use reqwest::{RequestBuilder, StatusCode};
use sentinel_queue::{
    agent, kinds,
    outcome::retry_after_header,
    platform::{Outgoing, Platform, ReplyApi},
    Job, JobError, JobResult, Retry, RetryPolicy,
};
use serde_json::{json, Value as JsonValue};

use crate::{
    outbox::{Admission, BreakerKey, OutboxConfig, Signal},
    services::Services,
};

/// The snooze for a 429 that names no delay.
const DEFAULT_SNOOZE: Duration = Duration::from_secs(1);
/// The most of a platform's error body kept in the job's error.
const ERROR_BODY_BYTES: usize = 4096;
/// How long a reply waits behind each older undelivered reply of its conversation (beyond the
/// time the oldest one may next run), before it looks again.
const ORDER_WAIT: Duration = Duration::from_millis(100);
/// The longest such wait.
const MAX_ORDER_WAIT: Duration = Duration::from_secs(30);

/// What a `reply.deliver` job's input says.
struct Reply<'a> {
    platform: Platform,
    api: &'static ReplyApi,
    text: &'a str,
    address: JsonValue,
}

impl<'a> Reply<'a> {
    fn read(job: &'a Job) -> Result<Self, JobError> {
        let input = &job.input;
        let text = input.get("text").and_then(JsonValue::as_str).unwrap_or("");
        let platform = match input
            .get("platform")
            .and_then(JsonValue::as_str)
            .map(str::parse::<Platform>)
        {
            Some(Ok(platform)) => platform,
            _ => {
                return Err(JobError::fatal(
                    "invalid_input",
                    "input.platform is missing or unknown",
                ))
            }
        };
        if text.is_empty() {
            return Err(JobError::fatal("invalid_input", "input.text is empty"));
        }
        let Some(api) = &platform.spec().reply else {
            return Err(JobError::fatal(
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
    async fn read(services: &Services, job: &Job) -> Result<Self, JobError> {
        let Some(source_id) = job.source_id else {
            return Err(no_credentials());
        };
        // One statement: the source's credentials and ttl, the database's clock (the one
        // created_at was written with), and the older undelivered replies of the conversation
        // (through the partial index jobs_reply_order).
        let row = sentinel_queue::tables::jobs::outbox_standing(
            &services.pool,
            source_id,
            job.id,
            agent::DEFAULT_REPLY_TTL_SECS,
        )
        .await
        .map_err(|error| {
            JobError::Retry(Retry {
                cap: Some(services.outbox.config.backoff_max),
                ..Retry::from(error)
            })
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
    fn check_ttl(&self, job: &Job) -> Result<(), JobError> {
        if !self.remaining.is_zero() {
            return Ok(());
        }
        Err(JobError::Fatal(json!({
                "code": "reply_expired",
                "message": format!(
                    "the reply was not delivered within its source's reply_ttl of {} s: it was tried for {} s; replay the job to send it again",
                    self.ttl_secs,
                    self.elapsed.as_secs()
                ),
                "reply_ttl_secs": self.ttl_secs,
                "tried_secs": self.elapsed.as_secs(),
                "last_error": job.last_error,
        })))
    }

    /// Snoozed while an older reply of the conversation is undelivered: until the earliest of
    /// them may run, and a little more for each of them, so the queue drains in order.
    fn check_order(&self) -> Result<(), JobError> {
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
    fn snooze(&self, delay: Duration, error: JsonValue) -> JobError {
        JobError::snooze(delay.min(self.remaining), error)
    }

    /// Retried at the breaker's next probe when it is open (`after`), else after the backoff,
    /// capped by the outbox's; never past the ttl.
    fn retry(&self, outbox: &OutboxConfig, error: JsonValue, after: Option<Duration>) -> JobError {
        JobError::Retry(Retry {
            error,
            after,
            cap: Some(outbox.backoff_max),
            within: Some(self.remaining),
        })
    }
}

fn no_credentials() -> JobError {
    JobError::fatal(
        "no_credentials",
        "the source has no reply credentials (or was deleted)",
    )
}

/// Sends the reply, after the checks in the module's table.
pub async fn handle(services: &Services, job: &Job) -> JobResult {
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
    match delivery {
        Delivery::Delivered(result) => {
            outbox.record(ticket, Signal::Reachable, Instant::now());
            Ok(result)
        }
        Delivery::Rejected(error) => {
            outbox.record(ticket, Signal::Reachable, Instant::now());
            Err(JobError::Fatal(error))
        }
        Delivery::RateLimited { delay, error } => {
            outbox.record(ticket, Signal::Throttled(delay), Instant::now());
            Err(standing.snooze(delay, error))
        }
        Delivery::Transient(error) => {
            let next_probe = outbox.record(ticket, Signal::Failed(error.clone()), Instant::now());
            Err(standing.retry(&outbox.config, error, next_probe))
        }
    }
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
    let retry_after_header = retry_after_header(response.headers());
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
            .unwrap_or(DEFAULT_SNOOZE);
        let delay = RetryPolicy::for_kind(kinds::REPLY_DELIVER).snooze_for(delay);
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
