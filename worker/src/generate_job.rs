//! `llm.generate`: the "process this document" job. Input `{messages, json_schema?, max_tokens?}`;
//! result `{text}` (or `{json}` when a schema was given) plus `usage`. Tokens stream out as
//! throttled `job.progress` events.

use std::time::Duration;

use sentinel_queue::{FailKind, Job, Outcome, RetryPolicy};
use serde::Deserialize;
use serde_json::{json, Value as JsonValue};

use crate::{
    heal_job::LLM_HEAL_DEADLINE,
    llm::{ChatMessage, Generation, LlmError},
    progress,
    runner::JobContext,
    Services,
};

#[derive(Debug, Deserialize)]
struct Input {
    messages: Vec<ChatMessage>,
    #[serde(default)]
    json_schema: Option<JsonValue>,
    #[serde(default)]
    max_tokens: Option<usize>,
}

pub async fn handle(services: &Services, job: &Job, context: &JobContext) -> Outcome {
    let input: Input = match serde_json::from_value(job.input.clone()) {
        Ok(input) => input,
        Err(error) => {
            return fatal(
                "invalid_input",
                format!("the job's input is invalid: {error}"),
            )
        }
    };
    let validator = match input.json_schema.as_ref().map(jsonschema::validator_for) {
        Some(Err(error)) => {
            return fatal(
                "invalid_input",
                format!("input.json_schema is not a valid JSON Schema: {error}"),
            )
        }
        Some(Ok(validator)) => Some(validator),
        None => None,
    };
    let max_tokens = input
        .max_tokens
        .unwrap_or(services.max_tokens)
        .clamp(1, services.max_tokens);
    let generation = match generate(
        services,
        job,
        context,
        &input.messages,
        max_tokens,
        input.json_schema.as_ref(),
        "generate",
    )
    .await
    {
        Ok(generation) => generation,
        Err(outcome) => return outcome,
    };
    let usage = json!(generation.usage);
    let Some(validator) = validator else {
        return Outcome::Succeeded {
            result: json!({
                "text": generation.text,
                "usage": usage,
                "finish_reason": generation.finish_reason,
            }),
        };
    };
    let value: JsonValue = match serde_json::from_str(&generation.text) {
        Ok(value) => value,
        Err(error) => {
            return fatal(
                "invalid_json",
                format!(
                    "the model's output is not complete JSON ({error}) after {} of max_tokens {max_tokens} tokens",
                    generation.usage.completion_tokens
                ),
            )
        }
    };
    let violations: Vec<String> = validator
        .iter_errors(&value)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect();
    if !violations.is_empty() {
        return fatal(
            "schema_mismatch",
            format!(
                "the model's JSON does not match input.json_schema: {}",
                violations.join("; ")
            ),
        );
    }
    Outcome::Succeeded {
        result: json!({
            "json": value,
            "usage": usage,
            "finish_reason": generation.finish_reason,
        }),
    }
}

/// One generation for a job, with progress events and cancellation; errors are outcomes.
pub(crate) async fn generate(
    services: &Services,
    job: &Job,
    context: &JobContext,
    messages: &[ChatMessage],
    max_tokens: usize,
    schema: Option<&JsonValue>,
    stage: &'static str,
) -> Result<Generation, Outcome> {
    // Healing has a wall-clock budget on top of its token budget; replies and `llm.generate` are
    // bounded by their tokens.
    let deadline: Option<Duration> = (stage == "heal").then_some(LLM_HEAL_DEADLINE);
    let Some(llm) = services.llm.as_ref() else {
        return Err(fatal(
            "no_model",
            "this worker runs without a model; start it with SENTINEL_MODEL set".into(),
        ));
    };
    let (progress, writer) = progress::spawn_writer(
        services.pool.clone(),
        context.lease.clone(),
        stage,
        max_tokens,
    );
    let generation = llm.generate(
        messages,
        max_tokens,
        schema,
        Some(&progress),
        Some(context.canceled.clone()),
    );
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
        return Err(fatal(
            "generation_deadline",
            format!(
                "the {stage} generation ran past its {} s budget after {tokens} tokens",
                deadline.map_or(0, |deadline| deadline.as_secs())
            ),
        ));
    };
    match result {
        Ok(generation) => Ok(generation),
        Err(LlmError::Canceled) => Err(Outcome::Canceled),
        Err(LlmError::Invalid(message)) => Err(fatal("model_refused", message)),
        Err(LlmError::Engine(message)) => Err(Outcome::Failed {
            kind: RetryPolicy::default().retryable(job.attempt),
            error: json!({"code": "model_error", "message": message}),
        }),
    }
}

pub(crate) fn fatal(code: &str, message: String) -> Outcome {
    Outcome::Failed {
        kind: FailKind::Fatal,
        error: json!({"code": code, "message": message}),
    }
}
