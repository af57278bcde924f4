//! Layers found by decoding, not by name: any string anywhere in a payload that decodes into
//! structure is a layer of its own, whatever key holds it. Healing ([`crate::heal`]) offers every
//! object of every layer to the adapters, breadth-first, so a platform body inside a queue's
//! record, a push subscription's base64 `data`, a log batch's gzip or a form field is found the
//! same way as one sent as is.
//!
//! | decoder | tried on text that | gives |
//! |---|---|---|
//! | `json` | starts with `{` or `[` (after a BOM) | the document; with `//` and `/* */` comments taken out (`jsonc`) |
//! | `json_repaired` | starts with `{` or `[` and is broken (trailing commas, single quotes, unquoted keys, cut off) | the repaired document; a message read from it is healed by `repair` |
//! | `json_string` | is a JSON string literal (a document serialised once more) | its text |
//! | `xml`, `elements` | starts with `<` and is well-formed XML | inside a layer, the text as a layer of its own (`xml`), which the Salesforce SOAP parser reads; from a text layer, its element tree as an object (`elements`: local names as keys, repeated elements as lists, text and CDATA as strings, attributes left out) |
//! | `html_entities` | holds `&quot;`, `&#34;`, `&#x22;`, `&lt;`, `&amp;` … | the text unescaped |
//! | `percent` | starts with `%`, or is JSON with its quotes percent-encoded (`{%22chat%22:…`) | the text decoded, when it is UTF-8 and changed |
//! | `form` | is `key=value&…` without spaces (after a URL's `?`, or a lone `?`) | an object of the pairs |
//! | `base64` | is standard or URL-safe base64 (padded or not, MIME line breaks allowed), of at least 16 characters | the decoded text, after gzip, zlib or raw deflate (`base64+gzip`, `base64+zlib`, `base64+deflate`) when the bytes are compressed |
//! | `yaml` | has several lines, the first a `key:` or a `- ` item | the document as JSON (anchors and aliases are not expanded) |
//! | `key_values` | is `key=value` or `key: value` lines | a flat object |
//!
//! The first decoder that succeeds on a text is the one taken. Text decoded from base64, percent or
//! entities is kept only when it looks like a document (it starts with `{`, `[`, `<`, `"` or `%`,
//! or holds `=` or `:`), so that ids which happen to be valid base64 do not become layers. Every
//! attempt is charged to the budget, the bytes a decoder produced on the way included.
//!
//! The search is breadth-first: the payload, then every layer one decode away, and so on, under
//! [`Budget`]: at most [`Budget::LAYERS`] layers, [`Budget::DECODES`] decodes deep,
//! [`Budget::DECODED_BYTES`] decoded in all, [`Budget::STRINGS`] strings tried. Every parser here
//! is iterative or depth-checked first, so no input reaches a stack's end.

use std::{collections::VecDeque, io::Read};

use base64::{
    alphabet,
    engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig},
    Engine,
};
use serde_json::{Map, Value as JsonValue};

use crate::storable::{self, MAX_DEPTH};

/// The limits of one payload's search.
pub struct Budget;

impl Budget {
    /// Layers found, the payload itself included.
    pub const LAYERS: usize = 48;
    /// Decodes between the payload and a layer (a document in a string in a string counts two).
    pub const DECODES: usize = 10;
    /// Bytes produced by decoders, in all (a decompressed body counts whole).
    pub const DECODED_BYTES: usize = 8 * 1024 * 1024;
    /// String values tried by the decoders, in all.
    pub const STRINGS: usize = 2_048;
    /// The shortest string tried: `a=1&b=2`.
    const SHORTEST: usize = 6;
    /// The shortest base64 tried: a 12-byte document.
    const SHORTEST_BASE64: usize = 16;
}

/// One layer: the payload, or what a chain of decoders made of one of its strings.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    /// An object or a list; or text no decoder turns into structure (XML for the SOAP parser,
    /// prose).
    pub value: JsonValue,
    /// How it was reached from the payload: `"<pointer>: <decoder>"` for a string inside a layer,
    /// `"<decoder>"` for a decoded text. Empty for the payload.
    pub steps: Vec<String>,
    /// How many decodes deep it is.
    pub decodes: usize,
    /// A decoder repaired broken JSON on the way: a message read from it is healed by `repair`.
    pub repaired: bool,
    /// The layer and the pointer of the string it was decoded from; `None` for the payload and for
    /// a decoded text's decoding.
    pub source: Option<(usize, String)>,
    /// The layer it was decoded from; `None` for the payload.
    pub parent: Option<usize>,
}

/// The layers of one payload, found lazily: a layer's strings are decoded only when a layer past
/// it is asked for, so a payload an adapter reads as sent costs no decoding.
pub struct Layers {
    found: Vec<Layer>,
    queue: VecDeque<Layer>,
    expanded: usize,
    spent: Spent,
}

#[derive(Default)]
struct Spent {
    decoded_bytes: usize,
    strings: usize,
}

impl Layers {
    pub fn new(payload: JsonValue) -> Self {
        Self {
            found: Vec::new(),
            queue: VecDeque::from([Layer {
                value: payload,
                steps: Vec::new(),
                decodes: 0,
                repaired: false,
                source: None,
                parent: None,
            }]),
            expanded: 0,
            spent: Spent::default(),
        }
    }

    /// The `index`-th layer in breadth-first order, decoding as far as needed, unless it is more
    /// than `max_decodes` deep (nothing is decoded for it then).
    pub fn get(&mut self, index: usize, max_decodes: usize) -> Option<&Layer> {
        while self.found.len() <= index && self.found.len() < Budget::LAYERS {
            if let Some(layer) = self.queue.pop_front() {
                if layer.decodes > max_decodes {
                    self.queue.push_front(layer);
                    return None;
                }
                self.found.push(layer);
                continue;
            }
            let parent = self.found.get(self.expanded)?;
            if parent.decodes >= max_decodes
                || self.found.len() + self.queue.len() >= Budget::LAYERS
            {
                return None;
            }
            let room = Budget::LAYERS - self.found.len();
            let children = expand(self.expanded, parent, room, &mut self.spent);
            self.expanded += 1;
            self.queue.extend(children);
        }
        self.found.get(index)
    }

    /// The layers found so far, in breadth-first order.
    pub fn found(&self) -> &[Layer] {
        &self.found
    }

    /// Every layer, found to the end of the budget.
    pub fn all(&mut self) -> &[Layer] {
        let mut index = 0;
        while self.get(index, usize::MAX).is_some() {
            index += 1;
        }
        &self.found
    }
}

/// The layers one decode below `layer`, the `index`-th: at most `room` (nothing is decoded for
/// layers the budget has no room for).
fn expand(index: usize, layer: &Layer, room: usize, spent: &mut Spent) -> Vec<Layer> {
    if layer.decodes >= Budget::DECODES {
        return Vec::new();
    }
    let child = |step: String, decoded: Decoded, source: Option<(usize, String)>| {
        let mut steps = layer.steps.clone();
        steps.push(step);
        Layer {
            value: decoded.value,
            steps,
            decodes: layer.decodes + 1,
            repaired: layer.repaired || decoded.repaired,
            source,
            parent: Some(index),
        }
    };
    match &layer.value {
        JsonValue::String(text) => decode(text, spent, false)
            .map(|decoded| vec![child(decoded.step.to_owned(), decoded, None)])
            .unwrap_or_default(),
        value => strings(value)
            .into_iter()
            .filter_map(|(pointer, text)| {
                let decoded = decode(text, spent, true)?;
                let step = format!("{pointer}: {}", decoded.step);
                Some(child(step, decoded, Some((index, pointer))))
            })
            .take(room)
            .collect(),
    }
}

/// The scalar leaves (strings and numbers) of every layer that is structure, innermost layer
/// first, each with the path it is shown under: its JSON pointer in the payload, or `#<layer>`
/// and its pointer in a decoded layer (`#2/message/chat/id`). A string that was decoded into a
/// layer of its own is left out: its layer's leaves stand for it.
pub fn leaves(layers: &[Layer]) -> Vec<(String, &JsonValue)> {
    let decoded: Vec<(usize, &str)> = layers
        .iter()
        .filter_map(|layer| layer.source.as_ref())
        .map(|(index, pointer)| (*index, pointer.as_str()))
        .collect();
    let mut found = Vec::new();
    let mut order: Vec<usize> = (0..layers.len()).collect();
    order.sort_by_key(|index| std::cmp::Reverse(layers[*index].decodes));
    for index in order {
        let layer = &layers[index];
        if layer.value.is_string() {
            continue;
        }
        for (pointer, node) in scalars(&layer.value) {
            if !decoded.contains(&(index, pointer.as_str())) {
                let path = if index == 0 {
                    pointer
                } else {
                    format!("#{index}{pointer}")
                };
                found.push((path, node));
            }
        }
    }
    found
}

/// The string values of `value` with their JSON pointers, in document order.
fn strings(value: &JsonValue) -> Vec<(String, &str)> {
    scalars(value)
        .into_iter()
        .filter_map(|(pointer, node)| Some((pointer, node.as_str()?)))
        .collect()
}

/// The strings and numbers of `value` with their JSON pointers, in document order, at most
/// [`MAX_DEPTH`] deep and [`MAX_SCALARS`] of them. Iterative: no input reaches the stack's end.
fn scalars(value: &JsonValue) -> Vec<(String, &JsonValue)> {
    let mut found = Vec::new();
    let mut stack = vec![(String::new(), value, 0usize)];
    while let Some((pointer, node, depth)) = stack.pop() {
        if found.len() >= MAX_SCALARS {
            break;
        }
        match node {
            JsonValue::String(_) | JsonValue::Number(_) => found.push((pointer, node)),
            JsonValue::Object(object) if depth < MAX_DEPTH => {
                for (key, child) in object.iter().rev() {
                    stack.push((format!("{pointer}/{}", escape(key)), child, depth + 1));
                }
            }
            JsonValue::Array(items) if depth < MAX_DEPTH => {
                for (index, child) in items.iter().enumerate().rev() {
                    stack.push((format!("{pointer}/{index}"), child, depth + 1));
                }
            }
            _ => {}
        }
    }
    found
}

/// The longest key kept whole in a pointer: a longer one is cut (at a character boundary) and
/// marked with `…`, so that pointers stay short whatever the keys.
const POINTER_KEY_BYTES: usize = 64;

/// A key as a JSON pointer segment, cut to [`POINTER_KEY_BYTES`].
pub fn escape(key: &str) -> String {
    let key = if key.len() > POINTER_KEY_BYTES {
        let mut end = POINTER_KEY_BYTES;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}…", &key[..end])
    } else {
        key.to_owned()
    };
    key.replace('~', "~0").replace('/', "~1")
}

/// The most scalars listed from one layer.
const MAX_SCALARS: usize = 16_384;

/// What one decoder made of a text.
struct Decoded {
    step: &'static str,
    value: JsonValue,
    repaired: bool,
}

impl Decoded {
    fn structure(step: &'static str, value: JsonValue) -> Option<Self> {
        let structured = match &value {
            JsonValue::Object(object) => !object.is_empty(),
            JsonValue::Array(items) => !items.is_empty(),
            _ => false,
        };
        structured.then_some(Self {
            step,
            value,
            repaired: false,
        })
    }

    fn text(step: &'static str, text: String) -> Option<Self> {
        looks_like_document(&text).then_some(Self {
            step,
            value: JsonValue::String(text),
            repaired: false,
        })
    }
}

/// The first decoder that succeeds on `text`, within the budget. XML held by a string inside a
/// layer (`in_layer`) becomes a text layer first (`xml`), where the SOAP parser reads it, and its
/// element tree one decode further (`elements`).
fn decode(text: &str, spent: &mut Spent, in_layer: bool) -> Option<Decoded> {
    if spent.strings >= Budget::STRINGS || spent.decoded_bytes >= Budget::DECODED_BYTES {
        return None;
    }
    let text = text.trim_start_matches('\u{FEFF}').trim();
    if text.len() < Budget::SHORTEST {
        return None;
    }
    spent.strings += 1;
    // Every attempt is charged, whether a decoder succeeds or not: the text read, and whatever a
    // decoder produced on the way (an inflated body that turned out not to be text included).
    let mut produced = 0;
    let room = Budget::DECODED_BYTES - spent.decoded_bytes;
    let decoded = decode_text(text, room, in_layer, &mut produced);
    spent.decoded_bytes = spent
        .decoded_bytes
        .saturating_add(text.len())
        .saturating_add(produced);
    decoded
}

fn decode_text(text: &str, room: usize, in_layer: bool, produced: &mut usize) -> Option<Decoded> {
    let first = text.as_bytes()[0];
    let json_like = matches!(first, b'{' | b'[');
    if json_like && storable::text_depth(text) <= MAX_DEPTH {
        if let Ok(value) = serde_json::from_str::<JsonValue>(text) {
            return Decoded::structure("json", value);
        }
    }
    // JSON whose quotes and spaces were percent-encoded and whose brackets were not (`escape()`,
    // some relays): `{%22chat%22:%20…`.
    let percent_quoted = json_like && text.contains("%22");
    if percent_quoted || first == b'%' {
        if let Some(decoded) = percent(text) {
            *produced += decoded.len();
            return Decoded::text("percent", decoded);
        }
    }
    if json_like || text.starts_with("//") || text.starts_with("/*") {
        if let Some(decoded) = json(text) {
            return Some(decoded);
        }
    }
    if first == b'"' {
        if let Ok(inner) = serde_json::from_str::<String>(text) {
            return Some(Decoded {
                step: "json_string",
                value: JsonValue::String(inner),
                repaired: false,
            });
        }
    }
    // XML whose attribute quotes are escaped reads as XML with broken attributes: unescaped first.
    let escaped_quotes = ["=&quot;", "=&#34;", "=&#x22;"]
        .iter()
        .any(|quote| text.contains(quote));
    if first == b'<' && !escaped_quotes {
        if let Some(tree) = xml(text) {
            if in_layer {
                return Some(Decoded {
                    step: "xml",
                    value: JsonValue::String(text.to_owned()),
                    repaired: false,
                });
            }
            return Decoded::structure("elements", tree);
        }
    }
    if text.contains('&') && ENTITIES.iter().any(|entity| text.contains(entity)) {
        if let Ok(unescaped) = quick_xml::escape::unescape(text) {
            if unescaped != text {
                return Decoded::text("html_entities", unescaped.into_owned());
            }
        }
    }
    if let Some(form) = form(text) {
        return Decoded::structure("form", form);
    }
    if let Some((step, decoded)) = base64_text(text, room, produced) {
        return Decoded::text(step, decoded);
    }
    if text.contains('\n') {
        if let Some(document) = yaml(text) {
            return Decoded::structure("yaml", document);
        }
    }
    crate::extract::key_values(text).and_then(|pairs| Decoded::structure("key_values", pairs))
}

/// Percent-encoded text, decoded; a literal `+` is a space (every percent-encoder writes a `+`
/// itself as `%2B`). `None` unless the result is UTF-8 and differs.
fn percent(text: &str) -> Option<String> {
    let spaced = text.replace('+', " ");
    let decoded = percent_encoding::percent_decode_str(&spaced)
        .decode_utf8()
        .ok()?;
    (decoded != text).then(|| decoded.into_owned())
}

/// Entities that mark text escaped for HTML or XML.
const ENTITIES: [&str; 5] = ["&quot;", "&#34;", "&#x22;", "&lt;", "&amp;"];

/// Text that may hold a document: worth another decode.
fn looks_like_document(text: &str) -> bool {
    let text = text.trim_start_matches('\u{FEFF}').trim_start();
    text.starts_with(['{', '[', '<', '"', '%']) || text.contains(['=', ':'])
}

/// JSON that is not strict JSON: with its `//` and `/* */` comments taken out; then, unless the
/// text is escaped for HTML (the entities decoder reads that), the repairer.
fn json(text: &str) -> Option<Decoded> {
    if storable::text_depth(text) > MAX_DEPTH {
        return None;
    }
    let mut stripped = None;
    if text.contains("//") || text.contains("/*") {
        let mut without = String::with_capacity(text.len());
        if json_comments::StripComments::new(text.as_bytes())
            .read_to_string(&mut without)
            .is_ok()
        {
            if let Ok(value) = serde_json::from_str::<JsonValue>(&without) {
                return Decoded::structure("jsonc", value);
            }
            stripped = Some(without);
        }
    }
    if ENTITIES.iter().any(|entity| text.contains(entity)) {
        return None;
    }
    let mut repaired = Decoded::structure(
        "json_repaired",
        crate::heal::repair(stripped.as_deref().unwrap_or(text))?,
    )?;
    repaired.repaired = true;
    Some(repaired)
}

/// `key=value&…` (after a URL's `?`): an object of the pairs, when every pair has a key. A form is
/// one token (it encodes spaces); prose with an equals sign is not a form.
fn form(text: &str) -> Option<JsonValue> {
    if !text.contains('=') || text.contains(char::is_whitespace) {
        return None;
    }
    let query = match text.split_once('?') {
        Some((before, after)) if !before.contains('=') => after,
        _ => text,
    };
    let mut object = Map::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        if key.is_empty() {
            return None;
        }
        object.insert(key.into_owned(), JsonValue::String(value.into_owned()));
    }
    // One pair is a form when its value could be a document (`payload=…`).
    let worth = object.len() >= 2
        || object
            .values()
            .any(|value| value.as_str().is_some_and(|value| value.len() >= 16));
    worth.then_some(JsonValue::Object(object))
}

/// Base64 text, decoded, and decompressed when the bytes are gzip, zlib or raw deflate; `None`
/// unless the result is UTF-8. At most `room` bytes are produced.
fn base64_text(text: &str, room: usize, produced: &mut usize) -> Option<(&'static str, String)> {
    let compact: String = text
        .chars()
        .filter(|ch| !matches!(ch, '\r' | '\n'))
        .collect();
    if compact.len() < Budget::SHORTEST_BASE64 || compact.len() / 4 * 3 > room {
        return None;
    }
    let standard = compact
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'+' | b'/' | b'='));
    let url_safe = compact
        .bytes()
        .all(|byte| byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'='));
    let config = GeneralPurposeConfig::new()
        .with_decode_padding_mode(DecodePaddingMode::Indifferent)
        .with_decode_allow_trailing_bits(true);
    let bytes = if standard {
        GeneralPurpose::new(&alphabet::STANDARD, config).decode(&compact)
    } else if url_safe {
        GeneralPurpose::new(&alphabet::URL_SAFE, config).decode(&compact)
    } else {
        return None;
    }
    .ok()?;
    *produced += bytes.len();
    let mut inflated = |step: &'static str, reader: &mut dyn Read| {
        let mut out = Vec::new();
        let limit = u64::try_from(room).unwrap_or(u64::MAX).saturating_add(1);
        let read = reader.take(limit).read_to_end(&mut out);
        *produced += out.len();
        read.ok()?;
        if out.len() > room {
            return None;
        }
        Some((step, String::from_utf8(out).ok()?))
    };
    match bytes.as_slice() {
        [0x1f, 0x8b, ..] => inflated(
            "base64+gzip",
            &mut flate2::read::MultiGzDecoder::new(bytes.as_slice()),
        ),
        [cmf, flg, ..]
            if cmf & 0x0f == 8 && (u16::from(*cmf) * 256 + u16::from(*flg)) % 31 == 0 =>
        {
            inflated(
                "base64+zlib",
                &mut flate2::read::ZlibDecoder::new(bytes.as_slice()),
            )
        }
        _ => match String::from_utf8(bytes) {
            Ok(text) => Some(("base64", text)),
            Err(error) => {
                let bytes = error.into_bytes();
                inflated(
                    "base64+deflate",
                    &mut flate2::read::DeflateDecoder::new(bytes.as_slice()),
                )
            }
        },
    }
}

/// YAML as JSON, when it is a mapping or a list of two or more entries. Built from the parser's
/// events without recursion; aliases are not expanded (they read as null), so a "billion laughs"
/// document costs its own size.
fn yaml(text: &str) -> Option<JsonValue> {
    use yaml_rust2::{
        parser::{Event, Parser},
        scanner::TScalarStyle,
    };

    let first = text.lines().find(|line| !line.trim().is_empty())?.trim();
    let key_like = first.split_once(':').is_some_and(|(key, _)| {
        !key.is_empty() && !key.contains(' ') || key.starts_with(['"', '\''])
    });
    if !(key_like || first.starts_with("- ")) || storable::text_depth(text) > MAX_DEPTH {
        return None;
    }
    enum Open {
        Mapping(Map<String, JsonValue>, Option<String>),
        Sequence(Vec<JsonValue>),
    }
    let mut parser = Parser::new_from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut root: Option<JsonValue> = None;
    loop {
        let (event, _) = parser.next_token().ok()?;
        let value = match event {
            Event::StreamEnd | Event::DocumentEnd => break,
            Event::MappingStart(..) | Event::SequenceStart(..) => {
                if stack.len() >= MAX_DEPTH {
                    return None;
                }
                stack.push(if matches!(event, Event::MappingStart(..)) {
                    Open::Mapping(Map::new(), None)
                } else {
                    Open::Sequence(Vec::new())
                });
                continue;
            }
            Event::MappingEnd => match stack.pop()? {
                Open::Mapping(map, _) => JsonValue::Object(map),
                Open::Sequence(_) => return None,
            },
            Event::SequenceEnd => match stack.pop()? {
                Open::Sequence(items) => JsonValue::Array(items),
                Open::Mapping(..) => return None,
            },
            Event::Scalar(scalar, style, ..) => {
                if style == TScalarStyle::Plain {
                    yaml_plain(&scalar)
                } else {
                    JsonValue::String(scalar)
                }
            }
            Event::Alias(_) => JsonValue::Null,
            _ => continue,
        };
        match stack.last_mut() {
            None => {
                root = Some(value);
                break;
            }
            Some(Open::Sequence(items)) => items.push(value),
            Some(Open::Mapping(map, key)) => match key.take() {
                None => {
                    *key = Some(match value {
                        JsonValue::String(text) => text,
                        other => other.to_string(),
                    })
                }
                Some(name) => {
                    map.insert(name, value);
                }
            },
        }
    }
    let entries = match root.as_ref()? {
        JsonValue::Object(map) => map.len(),
        JsonValue::Array(items) => items.len(),
        _ => 0,
    };
    (entries >= 2).then_some(root?)
}

/// A plain YAML scalar: null, a boolean, an integer written as one, else text.
fn yaml_plain(scalar: &str) -> JsonValue {
    match scalar {
        "" | "~" | "null" | "Null" | "NULL" => JsonValue::Null,
        "true" | "True" | "TRUE" => JsonValue::Bool(true),
        "false" | "False" | "FALSE" => JsonValue::Bool(false),
        // An integer written as one (`418800213`, not `007` or `+14155550183`, which are ids
        // whose spelling matters); everything else stays text.
        _ => match scalar.parse::<i64>() {
            Ok(integer) if integer.to_string() == scalar => JsonValue::from(integer),
            _ => JsonValue::String(scalar.to_owned()),
        },
    }
}

/// The most elements read from one XML text.
const MAX_XML_ELEMENTS: usize = 10_000;

/// XML as an object: `{root: {child: "text", list: ["a", "b"], …}}` by local names, text and
/// CDATA as strings (an element with children and text keeps its text under `#text`). Attributes
/// are left out. `None` when the text is not well-formed, nests past half of [`MAX_DEPTH`] (a
/// repeated element adds a list level) or holds more than [`MAX_XML_ELEMENTS`] elements.
fn xml(text: &str) -> Option<JsonValue> {
    use quick_xml::{events::Event, Reader};

    struct Open {
        name: String,
        children: Map<String, JsonValue>,
        text: String,
    }
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Open> = Vec::new();
    let mut elements = 0usize;
    let mut root: Option<JsonValue> = None;
    loop {
        let event = reader.read_event().ok()?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(start) | Event::Empty(start) => {
                elements += 1;
                // A repeated element becomes a list: two levels of JSON per element at most.
                if elements > MAX_XML_ELEMENTS || stack.len() >= MAX_DEPTH / 2 {
                    return None;
                }
                let name = start.local_name().into_inner().to_owned();
                stack.push(Open {
                    name,
                    children: Map::new(),
                    text: String::new(),
                });
                if !empty {
                    continue;
                }
            }
            // Text outside the root element (the line breaks around it) is nothing.
            Event::Text(text) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&text.xml10_content());
                }
                continue;
            }
            Event::CData(cdata) => {
                if let Some(open) = stack.last_mut() {
                    open.text.push_str(&cdata.xml10_content());
                }
                continue;
            }
            Event::GeneralRef(reference) => {
                let open = stack.last_mut()?;
                let resolved = match reference.resolve_char_ref().ok()? {
                    Some(ch) => ch.to_string(),
                    None => quick_xml::escape::resolve_predefined_entity(&reference)?.to_owned(),
                };
                open.text.push_str(&resolved);
                continue;
            }
            Event::End(_) => {}
            Event::Eof => break,
            _ => continue,
        }
        // An element closed.
        let open = stack.pop()?;
        let text = open.text.trim();
        let value = if open.children.is_empty() {
            JsonValue::String(text.to_owned())
        } else {
            let mut children = open.children;
            if !text.is_empty() {
                children.insert("#text".into(), JsonValue::String(text.to_owned()));
            }
            JsonValue::Object(children)
        };
        match stack.last_mut() {
            None => {
                root = Some(JsonValue::Object(Map::from_iter([(open.name, value)])));
                break;
            }
            Some(parent) => match parent.children.get_mut(&open.name) {
                Some(JsonValue::Array(items)) => items.push(value),
                Some(existing) => {
                    let first = existing.take();
                    *existing = JsonValue::Array(vec![first, value]);
                }
                None => {
                    parent.children.insert(open.name, value);
                }
            },
        }
    }
    root
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
    use serde_json::json;

    use super::*;

    fn update() -> JsonValue {
        json!({"update_id": 1, "message": {"chat": {"id": 9}, "from": {"id": 9}, "text": "hi"}})
    }

    /// The first layer holding `wanted`, and its steps.
    fn find(payload: JsonValue, wanted: &JsonValue) -> Option<Vec<String>> {
        let mut layers = Layers::new(payload);
        layers
            .all()
            .iter()
            .find(|layer| &layer.value == wanted)
            .map(|layer| layer.steps.clone())
    }

    fn gzip(text: &str) -> Vec<u8> {
        let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap()
    }

    #[test]
    fn a_document_is_found_under_any_key_in_any_encoding() {
        let body = update().to_string();
        let pubsub = json!({"message": {"data": STANDARD.encode(&body), "messageId": "1"}, "subscription": "s"});
        assert_eq!(
            find(pubsub, &update()).unwrap(),
            ["/message/data: base64", "json"]
        );
        let sns = json!({"Type": "Notification", "Message": body, "TopicArn": "arn:aws:sns:x"});
        assert_eq!(find(sns, &update()).unwrap(), ["/Message: json"]);
        let logs = json!({"awslogs": {"data": STANDARD.encode(gzip(&body))}});
        assert_eq!(
            find(logs, &update()).unwrap(),
            ["/awslogs/data: base64+gzip", "json"]
        );
        let url_safe = json!({"blob": URL_SAFE_NO_PAD.encode(&body)});
        assert_eq!(
            find(url_safe, &update()).unwrap(),
            ["/blob: base64", "json"]
        );
        let thrice = serde_json::to_string(&serde_json::to_string(&body).unwrap()).unwrap();
        assert_eq!(
            find(JsonValue::String(thrice), &update()).unwrap(),
            ["json_string", "json_string", "json"]
        );
        let query = format!(
            "https://relay.example/hook?sig=abc&payload={}",
            urlencode(&body)
        );
        let steps = find(JsonValue::String(query), &update()).unwrap();
        assert_eq!(steps, ["form", "/payload: json"]);
        let percent = JsonValue::String(urlencode(&body));
        assert_eq!(find(percent, &update()).unwrap(), ["percent", "json"]);
        let quotes_only = JsonValue::String(body.replace('"', "%22"));
        assert_eq!(find(quotes_only, &update()).unwrap(), ["percent", "json"]);
        let entities = JsonValue::String(body.replace('"', "&#34;"));
        assert_eq!(
            find(entities, &update()).unwrap(),
            ["html_entities", "json"]
        );
        let commented = JsonValue::String(format!(
            "// relayed\n{}",
            body.replacen('{', "{ /* a note */", 1)
        ));
        assert_eq!(find(commented, &update()).unwrap(), ["jsonc"]);
        let in_xml = JsonValue::String(format!(
            "<hook><at>1</at><payload><![CDATA[{body}]]></payload></hook>"
        ));
        assert_eq!(
            find(in_xml, &update()).unwrap(),
            ["elements", "/hook/payload: json"]
        );
    }

    #[test]
    fn yaml_reads_nested_mappings_and_does_not_expand_aliases() {
        let text =
            "update_id: 1\nmessage:\n  chat:\n    id: 9\n  from:\n    id: 9\n  text: \"hi\"\n";
        assert_eq!(
            find(JsonValue::String(text.into()), &update()).unwrap(),
            ["yaml"]
        );
        let laughs = "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a, *a, *a]\nc: [*b, *b, *b, *b, *b, *b, *b, *b]\n";
        let value = yaml(laughs).unwrap();
        assert_eq!(
            value["c"],
            json!([null, null, null, null, null, null, null, null])
        );
    }

    #[test]
    fn ids_and_prose_are_not_layers_and_a_bomb_is_refused() {
        // Salesforce ids, Telegram file ids and words are base64 characters, but decode to bytes
        // that are not a document.
        for text in [
            "500000000000001AAA",
            "AgACAgIAAxkBAAIBQ2ZmZmZmZmZmZmZmZmZm",
            "Where is my order?",
        ] {
            let mut spent = Spent::default();
            assert!(decode(text, &mut spent, true).is_none(), "{text}");
        }
        let bomb = STANDARD.encode(gzip(&"0".repeat(Budget::DECODED_BYTES + 1)));
        let mut spent = Spent::default();
        assert!(decode(&bomb, &mut spent, true).is_none());
        // A document nested deeper than the limit is not read.
        let deep = JsonValue::String(format!(
            "{}1{}",
            "[".repeat(MAX_DEPTH + 1),
            "]".repeat(MAX_DEPTH + 1)
        ));
        assert_eq!(Layers::new(deep).all().len(), 1);
    }

    #[test]
    fn the_search_stops_at_its_budgets() {
        let mut nested = update();
        for _ in 0..Budget::DECODES + 2 {
            nested = JsonValue::String(nested.to_string());
        }
        assert!(find(nested, &update()).is_none());
        let many: Vec<JsonValue> = (0..200)
            .map(|i| json!({"body": json!({"n": i, "m": 1}).to_string()}))
            .collect();
        let mut layers = Layers::new(JsonValue::Array(many));
        assert_eq!(layers.all().len(), Budget::LAYERS);
    }

    fn urlencode(text: &str) -> String {
        form_urlencoded::byte_serialize(text.as_bytes()).collect()
    }
}
