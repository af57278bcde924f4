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
    kinds::{agent_forward, agent_turn, agent_turn::Turn, reply_deliver},
    platform::{self, Platform},
    tables::sources::{self, ReplySource as Source},
    Job, JobError, Stage,
};
use serde_json::{json, Value as JsonValue};
use sqlx::types::Uuid;

use super::Lane;
use crate::{
    attempt::JobContext,
    model::{
        self,
        llm::{ChatMessage, Role},
        Purpose, Request,
    },
    services::Services,
};

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

/// Answers the message as the source's agent says: the built-in agent generates the reply and
/// enqueues it; an external or forwarded agent gets an `agent.turn` or `agent.forward` job with the
/// message and the conversation's history; `none` answers nothing. Returns the fields it adds to
/// the job's result: `reply`, `reply_usage` and `delivery` (`{job_id}` or `{skipped}` with the
/// reason) for the built-in agent, `agent` (`{mode, job_id}`) for the others. In the agent lane, a
/// source whose agent is now the built-in one is handed to the model lane.
pub async fn respond(
    services: &Services,
    context: &JobContext,
    inbound: &Inbound<'_>,
    lane: Lane,
) -> Result<Fields, JobError> {
    let job = inbound.job;
    let to = match addressee(job, inbound.platform, inbound.message, inbound.payload) {
        Ok(found) => found,
        Err(skip) => return Ok(skip),
    };
    let Some(source) = sources::for_reply(&services.pool, to.source_id).await? else {
        return Ok(skipped("the source was deleted"));
    };
    let agent = AgentSettings::from_json(&source.agent).mode;
    match (agent, lane) {
        (AgentMode::None, _) => return Ok(skipped(AGENT_NONE)),
        (AgentMode::Builtin, Lane::Agent) => return Err(JobError::HandOff(Stage::Model)),
        _ => {}
    }
    if let Some(skip) = policy_refusal(&source, inbound) {
        return Ok(skip);
    }
    let conversation = inbound.message.conversation_id.clone().unwrap_or_default();
    let history = agent::history(
        &services.pool,
        job.tenant_id,
        to.source_id,
        &conversation,
        job.id,
    )
    .await?;
    if agent.job_kind().is_some() {
        return hand_to_agent(services, inbound, agent, &to, &history).await;
    }
    let (text, usage) =
        builtin_reply(services, context, inbound, source.system_prompt, history).await?;
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
    let (delivery_id, text) = enqueue_delivery(services, inbound, &to, text).await?;
    Ok(vec![
        ("reply", json!(text)),
        ("reply_usage", usage),
        ("delivery", json!({"job_id": delivery_id})),
    ])
}

/// The fields that record why the source's `reply_policy` skips this reply, unless a person
/// approved it (`POST /v1/jobs/{id}/reply`).
fn policy_refusal(source: &Source, inbound: &Inbound<'_>) -> Option<Fields> {
    let approved = inbound.job.input.get("reply_approved") == Some(&JsonValue::Bool(true));
    let healed_by = inbound.healed_by;
    let reason = reply_refused(&source.reply_policy, healed_by).filter(|_| !approved)?;
    let mut skip = skipped(&reason);
    skip.push((
        "reply_skipped",
        json!({"reason": reason, "healed_by": healed_by.as_str(), "reply_policy": source.reply_policy}),
    ));
    Some(skip)
}

/// The external or forwarded agent's job (`agent.turn` or `agent.forward`, by `agent`, its mode)
/// for the message.
async fn hand_to_agent(
    services: &Services,
    inbound: &Inbound<'_>,
    agent: AgentMode,
    to: &Addressee,
    history: &[Turn],
) -> Result<Fields, JobError> {
    let message = serde_json::to_value(inbound.message).unwrap_or(JsonValue::Null);
    let input = agent_turn::Input::new(
        inbound.job,
        to.source_id,
        inbound.platform.map_or("", Platform::as_str),
        &message,
        history.to_vec(),
        &to.address,
    );
    let turn = match agent {
        AgentMode::Forward => agent_forward::job(inbound.job.tenant_id, input),
        _ => agent_turn::job(inbound.job.tenant_id, input),
    };
    let enqueued = enqueue(&services.pool, &turn).await?;
    Ok(vec![
        ("reply", JsonValue::Null),
        (
            "agent",
            json!({"mode": agent.as_str(), "job_id": enqueued.id}),
        ),
    ])
}

/// The built-in agent's reply: the source's system prompt, the conversation's history and the
/// message, one generation. Returns the text and its usage; an empty reply is retried.
async fn builtin_reply(
    services: &Services,
    context: &JobContext,
    inbound: &Inbound<'_>,
    system_prompt: Option<String>,
    history: Vec<Turn>,
) -> Result<(String, JsonValue), JobError> {
    let mut prompt = vec![ChatMessage::new(
        Role::System,
        system_prompt
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
        inbound.message.text.clone().unwrap_or_default(),
    ));
    let generation = model::generate(
        services.llm.as_deref(),
        &services.pool,
        context,
        Request {
            purpose: Purpose::Reply,
            messages: &prompt,
            max_tokens: services.max_tokens,
            schema: None,
        },
    )
    .await?;
    let text = generation.text.trim().to_owned();
    if text.is_empty() {
        return Err(JobError::retry(
            "empty_reply",
            "the model produced an empty reply",
        ));
    }
    Ok((text, json!(generation.usage)))
}

/// Queues the reply in the outbox (`reply.deliver`). Returns its job's id, and the text it
/// delivers: an earlier attempt's, when that one already queued a reply.
async fn enqueue_delivery(
    services: &Services,
    inbound: &Inbound<'_>,
    to: &Addressee,
    mut text: String,
) -> Result<(i64, String), JobError> {
    let job = inbound.job;
    let deliver = reply_deliver::job(
        job.tenant_id,
        to.source_id,
        reply_deliver::Input {
            platform: inbound
                .platform
                .map(|platform| platform.as_str().to_owned()),
            text: text.clone(),
            address: to.address.clone(),
            conversation_id: inbound.message.conversation_id.clone(),
            inbound_job_id: Some(job.id),
            agent_job_id: None,
        },
    );
    let enqueued = enqueue(&services.pool, &deliver).await?;
    if !enqueued.inserted {
        // An earlier attempt already queued a reply: that one is delivered, so report its text.
        if let Ok(Some(existing)) = Job::fetch(&services.pool, enqueued.id).await {
            if let Some(earlier) = existing.input.get("text").and_then(JsonValue::as_str) {
                text = earlier.to_owned();
            }
        }
    }
    Ok((enqueued.id, text))
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
