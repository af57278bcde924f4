//! The deterministic healing jobs: `payload.heal` and `webhook.inbound`. A payload becomes the
//! canonical message by its platform's adapter, or by repair and aliasing; the result is
//! `{message, healed_by}`. The LLM step, for payloads neither can heal, is not part of this build:
//! such jobs end with a fatal `not_healed` error that says so.

use sentinel_queue::{heal, kinds, platform::Platform, FailKind, Job, Outcome};
use serde_json::{json, Value as JsonValue};

/// Heals one job's payload.
pub fn handle(job: &Job) -> Outcome {
    let platform = job
        .input
        .get("platform")
        .and_then(JsonValue::as_str)
        .and_then(|name| name.parse::<Platform>().ok());
    let (parsed, raw) = match job.kind.as_str() {
        kinds::PAYLOAD_HEAL => match job.input.get("payload") {
            Some(JsonValue::String(text)) => (
                serde_json::from_str::<JsonValue>(text).ok(),
                Some(text.clone()),
            ),
            Some(object @ JsonValue::Object(_)) => (Some(object.clone()), None),
            _ => {
                return fatal(
                    "invalid_input",
                    "input.payload must be a string or an object".into(),
                )
            }
        },
        kinds::WEBHOOK_INBOUND => (
            job.input
                .get("payload")
                .filter(|payload| !payload.is_null())
                .cloned(),
            job.raw_body
                .as_deref()
                .map(|bytes| String::from_utf8_lossy(bytes).into_owned()),
        ),
        other => {
            return fatal(
                "unknown_kind",
                format!("this worker does not handle {other} jobs"),
            )
        }
    };
    match heal::heal(platform, parsed.as_ref(), raw.as_deref()) {
        Ok((message, healed_by)) => Outcome::Succeeded {
            result: json!({"message": message, "healed_by": healed_by.as_str()}),
        },
        Err(not_healed) => fatal(
            "not_healed",
            format!(
                "{not_healed}; healing with the LLM needs a model, which this worker does not load"
            ),
        ),
    }
}

fn fatal(code: &str, message: String) -> Outcome {
    Outcome::Failed {
        kind: FailKind::Fatal,
        error: json!({"code": code, "message": message}),
    }
}
