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
    canonical::{self, CanonicalMessage},
    decode, extract,
    heal::{self, HealedBy},
    kinds,
    platform::{self, Platform},
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

/// The most bytes of `path: value` lines the LLM step is shown: every prompt token costs time
/// before the first answer token, and a busy model runs prompts at tens of tokens a second on the
/// 2-core CPU (docs/BENCHMARKS.md), so the prompt stays this short whatever the payload's size.
pub const LLM_PROMPT_BYTES: usize = 1_200;
/// The most leaves the LLM step is shown, and the longest value shown whole (longer ones are
/// clipped on screen; the answer takes the leaf's whole value).
const MAX_SHOWN: usize = 40;
const SHOWN_VALUE_BYTES: usize = 64;
/// The most of a prose payload cut into pieces: its pieces past this would not be shown anyway.
const PROSE_BYTES: usize = 4_096;
/// The LLM step's token budget: its answer is a list of four line numbers or nulls
/// (`[3, 5, null, 9]`), about a dozen tokens, and generation ends at the closing bracket. Every
/// answer token is a step the model shares with the replies generating beside it, so the answer
/// is kept this short (docs/BENCHMARKS.md, "The model step beside busy replies").
pub const LLM_HEAL_MAX_TOKENS: usize = 32;
/// The LLM step's wall-clock budget, on top of its token budget: a healing generation past it is
/// stopped and the job ends dead (`generation_deadline`), so a slow case cannot hold a model slot
/// that replies and `llm.generate` jobs wait for. The grounded answers measured in
/// docs/BENCHMARKS.md take a few seconds on the 2-core CPU, with replies generating beside them.
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

    /// The payload's layers, decoded as the deterministic steps decode them.
    fn layers(&self) -> Vec<decode::Layer> {
        let given = self
            .parsed
            .clone()
            .or_else(|| self.raw.clone().map(JsonValue::String))
            .unwrap_or(JsonValue::Null);
        decode::Layers::new(given).all().to_vec()
    }

    /// Whether some layer's keys name `conversation_id` as its conversation, without a rival
    /// ([`extract::names_conversation`]).
    fn names_conversation(&self, conversation_id: &str) -> bool {
        self.layers()
            .iter()
            .any(|layer| extract::names_conversation(&layer.value, conversation_id))
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
        Err(not_healed) => match heal_with_llm(services, job, context, &payload).await {
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
        },
    };
    let (message, healed_by) = (healed.message.clone(), healed.healed_by);
    let mut result = healed_result(&healed)?;
    for (key, value) in heal_notes.into_iter().flatten() {
        result[key] = value;
    }
    if healed_by == HealedBy::Llm {
        // The model's own measure: every field it chose was a path it was shown (`medium`), or
        // some were dropped as ungrounded, or no layer's keys name the conversation it chose as
        // one without a rival (`low`: a guess).
        let guessed_conversation = message
            .conversation_id
            .as_deref()
            .is_some_and(|id| !payload.names_conversation(id));
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
/// how the object it was read from was reached (see `sentinel_queue::decode`).
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

/// The LLM step: the model is shown what the deterministic steps decoded, as numbered
/// `path: value` lines ([`Shown`]), and answers under a JSON-schema constraint by choosing, for
/// each field that needs reading, the number of one of the paths it was shown (or null). The
/// value at the path is the answer, so the model cannot invent an id a reply would go to, and a
/// long text costs no answer tokens.
/// The rest of the canonical message comes from what Sentinel already knows (the platform, and
/// the event id ingress derived).
///
/// The result fields it adds: `heal_usage` (the tokens), and `heal_ungrounded` (fields whose
/// answer was not a path shown) when there were any.
async fn heal_with_llm(
    services: &Services,
    job: &Job,
    context: &JobContext,
    payload: &Payload,
) -> Result<(CanonicalMessage, Vec<(&'static str, JsonValue)>), JobError> {
    let layers = payload.layers();
    let shown = Shown::new(&layers, payload.raw.as_deref());
    if shown.leaves.is_empty() {
        return Err(JobError::fatal("not_healed", "the payload is empty"));
    }
    let platform_name = payload.platform.map_or("unknown", Platform::as_str);
    let messages = [
        ChatMessage::new(
            Role::System,
            "You read the numbered fields of a chat webhook. Answer with the numbers of the fields holding, in this order: the conversation's id (a chat, channel, thread or room), the sender's id, the sender's name, the message text. Use null where no field does.",
        ),
        ChatMessage::new(
            Role::User,
            format!("Platform: {platform_name}\nFields:\n{}", shown.prompt()),
        ),
    ];
    let generation = model::generate(
        services.llm.as_deref(),
        &services.pool,
        context,
        Request {
            purpose: Purpose::Heal {
                deadline: LLM_HEAL_DEADLINE,
            },
            messages: &messages,
            max_tokens: LLM_HEAL_MAX_TOKENS,
            schema: Some(&shown.schema()),
        },
    )
    .await?;
    let extracted = model_answer(&generation)?;
    // The event id ingress derived, unless it is only a digest of the body.
    let event_id = job
        .dedupe_key
        .clone()
        .filter(|key| !key.starts_with("sha256:"));
    let (message, ungrounded) = shown.message(&extracted, platform_name, event_id);
    let mut notes = vec![("heal_usage", json!(generation.usage))];
    if !ungrounded.is_empty() {
        notes.push(("heal_ungrounded", json!(ungrounded)));
    }
    Ok((message, notes))
}

/// The model's answer as a JSON list: the schema allows nothing else, and the budget leaves
/// room for the longest answer it allows.
fn model_answer(generation: &Generation) -> Result<JsonValue, JobError> {
    serde_json::from_str(&generation.text)
        .ok()
        .filter(JsonValue::is_array)
        .ok_or_else(|| {
            // Deterministic sampling: a retry would produce the same answer.
            JobError::Fatal(json!({
                "code": "invalid_message",
                "healed_by": "llm",
                "message": format!(
                    "the model's answer is not a JSON list, after {} tokens: {}",
                    generation.usage.completion_tokens,
                    storable::clip(&generation.text, 200)
                ),
            }))
        })
}

/// What the model is shown: leaves of the payload, each a path and its whole value, and which
/// fields each may answer. A small model asked to write a chat id invents one (`1234567890`), and
/// a reply would go to it; asked to write the text, it paraphrases; asked for a name, it makes one
/// up. So each field is a choice among paths, an `enum` of the paths whose value can be that
/// field, or null:
/// - `conversation_id` and `sender_id`: a number, or text of at most 64 characters with a digit
///   and no spaces;
/// - `text`: text with a letter in it;
/// - `sender_name`: text of at most 80 characters, four words, without a digit.
///
/// The leaves are the decoded layers' ([`decode::leaves`], innermost layer first); for prose,
/// which decodes into no structure, the pieces of its text ([`pieces`]).
pub struct Shown {
    leaves: Vec<ShownLeaf>,
}

/// What each position of the model's answer names.
const ANSWER_FIELDS: [&str; 4] = ["conversation_id", "sender_id", "sender_name", "text"];

struct ShownLeaf {
    path: String,
    value: String,
    id: bool,
    text: bool,
    name: bool,
}

impl Shown {
    pub fn new(layers: &[decode::Layer], raw: Option<&str>) -> Self {
        let mut candidates: Vec<(String, String, bool)> = decode::leaves(layers)
            .into_iter()
            .filter_map(|(path, value)| {
                let number = value.is_number();
                // Numbers as the adapters read them: an integral float is its integer.
                let text = match value {
                    JsonValue::String(text) => text.trim().to_owned(),
                    other => platform::id_text(other).unwrap_or_default(),
                };
                (!text.is_empty()).then_some((path, text, number))
            })
            .collect();
        if candidates.is_empty() {
            candidates = pieces(storable::clip(raw.unwrap_or_default(), PROSE_BYTES))
                .into_iter()
                .map(|(path, piece)| (path, piece, false))
                .collect();
        }
        let mut leaves = Vec::new();
        let mut bytes = 0;
        for (path, value, number) in candidates {
            let id = number
                || (value.len() <= 64
                    && value.bytes().any(|b| b.is_ascii_digit())
                    && !value.contains(char::is_whitespace));
            let text = !number && value.chars().any(char::is_alphabetic);
            let name = text
                && value.len() <= 80
                && !value.bytes().any(|b| b.is_ascii_digit())
                && value.split_whitespace().count() <= 4;
            if !(id || text) {
                continue;
            }
            // `NN. path: value` and its line break.
            let line = 4 + path.len() + 2 + value.len().min(SHOWN_VALUE_BYTES) + 1;
            if leaves.len() >= MAX_SHOWN {
                break;
            }
            // A line that does not fit is left out; shorter ones after it may still fit.
            if bytes + line > LLM_PROMPT_BYTES {
                continue;
            }
            bytes += line;
            leaves.push(ShownLeaf {
                path,
                value,
                id,
                text,
                name,
            });
        }
        Self { leaves }
    }

    /// One numbered `path: value` line per leaf, from 1, each value clipped to
    /// [`SHOWN_VALUE_BYTES`].
    pub fn prompt(&self) -> String {
        self.leaves
            .iter()
            .enumerate()
            .map(|(index, leaf)| {
                format!(
                    "{}. {}: {}",
                    index + 1,
                    leaf.path,
                    storable::clip(&leaf.value, SHOWN_VALUE_BYTES).replace('\n', " ")
                )
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// The line numbers of the leaves that may answer a field `fits` allows, and null.
    fn numbers(&self, fits: impl Fn(&ShownLeaf) -> bool) -> JsonValue {
        let mut choices: Vec<JsonValue> = self
            .leaves
            .iter()
            .enumerate()
            .filter(|(_, leaf)| fits(leaf))
            .map(|(index, _)| json!(index + 1))
            .collect();
        choices.push(JsonValue::Null);
        json!({"enum": choices})
    }

    /// The schema the model answers under: a list of four line numbers or nulls, in the order
    /// of [`ANSWER_FIELDS`].
    pub fn schema(&self) -> JsonValue {
        json!({
            // No whitespace between tokens beyond the fixed separators: llguidance's default
            // allows runs of it, which a small model fills its budget with.
            "x-guidance": {"whitespace_flexible": false},
            "type": "array",
            "prefixItems": [
                self.numbers(|leaf| leaf.id),
                self.numbers(|leaf| leaf.id),
                self.numbers(|leaf| leaf.name),
                self.numbers(|leaf| leaf.text),
            ],
            "items": false,
            "minItems": 4,
            "maxItems": 4,
        })
    }

    /// The whole value on line `number` (from 1), when that leaf may answer a field `fits`
    /// allows.
    fn value_at(&self, number: u64, fits: impl Fn(&ShownLeaf) -> bool) -> Option<String> {
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        self.leaves
            .get(index)
            .filter(|leaf| fits(leaf))
            .map(|leaf| leaf.value.clone())
    }

    /// The canonical message the model's answer (`extracted`: a line number or null per field,
    /// in the order of [`ANSWER_FIELDS`]) describes; the names of the fields whose answer was not
    /// a line shown for them. The event type follows from the text: `command` for text that
    /// starts with `/` (as every adapter reads one), `message` for other text, else `other`.
    fn message(
        &self,
        extracted: &JsonValue,
        platform_name: &str,
        event_id: Option<String>,
    ) -> (CanonicalMessage, Vec<&'static str>) {
        let mut ungrounded = Vec::new();
        let mut chosen = |position: usize, fits: fn(&ShownLeaf) -> bool| {
            let answer = extracted.get(position).filter(|answer| !answer.is_null())?;
            let value = answer
                .as_u64()
                .and_then(|number| self.value_at(number, fits));
            if value.is_none() {
                ungrounded.push(ANSWER_FIELDS[position]);
            }
            value
        };
        let conversation_id = chosen(0, |leaf| leaf.id);
        let sender_id = chosen(1, |leaf| leaf.id);
        let sender_name = chosen(2, |leaf| leaf.name);
        let text = chosen(3, |leaf| leaf.text);
        let event_type = match text.as_deref() {
            Some(text) if text.starts_with('/') => "command",
            Some(_) => "message",
            None => "other",
        };
        let mut message = CanonicalMessage::new(platform_name, event_type);
        message.event_id = event_id;
        message.conversation_id = conversation_id;
        message.sender_id = sender_id;
        message.sender_name = sender_name;
        message.text = text;
        (message, ungrounded)
    }
}

/// Prose, which decodes into no structure, as leaves: each line (split at newlines, `|` and
/// quotes) and what follows each `: `, ` / ` or `= ` in it (`text: Where is my order?` offers
/// `Where is my order?`) as `/piece/N`; then each id-like token (a run of letters, digits and
/// `_ . : @ + -` with at least one digit, dates and times left out) as `/token/N`.
fn pieces(text: &str) -> Vec<(String, String)> {
    let mut pieces: Vec<String> = Vec::new();
    let push = |found: &mut Vec<String>, piece: &str| {
        if !piece.is_empty() && !found.iter().any(|seen| seen == piece) {
            found.push(piece.to_owned());
        }
    };
    for line in text.split(['\n', '|', '"']) {
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
                push(&mut pieces, piece);
            }
        }
    }
    let mut tokens: Vec<String> = Vec::new();
    for token in text.split(|c: char| !(c.is_alphanumeric() || "_.:@+-".contains(c))) {
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
            push(&mut tokens, token);
        }
    }
    let pieces = pieces
        .into_iter()
        .enumerate()
        .map(|(index, piece)| (format!("/piece/{index}"), piece));
    let tokens = tokens
        .into_iter()
        .enumerate()
        .map(|(index, token)| (format!("/token/{index}"), token));
    tokens.chain(pieces).collect()
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

    fn shown(payload: JsonValue) -> Shown {
        let layers = decode::Layers::new(payload).all().to_vec();
        Shown::new(&layers, None)
    }

    #[test]
    fn decoded_leaves_are_numbered_paths_and_the_answer_is_their_numbers() {
        // A body in a JSON string under a key no list names: its leaves are shown, innermost
        // layer first; the string itself is not.
        let body = json!({"room": {"id": "r-7"}, "who": {"id": 7004, "name": "Cy"}, "says": "thanks, all sorted!"});
        let shown = shown(json!({"envelope": {"blob": body.to_string(), "at": "2026-12-01"}}));
        assert_eq!(
            shown.prompt(),
            "1. #1/room/id: r-7\n2. #1/who/id: 7004\n3. #1/who/name: Cy\n4. #1/says: thanks, all sorted!\n5. /envelope/at: 2026-12-01"
        );
        let schema = shown.schema();
        assert_eq!(schema["prefixItems"][0]["enum"], json!([1, 2, 5, null]));
        assert_eq!(schema["prefixItems"][3]["enum"], json!([1, 3, 4, null]));
        let validator = jsonschema::validator_for(&schema).expect("a valid schema");
        let answer = json!([1, 2, 3, 4]);
        assert!(validator.is_valid(&answer));
        assert!(!validator.is_valid(&json!([1234567890, null, null, null])));
        assert!(
            !validator.is_valid(&json!([4, null, null, null])),
            "a text is not an id"
        );
        let (message, ungrounded) = shown.message(&answer, "unknown", None);
        assert!(ungrounded.is_empty());
        assert_eq!(message.conversation_id.as_deref(), Some("r-7"));
        assert_eq!(message.sender_id.as_deref(), Some("7004"));
        assert_eq!(message.sender_name.as_deref(), Some("Cy"));
        assert_eq!(message.text.as_deref(), Some("thanks, all sorted!"));
        assert_eq!(message.event_type, "message");
        // A line not shown, or shown for another field, answers nothing.
        let (message, ungrounded) = shown.message(&json!([4, 99, null, null]), "unknown", None);
        assert_eq!(message.conversation_id, None);
        assert_eq!(message.event_type, "other");
        assert_eq!(ungrounded, ["conversation_id", "sender_id"]);
    }

    #[test]
    fn the_prompt_stays_short_whatever_the_payload_and_a_long_text_is_taken_whole() {
        let long = "word ".repeat(400);
        let mut object = serde_json::Map::new();
        object.insert("chat_id".into(), json!(42));
        object.insert("text".into(), json!(long));
        for index in 0..500 {
            object.insert(format!("field_{index}"), json!(format!("value {index}")));
        }
        let shown = shown(JsonValue::Object(object));
        let prompt = shown.prompt();
        assert!(prompt.len() <= LLM_PROMPT_BYTES, "{}", prompt.len());
        assert!(shown.leaves.len() <= MAX_SHOWN);
        let (message, _) = shown.message(&json!([1, null, null, 2]), "unknown", None);
        assert_eq!(message.text.as_deref(), Some(long.trim()));
    }

    #[test]
    fn prose_is_shown_as_its_pieces_and_tokens() {
        let shown = Shown::new(
            &[],
            Some("update 815 | chat 7001 at 2025-01-01 10:00 | from Ada Lovelace | text: Where is my order?"),
        );
        let prompt = shown.prompt();
        assert!(
            prompt.starts_with("1. /token/0: 815\n2. /token/1: 7001\n"),
            "{prompt}"
        );
        assert!(prompt.contains(": Where is my order?"), "{prompt}");
        assert!(
            !prompt.contains(": 2025-01-01"),
            "dates are not ids: {prompt}"
        );
    }
}
