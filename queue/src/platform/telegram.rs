//! Telegram Bot API webhooks: the `X-Telegram-Bot-Api-Secret-Token` header must equal the
//! source's `secret_token`; one update per body, deduped on `update_id`; answered 200, empty.

use http::HeaderMap;
use serde_json::Value as JsonValue;

use super::{header, id_text, secret, secure_eq, unparsed, Accepted, Ack, InboundEvent, Rejected};

pub const SECRET_HEADER: &str = "x-telegram-bot-api-secret-token";

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
