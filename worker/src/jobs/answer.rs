//! The answer to an inbound message: it joins its conversation, and the conversation's next turn
//! answers it (`sentinel_queue::conversations`; the built-in agent's turn is
//! [`super::agent_reply`]). Decided here: whether it gets an answer at all (a reply address, the
//! source's agent, its reply policy).

use sentinel_queue::{
    agent::{AgentMode, AgentSettings},
    canonical::CanonicalMessage,
    conversations::{self, Arrival},
    heal::HealedBy,
    platform::{self, Platform},
    tables::sources::{self, ReplySource as Source},
    Job, JobError,
};
use serde_json::{json, Value as JsonValue};
use sqlx::types::Uuid;

use crate::services::Services;

/// The system prompt of a source that has none.
pub const DEFAULT_SYSTEM_PROMPT: &str =
    "You are a helpful customer support agent. Answer briefly and politely.";
/// Why a message of a source whose agent is `none` gets no answer.
pub const AGENT_NONE: &str = "the source's agent is none";

/// The fields an answer adds to the inbound job's result.
pub type Fields = Vec<(&'static str, JsonValue)>;

/// An inbound message to answer: the job that carried it and what healing made of it.
pub struct Inbound<'a> {
    pub job: &'a Job,
    pub platform: Option<Platform>,
    pub message: &'a CanonicalMessage,
    /// The payload as JSON, when it parsed: some platforms' reply address is read from it.
    pub payload: Option<&'a JsonValue>,
    pub healed_by: HealedBy,
}

/// Where an answer goes: the source it is sent through, and the platform's address.
pub struct Addressee {
    pub source_id: Uuid,
    pub address: JsonValue,
}

/// Answers the message as the source's agent says: it joins its conversation, whose next turn
/// (`sentinel_queue::conversations`) answers it with the messages around it: the built-in agent's
/// `agent.reply`, an external agent's `agent.turn` or a forwarded agent's `agent.forward`. `none`
/// answers nothing. A message the source's reply policy refuses joins the history and no turn.
/// Returns the fields it adds to the job's result: `reply` (null: the turn answers) and `turn`
/// (`{mode, conversation_id}`), or `delivery.skipped` with the reason.
pub async fn respond(services: &Services, inbound: &Inbound<'_>) -> Result<Fields, JobError> {
    let job = inbound.job;
    let to = match addressee(job, inbound.platform, inbound.message, inbound.payload) {
        Ok(found) => found,
        Err(skip) => return Ok(skip),
    };
    let Some(source) = sources::for_reply(&services.pool, to.source_id).await? else {
        return Ok(skipped("the source was deleted"));
    };
    let agent = AgentSettings::from_json(&source.agent).mode;
    if agent == AgentMode::None {
        return Ok(skipped(AGENT_NONE));
    }
    let Some(conversation) = inbound
        .message
        .conversation_id
        .clone()
        .filter(|id| !id.is_empty())
    else {
        return Ok(skipped("the message names no conversation"));
    };
    let refusal = policy_refusal(&source, inbound);
    let dropped = refusal.as_ref().map(|(reason, _)| reason.as_str());
    let message = serde_json::to_value(inbound.message).unwrap_or(JsonValue::Null);
    conversations::append(
        &services.pool,
        &Arrival {
            tenant_id: job.tenant_id,
            source_id: to.source_id,
            conversation_id: &conversation,
            inbound_job_id: job.id,
            order_key: conversations::order_key(inbound.message).as_deref(),
            arrived_at: job.created_at,
            message: &message,
            text: inbound.message.text.as_deref().unwrap_or_default(),
            address: &to.address,
            dropped,
        },
    )
    .await?;
    if let Some((_, skip)) = refusal {
        return Ok(skip);
    }
    Ok(vec![
        ("reply", JsonValue::Null),
        (
            "turn",
            json!({"mode": agent.as_str(), "conversation_id": conversation}),
        ),
    ])
}

/// Why the source's `reply_policy` skips this reply, unless a person approved it (`POST
/// /v1/jobs/{id}/reply`), and the result fields that record it.
fn policy_refusal(source: &Source, inbound: &Inbound<'_>) -> Option<(String, Fields)> {
    let approved = inbound.job.input.get("reply_approved") == Some(&JsonValue::Bool(true));
    let healed_by = inbound.healed_by;
    let reason = reply_refused(&source.reply_policy, healed_by).filter(|_| !approved)?;
    let mut skip = skipped(&reason);
    skip.push((
        "reply_skipped",
        json!({"reason": reason, "healed_by": healed_by.as_str(), "reply_policy": source.reply_policy}),
    ));
    Some((reason, skip))
}

/// The source and the platform address a reply goes to, or, when there is none, the result
/// fields that record why the reply was skipped. Reads nothing but the job, so the deterministic
/// lane can tell without the model that a message will get no reply.
pub fn addressee(
    job: &Job,
    platform: Option<Platform>,
    message: &CanonicalMessage,
    payload: Option<&JsonValue>,
) -> Result<Addressee, Fields> {
    let Some(source_id) = job.source_id else {
        return Err(skipped("the job has no source"));
    };
    match platform.map(|platform| platform::reply_address(platform, message, payload)) {
        Some(Ok(address)) => Ok(Addressee { source_id, address }),
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

pub fn skipped(reason: &str) -> Fields {
    vec![
        ("reply", JsonValue::Null),
        ("delivery", json!({ "skipped": reason })),
    ]
}
