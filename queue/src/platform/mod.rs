//! Platform knowledge shared by the gateway and the workers: per platform, how a webhook is
//! authenticated (over the raw bytes, in constant time), which events one body carries, the dedupe
//! key of each, its adapter, its aliases and where a reply goes. Nothing here touches the database.
//!
//! One module per platform owns all of that and describes it in its `SPEC` ([`Spec`]); the
//! registry ([`with_platforms!`](crate::with_platforms)) names each platform once. The [`Platform`]
//! enum, the gateway's API enums, the canonical schema's list and the worker's reply APIs are all
//! derived from it. A module left out of the registry does not compile: its `SPEC` is
//! `#[deny(dead_code)]`.

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

use crate::{canonical::CanonicalMessage, storable};

/// The registry: every platform, once, as `Variant => module`. Calls `$callback!` with the list,
/// so that other crates derive their own types from it (the gateway's API enums do).
#[macro_export]
macro_rules! with_platforms {
    ($callback:ident) => {
        $callback! {
            Telegram => telegram,
            Whatsapp => whatsapp,
            Slack => slack,
            Salesforce => salesforce,
            Standard => standard,
        }
    };
}

macro_rules! platform_enum {
    ($($variant:ident => $module:ident),+ $(,)?) => {
        /// The platforms a source can be for.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum Platform {
            $($variant),+
        }

        impl Platform {
            /// Every platform, in the registry's order.
            pub const ALL: &'static [Platform] = &[$(Platform::$variant),+];

            /// What the platform's module knows of it.
            pub fn spec(self) -> &'static Spec {
                match self {
                    $(Platform::$variant => &$module::SPEC),+
                }
            }
        }
    };
}

with_platforms!(platform_enum);

/// Everything Sentinel knows of one platform: each platform module has one, its `SPEC`.
pub struct Spec {
    /// The platform's name in the API, in `sources.platform` and in canonical messages: the
    /// variant's name in lower case (a test checks it).
    pub name: &'static str,
    /// The verification secrets a source must have, each with its fewest characters.
    pub secrets: &'static [(&'static str, usize)],
    /// Checks the secrets beyond their presence and length (a key's encoding, an id's shape).
    pub check_secrets: fn(&JsonValue) -> Result<(), String>,
    /// Decodes the secrets' signing keys once, when the source is cached (Standard Webhooks' base64
    /// keys); an empty list for platforms that sign with the secret's text.
    pub keys: fn(&JsonValue) -> Result<Vec<Vec<u8>>, String>,
    /// Authenticates a webhook and splits it into events, each with its dedupe key.
    pub accept: fn(&Verifier, &HeaderMap, &[u8], i64) -> Result<Accepted, Rejected>,
    /// The deterministic adapter: the platform's payload (one event, or the whole body as the
    /// platform sends it) → the canonical message.
    pub to_canonical: fn(&JsonValue) -> Result<CanonicalMessage, AdaptError>,
    /// Renamed fields the adapter accepts after repair: (alias, canonical name), in snake_case.
    pub aliases: &'static [(&'static str, &'static str)],
    /// How the agent's reply is sent, when the platform has a reply API.
    pub reply: Option<ReplyApi>,
}

/// A platform's reply API: where a reply goes and how it is sent.
pub struct ReplyApi {
    /// The reply credentials a source needs (`sources.reply`).
    pub credentials: &'static [&'static str],
    /// The API's base URL.
    pub default_base: &'static str,
    /// The worker's variable that overrides [`Self::default_base`] (tests point it at loopback).
    pub base_variable: &'static str,
    /// The reply's address, from the healed message, its `conversation_id` and the original
    /// payload (`Null` when it did not parse); an error says why no reply is sent.
    pub address: fn(&CanonicalMessage, &str, &JsonValue) -> Result<JsonValue, String>,
    /// The address of a message sent through the API (`POST /v1/sources/{id}/messages`): the
    /// conversation, and the message it answers when one is named.
    pub send_address: fn(&str, Option<&str>) -> JsonValue,
    /// The request that sends a reply.
    pub request: fn(&Outgoing<'_>) -> OutgoingRequest,
    /// Where the platform's answer carries the sent message's id (a JSON pointer).
    pub sent_id: &'static str,
    /// The request that shows "typing…" in the conversation while a turn runs, for platforms
    /// that have one (the `text` of its [`Outgoing`] is empty); `None`: the platform has none.
    pub typing: Option<fn(&Outgoing<'_>) -> Option<OutgoingRequest>>,
}

/// A reply to send: what [`ReplyApi::request`] reads.
pub struct Outgoing<'a> {
    /// The API's base URL, without a trailing `/`.
    pub base: &'a str,
    /// The source's reply credentials.
    pub credentials: &'a JsonValue,
    /// The address [`ReplyApi::address`] made.
    pub address: &'a JsonValue,
    pub text: &'a str,
}

impl Outgoing<'_> {
    /// A reply credential's text, empty when missing.
    pub fn credential(&self, name: &str) -> String {
        self.credentials
            .get(name)
            .and_then(JsonValue::as_str)
            .unwrap_or_default()
            .to_owned()
    }
}

/// An HTTP `POST` of a JSON body.
#[derive(Debug, Clone, PartialEq)]
pub struct OutgoingRequest {
    pub url: String,
    /// Sent as `Authorization: Bearer …`.
    pub bearer: Option<String>,
    pub body: JsonValue,
}

impl Platform {
    pub fn as_str(self) -> &'static str {
        self.spec().name
    }

    /// Checks a source's `secrets` object when the source is created, naming the field that is
    /// missing or too weak. Shared secrets need [`MIN_SECRET_LEN`] characters; each platform checks
    /// the rest itself ([`Spec::check_secrets`]); any source may add an [`INGEST_TOKEN_FIELD`].
    pub fn validate_secrets(self, secrets: &JsonValue) -> Result<(), String> {
        let spec = self.spec();
        for (field, min_len) in spec.secrets {
            match secrets.get(field) {
                Some(JsonValue::String(value)) if value.chars().count() >= *min_len => {
                    if value.contains('\0') {
                        return Err(format!("secrets.{field} must not contain U+0000"));
                    }
                }
                Some(JsonValue::String(_)) => {
                    return Err(format!(
                        "secrets.{field} is too short for {self} sources: use at least {min_len} characters"
                    ))
                }
                _ => {
                    return Err(format!(
                        "secrets.{field} is required for {self} sources and must be a string"
                    ))
                }
            }
        }
        (spec.check_secrets)(secrets)?;
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

    /// Checks a source's `reply` credentials, naming the field that is missing.
    pub fn validate_reply_credentials(self, reply: &JsonValue) -> Result<(), String> {
        if !reply.is_object() {
            return Err("reply must be an object".into());
        }
        let required = self
            .spec()
            .reply
            .as_ref()
            .map_or(&[][..], |api| api.credentials);
        for field in required {
            if reply
                .get(field)
                .and_then(JsonValue::as_str)
                .is_none_or(str::is_empty)
            {
                return Err(format!(
                    "reply.{field} is required for {self} replies and must be a non-empty string"
                ));
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

    /// The platform's deterministic adapter: its payload → the canonical message.
    pub fn to_canonical(self, payload: &JsonValue) -> Result<CanonicalMessage, AdaptError> {
        (self.spec().to_canonical)(payload)
    }

    /// Renamed fields the platform's adapter accepts: (alias, canonical name), compared with keys
    /// after camelCase has been turned into snake_case ([`crate::heal::alias`]).
    pub fn aliases(self) -> &'static [(&'static str, &'static str)] {
        self.spec().aliases
    }
}

/// A source's secrets, decoded once (Standard Webhooks keys from base64) when the source is
/// cached, so verifying a webhook decodes nothing.
#[derive(Debug, Clone)]
pub struct Verifier {
    platform: Platform,
    secrets: JsonValue,
    keys: Result<Vec<Vec<u8>>, String>,
}

impl Verifier {
    pub fn new(platform: Platform, secrets: JsonValue) -> Self {
        let keys = (platform.spec().keys)(&secrets);
        Self {
            platform,
            secrets,
            keys,
        }
    }

    pub fn platform(&self) -> Platform {
        self.platform
    }

    /// The source's secrets as stored.
    pub fn secrets(&self) -> &JsonValue {
        &self.secrets
    }

    /// The signing keys [`Spec::keys`] decoded, or why the stored secrets are unusable.
    pub fn keys(&self) -> Result<&[Vec<u8>], Rejected> {
        self.keys
            .as_deref()
            .map_err(|error| Rejected::Misconfigured(error.clone()))
    }

    /// See [`Platform::accept`].
    pub fn accept(
        &self,
        headers: &HeaderMap,
        body: &[u8],
        now_unix: i64,
    ) -> Result<Accepted, Rejected> {
        let mut accepted = (self.platform.spec().accept)(self, headers, body, now_unix)?;
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

/// [`Spec::check_secrets`] of a platform with nothing to check beyond presence and length.
pub(crate) fn nothing_more(_: &JsonValue) -> Result<(), String> {
    Ok(())
}

/// [`Spec::keys`] of a platform that signs with its secret's text.
pub(crate) fn no_keys(_: &JsonValue) -> Result<Vec<Vec<u8>>, String> {
    Ok(Vec::new())
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
            .iter()
            .copied()
            .find(|platform| platform.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Platform::ALL.iter().map(|p| p.as_str()).collect();
                format!(
                    "unknown platform {s:?}; expected one of {}",
                    names.join(", ")
                )
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
pub fn id_text(value: &JsonValue) -> Option<String> {
    match value {
        JsonValue::String(s) if !s.is_empty() => Some(s.clone()),
        JsonValue::Number(n) if n.is_f64() => Some(
            n.as_f64()
                .and_then(integral)
                .unwrap_or_else(|| n.to_string()),
        ),
        JsonValue::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// An integral float as integer text: integers up to 2^53 are exact in a float; beyond that the
/// digits would be a guess.
fn integral(float: f64) -> Option<String> {
    (float.fract() == 0.0 && float.abs() <= 9_007_199_254_740_992.0)
        .then(|| format!("{}", float as i64))
}

/// A phone number written with formatting (`+1 (415) 555-0183`, `whatsapp:+14155550183`,
/// `tel:+1-415-555-0183`) as the digits a platform that names people by their number (WhatsApp)
/// uses for an id; any other text as it is.
pub(crate) fn phone_id(text: &str) -> String {
    let number = ["whatsapp:", "tel:", "sms:"]
        .iter()
        .find_map(|scheme| text.strip_prefix(scheme))
        .unwrap_or(text)
        .trim();
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let formatted = number
        .chars()
        .all(|ch| ch.is_ascii_digit() || matches!(ch, '+' | ' ' | '(' | ')' | '-' | '.'));
    if formatted && (7..=15).contains(&digits.len()) {
        digits
    } else {
        text.to_owned()
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
/// `reply.deliver` needs, from the healed message and (when it parsed) the original payload. Each
/// platform's [`ReplyApi::address`] says what it holds.
pub fn reply_address(
    platform: Platform,
    message: &CanonicalMessage,
    payload: Option<&JsonValue>,
) -> Result<JsonValue, String> {
    let payload = payload.unwrap_or(&JsonValue::Null);
    let conversation = message
        .conversation_id
        .as_deref()
        .ok_or("the message has no conversation_id to reply to")?;
    let api = platform
        .spec()
        .reply
        .as_ref()
        .ok_or_else(|| format!("{platform} has no reply API"))?;
    (api.address)(message, conversation, payload)
}

/// Where a message sent through the API goes: `conversation` as the platform names it (Telegram's
/// chat id, WhatsApp's customer number, Slack's channel), in answer to `reply_to` when given.
pub fn send_address(
    platform: Platform,
    conversation: &str,
    reply_to: Option<&str>,
) -> Result<JsonValue, String> {
    let api = platform
        .spec()
        .reply
        .as_ref()
        .ok_or_else(|| format!("{platform} has no API to send messages through"))?;
    Ok((api.send_address)(conversation, reply_to))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_platform_is_named_as_its_variant_and_parses_back() {
        for &platform in Platform::ALL {
            // Serde's name (the variant in lower case, as the API's enums write it) is the spec's.
            assert_eq!(serde_json::to_value(platform).unwrap(), platform.as_str());
            assert_eq!(platform.as_str().parse::<Platform>(), Ok(platform));
            if let Some(api) = &platform.spec().reply {
                assert!(
                    !api.credentials.is_empty(),
                    "{platform} replies need credentials"
                );
                assert!(api.base_variable.starts_with("SENTINEL_"));
            }
        }
        let error = "telegrm".parse::<Platform>().unwrap_err();
        assert!(
            error.contains("telegram") && error.contains("standard"),
            "{error}"
        );
    }

    #[test]
    fn each_reply_api_addresses_the_conversation_the_message_names() {
        let mut message = crate::canonical::CanonicalMessage::new("slack", "message");
        message.conversation_id = Some("C42".into());
        message.event_id = Some("wamid.1".into());
        let payload = serde_json::json!({"event": {"ts": "1.5"}});
        for &platform in Platform::ALL {
            let Some(api) = &platform.spec().reply else {
                assert!(reply_address(platform, &message, Some(&payload)).is_err());
                continue;
            };
            let address = reply_address(platform, &message, Some(&payload)).unwrap();
            let request = (api.request)(&Outgoing {
                base: "http://127.0.0.1:9",
                credentials: &serde_json::json!({"bot_token": "b", "access_token": "a", "phone_number_id": "p"}),
                address: &address,
                text: "hello",
            });
            assert!(
                request.url.starts_with("http://127.0.0.1:9/"),
                "{platform}: {}",
                request.url
            );
            assert!(
                request.body.to_string().contains("C42"),
                "{platform}: {}",
                request.body
            );
            assert!(
                request.body.to_string().contains("hello"),
                "{platform}: {}",
                request.body
            );
        }
        message.conversation_id = None;
        assert!(reply_address(Platform::Telegram, &message, None).is_err());
    }

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
