//! `reply.deliver`, the outbox: sends the agent's reply through the platform's API with the
//! source's reply credentials (read at delivery time, so a rotated token is used at once).
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx (Slack: and `ok: true`) | succeeded, with the platform's message id |
//! | 429, Slack `ratelimited` | snoozed for `Retry-After` (Telegram: `parameters.retry_after`); no attempt spent |
//! | 5xx, a network error, a timeout | retried with backoff |
//! | other 4xx, Slack `ok: false`, Telegram `ok: false` | dead at once, with the platform's error body |

use std::{collections::HashMap, time::Duration};

use reqwest::{header::RETRY_AFTER, RequestBuilder, StatusCode};
use sentinel_queue::{
    platform::{Outgoing, Platform, ReplyApi},
    FailKind, Job, Outcome, RetryPolicy,
};
use serde_json::{json, Value as JsonValue};

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

/// The longest snooze a `Retry-After` may ask for.
const MAX_SNOOZE: Duration = Duration::from_secs(3600);
/// The snooze for a 429 that names no delay.
const DEFAULT_SNOOZE: Duration = Duration::from_secs(1);
/// The most of a platform's error body kept in the job's error.
const ERROR_BODY_BYTES: usize = 4096;

pub async fn handle(services: &Services, job: &Job) -> Outcome {
    let input = &job.input;
    let text = input.get("text").and_then(JsonValue::as_str).unwrap_or("");
    let address = input.get("address").cloned().unwrap_or(JsonValue::Null);
    let platform = match input
        .get("platform")
        .and_then(JsonValue::as_str)
        .map(str::parse::<Platform>)
    {
        Some(Ok(platform)) => platform,
        _ => {
            return fatal(
                "invalid_input",
                "input.platform is missing or unknown".into(),
            )
        }
    };
    if text.is_empty() {
        return fatal("invalid_input", "input.text is empty".into());
    }
    let credentials = match job.source_id {
        Some(source_id) => sqlx::query_scalar!(
            "SELECT reply FROM sources WHERE id = $1 AND deleted_at IS NULL",
            source_id
        )
        .fetch_optional(&services.pool)
        .await
        .map(Option::flatten),
        None => Ok(None),
    };
    let credentials = match credentials {
        Ok(Some(credentials)) => credentials,
        Ok(None) => {
            return fatal(
                "no_credentials",
                "the source has no reply credentials (or was deleted)".into(),
            )
        }
        Err(error) => {
            return Outcome::Failed {
                kind: RetryPolicy::default().retryable(job.attempt),
                error: json!({"code": "database", "message": error.to_string()}),
            }
        }
    };
    let Some(api) = &platform.spec().reply else {
        return fatal("no_reply_api", format!("{platform} has no reply API"));
    };
    let outgoing = (api.request)(&Outgoing {
        base: &services.api_bases.base(platform, api),
        credentials: &credentials,
        address: &address,
        text,
    });
    let mut request = services.http.post(outgoing.url).json(&outgoing.body);
    if let Some(token) = outgoing.bearer {
        request = request.bearer_auth(token);
    }
    send(request, platform, api, job.attempt).await
}

async fn send(
    request: RequestBuilder,
    platform: Platform,
    api: &ReplyApi,
    attempt: i32,
) -> Outcome {
    let retry = |code: &str, message: String| Outcome::Failed {
        kind: RetryPolicy::default().retryable(attempt),
        error: json!({"code": code, "message": message}),
    };
    let response = match request.send().await {
        Ok(response) => response,
        // Without the URL: a Telegram URL carries the bot token.
        Err(error) => return retry("platform_unreachable", error.without_url().to_string()),
    };
    let status = response.status();
    let retry_after = response
        .headers()
        .get(RETRY_AFTER)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let body = match response.bytes().await {
        Ok(body) => body,
        Err(error) => return retry("platform_unreachable", error.without_url().to_string()),
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
        let secs = retry_after.or_else(|| {
            parsed
                .pointer("/parameters/retry_after")
                .and_then(JsonValue::as_u64)
        });
        return Outcome::Snoozed {
            delay: secs
                .map(Duration::from_secs)
                .unwrap_or(DEFAULT_SNOOZE)
                .min(MAX_SNOOZE),
            error: None,
        };
    }
    if status.is_server_error() {
        return Outcome::Failed {
            kind: RetryPolicy::default().retryable(attempt),
            error: error("platform_error"),
        };
    }
    if !status.is_success() {
        return Outcome::Failed {
            kind: FailKind::Fatal,
            error: error("platform_rejected"),
        };
    }
    // 2xx: Slack and Telegram still say `ok: false` in the body for most errors.
    if parsed.get("ok") == Some(&JsonValue::Bool(false)) {
        let transient = matches!(
            slack_error,
            Some("internal_error" | "fatal_error" | "service_unavailable" | "request_timeout")
        );
        return Outcome::Failed {
            kind: if transient {
                RetryPolicy::default().retryable(attempt)
            } else {
                FailKind::Fatal
            },
            error: error("platform_rejected"),
        };
    }
    let message_id = parsed.pointer(api.sent_id).cloned();
    Outcome::Succeeded {
        result: json!({
            "delivered": true,
            "platform": platform.as_str(),
            "status": status.as_u16(),
            "platform_message_id": message_id,
        }),
    }
}
