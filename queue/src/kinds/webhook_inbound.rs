//! `webhook.inbound`: a platform's webhook, as ingress stored it: `{platform, payload,
//! received_at, batch}` and the exact bytes received. Healed by the worker into the canonical
//! message; an inbound message with text is then answered by the source's agent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;
use uuid::Uuid;

use super::{BuiltinKind, Lane, Runner, Submit};
use crate::outcome::{RetryPolicy, STANDARD_POLICY};
use crate::NewJob;

pub const KIND: BuiltinKind = BuiltinKind {
    name: "webhook.inbound",
    runner: Runner::Sentinel(Lane::Heal),
    submit: Submit::Refuses("itself, not through the API"),
    retry: STANDARD_POLICY,
};

/// The input of a `webhook.inbound` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The platform the webhook came in for, by name (`telegram`, `slack`, ...).
    #[serde(default)]
    pub platform: Option<String>,
    /// The event as JSON, when the body parsed; `null` otherwise (the raw body is kept beside).
    #[serde(default)]
    pub payload: JsonValue,
    /// When ingress received it (RFC 3339).
    #[serde(default)]
    pub received_at: Option<String>,
    /// Where the event sat in its delivery, when one delivery carried several events.
    #[serde(default)]
    pub batch: Option<Batch>,
}

/// An event's place in a delivery that carried several.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    pub index: usize,
    pub size: usize,
}

/// One event of a webhook delivery: the job that stores it. The dedupe key is the platform's id
/// for the event, so a platform's retry is never a second job.
pub struct Event<'a> {
    pub tenant_id: Uuid,
    pub source_id: Uuid,
    pub platform: &'a str,
    /// The event as JSON; `None` when the body did not parse (it is kept as raw bytes).
    pub payload: Option<JsonValue>,
    pub received_at: DateTime<Utc>,
    pub batch: Option<Batch>,
    pub dedupe_key: String,
}

/// The job for one event of a delivery.
pub fn job(event: Event<'_>) -> NewJob {
    let input = Input {
        platform: Some(event.platform.to_owned()),
        payload: event.payload.unwrap_or(JsonValue::Null),
        received_at: Some(event.received_at.to_rfc3339()),
        batch: event.batch,
    };
    NewJob::new(event.tenant_id, KIND.name, super::to_json(&input))
        .with_source(event.source_id)
        .with_dedupe_key(event.dedupe_key)
        .with_max_attempts(RetryPolicy::for_kind(KIND.name).max_attempts)
}
