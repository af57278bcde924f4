//! The generic extractor, for shapes no adapter knows (a flattened update, renamed fields, key/value
//! text): it scores the payload's key paths against the canonical fields and answers only when the
//! best score of every field it needs is held by one value. Otherwise the model step runs.
//!
//! | field | key paths, best first (names compared without case or separators) |
//! |---|---|
//! | `conversation_id` | `chat_id`, `conversation_id`, `channel_id`, `thread_id`, `room_id`; `id` under `chat`, `conversation`, `channel`, `thread`, `room`; then `chat`, `channel`, `conversation` holding an id |
//! | `sender_id` | `from_id`, `sender_id`, `user_id`, `author_id`; `id` under `from`, `sender`, `user`, `author`; then `from`, `sender`, `user`, `author` holding an id |
//! | `sender_name` | `sender_name`, `from_name`, `author_name`, `display_name`, `user_name`; `name`, `first_name`, `username` under `from`, `sender`, `user`, `author`; then `from`, `sender`, `author`, `user` holding a name |
//! | `text` | `text`, `body`, `content`, `message`, `caption`, `msg`, and those after `message` or `msg` (`messageText`, `msg_body`), holding a string |
//! | `event_id` | `update_id`, `event_id`, `message_id`; then `id` at the top level |
//!
//! An id is a number, or a string of at most 64 characters with a digit and no spaces. A message
//! needs a `conversation_id` and a `text`; the rest is filled when unambiguous.

use serde_json::{Map, Value as JsonValue};

use crate::{
    canonical::CanonicalMessage,
    platform::{id_text, phone_id, Platform},
};

/// What the extractor read, and from where (a JSON pointer per field).
#[derive(Debug, Clone, PartialEq)]
pub struct Extracted {
    pub message: CanonicalMessage,
    pub sources: Vec<(&'static str, String)>,
}

/// The deepest key path the extractor looks at.
const MAX_PATH_DEPTH: usize = 8;

struct Leaf<'a> {
    pointer: String,
    key: String,
    parent: String,
    depth: usize,
    value: &'a JsonValue,
}

/// The message in `value`, when its fields are unambiguous. A payload that names no conversation
/// but one sender (an SMS or a WhatsApp gateway's form: `From`, `msisdn`, `WaId`) is a direct
/// conversation with that sender, as on every platform that names people by their number.
pub fn extract(platform: Option<Platform>, value: &JsonValue) -> Option<Extracted> {
    let leaves = leaves(value);
    // WhatsApp names people by the digits of their number, however a gateway writes it.
    let id = |leaf: &Leaf| {
        let text = id_text(leaf.value)?;
        Some(match platform {
            Some(Platform::Whatsapp) => phone_id(&text),
            _ => text,
        })
    };
    let text = best(&leaves, text_score, |leaf| id_text(leaf.value))?.ok()?;
    let sender = best(&leaves, sender_id_score, id).and_then(Result::ok);
    let conversation = match best(&leaves, conversation_score, id) {
        Some(found) => found.ok()?,
        // A direct conversation only when nothing speaks of conversations at all: a list of
        // `channels`, or a `room_a` and a `room_b`, leave the choice open.
        None if !mentions_conversations(value) => sender.clone()?,
        None => return None,
    };
    let mut message =
        CanonicalMessage::new(platform.map_or("unknown", Platform::as_str), "message");
    let mut sources = vec![
        ("conversation_id", conversation.1.clone()),
        ("text", text.1.clone()),
    ];
    message.conversation_id = Some(conversation.0);
    message.text = Some(text.0);
    if let Some((found, pointer)) = sender {
        message.sender_id = Some(found);
        sources.push(("sender_id", pointer));
    }
    for (field, score) in [
        ("sender_name", sender_name_score as fn(&Leaf) -> u8),
        ("event_id", event_id_score),
    ] {
        if let Some(Ok((found, pointer))) = best(&leaves, score, |leaf| id_text(leaf.value)) {
            match field {
                "sender_name" => message.sender_name = Some(found),
                _ => message.event_id = Some(found),
            }
            sources.push((field, pointer));
        }
    }
    if message
        .text
        .as_deref()
        .is_some_and(|text| text.starts_with('/'))
    {
        message.event_type = "command".into();
    }
    Some(Extracted { message, sources })
}

/// Whether any key in `value` (lists included) speaks of a conversation: `chats`, `channel_ids`,
/// `room_a`.
fn mentions_conversations(value: &JsonValue) -> bool {
    let mut stack = vec![(value, 0usize)];
    while let Some((node, depth)) = stack.pop() {
        match node {
            JsonValue::Object(object) if depth < MAX_PATH_DEPTH => {
                for (key, child) in object {
                    if speaks_of_conversations(&normalize(key)) {
                        return true;
                    }
                    stack.push((child, depth + 1));
                }
            }
            JsonValue::Array(items) if depth < MAX_PATH_DEPTH => {
                stack.extend(items.iter().map(|item| (item, depth + 1)));
            }
            _ => {}
        }
    }
    false
}

/// A normalised key that names one or more conversations: a conversation word, plural or with
/// `id`/`ids` (`channels`, `chat_ids`), after a qualifier (`source_chat`, `target_room_id`), or
/// before one letter or digit (`room_a`, `thread2`). Not `thread_ts`, `chatbot` or `room_type`.
fn speaks_of_conversations(key: &str) -> bool {
    let key = ["ids", "id", "s"]
        .iter()
        .find_map(|suffix| key.strip_suffix(suffix).filter(|rest| !rest.is_empty()))
        .unwrap_or(key);
    CONVERSATIONS.iter().any(|word| {
        key.ends_with(word) || key.strip_prefix(word).is_some_and(|rest| rest.len() == 1)
    })
}
/// Whether `value` names `conversation_id` as its conversation without doubt: the leaves with the
/// best conversation score (a `chat_id`, a `channel`, a `thread.id`, …) all hold it. False when no
/// key names a conversation, or when another value scores as well: then a step that chose it (the
/// model) guessed, and its heal is marked `low`.
pub fn names_conversation(value: &JsonValue, conversation_id: &str) -> bool {
    let leaves = leaves(value);
    let scored: Vec<(u8, &Leaf)> = leaves
        .iter()
        .map(|leaf| (conversation_score(leaf), leaf))
        .collect();
    let top = scored.iter().map(|(score, _)| *score).max().unwrap_or(0);
    top > 0
        && scored
            .iter()
            .filter(|(score, _)| *score == top)
            .all(|(_, leaf)| id_text(leaf.value).as_deref() == Some(conversation_id))
}

/// Where `message`'s fields sit in `value`, for the heal trace of an adapter's or repair's message:
/// the JSON pointer of the leaf that holds each field's value. Where the value appears more than
/// once (a private chat's id is also its sender's), the leaf whose key names the field best is
/// taken, then the first. A field made of several leaves (a first and a last name) has none.
pub fn locate(value: &JsonValue, message: &CanonicalMessage) -> Vec<(&'static str, String)> {
    let leaves = leaves(value);
    type Score = fn(&Leaf) -> u8;
    let fields: [(&'static str, Option<&str>, Score); 5] = [
        (
            "conversation_id",
            message.conversation_id.as_deref(),
            conversation_score,
        ),
        ("sender_id", message.sender_id.as_deref(), sender_id_score),
        (
            "sender_name",
            message.sender_name.as_deref(),
            sender_name_score,
        ),
        ("text", message.text.as_deref(), text_score),
        ("event_id", message.event_id.as_deref(), event_id_score),
    ];
    let mut located = Vec::new();
    for (field, wanted, score) in fields {
        let Some(wanted) = wanted else { continue };
        let mut best: Option<(&Leaf, u8)> = None;
        for leaf in leaves
            .iter()
            .filter(|leaf| id_text(leaf.value).as_deref() == Some(wanted))
        {
            let points = score(leaf);
            if best.is_none_or(|(_, top)| points > top) {
                best = Some((leaf, points));
            }
        }
        if let Some((leaf, _)) = best {
            located.push((field, leaf.pointer.clone()));
        }
    }
    located
}

/// `key: value` or `key=value` lines (two or more) as a flat object, for payloads that are text.
pub fn key_values(text: &str) -> Option<JsonValue> {
    let mut object = Map::new();
    for line in text.lines().map(str::trim).filter(|line| !line.is_empty()) {
        let (key, value) = line
            .split_once(": ")
            .or_else(|| line.split_once('='))
            .or_else(|| line.split_once(':'))?;
        let key = key.trim().trim_matches('"');
        if key.is_empty() || key.len() > 64 || key.contains(' ') && key.split(' ').count() > 3 {
            return None;
        }
        object.insert(
            key.to_owned(),
            JsonValue::String(value.trim().trim_matches('"').to_owned()),
        );
    }
    (object.len() >= 2).then_some(JsonValue::Object(object))
}

/// The value with the best positive score and its pointer: `None` when no leaf scores,
/// `Some(Err(()))` when more than one value holds the best score (a guess would be needed).
fn best(
    leaves: &[Leaf],
    score: impl Fn(&Leaf) -> u8,
    text: impl Fn(&Leaf) -> Option<String>,
) -> Option<Result<(String, String), ()>> {
    let top = leaves.iter().map(&score).max().filter(|top| *top > 0)?;
    let mut found: Option<(String, String)> = None;
    for leaf in leaves.iter().filter(|leaf| score(leaf) == top) {
        let Some(value) = text(leaf) else {
            return Some(Err(()));
        };
        match &found {
            Some((seen, _)) if *seen != value => return Some(Err(())),
            Some(_) => {}
            None => found = Some((value, leaf.pointer.clone())),
        }
    }
    found.map(Ok)
}

fn leaves(value: &JsonValue) -> Vec<Leaf<'_>> {
    let mut leaves = Vec::new();
    let mut stack = vec![(String::new(), String::new(), String::new(), 0usize, value)];
    while let Some((pointer, key, parent, depth, node)) = stack.pop() {
        match node {
            JsonValue::Object(object) if depth < MAX_PATH_DEPTH => {
                // Reversed onto the stack, so leaves come out in document order.
                for (child_key, child) in object.iter().rev() {
                    stack.push((
                        format!("{pointer}/{}", crate::decode::escape(child_key)),
                        meaning(&normalize(child_key)),
                        key.clone(),
                        depth + 1,
                        child,
                    ));
                }
            }
            JsonValue::String(_) | JsonValue::Number(_) => leaves.push(Leaf {
                pointer,
                key,
                parent,
                depth,
                value: node,
            }),
            _ => {}
        }
    }
    leaves
}

/// What a key means, once spelling is set aside: a synonym's canonical name (`WaId`, `msisdn`:
/// a sender's id; `ProfileName`: a sender's name), or the key without the platform or message
/// prefix or suffix a pipeline put on it (`tg_chat_id`, `msg_text`, `text_msg`), when what is left
/// is a key the extractor knows. Compared after [`normalize`].
fn meaning(key: &str) -> String {
    let known = |key: &str| {
        KNOWN.contains(&key)
            || ["message", "msg"].iter().any(|prefix| {
                key.strip_prefix(prefix)
                    .is_some_and(|rest| TEXTS.contains(&rest))
            })
    };
    if let Some((_, canonical)) = SYNONYMS.iter().find(|(synonym, _)| *synonym == key) {
        return (*canonical).to_owned();
    }
    if known(key) {
        return key.to_owned();
    }
    let mut stripped = key;
    for _ in 0..3 {
        let rest = AFFIXES.iter().find_map(|affix| {
            stripped
                .strip_prefix(affix)
                .or_else(|| stripped.strip_suffix(affix))
                .filter(|rest| rest.len() >= 2 && *rest != "id")
        });
        let Some(rest) = rest else { break };
        if let Some((_, canonical)) = SYNONYMS.iter().find(|(synonym, _)| *synonym == rest) {
            return (*canonical).to_owned();
        }
        if known(rest) {
            return rest.to_owned();
        }
        stripped = rest;
    }
    key.to_owned()
}

/// Prefixes and suffixes that add nothing to a key's meaning: platform names and `msg`/`message`.
const AFFIXES: [&str; 13] = [
    "telegram",
    "whatsapp",
    "salesforce",
    "standard",
    "slack",
    "twilio",
    "message",
    "sms",
    "msg",
    "std",
    "tg",
    "wa",
    "sf",
];

/// Keys that mean another, normalised: `(synonym, canonical)`.
const SYNONYMS: [(&str, &str); 9] = [
    ("waid", "senderid"),
    ("msisdn", "senderid"),
    ("phonenumber", "senderid"),
    ("fromnumber", "senderid"),
    ("sendernumber", "senderid"),
    ("senderphone", "senderid"),
    ("profilename", "sendername"),
    ("groupid", "chatid"),
    ("dialogid", "chatid"),
];

/// The keys the scores below know, normalised.
const KNOWN: [&str; 32] = [
    "chatid",
    "conversationid",
    "channelid",
    "threadid",
    "roomid",
    "chat",
    "conversation",
    "channel",
    "thread",
    "room",
    "fromid",
    "senderid",
    "userid",
    "authorid",
    "from",
    "sender",
    "user",
    "author",
    "sendername",
    "fromname",
    "authorname",
    "displayname",
    "username",
    "text",
    "body",
    "content",
    "message",
    "caption",
    "msg",
    "updateid",
    "eventid",
    "messageid",
];

fn normalize(key: &str) -> String {
    key.chars()
        .filter(|ch| !matches!(ch, '_' | '-' | ' ' | '.'))
        .flat_map(char::to_lowercase)
        .collect()
}

fn is_id(value: &JsonValue) -> bool {
    match value {
        JsonValue::Number(_) => true,
        JsonValue::String(text) => {
            !text.is_empty()
                && text.len() <= 64
                && text.chars().any(|ch| ch.is_ascii_digit())
                && !text.contains(char::is_whitespace)
        }
        _ => false,
    }
}

fn is_name(value: &JsonValue) -> bool {
    value.as_str().is_some_and(|text| {
        !text.trim().is_empty()
            && text.len() <= 80
            && !text.chars().any(|ch| ch.is_ascii_digit())
            && text.split_whitespace().count() <= 4
    })
}

const CONVERSATIONS: [&str; 5] = ["chat", "conversation", "channel", "thread", "room"];
const SENDERS: [&str; 4] = ["from", "sender", "user", "author"];

fn conversation_score(leaf: &Leaf) -> u8 {
    if !is_id(leaf.value) {
        return 0;
    }
    let key = leaf.key.as_str();
    if CONVERSATIONS.iter().any(|name| key == format!("{name}id"))
        || (key == "id" && CONVERSATIONS.contains(&leaf.parent.as_str()))
    {
        3
    } else if CONVERSATIONS.contains(&key) {
        2
    } else {
        0
    }
}

fn sender_id_score(leaf: &Leaf) -> u8 {
    if !is_id(leaf.value) {
        return 0;
    }
    let key = leaf.key.as_str();
    if SENDERS.iter().any(|name| key == format!("{name}id"))
        || (key == "id" && SENDERS.contains(&leaf.parent.as_str()))
    {
        3
    } else if SENDERS.contains(&key) {
        // `sender: "u-881"`: the sender given as its id.
        2
    } else {
        0
    }
}

fn sender_name_score(leaf: &Leaf) -> u8 {
    if !is_name(leaf.value) {
        return 0;
    }
    let key = leaf.key.as_str();
    if [
        "sendername",
        "fromname",
        "authorname",
        "displayname",
        "username",
    ]
    .contains(&key)
    {
        3
    } else if ["name", "firstname", "username", "displayname"].contains(&key)
        && SENDERS.contains(&leaf.parent.as_str())
    {
        2
    } else if SENDERS.contains(&key) {
        1
    } else {
        0
    }
}

fn text_score(leaf: &Leaf) -> u8 {
    let is_text = leaf
        .value
        .as_str()
        .is_some_and(|text| !text.trim().is_empty());
    if !is_text {
        return 0;
    }
    let key = leaf.key.as_str();
    if TEXTS.contains(&key)
        || ["message", "msg"].iter().any(|prefix| {
            key.strip_prefix(prefix)
                .is_some_and(|rest| TEXTS.contains(&rest))
        })
    {
        // `text`, or `messageText` / `msg_body` / `message-content`.
        3
    } else {
        0
    }
}

const TEXTS: [&str; 6] = ["text", "body", "content", "message", "caption", "msg"];

fn event_id_score(leaf: &Leaf) -> u8 {
    if !is_id(leaf.value) {
        return 0;
    }
    match leaf.key.as_str() {
        "updateid" | "eventid" | "messageid" => 2,
        "id" if leaf.depth == 1 => 1,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn flattened_and_renamed_shapes_are_read_with_their_sources() {
        let flat = json!({"update_id": 815, "chat_id": 418800213.0, "sender": {"id": 7, "name": "Bo Li"}, "content": "where is my order?"});
        let extracted = extract(Some(Platform::Telegram), &flat).unwrap();
        let message = &extracted.message;
        assert_eq!(message.conversation_id.as_deref(), Some("418800213"));
        assert_eq!(message.sender_id.as_deref(), Some("7"));
        assert_eq!(message.sender_name.as_deref(), Some("Bo Li"));
        assert_eq!(message.text.as_deref(), Some("where is my order?"));
        assert_eq!(message.event_id.as_deref(), Some("815"));
        assert!(extracted
            .sources
            .contains(&("conversation_id", "/chat_id".into())));
        assert!(extracted.sources.contains(&("text", "/content".into())));
    }

    #[test]
    fn a_conversation_is_named_only_by_a_key_that_says_so_and_no_rival() {
        let clear = json!({"chat": {"id": 7}, "from": {"id": 9}, "text": "hi"});
        assert!(names_conversation(&clear, "7"));
        assert!(!names_conversation(&clear, "9"));
        // The drift corpus's guess cases: no key names a room, or two threads do.
        let rooms =
            json!({"room_a": {"id": "r-1"}, "room_b": {"id": "r-2"}, "text": "order #4521?"});
        assert!(!names_conversation(&rooms, "r-1"));
        let threads = json!({"thread_id": "t-1", "conversation_id": "t-2", "text": "which?"});
        assert!(!names_conversation(&threads, "t-1"));
        assert!(!names_conversation(&json!({"ids": ["a-1", "a-2"]}), "a-1"));
    }

    #[test]
    fn ambiguous_or_missing_fields_are_left_to_the_model() {
        // Two conversations with the same score: no guess.
        let two = json!({"chat_id": 1, "channel_id": 2, "text": "hi"});
        assert_eq!(extract(None, &two), None);
        // Two texts that differ.
        let texts = json!({"chat_id": 1, "a": {"text": "one"}, "b": {"text": "two"}});
        assert_eq!(extract(None, &texts), None);
        // No text at all.
        assert_eq!(extract(None, &json!({"chat_id": 1, "sender_id": 2})), None);
    }

    #[test]
    fn key_value_text_is_read() {
        let text = "chat_id: 42\nsender: Ada\nmessage: hello there";
        let value = key_values(text).unwrap();
        let message = extract(None, &value).unwrap().message;
        assert_eq!(message.conversation_id.as_deref(), Some("42"));
        assert_eq!(message.sender_name.as_deref(), Some("Ada"));
        assert_eq!(message.text.as_deref(), Some("hello there"));
        assert_eq!(key_values("just one line"), None);
        assert_eq!(
            key_values("Dear team,\nthe printer is broken. Regards"),
            None
        );
    }
}
