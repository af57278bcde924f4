//! `llm.generate`: the "process this document" job. Input `{messages, json_schema?, max_tokens?}`;
//! result `{text}` (or `{json}` when a schema was given) plus `usage`. Tokens stream out as
//! throttled `job.progress` events.

use sentinel_queue::{kinds::llm_generate::Input, Job, JobError, JobResult};
use serde_json::{json, Value as JsonValue};

use crate::{
    attempt::JobContext,
    model::{self, Purpose, Request},
    services::Services,
};

pub async fn handle(services: &Services, job: &Job, context: &JobContext) -> JobResult {
    let input: Input = serde_json::from_value(job.input.clone()).map_err(|error| {
        JobError::fatal(
            "invalid_input",
            format!("the job's input is invalid: {error}"),
        )
    })?;
    let validator = input
        .json_schema
        .as_ref()
        .map(jsonschema::validator_for)
        .transpose()
        .map_err(|error| {
            JobError::fatal(
                "invalid_input",
                format!("input.json_schema is not a valid JSON Schema: {error}"),
            )
        })?;
    let max_tokens = input
        .max_tokens
        .unwrap_or(services.max_tokens)
        .clamp(1, services.max_tokens);
    let generation = model::generate(
        services.llm.as_deref(),
        &services.pool,
        context,
        Request {
            purpose: Purpose::Generate,
            messages: &input.messages,
            max_tokens,
            schema: input.json_schema.as_ref(),
        },
    )
    .await?;
    let usage = json!(generation.usage);
    let Some(validator) = validator else {
        return Ok(json!({
            "text": generation.text,
            "usage": usage,
            "finish_reason": generation.finish_reason,
        }));
    };
    let value: JsonValue = serde_json::from_str(&generation.text).map_err(|error| {
        JobError::fatal(
            "invalid_json",
            format!(
                "the model's output is not complete JSON ({error}) after {} of max_tokens {max_tokens} tokens",
                generation.usage.completion_tokens
            ),
        )
    })?;
    let violations: Vec<String> = validator
        .iter_errors(&value)
        .map(|error| format!("{}: {error}", error.instance_path()))
        .collect();
    if !violations.is_empty() {
        return Err(JobError::fatal(
            "schema_mismatch",
            format!(
                "the model's JSON does not match input.json_schema: {}",
                violations.join("; ")
            ),
        ));
    }
    Ok(json!({
        "json": value,
        "usage": usage,
        "finish_reason": generation.finish_reason,
    }))
}
