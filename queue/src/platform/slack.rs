//! Slack Events API: `X-Slack-Signature: v0=hex(HMAC-SHA256(signing_secret,
//! "v0:" + X-Slack-Request-Timestamp + ":" + body))`, timestamps within 300 s; `url_verification`
//! is answered with its challenge and creates no job; events are deduped on `event_id`, so a retry
//! (`X-Slack-Retry-Num`) creates nothing new. Slash commands (a form body) and interactive
//! requests (a form whose `payload` field is JSON) come signed the same way and are deduped on
//! their `trigger_id`.

use http::HeaderMap;
use serde_json::{json, Value as JsonValue};

use super::{
    check_timestamp, header, hmac_sha256, secret, secure_eq, text_at, unparsed, Accepted, Ack,
    InboundEvent, Rejected,
};

pub const SIGNATURE_HEADER: &str = "x-slack-signature";
pub const TIMESTAMP_HEADER: &str = "x-slack-request-timestamp";

#[deny(dead_code)]
pub(super) const SPEC: super::Spec = super::Spec {
    name: "slack",
    secrets: &[("signing_secret", super::MIN_SECRET_LEN)],
    check_secrets: super::nothing_more,
    keys: super::no_keys,
    accept: |verifier, headers, body, now_unix| accept(verifier.secrets(), headers, body, now_unix),
    to_canonical,
    aliases: &[
        ("evt", "event"),
        ("channel_id", "channel"),
        ("user_id", "user"),
        ("id", "event_id"),
    ],
    reply: Some(super::ReplyApi {
        credentials: &["bot_token"],
        default_base: "https://slack.com/api",
        base_variable: "SENTINEL_SLACK_API_BASE",
        address: reply_address,
        send_address,
        request: reply_request,
        sent_id: "/ts",
        // A bot has no typing indicator in the Web API (only the retired RTM API had one).
        typing: None,
    }),
};

/// `channel` = the conversation; `thread_ts` = the thread of the message answered.
fn send_address(conversation: &str, reply_to: Option<&str>) -> JsonValue {
    json!({"channel": conversation, "thread_ts": reply_to})
}

/// `channel` = conversation_id; `thread_ts` = `event.thread_ts`, else `event.ts`. A message a bot
/// sent (`event.bot_id`) gets no reply, or two agents would talk forever.
fn reply_address(
    _: &crate::canonical::CanonicalMessage,
    conversation: &str,
    payload: &JsonValue,
) -> Result<JsonValue, String> {
    if payload.pointer("/event/bot_id").is_some() {
        return Err("the message was sent by a bot".into());
    }
    Ok(json!({
        "channel": conversation,
        "thread_ts": text_at(payload, "/event/thread_ts").or_else(|| text_at(payload, "/event/ts")),
    }))
}

/// `chat.postMessage`, in the message's thread.
fn reply_request(reply: &super::Outgoing<'_>) -> super::OutgoingRequest {
    let mut body = json!({"channel": reply.address.get("channel"), "text": reply.text});
    if let Some(thread) = reply.address.get("thread_ts").filter(|ts| ts.is_string()) {
        body["thread_ts"] = thread.clone();
    }
    super::OutgoingRequest {
        url: format!("{}/chat.postMessage", reply.base),
        bearer: Some(reply.credential("bot_token")),
        body,
    }
}

/// The `X-Slack-Signature` value for `body` sent at `timestamp`.
pub fn signature(signing_secret: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(
        signing_secret.as_bytes(),
        &[b"v0:", timestamp.as_bytes(), b":", body],
    );
    format!("v0={}", hex::encode(mac))
}

pub fn accept(
    secrets: &JsonValue,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<Accepted, Rejected> {
    let signing_secret = secret(secrets, "signing_secret")?;
    let timestamp = header(headers, TIMESTAMP_HEADER)?;
    let given = header(headers, SIGNATURE_HEADER)?;
    check_timestamp(TIMESTAMP_HEADER, timestamp, now_unix)?;
    let expected = signature(signing_secret, timestamp, body);
    if !secure_eq(given.as_bytes(), expected.as_bytes()) {
        return Err(Rejected::Unauthenticated(format!(
            "{SIGNATURE_HEADER} does not match"
        )));
    }
    let Some(payload) = parse_body(body) else {
        return Ok(Accepted::Events {
            events: vec![unparsed(body)],
            ack: Ack::empty(),
        });
    };
    if payload.get("type").and_then(JsonValue::as_str) == Some("url_verification") {
        let challenge = payload.get("challenge").cloned().unwrap_or(JsonValue::Null);
        return Ok(Accepted::Handshake(Ack {
            content_type: "application/json",
            body: json!({ "challenge": challenge }).to_string(),
        }));
    }
    let key = text_at(&payload, "/event_id").or_else(|| text_at(&payload, "/trigger_id"));
    let event = match key {
        Some(key) => InboundEvent {
            dedupe_key: key,
            payload: Some(payload),
        },
        _ => InboundEvent {
            payload: Some(payload),
            ..unparsed(body)
        },
    };
    Ok(Accepted::Events {
        events: vec![event],
        ack: Ack::empty(),
    })
}

/// The body as JSON: an Events API body is JSON; a slash command is a form, kept as an object of
/// its fields; an interactive request is a form whose `payload` field is the JSON.
fn parse_body(body: &[u8]) -> Option<JsonValue> {
    if let Ok(payload) = serde_json::from_slice::<JsonValue>(body) {
        return Some(payload);
    }
    let fields: serde_json::Map<String, JsonValue> = form_urlencoded::parse(body)
        .map(|(name, value)| (name.into_owned(), JsonValue::String(value.into_owned())))
        .collect();
    match fields.get("payload").and_then(JsonValue::as_str) {
        Some(interactive) => serde_json::from_str(interactive).ok(),
        None => fields
            .contains_key("command")
            .then_some(JsonValue::Object(fields)),
    }
}

/// Slack Events API `event_callback` → canonical message.
///
/// | canonical | Slack |
/// |---|---|
/// | event_id | `event_id` |
/// | conversation_id | `event.channel` |
/// | sender_id | `event.user` (or `event.bot_id`) |
/// | text | `event.text` |
/// | event_type | `message` for `message` and `app_mention` events without a subtype; `other` otherwise |
/// | sent_at | `event.ts` (unix seconds with microseconds) |
/// | reply_to | `event.thread_ts` |
/// | attachments | `event.files[]`: `id`, `url_private`, `mimetype` |
///
/// A slash command (form fields) is a `command`: event_id `trigger_id`, conversation_id
/// `channel_id`, sender_id / sender_name `user_id` / `user_name`, text `command` + ` ` + `text`
/// (as a Telegram command reads, e.g. `/weather 94070`).
///
/// An interactive request (`block_actions`, `view_submission`, shortcuts) is `other`: event_id
/// `trigger_id`, conversation_id `channel.id` (else `container.channel_id`), sender_id /
/// sender_name `user.id` / `user.username` (else `user.name`), text the first action's `value`
/// (else its `selected_option.value`), sent_at the first action's `action_ts`.
pub fn to_canonical(
    payload: &JsonValue,
) -> Result<crate::canonical::CanonicalMessage, super::AdaptError> {
    use super::AdaptError;
    use crate::canonical::{unix_to_rfc3339, Attachment, CanonicalMessage};

    if let Some(command) = payload.get("command").and_then(JsonValue::as_str) {
        let mut canonical = CanonicalMessage::new("slack", "command");
        canonical.event_id = text_at(payload, "/trigger_id");
        canonical.conversation_id = text_at(payload, "/channel_id");
        canonical.sender_id = text_at(payload, "/user_id");
        canonical.sender_name = text_at(payload, "/user_name");
        let argument = payload
            .get("text")
            .and_then(JsonValue::as_str)
            .unwrap_or("");
        canonical.text = Some(format!("{command} {argument}").trim().to_owned());
        if canonical.conversation_id.is_none() {
            return Err(AdaptError("channel_id is missing".into()));
        }
        return Ok(canonical);
    }
    if payload.get("event").is_none() && payload.pointer("/user/id").is_some() {
        let mut canonical = CanonicalMessage::new("slack", "other");
        canonical.event_id = text_at(payload, "/trigger_id");
        canonical.conversation_id =
            text_at(payload, "/channel/id").or_else(|| text_at(payload, "/container/channel_id"));
        canonical.sender_id = text_at(payload, "/user/id");
        canonical.sender_name =
            text_at(payload, "/user/username").or_else(|| text_at(payload, "/user/name"));
        canonical.text = text_at(payload, "/actions/0/value")
            .or_else(|| text_at(payload, "/actions/0/selected_option/value"));
        canonical.sent_at = payload
            .pointer("/actions/0/action_ts")
            .and_then(unix_to_rfc3339);
        return Ok(canonical);
    }
    let event = payload
        .get("event")
        .filter(|value| value.is_object())
        .ok_or_else(|| AdaptError("event is missing".into()))?;
    let kind = event
        .get("type")
        .and_then(JsonValue::as_str)
        .ok_or_else(|| AdaptError("event.type is missing".into()))?;
    let is_message = matches!(kind, "message" | "app_mention") && event.get("subtype").is_none();
    let mut canonical =
        CanonicalMessage::new("slack", if is_message { "message" } else { "other" });
    canonical.event_id = text_at(payload, "/event_id");
    canonical.conversation_id = text_at(event, "/channel");
    canonical.sender_id = text_at(event, "/user").or_else(|| text_at(event, "/bot_id"));
    canonical.text = text_at(event, "/text");
    canonical.sent_at = event.get("ts").and_then(unix_to_rfc3339);
    canonical.reply_to = text_at(event, "/thread_ts");
    for file in event
        .get("files")
        .and_then(JsonValue::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[])
    {
        if let Some(id) = text_at(file, "/id") {
            canonical.attachments.push(Attachment {
                kind: "file".into(),
                id,
                url: text_at(file, "/url_private"),
                mime_type: text_at(file, "/mimetype"),
            });
        }
    }
    if is_message && canonical.conversation_id.is_none() {
        return Err(AdaptError("event.channel is missing".into()));
    }
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;

    const SECRET: &str = "8f742231b10e8888abcd99yyyzzz85a5";
    const NOW: i64 = 1_531_420_618;
    const EVENT: &str = r#"{"token":"XXYYZZ","team_id":"T123ABC456","api_app_id":"A123ABC456",
        "event":{"type":"message","channel":"C123ABC456","user":"U123ABC456","text":"Live long and prospect.",
        "ts":"1355517523.000005","event_ts":"1355517523.000005","channel_type":"channel"},
        "type":"event_callback","event_id":"Ev123ABC456","event_time":1355517523}"#;

    fn signed(body: &str, timestamp: i64) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let ts = timestamp.to_string();
        headers.insert(TIMESTAMP_HEADER, ts.parse().unwrap());
        headers.insert(
            SIGNATURE_HEADER,
            signature(SECRET, &ts, body.as_bytes()).parse().unwrap(),
        );
        headers
    }

    #[test]
    fn slacks_documented_example_signature_verifies() {
        // From Slack's "Verifying requests from Slack" guide.
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            signature(SECRET, "1531420618", body.as_bytes()),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }

    #[test]
    fn an_event_callback_is_keyed_by_event_id() {
        let secrets = json!({"signing_secret": SECRET});
        let Accepted::Events { events, .. } = Platform::Slack
            .accept(&secrets, &signed(EVENT, NOW), EVENT.as_bytes(), NOW)
            .unwrap()
        else {
            panic!("expected events")
        };
        assert_eq!(events[0].dedupe_key, "Ev123ABC456");
    }

    /// Slack's documented slash-command body ("Verifying requests from Slack").
    const COMMAND: &str = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=status%20of%20order%2042&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";

    fn accepted_event(body: &str) -> InboundEvent {
        let secrets = json!({"signing_secret": SECRET});
        let Accepted::Events { mut events, ack } = Platform::Slack
            .accept(&secrets, &signed(body, NOW), body.as_bytes(), NOW)
            .expect("a signed body is accepted")
        else {
            panic!("expected events")
        };
        assert_eq!(ack, Ack::empty(), "Slack is answered with an empty 200");
        events.remove(0)
    }

    #[test]
    fn a_slash_command_form_is_keyed_by_trigger_id_and_read_as_a_command() {
        let event = accepted_event(COMMAND);
        assert_eq!(
            event.dedupe_key,
            "398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c"
        );
        let payload = event
            .payload
            .expect("the form is kept as an object of its fields");
        let message = Platform::Slack.to_canonical(&payload).expect("a command");
        assert_eq!(message.event_type, "command");
        assert_eq!(message.conversation_id.as_deref(), Some("G8PSS9T3V"));
        assert_eq!(message.sender_id.as_deref(), Some("U2CERLKJA"));
        assert_eq!(message.sender_name.as_deref(), Some("roadrunner"));
        assert_eq!(
            message.text.as_deref(),
            Some("/webhook-collect status of order 42")
        );
        let value = serde_json::to_value(&message).expect("serializes");
        assert_eq!(crate::canonical::validate(&value), Ok(()));
    }

    #[test]
    fn an_interactive_payload_form_is_read_as_other() {
        let interaction = json!({"type": "block_actions", "trigger_id": "13345224609.738474920.8088930838d88f008e0",
            "user": {"id": "U0CA5", "username": "amy.mcgee", "name": "amy.mcgee", "team_id": "T3MDE"},
            "container": {"type": "message", "message_ts": "1548261231.000200", "channel_id": "CBR2V3XEX"},
            "channel": {"id": "CBR2V3XEX", "name": "review-updates"},
            "actions": [{"action_id": "approve", "block_id": "b1", "type": "button", "value": "approve_42",
                         "action_ts": "1548426417.840180"}]});
        let body = format!(
            "payload={}",
            form_urlencoded::byte_serialize(interaction.to_string().as_bytes()).collect::<String>()
        );
        let event = accepted_event(&body);
        assert_eq!(
            event.dedupe_key,
            "13345224609.738474920.8088930838d88f008e0"
        );
        let message = Platform::Slack
            .to_canonical(&event.payload.expect("the payload field is JSON"))
            .expect("an interaction");
        assert_eq!(message.event_type, "other");
        assert_eq!(message.conversation_id.as_deref(), Some("CBR2V3XEX"));
        assert_eq!(message.sender_id.as_deref(), Some("U0CA5"));
        assert_eq!(message.text.as_deref(), Some("approve_42"));
        assert!(message
            .sent_at
            .is_some_and(|at| at.starts_with("2019-01-25T")));
    }

    #[test]
    fn a_form_that_is_neither_is_kept_raw() {
        let event = accepted_event("hello=world");
        assert!(event.payload.is_none());
        assert!(
            event.dedupe_key.starts_with("sha256:"),
            "{}",
            event.dedupe_key
        );
    }

    #[test]
    fn url_verification_is_answered_with_its_challenge() {
        let secrets = json!({"signing_secret": SECRET});
        let body = r#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
        let accepted = Platform::Slack
            .accept(&secrets, &signed(body, NOW), body.as_bytes(), NOW)
            .unwrap();
        assert_eq!(
            accepted,
            Accepted::Handshake(Ack {
                content_type: "application/json",
                body: r#"{"challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"}"#
                    .into()
            })
        );
    }

    #[test]
    fn a_stale_timestamp_or_a_bad_signature_is_refused() {
        let secrets = json!({"signing_secret": SECRET});
        let stale =
            Platform::Slack.accept(&secrets, &signed(EVENT, NOW - 301), EVENT.as_bytes(), NOW);
        assert!(matches!(stale, Err(Rejected::Stale(_))), "{stale:?}");
        let mut tampered = signed(EVENT, NOW);
        tampered.insert(TIMESTAMP_HEADER, (NOW + 1).to_string().parse().unwrap());
        let bad = Platform::Slack.accept(&secrets, &tampered, EVENT.as_bytes(), NOW);
        assert!(matches!(bad, Err(Rejected::Unauthenticated(_))), "{bad:?}");
    }
}
