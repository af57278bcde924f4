//! The job kinds and what their `input` must look like. The gateway checks inputs before
//! enqueueing; the worker relies on the same definitions.

use serde_json::Value as JsonValue;

/// A webhook event from ingress: `{platform, payload, received_at}` plus the raw body.
pub const WEBHOOK_INBOUND: &str = "webhook.inbound";
/// Heal a payload into the canonical message: `{payload: string | object, platform?}`.
pub const PAYLOAD_HEAL: &str = "payload.heal";
/// Generate text: `{messages: [{role, content}], json_schema?, max_tokens?}`.
pub const LLM_GENERATE: &str = "llm.generate";
/// Deliver an agent's reply to its platform (created by the worker).
pub const REPLY_DELIVER: &str = "reply.deliver";

/// The kinds a tenant may submit through the job API.
pub const API_KINDS: [&str; 2] = [PAYLOAD_HEAL, LLM_GENERATE];

/// Checks a job API submission, naming the field that is wrong.
pub fn validate_api_input(kind: &str, input: &JsonValue) -> Result<(), String> {
    let depth = crate::storable::depth(input);
    if depth > crate::storable::MAX_DEPTH {
        return Err(format!(
            "input nests {depth} levels deep; at most {} are accepted",
            crate::storable::MAX_DEPTH
        ));
    }
    match kind {
        PAYLOAD_HEAL => {
            match input.get("payload") {
                Some(payload) if crate::heal::job_payload(payload).is_some() => {}
                Some(_) => {
                    return Err("input.payload must be a string, an object or an array".into())
                }
                None => return Err("input.payload is required for payload.heal".into()),
            }
            match input.get("platform") {
                None | Some(JsonValue::Null | JsonValue::String(_)) => Ok(()),
                Some(_) => Err("input.platform must be a string".into()),
            }
        }
        LLM_GENERATE => {
            let messages = input
                .get("messages")
                .and_then(JsonValue::as_array)
                .ok_or("input.messages is required for llm.generate and must be an array")?;
            if messages.is_empty() {
                return Err("input.messages must not be empty".into());
            }
            for (i, message) in messages.iter().enumerate() {
                let role = message.get("role").and_then(JsonValue::as_str);
                if !matches!(role, Some("system" | "user" | "assistant")) {
                    return Err(format!(
                        "input.messages[{i}].role must be system, user or assistant"
                    ));
                }
                if !message.get("content").is_some_and(JsonValue::is_string) {
                    return Err(format!("input.messages[{i}].content must be a string"));
                }
            }
            match input.get("json_schema") {
                None | Some(JsonValue::Null) => {}
                Some(schema @ JsonValue::Object(_)) => {
                    if let Err(error) = jsonschema::validator_for(schema) {
                        return Err(format!(
                            "input.json_schema is not a valid JSON Schema: {error}"
                        ));
                    }
                }
                Some(_) => return Err("input.json_schema must be an object".into()),
            }
            match input.get("max_tokens") {
                None | Some(JsonValue::Null) => Ok(()),
                Some(value) if value.as_u64().is_some_and(|n| (1..=8192).contains(&n)) => Ok(()),
                Some(_) => Err("input.max_tokens must be an integer from 1 to 8192".into()),
            }
        }
        WEBHOOK_INBOUND | REPLY_DELIVER => Err(format!(
            "{kind} jobs are created by Sentinel itself, not through the API"
        )),
        other => Err(format!(
            "unknown kind {other:?}; expected one of {}",
            API_KINDS.join(", ")
        )),
    }
}
