//! One module per job kind's handler. Each takes the job and the [`crate::services::Services`] and returns
//! its result or a [`sentinel_queue::JobError`]; the lanes decide what that means for the job.
//!
//! - `webhook.inbound` and `payload.heal` in [`heal`], the payload healed into the canonical
//!   message, and for an inbound message with text, the source's agent's answer in [`answer`];
//! - `llm.generate` in [`llm_generate`];
//! - `reply.deliver`, the outbox, in [`reply_deliver`];
//! - `agent.reply`, a turn of the built-in agent, in [`agent_reply`];
//! - `agent.forward`, a message POSTed to the tenant's agent, in [`agent_forward`].
//!
//! `agent.turn` and tenant-defined kinds run in the tenants' own workers, through the worker API.

pub mod agent_forward;
pub mod agent_reply;
pub mod answer;
pub mod heal;
pub mod llm_generate;
pub mod reply_deliver;

use sentinel_queue::{kinds, Job, JobError, JobResult};

use crate::{attempt::JobContext, services::Services};

/// Runs `job` by its kind's handler: the one place that maps a kind to its module.
pub async fn run(services: &Services, job: &Job, context: &JobContext) -> JobResult {
    match job.kind.as_str() {
        kinds::WEBHOOK_INBOUND | kinds::PAYLOAD_HEAL => heal::handle(services, job, context).await,
        kinds::LLM_GENERATE => llm_generate::handle(services, job, context).await,
        kinds::REPLY_DELIVER => reply_deliver::handle(services, job).await,
        kinds::AGENT_REPLY => agent_reply::handle(services, job, context).await,
        kinds::AGENT_FORWARD => agent_forward::handle(services, job, context).await,
        other => Err(JobError::fatal(
            "unknown_kind",
            format!("this worker does not handle {other} jobs"),
        )),
    }
}

/// The lane a healing job runs in after the deterministic one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The model's slots: the LLM step and the built-in agent's reply.
    Model,
    /// The agent lane: a message an external or forwarded agent answers. It never runs the model:
    /// a job that turns out to need it is handed to the model's stages.
    Agent,
}
