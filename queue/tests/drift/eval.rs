//! The drift corpus (`corpus.json`, written by `scripts/drift_corpus.py`) and how one case is
//! judged. Shared by the drift test (`queue/tests/drift.rs`) and the drift benchmark
//! (`queue/benches/drift.rs`).

use std::{collections::BTreeMap, path::Path};

use sentinel_queue::{
    heal::{self, Healed, NotHealed},
    platform::Platform,
};
use serde::Deserialize;
use serde_json::Value as JsonValue;

/// The fields every case names and healing must give back exactly.
pub const FIELDS: [&str; 3] = ["conversation_id", "sender_id", "text"];

#[derive(Debug, Deserialize)]
pub struct Corpus {
    pub cases: Vec<Case>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Case {
    pub id: String,
    /// The platform the payload came from (`unknown` for shapes no platform sends).
    pub platform: String,
    /// The platform named in the job's input, if any.
    pub hint: Option<String>,
    pub drift: String,
    /// `deterministic`: adapters, repair or the extractor must heal it; `model`: nothing
    /// deterministic may answer (it would be a guess).
    pub lane: String,
    pub payload: Option<JsonValue>,
    pub raw: Option<String>,
    #[serde(default)]
    pub expect: BTreeMap<String, String>,
}

impl Case {
    /// The job input's `payload`: the raw text when the case has one, else the JSON.
    pub fn job_payload(&self) -> JsonValue {
        match (&self.raw, &self.payload) {
            (Some(raw), _) => JsonValue::String(raw.clone()),
            (None, Some(payload)) => payload.clone(),
            (None, None) => JsonValue::Null,
        }
    }

    /// Heals the case as a `payload.heal` job's deterministic steps do.
    pub fn heal(&self) -> Result<Healed, NotHealed> {
        let platform = self
            .hint
            .as_deref()
            .and_then(|name| name.parse::<Platform>().ok());
        let (parsed, raw) = heal::job_payload(&self.job_payload())
            .ok_or_else(|| NotHealed("the case's payload is neither text nor JSON".into()))?;
        heal::heal_traced(platform, parsed.as_ref(), raw.as_deref())
    }

    /// The lane's verdict on a healing attempt.
    pub fn judge(&self, healed: &Result<Healed, NotHealed>) -> Verdict {
        let fields = |healed: &Healed| {
            let message = &healed.message;
            FIELDS.map(|field| {
                let got = match field {
                    "conversation_id" => message.conversation_id.as_deref(),
                    "sender_id" => message.sender_id.as_deref(),
                    _ => message.text.as_deref(),
                };
                (field, got.map(str::to_owned))
            })
        };
        match (self.lane.as_str(), healed) {
            ("deterministic", Ok(healed)) => {
                let wrong: Vec<String> = fields(healed)
                    .into_iter()
                    .filter(|(field, got)| {
                        got.as_deref() != self.expect.get(*field).map(String::as_str)
                    })
                    .map(|(field, got)| {
                        format!(
                            "{field}: got {got:?}, expected {:?}",
                            self.expect.get(field)
                        )
                    })
                    .collect();
                Verdict::Healed {
                    step: healed.healed_by.as_str(),
                    exact: FIELDS.len() - wrong.len(),
                    wrong,
                }
            }
            ("deterministic", Err(reason)) => Verdict::LeftToModel(reason.to_string()),
            (_, Ok(healed)) => Verdict::Guessed(format!(
                "{} answered conversation_id {:?}",
                healed.healed_by.as_str(),
                healed.message.conversation_id
            )),
            (_, Err(_)) => Verdict::Refused,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A deterministic step healed it; `exact` of the expected fields match.
    Healed {
        step: &'static str,
        exact: usize,
        wrong: Vec<String>,
    },
    /// No deterministic step healed a case that one should have.
    LeftToModel(String),
    /// A case for the model was correctly left alone.
    Refused,
    /// A deterministic step answered a case where any answer is a guess.
    Guessed(String),
}

/// The development corpus (`corpus.json`): the cases healing was built against.
pub fn load() -> Corpus {
    load_named("corpus")
}

/// `queue/tests/drift/<name>.json`: `corpus` (development) or `heldout` (written from the
/// platforms' and transports' documentation before the code that heals it, and never tuned to).
pub fn load_named(name: &str) -> Corpus {
    // From the workspace, so the worker's bench (another crate) finds it too.
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("../queue/tests/drift/{name}.json"));
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|error| panic!("reading {}: {error}", path.display()));
    serde_json::from_str(&text)
        .unwrap_or_else(|error| panic!("parsing {}: {error}", path.display()))
}
