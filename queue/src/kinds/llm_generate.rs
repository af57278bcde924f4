//! `llm.generate`: the "process this document" job. Input `{messages: [{role, content}],
//! json_schema?, max_tokens?}`; result `{text}` (or `{json}` when a schema was given) plus `usage`.

use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;

use super::{BuiltinKind, Lane, Runner, Submit};
use crate::outcome::STANDARD_POLICY;

pub const KIND: BuiltinKind = BuiltinKind {
    name: "llm.generate",
    runner: Runner::Sentinel(Lane::Model),
    submit: Submit::Accepts(check),
    retry: STANDARD_POLICY,
};

/// The most tokens a job may ask for.
pub const MAX_TOKENS: u64 = 8192;

/// One message of the conversation the model continues.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    pub role: Role,
    pub content: String,
}

impl Message {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

/// Who said a [`Message`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

/// The input of an `llm.generate` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub messages: Vec<Message>,
    /// A JSON Schema the answer must follow; the result is then `{json}`.
    #[serde(default)]
    pub json_schema: Option<JsonValue>,
    /// At most this many tokens (1 to [`MAX_TOKENS`]; the worker's own limit caps it).
    #[serde(default)]
    pub max_tokens: Option<usize>,
}

/// Checks a submission, naming the field that is wrong.
pub fn check(input: &JsonValue) -> Result<(), String> {
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
        Some(value)
            if value
                .as_u64()
                .is_some_and(|n| (1..=MAX_TOKENS).contains(&n)) =>
        {
            Ok(())
        }
        Some(_) => Err(format!(
            "input.max_tokens must be an integer from 1 to {MAX_TOKENS}"
        )),
    }
}
