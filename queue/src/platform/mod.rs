//! Platform knowledge shared by the gateway and the workers: per platform, how a webhook is
//! authenticated (over the raw bytes, in constant time), which events one body carries, and the
//! dedupe key of each. One module per platform; nothing here touches the database.

pub mod salesforce;
pub mod slack;
pub mod standard;
pub mod telegram;
pub mod whatsapp;

use std::{fmt, str::FromStr};

use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde::{Deserialize, Serialize};
use serde_json::Value as JsonValue;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::storable;

/// The platforms a source can be for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Platform {
    Telegram,
    Whatsapp,
    Slack,
    Salesforce,
    Standard,
}

impl Platform {
    pub const ALL: [Platform; 5] = [
        Platform::Telegram,
        Platform::Whatsapp,
        Platform::Slack,
        Platform::Salesforce,
        Platform::Standard,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Telegram => "telegram",
            Platform::Whatsapp => "whatsapp",
            Platform::Slack => "slack",
            Platform::Salesforce => "salesforce",
            Platform::Standard => "standard",
        }
    }

    /// Checks a source's `secrets` object when the source is created, naming the field that is
    /// missing or too weak. Shared secrets need [`MIN_SECRET_LEN`] characters; Standard Webhooks
    /// keys are checked by [`standard::secret_keys`]; a Salesforce organisation id has its own
    /// shape (and is no secret: see [`INGEST_TOKEN_FIELD`]).
    pub fn validate_secrets(self, secrets: &JsonValue) -> Result<(), String> {
        let required: &[(&str, usize)] = match self {
            Platform::Telegram => &[("secret_token", MIN_SECRET_LEN)],
            Platform::Whatsapp => &[
                ("app_secret", MIN_SECRET_LEN),
                ("verify_token", MIN_VERIFY_TOKEN_LEN),
            ],
            Platform::Slack => &[("signing_secret", MIN_SECRET_LEN)],
            Platform::Salesforce => &[("organization_id", 15)],
            Platform::Standard => &[],
        };
        if self == Platform::Standard {
            standard::secret_keys(secrets)?;
        }
        for (field, min_len) in required {
            match secrets.get(field) {
                Some(JsonValue::String(value)) if value.chars().count() >= *min_len => {
                    if value.contains('\0') {
                        return Err(format!("secrets.{field} must not contain U+0000"));
                    }
                }
                Some(JsonValue::String(_)) => {
                    return Err(format!(
                        "secrets.{field} is too short for {} sources: use at least {min_len} characters",
                        self.as_str()
                    ))
                }
                _ => {
                    return Err(format!(
                        "secrets.{field} is required for {} sources and must be a string",
                        self.as_str()
                    ))
                }
            }
        }
        if self == Platform::Salesforce {
            let id = secrets
                .get("organization_id")
                .and_then(JsonValue::as_str)
                .unwrap_or_default();
            if !(id.len() == 15 || id.len() == 18) || !id.bytes().all(|b| b.is_ascii_alphanumeric())
            {
                return Err(
                    "secrets.organization_id must be a Salesforce organisation id: 15 or 18 letters and digits"
                        .into(),
                );
            }
        }
        match secrets.get(INGEST_TOKEN_FIELD) {
            None => {}
            Some(JsonValue::String(token))
                if token.len() >= MIN_INGEST_TOKEN_LEN
                    && token
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') => {}
            Some(_) => {
                return Err(format!(
                    "secrets.{INGEST_TOKEN_FIELD} must be at least {MIN_INGEST_TOKEN_LEN} characters of letters, digits, - and _"
                ))
            }
        }
        Ok(())
    }

    /// Authenticates a webhook and splits it into the events to enqueue, or the answer to give
    /// when it carries none (a handshake). Decodes the secrets on every call: a gateway keeps a
    /// [`Verifier`] per source instead.
    pub fn accept(
        self,
        secrets: &JsonValue,
        headers: &HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Accepted, Rejected> {
        Verifier::new(self, secrets.clone()).accept(headers, body, now_unix)
    }

    /// The one place every platform's verification is dispatched from.
    fn accept_with(
        self,
        verifier: &Verifier,
        headers: &HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Accepted, Rejected> {
        let secrets = &verifier.secrets;
        let mut accepted = match self {
            Platform::Telegram => telegram::accept(secrets, headers, body),
            Platform::Whatsapp => whatsapp::accept(secrets, headers, body),
            Platform::Slack => slack::accept(secrets, headers, body, now_unix),
            Platform::Salesforce => salesforce::accept(secrets, body),
            Platform::Standard => match &verifier.standard_keys {
                Ok(keys) => standard::accept_with_keys(keys, headers, body, now_unix),
                Err(error) => Err(Rejected::Misconfigured(error.clone())),
            },
        }?;
        if let Accepted::Events { events, .. } = &mut accepted {
            for event in events {
                // A payload nested deeper than healing reads is kept as raw bytes only: the job's
                // own envelope around it must still decode (serde_json stops at 128 levels).
                if event
                    .payload
                    .as_ref()
                    .is_some_and(|payload| storable::depth(payload) > storable::MAX_DEPTH)
                {
                    event.payload = None;
                }
            }
        }
        Ok(accepted)
    }
}

/// A source's secrets, decoded once (Standard Webhooks keys from base64) when the source is
/// cached, so verifying a webhook decodes nothing.
#[derive(Debug, Clone)]
pub struct Verifier {
    platform: Platform,
    secrets: JsonValue,
    standard_keys: Result<Vec<Vec<u8>>, String>,
}

impl Verifier {
    pub fn new(platform: Platform, secrets: JsonValue) -> Self {
        let standard_keys = match platform {
            Platform::Standard => standard::secret_keys(&secrets),
            _ => Ok(Vec::new()),
        };
        Self {
            platform,
            secrets,
            standard_keys,
        }
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The source's secrets as stored.
    pub fn secrets(&self) -> &JsonValue {
        &self.secrets
    }

    /// See [`Platform::accept`].
    pub fn accept(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Accepted, Rejected> {
        self.platform.accept_with(self, headers, body, now_unix)
    }
}

impl Platform {
    /// The platform's deterministic adapter: its payload → the canonical message.
    pub fn to_canonical(
        self,
        payload: &JsonValue,
    ) -> Result<crate::canonical::CanonicalMessage, AdaptError> {
        match self {
            Platform::Telegram => telegram::to_canonical(payload),
            Platform::Whatsapp => whatsapp::to_canonical(payload),
            Platform::Slack => slack::to_canonical(payload),
            Platform::Salesforce => salesforce::to_canonical(payload),
            Platform::Standard => standard::to_canonical(payload),
        }
    }
}

impl fmt::Display for Platform {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Platform {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Platform::ALL
            .into_iter()
            .find(|platform| platform.as_str() == s)
            .ok_or_else(|| {
                format!("unknown platform {s:?}; expected telegram, whatsapp, slack, salesforce or standard")
            })
    }
}

/// One event of a webhook: one job.
#[derive(Debug, Clone, PartialEq)]
pub struct InboundEvent {
    /// The platform's own id for the event, so a retry of it creates nothing new.
    pub dedupe_key: String,
    /// The event as the platform sent it (for batched bodies, the one item with its context).
    /// `None` when the body did not parse: the worker heals it from the raw bytes.
    pub payload: Option<JsonValue>,
}

/// What an authenticated webhook asks of the gateway.
#[derive(Debug, Clone, PartialEq)]
pub enum Accepted {
    /// Commit these as jobs, then answer with `ack`.
    Events { events: Vec<InboundEvent>, ack: Ack },
    /// Answer at once; there is nothing to enqueue (Slack's `url_verification`).
    Handshake(Ack),
}

/// The body of a success answer.
#[derive(Debug, Clone, PartialEq)]
pub struct Ack {
    pub content_type: &'static str,
    pub body: String,
}

impl Ack {
    pub fn empty() -> Self {
        Ack {
            content_type: "text/plain",
            body: String::new(),
        }
    }
}

/// Why a webhook was refused. Nothing is written for any of these.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum Rejected {
    /// 401: the signature (or secret token) is missing or wrong.
    #[error("{0}")]
    Unauthenticated(String),
    /// 401: the signed timestamp is too far from now (a replay).
    #[error("{0}")]
    Stale(String),
    /// 403: authenticated as another organisation than the source's.
    #[error("{0}")]
    Forbidden(String),
    /// 400: the body cannot be authenticated because it cannot be read.
    #[error("{0}")]
    Malformed(String),
    /// 500: the source's stored secrets are unusable (a configuration error, not the caller's).
    #[error("{0}")]
    Misconfigured(String),
}

/// The fewest characters of a shared signing secret (Telegram's `secret_token`, WhatsApp's
/// `app_secret`, Slack's `signing_secret`; the platforms generate 32).
pub const MIN_SECRET_LEN: usize = 16;
/// The fewest characters of WhatsApp's `verify_token`, which only guards the subscription handshake.
pub const MIN_VERIFY_TOKEN_LEN: usize = 8;
/// An optional secret of any source: when set, the ingest URL must carry it as `?token=`, compared
/// in constant time before the body is read. Salesforce outbound messages are not signed and an
/// organisation id is not secret, so this is what authenticates them.
pub const INGEST_TOKEN_FIELD: &str = "ingest_token";
/// The fewest characters of an `ingest_token`.
pub const MIN_INGEST_TOKEN_LEN: usize = 24;

/// How far a signed timestamp may be from now.
pub const MAX_CLOCK_SKEW_SECS: i64 = 300;

/// The dedupe key of a body that did not parse: its SHA-256, so the same bytes are one job.
pub fn body_digest_key(body: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(body)))
}

/// The one event of a signed body that did not parse.
pub fn unparsed(body: &[u8]) -> InboundEvent {
    InboundEvent {
        dedupe_key: body_digest_key(body),
        payload: None,
    }
}

/// Compares two secrets in constant time.
pub fn secure_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// HMAC-SHA256 of `parts`, concatenated, under `key`.
pub fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("HMAC takes keys of any length");
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().into()
}

/// A string field of the source's secrets.
pub(crate) fn secret<'a>(secrets: &'a JsonValue, field: &str) -> Result<&'a str, Rejected> {
    secrets
        .get(field)
        .and_then(JsonValue::as_str)
        .filter(|value| !value.is_empty())
        .ok_or_else(|| Rejected::Misconfigured(format!("the source has no secrets.{field}")))
}

/// A header's value as text, or a 401 naming it.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, Rejected> {
    headers
        .get(name)
        .ok_or_else(|| Rejected::Unauthenticated(format!("missing {name} header")))?
        .to_str()
        .map_err(|_| Rejected::Unauthenticated(format!("{name} header is not visible ASCII")))
}

/// Checks a signed unix timestamp against now.
pub(crate) fn check_timestamp(
    header_name: &str,
    value: &str,
    now_unix: i64,
) -> Result<(), Rejected> {
    let timestamp: i64 = value
        .trim()
        .parse()
        .map_err(|_| Rejected::Unauthenticated(format!("{header_name} is not a unix timestamp")))?;
    let skew = now_unix.abs_diff(timestamp);
    if skew > MAX_CLOCK_SKEW_SECS.unsigned_abs() {
        return Err(Rejected::Stale(format!(
            "{header_name} is {skew}s from now; at most {MAX_CLOCK_SKEW_SECS}s is accepted"
        )));
    }
    Ok(())
}

/// A JSON scalar id (number or string) as text. An integral float (`418800213.0`, what a
/// re-serialising pipeline makes of a big integer) is the integer it holds.
pub(crate) fn id_text(value: &JsonValue) -> Option<String> {
    match value {
        JsonValue::String(s) if !s.is_empty() => Some(s.clone()),
        JsonValue::Number(n) if n.is_f64() => {
            let float = n.as_f64()?;
            // Integers up to 2^53 are exact in a float; beyond that the digits are a guess.
            if float.fract() == 0.0 && float.abs() <= 9_007_199_254_740_992.0 {
                Some(format!("{}", float as i64))
            } else {
                Some(n.to_string())
            }
        }
        JsonValue::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Why a payload does not fit its platform's adapter; names the field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct AdaptError(pub String);

/// The text of a JSON scalar at `pointer`, if any.
pub(crate) fn text_at(value: &JsonValue, pointer: &str) -> Option<String> {
    value.pointer(pointer).and_then(id_text)
}

/// Where the agent's reply to an inbound message goes: the platform-specific address that
/// `reply.deliver` needs, from the healed message and (when it parsed) the original payload.
///
/// | platform | address |
/// |---|---|
/// | telegram | `chat_id` = conversation_id; `reply_to_message_id` = `message.message_id` |
/// | whatsapp | `to` = conversation_id (the customer's wa_id); `context_message_id` = event_id; `phone_number_id` = `metadata.phone_number_id` |
/// | slack | `channel` = conversation_id; `thread_ts` = `event.thread_ts`, else `event.ts` |
///
/// A message a bot sent (Slack `event.bot_id`) gets no reply, or two agents would talk forever.
pub fn reply_address(
    platform: Platform,
    message: &crate::canonical::CanonicalMessage,
    payload: Option<&JsonValue>,
) -> Result<JsonValue, String> {
    let payload = payload.unwrap_or(&JsonValue::Null);
    let conversation = message
        .conversation_id
        .clone()
        .ok_or("the message has no conversation_id to reply to")?;
    match platform {
        Platform::Telegram => Ok(serde_json::json!({
            "chat_id": conversation,
            "reply_to_message_id": text_at(payload, "/message/message_id"),
        })),
        Platform::Whatsapp => Ok(serde_json::json!({
            "to": conversation,
            "context_message_id": message.event_id,
            "phone_number_id": text_at(payload, "/metadata/phone_number_id"),
        })),
        Platform::Slack => {
            if payload.pointer("/event/bot_id").is_some() {
                return Err("the message was sent by a bot".into());
            }
            Ok(serde_json::json!({
                "channel": conversation,
                "thread_ts": text_at(payload, "/event/thread_ts")
                    .or_else(|| text_at(payload, "/event/ts")),
            }))
        }
        Platform::Salesforce | Platform::Standard => Err(format!("{platform} has no reply API")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integral_floats_are_the_integer_ids_they_hold() {
        use serde_json::json;
        assert_eq!(id_text(&json!(418800213.0)).as_deref(), Some("418800213"));
        assert_eq!(
            id_text(&json!(-1001234567890.0)).as_deref(),
            Some("-1001234567890")
        );
        assert_eq!(id_text(&json!(1.5)).as_deref(), Some("1.5"));
        assert_eq!(id_text(&json!(42)).as_deref(), Some("42"));
        assert_eq!(id_text(&json!("42")).as_deref(), Some("42"));
    }

    #[test]
    fn a_timestamp_at_the_ends_of_i64_is_stale_not_an_overflow() {
        for (value, now) in [(i64::MIN, i64::MAX), (i64::MAX, i64::MIN)] {
            assert!(matches!(
                check_timestamp("webhook-timestamp", &value.to_string(), now),
                Err(Rejected::Stale(_))
            ));
        }
        for value in [i64::MIN.to_string(), i64::MAX.to_string()] {
            for now in [0, 1_764_000_000] {
                assert!(
                    matches!(
                        check_timestamp("webhook-timestamp", &value, now),
                        Err(Rejected::Stale(_))
                    ),
                    "{value} at {now}"
                );
            }
        }
        assert_eq!(check_timestamp("t", "1000", 1200), Ok(()));
        assert!(matches!(
            check_timestamp("t", "1000", 1301),
            Err(Rejected::Stale(_))
        ));
    }

    #[test]
    fn a_payload_deeper_than_healing_reads_is_kept_as_raw_bytes_only() {
        let deep = format!("{}1{}", "[".repeat(120), "]".repeat(120));
        let body = format!(r#"{{"update_id": 5, "message": {{"text": "hi", "deep": {deep}}}}}"#);
        let mut headers = HeaderMap::new();
        headers.insert(
            telegram::SECRET_HEADER,
            http::HeaderValue::from_static("s3cret-token-0123456789"),
        );
        let secrets = serde_json::json!({"secret_token": "s3cret-token-0123456789"});
        let Ok(Accepted::Events { events, .. }) =
            Platform::Telegram.accept(&secrets, &headers, body.as_bytes(), 0)
        else {
            panic!("a signed update is accepted");
        };
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].payload, None);
    }
}
