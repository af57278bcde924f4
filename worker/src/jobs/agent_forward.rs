//! `agent.forward`: a healed message POSTed to the tenant's agent, signed as a Standard Webhook
//! with the source's agent secret, and the agent's answer.
//!
//! The body is `{"type": "message.received", "timestamp", "data": {"job_id", "source_id",
//! "message", "messages", "history"}}` (`messages`: every message of the turn, oldest first, the
//! last being `message`; `history`: the conversation before them, read when the forward is sent); `webhook-id` is the same on every attempt of a job, so the agent can
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
//! The URL is checked against `SENTINEL_FORWARD_ALLOW` here and again on every connection, by the
//! forward client (see [`crate::clients`]).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::{SecondsFormat, Utc};
use reqwest::{header::CONTENT_TYPE, StatusCode};
use sentinel_queue::{
    agent::{self, AgentMode, AgentSettings},
    conversations, enqueue,
    kinds::reply_deliver,
    outcome::retry_after_header,
    platform::standard,
    Job, JobError, JobResult,
};
use serde_json::{json, Value as JsonValue};
use sqlx::types::Uuid;

use crate::{attempt::JobContext, clients::refusal, services::Services};

/// The most of an agent's answer that is read; a longer one is cut, and kept cut in an error.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most of an agent's answer kept in a failed job's error.
const ERROR_BODY_BYTES: usize = 4096;

pub async fn handle(services: &Services, job: &Job, context: &JobContext) -> JobResult {
    let source_id = job.source_id.ok_or_else(source_deleted)?;
    let target = Target::read(services, source_id).await?;
    // The history as of now, when the turn runs: the turn before's reply included.
    let history = conversations::history(&services.pool, &[job.id])
        .await?
        .remove(&job.id)
        .map(|turns| json!(turns));
    let delivery = Delivery::new(job, source_id, history.as_ref(), &target);
    // A cancellation (a newer message interrupting the turn, an operator) abandons the call.
    let mut canceled = context.canceled.clone();
    let answer = tokio::select! {
        answer = target.post(services, &delivery) => answer?,
        _ = canceled.wait_for(|canceled| *canceled) => {
            return Err(JobError::Canceled);
        }
    };
    let Some(text) = answer.reply()? else {
        return Ok(json!({"status": answer.status.as_u16(), "reply": null}));
    };
    let deliver = reply_deliver::answer(job, &text)
        .map_err(|problem| JobError::fatal("invalid_input", problem))?;
    // On a database error the agent is asked again; the same webhook-id lets it answer from its
    // own record. The reply is recorded on the turn with it, for the next turn's history.
    let mut tx = services.pool.begin().await?;
    let enqueued = enqueue(&mut *tx, &deliver).await?;
    conversations::record_reply(&mut *tx, job.id, &text, enqueued.id).await?;
    tx.commit().await?;
    Ok(json!({
        "status": answer.status.as_u16(),
        "reply": text,
        "delivery": {"job_id": enqueued.id},
    }))
}

fn source_deleted() -> JobError {
    JobError::fatal("source_deleted", "the job's source was deleted")
}

/// Where a forward goes and what it is signed with: the source's agent, read when it is sent.
struct Target {
    url: reqwest::Url,
    timeout: Duration,
    /// The current agent secret, and the previous one while it overlaps.
    secrets: Vec<String>,
}

impl Target {
    /// The source's forward agent; dead when the source is gone, its agent is no longer
    /// `forward`, its URL is refused by the allowlist or it has no secret.
    async fn read(services: &Services, source_id: Uuid) -> Result<Self, JobError> {
        let source = sentinel_queue::tables::sources::for_forward(&services.pool, source_id)
            .await?
            .ok_or_else(source_deleted)?;
        let settings = AgentSettings::from_json(&source.agent);
        if settings.mode != AgentMode::Forward {
            return Err(JobError::fatal(
                "agent_changed",
                format!(
                    "the source's agent is now {}, not forward; set it back and replay the job to forward it",
                    settings.mode.as_str()
                ),
            ));
        }
        let url = settings
            .url
            .as_deref()
            .ok_or_else(|| "the source's agent has no url".to_owned())
            .and_then(|url| services.forward_allow.check_url(url))
            .map_err(|error| JobError::fatal("forward_refused", error))?;
        let secrets: Vec<String> = [source.agent_secret, source.previous_secret]
            .into_iter()
            .flatten()
            .collect();
        if secrets.is_empty() {
            return Err(JobError::fatal(
                "no_secret",
                "the source has no agent secret to sign with; rotate it with PATCH /v1/sources/{id}",
            ));
        }
        Ok(Self {
            url,
            timeout: Duration::from_millis(u64::from(settings.timeout_ms())),
            secrets,
        })
    }

    /// POSTs `delivery` and reads the answer, at most [`MAX_ANSWER_BYTES`] of it. A request that
    /// could not be sent, or a success whose body broke off, is retried; the allowlist's refusal
    /// is fatal.
    async fn post(&self, services: &Services, delivery: &Delivery) -> Result<Answer, JobError> {
        let mut response = services
            .forward_http
            .post(self.url.clone())
            .timeout(self.timeout)
            .header(CONTENT_TYPE, "application/json")
            .header(standard::ID_HEADER, &delivery.id)
            .header(standard::TIMESTAMP_HEADER, &delivery.timestamp)
            .header(standard::SIGNATURE_HEADER, &delivery.signature)
            .body(delivery.body.clone())
            .send()
            .await
            .map_err(|error| match refusal(&error) {
                Some(refused) => JobError::fatal("forward_refused", refused.to_string()),
                None => unreachable_agent(&error),
            })?;
        let status = response.status();
        // At least a second: a date already past must not run the job again at once.
        let retry_after =
            retry_after_header(response.headers()).map(|wait| wait.max(Duration::from_secs(1)));
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = MAX_ANSWER_BYTES - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                    if body.len() >= MAX_ANSWER_BYTES {
                        break;
                    }
                }
                Ok(None) => break,
                Err(error) if status.is_success() => return Err(unreachable_agent(&error)),
                // A failure's body is kept only for the record: what was read is enough.
                Err(_) => break,
            }
        }
        Ok(Answer {
            status,
            retry_after,
            body,
        })
    }
}

/// A network error or a timeout: the agent is asked again.
fn unreachable_agent(error: &reqwest::Error) -> JobError {
    let code = if error.is_timeout() {
        "agent_timeout"
    } else {
        "agent_unreachable"
    };
    JobError::retry(code, error.to_string())
}

/// One forward as a signed Standard Webhook: the same `webhook-id` on every attempt of a job.
struct Delivery {
    id: String,
    timestamp: String,
    signature: String,
    body: Vec<u8>,
}

impl Delivery {
    /// The forward of `job`, with `history` (read when the turn runs) or else the one its input
    /// was made with.
    fn new(job: &Job, source_id: Uuid, history: Option<&JsonValue>, target: &Target) -> Self {
        let message = job.input.get("message");
        let messages = match job.input.get("messages") {
            Some(JsonValue::Array(messages)) if !messages.is_empty() => json!(messages),
            _ => json!(message.into_iter().collect::<Vec<_>>()),
        };
        let history = history
            .or_else(|| job.input.get("history"))
            .cloned()
            .unwrap_or_else(|| json!([]));
        let body = json!({
            "type": "message.received",
            "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "data": {
                "job_id": job.id,
                "source_id": source_id,
                "message": message,
                "messages": messages,
                "history": history,
            },
        });
        let body = body.to_string().into_bytes();
        let id = format!("msg_sentinel_{}", job.id);
        let timestamp = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_secs())
            .to_string();
        let secrets: Vec<&str> = target.secrets.iter().map(String::as_str).collect();
        let signature = agent::signature_header(&secrets, &id, &timestamp, &body);
        Self {
            id,
            timestamp,
            signature,
            body,
        }
    }
}

/// The agent's answer: its status, its `Retry-After`, and the start of its body.
struct Answer {
    status: StatusCode,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl Answer {
    /// The failure a status that is no success means, with the start of the answer kept.
    fn error(&self, code: &str) -> JsonValue {
        let kept = String::from_utf8_lossy(&self.body[..self.body.len().min(ERROR_BODY_BYTES)]);
        json!({"code": code, "status": self.status.as_u16(), "body": kept})
    }

    /// The agent's reply text, if it sent one; or how the attempt failed (see the module's table).
    fn reply(&self) -> Result<Option<String>, JobError> {
        let status = self.status;
        if matches!(
            status,
            StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
        ) {
            if let Some(delay) = self.retry_after {
                return Err(JobError::snooze(delay, self.error("agent_busy")));
            }
        }
        if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
            return Err(JobError::retry_with(self.error("agent_error")));
        }
        if status.is_redirection() {
            return Err(JobError::Fatal(self.error("agent_redirected")));
        }
        if !status.is_success() {
            return Err(JobError::Fatal(self.error("agent_refused")));
        }
        if self.body.iter().all(u8::is_ascii_whitespace) {
            return Ok(None);
        }
        let text = match serde_json::from_slice::<JsonValue>(&self.body) {
            Ok(JsonValue::Object(answer)) => match answer.get("reply") {
                None | Some(JsonValue::Null) => return Ok(None),
                Some(JsonValue::String(text)) => text.clone(),
                Some(_) => return Err(JobError::Fatal(self.error("invalid_reply"))),
            },
            // An answer that is not a JSON object carries no reply.
            _ => return Ok(None),
        };
        agent::check_reply_text(&text).map_err(|problem| {
            let mut error = self.error("invalid_reply");
            error["message"] = json!(problem);
            JobError::Fatal(error)
        })?;
        Ok(Some(text))
    }
}
