//! Standard Webhooks: `webhook-id`, `webhook-timestamp` (within 300 s) and `webhook-signature`, a
//! space-separated list of `v1,<base64 HMAC-SHA256(key, id + "." + timestamp + "." + body)>` of
//! which any may match (for key rotation). The key is the base64 after `whsec_`. Deduped on
//! `webhook-id`.

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use http::HeaderMap;
use serde_json::Value as JsonValue;

use super::{
    check_timestamp, header, hmac_sha256, secure_eq, Accepted, Ack, InboundEvent, Rejected,
};

pub const ID_HEADER: &str = "webhook-id";
pub const TIMESTAMP_HEADER: &str = "webhook-timestamp";
pub const SIGNATURE_HEADER: &str = "webhook-signature";

/// The most signing keys a source holds: a key rotation needs the old and the new one, and a third
/// covers a rotation that overlaps another.
pub const MAX_KEYS: usize = 3;
/// The shortest key the Standard Webhooks specification allows, in bytes (after base64).
pub const MIN_KEY_BYTES: usize = 24;
/// The longest key the specification allows, in bytes.
pub const MAX_KEY_BYTES: usize = 64;

#[deny(dead_code)]
pub(super) const SPEC: super::Spec = super::Spec {
    name: "standard",
    // `secret` holds one key or several, checked by `secret_keys`.
    secrets: &[],
    check_secrets: |secrets| secret_keys(secrets).map(drop),
    keys: secret_keys,
    accept: |verifier, headers, body, now_unix| {
        accept_with_keys(verifier.keys()?, headers, body, now_unix)
    },
    to_canonical,
    aliases: &[("payload", "data")],
    reply: None,
};

/// The signing keys of `secrets.secret` (a `whsec_…` string, or a list of up to [`MAX_KEYS`] of
/// them during rotation), each [`MIN_KEY_BYTES`] to [`MAX_KEY_BYTES`] bytes.
pub fn secret_keys(secrets: &JsonValue) -> Result<Vec<Vec<u8>>, String> {
    let values: Vec<&JsonValue> = match secrets.get("secret") {
        Some(JsonValue::Array(list)) if !list.is_empty() && list.len() <= MAX_KEYS => {
            list.iter().collect()
        }
        Some(JsonValue::Array(list)) if list.len() > MAX_KEYS => {
            let n = list.len();
            return Err(format!(
                "secrets.secret holds {n} keys; at most {MAX_KEYS} are allowed (a rotation needs two)"
            ));
        }
        Some(value @ JsonValue::String(_)) => vec![value],
        _ => return Err(
            "secrets.secret is required for standard sources: a whsec_… string or a list of them"
                .into(),
        ),
    };
    values
        .into_iter()
        .map(|value| {
            let text = value.as_str().unwrap_or_default();
            let encoded = text.strip_prefix("whsec_").ok_or_else(|| {
                format!(
                    "secrets.secret entries must start with whsec_, got {:.6}…",
                    text
                )
            })?;
            let key = BASE64
                .decode(encoded)
                .map_err(|_| "secrets.secret is not base64 after whsec_".to_string())?;
            if !(MIN_KEY_BYTES..=MAX_KEY_BYTES).contains(&key.len()) {
                return Err(format!(
                    "secrets.secret keys must be {MIN_KEY_BYTES} to {MAX_KEY_BYTES} bytes after base64; one is {}",
                    key.len()
                ));
            }
            Ok(key)
        })
        .collect()
}

/// The `webhook-signature` entry for a message signed with `key`.
pub fn signature(key: &[u8], id: &str, timestamp: &str, body: &[u8]) -> String {
    let mac = hmac_sha256(
        key,
        &[id.as_bytes(), b".", timestamp.as_bytes(), b".", body],
    );
    format!("v1,{}", BASE64.encode(mac))
}

pub fn accept(
    secrets: &JsonValue,
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<Accepted, Rejected> {
    let keys = secret_keys(secrets).map_err(Rejected::Misconfigured)?;
    accept_with_keys(&keys, headers, body, now_unix)
}

/// [`accept`] with the source's keys already decoded (see [`super::Verifier`]).
pub fn accept_with_keys(
    keys: &[Vec<u8>],
    headers: &HeaderMap,
    body: &[u8],
    now_unix: i64,
) -> Result<Accepted, Rejected> {
    let id = header(headers, ID_HEADER)?;
    let timestamp = header(headers, TIMESTAMP_HEADER)?;
    let given = header(headers, SIGNATURE_HEADER)?;
    check_timestamp(TIMESTAMP_HEADER, timestamp, now_unix)?;
    let matched = keys.iter().any(|key| {
        let expected = signature(key, id, timestamp, body);
        given
            .split(' ')
            .filter(|entry| entry.starts_with("v1,"))
            .any(|entry| secure_eq(entry.as_bytes(), expected.as_bytes()))
    });
    if !matched {
        return Err(Rejected::Unauthenticated(format!(
            "no {SIGNATURE_HEADER} entry matches"
        )));
    }
    Ok(Accepted::Events {
        events: vec![InboundEvent {
            dedupe_key: id.to_owned(),
            payload: serde_json::from_slice(body).ok(),
        }],
        ack: Ack::empty(),
    })
}

/// A Standard Webhooks payload (`{type, timestamp, data}`) → canonical message, `other` unless the
/// data names a conversation and text.
pub fn to_canonical(
    payload: &JsonValue,
) -> Result<crate::canonical::CanonicalMessage, super::AdaptError> {
    use super::{text_at, AdaptError};
    use crate::canonical::CanonicalMessage;

    let data = payload
        .get("data")
        .filter(|value| value.is_object())
        .ok_or_else(|| AdaptError("data is missing".into()))?;
    let text = text_at(data, "/text");
    let conversation = text_at(data, "/conversation_id");
    let kind = if text.is_some() && conversation.is_some() {
        "message"
    } else {
        "other"
    };
    let mut canonical = CanonicalMessage::new("standard", kind);
    canonical.event_id = text_at(data, "/id");
    canonical.conversation_id = conversation;
    canonical.sender_id = text_at(data, "/sender_id");
    canonical.sender_name = text_at(data, "/sender_name");
    canonical.text = text;
    canonical.sent_at = text_at(payload, "/timestamp")
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
        .and_then(crate::canonical::rfc3339);
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::platform::Platform;

    #[test]
    fn the_specs_example_verifies_and_any_listed_signature_may_match() {
        // The example from the Standard Webhooks specification.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = r#"{"test": 2432232314}"#;
        let (id, ts) = ("msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330");
        let key = &secret_keys(&json!({"secret": secret})).unwrap()[0];
        assert_eq!(
            signature(key, id, ts, body.as_bytes()),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );

        let mut headers = HeaderMap::new();
        headers.insert(ID_HEADER, id.parse().unwrap());
        headers.insert(TIMESTAMP_HEADER, ts.parse().unwrap());
        headers.insert(
            SIGNATURE_HEADER,
            "v1,bm90IHRoZSBzaWduYXR1cmU= v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
                .parse()
                .unwrap(),
        );
        let secrets = json!({"secret": ["whsec_dGhlIG9sZCBrZXksIDI0IGJ5dGVzIG9r", secret]});
        let accepted = Platform::Standard
            .accept(&secrets, &headers, body.as_bytes(), 1_614_265_330)
            .unwrap();
        let Accepted::Events { events, .. } = accepted else {
            panic!("expected events")
        };
        assert_eq!(events[0].dedupe_key, id);

        let stale =
            Platform::Standard.accept(&secrets, &headers, body.as_bytes(), 1_614_265_330 + 301);
        assert!(matches!(stale, Err(Rejected::Stale(_))));
    }

    #[test]
    fn too_many_or_too_short_keys_are_refused_when_the_source_is_created() {
        let key = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let five_thousand = json!({"secret": vec![key; 5_000]});
        let error = Platform::Standard
            .validate_secrets(&five_thousand)
            .unwrap_err();
        assert!(
            error.contains("5000 keys") && error.contains("at most 3"),
            "{error}"
        );
        for short in ["whsec_", "whsec_b2xkIGtleQ=="] {
            let error = Platform::Standard
                .validate_secrets(&json!({"secret": short}))
                .unwrap_err();
            assert!(error.contains("24 to 64 bytes"), "{short}: {error}");
        }
        assert_eq!(
            Platform::Standard.validate_secrets(&json!({"secret": [key, key, key]})),
            Ok(())
        );
    }

    #[test]
    fn secrets_without_the_whsec_prefix_are_named() {
        let error = Platform::Standard
            .validate_secrets(&json!({"secret": "plain"}))
            .unwrap_err();
        assert!(error.contains("whsec_"), "{error}");
    }
}
