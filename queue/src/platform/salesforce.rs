//! Salesforce outbound messages: a SOAP envelope with up to 100 `<Notification>` elements, one
//! event each, deduped on `Notification/Id`. Outbound messages carry no signature: the envelope's
//! `OrganizationId` must equal the source's `organization_id` (403 otherwise), so a body that
//! cannot be read cannot be authenticated and is refused (400). Answered with the SOAP
//! `notificationsResponse` carrying `<Ack>true</Ack>`.

use quick_xml::{events::Event, Reader};
use serde_json::{json, Map, Value as JsonValue};

use super::{secret, secure_eq, Accepted, Ack, InboundEvent, Rejected};

/// The SOAP answer Salesforce expects; without it, it retries the message.
pub const ACK_BODY: &str = concat!(
    r#"<?xml version="1.0" encoding="UTF-8"?>"#,
    r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">"#,
    r#"<soapenv:Body><notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">"#,
    r#"<Ack>true</Ack></notificationsResponse></soapenv:Body></soapenv:Envelope>"#
);

/// The largest number of notifications Salesforce puts in one message.
pub const MAX_NOTIFICATIONS: usize = 100;

/// What one outbound message carries.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct OutboundMessage {
    pub organization_id: String,
    pub action_id: Option<String>,
    pub notifications: Vec<Notification>,
}

#[derive(Debug, Default, Clone, PartialEq)]
pub struct Notification {
    pub id: String,
    /// The `xsi:type` of the sObject, such as `sf:Case`.
    pub sobject_type: Option<String>,
    /// The sObject's fields by local name.
    pub fields: Map<String, JsonValue>,
}

/// The most elements one outbound message may hold: 100 notifications of a few dozen fields each,
/// with room to spare. Beyond it the body is refused before more of it is read.
pub const MAX_ELEMENTS: usize = 20_000;
/// The most attributes one element may carry (namespaces and `xsi:type` need a handful).
pub const MAX_ATTRIBUTES: usize = 64;
/// The deepest element nesting read (the envelope puts fields at depth 6).
pub const MAX_NESTING: usize = 32;

#[deny(dead_code)]
pub(super) const SPEC: super::Spec = super::Spec {
    name: "salesforce",
    // An organisation id is no secret: see `super::INGEST_TOKEN_FIELD`.
    secrets: &[("organization_id", 15)],
    check_secrets: organization_id_shape,
    keys: super::no_keys,
    accept: |verifier, _, body, _| accept(verifier.secrets(), body),
    to_canonical,
    aliases: &[
        ("s_object", "sobject"),
        ("record", "sobject"),
        ("id", "notification_id"),
    ],
    reply: None,
};

fn organization_id_shape(secrets: &JsonValue) -> Result<(), String> {
    let id = secrets
        .get("organization_id")
        .and_then(JsonValue::as_str)
        .unwrap_or_default();
    if !(id.len() == 15 || id.len() == 18) || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return Err(
            "secrets.organization_id must be a Salesforce organisation id: 15 or 18 letters and digits"
                .into(),
        );
    }
    Ok(())
}

pub fn accept(secrets: &JsonValue, body: &[u8]) -> Result<Accepted, Rejected> {
    let expected = secret(secrets, "organization_id")?;
    let message = parse_for(body, Some(expected))?;
    let events = message
        .notifications
        .iter()
        .map(|notification| InboundEvent {
            dedupe_key: notification.id.clone(),
            payload: Some(json!({
                "organization_id": message.organization_id,
                "action_id": message.action_id,
                "notification_id": notification.id,
                "sobject_type": notification.sobject_type,
                "sobject": notification.fields,
            })),
        })
        .collect();
    Ok(Accepted::Events {
        events,
        ack: Ack {
            content_type: "text/xml; charset=utf-8",
            body: ACK_BODY.to_owned(),
        },
    })
}

/// Reads an outbound message, naming what is wrong with a body that is not one.
pub fn parse(body: &[u8]) -> Result<OutboundMessage, String> {
    parse_for(body, None).map_err(|refused| refused.to_string())
}

/// Reads an outbound message. With `expected`, the organisation is checked as soon as its element
/// closes, which the envelope puts before any notification: a body for another organisation is
/// refused without reading its notifications. Linear in the body: element, attribute and nesting
/// counts are capped, and attributes are never checked for duplicates (quadratic in quick-xml).
fn parse_for(body: &[u8], expected: Option<&str>) -> Result<OutboundMessage, Rejected> {
    let malformed = |message: String| Rejected::Malformed(message);
    let text = std::str::from_utf8(body)
        .map_err(|error| malformed(format!("the body is not UTF-8: {error}")))?;
    let mut reader = Reader::from_str(text);
    // Local names of the open elements, outermost first, and the text of the innermost.
    let mut path: Vec<String> = Vec::new();
    let mut content = String::new();
    let mut elements = 0usize;
    let mut message = OutboundMessage::default();
    let mut current: Option<Notification> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|error| malformed(format!("the body is not well-formed XML: {error}")))?;
        let empty = matches!(event, Event::Empty(_));
        match event {
            Event::Start(start) | Event::Empty(start) => {
                elements += 1;
                check_size(elements, path.len())?;
                let mut attributes = start.attributes();
                attributes.with_checks(false);
                let mut sobject_type = None;
                for (i, attribute) in attributes.enumerate() {
                    if i >= MAX_ATTRIBUTES {
                        return Err(malformed(format!(
                            "an element has more than {MAX_ATTRIBUTES} attributes"
                        )));
                    }
                    let attribute = attribute
                        .map_err(|error| malformed(format!("a malformed attribute: {error}")))?;
                    if attribute.key.local_name().as_ref() == "type" {
                        sobject_type = Some(attribute.value.into_owned());
                    }
                }
                let name = start.local_name().as_ref().to_owned();
                if name == "Notification" {
                    current = Some(open_notification(&message)?);
                } else if name == "sObject" {
                    if let Some(notification) = current.as_mut() {
                        notification.sobject_type = sobject_type;
                    }
                }
                content.clear();
                path.push(name);
                if empty {
                    close(
                        &mut path,
                        &mut content,
                        &mut message,
                        &mut current,
                        expected,
                    )?;
                }
            }
            Event::Text(text) => content.push_str(&text.xml10_content()),
            Event::CData(cdata) => content.push_str(&cdata.xml10_content()),
            Event::GeneralRef(reference) => content.push_str(&resolve(&reference)?),
            Event::End(_) => close(
                &mut path,
                &mut content,
                &mut message,
                &mut current,
                expected,
            )?,
            Event::Eof => break,
            _ => {}
        }
    }
    if message.organization_id.is_empty() {
        return Err(malformed(
            "no notifications/OrganizationId element: not a Salesforce outbound message".into(),
        ));
    }
    Ok(message)
}

/// Refuses a body past the element count or nesting caps, at its `elements`-th element opened at
/// `depth`.
fn check_size(elements: usize, depth: usize) -> Result<(), Rejected> {
    if elements > MAX_ELEMENTS {
        return Err(Rejected::Malformed(format!(
            "more than {MAX_ELEMENTS} elements"
        )));
    }
    if depth >= MAX_NESTING {
        return Err(Rejected::Malformed(format!(
            "elements nested more than {MAX_NESTING} deep"
        )));
    }
    Ok(())
}

/// A new notification, once the organisation is known and under the cap on notifications.
fn open_notification(message: &OutboundMessage) -> Result<Notification, Rejected> {
    if message.organization_id.is_empty() {
        return Err(Rejected::Malformed(
            "a Notification comes before notifications/OrganizationId".into(),
        ));
    }
    if message.notifications.len() >= MAX_NOTIFICATIONS {
        return Err(Rejected::Malformed(format!(
            "more than {MAX_NOTIFICATIONS} Notification elements"
        )));
    }
    Ok(Notification::default())
}

/// The text of a character reference or one of XML's predefined entities.
fn resolve(reference: &quick_xml::events::BytesRef<'_>) -> Result<String, Rejected> {
    let resolved = match reference.resolve_char_ref() {
        Ok(Some(ch)) => Some(ch.to_string()),
        Ok(None) => quick_xml::escape::resolve_predefined_entity(reference).map(str::to_owned),
        Err(error) => {
            return Err(Rejected::Malformed(format!(
                "a bad character reference: {error}"
            )))
        }
    };
    resolved.ok_or_else(|| Rejected::Malformed(format!("an unknown entity &{};", &**reference)))
}

/// Closes the innermost element: its text lands where the envelope says.
fn close(
    path: &mut Vec<String>,
    content: &mut String,
    message: &mut OutboundMessage,
    current: &mut Option<Notification>,
    expected: Option<&str>,
) -> Result<(), Rejected> {
    let value = content.trim().to_owned();
    content.clear();
    let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
    match (parent, path.last().map(String::as_str)) {
        (Some("notifications"), Some("OrganizationId")) => {
            if let Some(expected) = expected {
                if !secure_eq(value.as_bytes(), expected.as_bytes()) {
                    return Err(Rejected::Forbidden(
                        "OrganizationId does not match the source's organization_id".into(),
                    ));
                }
            }
            message.organization_id = value;
        }
        (Some("notifications"), Some("ActionId")) => message.action_id = Some(value),
        (Some("Notification"), Some("Id")) => {
            if let Some(notification) = current.as_mut() {
                notification.id = value;
            }
        }
        (Some("sObject"), Some(field)) => {
            if let Some(notification) = current.as_mut() {
                notification
                    .fields
                    .insert(field.to_owned(), JsonValue::String(value));
            }
        }
        _ => {}
    }
    if path.pop().as_deref() == Some("Notification") {
        let notification = current.take().unwrap_or_default();
        if notification.id.is_empty() {
            return Err(Rejected::Malformed("a Notification has no Id".into()));
        }
        message.notifications.push(notification);
    }
    Ok(())
}

/// One Salesforce notification (as ingress stores it) → canonical message.
///
/// | canonical | Salesforce outbound message |
/// |---|---|
/// | event_id | `Notification/Id` |
/// | conversation_id | the sObject's `Id` |
/// | sender_id | `LastModifiedById`, else `OwnerId`, else `CreatedById` |
/// | text | `Subject`, else `Description`, else `Name` |
/// | event_type | `record_change` |
/// | sent_at | `LastModifiedDate`, else `CreatedDate` |
pub fn to_canonical(
    event: &JsonValue,
) -> Result<crate::canonical::CanonicalMessage, super::AdaptError> {
    use super::{text_at, AdaptError};
    use crate::canonical::CanonicalMessage;

    let sobject = event
        .get("sobject")
        .filter(|value| value.is_object())
        .ok_or_else(|| AdaptError("sobject is missing".into()))?;
    let mut canonical = CanonicalMessage::new("salesforce", "record_change");
    canonical.event_id = Some(
        text_at(event, "/notification_id")
            .ok_or_else(|| AdaptError("notification_id is missing".into()))?,
    );
    // Salesforce field names are case-insensitive (`Id`, `ID`, `last_modified_by_id` after a
    // pipeline renamed them): matched without case or underscores when not found as written.
    let field = |name: &str| {
        text_at(sobject, &format!("/{name}")).or_else(|| {
            let wanted = name.to_ascii_lowercase();
            sobject.as_object()?.iter().find_map(|(key, value)| {
                let key: String = key.chars().filter(|ch| *ch != '_').collect();
                (key.to_ascii_lowercase() == wanted)
                    .then(|| super::id_text(value))
                    .flatten()
            })
        })
    };
    canonical.conversation_id = field("Id");
    canonical.sender_id = ["LastModifiedById", "OwnerId", "CreatedById"]
        .iter()
        .find_map(|name| field(name));
    canonical.text = ["Subject", "Description", "Name"]
        .iter()
        .find_map(|name| field(name));
    canonical.sent_at = ["LastModifiedDate", "CreatedDate"]
        .iter()
        .find_map(|name| field(name))
        .and_then(|at| chrono::DateTime::parse_from_rfc3339(&at).ok())
        .and_then(crate::canonical::rfc3339);
    Ok(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::Platform;

    pub const TWO_NOTIFICATIONS: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D000000000062EAA</OrganizationId>
   <ActionId>04k000000000001AAA</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/59.0/00D000000000062</EnterpriseUrl>
   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/59.0/00D000000000062</PartnerUrl>
   <Notification>
    <Id>04l000000000001AAA</Id>
    <sObject xsi:type="sf:Case" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>500000000000001AAA</sf:Id>
     <sf:Subject>Printer on fire &amp; smoking</sf:Subject>
     <sf:Status>New</sf:Status>
    </sObject>
   </Notification>
   <Notification>
    <Id>04l000000000002AAA</Id>
    <sObject xsi:type="sf:Case" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>500000000000002AAA</sf:Id>
     <sf:Subject>Cannot log in</sf:Subject>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#;

    #[test]
    fn two_notifications_give_two_events_and_the_ack() {
        let secrets = json!({"organization_id": "00D000000000062EAA"});
        let accepted = Platform::Salesforce
            .accept(
                &secrets,
                &http::HeaderMap::new(),
                TWO_NOTIFICATIONS.as_bytes(),
                0,
            )
            .unwrap();
        let Accepted::Events { events, ack } = accepted else {
            panic!("expected events")
        };
        let keys: Vec<_> = events.iter().map(|e| e.dedupe_key.as_str()).collect();
        assert_eq!(keys, ["04l000000000001AAA", "04l000000000002AAA"]);
        let first = events[0].payload.as_ref().unwrap();
        assert_eq!(first["sobject"]["Subject"], "Printer on fire & smoking");
        assert_eq!(first["sobject_type"], "sf:Case");
        assert!(ack.body.contains("<Ack>true</Ack>"));
        assert!(ack.content_type.starts_with("text/xml"));
    }

    #[test]
    fn another_organisation_is_forbidden_and_garbage_is_malformed() {
        let secrets = json!({"organization_id": "00DOTHER"});
        let forbidden = Platform::Salesforce.accept(
            &secrets,
            &http::HeaderMap::new(),
            TWO_NOTIFICATIONS.as_bytes(),
            0,
        );
        assert!(matches!(forbidden, Err(Rejected::Forbidden(_))));
        // The organisation is checked when its element closes: what follows is never read.
        let wrong_then_garbage = TWO_NOTIFICATIONS.replace("<Notification>", "<Notification><<<");
        let refused = Platform::Salesforce.accept(
            &secrets,
            &http::HeaderMap::new(),
            wrong_then_garbage.as_bytes(),
            0,
        );
        assert!(
            matches!(refused, Err(Rejected::Forbidden(_))),
            "{refused:?}"
        );
        for garbage in [
            "<a><b></a>",
            "not xml at all",
            "<notifications></notifications>",
        ] {
            let refused = Platform::Salesforce.accept(
                &secrets,
                &http::HeaderMap::new(),
                garbage.as_bytes(),
                0,
            );
            assert!(
                matches!(refused, Err(Rejected::Malformed(_))),
                "{garbage}: {refused:?}"
            );
        }
    }

    #[test]
    fn hostile_bodies_are_refused_in_linear_time_with_a_reason() {
        let secrets = json!({"organization_id": "00D000000000062EAA"});
        let attributes: String = (0..60_000).map(|i| format!(" a{i}=\"1\"")).collect();
        let cases = [
            (format!("<notifications{attributes}/>"), "attributes"),
            (format!("<a a=\"1\"{}/>", " a=\"1\"".repeat(70)), "attributes"),
            (format!("{}{}", "<a>".repeat(40), "</a>".repeat(40)), "nested"),
            ("<a/>".repeat(MAX_ELEMENTS + 1), "elements"),
            ("<notifications><OrganizationId>00D000000000062EAA</OrganizationId><Notification><Id>x\u{0}</Id></Notification></notifications>".into(), ""),
            ("<notifications><Notification><Id>1</Id></Notification><OrganizationId>00D000000000062EAA</OrganizationId></notifications>".into(), "before"),
            ("<notifications><OrganizationId>&bogus;</OrganizationId></notifications>".into(), "entity"),
        ];
        for (body, reason) in cases {
            let started = std::time::Instant::now();
            let outcome =
                Platform::Salesforce.accept(&secrets, &http::HeaderMap::new(), body.as_bytes(), 0);
            assert!(
                started.elapsed() < std::time::Duration::from_secs(2),
                "{reason}: {:?}",
                started.elapsed()
            );
            match outcome {
                Err(Rejected::Malformed(message)) => {
                    assert!(message.contains(reason), "{reason}: {message}")
                }
                // A NUL inside a well-formed body is kept (storage replaces it later).
                Ok(Accepted::Events { events, .. }) => {
                    assert!(reason.is_empty() && events[0].dedupe_key.contains('\0'))
                }
                other => panic!("{reason}: {other:?}"),
            }
        }
        let not_utf8 =
            Platform::Salesforce.accept(&secrets, &http::HeaderMap::new(), b"<a>\xff</a>", 0);
        assert!(matches!(not_utf8, Err(Rejected::Malformed(message)) if message.contains("UTF-8")));
    }

    #[test]
    fn character_references_and_cdata_are_read() {
        let body =
            TWO_NOTIFICATIONS.replace("Cannot log in", "Caf&#233; &lt;b&gt; <![CDATA[raw & <x>]]>");
        let message = parse(body.as_bytes()).unwrap();
        assert_eq!(
            message.notifications[1].fields["Subject"],
            "Café <b> raw & <x>"
        );
        assert_eq!(
            message.notifications[0].fields["Subject"],
            "Printer on fire & smoking"
        );
    }
}
