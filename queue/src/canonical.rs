//! The canonical message: the one healed form every platform's payload becomes, published as a
//! JSON Schema and checked with `jsonschema` before a result is written.

use std::sync::LazyLock;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as JsonValue};

/// One attachment of a message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    /// `image`, `audio`, `video`, `file`, `sticker`, `location` or `other`.
    pub kind: String,
    pub id: String,
    pub url: Option<String>,
    pub mime_type: Option<String>,
}

/// The healed form of an inbound event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanonicalMessage {
    /// telegram | whatsapp | slack | salesforce | standard | unknown
    pub platform: String,
    /// message | status | command | record_change | other
    pub event_type: String,
    pub event_id: Option<String>,
    pub conversation_id: Option<String>,
    pub sender_id: Option<String>,
    pub sender_name: Option<String>,
    pub text: Option<String>,
    /// RFC 3339.
    pub sent_at: Option<String>,
    pub reply_to: Option<String>,
    pub attachments: Vec<Attachment>,
}

impl CanonicalMessage {
    /// An empty message of `platform` and `event_type`, to fill in.
    pub fn new(platform: &str, event_type: &str) -> Self {
        Self {
            platform: platform.to_owned(),
            event_type: event_type.to_owned(),
            event_id: None,
            conversation_id: None,
            sender_id: None,
            sender_name: None,
            text: None,
            sent_at: None,
            reply_to: None,
            attachments: Vec::new(),
        }
    }
}

/// A canonical message's `platform`: every platform of the registry, and `unknown` for a payload
/// healed without one.
pub fn platforms() -> impl Iterator<Item = &'static str> {
    crate::platform::Platform::ALL
        .iter()
        .map(|platform| platform.as_str())
        .chain(["unknown"])
}
pub const EVENT_TYPES: [&str; 5] = ["message", "status", "command", "record_change", "other"];

/// The canonical message's JSON Schema (draft 2020-12).
pub fn schema() -> JsonValue {
    let nullable_string = json!({"type": ["string", "null"]});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://sentinel.dev/schemas/canonical-message.json",
        "title": "CanonicalMessage",
        "type": "object",
        "additionalProperties": false,
        "required": ["platform", "event_type", "event_id", "conversation_id", "sender_id", "sender_name",
                     "text", "sent_at", "reply_to", "attachments"],
        "properties": {
            "platform": {"enum": platforms().collect::<Vec<_>>()},
            "event_type": {"enum": EVENT_TYPES},
            "event_id": nullable_string,
            "conversation_id": nullable_string,
            "sender_id": nullable_string,
            "sender_name": nullable_string,
            "text": nullable_string,
            "sent_at": {"type": ["string", "null"], "format": "date-time"},
            "reply_to": nullable_string,
            "attachments": {
                "type": "array",
                "items": {
                    "type": "object",
                    "additionalProperties": false,
                    "required": ["kind", "id"],
                    "properties": {
                        "kind": {"type": "string", "minLength": 1},
                        "id": {"type": "string", "minLength": 1},
                        "url": nullable_string,
                        "mime_type": nullable_string
                    }
                }
            }
        }
    })
}

static VALIDATOR: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    jsonschema::options()
        .should_validate_formats(true)
        .build(&schema())
        .expect("the canonical schema is a valid JSON Schema")
});

/// Checks a candidate against the schema, naming every violation with its JSON pointer.
pub fn validate(candidate: &JsonValue) -> Result<(), String> {
    let errors: Vec<String> = VALIDATOR
        .iter_errors(candidate)
        .map(|error| {
            let at = error.instance_path().to_string();
            format!("{}: {error}", if at.is_empty() { "/" } else { &at })
        })
        .collect();
    if errors.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "the message does not match the canonical schema: {}",
            errors.join("; ")
        ))
    }
}

/// A unix timestamp (seconds, possibly fractional, as a number or a string) as RFC 3339.
pub fn unix_to_rfc3339(value: &JsonValue) -> Option<String> {
    let secs = match value {
        JsonValue::Number(n) => n.as_f64()?,
        JsonValue::String(s) => s.trim().parse::<f64>().ok()?,
        _ => return None,
    };
    // Whole seconds toward minus infinity, so that -1.5 is 1.5 s before the epoch, not 1 s.
    let mut whole = secs.floor() as i64;
    let mut nanos = ((secs - secs.floor()) * 1e9).round() as u32;
    if nanos >= 1_000_000_000 {
        whole = whole.checked_add(1)?;
        nanos = 0;
    }
    DateTime::<Utc>::from_timestamp(whole, nanos).and_then(rfc3339)
}

/// `at` as RFC 3339, or `None` when it has no valid RFC 3339 `date-time` form:
/// - its year has no four digits (chrono would write `+109918-…`);
/// - it is a leap second anywhere but 23:59:60 UTC. chrono parses `12:30:60Z` as one, and the
///   schema's `date-time` format, like RFC 3339, allows second 60 only at the end of a UTC day.
pub fn rfc3339<Tz: chrono::TimeZone>(at: DateTime<Tz>) -> Option<String>
where
    Tz::Offset: std::fmt::Display,
{
    use chrono::{Datelike, Timelike};
    let utc = at.with_timezone(&Utc);
    let leap_second_off_the_day_end =
        at.nanosecond() >= 1_000_000_000 && (utc.hour(), utc.minute()) != (23, 59);
    ((0..=9999).contains(&at.year()) && !leap_second_off_the_day_end).then(|| at.to_rfc3339())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timestamps_beyond_year_9999_are_dropped_not_written_invalid() {
        // Found by the `adapters` fuzz target: a Slack `ts` of " 3406513555175".
        assert_eq!(unix_to_rfc3339(&json!(" 3406513555175")), None);
        assert_eq!(unix_to_rfc3339(&json!(-62_198_755_200i64)), None);
        assert_eq!(
            unix_to_rfc3339(&json!("1735689600.5")).as_deref(),
            Some("2025-01-01T00:00:00.500+00:00")
        );
    }

    #[test]
    fn leap_seconds_are_kept_only_at_the_end_of_a_utc_day() {
        // Found by the `adapters` fuzz target: chrono parses a leap second in any minute, which
        // the `date-time` format refuses.
        let parsed = |at: &str| DateTime::parse_from_rfc3339(at).expect("chrono parses it");
        assert_eq!(rfc3339(parsed("2024-05-01T12:30:60Z")), None);
        assert_eq!(rfc3339(parsed("2016-12-31T23:59:60+01:00")), None);
        for at in ["2016-12-31T23:59:60Z", "2016-12-31T15:59:60.5-08:00"] {
            let written = rfc3339(parsed(at)).expect("a leap second at the end of a UTC day");
            let mut message = CanonicalMessage::new("standard", "message");
            message.sent_at = Some(written.clone());
            let value = serde_json::to_value(&message).expect("serializes");
            assert_eq!(validate(&value), Ok(()), "{written}");
        }
    }

    #[test]
    fn a_complete_message_validates_and_a_bad_one_is_named() {
        let mut message = CanonicalMessage::new("telegram", "message");
        message.sent_at = Some("2026-11-22T10:00:00+00:00".into());
        message.attachments.push(Attachment {
            kind: "image".into(),
            id: "AgAD".into(),
            url: None,
            mime_type: None,
        });
        assert_eq!(validate(&serde_json::to_value(&message).unwrap()), Ok(()));

        let mut bad = serde_json::to_value(&message).unwrap();
        bad["event_type"] = json!("shout");
        bad["sent_at"] = json!("yesterday");
        let error = validate(&bad).unwrap_err();
        assert!(
            error.contains("/event_type") && error.contains("/sent_at"),
            "{error}"
        );
    }

    #[test]
    fn unix_timestamps_become_rfc3339() {
        assert_eq!(
            unix_to_rfc3339(&json!(1441645532)).as_deref(),
            Some("2015-09-07T17:05:32+00:00")
        );
        let slack_ts = unix_to_rfc3339(&json!("1355517523.000005")).unwrap();
        assert!(
            slack_ts.starts_with("2012-12-14T20:38:43.00000"),
            "{slack_ts}"
        );
        assert_eq!(unix_to_rfc3339(&json!({"no": 1})), None);
        assert_eq!(
            unix_to_rfc3339(&json!(-1.5)).as_deref(),
            Some("1969-12-31T23:59:58.500+00:00")
        );
        assert_eq!(
            unix_to_rfc3339(&json!(59.9999999999)).as_deref(),
            Some("1970-01-01T00:01:00+00:00")
        );
    }
}
