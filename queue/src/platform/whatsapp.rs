//! WhatsApp Cloud API webhooks: `X-Hub-Signature-256: sha256=hex(HMAC-SHA256(app_secret, body))`.
//! One body can carry many `entry[].changes[].value.messages[]` and `statuses[]`: one event per
//! message or status. A message is deduped on its id; a status on its message id and status, since
//! `sent`, `delivered` and `read` of one message share the id. The GET handshake is [`handshake`].

use http::HeaderMap;
use serde_json::{json, Value as JsonValue};

use super::{
    header, hmac_sha256, secret, secure_eq, unparsed, Accepted, Ack, InboundEvent, Rejected,
};

pub const SIGNATURE_HEADER: &str = "x-hub-signature-256";

#[deny(dead_code)]
pub(super) const SPEC: super::Spec = super::Spec {
    name: "whatsapp",
    secrets: &[
        ("app_secret", super::MIN_SECRET_LEN),
        ("verify_token", super::MIN_VERIFY_TOKEN_LEN),
    ],
    check_secrets: super::nothing_more,
    keys: super::no_keys,
    accept: |verifier, headers, body, _| accept(verifier.secrets(), headers, body),
    to_canonical,
    aliases: &[("msg", "message"), ("sender", "from"), ("ts", "timestamp")],
    reply: Some(super::ReplyApi {
        credentials: &["access_token", "phone_number_id"],
        default_base: "https://graph.facebook.com/v21.0",
        base_variable: "SENTINEL_WHATSAPP_API_BASE",
        address: reply_address,
        send_address,
        request: reply_request,
        sent_id: "/messages/0/id",
        typing: Some(typing_request),
    }),
};

/// `to` = the customer's number; `context_message_id` = the message answered (its `wamid`).
fn send_address(conversation: &str, reply_to: Option<&str>) -> JsonValue {
    json!({"to": conversation, "context_message_id": reply_to, "phone_number_id": null})
}

/// `to` = conversation_id (the customer's wa_id); `context_message_id` = event_id;
/// `phone_number_id` = `metadata.phone_number_id`.
fn reply_address(
    message: &crate::canonical::CanonicalMessage,
    conversation: &str,
    payload: &JsonValue,
) -> Result<JsonValue, String> {
    Ok(json!({
        "to": conversation,
        "context_message_id": message.event_id,
        "phone_number_id": super::text_at(payload, "/metadata/phone_number_id"),
    }))
}

/// A text message from the source's number (its credentials', else the one the webhook came to),
/// in context of the message it answers.
fn reply_request(reply: &super::Outgoing<'_>) -> super::OutgoingRequest {
    let phone_number_id = phone_number_id(reply);
    let mut body = json!({
        "messaging_product": "whatsapp",
        "recipient_type": "individual",
        "to": reply.address.get("to"),
        "type": "text",
        "text": {"preview_url": false, "body": reply.text},
    });
    if let Some(context_id) = reply
        .address
        .get("context_message_id")
        .filter(|id| id.is_string())
    {
        body["context"] = json!({ "message_id": context_id });
    }
    super::OutgoingRequest {
        url: format!("{}/{phone_number_id}/messages", reply.base),
        bearer: Some(reply.credential("access_token")),
        body,
    }
}

/// The number a reply is sent from: the source's credentials', else the one the webhook came to.
fn phone_number_id(reply: &super::Outgoing<'_>) -> String {
    Some(reply.credential("phone_number_id"))
        .filter(|id| !id.is_empty())
        .or_else(|| {
            reply
                .address
                .get("phone_number_id")
                .and_then(JsonValue::as_str)
                .map(str::to_owned)
        })
        .unwrap_or_default()
}

/// The Cloud API's typing indicator: the message answered is marked read and "typing…" shows
/// for up to 25 s, or until the reply. It needs that message's id (`context_message_id`): a
/// message sent through the API, which answers none, has no indicator.
fn typing_request(typing: &super::Outgoing<'_>) -> Option<super::OutgoingRequest> {
    let message_id = typing
        .address
        .get("context_message_id")
        .and_then(JsonValue::as_str)
        .filter(|id| !id.is_empty())?;
    Some(super::OutgoingRequest {
        url: format!("{}/{}/messages", typing.base, phone_number_id(typing)),
        bearer: Some(typing.credential("access_token")),
        body: json!({
            "messaging_product": "whatsapp",
            "status": "read",
            "message_id": message_id,
            "typing_indicator": {"type": "text"},
        }),
    })
}

/// The `X-Hub-Signature-256` value for `body`.
pub fn signature(app_secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(hmac_sha256(app_secret.as_bytes(), &[body]))
    )
}

/// Answers the subscription handshake (`GET ?hub.mode=subscribe&hub.verify_token=…&hub.challenge=…`):
/// the challenge to echo, or `None` (403).
pub fn handshake<'a>(
    secrets: &JsonValue,
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&'a str>,
) -> Option<&'a str> {
    let expected = secret(secrets, "verify_token").ok()?;
    let token_matches =
        verify_token.is_some_and(|given| secure_eq(given.as_bytes(), expected.as_bytes()));
    (mode == Some("subscribe") && token_matches).then_some(challenge?)
}

pub fn accept(secrets: &JsonValue, headers: &HeaderMap, body: &[u8]) -> Result<Accepted, Rejected> {
    let app_secret = secret(secrets, "app_secret")?;
    let given = header(headers, SIGNATURE_HEADER)?;
    if !secure_eq(given.as_bytes(), signature(app_secret, body).as_bytes()) {
        return Err(Rejected::Unauthenticated(format!(
            "{SIGNATURE_HEADER} does not match"
        )));
    }
    let events = match serde_json::from_slice::<JsonValue>(body) {
        Ok(payload) => {
            let events = fan_out(&payload);
            if events.is_empty() {
                vec![InboundEvent {
                    payload: Some(payload),
                    ..unparsed(body)
                }]
            } else {
                events
            }
        }
        Err(_) => vec![unparsed(body)],
    };
    Ok(Accepted::Events {
        events,
        ack: Ack::empty(),
    })
}

/// One event per message and per status, each carrying its context (the business account, the
/// phone number's metadata and the contacts) so it can be handled alone.
fn fan_out(payload: &JsonValue) -> Vec<InboundEvent> {
    let mut events = Vec::new();
    let object = payload.get("object").cloned().unwrap_or(JsonValue::Null);
    for entry in as_array(payload.get("entry")) {
        for change in as_array(entry.get("changes")) {
            let value = change.get("value").cloned().unwrap_or(JsonValue::Null);
            let context = |kind: &str, item: &JsonValue| {
                json!({
                    "object": object,
                    "entry_id": entry.get("id"),
                    "field": change.get("field"),
                    "metadata": value.get("metadata"),
                    "contacts": value.get("contacts"),
                    kind: item,
                })
            };
            for message in as_array(value.get("messages")) {
                if let Some(id) = message.get("id").and_then(JsonValue::as_str) {
                    events.push(InboundEvent {
                        dedupe_key: format!("message:{id}"),
                        payload: Some(context("message", message)),
                    });
                }
            }
            for status in as_array(value.get("statuses")) {
                if let Some(id) = status.get("id").and_then(JsonValue::as_str) {
                    let state = status
                        .get("status")
                        .and_then(JsonValue::as_str)
                        .unwrap_or("unknown");
                    events.push(InboundEvent {
                        dedupe_key: format!("status:{id}:{state}"),
                        payload: Some(context("status", status)),
                    });
                }
            }
        }
    }
    events
}

fn as_array(value: Option<&JsonValue>) -> &[JsonValue] {
    value
        .and_then(JsonValue::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
}

/// One fanned-out WhatsApp event (see [`accept`]), or a whole webhook body (its first event) →
/// canonical message.
///
/// | canonical | WhatsApp Cloud API |
/// |---|---|
/// | event_id | `message.id` / `status.id` |
/// | conversation_id | `message.from` / `status.recipient_id` (the customer's wa_id) |
/// | sender_id / sender_name | `message.from` / `contacts[wa_id = from].profile.name` |
/// | text | `text.body`, a media `caption`, `button.text`, `interactive.*_reply.title`; for a status, its `status` |
/// | event_type | `message`; `status` for statuses; `other` for a `reaction` (text its `emoji`, reply_to its `message_id`) |
/// | sent_at | `timestamp` (unix seconds, as a string) |
/// | reply_to | `message.context.id` |
/// | attachments | `image`, `audio`, `video`, `document`, `sticker` by media `id`, with `mime_type`; a `location` with id `latitude,longitude` and its `url` |
pub fn to_canonical(
    event: &JsonValue,
) -> Result<crate::canonical::CanonicalMessage, super::AdaptError> {
    use super::{text_at, AdaptError};
    use crate::canonical::{unix_to_rfc3339, CanonicalMessage};

    // The whole webhook body as Meta sends it: its first message or status, with its context.
    if event.get("message").is_none()
        && event.get("status").is_none()
        && event.get("entry").is_some_and(JsonValue::is_array)
    {
        let first = fan_out(event)
            .into_iter()
            .find_map(|event| event.payload)
            .ok_or_else(|| AdaptError("the webhook body carries no message or status".into()))?;
        return to_canonical(&first);
    }
    if let Some(status) = event.get("status").filter(|value| value.is_object()) {
        return status_to_canonical(status);
    }
    let message = event
        .get("message")
        .filter(|value| value.is_object())
        .ok_or_else(|| AdaptError("neither message nor status is present".into()))?;
    // A number written with formatting (`+1 (415) 555-0183`) is the digits WhatsApp names it by.
    let from = text_at(message, "/from")
        .map(|from| super::phone_id(&from))
        .ok_or_else(|| AdaptError("message.from is missing".into()))?;
    let mut canonical = CanonicalMessage::new("whatsapp", "message");
    canonical.event_id =
        Some(text_at(message, "/id").ok_or_else(|| AdaptError("message.id is missing".into()))?);
    canonical.sender_name = as_array(event.get("contacts"))
        .iter()
        .find(|contact| {
            text_at(contact, "/wa_id").map(|id| super::phone_id(&id)) == Some(from.clone())
        })
        .and_then(|contact| text_at(contact, "/profile/name"));
    canonical.conversation_id = Some(from.clone());
    canonical.sender_id = Some(from);
    canonical.sent_at = message.get("timestamp").and_then(unix_to_rfc3339);
    canonical.reply_to = text_at(message, "/context/id");
    canonical.text = [
        "/text/body",
        "/button/text",
        "/interactive/button_reply/title",
        "/interactive/list_reply/title",
    ]
    .iter()
    .find_map(|pointer| text_at(message, pointer));
    if let Some(reaction) = message.get("reaction").filter(|value| value.is_object()) {
        // A reaction is not something to answer: `other`, with the emoji and the message it marks
        // (an empty emoji is a reaction removed).
        canonical.event_type = "other".into();
        canonical.text = text_at(reaction, "/emoji");
        canonical.reply_to = text_at(reaction, "/message_id");
    }
    canonical.attachments = attachments(message);
    if canonical.text.is_none() {
        canonical.text = MEDIA
            .iter()
            .filter_map(|kind| message.get(kind))
            .find_map(|media| text_at(media, "/caption"));
    }
    Ok(canonical)
}

/// The media a message may carry, in the order their captions are read.
const MEDIA: [&str; 5] = ["image", "audio", "video", "document", "sticker"];

/// A status update (sent, delivered, read, failed) as a canonical `status` event.
fn status_to_canonical(
    status: &JsonValue,
) -> Result<crate::canonical::CanonicalMessage, super::AdaptError> {
    use super::{text_at, AdaptError};
    use crate::canonical::{unix_to_rfc3339, CanonicalMessage};

    let mut canonical = CanonicalMessage::new("whatsapp", "status");
    canonical.event_id =
        Some(text_at(status, "/id").ok_or_else(|| AdaptError("status.id is missing".into()))?);
    canonical.conversation_id = text_at(status, "/recipient_id").map(|id| super::phone_id(&id));
    canonical.text = text_at(status, "/status");
    canonical.sent_at = status.get("timestamp").and_then(unix_to_rfc3339);
    Ok(canonical)
}

/// A message's attachments: its location, then its media by id.
fn attachments(message: &JsonValue) -> Vec<crate::canonical::Attachment> {
    use super::text_at;
    use crate::canonical::Attachment;

    let mut attachments = Vec::new();
    if let Some(location) = message.get("location") {
        if let (Some(latitude), Some(longitude)) = (
            location.get("latitude").and_then(JsonValue::as_f64),
            location.get("longitude").and_then(JsonValue::as_f64),
        ) {
            attachments.push(Attachment {
                kind: "location".into(),
                id: format!("{latitude},{longitude}"),
                url: text_at(location, "/url"),
                mime_type: None,
            });
        }
    }
    for kind in MEDIA {
        let Some(id) = message.get(kind).and_then(|media| text_at(media, "/id")) else {
            continue;
        };
        attachments.push(Attachment {
            kind: if kind == "document" {
                "file".into()
            } else {
                kind.into()
            },
            id,
            url: None,
            mime_type: message
                .get(kind)
                .and_then(|media| text_at(media, "/mime_type")),
        });
    }
    attachments
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;

    const SECRET: &str = "app-secret";

    fn signed(body: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            SIGNATURE_HEADER,
            signature(SECRET, body.as_bytes()).parse().unwrap(),
        );
        headers
    }

    fn batch() -> String {
        let message = |id: &str, text: &str| json!({"from": "16315551181", "id": id, "timestamp": "1504902988", "type": "text", "text": {"body": text}});
        json!({
            "object": "whatsapp_business_account",
            "entry": [{
                "id": "102290129340398",
                "changes": [{
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                        "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16315551181"}],
                        "messages": [message("wamid.A", "one"), message("wamid.B", "two"), message("wamid.C", "three")],
                        "statuses": [{"id": "wamid.X", "status": "delivered", "timestamp": "1750263773", "recipient_id": "16315551181"}]
                    }
                }]
            }]
        })
        .to_string()
    }

    #[test]
    fn a_batch_fans_out_to_one_event_per_message_and_status() {
        let body = batch();
        let secrets = json!({"app_secret": SECRET, "verify_token": "v"});
        let Accepted::Events { events, .. } = Platform::Whatsapp
            .accept(&secrets, &signed(&body), body.as_bytes(), 0)
            .unwrap()
        else {
            panic!("expected events")
        };
        let keys: Vec<_> = events.iter().map(|e| e.dedupe_key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "message:wamid.A",
                "message:wamid.B",
                "message:wamid.C",
                "status:wamid.X:delivered"
            ]
        );
        let first = events[0].payload.as_ref().unwrap();
        assert_eq!(first["message"]["text"]["body"], "one");
        assert_eq!(first["metadata"]["phone_number_id"], "106540352242922");
    }

    #[test]
    fn a_bad_signature_is_refused() {
        let body = batch();
        let secrets = json!({"app_secret": "other", "verify_token": "v"});
        let refused = Platform::Whatsapp.accept(&secrets, &signed(&body), body.as_bytes(), 0);
        assert!(matches!(refused, Err(Rejected::Unauthenticated(_))));
    }

    #[test]
    fn the_handshake_echoes_the_challenge_only_for_the_right_token() {
        let secrets = json!({"app_secret": SECRET, "verify_token": "meatyhamhock"});
        assert_eq!(
            handshake(
                &secrets,
                Some("subscribe"),
                Some("meatyhamhock"),
                Some("1158201444")
            ),
            Some("1158201444")
        );
        assert_eq!(
            handshake(
                &secrets,
                Some("subscribe"),
                Some("wrong"),
                Some("1158201444")
            ),
            None
        );
        assert_eq!(
            handshake(
                &secrets,
                Some("unsubscribe"),
                Some("meatyhamhock"),
                Some("1")
            ),
            None
        );
    }
}
