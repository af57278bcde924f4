//! The job kinds: Sentinel's own, listed once in [`BUILTIN`], each with its home module (its
//! typed input, its constructor, what the job API does with it), and the rule for the names of a
//! tenant's own kinds. The gateway checks inputs before enqueueing; the worker reads the same
//! types.
//!
//! Adding a built-in kind: a module here with its `KIND` and input, one line in [`BUILTIN`], its
//! handler in `worker/src/jobs/`, and its arm in the worker's dispatch. The worker's lanes claim
//! it from its [`Lane`]; the SQL's list of the worker's kinds is set from [`WORKER_KINDS`] by every
//! migration run and checked against it at start-up (`crate::db`).

pub mod agent_forward;
pub mod agent_reply;
pub mod agent_turn;
pub mod llm_generate;
pub mod payload_heal;
pub mod reply_deliver;
pub mod webhook_inbound;

use serde_json::Value as JsonValue;

use crate::outcome::RetryPolicy;

/// Who runs a kind's jobs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runner {
    /// Sentinel's own worker, in this lane.
    Sentinel(Lane),
    /// The tenant's workers, through the worker API.
    WorkerApi,
}

/// The lane of Sentinel's worker that claims a kind's new jobs (`worker/src/lanes/`). The worker
/// builds each lane's claim from [`kinds_in`], so a kind added to [`BUILTIN`] is claimed by its
/// lane with no change there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lane {
    /// The deterministic healing lane (its jobs go on to the model lane's stages when it cannot
    /// finish them).
    Heal,
    /// The model lane: text generation on the model's slots.
    Model,
    /// The delivery lane: short network calls to the platforms.
    Delivery,
    /// The forward lane: posts to the tenants' agents, held to each source's `max_in_flight`.
    Forward,
}

/// What the job API does with a submission of a built-in kind.
#[derive(Debug, Clone, Copy)]
pub enum Submit {
    /// Tenants may submit it; the input is checked by the function.
    Accepts(fn(&JsonValue) -> Result<(), String>),
    /// Sentinel makes these jobs itself; the text says how they come about.
    Refuses(&'static str),
}

/// One of Sentinel's own job kinds.
#[derive(Debug, Clone, Copy)]
pub struct BuiltinKind {
    pub name: &'static str,
    pub runner: Runner,
    pub submit: Submit,
    /// How its failures are retried, unless `SENTINEL_RETRY_<KIND>` changes it (see
    /// [`crate::outcome`]): the attempts a job gets when it is made, the backoff, the snooze cap.
    pub retry: RetryPolicy,
}

/// Every kind that is Sentinel's own: tenants cannot define these. The one list: everything else
/// (the constants below, the SQL's list, the name rule) is derived from it or checked against it.
pub const BUILTIN: [BuiltinKind; 7] = [
    webhook_inbound::KIND,
    payload_heal::KIND,
    llm_generate::KIND,
    reply_deliver::KIND,
    agent_reply::KIND,
    agent_turn::KIND,
    agent_forward::KIND,
];

/// A webhook event from ingress: `{platform, payload, received_at}` plus the raw body.
pub const WEBHOOK_INBOUND: &str = webhook_inbound::KIND.name;
/// Heal a payload into the canonical message: `{payload: string | object, platform?}`.
pub const PAYLOAD_HEAL: &str = payload_heal::KIND.name;
/// Generate text: `{messages: [{role, content}], json_schema?, max_tokens?}`.
pub const LLM_GENERATE: &str = llm_generate::KIND.name;
/// Deliver a reply to its platform (the outbox).
pub const REPLY_DELIVER: &str = reply_deliver::KIND.name;
/// A turn of the built-in agent, for a source whose agent is `builtin` (run by the model lane).
pub const AGENT_REPLY: &str = agent_reply::KIND.name;
/// A turn of a tenant's own agent, for a source whose agent is `external`: the canonical message
/// and the conversation's history, claimed through the worker API (see `crate::agent`).
pub const AGENT_TURN: &str = agent_turn::KIND.name;
/// A healed message POSTed to the tenant's agent, for a source whose agent is `forward` (sent by
/// the built-in worker, at most the source's `max_in_flight` at once).
pub const AGENT_FORWARD: &str = agent_forward::KIND.name;

/// The kinds of a conversation's turn, one per kind of agent (`crate::conversations`): at most
/// one job of these runs per conversation at a time. The schema's `sentinel_turn_kinds()` is
/// checked against it at start-up.
pub const TURN_KINDS: [&str; 3] = [AGENT_REPLY, AGENT_TURN, AGENT_FORWARD];

/// The names of [`BUILTIN`].
pub const BUILTIN_KINDS: [&str; BUILTIN.len()] = {
    let mut names = [""; BUILTIN.len()];
    let mut i = 0;
    while i < BUILTIN.len() {
        names[i] = BUILTIN[i].name;
        i += 1;
    }
    names
};

const fn count_accepted() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < BUILTIN.len() {
        if matches!(BUILTIN[i].submit, Submit::Accepts(_)) {
            n += 1;
        }
        i += 1;
    }
    n
}

const fn run_by_worker(kind: &BuiltinKind) -> bool {
    matches!(kind.runner, Runner::Sentinel(_))
}

const fn count_run_by_worker() -> usize {
    let mut n = 0;
    let mut i = 0;
    while i < BUILTIN.len() {
        if run_by_worker(&BUILTIN[i]) {
            n += 1;
        }
        i += 1;
    }
    n
}

/// The built-in kinds a tenant may submit through the job API.
pub const API_KINDS: [&str; count_accepted()] = {
    let mut names = [""; count_accepted()];
    let (mut i, mut n) = (0, 0);
    while i < BUILTIN.len() {
        if matches!(BUILTIN[i].submit, Submit::Accepts(_)) {
            names[n] = BUILTIN[i].name;
            n += 1;
        }
        i += 1;
    }
    names
};

/// The kinds Sentinel's own worker runs; the worker API claims every other kind (tenant-defined
/// ones, and [`AGENT_TURN`]).
pub const WORKER_KINDS: [&str; count_run_by_worker()] = {
    let mut names = [""; count_run_by_worker()];
    let (mut i, mut n) = (0, 0);
    while i < BUILTIN.len() {
        if run_by_worker(&BUILTIN[i]) {
            names[n] = BUILTIN[i].name;
            n += 1;
        }
        i += 1;
    }
    names
};

/// The kinds whose new jobs `lane` claims, in [`BUILTIN`]'s order.
pub fn kinds_in(lane: Lane) -> Vec<&'static str> {
    BUILTIN
        .iter()
        .filter(|kind| kind.runner == Runner::Sentinel(lane))
        .map(|kind| kind.name)
        .collect()
}

/// A kind's input as the JSON a job row holds. Inputs are plain structs of strings, numbers and
/// JSON values, which always serialise.
fn to_json(input: &impl serde::Serialize) -> JsonValue {
    serde_json::to_value(input).unwrap_or(JsonValue::Null)
}

/// The built-in kind named `name`.
pub fn builtin(name: &str) -> Option<&'static BuiltinKind> {
    BUILTIN.iter().find(|kind| kind.name == name)
}

/// Names that start with this are reserved for Sentinel's future kinds.
pub const RESERVED_PREFIX: &str = "sentinel.";

/// The longest name a tenant-defined kind may have.
pub const MAX_KIND_LEN: usize = 64;

/// The rule for a tenant-defined kind's name, as the API documents it.
pub const KIND_NAME_RULE: &str = "1 to 64 characters: lowercase ASCII letters, digits, '_' and '-', \
in segments separated by single dots, starting with a letter (for example doc.summarise); not one of \
Sentinel's kinds (webhook.inbound, payload.heal, llm.generate, reply.deliver, agent.reply, \
agent.turn, agent.forward) and not starting with 'sentinel.'";

pub fn is_builtin(kind: &str) -> bool {
    builtin(kind).is_some()
}

/// Whether the worker API may claim and finish jobs of `kind`: a tenant-defined kind or
/// [`AGENT_TURN`].
pub fn worker_api_claims(kind: &str) -> bool {
    match builtin(kind) {
        Some(kind) => kind.runner == Runner::WorkerApi,
        None => check_custom_kind(kind).is_ok(),
    }
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
    match builtin(kind).map(|kind| kind.submit) {
        Some(Submit::Accepts(check)) => check(input),
        Some(Submit::Refuses(why)) => Err(format!("{kind} jobs are created by Sentinel {why}")),
        // Any other name is a tenant-defined kind: its input is the tenant's own, and its workers
        // claim it through the worker API.
        None => check_custom_kind(kind).map_err(|error| {
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
    fn the_name_rule_names_every_builtin_kind() {
        for kind in BUILTIN_KINDS {
            assert!(KIND_NAME_RULE.contains(kind), "{kind}");
        }
        assert_eq!(WORKER_KINDS.len() + 1, BUILTIN_KINDS.len());
        assert!(!WORKER_KINDS.contains(&AGENT_TURN));
        assert_eq!(API_KINDS, [PAYLOAD_HEAL, LLM_GENERATE]);
    }

    #[test]
    fn every_lane_claims_the_kinds_listed_for_it() {
        assert_eq!(kinds_in(Lane::Heal), [WEBHOOK_INBOUND, PAYLOAD_HEAL]);
        assert_eq!(kinds_in(Lane::Model), [LLM_GENERATE, AGENT_REPLY]);
        assert_eq!(kinds_in(Lane::Delivery), [REPLY_DELIVER]);
        // The forward lane's claim is agent.forward's own (held to each source's max_in_flight).
        assert_eq!(kinds_in(Lane::Forward), [AGENT_FORWARD]);
        let in_lanes: usize = [Lane::Heal, Lane::Model, Lane::Delivery, Lane::Forward]
            .into_iter()
            .map(|lane| kinds_in(lane).len())
            .sum();
        assert_eq!(in_lanes, WORKER_KINDS.len());
    }

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
