//! `reply.deliver`, the outbox: sends the agent's reply through the platform's API with the
//! source's reply credentials (read at delivery time, so a rotated token is used at once).
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx (Slack: and `ok: true`) | succeeded, with the platform's message id |
//! | 429, Slack `ratelimited` | snoozed for `Retry-After` (Telegram: `parameters.retry_after`); no attempt spent |
//! | 5xx, a network error, a timeout | retried with backoff |
//! | other 4xx, Slack `ok: false`, Telegram `ok: false` | dead at once, with the platform's error body |

use std::time::Duration;

use reqwest::{header::RETRY_AFTER, RequestBuilder, StatusCode};
use sentinel_queue::{platform::Platform, FailKind, Job, Outcome, RetryPolicy};
use serde_json::{json, Value as JsonValue};

use crate::{generate_job::fatal, Services};

/// Where each platform's API lives; tests point these at loopback.
#[derive(Debug, Clone)]
pub struct ApiBases {
    pub telegram: String,
    pub whatsapp: String,
    pub slack: String,
}

impl Default for ApiBases {
    fn default() -> Self {
        Self {
            telegram: "https://api.telegram.org".into(),
            whatsapp: "https://graph.facebook.com/v21.0".into(),
            slack: "https://slack.com/api".into(),
        }
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
    let secret = |name: &str| {
        credentials
            .get(name)
            .and_then(JsonValue::as_str)
            .unwrap_or("")
            .to_owned()
    };
    let http = &services.http;
    let bases = &services.api_bases;
    let request: RequestBuilder = match platform {
        Platform::Telegram => {
            // Telegram's chat ids are integers; a username (`@channel`) stays a string.
            let chat_id = address.get("chat_id").cloned().unwrap_or(JsonValue::Null);
            let chat_id = chat_id
                .as_str()
                .and_then(|id| id.parse::<i64>().ok())
                .map_or(chat_id, JsonValue::from);
            let mut body = json!({"chat_id": chat_id, "text": text});
            if let Some(message_id) = address
                .get("reply_to_message_id")
                .and_then(JsonValue::as_str)
                .and_then(|id| id.parse::<i64>().ok())
            {
                body["reply_parameters"] =
                    json!({"message_id": message_id, "allow_sending_without_reply": true});
            }
            http.post(format!(
                "{}/bot{}/sendMessage",
                bases.telegram.trim_end_matches('/'),
                secret("bot_token")
            ))
            .json(&body)
        }
        Platform::Whatsapp => {
            let phone_number_id = Some(secret("phone_number_id"))
                .filter(|id| !id.is_empty())
                .or_else(|| {
                    address
                        .get("phone_number_id")
                        .and_then(JsonValue::as_str)
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            let mut body = json!({
                "messaging_product": "whatsapp",
                "recipient_type": "individual",
                "to": address.get("to"),
                "type": "text",
                "text": {"preview_url": false, "body": text},
            });
            if let Some(context_id) = address
                .get("context_message_id")
                .filter(|id| id.is_string())
            {
                body["context"] = json!({ "message_id": context_id });
            }
            http.post(format!(
                "{}/{}/messages",
                bases.whatsapp.trim_end_matches('/'),
                phone_number_id
            ))
            .bearer_auth(secret("access_token"))
            .json(&body)
        }
        Platform::Slack => {
            let mut body = json!({"channel": address.get("channel"), "text": text});
            if let Some(thread) = address.get("thread_ts").filter(|ts| ts.is_string()) {
                body["thread_ts"] = thread.clone();
            }
            http.post(format!(
                "{}/chat.postMessage",
                bases.slack.trim_end_matches('/')
            ))
            .bearer_auth(secret("bot_token"))
            .json(&body)
        }
        Platform::Salesforce | Platform::Standard => {
            return fatal("no_reply_api", format!("{platform} has no reply API"))
        }
    };
    send(request, platform, job.attempt).await
}

async fn send(request: RequestBuilder, platform: Platform, attempt: i32) -> Outcome {
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
    let message_id = match platform {
        Platform::Telegram => parsed.pointer("/result/message_id").cloned(),
        Platform::Whatsapp => parsed.pointer("/messages/0/id").cloned(),
        Platform::Slack => parsed.get("ts").cloned(),
        Platform::Salesforce | Platform::Standard => None,
    };
    Outcome::Succeeded {
        result: json!({
            "delivered": true,
            "platform": platform.as_str(),
            "status": status.as_u16(),
            "platform_message_id": message_id,
        }),
    }
}
