//! The model: loading it offline ([`llm`], with [`requant`] on the CPU), sizing its sequences and
//! KV pool to the GPU ([`admission`], [`gpu_memory`]), its benchmark ([`bench`]), and one
//! generation for a job ([`generate`]) with progress events ([`progress`]), cancellation and its
//! budgets.

pub mod admission;
pub mod bench;
pub mod gpu_memory;
pub mod llm;
pub mod progress;
pub mod requant;

use std::time::Duration;

use sentinel_queue::JobError;
use serde_json::Value as JsonValue;
use sqlx::PgPool;

use crate::{
    attempt::JobContext,
    model::llm::{ChatMessage, Generation, Llm, LlmError},
};

/// What a generation is for: it names the generation's progress events, and a healing generation
/// has a wall-clock budget on top of its token budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// An `llm.generate` job, bounded by its tokens.
    Generate,
    /// The built-in agent's reply, bounded by its tokens.
    Reply,
    /// The LLM healing step: past `deadline` the generation is stopped and the job is dead
    /// (`generation_deadline`).
    Heal { deadline: Duration },
}

impl Purpose {
    /// The `stage` of the generation's `job.progress` events.
    pub fn stage(self) -> &'static str {
        match self {
            Purpose::Generate => "generate",
            Purpose::Reply => "reply",
            Purpose::Heal { .. } => "heal",
        }
    }

    fn deadline(self) -> Option<Duration> {
        match self {
            Purpose::Heal { deadline } => Some(deadline),
            Purpose::Generate | Purpose::Reply => None,
        }
    }
}

/// One generation: the prompt, its budget, and the JSON schema the answer must match, if any.
pub struct Request<'a> {
    pub purpose: Purpose,
    pub messages: &'a [ChatMessage],
    pub max_tokens: usize,
    pub schema: Option<&'a JsonValue>,
}

/// One generation for a job, with progress events (written with `pool`) and cancellation. `llm`
/// is `None` on a worker started without a model: the job is then dead with `no_model`.
pub async fn generate(
    llm: Option<&Llm>,
    pool: &PgPool,
    context: &JobContext,
    request: Request<'_>,
) -> Result<Generation, JobError> {
    let Some(llm) = llm else {
        return Err(JobError::fatal(
            "no_model",
            "this worker runs without a model; start it with SENTINEL_MODEL set",
        ));
    };
    let (stage, deadline) = (request.purpose.stage(), request.purpose.deadline());
    let (progress, writer) = progress::spawn_writer(
        pool.clone(),
        context.lease.clone(),
        stage,
        request.max_tokens,
    );
    let heal = matches!(request.purpose, Purpose::Heal { .. });
    let (messages, max_tokens, schema) = (request.messages, request.max_tokens, request.schema);
    let canceled = Some(context.canceled.clone());
    let generation = async {
        match heal {
            true => {
                llm.generate_heal(messages, max_tokens, schema, Some(&progress), canceled)
                    .await
            }
            false => {
                llm.generate(messages, max_tokens, schema, Some(&progress), canceled)
                    .await
            }
        }
    };
    // Past the deadline the generation is dropped, and with it the engine's sequence.
    let result = match deadline {
        Some(deadline) => tokio::time::timeout(deadline, generation).await.ok(),
        None => Some(generation.await),
    };
    let tokens = progress.borrow().tokens;
    drop(progress);
    let _ = writer.await;
    let Some(result) = result else {
        // Deterministic sampling: another attempt would run out of time the same way.
        return Err(JobError::fatal(
            "generation_deadline",
            format!(
                "the {stage} generation ran past its {} s budget after {tokens} tokens",
                deadline.map_or(0, |deadline| deadline.as_secs())
            ),
        ));
    };
    result.map_err(|error| match error {
        LlmError::Canceled => JobError::Canceled,
        LlmError::Invalid(message) => JobError::fatal("model_refused", message),
        LlmError::Engine(message) => JobError::retry("model_error", message),
    })
}
