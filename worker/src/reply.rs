//! The agent's reply to an inbound message: the source's system prompt, the last
//! [`HISTORY_MESSAGES`] messages of the same conversation (read from the jobs that carried them),
//! one generation, and a `reply.deliver` job in the outbox.
//!
//! The outbox job's dedupe key is `reply:<inbound job id>`, so a retried attempt that generates
//! again still delivers once: it finds the first attempt's job and reports that job's text.

use sentinel_queue::{
    canonical::CanonicalMessage,
    enqueue,
    heal::HealedBy,
    kinds,
    platform::{self, Platform},
    Job, NewJob, Outcome, RetryPolicy,
};
use serde_json::{json, Value as JsonValue};
use sqlx::types::Uuid;

use crate::{
    generate_job::generate,
    llm::{ChatMessage, Role},
    runner::JobContext,
    Services,
};

/// Messages of history the model sees, user and agent turns together.
pub const HISTORY_MESSAGES: usize = 10;
/// The system prompt of a source that has none.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a helpful customer support agent. Answer briefly and politely.";
/// Attempts a reply delivery gets (429s do not count).
pub const DELIVERY_ATTEMPTS: i32 = 8;

/// Generates and enqueues the reply. Returns the fields it adds to the job's result: `reply`,
/// `reply_usage` and `delivery` (`{job_id}` or `{skipped}` with the reason).
pub async fn respond(
    services: &Services,
    job: &Job,
    context: &JobContext,
    platform: Option<Platform>,
    message: &CanonicalMessage,
    payload: Option<&JsonValue>,
    healed_by: HealedBy,
) -> Result<Vec<(&'static str, JsonValue)>, Outcome> {
    let (source_id, address) = match addressee(job, platform, message, payload) {
        Ok(found) => found,
        Err(skip) => return Ok(skip),
    };
    let source = sqlx::query!(
        r#"SELECT system_prompt, reply IS NOT NULL AS "has_credentials!", reply_policy FROM sources WHERE id = $1"#,
        source_id
    )
    .fetch_optional(&services.pool)
    .await
    .map_err(|error| database_error(job, error))?;
    let Some(source) = source else {
        return Ok(skipped("the source was deleted"));
    };
    // A person reviewed the healed message and approved the reply (`POST /v1/jobs/{id}/reply`).
    let approved = job.input.get("reply_approved") == Some(&JsonValue::Bool(true));
    if let Some(reason) = reply_refused(&source.reply_policy, healed_by).filter(|_| !approved) {
        let mut skip = skipped(&reason);
        skip.push((
            "reply_skipped",
            json!({"reason": reason, "healed_by": healed_by.as_str(), "reply_policy": source.reply_policy}),
        ));
        return Ok(skip);
    }
    let conversation = message.conversation_id.clone().unwrap_or_default();
    let rows = sqlx::query!(
        r#"SELECT result #>> '{message,text}' AS text, result ->> 'reply' AS reply
           FROM jobs
           WHERE tenant_id = $1 AND source_id = $2 AND kind = 'webhook.inbound'
             AND status = 'succeeded' AND result #>> '{message,conversation_id}' = $3 AND id <> $4
           ORDER BY finished_at DESC
           LIMIT $5"#,
        job.tenant_id,
        source_id,
        conversation,
        job.id,
        HISTORY_MESSAGES as i64
    )
    .fetch_all(&services.pool)
    .await
    .map_err(|error| database_error(job, error))?;
    let mut history: Vec<ChatMessage> = Vec::new();
    for row in rows.into_iter().rev() {
        if let Some(text) = row.text.filter(|text| !text.is_empty()) {
            history.push(ChatMessage::new(Role::User, text));
        }
        if let Some(reply) = row.reply.filter(|reply| !reply.is_empty()) {
            history.push(ChatMessage::new(Role::Assistant, reply));
        }
    }
    let keep_from = history.len().saturating_sub(HISTORY_MESSAGES);
    let mut prompt = vec![ChatMessage::new(
        Role::System,
        source
            .system_prompt
            .filter(|prompt| !prompt.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.into()),
    )];
    prompt.extend(history.drain(keep_from..));
    prompt.push(ChatMessage::new(
        Role::User,
        message.text.clone().unwrap_or_default(),
    ));
    let generation = generate(
        services,
        job,
        context,
        &prompt,
        services.max_tokens,
        None,
        "reply",
    )
    .await?;
    let mut text = generation.text.trim().to_owned();
    if text.is_empty() {
        return Err(Outcome::Failed {
            kind: RetryPolicy::default().retryable(job.attempt),
            error: json!({"code": "empty_reply", "message": "the model produced an empty reply"}),
        });
    }
    let usage = json!(generation.usage);
    if !source.has_credentials {
        return Ok(vec![
            ("reply", json!(text)),
            ("reply_usage", usage),
            (
                "delivery",
                json!({"skipped": "the source has no reply credentials"}),
            ),
        ]);
    }
    let deliver = NewJob::new(
        job.tenant_id,
        kinds::REPLY_DELIVER,
        json!({
            "platform": platform.map(Platform::as_str),
            "text": text,
            "address": address,
            "inbound_job_id": job.id,
        }),
    )
    .with_source(source_id)
    .with_dedupe_key(format!("reply:{}", job.id))
    .with_max_attempts(DELIVERY_ATTEMPTS);
    let enqueued = enqueue(&services.pool, &deliver)
        .await
        .map_err(|error| database_error(job, error))?;
    if !enqueued.inserted {
        // An earlier attempt already queued a reply: that one is delivered, so report its text.
        if let Ok(Some(existing)) = Job::fetch(&services.pool, enqueued.id).await {
            if let Some(earlier) = existing.input.get("text").and_then(JsonValue::as_str) {
                text = earlier.to_owned();
            }
        }
    }
    Ok(vec![
        ("reply", json!(text)),
        ("reply_usage", usage),
        ("delivery", json!({"job_id": enqueued.id})),
    ])
}

/// The source and the platform address a reply goes to, or, when there is none, the result
/// fields that record why the reply was skipped. Reads nothing but the job, so the deterministic
/// lane can tell without the model that a message will get no reply.
pub fn addressee(
    job: &Job,
    platform: Option<Platform>,
    message: &CanonicalMessage,
    payload: Option<&JsonValue>,
) -> Result<(Uuid, JsonValue), Vec<(&'static str, JsonValue)>> {
    let Some(source_id) = job.source_id else {
        return Err(skipped("the job has no source"));
    };
    match platform.map(|platform| platform::reply_address(platform, message, payload)) {
        Some(Ok(address)) => Ok((source_id, address)),
        Some(Err(reason)) => Err(skipped(&reason)),
        None => Err(skipped("the platform is unknown")),
    }
}

/// Why the source's `reply_policy` allows no automatic reply to a message healed by `healed_by`.
/// The model's heal is a guess: by default (`deterministic`) only the adapter and repair answer.
pub fn reply_refused(policy: &str, healed_by: HealedBy) -> Option<String> {
    match (policy, healed_by) {
        ("never", _) => Some("the source's reply_policy is never".into()),
        ("any", _) => None,
        (_, HealedBy::Llm) => Some(format!(
            "the message was healed by the model, and the source's reply_policy ({policy}) does not answer the model's heals"
        )),
        ("deterministic", HealedBy::Extractor) => Some(
            "the message was healed by the generic extractor, and the source's reply_policy (deterministic) answers only messages the adapter or repair healed"
                .into(),
        ),
        _ => None,
    }
}

fn skipped(reason: &str) -> Vec<(&'static str, JsonValue)> {
    vec![
        ("reply", JsonValue::Null),
        ("delivery", json!({ "skipped": reason })),
    ]
}

fn database_error(job: &Job, error: sqlx::Error) -> Outcome {
    Outcome::Failed {
        kind: RetryPolicy::default().retryable(job.attempt),
        error: json!({"code": "database", "message": error.to_string()}),
    }
}
