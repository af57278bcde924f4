//! `agent.reply`: a turn of the built-in agent, for a source whose agent is `builtin`: the model
//! answers the turn's messages with the conversation's history read when the turn starts, and the
//! reply goes to the outbox. Run by the worker's model lane. Its input is
//! [`agent_turn::Input`](super::agent_turn::Input), as the other agents' turns.

use uuid::Uuid;

use super::{agent_turn, BuiltinKind, Lane, Runner, Submit};
use crate::outcome::STANDARD_POLICY;
use crate::NewJob;

pub const KIND: BuiltinKind = BuiltinKind {
    name: "agent.reply",
    runner: Runner::Sentinel(Lane::Model),
    submit: Submit::Refuses("for a source whose agent is builtin"),
    retry: STANDARD_POLICY,
};

/// The `agent.reply` job for `input`.
pub fn job(tenant_id: Uuid, input: agent_turn::Input) -> NewJob {
    input.job(tenant_id, &KIND)
}
