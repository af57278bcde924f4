//! Deterministic healing: a payload becomes the canonical message by its platform's adapter, on
//! the payload or on any layer decoded from it ([`decode`]); when that fails, by syntactic repair
//! (unclosed brackets, trailing commas, single quotes) and key renaming (camelCase, upper snake
//! case, platform prefixes, renamed fields) followed by the adapter again; then by the generic
//! extractor. Only when all fail does the worker ask the LLM. Nothing here touches the model.

use serde_json::{Map, Value as JsonValue};

use crate::{
    canonical::{self, CanonicalMessage},
    decode::{self, Layer, Layers},
    extract,
    platform::Platform,
    storable::{self, MAX_DEPTH},
};

/// How many times a JSON document inside a JSON string is unwrapped.
const MAX_STRING_NESTING: usize = 8;

/// Which step produced the message; stored as `result.healed_by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HealedBy {
    Adapter,
    Repair,
    /// The generic extractor read a shape no adapter knows ([`crate::extract`]).
    Extractor,
    /// The model produced it under the canonical schema (in the worker).
    Llm,
}

impl HealedBy {
    pub fn as_str(self) -> &'static str {
        match self {
            HealedBy::Adapter => "adapter",
            HealedBy::Repair => "repair",
            HealedBy::Extractor => "extractor",
            HealedBy::Llm => "llm",
        }
    }
}

/// Why deterministic healing gave up; the LLM step is next.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("deterministic healing failed: {0}")]
pub struct NotHealed(pub String);

/// A payload nested deeper than any step here reads: refused, not healed (the model would not do
/// better, and a recursive parser would overflow its stack).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("the payload nests {depth} levels deep; at most {MAX_DEPTH} levels are read")]
pub struct TooDeep {
    pub depth: usize,
}

/// Refuses a payload whose parsed value or raw text nests deeper than [`MAX_DEPTH`]. Linear in the
/// input and never recursive.
pub fn check_depth(parsed: Option<&JsonValue>, raw: Option<&str>) -> Result<(), TooDeep> {
    let depth = parsed
        .map(storable::depth)
        .unwrap_or(0)
        .max(raw.map(storable::text_depth).unwrap_or(0));
    if depth > MAX_DEPTH {
        return Err(TooDeep { depth });
    }
    Ok(())
}

/// A healed message, the step that made it, and how the object it was read from was reached
/// (see [`decode::Layer::steps`]; then the object's pointer in its layer, when it is not the
/// layer's root).
#[derive(Debug, Clone, PartialEq)]
pub struct Healed {
    pub message: CanonicalMessage,
    pub healed_by: HealedBy,
    pub unwrapped: Vec<String>,
    /// The JSON pointer each field was read from, into the layer read (see [`extract::locate`] for
    /// the adapters and repair; the extractor's own for it). Empty for a SOAP text.
    pub sources: Vec<(&'static str, String)>,
}

/// The `payload` of a `payload.heal` job as healing reads it: `(parsed, raw)`. A string is the raw
/// text as received (and its JSON, when it parses); an object or an array is JSON as sent (an
/// array is what n8n and other relays deliver). `None` for any other value.
pub fn job_payload(payload: &JsonValue) -> Option<(Option<JsonValue>, Option<String>)> {
    match payload {
        JsonValue::String(text) => Some((serde_json::from_str(text).ok(), Some(text.clone()))),
        JsonValue::Object(_) | JsonValue::Array(_) => Some((Some(payload.clone()), None)),
        _ => None,
    }
}

/// Heals a payload. `parsed` is the JSON ingress already parsed (if it did); `raw` is the text as
/// received. `platform` is `None` when unknown, and then every adapter is tried. A payload nested
/// deeper than [`MAX_DEPTH`] is not healed (see [`check_depth`]).
pub fn heal(
    platform: Option<Platform>,
    parsed: Option<&JsonValue>,
    raw: Option<&str>,
) -> Result<(CanonicalMessage, HealedBy), NotHealed> {
    heal_traced(platform, parsed, raw).map(|healed| (healed.message, healed.healed_by))
}

/// [`heal`], with the layers it decoded and where each field came from.
///
/// The payload's layers are found by decoding ([`decode`]): the payload itself, then every
/// document inside one of its strings (JSON, base64, gzip, a form, XML, YAML, …), breadth-first.
/// The steps:
/// 1. the adapters, on every object of every layer (and the Salesforce SOAP parser on text that is
///    XML), breadth-first: the first message that names its conversation wins, the one with the
///    fewest decodes, then nearest its layer's root; a layer reached through repaired JSON gives
///    `repair`;
/// 2. the same with each platform's key renaming ([`alias`]): `repair`;
/// 3. the generic extractor ([`extract`]), deepest layer first;
/// 4. failing all three, and only when the platform is named, the first adapter message that
///    does not name its conversation (a relay's envelope can look like a platform body that
///    carries no message: a CloudEvent like a Standard Webhook, which is why it comes last).
///
/// With a platform named, only its adapter reads the payload: a reply goes out over that platform,
/// to an id of that platform. With none, every adapter does, in [`Platform::ALL`]'s order.
pub fn heal_traced(
    platform: Option<Platform>,
    parsed: Option<&JsonValue>,
    raw: Option<&str>,
) -> Result<Healed, NotHealed> {
    check_depth(parsed, raw).map_err(|too_deep| NotHealed(too_deep.to_string()))?;
    let candidates: Vec<Platform> = match platform {
        Some(platform) => vec![platform],
        None => Platform::ALL.to_vec(),
    };
    let given = parsed
        .cloned()
        .or_else(|| raw.map(|text| JsonValue::String(text.to_owned())))
        .ok_or_else(|| NotHealed("there is no payload".into()))?;
    let mut layers = Layers::new(given);
    let mut reasons = Vec::new();

    let mut found = Found::default();
    let mut index = 0;
    while layers.get(index, found.decodes_wanted()).is_some() {
        adapt_layer(
            &candidates,
            layers.found(),
            index,
            None,
            &mut found,
            &mut reasons,
        );
        index += 1;
    }
    if let Some(best) = found.addressed.take() {
        return Ok(best.traced(layers.found()));
    }
    let unaddressed = found.unaddressed.take();

    let layers = layers.all();
    if layers.iter().all(|layer| layer.value.is_string()) {
        let tried: Vec<&str> = candidates
            .iter()
            .map(|platform| platform.as_str())
            .collect();
        reasons.push(format!(
            "the payload decodes into no JSON object, form, YAML or XML (for {})",
            tried.join(", ")
        ));
    }
    for (index, layer) in layers.iter().enumerate() {
        if found.decodes_wanted() < layer.decodes {
            break;
        }
        for platform in &candidates {
            if !layer.value.is_string() {
                let renamed = alias(*platform, &layer.value);
                adapt_layer(
                    &[*platform],
                    layers,
                    index,
                    Some(&renamed),
                    &mut found,
                    &mut reasons,
                );
            }
        }
    }
    if let Some(best) = found.addressed.take() {
        return Ok(best.traced(layers));
    }

    // A shape no adapter knows: the generic extractor, deepest layer first (a list of one read as
    // its element). It answers only when every field it fills is unambiguous.
    for (index, layer) in layers.iter().enumerate().rev() {
        if layer.value.is_string() || found.is_content(layers, index) {
            continue;
        }
        let mut value = &layer.value;
        while let JsonValue::Array(items) = value {
            match items.as_slice() {
                [one] => value = one,
                _ => break,
            }
        }
        let Some(extracted) = extract::extract(platform, value) else {
            continue;
        };
        match validated(extracted.message) {
            Ok(message) => {
                return Ok(Healed {
                    message,
                    healed_by: HealedBy::Extractor,
                    unwrapped: layer.steps.clone(),
                    sources: extracted.sources,
                })
            }
            Err(reason) => reasons.push(format!("extractor: {reason}")),
        }
    }
    reasons.push("extractor: no unambiguous conversation and text".into());
    // An event that names no conversation (a status, a record without a message) is the named
    // platform's to send; with no platform named, any object holding a `data` object reads as a
    // Standard Webhook of that kind, so it would be a guess.
    if let Some(best) = unaddressed
        .or(found.unaddressed)
        .filter(|_| platform.is_some())
    {
        return Ok(best.traced(layers));
    }
    if layers.len() >= decode::Budget::LAYERS {
        reasons.push(format!(
            "the search stopped at {} layers",
            decode::Budget::LAYERS
        ));
    }
    Err(NotHealed(clipped_reasons(&reasons)))
}

/// The most reasons a failure names, and the longest each may be: a hostile payload's long keys
/// must not make the stored error larger than the payload.
const MAX_REASONS: usize = 16;
const REASON_BYTES: usize = 300;

fn clipped_reasons(reasons: &[String]) -> String {
    let mut kept: Vec<&str> = reasons
        .iter()
        .take(MAX_REASONS)
        .map(|reason| storable::clip(reason, REASON_BYTES))
        .collect();
    let more = reasons.len().saturating_sub(MAX_REASONS);
    let tail = format!("and {more} more");
    if more > 0 {
        kept.push(&tail);
    }
    kept.join("; ")
}

/// A message, the layer it was read from, and where: `(decodes, object depth)`, smaller is
/// better.
struct Ranked {
    healed: Healed,
    layer: usize,
    rank: (usize, usize),
}

impl Ranked {
    /// The message with the pointer each field came from, into its layer (found once, for the
    /// winner only); none into XML text.
    fn traced(mut self, layers: &[Layer]) -> Healed {
        if let Some(layer) = layers
            .get(self.layer)
            .filter(|layer| !layer.value.is_string())
        {
            self.healed.sources = extract::locate(&layer.value, &self.healed.message);
        }
        self.healed
    }
}

/// The best message that names its conversation, the first that does not, and the texts of the
/// messages the adapters read, by layer.
#[derive(Default)]
struct Found {
    addressed: Option<Ranked>,
    unaddressed: Option<Ranked>,
    texts: Vec<(usize, String)>,
}

impl Found {
    fn offer(&mut self, ranked: Ranked) {
        if let Some(text) = ranked.healed.message.text.as_deref() {
            let text = text.trim();
            if !text.is_empty()
                && !self
                    .texts
                    .iter()
                    .any(|(layer, seen)| *layer == ranked.layer && seen == text)
            {
                self.texts.push((ranked.layer, text.to_owned()));
            }
        }
        let slot = if ranked.healed.message.conversation_id.is_some() {
            &mut self.addressed
        } else {
            &mut self.unaddressed
        };
        if slot.as_ref().is_none_or(|best| ranked.rank < best.rank) {
            *slot = Some(ranked);
        }
    }

    /// The most decodes a layer may have and still beat what was found.
    fn decodes_wanted(&self) -> usize {
        self.addressed
            .as_ref()
            .map_or(usize::MAX, |best| best.rank.0)
    }

    /// Whether layer `index` was decoded, at any depth, from the text of a message an adapter
    /// read: a message's text is what its sender wrote, not a layer of the payload, so a user
    /// who sends a platform body as text does not choose where the reply goes.
    fn is_content(&self, layers: &[Layer], index: usize) -> bool {
        let mut at = index;
        while let Some(layer) = layers.get(at) {
            let Some((parent, pointer)) = &layer.source else {
                match layer.parent {
                    Some(parent) => {
                        at = parent;
                        continue;
                    }
                    None => return false,
                }
            };
            let string = layers
                .get(*parent)
                .and_then(|parent| parent.value.pointer(pointer))
                .and_then(JsonValue::as_str)
                .map(str::trim);
            if string.is_some_and(|string| {
                self.texts
                    .iter()
                    .any(|(layer, text)| layer == parent && text == string)
            }) {
                return true;
            }
            at = *parent;
        }
        false
    }
}

/// The most objects of one layer offered to the adapters.
const MAX_OBJECTS: usize = 256;

/// The adapters on every object of layer `index` of `layers`, nearest its root first
/// (`renamed`: the layer with a platform's key renaming, when repairing), and the SOAP parser
/// when the layer is XML text. Messages go to `found`; failures to `reasons` (the root's only, so
/// the reasons stay readable). A layer decoded from a message's text is not read
/// ([`Found::is_content`]).
fn adapt_layer(
    candidates: &[Platform],
    layers: &[Layer],
    index: usize,
    renamed: Option<&JsonValue>,
    found: &mut Found,
    reasons: &mut Vec<String>,
) {
    let Some(layer) = layers.get(index) else {
        return;
    };
    if found.is_content(layers, index) {
        return;
    }
    let healed_by = if renamed.is_some() || layer.repaired {
        HealedBy::Repair
    } else {
        HealedBy::Adapter
    };
    let steps = storable::clip(&layer.steps.join(", "), REASON_BYTES).to_owned();
    let after = match (renamed.is_some(), layer.steps.is_empty()) {
        (true, true) => " after renaming keys".to_owned(),
        (true, false) => format!(" after {steps} and renaming keys"),
        (false, true) => String::new(),
        (false, false) => format!(" after {steps}"),
    };
    let ranked = |message: CanonicalMessage, at: &str, depth: usize| {
        let mut unwrapped = layer.steps.clone();
        if !at.is_empty() {
            unwrapped.push(at.to_owned());
        }
        Ranked {
            healed: Healed {
                message,
                healed_by,
                unwrapped,
                sources: Vec::new(),
            },
            layer: index,
            rank: (layer.decodes, depth),
        }
    };
    let value = renamed.unwrap_or(&layer.value);
    if let JsonValue::String(text) = value {
        // A Salesforce outbound message as its SOAP text (after a BOM).
        let soap = text.trim_start_matches('\u{FEFF}').trim();
        if soap.starts_with('<') && candidates.contains(&Platform::Salesforce) {
            match salesforce_notification(soap)
                .and_then(|event| adapt(Platform::Salesforce, &event))
            {
                Ok(message) => found.offer(ranked(message, "", 0)),
                Err(reason) => reasons.push(format!("salesforce SOAP{after}: {reason}")),
            }
        }
        return;
    }
    for (pointer, depth, object) in objects(value) {
        for platform in candidates {
            match adapt(*platform, object) {
                Ok(message) => {
                    let addressed = message.conversation_id.is_some();
                    found.offer(ranked(message, &pointer, depth));
                    if addressed {
                        // Nothing deeper in this layer can beat it.
                        return;
                    }
                }
                Err(reason) if depth == 0 => {
                    reasons.push(format!("{platform} adapter{after}: {reason}"))
                }
                Err(_) => {}
            }
        }
    }
}

/// The objects of `value` with their JSON pointers and depths, breadth-first (the value itself
/// first), at most [`MAX_DEPTH`] deep.
fn objects(value: &JsonValue) -> Vec<(String, usize, &JsonValue)> {
    let mut found = Vec::new();
    let mut queue = std::collections::VecDeque::from([(String::new(), 0usize, value)]);
    while let Some((pointer, depth, node)) = queue.pop_front() {
        if depth >= MAX_DEPTH || found.len() >= MAX_OBJECTS {
            break;
        }
        let children: Box<dyn Iterator<Item = (String, &JsonValue)>> = match node {
            JsonValue::Object(object) => Box::new(
                object
                    .iter()
                    .map(|(key, child)| (decode::escape(key), child)),
            ),
            JsonValue::Array(items) => Box::new(
                items
                    .iter()
                    .enumerate()
                    .map(|(index, child)| (index.to_string(), child)),
            ),
            _ => continue,
        };
        if node.is_object() {
            found.push((pointer.clone(), depth, node));
        }
        for (segment, child) in children {
            // Enough waiting to fill the rest: a list of a million objects is not queued whole.
            if (child.is_object() || child.is_array()) && found.len() + queue.len() < MAX_OBJECTS {
                queue.push_back((format!("{pointer}/{segment}"), depth + 1, child));
            }
        }
    }
    found
}

/// A message that validates against the canonical schema, or the violations.
fn validated(message: CanonicalMessage) -> Result<CanonicalMessage, String> {
    let value = serde_json::to_value(&message).map_err(|error| error.to_string())?;
    canonical::validate(&value)?;
    Ok(message)
}

/// The first notification of a Salesforce SOAP body, in the shape ingress stores.
fn salesforce_notification(soap: &str) -> Result<JsonValue, String> {
    let message = crate::platform::salesforce::parse(soap.as_bytes())?;
    let notification = message
        .notifications
        .first()
        .ok_or("the outbound message carries no Notification")?;
    Ok(serde_json::json!({
        "organization_id": message.organization_id,
        "action_id": message.action_id,
        "notification_id": notification.id,
        "sobject_type": notification.sobject_type,
        "sobject": notification.fields,
    }))
}

/// The adapter, then the schema: a result that does not validate is not a result.
fn adapt(platform: Platform, payload: &JsonValue) -> Result<CanonicalMessage, String> {
    validated(platform.to_canonical(payload).map_err(|error| error.0)?)
}

/// Syntactic repair: strict JSON first, then the `llm_json` repairer; a JSON document inside a
/// JSON string is unwrapped. Text nested deeper than [`MAX_DEPTH`] is not read.
pub fn repair(raw: &str) -> Option<JsonValue> {
    repair_within(raw, 0)
}

fn repair_within(raw: &str, string_nesting: usize) -> Option<JsonValue> {
    let trimmed = raw.trim();
    if trimmed.is_empty()
        || string_nesting > MAX_STRING_NESTING
        || storable::text_depth(trimmed) > MAX_DEPTH
    {
        return None;
    }
    let value = serde_json::from_str::<JsonValue>(trimmed)
        .ok()
        .or_else(|| single_quoted(trimmed))
        .or_else(|| llm_json::loads(&escape_astral(trimmed), &Default::default()).ok())?;
    match value {
        JsonValue::String(inner) => {
            let inner = inner.trim();
            (inner.starts_with('{') || inner.starts_with('['))
                .then(|| repair_within(inner, string_nesting + 1))
                .flatten()
        }
        JsonValue::Object(_) => Some(value),
        _ => None,
    }
}

/// Characters outside the Basic Multilingual Plane (emoji, some CJK) written as JSON surrogate-pair
/// escapes. The `llm_json` repairer garbles them when they are raw (`😤` comes back as `ὢ4`) and
/// reads the escapes correctly; a strict parse does not need this.
fn escape_astral(text: &str) -> std::borrow::Cow<'_, str> {
    if text.chars().all(|ch| (ch as u32) <= 0xFFFF) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut escaped = String::with_capacity(text.len() + 16);
    for ch in text.chars() {
        if (ch as u32) <= 0xFFFF {
            escaped.push(ch);
        } else {
            let mut units = [0u16; 2];
            for unit in ch.encode_utf16(&mut units) {
                escaped.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    std::borrow::Cow::Owned(escaped)
}

/// JSON written with single quotes only (a Python `repr`, a hand-written fixture), read by swapping
/// the quotes. Tried before the general repairer, which garbles characters outside the Basic
/// Multilingual Plane (emoji) in single-quoted strings.
fn single_quoted(text: &str) -> Option<JsonValue> {
    if text.contains('"') || !text.contains('\'') {
        return None;
    }
    serde_json::from_str(&text.replace('\'', "\"")).ok()
}

/// Recursively renames keys: camelCase to snake_case, the platform's prefix dropped, then the
/// platform's aliases. An alias never overwrites a key that is already present under its
/// canonical name. Nothing deeper than [`MAX_DEPTH`] levels is kept. Strings are left as they
/// are: a document inside one is a layer of its own ([`decode`]).
pub fn alias(platform: Platform, value: &JsonValue) -> JsonValue {
    alias_within(platform, value, 0, true)
}

/// [`alias`] at `depth`; `table`: whether the platform's renamed fields apply here (not inside a
/// Salesforce sObject, whose keys are the record's own fields: its `Id` is not a notification's).
fn alias_within(platform: Platform, value: &JsonValue, depth: usize, table: bool) -> JsonValue {
    if depth > MAX_DEPTH {
        return JsonValue::Null;
    }
    match value {
        JsonValue::Object(object) => {
            let mut renamed = Map::with_capacity(object.len());
            let renames = if table { platform.aliases() } else { &[] };
            for (key, child) in object {
                let mut snake = to_snake_case(key);
                // A platform's own prefix (`tg_message`, `wa_contacts`) says nothing more.
                if let Some(rest) = key_prefixes(platform)
                    .iter()
                    .find_map(|prefix| snake.strip_prefix(prefix))
                    .filter(|rest| !rest.is_empty() && !object.contains_key(*rest))
                {
                    snake = rest.to_owned();
                }
                let name = renames
                    .iter()
                    .find(|(alias, _)| *alias == snake)
                    .map(|(_, canonical)| canonical.to_string())
                    .filter(|canonical| !object.contains_key(canonical.as_str()))
                    .unwrap_or(snake);
                let inside = table && name != "sobject";
                renamed
                    .entry(name)
                    .or_insert_with(|| alias_within(platform, child, depth + 1, inside));
            }
            JsonValue::Object(renamed)
        }
        JsonValue::Array(items) => JsonValue::Array(
            items
                .iter()
                .map(|item| alias_within(platform, item, depth + 1, table))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// The prefixes a pipeline puts on a platform's keys, in snake_case.
fn key_prefixes(platform: Platform) -> &'static [&'static str] {
    match platform {
        Platform::Telegram => &["telegram_", "tg_"],
        Platform::Whatsapp => &["whatsapp_", "wa_"],
        Platform::Slack => &["slack_"],
        Platform::Salesforce => &["salesforce_", "sf_"],
        Platform::Standard => &["standard_", "std_"],
    }
}

fn to_snake_case(key: &str) -> String {
    let mut snake = String::with_capacity(key.len() + 4);
    let mut previous_lower = false;
    for ch in key.chars() {
        if ch.is_uppercase() {
            if previous_lower {
                snake.push('_');
            }
            snake.extend(ch.to_lowercase());
            previous_lower = false;
        } else {
            snake.push(if ch == '-' { '_' } else { ch });
            previous_lower = ch.is_lowercase() || ch.is_ascii_digit();
        }
    }
    snake
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn a_well_formed_update_is_healed_by_the_adapter() {
        let update = json!({"update_id": 815, "message": {"message_id": 52, "date": 1735689600,
            "from": {"id": 7001, "first_name": "Ada", "last_name": "Lovelace"},
            "chat": {"id": 7001, "type": "private"}, "text": "/start",
            "reply_to_message": {"message_id": 50}}});
        let (message, by) = heal(Some(Platform::Telegram), Some(&update), None).unwrap();
        assert_eq!(by, HealedBy::Adapter);
        assert_eq!(message.event_type, "command");
        assert_eq!(message.conversation_id.as_deref(), Some("7001"));
        assert_eq!(message.sender_name.as_deref(), Some("Ada Lovelace"));
        assert_eq!(message.reply_to.as_deref(), Some("50"));
        assert_eq!(
            message.sent_at.as_deref(),
            Some("2025-01-01T00:00:00+00:00")
        );
    }

    #[test]
    fn a_channel_post_and_a_callback_query_name_their_chat_and_sender() {
        // Bot API examples: a channel post has `sender_chat` and no `from`.
        let post = json!({"update_id": 900, "channel_post": {"message_id": 3, "date": 1735689600,
            "sender_chat": {"id": -1001234567890i64, "title": "Release notes", "type": "channel"},
            "chat": {"id": -1001234567890i64, "title": "Release notes", "type": "channel"},
            "text": "v2 is out"}});
        let (message, _) = heal(Some(Platform::Telegram), Some(&post), None).unwrap();
        assert_eq!(message.event_type, "message");
        assert_eq!(message.conversation_id.as_deref(), Some("-1001234567890"));
        assert_eq!(message.sender_id.as_deref(), Some("-1001234567890"));
        assert_eq!(message.sender_name.as_deref(), Some("Release notes"));

        let callback = json!({"update_id": 901, "callback_query": {"id": "4382bfdwdsb323b2d9",
            "from": {"id": 7001, "first_name": "Ada"}, "chat_instance": "-8150312",
            "message": {"message_id": 52, "date": 1735689600, "chat": {"id": 7001, "type": "private"}, "text": "Pick one"},
            "data": "plan:pro"}});
        let (message, _) = heal(Some(Platform::Telegram), Some(&callback), None).unwrap();
        assert_eq!(message.event_type, "other");
        assert_eq!(message.conversation_id.as_deref(), Some("7001"));
        assert_eq!(message.sender_id.as_deref(), Some("7001"));
        assert_eq!(message.text.as_deref(), Some("plan:pro"));
    }

    #[test]
    fn a_whatsapp_reaction_is_not_a_message_and_a_location_is_an_attachment() {
        // Cloud API webhook examples ("Reaction messages", "Location messages").
        let reaction = json!({"contacts": [{"wa_id": "16505551234", "profile": {"name": "Kerry Fisher"}}],
            "message": {"from": "16505551234", "id": "wamid.R", "timestamp": "1749416383", "type": "reaction",
                        "reaction": {"message_id": "wamid.M", "emoji": "\u{1F44D}"}}});
        let (message, _) = heal(Some(Platform::Whatsapp), Some(&reaction), None).unwrap();
        assert_eq!(message.event_type, "other");
        assert_eq!(message.text.as_deref(), Some("\u{1F44D}"));
        assert_eq!(message.reply_to.as_deref(), Some("wamid.M"));

        let location = json!({"message": {"from": "16505551234", "id": "wamid.L", "timestamp": "1749416383",
            "type": "location", "location": {"latitude": 37.483307, "longitude": 122.148981,
            "name": "Pablo Morales", "address": "1 Hacker Way, Menlo Park, CA 94025"}}});
        let (message, _) = heal(Some(Platform::Whatsapp), Some(&location), None).unwrap();
        assert_eq!(message.event_type, "message");
        assert_eq!(message.attachments[0].kind, "location");
        assert_eq!(message.attachments[0].id, "37.483307,122.148981");
        let value = serde_json::to_value(&message).unwrap();
        assert_eq!(crate::canonical::validate(&value), Ok(()));
    }

    #[test]
    fn a_truncated_update_with_a_renamed_field_is_repaired() {
        // The closing braces are cut off and `update_id` arrives as `updateId`, `text` as `body`.
        let raw = r#"{"updateId": 816, "message": {"message_id": 53, "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "first_name": "Bo"}, "body": "hello there""#;
        let (message, by) = heal(Some(Platform::Telegram), None, Some(raw)).unwrap();
        assert_eq!(by, HealedBy::Repair);
        assert_eq!(message.event_id.as_deref(), Some("816"));
        assert_eq!(message.conversation_id.as_deref(), Some("42"));
        assert_eq!(message.text.as_deref(), Some("hello there"));
    }

    #[test]
    fn single_quotes_trailing_commas_and_json_in_a_string_are_repaired() {
        let raw = r#"{'update_id': 817, 'message': {'chat': {'id': 9,}, 'text': 'hi',},}"#;
        let (message, _) = heal(Some(Platform::Telegram), None, Some(raw)).unwrap();
        assert_eq!(message.text.as_deref(), Some("hi"));
        let wrapped = serde_json::to_string(&json!(
            r#"{"update_id": 818, "message": {"chat": {"id": 9}, "text": "wrapped"}}"#
        ))
        .unwrap();
        let healed = heal_traced(Some(Platform::Telegram), None, Some(&wrapped)).unwrap();
        assert_eq!(
            (healed.message.text.as_deref(), healed.healed_by),
            (Some("wrapped"), HealedBy::Adapter)
        );
        assert_eq!(healed.unwrapped, ["json_string", "json"]);
    }

    #[test]
    fn the_trace_names_where_each_field_came_from() {
        // A private chat: the chat's id is also the sender's; each field points at its own key.
        let update = json!({"update_id": 819, "message": {"message_id": 54, "date": 1735689600,
            "from": {"id": 42, "first_name": "Bo"}, "chat": {"id": 42, "type": "private"}, "text": "hi"}});
        let relayed = json!({"data": update, "received_at": "2026-12-01T00:00:00Z"});
        let healed = heal_traced(Some(Platform::Telegram), Some(&relayed), None).unwrap();
        // The adapter read the object at `/data`; the pointers are into the layer it is in.
        assert_eq!(healed.unwrapped, ["/data"]);
        let pointer = |field: &str| {
            healed
                .sources
                .iter()
                .find(|(name, _)| *name == field)
                .map(|(_, pointer)| pointer.as_str())
        };
        assert_eq!(pointer("conversation_id"), Some("/data/message/chat/id"));
        assert_eq!(pointer("sender_id"), Some("/data/message/from/id"));
        assert_eq!(pointer("text"), Some("/data/message/text"));
        assert_eq!(pointer("event_id"), Some("/data/update_id"));
        assert_eq!(
            pointer("sender_name"),
            Some("/data/message/from/first_name")
        );
        // Through a decoded layer: the steps name the string and its decoder.
        let sns = json!({"Type": "Notification", "TopicArn": "arn:aws:sns:eu-west-1:1:hooks", "Message": update.to_string()});
        let healed = heal_traced(Some(Platform::Telegram), Some(&sns), None).unwrap();
        assert_eq!(healed.unwrapped, ["/Message: json"]);
        assert_eq!(
            healed
                .sources
                .iter()
                .find(|(name, _)| *name == "text")
                .map(|(_, p)| p.as_str()),
            Some("/message/text")
        );
    }

    #[test]
    fn a_message_text_holding_a_platform_body_does_not_choose_the_conversation() {
        // A Standard Webhook event without a conversation, whose text is another body naming
        // one: the text is what the sender wrote, not a layer, so it is not read.
        let inner = json!({"type": "m", "data": {"conversation_id": "c-666", "text": "hi"}});
        let event =
            json!({"type": "note.created", "data": {"id": "n1", "text": inner.to_string()}});
        let healed = heal_traced(Some(Platform::Standard), Some(&event), None).unwrap();
        assert_eq!(healed.message.conversation_id, None, "{healed:?}");
        assert_eq!(
            healed.message.text.as_deref(),
            Some(inner.to_string().as_str())
        );
        // Nor `key: value` lines in the text, which the extractor would read.
        let lines =
            json!({"type": "note.created", "data": {"id": "n2", "text": "chat_id: 666\ntext: hi"}});
        let healed = heal_traced(Some(Platform::Standard), Some(&lines), None).unwrap();
        assert_eq!(healed.message.conversation_id, None);
        // A Telegram message whose text is an update for another chat answers its own chat.
        let update = json!({"update_id": 1, "message": {"chat": {"id": 666}, "text": "x"}});
        let message = json!({"update_id": 2, "message": {"chat": {"id": 42}, "from": {"id": 42},
            "text": update.to_string()}});
        let healed = heal_traced(Some(Platform::Telegram), Some(&message), None).unwrap();
        assert_eq!(healed.message.conversation_id.as_deref(), Some("42"));
    }

    #[test]
    fn long_keys_and_wide_lists_are_cut_to_the_budgets() {
        // A 1 MiB key above 100,000 objects: pointers are cut, the objects offered capped.
        let key = "k".repeat(1 << 20);
        let wide = json!({ key: vec![json!({"a": 1}); 100_000] });
        let error = heal(Some(Platform::Telegram), Some(&wide), None).unwrap_err();
        assert!(error.0.len() < 8_000, "{} bytes of reasons", error.0.len());
        assert!(objects(&wide).len() <= MAX_OBJECTS);
    }

    #[test]
    fn nesting_deeper_than_the_limit_is_refused_without_recursing() {
        let brackets = "[".repeat(1_000_000);
        assert_eq!(
            check_depth(None, Some(&brackets)),
            Err(TooDeep { depth: 1_000_000 })
        );
        let error = heal(Some(Platform::Telegram), None, Some(&brackets)).unwrap_err();
        assert!(error.0.contains("1000000 levels deep"), "{error}");
        assert_eq!(repair(&brackets), None);
        // Objects, and JSON inside strings inside strings, are bounded the same way.
        let objects = format!("{}{}", r#"{"a":"#.repeat(5_000), "1");
        assert!(heal(None, None, Some(&objects)).is_err());
        // A quote before the brackets hides nothing.
        let hidden = format!("it's {}", "[".repeat(1_000_000));
        assert!(repair(&hidden).is_none());
        assert!(heal(None, None, Some(&hidden)).is_err());
        let mut nested =
            serde_json::json!({"update_id": 1, "message": {"chat": {"id": 9}, "text": "deep"}});
        for _ in 0..12 {
            nested = JsonValue::String(nested.to_string());
        }
        assert!(heal(Some(Platform::Telegram), None, Some(&nested.to_string())).is_err());
        // Right at the limit is still read.
        let at_limit = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(check_depth(None, Some(&at_limit)), Ok(()));
    }

    #[test]
    fn platform_bodies_as_sent_and_common_envelopes_are_healed_without_the_model() {
        // A WhatsApp Cloud API webhook exactly as Meta sends it.
        let meta = json!({"object": "whatsapp_business_account", "entry": [{"id": "102290129340398",
            "changes": [{"field": "messages", "value": {"messaging_product": "whatsapp",
                "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
                "messages": [{"from": "16505551234", "id": "wamid.A", "timestamp": "1749416383",
                    "type": "text", "text": {"body": "Where is my order?"}}]}}]}]});
        let (message, by) = heal(Some(Platform::Whatsapp), Some(&meta), None).unwrap();
        assert_eq!(by, HealedBy::Adapter);
        assert_eq!(message.conversation_id.as_deref(), Some("16505551234"));
        assert_eq!(message.sender_name.as_deref(), Some("Sheena Nelson"));
        assert_eq!(message.text.as_deref(), Some("Where is my order?"));

        // A Salesforce outbound message given whole, as its SOAP text.
        let soap = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
          <notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D000000000062EAA</OrganizationId>
          <Notification><Id>04l1</Id><sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>500A</sf:Id>
          <sf:Subject>Refund</sf:Subject></sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"#;
        let (message, by) = heal(Some(Platform::Salesforce), None, Some(soap)).unwrap();
        assert_eq!(
            (by, message.text.as_deref()),
            (HealedBy::Adapter, Some("Refund"))
        );
        assert_eq!(message.conversation_id.as_deref(), Some("500A"));

        // Telegram behind an API Gateway proxy event, n8n's list of one, and a CloudEvent.
        let update = json!({"update_id": 418800213.0, "message": {"message_id": 2.0,
            "chat": {"id": 418800213.0, "type": "private"}, "from": {"id": 418800213.0, "first_name": "Ada"}, "text": "hi"}});
        let envelopes = [
            json!({"httpMethod": "POST", "isBase64Encoded": false, "headers": {}, "body": update.to_string()}),
            json!([{"headers": {"host": "n8n"}, "body": update}]),
            json!({"specversion": "1.0", "id": "e1", "source": "/tg", "type": "update", "data": {"payload": update}}),
        ];
        for envelope in envelopes {
            let healed = heal_traced(Some(Platform::Telegram), Some(&envelope), None).unwrap();
            // Unwrapping is not repair: the adapter read the body as the platform sent it.
            assert_eq!(healed.healed_by, HealedBy::Adapter, "{envelope}");
            assert!(!healed.unwrapped.is_empty());
            // Re-typed ids: integral floats are integer strings.
            assert_eq!(healed.message.conversation_id.as_deref(), Some("418800213"));
            assert_eq!(healed.message.text.as_deref(), Some("hi"));
        }
    }

    #[test]
    fn shapes_no_adapter_knows_go_to_the_extractor_and_ambiguity_does_not() {
        let flat = r#"{"chat_id": 42, "sender": "Bo", "content": "is it open?"}"#;
        let healed = heal_traced(Some(Platform::Telegram), None, Some(flat)).unwrap();
        assert_eq!(healed.healed_by, HealedBy::Extractor);
        assert_eq!(healed.message.conversation_id.as_deref(), Some("42"));
        assert_eq!(healed.message.text.as_deref(), Some("is it open?"));
        assert!(healed
            .sources
            .contains(&("conversation_id", "/chat_id".into())));
        let form = "chat_id=42&message=hello+there";
        let healed = heal_traced(Some(Platform::Telegram), None, Some(form)).unwrap();
        assert_eq!(healed.healed_by, HealedBy::Extractor);
        assert_eq!(healed.unwrapped, ["form"]);
        assert_eq!(healed.message.text.as_deref(), Some("hello there"));
        let lines = "chat: 7001\nfrom: Ada\ntext: Where is my order?";
        let healed = heal_traced(Some(Platform::Telegram), None, Some(lines)).unwrap();
        assert_eq!(healed.message.conversation_id.as_deref(), Some("7001"));
        let ambiguous = r#"{"chat_id": 1, "channel_id": 2, "text": "which one?"}"#;
        assert!(heal(Some(Platform::Telegram), None, Some(ambiguous)).is_err());
    }

    #[test]
    fn field_names_match_whatever_their_case_and_separators() {
        for raw in [
            r#"{"UpdateId": 5, "Message": {"Chat": {"Id": 42}, "From": {"Id": 42}, "Text": "pascal"}}"#,
            r#"{"update-id": 5, "message": {"chat": {"id": 42}, "from": {"id": 42}, "text": "kebab"}}"#,
            r#"{"UPDATE_ID": 5, "MESSAGE": {"CHAT": {"ID": 42}, "FROM": {"ID": 42}, "TEXT": "screaming"}}"#,
            r#"{"updateID": "5", "message": {"chat": {"id": "42"}, "from": {"id": 42.0}, "text": "mixed"}}"#,
        ] {
            let (message, by) = heal(Some(Platform::Telegram), None, Some(raw)).unwrap();
            assert_eq!(by, HealedBy::Repair, "{raw}");
            assert_eq!(message.event_id.as_deref(), Some("5"), "{raw}");
            assert_eq!(message.conversation_id.as_deref(), Some("42"), "{raw}");
            assert_eq!(message.sender_id.as_deref(), Some("42"), "{raw}");
        }
    }

    #[test]
    fn an_unknown_platform_is_recognised_by_shape_and_nonsense_is_not_healed() {
        let slack = json!({"type": "event_callback", "event_id": "Ev1", "event": {"type": "message", "channel": "C1", "user": "U1", "text": "yo", "ts": "1355517523.000005"}});
        let (message, _) = heal(None, Some(&slack), None).unwrap();
        assert_eq!(message.platform, "slack");
        let error = heal(
            Some(Platform::Telegram),
            None,
            Some("completely unrelated prose"),
        )
        .unwrap_err();
        assert!(error.0.contains("telegram"), "{error}");
    }

    #[test]
    fn whatsapp_salesforce_and_standard_adapters_fill_the_table() {
        let wa = json!({"object": "whatsapp_business_account", "contacts": [{"wa_id": "16505551234", "profile": {"name": "Sheena"}}],
            "message": {"from": "16505551234", "id": "wamid.X", "timestamp": "1749416383", "type": "image",
                        "image": {"id": "media-1", "mime_type": "image/jpeg", "caption": "look"}, "context": {"id": "wamid.W"}}});
        let (message, _) = heal(Some(Platform::Whatsapp), Some(&wa), None).unwrap();
        assert_eq!(message.sender_name.as_deref(), Some("Sheena"));
        assert_eq!(message.text.as_deref(), Some("look"));
        assert_eq!(message.reply_to.as_deref(), Some("wamid.W"));
        assert_eq!(
            message.attachments[0].mime_type.as_deref(),
            Some("image/jpeg")
        );

        let sf = json!({"notification_id": "04l1", "sobject": {"Id": "500A", "Subject": "Refund", "OwnerId": "005B"}});
        let (message, _) = heal(Some(Platform::Salesforce), Some(&sf), None).unwrap();
        assert_eq!(
            (message.event_type.as_str(), message.text.as_deref()),
            ("record_change", Some("Refund"))
        );

        let std = json!({"type": "chat.message", "timestamp": "2026-11-22T10:00:00Z", "data": {"id": "m1", "conversation_id": "c1", "text": "hey"}});
        let (message, _) = heal(Some(Platform::Standard), Some(&std), None).unwrap();
        assert_eq!(message.event_type, "message");
        assert_eq!(
            message.sent_at.as_deref(),
            Some("2026-11-22T10:00:00+00:00")
        );
    }
}
