//! The answer to an inbound message. The built-in agent's: the source's system prompt, the last
//! [`agent::HISTORY_MESSAGES`] messages of the same conversation (read from the jobs that carried
//! them), one generation, and a `reply.deliver` job in the outbox. An external or forwarded
//! agent's: an `agent.turn` or `agent.forward` job (see `sentinel_queue::agent`).
//!
//! The outbox job's dedupe key is `reply:<inbound job id>`, so a retried attempt that generates
//! again still delivers once: it finds the first attempt's job and reports that job's text.

use sentinel_queue::{
    agent::{self, AgentMode, AgentSettings},
    canonical::CanonicalMessage,
    enqueue,
    heal::HealedBy,
    kinds,
    platform::{self, Platform},
    Job, NewJob, Outcome, RetryPolicy, Stage,
};
use serde_json::{json, Value as JsonValue};
use sqlx::types::Uuid;

use crate::{
    generate_job::generate,
    heal_job::Lane,
    llm::{ChatMessage, Role},
    runner::JobContext,
    Services,
};

/// The system prompt of a source that has none.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a helpful customer support agent. Answer briefly and politely.";
/// Why a message of a source whose agent is `none` gets no answer.
pub const AGENT_NONE: &str = "the source's agent is none";

/// Answers the message as the source's agent says: the built-in agent generates the reply and
/// enqueues it; an external or forwarded agent gets an `agent.turn` or `agent.forward` job with the
/// message and the conversation's history; `none` answers nothing. Returns the fields it adds to
/// the job's result: `reply`, `reply_usage` and `delivery` (`{job_id}` or `{skipped}` with the
/// reason) for the built-in agent, `agent` (`{mode, job_id}`) for the others. In the agent lane, a
/// source whose agent is now the built-in one is handed to the model lane.
#[allow(clippy::too_many_arguments)]
pub async fn respond(
    services: &Services,
    job: &Job,
    context: &JobContext,
    platform: Option<Platform>,
    message: &CanonicalMessage,
    payload: Option<&JsonValue>,
    healed_by: HealedBy,
    lane: Lane,
) -> Result<Vec<(&'static str, JsonValue)>, Outcome> {
    let (source_id, address) = match addressee(job, platform, message, payload) {
        Ok(found) => found,
        Err(skip) => return Ok(skip),
    };
    let source = sqlx::query!(
        r#"SELECT system_prompt, reply IS NOT NULL AS "has_credentials!", reply_policy, agent
           FROM sources WHERE id = $1"#,
        source_id
    )
    .fetch_optional(&services.pool)
    .await
    .map_err(|error| database_error(job, error))?;
    let Some(source) = source else {
        return Ok(skipped("the source was deleted"));
    };
    let agent = AgentSettings::from_json(&source.agent).mode;
    match (agent, lane) {
        (AgentMode::None, _) => return Ok(skipped(AGENT_NONE)),
        (AgentMode::Builtin, Lane::Agent) => {
            return Err(Outcome::HandedOff {
                stage: Stage::Model,
            })
        }
        _ => {}
    }
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
    let history = agent::history(
        &services.pool,
        job.tenant_id,
        source_id,
        &conversation,
        job.id,
    )
    .await
    .map_err(|error| database_error(job, error))?;
    if let Some(kind) = agent.job_kind() {
        let message = serde_json::to_value(message).unwrap_or(JsonValue::Null);
        let turn = agent::turn_job(
            kind,
            job,
            source_id,
            platform.map_or("", Platform::as_str),
            &message,
            &history,
            &address,
        );
        let enqueued = enqueue(&services.pool, &turn)
            .await
            .map_err(|error| database_error(job, error))?;
        return Ok(vec![
            ("reply", JsonValue::Null),
            (
                "agent",
                json!({"mode": agent.as_str(), "job_id": enqueued.id}),
            ),
        ]);
    }
    let mut prompt = vec![ChatMessage::new(
        Role::System,
        source
            .system_prompt
            .filter(|prompt| !prompt.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_SYSTEM_PROMPT.into()),
    )];
    prompt.extend(history.into_iter().map(|turn| {
        let role = if turn.role == "user" {
            Role::User
        } else {
            Role::Assistant
        };
        ChatMessage::new(role, turn.text)
    }));
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
            // The conversation orders this reply among the others of its conversation.
            "conversation_id": message.conversation_id,
            "inbound_job_id": job.id,
        }),
    )
    .with_source(source_id)
    .with_dedupe_key(format!("reply:{}", job.id))
    .with_max_attempts(agent::DELIVERY_ATTEMPTS);
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

pub fn skipped(reason: &str) -> Vec<(&'static str, JsonValue)> {
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
