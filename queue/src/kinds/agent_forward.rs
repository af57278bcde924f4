//! `agent.forward`: a healed message POSTed, signed as a Standard Webhook, to the tenant's agent,
//! for a source whose agent is `forward`; a 2xx `{reply}` answers it. Sent by the built-in
//! worker's forward lane, at most the source's `max_in_flight` at once. Its input is
//! [`agent_turn::Input`](super::agent_turn::Input).

use uuid::Uuid;

use super::{agent_turn, BuiltinKind, Lane, Runner, Submit};
use crate::outcome::{RetryPolicy, STANDARD_POLICY};
use crate::NewJob;

/// Attempts a forward gets (429 and 503 with `Retry-After` do not count).
pub const FORWARD_ATTEMPTS: i32 = 8;

pub const KIND: BuiltinKind = BuiltinKind {
    name: "agent.forward",
    runner: Runner::Sentinel(Lane::Forward),
    submit: Submit::Refuses("itself, not through the API"),
    retry: RetryPolicy {
        max_attempts: FORWARD_ATTEMPTS,
        ..STANDARD_POLICY
    },
};

/// The `agent.forward` job for `input`.
pub fn job(tenant_id: Uuid, input: agent_turn::Input) -> NewJob {
    input.job(tenant_id, &KIND)
}
