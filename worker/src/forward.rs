//! `agent.forward`: a healed message POSTed to the tenant's agent, signed as a Standard Webhook
//! with the source's agent secret, and the agent's answer.
//!
//! The body is `{"type": "message.received", "timestamp", "data": {"job_id", "source_id",
//! "message", "history"}}`; `webhook-id` is the same on every attempt of a job, so the agent can
//! drop a repeat.
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx `{"reply": "…"}` | succeeded; the reply goes out through the outbox (`reply.deliver`) |
//! | 2xx with no body, or no `reply` | succeeded; nothing is sent |
//! | 429 or 503 with `Retry-After` | snoozed for it (at most an hour); no attempt spent |
//! | other 5xx, 429/503 without `Retry-After`, a timeout, a network error | retried with backoff |
//! | other 4xx, a 3xx (redirects are not followed), a `reply` that is not text | dead, with the answer kept |
//!
//! The URL is checked against `SENTINEL_FORWARD_ALLOW` when it is set and again on every
//! connection: the client's resolver drops every address the list does not allow (see
//! [`GuardedResolver`]), so a host name that later resolves to the operator's network is refused.

use std::{
    error::Error as StdError,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    header::{CONTENT_TYPE, RETRY_AFTER},
    StatusCode,
};
use sentinel_queue::{
    agent::{self, AgentMode, AgentSettings, ForwardAllow},
    enqueue,
    platform::standard,
    FailKind, Job, Outcome, RetryPolicy,
};
use serde_json::{json, Value as JsonValue};

use crate::{generate_job::fatal, Services};

/// The most of an agent's answer that is read; a longer one is cut, and kept cut in an error.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most of an agent's answer kept in a failed job's error.
const ERROR_BODY_BYTES: usize = 4096;
/// The longest snooze a `Retry-After` may ask for.
const MAX_SNOOZE: Duration = Duration::from_secs(3600);

/// An address the operator's allowlist does not allow: ends the job, as no retry can change it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ForwardRefused(String);

/// The forward client's resolver: the system's, less every address [`ForwardAllow`] refuses. A
/// host the list names keeps all its addresses.
pub struct GuardedResolver {
    pub allow: Arc<ForwardAllow>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if allow.names_host(&host) {
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|addr| allow.allows_ip(addr.ip()))
                .collect();
            if allowed.is_empty() {
                let listed: Vec<String> = addrs.iter().map(|addr| addr.ip().to_string()).collect();
                return Err(Box::new(ForwardRefused(format!(
                    "{host} resolves to {}, which is not a public address, and SENTINEL_FORWARD_ALLOW does not allow it",
                    listed.join(", ")
                ))) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The forward client: redirects not followed, every connection through [`GuardedResolver`].
pub fn client(allow: Arc<ForwardAllow>) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { allow }))
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .user_agent(concat!("sentinel-worker/", env!("CARGO_PKG_VERSION")))
        .build()
}

pub async fn handle(services: &Services, job: &Job) -> Outcome {
    let retry = |code: &str, message: String| Outcome::Failed {
        kind: RetryPolicy::default().retryable(job.attempt),
        error: json!({"code": code, "message": message}),
    };
    let Some(source_id) = job.source_id else {
        return fatal("source_deleted", "the job's source was deleted".into());
    };
    let source = sqlx::query!(
        r#"SELECT agent, agent_secret,
                  CASE WHEN previous_agent_secret_until > now() THEN previous_agent_secret END AS previous_secret
           FROM sources WHERE id = $1 AND deleted_at IS NULL"#,
        source_id
    )
    .fetch_optional(&services.pool)
    .await;
    let source = match source {
        Ok(Some(source)) => source,
        Ok(None) => return fatal("source_deleted", "the job's source was deleted".into()),
        Err(error) => return retry("database", error.to_string()),
    };
    let settings = AgentSettings::from_json(&source.agent);
    if settings.mode != AgentMode::Forward {
        return fatal(
            "agent_changed",
            format!(
                "the source's agent is now {}, not forward; set it back and replay the job to forward it",
                settings.mode.as_str()
            ),
        );
    }
    let url = match settings
        .url
        .as_deref()
        .ok_or_else(|| "the source's agent has no url".to_owned())
        .and_then(|url| services.forward_allow.check_url(url))
    {
        Ok(url) => url,
        Err(error) => return fatal("forward_refused", error),
    };
    let secrets: Vec<&str> = [
        source.agent_secret.as_deref(),
        source.previous_secret.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if secrets.is_empty() {
        return fatal(
            "no_secret",
            "the source has no agent secret to sign with; rotate it with PATCH /v1/sources/{id}"
                .into(),
        );
    }
    let body = json!({
        "type": "message.received",
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": {
            "job_id": job.id,
            "source_id": source_id,
            "message": job.input.get("message"),
            "history": job.input.get("history").cloned().unwrap_or_else(|| json!([])),
        },
    });
    let body = body.to_string().into_bytes();
    let id = format!("msg_sentinel_{}", job.id);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
        .to_string();
    let signature = agent::signature_header(&secrets, &id, &timestamp, &body);
    let response = services
        .forward_http
        .post(url)
        .timeout(Duration::from_millis(u64::from(settings.timeout_ms())))
        .header(CONTENT_TYPE, "application/json")
        .header(standard::ID_HEADER, &id)
        .header(standard::TIMESTAMP_HEADER, &timestamp)
        .header(standard::SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    let mut response = match response {
        Ok(response) => response,
        Err(error) => {
            if let Some(refused) = refusal(&error) {
                return fatal("forward_refused", refused.to_string());
            }
            let code = if error.is_timeout() {
                "agent_timeout"
            } else {
                "agent_unreachable"
            };
            return retry(code, error.to_string());
        }
    };
    let status = response.status();
    let retry_after = retry_after(response.headers().get(RETRY_AFTER));
    let mut answer = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ANSWER_BYTES - answer.len();
                answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if answer.len() >= MAX_ANSWER_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) if status.is_success() => {
                let code = if error.is_timeout() {
                    "agent_timeout"
                } else {
                    "agent_unreachable"
                };
                return retry(code, error.to_string());
            }
            // A failure's body is kept only for the record: what was read is enough.
            Err(_) => break,
        }
    }
    let kept = String::from_utf8_lossy(&answer[..answer.len().min(ERROR_BODY_BYTES)]).into_owned();
    let error = |code: &str| json!({"code": code, "status": status.as_u16(), "body": kept});
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        if let Some(delay) = retry_after {
            return Outcome::Snoozed {
                delay: delay.min(MAX_SNOOZE),
                error: Some(error("agent_busy")),
            };
        }
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Outcome::Failed {
            kind: RetryPolicy::default().retryable(job.attempt),
            error: error("agent_error"),
        };
    }
    if status.is_redirection() {
        return Outcome::Failed {
            kind: FailKind::Fatal,
            error: error("agent_redirected"),
        };
    }
    if !status.is_success() {
        return Outcome::Failed {
            kind: FailKind::Fatal,
            error: error("agent_refused"),
        };
    }
    let reply = if answer.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<JsonValue>(&answer) {
            Ok(JsonValue::Object(answer)) => match answer.get("reply") {
                None | Some(JsonValue::Null) => None,
                Some(JsonValue::String(text)) => Some(text.clone()),
                Some(_) => {
                    return Outcome::Failed {
                        kind: FailKind::Fatal,
                        error: error("invalid_reply"),
                    }
                }
            },
            // An answer that is not a JSON object carries no reply.
            _ => None,
        }
    };
    let Some(text) = reply else {
        return Outcome::Succeeded {
            result: json!({"status": status.as_u16(), "reply": null}),
        };
    };
    if let Err(problem) = agent::check_reply_text(&text) {
        let mut error = error("invalid_reply");
        error["message"] = json!(problem);
        return Outcome::Failed {
            kind: FailKind::Fatal,
            error,
        };
    }
    let deliver = match agent::reply_job(job, &text) {
        Ok(deliver) => deliver,
        Err(problem) => return fatal("invalid_input", problem),
    };
    match enqueue(&services.pool, &deliver).await {
        Ok(enqueued) => Outcome::Succeeded {
            result: json!({
                "status": status.as_u16(),
                "reply": text,
                "delivery": {"job_id": enqueued.id},
            }),
        },
        // The agent is asked again; the same webhook-id lets it answer from its own record.
        Err(error) => retry("database", error.to_string()),
    }
}

/// The allowlist's refusal, when that is why the request could not be sent.
fn refusal(error: &reqwest::Error) -> Option<&ForwardRefused> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<ForwardRefused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let value = value?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - Utc::now();
    Some(
        wait.to_std()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1)),
    )
}

#[cfg(test)]
mod tests {
    use reqwest::header::HeaderValue;

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("7"))),
            Some(Duration::from_secs(7))
        );
        let later = (Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let wait = retry_after(Some(&HeaderValue::from_str(&later).unwrap())).unwrap();
        assert!((85..=90).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon"))), None);
        assert_eq!(retry_after(None), None);
    }
}
