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

pub fn accept(secrets: &JsonValue, body: &[u8]) -> Result<Accepted, Rejected> {
    let expected = secret(secrets, "organization_id")?;
    let message = parse(body).map_err(Rejected::Malformed)?;
    if !secure_eq(message.organization_id.as_bytes(), expected.as_bytes()) {
        return Err(Rejected::Forbidden(
            "OrganizationId does not match the source's organization_id".into(),
        ));
    }
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
    let mut reader = Reader::from_reader(body);
    reader.config_mut().trim_text(true);
    let mut buf = Vec::new();
    // Local names of the open elements, outermost first.
    let mut path: Vec<String> = Vec::new();
    let mut message = OutboundMessage::default();
    let mut current: Option<Notification> = None;
    loop {
        let event = reader
            .read_event_into(&mut buf)
            .map_err(|error| format!("the body is not well-formed XML: {error}"))?;
        match event {
            Event::Start(start) => {
                let name = String::from_utf8_lossy(start.local_name().as_ref()).into_owned();
                if name == "Notification" {
                    if message.notifications.len() >= MAX_NOTIFICATIONS {
                        return Err(format!(
                            "more than {MAX_NOTIFICATIONS} Notification elements"
                        ));
                    }
                    current = Some(Notification::default());
                } else if name == "sObject" {
                    if let Some(notification) = current.as_mut() {
                        notification.sobject_type = start
                            .attributes()
                            .flatten()
                            .find(|attribute| attribute.key.local_name().as_ref() == b"type")
                            .map(|attribute| {
                                String::from_utf8_lossy(&attribute.value).into_owned()
                            });
                    }
                }
                path.push(name);
            }
            Event::Text(text) => {
                let value = text
                    .unescape()
                    .map_err(|error| {
                        format!(
                            "bad text in <{}>: {error}",
                            path.last().map_or("", String::as_str)
                        )
                    })?
                    .into_owned();
                let parent = path.len().checked_sub(2).map(|i| path[i].as_str());
                match (parent, path.last().map(String::as_str)) {
                    (Some("notifications"), Some("OrganizationId")) => {
                        message.organization_id = value
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
            }
            Event::End(_) => {
                let closed = path.pop();
                if closed.as_deref() == Some("Notification") {
                    let notification = current.take().unwrap_or_default();
                    if notification.id.is_empty() {
                        return Err("a Notification has no Id".into());
                    }
                    message.notifications.push(notification);
                }
            }
            Event::Eof => break,
            _ => {}
        }
        buf.clear();
    }
    if message.organization_id.is_empty() {
        return Err(
            "no notifications/OrganizationId element: not a Salesforce outbound message".into(),
        );
    }
    Ok(message)
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
    canonical.conversation_id = text_at(sobject, "/Id");
    canonical.sender_id = ["/LastModifiedById", "/OwnerId", "/CreatedById"]
        .iter()
        .find_map(|p| text_at(sobject, p));
    canonical.text = ["/Subject", "/Description", "/Name"]
        .iter()
        .find_map(|p| text_at(sobject, p));
    canonical.sent_at = ["/LastModifiedDate", "/CreatedDate"]
        .iter()
        .find_map(|p| text_at(sobject, p))
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
}
