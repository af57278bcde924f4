//! `payload.heal`: heal a payload a tenant submits through the job API into the canonical
//! message. Input `{payload: string | object | array, platform?}`.

use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;

use super::{BuiltinKind, Lane, Runner, Submit};
use crate::outcome::STANDARD_POLICY;

pub const KIND: BuiltinKind = BuiltinKind {
    name: "payload.heal",
    runner: Runner::Sentinel(Lane::Heal),
    submit: Submit::Accepts(check),
    retry: STANDARD_POLICY,
};

/// The input of a `payload.heal` job.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Input {
    /// The payload: its text, or the JSON itself.
    pub payload: JsonValue,
    /// The platform it came from, when the tenant knows it.
    #[serde(default)]
    pub platform: Option<String>,
}

/// Checks a submission, naming the field that is wrong.
pub fn check(input: &JsonValue) -> Result<(), String> {
    match input.get("payload") {
        Some(payload) if crate::heal::job_payload(payload).is_some() => {}
        Some(_) => return Err("input.payload must be a string, an object or an array".into()),
        None => return Err("input.payload is required for payload.heal".into()),
    }
    match input.get("platform") {
        None | Some(JsonValue::Null | JsonValue::String(_)) => Ok(()),
        Some(_) => Err("input.platform must be a string".into()),
    }
}
