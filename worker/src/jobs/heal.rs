//! `payload.heal` and `webhook.inbound`: a payload becomes the canonical message by its
//! platform's adapter, then by repair and aliasing, and only when both fail by the LLM under a
//! JSON-schema constraint. Every result is checked against the canonical schema before it is
//! written. For an inbound message with text, the agent's answer follows (see [`super::answer`]).
//!
//! The work is split between lanes: [`heal_without_model`] runs in the deterministic lane
//! (`crate::lanes::deterministic`), which finishes what needs no model and hands the rest on: to
//! the model lane, where [`handle`] runs the whole pipeline, or to the agent lane, where
//! [`handle_in`] runs it without the model.

use sentinel_queue::{
    agent::AgentMode,
    canonical::{self, CanonicalMessage, EVENT_TYPES},
    extract,
    heal::{self, HealedBy},
    kinds,
    platform::Platform,
    storable, Job, JobError, JobResult, Retry, Stage,
};
use serde_json::{json, Value as JsonValue};

use super::{answer, Lane};
use crate::{
    attempt::JobContext,
    model::{
        self,
        llm::{ChatMessage, Generation, Role},
        Purpose, Request,
    },
    services::Services,
};

/// The most payload text the LLM step reads: every prompt token costs time before the first answer
/// token (about 2.5–3 ms each on the 2-core CPU, docs/BENCHMARKS.md), and the fields it looks for
/// sit near the top of every platform's payload.
pub const LLM_PAYLOAD_BYTES: usize = 1_000;
/// The LLM step's token budget for the keys, ids, name and event type; the longest text candidate
/// is added to it (see [`Grounding::answer_budget`]). Generation ends earlier, at the closing
/// brace. An answer cut off by the budget is closed by the JSON repairer rather than thrown away.
pub const LLM_HEAL_MAX_TOKENS: usize = 160;
/// The LLM step's wall-clock budget, on top of its token budget: a healing generation past it is
/// stopped and the job ends dead (`generation_deadline`), so a slow case cannot hold a model slot
/// that replies and `llm.generate` jobs wait for. The grounded answers measured in
/// docs/BENCHMARKS.md take one to three seconds on the 2-core CPU.
pub const LLM_HEAL_DEADLINE: std::time::Duration = std::time::Duration::from_secs(30);

/// A healing job's payload, as the job carries it.
struct Payload {
    platform: Option<Platform>,
    /// The payload as JSON, when it parsed.
    parsed: Option<JsonValue>,
    /// The raw text, when there is one (ingress's raw body, or a string `payload.heal` input).
    raw: Option<String>,
}

impl Payload {
    fn of(job: &Job) -> Result<Self, JobError> {
        let platform = job
            .input
            .get("platform")
            .and_then(JsonValue::as_str)
            .and_then(|name| name.parse::<Platform>().ok());
        let (parsed, raw) = match job.kind.as_str() {
            kinds::PAYLOAD_HEAL => job
                .input
                .get("payload")
                .and_then(heal::job_payload)
                .ok_or_else(|| {
                    JobError::fatal(
                        "invalid_input",
                        "input.payload must be a string, an object or an array",
                    )
                })?,
            _ => (
                job.input
                    .get("payload")
                    .filter(|payload| !payload.is_null())
                    .cloned(),
                job.raw_body
                    .as_deref()
                    .map(|bytes| String::from_utf8_lossy(bytes).into_owned()),
            ),
        };
        // Nesting deeper than any step reads is refused at once: another attempt, or the model,
        // would read it no better.
        heal::check_depth(parsed.as_ref(), raw.as_deref())
            .map_err(|too_deep| JobError::fatal("payload_too_deep", too_deep.to_string()))?;
        Ok(Self {
            platform,
            parsed,
            raw,
        })
    }

    /// The payload as structure the extractor can score: its JSON (parsed once, by ingress or
    /// [`heal::job_payload`]), else its `key: value` lines. `None` for prose.
    fn structured(&self) -> Option<JsonValue> {
        self.parsed
            .clone()
            .or_else(|| self.raw.as_deref().and_then(extract::key_values))
    }

    fn heal(&self) -> Result<heal::Healed, heal::NotHealed> {
        heal::heal_traced(self.platform, self.parsed.as_ref(), self.raw.as_deref())
    }
}

/// The deterministic lane's step: heals a job by adapter or repair and finishes it, or hands it
/// on: to the healing share of the model's slots ([`Stage::LlmHeal`]) when no deterministic step
/// could heal it; for a message that gets an answer, to the agent lane ([`Stage::Agent`]), which
/// adds it to its conversation for the conversation's next turn. `agent` is who answers the job's source. Never touches the model, and takes
/// microseconds.
pub fn heal_without_model(job: &Job, agent: AgentMode) -> JobResult {
    let payload = Payload::of(job)?;
    let healed = payload
        .heal()
        .map_err(|_| JobError::HandOff(Stage::LlmHeal))?;
    let message = healed.message.clone();
    let mut result = healed_result(&healed)?;
    if job.kind == kinds::WEBHOOK_INBOUND && wants_reply(&message) {
        // A reply needs the model or the tenant's agent, unless there is nowhere to send one.
        let next = match agent {
            // Joining the conversation needs no model: its turn runs the model, if any.
            AgentMode::Builtin | AgentMode::External | AgentMode::Forward => Some(Stage::Agent),
            AgentMode::None => None,
        };
        let skipped = match next {
            Some(stage) => {
                match answer::addressee(job, payload.platform, &message, payload.parsed.as_ref()) {
                    Ok(_) => return Err(JobError::HandOff(stage)),
                    Err(skipped) => skipped,
                }
            }
            None => answer::skipped(answer::AGENT_NONE),
        };
        for (key, value) in skipped {
            result[key] = value;
        }
    }
    Ok(result)
}

/// The model lane's step: the whole pipeline, the LLM step and the agent's reply included.
pub async fn handle(services: &Services, job: &Job, context: &JobContext) -> JobResult {
    handle_in(services, job, context, Lane::Model).await
}

/// The whole pipeline in `lane`.
pub async fn handle_in(
    services: &Services,
    job: &Job,
    context: &JobContext,
    lane: Lane,
) -> JobResult {
    let payload = Payload::of(job)?;
    let (healed, heal_notes) = match payload.heal() {
        Ok(healed) => (healed, None),
        Err(_) if lane == Lane::Agent => return Err(JobError::HandOff(Stage::LlmHeal)),
        Err(not_healed) => {
            let text = payload
                .raw
                .clone()
                .or_else(|| payload.parsed.as_ref().map(JsonValue::to_string))
                .unwrap_or_default();
            match heal_with_llm(services, job, context, payload.platform, &text).await {
                Ok((message, notes)) => (
                    heal::Healed {
                        message,
                        healed_by: HealedBy::Llm,
                        unwrapped: Vec::new(),
                        sources: Vec::new(),
                    },
                    Some(notes),
                ),
                Err(error) => return Err(with_reason(error, &not_healed.0)),
            }
        }
    };
    let (message, healed_by) = (healed.message.clone(), healed.healed_by);
    let mut result = healed_result(&healed)?;
    for (key, value) in heal_notes.into_iter().flatten() {
        result[key] = value;
    }
    if healed_by == HealedBy::Llm {
        // The model's own measure: every field it chose was a candidate from the payload
        // (`medium`), or some were dropped as ungrounded, or the payload's keys do not name the
        // conversation it chose as one, or name another as well (`low`: a guess).
        let guessed_conversation = message.conversation_id.as_deref().is_some_and(|id| {
            payload
                .structured()
                .is_some_and(|value| !extract::names_conversation(&value, id))
        });
        result["heal_confidence"] = json!(if result.get("heal_ungrounded").is_some()
            || guessed_conversation
        {
            "low"
        } else {
            "medium"
        });
    }
    if job.kind == kinds::WEBHOOK_INBOUND && wants_reply(&message) {
        let inbound = answer::Inbound {
            job,
            platform: payload.platform,
            message: &message,
            payload: payload.parsed.as_ref(),
            healed_by,
        };
        let reply = answer::respond(services, &inbound).await?;
        for (key, value) in reply {
            result[key] = value;
        }
    }
    Ok(result)
}

/// `{message, healed_by, heal_confidence, heal_trace?}` once the message validates against the
/// canonical schema; a failed attempt naming the violations otherwise. `heal_trace.unwrapped` names
/// the envelopes taken off the payload (see `sentinel_queue::envelope`).
fn healed_result(healed: &heal::Healed) -> Result<JsonValue, JobError> {
    let message = &healed.message;
    let healed_by = healed.healed_by;
    let message_json = serde_json::to_value(message)
        .map_err(|error| JobError::fatal("not_healed", error.to_string()))?;
    if let Err(violations) = canonical::validate(&message_json) {
        // Healing is deterministic (the adapters, and the model under a deterministic sampler):
        // another attempt on the same payload gives the same message, so the job is dead at once
        // and a replay after a fix is the way back.
        return Err(JobError::Fatal(
            json!({"code": "invalid_message", "healed_by": healed_by.as_str(), "message": violations}),
        ));
    }
    // The adapter and repair read fields where the platform puts them; the extractor by scores
    // it found unambiguous.
    let confidence = if healed_by == HealedBy::Extractor {
        "medium"
    } else {
        "high"
    };
    let mut result = json!({
        "message": message_json,
        "healed_by": healed_by.as_str(),
        "heal_confidence": confidence,
    });
    let mut trace = serde_json::Map::new();
    if !healed.unwrapped.is_empty() {
        trace.insert("unwrapped".into(), json!(healed.unwrapped));
    }
    if !healed.sources.is_empty() {
        let fields: serde_json::Map<String, JsonValue> = healed
            .sources
            .iter()
            .map(|(field, pointer)| ((*field).to_owned(), json!(pointer)))
            .collect();
        trace.insert("fields".into(), JsonValue::Object(fields));
    }
    if !trace.is_empty() {
        result["heal_trace"] = JsonValue::Object(trace);
    }
    Ok(result)
}

/// A message with text gets an answer; statuses, commands without text and record changes don't.
fn wants_reply(message: &CanonicalMessage) -> bool {
    message.event_type == "message"
        && message
            .text
            .as_deref()
            .is_some_and(|text| !text.trim().is_empty())
}

/// The LLM step: the model reads the raw payload and answers, under a JSON-schema constraint,
/// with the fields that need understanding; the rest of the canonical message comes from what
/// Sentinel already knows (the platform, and the event id ingress derived).
///
/// The answer is grounded in the payload (see [`Grounding`]): every field is chosen, by the
/// constraint, from what the payload contains, and checked again here. The result fields it adds:
/// `heal_usage` (the tokens), and `heal_ungrounded` (fields dropped by that check) when there
/// were any.
async fn heal_with_llm(
    services: &Services,
    job: &Job,
    context: &JobContext,
    platform: Option<Platform>,
    text: &str,
) -> Result<(CanonicalMessage, Vec<(&'static str, JsonValue)>), JobError> {
    // Whatever the repairer can read goes in compact (no indentation, fewer prompt tokens).
    let compact = heal::repair(text)
        .filter(|value| value.is_object() || value.is_array())
        .map(|value| value.to_string());
    let excerpt = storable::clip(compact.as_deref().unwrap_or(text).trim(), LLM_PAYLOAD_BYTES);
    if excerpt.is_empty() {
        return Err(JobError::fatal("not_healed", "the payload is empty"));
    }
    let platform_name = platform.map_or("unknown", Platform::as_str);
    let messages = [
        ChatMessage::new(
            Role::System,
            "You read chat webhook payloads and extract the message as JSON. Use null for anything not in the payload.",
        ),
        ChatMessage::new(
            Role::User,
            format!("Platform: {platform_name}\nPayload:\n{excerpt}"),
        ),
    ];
    let grounding = Grounding::new(excerpt);
    let generation = model::generate(
        services.llm.as_deref(),
        &services.pool,
        context,
        Request {
            purpose: Purpose::Heal {
                deadline: LLM_HEAL_DEADLINE,
            },
            messages: &messages,
            max_tokens: grounding.answer_budget(),
            schema: Some(&grounding.schema()),
        },
    )
    .await?;
    let extracted = model_answer(&generation)?;
    let (message, ungrounded) = grounding.message(&extracted, platform_name, job);
    let mut notes = vec![("heal_usage", json!(generation.usage))];
    if !ungrounded.is_empty() {
        notes.push(("heal_ungrounded", json!(ungrounded)));
    }
    Ok((message, notes))
}

/// The model's answer as a JSON object. An answer the budget cut off mid-string is closed by the
/// repairer: the fields before the cut are kept and the missing ones are null, which the schema
/// allows.
fn model_answer(generation: &Generation) -> Result<JsonValue, JobError> {
    serde_json::from_str(&generation.text)
        .ok()
        .or_else(|| heal::repair(&generation.text))
        .filter(JsonValue::is_object)
        .ok_or_else(|| {
            // Deterministic sampling: a retry would produce the same answer.
            JobError::Fatal(json!({
                "code": "invalid_message",
                "healed_by": "llm",
                "message": format!(
                    "the model's answer is not a JSON object, even after repair, after {} tokens: {}",
                    generation.usage.completion_tokens,
                    storable::clip(&generation.text, 200)
                ),
            }))
        })
}

/// The most candidates the constraint offers the model for one field.
const MAX_CANDIDATES: usize = 32;

/// What the model may answer with, taken from the payload itself. A small model asked to write a
/// chat id invents one (`1234567890`), and a reply would go to it; asked to write the text, it
/// paraphrases and repeats itself until the token budget ends; asked for a name, it makes one up
/// (`Cyril` for `Cy`). So the extraction is a choice, each field an `enum` of candidates or null:
/// - `conversation_id` and `sender_id`: the payload's id-like tokens (a run of letters, digits and
///   `_ . : @ + -` with at least one digit; dates and times left out);
/// - `text`: the payload's pieces: each line (split at newlines, `|` and quotes), and what
///   follows each `: `, ` / ` or `= ` in it, so `text: Where is my order?` offers
///   `Where is my order?` verbatim;
/// - `sender_name`: runs of capitalised words (`Ada Lovelace`, and each word alone), then the
///   pieces of at most three words without a digit, `?` or `!` (a quoted `"ada_l"` in broken
///   JSON).
pub struct Grounding {
    ids: Vec<String>,
    texts: Vec<String>,
    names: Vec<String>,
}

impl Grounding {
    pub fn new(payload: &str) -> Self {
        let mut ids = Vec::new();
        for token in payload.split(|c: char| !(c.is_alphanumeric() || "_.:@+-".contains(c))) {
            // Sentence punctuation around a token is not part of it: `7001.`, `id:7001:`.
            let token = token.trim_matches(|c: char| ".:-".contains(c));
            let date_or_time = token
                .chars()
                .all(|c| c.is_ascii_digit() || "-:.".contains(c))
                && token.contains(['-', ':']);
            if (1..=64).contains(&token.len())
                && token.bytes().any(|b| b.is_ascii_digit())
                && !date_or_time
            {
                push_candidate(&mut ids, token);
            }
        }
        let mut texts = Vec::new();
        for line in payload.split(['\n', '|', '"']) {
            let mut starts = vec![0];
            for separator in [": ", " / ", "= "] {
                starts.extend(
                    line.match_indices(separator)
                        .map(|(at, _)| at + separator.len()),
                );
            }
            starts.sort_unstable();
            for start in starts {
                let piece = line[start..].trim();
                if piece.chars().any(char::is_alphabetic) {
                    push_candidate(&mut texts, piece);
                }
            }
        }
        let mut names = Vec::new();
        let mut run: Vec<&str> = Vec::new();
        for raw in payload.split_whitespace() {
            let word = raw.trim_matches(|c: char| !c.is_alphabetic());
            let capitalised = word.chars().next().is_some_and(char::is_uppercase)
                && word.chars().all(|c| c.is_alphabetic() || "'-".contains(c));
            if capitalised && run.len() < 3 {
                run.push(word);
            } else {
                end_run(&mut run, &mut names);
                if capitalised {
                    run.push(word);
                }
            }
            // A comma or a bracket after a word ends a name: `Ada, Bo` are two.
            if !raw.ends_with(|c: char| c.is_alphabetic()) {
                end_run(&mut run, &mut names);
            }
        }
        end_run(&mut run, &mut names);
        for piece in &texts {
            if piece.len() <= 64
                && piece.split_whitespace().count() <= 3
                && !piece
                    .bytes()
                    .any(|b| b.is_ascii_digit() || b == b'?' || b == b'!')
            {
                push_candidate(&mut names, piece);
            }
        }
        Self { ids, texts, names }
    }

    /// The schema the model answers under.
    pub fn schema(&self) -> JsonValue {
        let choices = |candidates: &[String]| {
            let mut choices: Vec<JsonValue> = candidates.iter().map(|c| json!(c)).collect();
            choices.push(JsonValue::Null);
            json!({"enum": choices})
        };
        json!({
            // No whitespace between tokens beyond the fixed `", "` and `": "` separators:
            // llguidance's default allows runs of it, which a small model fills its budget with.
            "x-guidance": {"whitespace_flexible": false},
            "type": "object",
            "additionalProperties": false,
            "required": ["event_type", "conversation_id", "sender_id", "sender_name", "text"],
            "properties": {
                "event_type": {"enum": EVENT_TYPES},
                "conversation_id": choices(&self.ids),
                "sender_id": choices(&self.ids),
                "sender_name": choices(&self.names),
                "text": choices(&self.texts),
            }
        })
    }

    /// Tokens enough for any answer the schema allows: [`LLM_HEAL_MAX_TOKENS`] plus the longest
    /// text candidate at one token per two bytes (English runs about four bytes a token, ids and
    /// digits fewer). A long message is then chosen whole instead of cut by the budget, which
    /// would leave a text that is no candidate. The answer still ends at the closing brace.
    pub fn answer_budget(&self) -> usize {
        let longest = self.texts.iter().map(String::len).max().unwrap_or(0);
        LLM_HEAL_MAX_TOKENS + longest.div_ceil(2)
    }

    fn is_id(&self, value: &str) -> bool {
        self.ids.iter().any(|id| id == value)
    }

    fn is_text(&self, value: &str) -> bool {
        self.texts.iter().any(|text| text == value)
    }

    fn is_name(&self, value: &str) -> bool {
        self.names.iter().any(|name| name == value)
    }

    /// The canonical message the model's answer (`extracted`) describes, with every field it
    /// chose checked against the candidates; the names of the fields dropped as ungrounded.
    fn message(
        &self,
        extracted: &JsonValue,
        platform_name: &str,
        job: &Job,
    ) -> (CanonicalMessage, Vec<&'static str>) {
        let field = |name: &str| {
            extracted
                .get(name)
                .and_then(JsonValue::as_str)
                .map(str::trim)
                .filter(|value| !value.is_empty())
                .map(str::to_owned)
        };
        let event_type = field("event_type")
            .filter(|kind| EVENT_TYPES.contains(&kind.as_str()))
            .unwrap_or_else(|| "other".into());
        let mut ungrounded = Vec::new();
        let mut grounded = |name: &'static str, check: fn(&Grounding, &str) -> bool| {
            let value = field(name)?;
            if check(self, &value) {
                Some(value)
            } else {
                ungrounded.push(name);
                None
            }
        };
        let mut message = CanonicalMessage::new(platform_name, &event_type);
        message.event_id = job
            .dedupe_key
            .clone()
            .filter(|key| !key.starts_with("sha256:"));
        message.conversation_id = grounded("conversation_id", Grounding::is_id);
        message.sender_id = grounded("sender_id", Grounding::is_id);
        message.sender_name = grounded("sender_name", Grounding::is_name);
        message.text = grounded("text", Grounding::is_text);
        // A command is text that starts with `/`, as every adapter reads one (Telegram `/start`, a
        // Slack slash command); the model's `command` for anything else is a message.
        if message.event_type == "command"
            && !message.text.as_deref().is_some_and(|t| t.starts_with('/'))
        {
            message.event_type = "message".into();
        }
        (message, ungrounded)
    }
}

/// Offers a run of capitalised words as a name, and each of its words alone.
fn end_run(run: &mut Vec<&str>, names: &mut Vec<String>) {
    if run.len() > 1 {
        push_candidate(names, &run.join(" "));
    }
    for word in run.drain(..) {
        push_candidate(names, word);
    }
}

/// Adds a candidate once, up to [`MAX_CANDIDATES`].
fn push_candidate(candidates: &mut Vec<String>, candidate: &str) {
    if !candidate.is_empty()
        && candidates.len() < MAX_CANDIDATES
        && !candidates.iter().any(|c| c == candidate)
    {
        candidates.push(candidate.to_owned());
    }
}

/// Adds why the deterministic steps failed to a failure of the LLM step.
fn with_reason(mut failure: JobError, deterministic: &str) -> JobError {
    if let JobError::Retry(Retry { error, .. }) | JobError::Fatal(error) = &mut failure {
        error["deterministic"] = json!(deterministic);
    }
    failure
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_text_and_names_are_chosen_from_the_payload() {
        let grounding = Grounding::new(
            "update 815 | chat 7001 at 2025-01-01 10:00 | from Ada Lovelace (id 7001), wamid.HBgL+15551234567. | text: Where is my order?",
        );
        assert_eq!(
            grounding.ids,
            ["815", "7001", "wamid.HBgL+15551234567"],
            "words without a digit, dates, times, repeats and sentence punctuation are left out"
        );
        assert_eq!(
            grounding.texts,
            [
                "update 815",
                "chat 7001 at 2025-01-01 10:00",
                "from Ada Lovelace (id 7001), wamid.HBgL+15551234567.",
                "text: Where is my order?",
                "Where is my order?"
            ]
        );
        assert_eq!(
            grounding.names,
            ["Ada Lovelace", "Ada", "Lovelace", "Where"],
            "capitalised runs, then short pieces without digits (none here)"
        );
        let schema = grounding.schema();
        assert_eq!(
            schema["properties"]["sender_id"]["enum"],
            json!(["815", "7001", "wamid.HBgL+15551234567", null])
        );
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let answer = |sender_id: JsonValue, name: &str, text: &str| {
            json!({"event_type": "message", "conversation_id": "7001", "sender_id": sender_id,
                   "sender_name": name, "text": text})
        };
        let text = "Where is my order?";
        assert!(validator.is_valid(&answer(json!("7001"), "Ada Lovelace", text)));
        assert!(validator.is_valid(&answer(JsonValue::Null, "Ada", text)));
        assert!(!validator.is_valid(&answer(json!("1234567890"), "Ada", text)));
        assert!(!validator.is_valid(&answer(json!("7001"), "Alec", text)));
        assert!(!validator.is_valid(&answer(json!("7001"), "Ada", "I'm sorry, I can't help")));
    }

    #[test]
    fn broken_json_offers_its_strings() {
        let grounding = Grounding::new(
            r#"{"chat":7002,"who":"ada_l","msg":"can I change\nthe address","sent":"Tue"#,
        );
        assert!(grounding.is_text("can I change\\nthe address"));
        assert!(grounding.is_name("ada_l"), "{:?}", grounding.names);
        assert!(grounding.is_id("7002") && !grounding.is_id("1234567890"));
        assert!(!grounding.is_name("Alec"));
    }

    #[test]
    fn a_comma_or_a_bracket_ends_a_name_and_a_payload_without_candidates_offers_only_null() {
        let grounding = Grounding::new("Chat 7004, sender Cy (id 7004), says: thanks, all sorted!");
        assert_eq!(grounding.names, ["Chat", "Cy"]);
        let schema = Grounding::new("7 : 8").schema();
        assert_eq!(
            schema["properties"]["conversation_id"]["enum"],
            json!(["7", "8", null])
        );
        assert_eq!(schema["properties"]["text"]["enum"], json!([null]));
        assert_eq!(schema["properties"]["sender_name"]["enum"], json!([null]));
    }

    #[test]
    fn the_budget_leaves_room_for_the_longest_text() {
        assert_eq!(Grounding::new("7 : 8").answer_budget(), LLM_HEAL_MAX_TOKENS);
        let long = format!("chat 9 | text: {}", "word ".repeat(200));
        let budget = Grounding::new(&long).answer_budget();
        // The longest piece is `text: word … word`: 6 + 999 bytes.
        assert_eq!(budget, LLM_HEAL_MAX_TOKENS + 1_005usize.div_ceil(2));
    }
}
