//! Envelopes that proxies, relays and automation tools put around a platform's body, taken off
//! deterministically before the adapters run again. Each step taken is named, for the heal trace.
//!
//! | step | recognised by | what is kept |
//! |---|---|---|
//! | `http_proxy_body` | an object with a string `body` and `isBase64Encoded`, `httpMethod`, `requestContext`, `routeKey` or `headers` (AWS API Gateway / Lambda proxy events, n8n, Zapier) | the body, base64-decoded when `isBase64Encoded`, parsed as JSON or as a form, else its text (a SOAP body) |
//! | `proxy_body` | an object with an object `body` and `headers` (n8n, Zapier, Make) | the body |
//! | `cloudevent_data` | `specversion` with `data` or `data_base64` | the data |
//! | `kafka_value` | `topic` (or `partition`/`offset`) with `value` | the value |
//! | `list_of_one` | an array with one element | the element |
//! | `wrapper:<key>` | an object whose only key is `body`, `data`, `event`, `payload`, `detail`, `record` or `value`, or that has one of them holding a body beside nothing but metadata (scalars, empty containers, containers of scalars) | what it wraps |
//! | `json_string` | a string holding a JSON object or array, or a JSON string literal (a document serialised twice) | the parsed value |
//! | `form` | a string of `key=value&…` pairs | an object of the pairs (a value holding JSON is parsed) |
//!
//! Unwrapping stops after [`MAX_STEPS`] steps, when nothing more is recognised, or at a value that
//! is no longer an object, array or string.

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use serde_json::{Map, Value as JsonValue};

use crate::storable;

/// The most envelopes taken off one payload.
pub const MAX_STEPS: usize = 8;

/// The keys that wrap a body all by themselves.
const WRAPPER_KEYS: [&str; 7] = [
    "body", "data", "event", "payload", "detail", "record", "value",
];

/// A payload with its envelopes taken off, and the steps that took them off (outermost first).
#[derive(Debug, Clone, PartialEq)]
pub struct Unwrapped {
    pub value: JsonValue,
    pub steps: Vec<String>,
}

/// Takes every recognised envelope off `value`.
pub fn unwrap(value: &JsonValue) -> Unwrapped {
    let mut layers = layers(value);
    layers.pop().unwrap_or_else(|| Unwrapped {
        value: value.clone(),
        steps: Vec::new(),
    })
}

/// `value` itself, then the value after each envelope taken off, outermost first: healing tries
/// the adapters on each in turn, so a platform body that happens to contain a wrapper key is read
/// as it is before anything is taken off it.
pub fn layers(value: &JsonValue) -> Vec<Unwrapped> {
    let mut layers = vec![Unwrapped {
        value: value.clone(),
        steps: Vec::new(),
    }];
    while layers.len() <= MAX_STEPS {
        let Some(last) = layers.last() else { break };
        let Some((step, inner)) = unwrap_once(&last.value) else {
            break;
        };
        if storable::depth(&inner) > storable::MAX_DEPTH {
            break;
        }
        let mut steps = last.steps.clone();
        steps.push(step);
        layers.push(Unwrapped {
            value: inner,
            steps,
        });
    }
    layers
}

/// One envelope off, if `value` is one.
fn unwrap_once(value: &JsonValue) -> Option<(String, JsonValue)> {
    match value {
        JsonValue::Array(items) if items.len() == 1 => {
            Some(("list_of_one".into(), items[0].clone()))
        }
        JsonValue::String(text) => parse_text(text),
        JsonValue::Object(object) => unwrap_object(object),
        _ => None,
    }
}

fn unwrap_object(object: &Map<String, JsonValue>) -> Option<(String, JsonValue)> {
    let has = |key: &str| object.contains_key(key);
    if let Some(JsonValue::String(body)) = object.get("body") {
        let proxied = [
            "isBase64Encoded",
            "httpMethod",
            "requestContext",
            "routeKey",
            "headers",
        ]
        .iter()
        .any(|key| has(key));
        if proxied {
            let encoded = object
                .get("isBase64Encoded")
                .and_then(JsonValue::as_bool)
                .unwrap_or(false);
            let text = if encoded {
                let bytes = BASE64.decode(body.trim()).ok()?;
                String::from_utf8(bytes).ok()?
            } else {
                body.clone()
            };
            let inner = parse_text(&text).map_or(JsonValue::String(text), |(_, inner)| inner);
            return Some(("http_proxy_body".into(), inner));
        }
    }
    if let Some(body @ JsonValue::Object(_)) = object.get("body") {
        if has("headers") {
            return Some(("proxy_body".into(), body.clone()));
        }
    }
    if has("specversion") {
        if let Some(data) = object.get("data") {
            return Some(("cloudevent_data".into(), data.clone()));
        }
        if let Some(JsonValue::String(encoded)) = object.get("data_base64") {
            let bytes = BASE64.decode(encoded.trim()).ok()?;
            let text = String::from_utf8(bytes).ok()?;
            let inner = parse_text(&text).map_or(JsonValue::String(text), |(_, inner)| inner);
            return Some(("cloudevent_data".into(), inner));
        }
    }
    if (has("topic") || (has("partition") && has("offset"))) && has("value") {
        return Some(("kafka_value".into(), object.get("value")?.clone()));
    }
    if object.len() == 1 {
        let (key, inner) = object.iter().next()?;
        if WRAPPER_KEYS.contains(&key.as_str()) && !inner.is_null() {
            return Some((format!("wrapper:{key}"), inner.clone()));
        }
    }
    // One wrapper key holding a body beside nothing but metadata (`received_at`, a source name,
    // a header map): a relay's own envelope.
    let mut bodies = WRAPPER_KEYS
        .iter()
        .filter_map(|key| Some((*key, object.get(*key)?)))
        .filter(|(_, value)| holds_body(value));
    if let (Some((key, inner)), None) = (bodies.next(), bodies.next()) {
        if object
            .iter()
            .all(|(name, value)| name == key || is_metadata(value))
        {
            return Some((format!("wrapper:{key}"), inner.clone()));
        }
    }
    None
}

/// An object, a non-empty array, or text holding a document (JSON, XML, a form): something a
/// platform body can be. Plain text is a message's own field (`body: "hello"`), not a body.
fn holds_body(value: &JsonValue) -> bool {
    match value {
        JsonValue::Object(object) => !object.is_empty(),
        JsonValue::Array(items) => !items.is_empty(),
        JsonValue::String(text) => {
            let text = text.trim_start_matches('\u{FEFF}').trim_start();
            text.starts_with('<') || parse_text(text).is_some()
        }
        _ => false,
    }
}

/// A scalar, an empty container, or a container of scalars (a header map, a list of tags).
fn is_metadata(value: &JsonValue) -> bool {
    let scalar = |value: &JsonValue| !value.is_object() && !value.is_array();
    match value {
        JsonValue::Object(object) => object.values().all(scalar),
        JsonValue::Array(items) => items.iter().all(scalar),
        _ => true,
    }
}

/// A JSON document in a string (after a BOM, one NDJSON line, HTML-escaped quotes), or a form.
fn parse_text(text: &str) -> Option<(String, JsonValue)> {
    let text = text.trim_start_matches('\u{FEFF}').trim();
    if text.is_empty() || storable::text_depth(text) > storable::MAX_DEPTH {
        return None;
    }
    if text.starts_with('"') {
        // A document serialised once more: the JSON string literal of its text.
        return serde_json::from_str::<String>(text)
            .ok()
            .map(|inner| ("json_string".into(), JsonValue::String(inner)));
    }
    if text.starts_with('{') || text.starts_with('[') {
        if let Ok(value) = serde_json::from_str::<JsonValue>(text) {
            return Some(("json_string".into(), value));
        }
        // One NDJSON line followed by an empty rest, or quotes escaped for HTML.
        let first_line = text.lines().next().unwrap_or_default();
        if let Ok(value) = serde_json::from_str::<JsonValue>(first_line) {
            if text.lines().skip(1).all(|line| line.trim().is_empty()) {
                return Some(("ndjson_line".into(), value));
            }
        }
        if text.contains("&quot;") {
            let unescaped = text.replace("&quot;", "\"").replace("&amp;", "&");
            if let Ok(value) = serde_json::from_str::<JsonValue>(&unescaped) {
                return Some(("html_unescaped".into(), value));
            }
        }
        return None;
    }
    form(text).map(|value| ("form".into(), value))
}

/// `key=value&…` as an object, when every pair has a key; a value that holds JSON is parsed.
fn form(text: &str) -> Option<JsonValue> {
    // A form is one token (it encodes spaces); prose with an equals sign is not a form.
    if !text.contains('=') || text.contains(char::is_whitespace) {
        return None;
    }
    let mut object = Map::new();
    for (key, value) in form_urlencoded::parse(text.as_bytes()) {
        if key.is_empty() {
            return None;
        }
        let value = match value.trim() {
            inner
                if (inner.starts_with('{') || inner.starts_with('['))
                    && storable::text_depth(inner) <= storable::MAX_DEPTH =>
            {
                serde_json::from_str(inner).unwrap_or_else(|_| JsonValue::String(value.to_string()))
            }
            _ => JsonValue::String(value.into_owned()),
        };
        object.insert(key.into_owned(), value);
    }
    (!object.is_empty()).then_some(JsonValue::Object(object))
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn update() -> JsonValue {
        json!({"update_id": 1, "message": {"chat": {"id": 9}, "from": {"id": 9}, "text": "hi"}})
    }

    #[test]
    fn proxy_events_lists_and_wrappers_are_taken_off_in_order() {
        let lambda = json!({"version": "2.0", "routeKey": "POST /hook", "isBase64Encoded": true,
            "headers": {"content-type": "application/json"},
            "body": BASE64.encode(update().to_string())});
        let unwrapped = unwrap(&lambda);
        assert_eq!(unwrapped.value, update());
        assert_eq!(unwrapped.steps, ["http_proxy_body"]);

        let n8n = json!([{"headers": {"host": "x"}, "params": {}, "body": update()}]);
        let unwrapped = unwrap(&n8n);
        assert_eq!(unwrapped.value, update());
        assert_eq!(unwrapped.steps, ["list_of_one", "proxy_body"]);

        let cloud = json!({"specversion": "1.0", "type": "com.telegram.update", "source": "/bot", "id": "A1",
            "data": {"event": update()}});
        let unwrapped = unwrap(&cloud);
        assert_eq!(unwrapped.value, update());
        assert_eq!(unwrapped.steps, ["cloudevent_data", "wrapper:event"]);

        let kafka = json!({"topic": "webhooks", "partition": 0, "offset": 17, "key": null,
            "value": update().to_string()});
        let unwrapped = unwrap(&kafka);
        assert_eq!(unwrapped.value, update());
        assert_eq!(unwrapped.steps, ["kafka_value", "json_string"]);
    }

    #[test]
    fn text_forms_ndjson_boms_and_html_quotes_are_read() {
        let bom = JsonValue::String(format!("\u{FEFF}{}", update()));
        assert_eq!(unwrap(&bom).value, update());
        let ndjson = JsonValue::String(format!("{}\r\n", update()));
        assert_eq!(unwrap(&ndjson).value, update());
        let html = JsonValue::String(update().to_string().replace('"', "&quot;"));
        assert_eq!(unwrap(&html).value, update());
        let form = JsonValue::String(format!(
            "chat_id=42&message=hello+there&payload={}",
            urlencode(&json!({"a": 1}).to_string())
        ));
        // The form, then the JSON its one document-holding field carries beside plain fields;
        // healing tries the adapters on each layer and the extractor innermost first.
        let layers = layers(&form);
        assert_eq!(
            layers[1].value,
            json!({"chat_id": "42", "message": "hello there", "payload": {"a": 1}})
        );
        assert_eq!(layers[1].steps, ["form"]);
        assert_eq!(layers[2].value, json!({"a": 1}));
        assert_eq!(layers[2].steps, ["form", "wrapper:payload"]);
    }

    #[test]
    fn a_relay_envelope_with_metadata_beside_the_body_is_taken_off() {
        let relayed = json!({"data": update(), "received_at": "2026-12-01T00:00:00Z",
            "headers": {"x-forwarded-for": "203.0.113.9"}, "tags": ["edge"]});
        let unwrapped = unwrap(&relayed);
        assert_eq!(unwrapped.value, update());
        assert_eq!(unwrapped.steps, ["wrapper:data"]);
        // Two document-holding wrapper keys: which one is the body would be a guess.
        let two = json!({"data": update(), "payload": update(), "received_at": 1});
        assert!(unwrap(&two).steps.is_empty());
        // A document serialised twice.
        let twice = JsonValue::String(serde_json::to_string(&update().to_string()).unwrap());
        assert_eq!(unwrap(&twice).steps, ["json_string", "json_string"]);
    }

    #[test]
    fn plain_payloads_and_prose_are_left_alone() {
        // A platform body with a wrapper key among fields that are not all metadata.
        let slack = json!({"type": "event_callback", "event_id": "Ev1", "event": {"type": "message"},
            "authorizations": [{"team_id": "T1"}]});
        assert!(unwrap(&slack).steps.is_empty());
        // A message whose text is under `body`, beside its other fields.
        let message = json!({"thread": {"id": "t-1"}, "body": "hello"});
        assert!(unwrap(&message).steps.is_empty());
        let prose = json!("the answer is x = 4, surely");
        assert!(unwrap(&prose).steps.is_empty());
        let deep = JsonValue::String("[".repeat(100_000));
        assert!(unwrap(&deep).steps.is_empty());
    }

    fn urlencode(text: &str) -> String {
        form_urlencoded::byte_serialize(text.as_bytes()).collect()
    }
}
