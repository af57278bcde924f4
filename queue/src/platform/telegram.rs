//! Telegram Bot API webhooks: the `X-Telegram-Bot-Api-Secret-Token` header must equal the
//! source's `secret_token`; one update per body, deduped on `update_id`; answered 200, empty.

use http::HeaderMap;
use serde_json::Value as JsonValue;

use super::{header, id_text, secret, secure_eq, unparsed, Accepted, Ack, InboundEvent, Rejected};

pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

#[deny(dead_code)]
pub(super) const SPEC: super::Spec = super::Spec {
    name: "telegram",
    secrets: &[("secret_token", super::MIN_SECRET_LEN)],
    check_secrets: super::nothing_more,
    keys: super::no_keys,
    accept: |verifier, headers, body, _| accept(verifier.secrets(), headers, body),
    to_canonical,
    aliases: &[
        ("msg", "message"),
        ("update", "update_id"),
        ("id_update", "update_id"),
        ("conversation", "chat"),
        ("user", "from"),
        ("sender", "from"),
        ("body", "text"),
        ("content", "text"),
        ("timestamp", "date"),
    ],
    reply: Some(super::ReplyApi {
        credentials: &["bot_token"],
        default_base: "https://api.telegram.org",
        base_variable: "SENTINEL_TELEGRAM_API_BASE",
        address: reply_address,
        send_address,
        request: reply_request,
        sent_id: "/result/message_id",
        typing: Some(typing_request),
    }),
};

/// `chat_id` = the conversation; `reply_to_message_id` = the message answered.
fn send_address(conversation: &str, reply_to: Option<&str>) -> JsonValue {
    serde_json::json!({"chat_id": conversation, "reply_to_message_id": reply_to})
}

/// `chat_id` = conversation_id; `reply_to_message_id` = `message.message_id`.
fn reply_address(
    _: &crate::canonical::CanonicalMessage,
    conversation: &str,
    update: &JsonValue,
) -> Result<JsonValue, String> {
    Ok(serde_json::json!({
        "chat_id": conversation,
        "reply_to_message_id": super::text_at(update, "/message/message_id"),
    }))
}

/// `sendChatAction` with `typing`: Telegram shows it for 5 s, or until the bot's next message.
fn typing_request(typing: &super::Outgoing<'_>) -> Option<super::OutgoingRequest> {
    Some(super::OutgoingRequest {
        url: format!(
            "{}/bot{}/sendChatAction",
            typing.base,
            typing.credential("bot_token")
        ),
        bearer: None,
        body: serde_json::json!({"chat_id": chat_id(typing.address), "action": "typing"}),
    })
}

/// The address's `chat_id`: Telegram's chat ids are integers; a username (`@channel`) stays a
/// string.
fn chat_id(address: &JsonValue) -> JsonValue {
    let chat_id = address.get("chat_id").cloned().unwrap_or(JsonValue::Null);
    chat_id
        .as_str()
        .and_then(|id| id.parse::<i64>().ok())
        .map_or(chat_id, JsonValue::from)
}

/// `sendMessage`, as a reply to the message when its id is known.
fn reply_request(reply: &super::Outgoing<'_>) -> super::OutgoingRequest {
    let mut body = serde_json::json!({"chat_id": chat_id(reply.address), "text": reply.text});
    if let Some(message_id) = reply
        .address
        .get("reply_to_message_id")
        .and_then(JsonValue::as_str)
        .and_then(|id| id.parse::<i64>().ok())
    {
        body["reply_parameters"] =
            serde_json::json!({"message_id": message_id, "allow_sending_without_reply": true});
    }
    super::OutgoingRequest {
        url: format!(
            "{}/bot{}/sendMessage",
            reply.base,
            reply.credential("bot_token")
        ),
        bearer: None,
        body,
    }
}

pub fn accept(secrets: &JsonValue, headers: &HeaderMap, body: &[u8]) -> Result<Accepted, Rejected> {
    let expected = secret(secrets, "secret_token")?;
    let given = header(headers, SECRET_HEADER)?;
    if !secure_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(Rejected::Unauthenticated(format!(
            "{SECRET_HEADER} does not match"
        )));
    }
    let event = match serde_json::from_slice::<JsonValue>(body) {
        Ok(update) => match update.get("update_id").and_then(id_text) {
            Some(update_id) => InboundEvent {
                dedupe_key: update_id,
                payload: Some(update),
            },
            None => InboundEvent {
                payload: Some(update),
                ..unparsed(body)
            },
        },
        Err(_) => unparsed(body),
    };
    Ok(Accepted::Events {
        events: vec![event],
        ack: Ack::empty(),
    })
}

/// Telegram update → canonical message.
///
/// | canonical | Telegram |
/// |---|---|
/// | event_id | `update_id` |
/// | conversation_id | `message.chat.id` |
/// | sender_id / sender_name | `message.from.id` / `first_name` + `last_name` (or `username`); for a channel post, `sender_chat.id` / `sender_chat.title` |
/// | text | `message.text` or `message.caption` |
/// | event_type | `command` when the text starts with `/`, else `message`; `other` for updates without a message (a `callback_query`: its `message.chat.id`, `from.id` and `data`) |
/// | sent_at | `message.date` (unix) |
/// | reply_to | `message.reply_to_message.message_id` |
/// | attachments | the largest `photo`, `document`, `voice`, `audio`, `video`, `sticker` by `file_id` |
///
/// `edited_message`, `channel_post` and `edited_channel_post` are read like `message`.
pub fn to_canonical(
    update: &JsonValue,
) -> Result<crate::canonical::CanonicalMessage, super::AdaptError> {
    use super::{text_at, AdaptError};
    use crate::canonical::{unix_to_rfc3339, CanonicalMessage};

    let update_id = update
        .get("update_id")
        .and_then(id_text)
        .ok_or_else(|| AdaptError("update_id is missing or not a number".into()))?;
    let Some(message) = [
        "message",
        "edited_message",
        "channel_post",
        "edited_channel_post",
    ]
    .iter()
    .find_map(|field| update.get(*field).filter(|value| value.is_object())) else {
        let mut other = CanonicalMessage::new("telegram", "other");
        other.event_id = Some(update_id);
        other.conversation_id = text_at(update, "/callback_query/message/chat/id");
        other.sender_id = text_at(update, "/callback_query/from/id");
        other.text = text_at(update, "/callback_query/data");
        return Ok(other);
    };
    let chat_id = text_at(message, "/chat/id")
        .ok_or_else(|| AdaptError("message.chat.id is missing".into()))?;
    let text = message
        .get("text")
        .or_else(|| message.get("caption"))
        .and_then(JsonValue::as_str)
        .map(str::to_owned);
    let event_type = if text.as_deref().is_some_and(|t| t.starts_with('/')) {
        "command"
    } else {
        "message"
    };
    let mut canonical = CanonicalMessage::new("telegram", event_type);
    canonical.event_id = Some(update_id);
    canonical.conversation_id = Some(chat_id);
    // A channel post has no `from`; the channel (or an anonymous group admin) is `sender_chat`.
    canonical.sender_id =
        text_at(message, "/from/id").or_else(|| text_at(message, "/sender_chat/id"));
    canonical.sender_name = sender_name(message);
    canonical.text = text;
    canonical.sent_at = message.get("date").and_then(unix_to_rfc3339);
    canonical.reply_to = text_at(message, "/reply_to_message/message_id");
    canonical.attachments = attachments(message);
    Ok(canonical)
}

/// The sender's name: first and last name, else the username or the channel's title.
fn sender_name(message: &JsonValue) -> Option<String> {
    let first = message
        .pointer("/from/first_name")
        .and_then(JsonValue::as_str);
    let last = message
        .pointer("/from/last_name")
        .and_then(JsonValue::as_str);
    match (first, last) {
        (Some(first), Some(last)) => Some(format!("{first} {last}")),
        (Some(first), None) => Some(first.to_owned()),
        _ => ["/from/username", "/sender_chat/title"]
            .iter()
            .find_map(|pointer| message.pointer(pointer).and_then(JsonValue::as_str))
            .map(str::to_owned),
    }
}

/// The message's attachments: the largest photo, then a document, voice, audio, video or sticker.
fn attachments(message: &JsonValue) -> Vec<crate::canonical::Attachment> {
    use super::text_at;
    use crate::canonical::Attachment;

    let mut attachments = Vec::new();
    if let Some(largest) = message
        .get("photo")
        .and_then(JsonValue::as_array)
        .and_then(|sizes| sizes.last())
    {
        if let Some(id) = text_at(largest, "/file_id") {
            attachments.push(Attachment {
                kind: "image".into(),
                id,
                url: None,
                mime_type: None,
            });
        }
    }
    for (field, kind) in [
        ("document", "file"),
        ("voice", "audio"),
        ("audio", "audio"),
        ("video", "video"),
        ("sticker", "sticker"),
    ] {
        if let Some(item) = message.get(field) {
            if let Some(id) = text_at(item, "/file_id") {
                attachments.push(Attachment {
                    kind: kind.into(),
                    id,
                    url: None,
                    mime_type: text_at(item, "/mime_type"),
                });
            }
        }
    }
    attachments
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::platform::Platform;

    fn headers(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(SECRET_HEADER, token.parse().unwrap());
        headers
    }

    const UPDATE: &str = r#"{"update_id": 10000, "message": {"message_id": 1365, "date": 1441645532,
        "chat": {"id": 1111111, "type": "private", "first_name": "Test", "username": "Test"},
        "from": {"id": 1111111, "is_bot": false, "first_name": "Test", "username": "Test"},
        "text": "/start"}}"#;

    #[test]
    fn a_matching_secret_token_yields_one_event_keyed_by_update_id() {
        let secrets = json!({"secret_token": "s3cret"});
        let accepted = Platform::Telegram
            .accept(&secrets, &headers("s3cret"), UPDATE.as_bytes(), 0)
            .unwrap();
        let Accepted::Events { events, ack } = accepted else {
            panic!("expected events")
        };
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].dedupe_key, "10000");
        assert_eq!(
            events[0].payload.as_ref().unwrap()["message"]["text"],
            "/start"
        );
        assert_eq!(ack.body, "");
    }

    #[test]
    fn a_wrong_or_missing_token_is_refused() {
        let secrets = json!({"secret_token": "s3cret"});
        let wrong = Platform::Telegram.accept(&secrets, &headers("nope"), UPDATE.as_bytes(), 0);
        assert!(matches!(wrong, Err(Rejected::Unauthenticated(_))));
        let missing = Platform::Telegram.accept(&secrets, &HeaderMap::new(), UPDATE.as_bytes(), 0);
        assert_eq!(
            missing,
            Err(Rejected::Unauthenticated(
                "missing x-telegram-bot-api-secret-token header".into()
            ))
        );
    }

    #[test]
    fn a_signed_body_that_does_not_parse_is_kept_under_its_digest() {
        let secrets = json!({"secret_token": "s3cret"});
        let body = br#"{"update_id": 10001, "message": {"text": "hi""#;
        let Accepted::Events { events, .. } = Platform::Telegram
            .accept(&secrets, &headers("s3cret"), body, 0)
            .unwrap()
        else {
            panic!("expected events")
        };
        assert!(events[0].dedupe_key.starts_with("sha256:"));
        assert_eq!(events[0].payload, None);
    }
}
