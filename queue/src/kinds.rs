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

/// A turn of a tenant's own agent, for a source whose agent is `external`: the canonical message
/// and the conversation's history, claimed through the worker API (see `crate::agent`).
pub const AGENT_TURN: &str = "agent.turn";
/// A healed message POSTed to the tenant's agent, for a source whose agent is `forward` (sent by
/// the built-in worker, at most the source's `max_in_flight` at once).
pub const AGENT_FORWARD: &str = "agent.forward";

/// The built-in kinds a tenant may submit through the job API.
pub const API_KINDS: [&str; 2] = [PAYLOAD_HEAL, LLM_GENERATE];

/// Every kind that is Sentinel's own: tenants cannot define these.
pub const BUILTIN_KINDS: [&str; 6] = [
    WEBHOOK_INBOUND,
    PAYLOAD_HEAL,
    LLM_GENERATE,
    REPLY_DELIVER,
    AGENT_TURN,
    AGENT_FORWARD,
];

/// The kinds Sentinel's own worker runs; the worker API claims every other kind (tenant-defined
/// ones, and [`AGENT_TURN`]). The same list is in SQL: `builtin_job_kind()` and the
/// `jobs_worker_claim` index (migrations/…_agents.sql), queue/sql/claim_tenant.sql and
/// `tenant_kinds::list`; a test (api/tests/worker_api.rs) checks they agree.
pub const WORKER_KINDS: [&str; 5] = [
    WEBHOOK_INBOUND,
    PAYLOAD_HEAL,
    LLM_GENERATE,
    REPLY_DELIVER,
    AGENT_FORWARD,
];

/// Names that start with this are reserved for Sentinel's future kinds.
pub const RESERVED_PREFIX: &str = "sentinel.";

/// The longest name a tenant-defined kind may have.
pub const MAX_KIND_LEN: usize = 64;

/// The rule for a tenant-defined kind's name, as the API documents it.
pub const KIND_NAME_RULE: &str = "1 to 64 characters: lowercase ASCII letters, digits, '_' and '-', \
in segments separated by single dots, starting with a letter (for example doc.summarise); not one of \
Sentinel's kinds (webhook.inbound, payload.heal, llm.generate, reply.deliver, agent.turn, \
agent.forward) and not starting with 'sentinel.'";

pub fn is_builtin(kind: &str) -> bool {
    BUILTIN_KINDS.contains(&kind)
}

/// Whether the worker API may claim and finish jobs of `kind`: a tenant-defined kind or
/// [`AGENT_TURN`].
pub fn worker_api_claims(kind: &str) -> bool {
    kind == AGENT_TURN || check_custom_kind(kind).is_ok()
}

/// Checks the name of a tenant-defined kind against [`KIND_NAME_RULE`], saying what is wrong.
pub fn check_custom_kind(kind: &str) -> Result<(), String> {
    if is_builtin(kind) {
        return Err(format!(
            "{kind} is one of Sentinel's own kinds; tenant-defined kinds must use another name"
        ));
    }
    if kind.starts_with(RESERVED_PREFIX) {
        return Err(format!(
            "kind names starting with {RESERVED_PREFIX:?} are reserved for Sentinel"
        ));
    }
    if kind.is_empty() || kind.len() > MAX_KIND_LEN {
        return Err(format!(
            "a kind name has 1 to {MAX_KIND_LEN} characters; this one has {}",
            kind.chars().count()
        ));
    }
    if !kind.starts_with(|c: char| c.is_ascii_lowercase()) {
        return Err(format!("kind {kind:?} must start with a lowercase letter"));
    }
    if let Some(bad) = kind
        .chars()
        .find(|&c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '_' | '-' | '.')))
    {
        return Err(format!(
            "kind {kind:?} has {bad:?}; only lowercase letters, digits, '_', '-' and '.' are allowed"
        ));
    }
    if kind.split('.').any(str::is_empty) {
        return Err(format!(
            "kind {kind:?} has an empty segment: dots separate non-empty segments"
        ));
    }
    Ok(())
}

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
        WEBHOOK_INBOUND | REPLY_DELIVER | AGENT_FORWARD => Err(format!(
            "{kind} jobs are created by Sentinel itself, not through the API"
        )),
        AGENT_TURN => Err(format!(
            "{kind} jobs are created by Sentinel for a source whose agent is external"
        )),
        // Any other name is a tenant-defined kind: its input is the tenant's own, and its workers
        // claim it through the worker API.
        other => check_custom_kind(other).map_err(|error| {
            format!(
                "{error} (the job API takes {}, or a kind of your own)",
                API_KINDS.join(", ")
            )
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn custom_kind_names_follow_the_rule() {
        for good in ["doc.summarise", "a", "invoice-v2.parse_pdf", "x9"] {
            assert_eq!(check_custom_kind(good), Ok(()), "{good}");
        }
        let long = "a".repeat(MAX_KIND_LEN + 1);
        for (bad, says) in [
            ("", "1 to 64"),
            (long.as_str(), "1 to 64"),
            ("Doc.x", "start with a lowercase letter"),
            ("9doc", "start with a lowercase letter"),
            ("doc..x", "empty segment"),
            ("doc.", "empty segment"),
            ("doc x", "' '"),
            ("doc\u{0}x", "'\\0'"),
            ("d\u{e9}", "'\u{e9}'"),
            ("payload.heal", "Sentinel's own"),
            ("agent.turn", "Sentinel's own"),
            ("agent.forward", "Sentinel's own"),
            ("sentinel.anything", "reserved"),
        ] {
            let error = check_custom_kind(bad).unwrap_err();
            assert!(error.contains(says), "{bad:?}: {error}");
        }
    }

    #[test]
    fn the_job_api_takes_custom_kinds_and_refuses_sentinels_internal_ones() {
        let input = serde_json::json!({"document": "s3://bucket/a.pdf"});
        assert_eq!(validate_api_input("doc.summarise", &input), Ok(()));
        for internal in [WEBHOOK_INBOUND, REPLY_DELIVER, AGENT_TURN, AGENT_FORWARD] {
            let error = validate_api_input(internal, &input).unwrap_err();
            assert!(error.contains("created by Sentinel"), "{internal}: {error}");
        }
        let error = validate_api_input("Doc", &input).unwrap_err();
        assert!(error.contains("or a kind of your own"), "{error}");
    }
}
