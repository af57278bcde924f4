//! `reply.deliver`: the outbox. One reply, sent to its platform by the worker's delivery lane,
//! in the order of its conversation, held through a platform's outage (see worker/src's
//! delivery job). Made for the built-in agent's reply, an external or forwarded agent's reply, and
//! `POST /v1/sources/{id}/messages`.

use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;
use uuid::Uuid;

use std::time::Duration;

use super::{BuiltinKind, Lane, Runner, Submit};
use crate::outcome::{RetryPolicy, STANDARD_POLICY};
use crate::{Job, NewJob};

/// Attempts a reply delivery gets (429s and other snoozes do not count). Large on purpose: a reply
/// ends by its source's `reply_ttl` (`agent::DEFAULT_REPLY_TTL_SECS`), never by its count of
/// attempts, so a platform outage shorter than the ttl loses no reply. With the delivery backoff's
/// cap (60 s by default) and the breaker, a week's ttl spends far fewer.
pub const DELIVERY_ATTEMPTS: i32 = 1_000_000;

pub const KIND: BuiltinKind = BuiltinKind {
    name: "reply.deliver",
    runner: Runner::Sentinel(Lane::Delivery),
    submit: Submit::Refuses("itself, not through the API"),
    // A reply is tried at least every minute.
    retry: RetryPolicy {
        cap: Duration::from_secs(60),
        max_attempts: DELIVERY_ATTEMPTS,
        ..STANDARD_POLICY
    },
};

/// The input of a `reply.deliver` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The platform, by name.
    #[serde(default)]
    pub platform: Option<String>,
    /// The text sent.
    #[serde(default)]
    pub text: String,
    /// Where it goes, in the platform's own form (a chat id, a channel and thread, ...).
    #[serde(default)]
    pub address: JsonValue,
    /// The conversation, which orders this reply among the others of its conversation.
    #[serde(default)]
    pub conversation_id: Option<String>,
    /// The inbound message this answers; its id is the reply's dedupe key (`reply:<id>`), so a
    /// message is answered once, whoever answers it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inbound_job_id: Option<i64>,
    /// The `agent.turn` or `agent.forward` job whose answer this is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub agent_job_id: Option<i64>,
}

impl Input {
    /// Reads a job's input. Fields it lacks take their defaults; a field of the wrong type is an
    /// error naming it.
    pub fn of(input: &JsonValue) -> Result<Self, String> {
        serde_json::from_value(input.clone())
            .map_err(|error| format!("the job's input is invalid: {error}"))
    }
}

/// The job that sends `input` through `source_id`'s credentials.
pub fn job(tenant_id: Uuid, source_id: Uuid, input: Input) -> NewJob {
    let dedupe_key = input
        .inbound_job_id
        .map(|inbound| format!("reply:{inbound}"));
    let job = NewJob::new(tenant_id, KIND.name, super::to_json(&input))
        .with_source(source_id)
        .with_max_attempts(RetryPolicy::for_kind(KIND.name).max_attempts);
    match dedupe_key {
        Some(key) => job.with_dedupe_key(key),
        None => job,
    }
}

/// The reply that answers an agent job (`agent.turn` or `agent.forward`) with `text`, to the
/// address its input names.
pub fn answer(agent_job: &Job, text: &str) -> Result<NewJob, String> {
    let source_id = agent_job
        .source_id
        .ok_or("the job's source was deleted, so there is no one to send a reply through")?;
    let input = &agent_job.input;
    let inbound = input
        .get("inbound_job_id")
        .and_then(JsonValue::as_i64)
        .ok_or("the job's input names no inbound_job_id")?;
    let input = Input {
        platform: input
            .get("platform")
            .and_then(JsonValue::as_str)
            .map(str::to_owned),
        text: text.to_owned(),
        address: input.get("address").cloned().unwrap_or(JsonValue::Null),
        conversation_id: input
            .pointer("/message/conversation_id")
            .and_then(JsonValue::as_str)
            .map(str::to_owned),
        inbound_job_id: Some(inbound),
        agent_job_id: Some(agent_job.id),
    };
    Ok(job(agent_job.tenant_id, source_id, input))
}
