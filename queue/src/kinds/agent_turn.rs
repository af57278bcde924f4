//! `agent.turn`: a turn of a tenant's own agent, for a source whose agent is `external`, claimed
//! by the tenant's workers through the worker API; `complete` with `reply` answers it. Its input
//! is also `agent.forward`'s: the source, the platform, the canonical message, the conversation's
//! recent history, the inbound job and the reply's address.

use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;
use uuid::Uuid;

use super::{BuiltinKind, Runner, Submit};
use crate::outcome::{RetryPolicy, WORKER_API_POLICY};
use crate::{Job, NewJob};

pub const KIND: BuiltinKind = BuiltinKind {
    name: "agent.turn",
    runner: Runner::WorkerApi,
    submit: Submit::Refuses("for a source whose agent is external"),
    retry: WORKER_API_POLICY,
};

/// One message of a conversation's history, oldest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Turn {
    /// `user` (an inbound message) or `agent` (a reply, whoever sent it).
    pub role: String,
    pub text: String,
}

/// The input of an `agent.turn` or `agent.forward` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub source_id: Uuid,
    pub platform: String,
    pub inbound_job_id: i64,
    /// The canonical message: the last of [`Input::messages`] for a turn of a conversation.
    pub message: JsonValue,
    /// Every message the turn answers, oldest first (a burst answered as one turn); empty for a
    /// turn made before conversations were lanes, which answers `message` alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<JsonValue>,
    #[serde(default)]
    pub history: Vec<Turn>,
    /// Where the reply goes (the platform's own form: a chat id, a thread), read back when one is
    /// sent.
    #[serde(default)]
    pub address: JsonValue,
}

impl Input {
    /// Reads a job's input, naming what is wrong.
    pub fn of(input: &JsonValue) -> Result<Self, String> {
        serde_json::from_value(input.clone())
            .map_err(|error| format!("the job's input is invalid: {error}"))
    }

    /// The turn for an inbound message: the message and what the agent needs to answer it.
    pub fn new(
        inbound: &Job,
        source_id: Uuid,
        platform: &str,
        message: &JsonValue,
        history: Vec<Turn>,
        address: &JsonValue,
    ) -> Self {
        Self {
            source_id,
            platform: platform.to_owned(),
            inbound_job_id: inbound.id,
            message: message.clone(),
            messages: Vec::new(),
            history,
            address: address.clone(),
        }
    }

    /// The job of `kind` (`agent.turn` or `agent.forward`) for this turn. Its dedupe key is the
    /// inbound job's, so a retried inbound job makes one turn.
    pub(super) fn job(self, tenant_id: Uuid, kind: &super::BuiltinKind) -> NewJob {
        let (source_id, inbound) = (self.source_id, self.inbound_job_id);
        NewJob::new(tenant_id, kind.name, super::to_json(&self))
            .with_source(source_id)
            .with_dedupe_key(format!("agent:{inbound}"))
            .with_max_attempts(RetryPolicy::for_kind(kind.name).max_attempts)
    }
}

/// The `agent.turn` job for `input`.
pub fn job(tenant_id: Uuid, input: Input) -> NewJob {
    input.job(tenant_id, &KIND)
}
