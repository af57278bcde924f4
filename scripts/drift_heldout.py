#!/usr/bin/env python3
"""Writes queue/tests/drift/heldout.json: the HELD-OUT drift corpus.

This corpus is not the one healing is developed against (that is scripts/drift_corpus.py and
corpus.json). It was written from the platforms' and transports' published documentation, before
any change to the healing code for these kinds and without reading that code, so that it measures
how healing generalises rather than what it was tuned on. It uses its own ids, names, texts and
body variants. The case schema is corpus.json's:

    {"id": "<platform>/<drift>/<script>", "platform", "hint", "drift", "lane",
     "payload" (a JSON value) or "raw" (the body as received, when it is text),
     "expect": {"conversation_id", "sender_id", "text"}}   ({} for lane "model")

Expected fields follow docs/CANONICAL.md (Telegram `message.chat.id` / `message.from.id` /
`text` else `caption`; WhatsApp `messages[0].from` for both ids, `text.body` else a media
`caption`; Slack `event.channel` / `event.user` / `event.text`; Salesforce the sObject `Id` /
`LastModifiedById` / `Subject` else `Description`; Standard Webhooks `data.conversation_id` /
`data.sender_id` / `data.text`). Lane "model" cases are those where any deterministic answer
would be a guess (two conversations of equal standing).

Sources, per platform body:
- Telegram: Bot API, "Update", "Message", "PhotoSize" (core.telegram.org/bots/api).
- WhatsApp: Cloud API "messages webhook reference" (developers.facebook.com, WhatsApp Business
  Platform, webhooks/reference/messages): object / entry[].changes[].value with metadata,
  contacts[].wa_id and messages[] (text; image with caption).
- Slack: Events API "event_callback" envelope, "message" and "app_mention" events (api.slack.com).
- Salesforce: "Outbound Messaging" SOAP notifications (notifications / Notification / sObject,
  namespace http://soap.sforce.com/2005/09/outbound). Subject is 255 characters at most, so the
  2,000-character text goes in Description.
- Standard Webhooks: the spec's payload structure {type, timestamp, data} (standardwebhooks.com).

Sources, per transport:
- gcp_pubsub_push: Pub/Sub "Push subscriptions" (cloud.google.com/pubsub/docs/push): wrapped
  push body {"message": {"attributes", "data" (base64), "messageId", "message_id",
  "publishTime", "publish_time"}, "subscription", "deliveryAttempt"?}; PubsubMessage REST
  reference for the field types.
- eventarc_pubsub: Eventarc "CloudEvents - JSON event format" (cloud.google.com/eventarc/docs/
  cloudevents-json) and google-cloudevents MessagePublishedData: type
  google.cloud.pubsub.topic.v1.messagePublished, source //pubsub.googleapis.com/projects/...,
  data {"subscription", "message": {...}}.
- sns_notification: Amazon SNS "HTTP/HTTPS notification JSON format"
  (docs.aws.amazon.com/sns/latest/dg/http-notification-json.html).
- sqs_lambda_batch: AWS Lambda "Using Lambda with Amazon SQS" example event (Records[] with
  messageId, receiptHandle, body, attributes, messageAttributes, md5OfBody, eventSource aws:sqs,
  eventSourceARN, awsRegion); Powertools SqsEvent schema.
- sns_to_sqs: Amazon SNS "Fanout to Amazon SQS queues": without raw message delivery the SQS
  body is the SNS notification JSON (Type, MessageId, TopicArn, Message, Timestamp,
  SignatureVersion, Signature, SigningCertURL, UnsubscribeURL).
- sns_lambda: AWS Lambda "Using Lambda with Amazon SNS" example event (Records[].Sns with
  SigningCertUrl / UnsubscribeUrl spelt as Lambda spells them); Powertools SnsEvent schema.
- kinesis_lambda: AWS Lambda "Using Lambda with Kinesis" example event (Records[].kinesis with
  kinesisSchemaVersion, partitionKey, sequenceNumber, data (base64),
  approximateArrivalTimestamp; eventID, eventName aws:kinesis:record, invokeIdentityArn).
- msk_kafka_lambda: AWS Lambda "Using Lambda with Amazon MSK" / "with self-managed Apache
  Kafka" example events (eventSource aws:kafka or SelfManagedKafka, eventSourceArn,
  bootstrapServers, records {"<topic>-<partition>": [{topic, partition, offset, timestamp,
  timestampType, key (base64), value (base64), headers [{name: [bytes]}]}]}).
- cloudwatch_logs_subscription: CloudWatch Logs "Subscription filters" / Lambda "Using Lambda
  with CloudWatch Logs": {"awslogs": {"data": base64(gzip(JSON {messageType DATA_MESSAGE,
  owner, logGroup, logStream, subscriptionFilters, logEvents [{id, timestamp, message}]}))}}.
  The same gzip-compressed document is a Kinesis record's data when the subscription's
  destination is a Kinesis stream (combination kinesis_cloudwatch_logs).
- azure_event_grid: Azure Event Grid "Event Grid event schema" (learn.microsoft.com/azure/
  event-grid/event-schema): an array with one event {id, topic, subject, eventType, eventTime,
  data, dataVersion, metadataVersion}.
- azure_storage_queue: Azure Queue Storage REST "Get Messages" response (QueueMessagesList /
  QueueMessage: MessageId, InsertionTime, ExpirationTime, PopReceipt, TimeNextVisible,
  DequeueCount, MessageText) and the JS SDK DequeuedMessageItem (messageId, insertedOn,
  expiresOn, popReceipt, nextVisibleOn, dequeueCount, messageText); the Functions queue trigger
  documents that messages are base64-encoded by default.
- azure_service_bus: the Service Bus connector's message (Logic Apps / Azure connectors
  ServiceBusMessage: ContentData (base64), ContentType, ContentTransferEncoding, Properties,
  MessageId, SequenceNumber, LockToken, ...).
- cloudflare_queue_batch: Cloudflare Queues "JavaScript APIs" (MessageBatch {queue, messages
  [{id, timestamp, body, attempts}]}).
- twilio_sms_form, twilio_whatsapp_form: Twilio "Our request to your incoming message webhook
  URL" (twilio.com/docs/messaging/guides/webhook-request): application/x-www-form-urlencoded
  with ToCountry, ToState, SmsMessageSid, NumMedia, ToCity, FromZip, SmsSid, FromState,
  SmsStatus, FromCity, Body, FromCountry, To, MessagingServiceSid, ToZip, NumSegments,
  MessageSid, AccountSid, From, ApiVersion; for WhatsApp also ProfileName, WaId, MessageType and
  From/To as whatsapp:+E.164.
- vonage_inbound_sms: Vonage "Inbound SMS" guide (developer.vonage.com/messaging/sms/guides/
  inbound-sms): msisdn, to, messageId, text, type (text / unicode), keyword,
  message-timestamp, api-key; sent as JSON, or as GET query parameters.
- lambda_proxy_form_json: API Gateway Lambda proxy integration input (REST API 1.0 and HTTP API
  2.0 payload formats).

The serialisations (JSON with comments, JSON5, YAML, JSON in XML, query strings, entities,
compression) follow JSON5 (json5.org), YAML 1.2 block style as PyYAML's default dump writes it,
RFC 3986 percent-encoding, RFC 4648 base64 / base64url, RFC 1950 / 1951 / 1952.

Texts rotate through Latin, right-to-left, CJK, emoji sequences, combining marks and a
2,000-character message; a platform limit is respected where one is documented (Telegram and
WhatsApp captions, SMS bodies, the Salesforce Subject). The output is deterministic (no clock,
no randomness; gzip with mtime 0). At the end the script reloads what it wrote, decodes every
layer it built and checks that each case's expected fields come out of the innermost body by the
documented field mapping, so the corpus is internally consistent.

Run: python3 scripts/drift_heldout.py
"""

import base64
import gzip
import hashlib
import html
import json
import os
import re
import urllib.parse
import xml.etree.ElementTree as ET
import zlib
from xml.sax.saxutils import escape as xml_escape

# ---------------------------------------------------------------------------------------------
# Texts
# ---------------------------------------------------------------------------------------------


def _long_text():
    sentence = "Order 7731 follow-up: the replacement kettle still trips the breaker every morning at seven. "
    base = sentence * 30
    text = base[:2000]
    if text[-1] == " ":
        text = base[:1999] + "!"
    assert len(text) == 2000 and not text[-1].isspace()
    return text


TEXTS = {
    "latin": "Hi, the blender I ordered arrived with a cracked jug. Could you send a replacement by Friday?",
    "rtl": "\u0645\u0631\u062d\u0628\u0627\u060c \u0648\u0635\u0644 \u0627\u0644\u0637\u0644\u0628 \u0646\u0627\u0642\u0635\u0627\u064b \u0642\u0637\u0639\u0629 \u0648\u0627\u062d\u062f\u0629. "
    "\u05e9\u05dc\u05d5\u05dd, \u05d1\u05d4\u05d6\u05de\u05e0\u05d4 \u05e9\u05dc\u05d9 \u05d7\u05e1\u05e8 \u05e4\u05e8\u05d9\u05d8 \u05d0\u05d7\u05d3.",
    "cjk": "\u5feb\u9012\u663e\u793a\u5df2\u7b7e\u6536\uff0c\u4f46\u6211\u6ca1\u6709\u6536\u5230\u3002"
    "\u8377\u7269\u304c\u5c4a\u3044\u3066\u3044\u307e\u305b\u3093\u3002\ubc30\uc1a1 \uc870\ud68c\ub97c \ubd80\ud0c1\ub4dc\ub9bd\ub2c8\ub2e4.",
    "emoji": "Got it \U0001F64C but the lid is broken \U0001F494\U0001F964 \U0001F468\U0001F3FD\u200D\U0001F373 "
    "\U0001F9D1\u200D\U0001F91D\u200D\U0001F9D1 \U0001F1F0\U0001F1EA \u270C\U0001F3FF",
    "combining": "Le re\u0301cipient est fe\u0302le\u0301 \u2014 Vie\u0323\u0302t: ca\u0301i no\u0302\u0300i bi\u0323 ho\u031b\u0309ng; n\u0303 a\u0308 o\u030a",
    "long": _long_text(),
}
SCRIPTS = list(TEXTS)
NO_LONG = ("long",)

# ---------------------------------------------------------------------------------------------
# Deterministic filler values
# ---------------------------------------------------------------------------------------------


def hexs(seed, n):
    out = ""
    i = 0
    while len(out) < n:
        out += hashlib.sha256(f"{seed}:{i}".encode()).hexdigest()
        i += 1
    return out[:n]


def uuid_of(seed):
    h = hexs(seed, 32)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:32]}"


def digits_of(seed, n):
    return "".join(str(int(c, 16) % 10) for c in hexs(seed, n))


def b64(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.b64encode(data).decode("ascii")


def b64url_nopad(data):
    if isinstance(data, str):
        data = data.encode("utf-8")
    return base64.urlsafe_b64encode(data).decode("ascii").rstrip("=")


def unb64(s):
    return base64.b64decode(s + "=" * (-len(s) % 4), validate=False)


def unb64url(s):
    return base64.urlsafe_b64decode(s + "=" * (-len(s) % 4))


def as_text(body):
    return body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)


def parse_body(text):
    """The inner body from its text: SOAP stays text, JSON is parsed."""
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    return text if text.lstrip().startswith("<") else json.loads(text)


def gz(data):
    return gzip.compress(data.encode("utf-8"), mtime=0)


def deflate_raw(data):
    c = zlib.compressobj(9, zlib.DEFLATED, -15)
    return c.compress(data.encode("utf-8")) + c.flush()


# ---------------------------------------------------------------------------------------------
# Platform bodies (from each platform's documentation)
# ---------------------------------------------------------------------------------------------

TG_PRIVATE_USER = {"id": 5512039477, "is_bot": False, "first_name": "Dilnoza", "last_name": "Rashidova", "username": "dilnoza_r", "language_code": "uz"}
TG_PRIVATE_CHAT = {"id": 5512039477, "first_name": "Dilnoza", "last_name": "Rashidova", "username": "dilnoza_r", "type": "private"}
TG_GROUP_USER = {"id": 6120334589, "is_bot": False, "first_name": "Bongani", "username": "bongani_m", "language_code": "en"}
TG_GROUP_CHAT = {"id": -1001987654321, "title": "Orchard Street Tenants", "type": "supergroup"}


def telegram_body(variant, text):
    if variant == "private":
        body = {"update_id": 904417230, "message": {"message_id": 2207, "from": dict(TG_PRIVATE_USER), "chat": dict(TG_PRIVATE_CHAT), "date": 1773480413, "text": text}}
        return body, ("5512039477", "5512039477", text)
    if variant == "edited":
        body = {
            "update_id": 904417232,
            "edited_message": {"message_id": 2206, "from": dict(TG_PRIVATE_USER), "chat": dict(TG_PRIVATE_CHAT), "date": 1773480290, "edit_date": 1773480413, "text": text},
        }
        return body, ("5512039477", "5512039477", text)
    if variant == "group":
        body = {"update_id": 904417231, "message": {"message_id": 88, "from": dict(TG_GROUP_USER), "chat": dict(TG_GROUP_CHAT), "date": 1773480413, "text": text}}
        return body, ("-1001987654321", "6120334589", text)
    if variant == "photo":
        assert len(text) <= 1024, "a Telegram caption is 0-1024 characters"
        body = {
            "update_id": 904417233,
            "message": {
                "message_id": 89,
                "from": dict(TG_GROUP_USER),
                "chat": dict(TG_GROUP_CHAT),
                "date": 1773480413,
                "photo": [
                    {"file_id": "AgACAgQAAxkBAAIBWWb1c0Rk9XnQm3pTt2Hc_small", "file_unique_id": "AQADr7ExG8sQ1VJ4", "file_size": 1432, "width": 90, "height": 68},
                    {"file_id": "AgACAgQAAxkBAAIBWWb1c0Rk9XnQm3pTt2Hc_large", "file_unique_id": "AQADr7ExG8sQ1VJ-", "file_size": 118204, "width": 1280, "height": 960},
                ],
                "caption": text,
            },
        }
        return body, ("-1001987654321", "6120334589", text)
    raise ValueError(variant)


def whatsapp_body(variant, text, wa_from=None):
    if variant == "text":
        wa_id, name = "14155550183", "Teodora Vasquez"
        message = {"from": wa_id, "id": "wamid.HBgLMTQxNTU1NTAxODMVAgASGBYzRUIwNEMyQjVBOTFGNjc4RDJFMQA=", "timestamp": "1773480413", "type": "text", "text": {"body": text}}
    elif variant == "image":
        assert len(text) <= 1024, "a WhatsApp media caption is 1024 characters at most"
        wa_id, name = "5511987650321", "Jo\u00e3o Pedro Alves"
        message = {
            "from": wa_id,
            "id": "wamid.HBgNNTUxMTk4NzY1MDMyMRUCABIYFjNFQjBBN0M0RTI5RjYxMDNCMkQ0AA==",
            "timestamp": "1773480413",
            "type": "image",
            "image": {"caption": text, "mime_type": "image/jpeg", "sha256": "2f1c0b5e7a9d4c3b8e6f1a0d9c8b7a6f5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b", "id": "1046283759012345"},
        }
    else:
        raise ValueError(variant)
    body = {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "398127465012345",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15557340912", "phone_number_id": "118273645509876"},
                            "contacts": [{"profile": {"name": name}, "wa_id": wa_from or wa_id}],
                            "messages": [dict(message, **({"from": wa_from} if wa_from else {}))],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }
    return body, (wa_id, wa_id, text)


SLACK_BOT = "U06BOT7Q8R9"


def slack_body(variant, text):
    ts = "1773480413.618309"
    event_context = "4-" + b64url_nopad(json.dumps({"et": variant if variant == "app_mention" else "message", "tid": "T05NQ8ZR2AB", "aid": "A06H7PQ3RST", "cid": "C08B2QX7T9L"}, separators=(",", ":")))
    if variant == "message":
        event = {
            "type": "message",
            "channel": "C08B2QX7T9L",
            "user": "U07K1L2M3N4",
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "channel_type": "channel",
            "client_msg_id": "3f9c2a71-5b8e-4d02-9a6c-1e7f4b2d8c55",
            "team": "T05NQ8ZR2AB",
        }
    elif variant == "app_mention":
        text = f"<@{SLACK_BOT}> {text}"
        event = {
            "type": "app_mention",
            "user": "U07K1L2M3N4",
            "text": text,
            "ts": ts,
            "client_msg_id": "9a0e6d42-1c7b-4f3a-8e25-6b9d0c4f7a13",
            "team": "T05NQ8ZR2AB",
            "channel": "C08B2QX7T9L",
            "event_ts": ts,
        }
    else:
        raise ValueError(variant)
    body = {
        "token": "Jhj5dZrVaK7ZwHHjRyZWjbDl",
        "team_id": "T05NQ8ZR2AB",
        "context_team_id": "T05NQ8ZR2AB",
        "context_enterprise_id": None,
        "api_app_id": "A06H7PQ3RST",
        "event": event,
        "type": "event_callback",
        "event_id": "Ev08C4H2JK9M",
        "event_time": 1773480413,
        "authorizations": [{"enterprise_id": None, "team_id": "T05NQ8ZR2AB", "user_id": SLACK_BOT, "is_bot": True, "is_enterprise_install": False}],
        "is_ext_shared_channel": False,
        "event_context": event_context,
    }
    return body, ("C08B2QX7T9L", "U07K1L2M3N4", text)


SF_ORG = "00D5e000001AbCdEAK"


def salesforce_soap(variant, text):
    escaped = xml_escape(text)
    field = "Subject" if len(text) <= 255 else "Description"
    if variant == "case":
        sobject_id, modified_by = "5005e00000QrStUAAV", "0055e000008FgHiAAK"
        soap = (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
            "  <soapenv:Body>\n"
            '    <notifications xmlns="http://soap.sforce.com/2005/09/outbound">\n'
            f"      <OrganizationId>{SF_ORG}</OrganizationId>\n"
            "      <ActionId>04k5e000000XyZ9AAK</ActionId>\n"
            '      <SessionId xsi:nil="true"/>\n'
            "      <EnterpriseUrl>https://orchard-living.my.salesforce.com/services/Soap/c/61.0/00D5e000001AbCd</EnterpriseUrl>\n"
            "      <PartnerUrl>https://orchard-living.my.salesforce.com/services/Soap/u/61.0/00D5e000001AbCd</PartnerUrl>\n"
            "      <Notification>\n"
            "        <Id>04l5e00000ABCDeAAM</Id>\n"
            '        <sObject xsi:type="sf:Case" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n'
            f"          <sf:Id>{sobject_id}</sf:Id>\n"
            "          <sf:CaseNumber>00001042</sf:CaseNumber>\n"
            f"          <sf:LastModifiedById>{modified_by}</sf:LastModifiedById>\n"
            "          <sf:OwnerId>0055e00000Zz9y8AAB</sf:OwnerId>\n"
            "          <sf:Status>New</sf:Status>\n"
            f"          <sf:{field}>{escaped}</sf:{field}>\n"
            "        </sObject>\n"
            "      </Notification>\n"
            "    </notifications>\n"
            "  </soapenv:Body>\n"
            "</soapenv:Envelope>\n"
        )
    elif variant == "task":
        sobject_id, modified_by = "00T5e00000KlMnOEAZ", "0055e00000Q1w2XAAR"
        soap = (
            '<?xml version="1.0" encoding="UTF-8"?>'
            '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
            'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
            '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
            f"<OrganizationId>{SF_ORG}</OrganizationId><ActionId>04k5e000000Pq7RAAS</ActionId>"
            '<SessionId xsi:nil="true"/>'
            "<EnterpriseUrl>https://orchard-living.my.salesforce.com/services/Soap/c/61.0/00D5e000001AbCd</EnterpriseUrl>"
            "<PartnerUrl>https://orchard-living.my.salesforce.com/services/Soap/u/61.0/00D5e000001AbCd</PartnerUrl>"
            "<Notification><Id>04l5e00000FGHIjAAQ</Id>"
            '<sObject xsi:type="sf:Task" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            f"<sf:Id>{sobject_id}</sf:Id><sf:CreatedById>0055e00000Q1w2XAAR</sf:CreatedById>"
            f"<sf:LastModifiedById>{modified_by}</sf:LastModifiedById><sf:Priority>High</sf:Priority>"
            f"<sf:Status>Not Started</sf:Status><sf:{field}>{escaped}</sf:{field}>"
            "</sObject></Notification></notifications></soapenv:Body></soapenv:Envelope>"
        )
    else:
        raise ValueError(variant)
    return soap, (sobject_id, modified_by, text)


def standard_body(variant, text):
    body = {
        "type": "message.created",
        "timestamp": "2026-03-14T09:26:53.618Z",
        "data": {"id": "msg_01HV7Q2Z9K", "conversation_id": "cnv_5d0a9e71", "sender_id": "usr_19bc4f", "sender_name": "Oksana Hrytsenko", "text": text},
    }
    return body, ("cnv_5d0a9e71", "usr_19bc4f", text)


BUILDERS = {"telegram": telegram_body, "whatsapp": whatsapp_body, "slack": slack_body, "salesforce": salesforce_soap, "standard": standard_body}
NO_LONG_VARIANTS = {("telegram", "photo"), ("whatsapp", "image")}


def exclude_for(platform, variant):
    return NO_LONG if (platform, variant) in NO_LONG_VARIANTS else ()


# ---------------------------------------------------------------------------------------------
# Reference readers (docs/CANONICAL.md's mapping), used by the self-check only
# ---------------------------------------------------------------------------------------------


def id_str(v, phone=False):
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    s = str(v)
    if phone:
        s = re.sub(r"\D", "", s)
    return s


def read_telegram(b):
    m = next(b[k] for k in ("message", "edited_message", "channel_post", "edited_channel_post") if k in b)
    text = m.get("text", m.get("caption"))
    return id_str(m["chat"]["id"]), id_str(m["from"]["id"]), text


def read_whatsapp(b, phone=False):
    v = b["entry"][0]["changes"][0]["value"]
    m = v["messages"][0]
    if "text" in m:
        text = m["text"]["body"]
    else:
        text = next(m[k]["caption"] for k in ("image", "video", "document") if k in m)
    assert any(id_str(c["wa_id"], phone) == id_str(m["from"], phone) for c in v["contacts"]), "contacts[].wa_id names the sender"
    return id_str(m["from"], phone), id_str(m["from"], phone), text


def read_slack(b):
    e = b["event"]
    assert b["type"] == "event_callback"
    return e["channel"], e.get("user", e.get("bot_id")), e["text"]


def read_salesforce(soap):
    ns = {"s": "http://schemas.xmlsoap.org/soap/envelope/", "o": "http://soap.sforce.com/2005/09/outbound", "sf": "urn:sobject.enterprise.soap.sforce.com"}
    root = ET.fromstring(soap.encode("utf-8"))
    sobj = root.find("s:Body/o:notifications/o:Notification/o:sObject", ns)

    def field(name):
        el = sobj.find(f"sf:{name}", ns)
        return None if el is None else el.text

    sender = field("LastModifiedById") or field("OwnerId") or field("CreatedById")
    text = field("Subject") or field("Description") or field("Name")
    return field("Id"), sender, text


def read_standard(b):
    d = b["data"]
    return d["conversation_id"], d["sender_id"], d["text"]


READERS = {"telegram": read_telegram, "whatsapp": read_whatsapp, "slack": read_slack, "salesforce": read_salesforce, "standard": read_standard}

# ---------------------------------------------------------------------------------------------
# Transports (built as documented), each with its decoder for the self-check
# ---------------------------------------------------------------------------------------------

ACCOUNT = "210987654321"
REGION = "eu-central-1"
T0 = "2026-03-14T09:26:53.618Z"


def pubsub_push(body, seed, attributes=None, delivery_attempt=False):
    mid = digits_of(seed, 16)
    msg = {
        "attributes": attributes if attributes is not None else {"origin": "edge-relay-3", "content-type": "application/json"},
        "data": b64(as_text(body)),
        "messageId": mid,
        "message_id": mid,
        "publishTime": T0,
        "publish_time": T0,
    }
    out = {"message": msg, "subscription": "projects/orchard-prod-4471/subscriptions/inbound-webhooks-push"}
    if delivery_attempt:
        out["deliveryAttempt"] = 2
    return out


def un_pubsub(p):
    return parse_body(unb64(p["message"]["data"]))


def eventarc_pubsub(body, seed):
    mid = digits_of(seed, 16)
    return {
        "specversion": "1.0",
        "id": mid,
        "source": "//pubsub.googleapis.com/projects/orchard-prod-4471/topics/inbound-webhooks",
        "type": "google.cloud.pubsub.topic.v1.messagePublished",
        "datacontenttype": "application/json",
        "time": T0,
        "data": {
            "subscription": "projects/orchard-prod-4471/subscriptions/eventarc-europe-west1-hook-trigger-sub-281",
            "message": {"attributes": {"origin": "edge-relay-3"}, "data": b64(as_text(body)), "messageId": mid, "publishTime": T0},
        },
    }


def un_eventarc(p):
    assert p["type"] == "google.cloud.pubsub.topic.v1.messagePublished"
    return parse_body(unb64(p["data"]["message"]["data"]))


def sns_notification(message_text, seed, subject="inbound webhook", attributes=None):
    mid = uuid_of(seed)
    sub_id = uuid_of(seed + "/sub")
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:inbound-webhooks"
    out = {"Type": "Notification", "MessageId": mid, "TopicArn": topic}
    if subject is not None:
        out["Subject"] = subject
    out.update(
        {
            "Message": message_text,
            "Timestamp": T0,
            "SignatureVersion": "2",
            "Signature": b64(hashlib.sha512(seed.encode()).digest() * 4),
            "SigningCertURL": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-{hexs(seed + '/cert', 32)}.pem",
            "UnsubscribeURL": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic}:{sub_id}",
        }
    )
    if attributes:
        out["MessageAttributes"] = attributes
    return out


def un_sns(p):
    assert p["Type"] == "Notification"
    return parse_body(p["Message"])


def sqs_record(body_text, seed):
    sent = "1773480413618"
    return {
        "messageId": uuid_of(seed),
        "receiptHandle": "AQEB" + b64(hashlib.sha256(seed.encode()).digest() * 3).rstrip("="),
        "body": body_text,
        "attributes": {"ApproximateReceiveCount": "1", "SentTimestamp": sent, "SenderId": "AIDAJQ4X7NSEXAMPLE2ID", "ApproximateFirstReceiveTimestamp": "1773480413640"},
        "messageAttributes": {},
        "md5OfBody": hashlib.md5(body_text.encode("utf-8")).hexdigest(),
        "eventSource": "aws:sqs",
        "eventSourceARN": f"arn:aws:sqs:{REGION}:{ACCOUNT}:inbound-webhooks",
        "awsRegion": REGION,
    }


def sqs_batch(body, seed):
    return {"Records": [sqs_record(as_text(body), seed)]}


def un_sqs(p):
    (r,) = p["Records"]
    assert r["eventSource"] == "aws:sqs" and r["md5OfBody"] == hashlib.md5(r["body"].encode("utf-8")).hexdigest()
    return parse_body(r["body"])


def sns_to_sqs(body, seed):
    sns = sns_notification(as_text(body), seed + "/sns", subject=None)
    return {"Records": [sqs_record(json.dumps(sns, ensure_ascii=False, indent=2), seed)]}


def un_sns_to_sqs(p):
    (r,) = p["Records"]
    return un_sns(json.loads(r["body"]))


def sns_lambda(body, seed, attributes=None):
    topic = f"arn:aws:sns:{REGION}:{ACCOUNT}:inbound-webhooks"
    sns = {
        "Type": "Notification",
        "MessageId": uuid_of(seed),
        "TopicArn": topic,
        "Subject": None,
        "Message": as_text(body),
        "Timestamp": T0,
        "SignatureVersion": "1",
        "Signature": b64(hashlib.sha512(seed.encode()).digest() * 4),
        "SigningCertUrl": f"https://sns.{REGION}.amazonaws.com/SimpleNotificationService-{hexs(seed + '/cert', 32)}.pem",
        "UnsubscribeUrl": f"https://sns.{REGION}.amazonaws.com/?Action=Unsubscribe&SubscriptionArn={topic}:{uuid_of(seed + '/sub')}",
        "MessageAttributes": attributes or {},
    }
    return {"Records": [{"EventSource": "aws:sns", "EventVersion": "1.0", "EventSubscriptionArn": f"{topic}:{uuid_of(seed + '/sub')}", "Sns": sns}]}


def un_sns_lambda(p):
    (r,) = p["Records"]
    assert r["EventSource"] == "aws:sns"
    return parse_body(r["Sns"]["Message"])


def kinesis_lambda(data_bytes_b64, seed, partition_key="tenant-orchard"):
    seq = "4965" + digits_of(seed, 52)
    return {
        "Records": [
            {
                "kinesis": {"kinesisSchemaVersion": "1.0", "partitionKey": partition_key, "sequenceNumber": seq, "data": data_bytes_b64, "approximateArrivalTimestamp": 1773480413.618},
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": f"shardId-000000000003:{seq}",
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": f"arn:aws:iam::{ACCOUNT}:role/webhook-consumer",
                "awsRegion": REGION,
                "eventSourceARN": f"arn:aws:kinesis:{REGION}:{ACCOUNT}:stream/inbound-webhooks",
            }
        ]
    }


def un_kinesis_raw(p):
    (r,) = p["Records"]
    assert r["eventSource"] == "aws:kinesis"
    return unb64(r["kinesis"]["data"])


def kafka_lambda(body, seed, self_managed=False):
    topic = "inbound-webhooks"
    record = {
        "topic": topic,
        "partition": 0,
        "offset": int(digits_of(seed, 5)),
        "timestamp": 1773480413618,
        "timestampType": "CREATE_TIME",
        "key": b64("tenant-orchard"),
        "value": b64(as_text(body)),
        "headers": [] if self_managed else [{"content-type": list(b"application/json")}],
    }
    if self_managed:
        out = {"eventSource": "SelfManagedKafka", "bootstrapServers": "kafka-1.orchard.internal:9092,kafka-2.orchard.internal:9092"}
    else:
        out = {
            "eventSource": "aws:kafka",
            "eventSourceArn": f"arn:aws:kafka:{REGION}:{ACCOUNT}:cluster/hooks-cluster/{uuid_of(seed)}-2",
            "bootstrapServers": f"b-1.hookscluster.x1y2z3.c2.kafka.{REGION}.amazonaws.com:9098,b-2.hookscluster.x1y2z3.c2.kafka.{REGION}.amazonaws.com:9098",
        }
    out["records"] = {f"{topic}-0": [record]}
    return out


def un_kafka(p):
    (records,) = p["records"].values()
    (r,) = records
    return parse_body(unb64(r["value"]))


def cwl_document(message, seed):
    return {
        "messageType": "DATA_MESSAGE",
        "owner": ACCOUNT,
        "logGroup": "/aws/lambda/webhook-ingest",
        "logStream": f"2026/03/14/[$LATEST]{hexs(seed, 32)}",
        "subscriptionFilters": ["forward-inbound-webhooks"],
        "logEvents": [{"id": "3" + digits_of(seed + "/id", 55), "timestamp": 1773480413618, "message": message}],
    }


def cloudwatch_logs(body, seed):
    doc = cwl_document(as_text(body), seed)
    return {"awslogs": {"data": b64(gz(json.dumps(doc, ensure_ascii=False, separators=(",", ":"))))}}


def un_cwl_doc(raw_bytes):
    doc = json.loads(gzip.decompress(raw_bytes))
    assert doc["messageType"] == "DATA_MESSAGE"
    (ev,) = doc["logEvents"]
    return parse_body(ev["message"])


def un_cloudwatch_logs(p):
    return un_cwl_doc(unb64(p["awslogs"]["data"]))


def event_grid(data, seed, subject):
    return [
        {
            "id": uuid_of(seed),
            "topic": "/subscriptions/8f2d6c1a-3b5e-4d7f-9a1c-2e4b6d8f0a13/resourceGroups/hooks-rg/providers/Microsoft.EventGrid/topics/inbound-webhooks",
            "subject": subject,
            "eventType": "Orchard.Webhooks.Received",
            "eventTime": "2026-03-14T09:26:53.6181234Z",
            "data": data,
            "dataVersion": "1.0",
            "metadataVersion": "1",
        }
    ]


def un_event_grid(p):
    (e,) = p
    d = e["data"]
    return parse_body(d) if isinstance(d, str) else d


def storage_queue_xml(body, seed):
    return (
        '<?xml version="1.0" encoding="utf-8"?>'
        "<QueueMessagesList><QueueMessage>"
        f"<MessageId>{uuid_of(seed)}</MessageId>"
        "<InsertionTime>Sat, 14 Mar 2026 09:26:53 GMT</InsertionTime>"
        "<ExpirationTime>Sat, 21 Mar 2026 09:26:53 GMT</ExpirationTime>"
        f"<PopReceipt>{b64(hashlib.sha1(seed.encode()).digest())}</PopReceipt>"
        "<TimeNextVisible>Sat, 14 Mar 2026 09:27:23 GMT</TimeNextVisible>"
        "<DequeueCount>1</DequeueCount>"
        f"<MessageText>{b64(as_text(body))}</MessageText>"
        "</QueueMessage></QueueMessagesList>"
    )


def un_storage_queue_xml(raw):
    root = ET.fromstring(raw.encode("utf-8"))
    return parse_body(unb64(root.find("QueueMessage/MessageText").text))


def storage_queue_sdk(body, seed):
    return {
        "messageId": uuid_of(seed),
        "insertedOn": "2026-03-14T09:26:53.000Z",
        "expiresOn": "2026-03-21T09:26:53.000Z",
        "popReceipt": b64(hashlib.sha1(seed.encode()).digest()),
        "nextVisibleOn": "2026-03-14T09:27:23.000Z",
        "dequeueCount": 1,
        "messageText": b64(as_text(body)),
    }


def un_storage_queue_sdk(p):
    return parse_body(unb64(p["messageText"]))


def service_bus(body, seed):
    lock = uuid_of(seed + "/lock")
    mid = hexs(seed, 32)
    return {
        "ContentData": b64(as_text(body)),
        "ContentType": "application/xml" if isinstance(body, str) else "application/json",
        "ContentTransferEncoding": "Base64",
        "Properties": {
            "DeliveryCount": "1",
            "EnqueuedSequenceNumber": "0",
            "EnqueuedTimeUtc": "2026-03-14T09:26:53Z",
            "ExpiresAtUtc": "2026-03-28T09:26:53Z",
            "LockedUntilUtc": "2026-03-14T09:27:53Z",
            "LockToken": lock,
            "MessageId": mid,
            "ScheduledEnqueueTimeUtc": "0001-01-01T00:00:00Z",
            "SequenceNumber": "8821",
            "Size": str(len(as_text(body).encode("utf-8")) + 112),
            "State": "Active",
            "TimeToLive": "14.00:00:00",
        },
        "MessageId": mid,
        "To": None,
        "ReplyTo": None,
        "ReplyToSessionId": None,
        "Label": "inbound-webhook",
        "ScheduledEnqueueTimeUtc": "0001-01-01T00:00:00Z",
        "SessionId": None,
        "CorrelationId": None,
        "SequenceNumber": 8821,
        "LockToken": lock,
        "TimeToLive": "14.00:00:00",
    }


def un_service_bus(p):
    assert p["ContentTransferEncoding"] == "Base64"
    return parse_body(unb64(p["ContentData"]))


def cloudflare_batch(body, seed):
    return {"queue": "inbound-webhooks", "messages": [{"id": hexs(seed, 32), "timestamp": T0, "body": body, "attempts": 1}]}


def un_cloudflare(p):
    (m,) = p["messages"]
    b = m["body"]
    return parse_body(b) if isinstance(b, str) else b


TRANSPORTS = {
    # name: (build(body, seed, i) -> payload or raw text, decode(payload or raw) -> inner body)
    "gcp_pubsub_push": (lambda body, seed, i: pubsub_push(body, seed, delivery_attempt=(i % 2 == 1)), un_pubsub),
    "eventarc_pubsub": (lambda body, seed, i: eventarc_pubsub(body, seed), un_eventarc),
    "sns_notification": (
        lambda body, seed, i: sns_notification(as_text(body), seed, subject=None if i % 2 else "inbound webhook", attributes={"relay": {"Type": "String", "Value": "edge-3"}} if i % 3 == 0 else None),
        un_sns,
    ),
    "sqs_lambda_batch": (lambda body, seed, i: sqs_batch(body, seed), un_sqs),
    "sns_to_sqs": (lambda body, seed, i: sns_to_sqs(body, seed), un_sns_to_sqs),
    "sns_lambda": (lambda body, seed, i: sns_lambda(body, seed, attributes={"source": {"Type": "String", "Value": "webhook-gateway"}} if i % 2 else None), un_sns_lambda),
    "kinesis_lambda": (lambda body, seed, i: kinesis_lambda(b64(as_text(body)), seed), lambda p: parse_body(un_kinesis_raw(p))),
    "msk_kafka_lambda": (lambda body, seed, i: kafka_lambda(body, seed, self_managed=(i % 3 == 2)), un_kafka),
    "cloudwatch_logs_subscription": (lambda body, seed, i: cloudwatch_logs(body, seed), un_cloudwatch_logs),
    "azure_event_grid": (lambda body, seed, i: event_grid(body, seed, f"webhooks/inbound/{i}"), un_event_grid),
    "azure_storage_queue": (
        lambda body, seed, i: storage_queue_xml(body, seed) if i % 2 == 0 else storage_queue_sdk(body, seed),
        lambda p: un_storage_queue_xml(p) if isinstance(p, str) else un_storage_queue_sdk(p),
    ),
    "azure_service_bus": (lambda body, seed, i: service_bus(body, seed), un_service_bus),
    "cloudflare_queue_batch": (lambda body, seed, i: cloudflare_batch(body, seed), un_cloudflare),
}

# ---------------------------------------------------------------------------------------------
# Serialisations
# ---------------------------------------------------------------------------------------------

IDENT = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*\Z")


def j5_string(s, quote):
    out = [quote]
    for ch in s:
        if ch == "\\":
            out.append("\\\\")
        elif ch == quote:
            out.append("\\" + quote)
        elif ch == "\n":
            out.append("\\n")
        elif ord(ch) < 0x20:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(ch)
    out.append(quote)
    return "".join(out)


def j5_dump(obj, *, key_style='"', str_quote='"', trailing=False, comments=None, indent="  ", level=0, path=""):
    """Pretty JSON / JSON5 writer. key_style: '"', "'" or None (unquoted where an identifier);
    comments: {path: ("line" | "block" | "end", text)} written before (or, for "end", after)
    the member at that path."""
    comments = comments or {}
    pad = indent * (level + 1)

    def val(v, p):
        if isinstance(v, (dict, list)):
            return j5_dump(v, key_style=key_style, str_quote=str_quote, trailing=trailing, comments=comments, indent=indent, level=level + 1, path=p)
        if isinstance(v, str):
            return j5_string(v, str_quote)
        return json.dumps(v)

    if isinstance(obj, dict):
        items = list(obj.items())
        if not items:
            return "{}"
        lines = ["{"]
        for n, (k, v) in enumerate(items):
            p = f"{path}/{k}"
            kind, note = comments.get(p, (None, None))
            if kind == "line":
                lines.append(f"{pad}// {note}")
            elif kind == "block":
                lines.append(f"{pad}/* {note} */")
            if key_style is None and IDENT.match(k):
                key = k
            else:
                key = j5_string(k, key_style or '"')
            comma = "," if (n < len(items) - 1 or trailing) else ""
            tail = f" // {note}" if kind == "end" else ""
            lines.append(f"{pad}{key}: {val(v, p)}{comma}{tail}")
        lines.append(indent * level + "}")
        return "\n".join(lines)
    if isinstance(obj, list):
        if not obj:
            return "[]"
        lines = ["["]
        for n, v in enumerate(obj):
            comma = "," if (n < len(obj) - 1 or trailing) else ""
            lines.append(f"{pad}{val(v, f'{path}/{n}')}{comma}")
        lines.append(indent * level + "]")
        return "\n".join(lines)
    return val(obj, path)


class J5Parser:
    """A small JSON5 reader (comments, trailing commas, identifier keys, single quotes) for the
    self-check."""

    def __init__(self, text):
        self.s, self.i = text, 0

    def ws(self):
        s = self.s
        while self.i < len(s):
            if s[self.i] in " \t\r\n\ufeff":
                self.i += 1
            elif s.startswith("//", self.i):
                j = s.find("\n", self.i)
                self.i = len(s) if j < 0 else j + 1
            elif s.startswith("/*", self.i):
                self.i = s.index("*/", self.i) + 2
            else:
                break

    def parse(self):
        v = self.value()
        self.ws()
        assert self.i == len(self.s), f"trailing text at {self.i}"
        return v

    def value(self):
        self.ws()
        c = self.s[self.i]
        if c == "{":
            self.i += 1
            out = {}
            while True:
                self.ws()
                if self.s[self.i] == "}":
                    self.i += 1
                    return out
                k = self.string() if self.s[self.i] in "\"'" else self.ident()
                self.ws()
                assert self.s[self.i] == ":"
                self.i += 1
                out[k] = self.value()
                self.ws()
                if self.s[self.i] == ",":
                    self.i += 1
        if c == "[":
            self.i += 1
            out = []
            while True:
                self.ws()
                if self.s[self.i] == "]":
                    self.i += 1
                    return out
                out.append(self.value())
                self.ws()
                if self.s[self.i] == ",":
                    self.i += 1
        if c in "\"'":
            return self.string()
        m = re.compile(r"[-+]?(?:\d+\.?\d*(?:[eE][-+]?\d+)?)").match(self.s, self.i)
        if m and m.group(0):
            self.i = m.end()
            t = m.group(0)
            return float(t) if any(x in t for x in ".eE") else int(t)
        word = self.ident()
        return {"true": True, "false": False, "null": None}[word]

    def ident(self):
        m = re.compile(r"[A-Za-z_$][A-Za-z0-9_$]*").match(self.s, self.i)
        self.i = m.end()
        return m.group(0)

    def string(self):
        q = self.s[self.i]
        self.i += 1
        out = []
        while True:
            c = self.s[self.i]
            if c == q:
                self.i += 1
                return "".join(out)
            if c == "\\":
                n = self.s[self.i + 1]
                if n == "u":
                    out.append(chr(int(self.s[self.i + 2 : self.i + 6], 16)))
                    self.i += 6
                    continue
                out.append({"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f"}.get(n, n))
                self.i += 2
                continue
            out.append(c)
            self.i += 1


YAML_RESERVED = {"true", "false", "null", "yes", "no", "on", "off", "y", "n", "~", ""}
YAML_PLAIN = re.compile(r"[A-Za-z_](?:[A-Za-z0-9_.,\-/?!() ]*[A-Za-z0-9_.\-/?!)])?\Z")
YAML_NUMBERISH = re.compile(r"[-+]?[0-9][0-9_.eE+\-:]*\Z")


def yaml_scalar(v):
    if v is None:
        return "null"
    if v is True:
        return "true"
    if v is False:
        return "false"
    if isinstance(v, (int, float)):
        return json.dumps(v)
    if isinstance(v, str):
        if YAML_PLAIN.match(v) and v.lower() not in YAML_RESERVED and ": " not in v and " #" not in v:
            return v
        if YAML_NUMBERISH.match(v):
            return "'" + v.replace("'", "''") + "'"
        return json.dumps(v, ensure_ascii=False)
    raise TypeError(v)


def yaml_dump(obj):
    """Block YAML as PyYAML's default dump writes it (sequences not indented under their key)."""

    def mapping(d, ind):
        lines = []
        for k, v in d.items():
            sp = " " * ind
            key = yaml_scalar(k)
            if isinstance(v, dict) and v:
                lines.append(f"{sp}{key}:")
                lines += mapping(v, ind + 2)
            elif isinstance(v, list) and v:
                lines.append(f"{sp}{key}:")
                lines += sequence(v, ind)
            elif isinstance(v, dict):
                lines.append(f"{sp}{key}: {{}}")
            elif isinstance(v, list):
                lines.append(f"{sp}{key}: []")
            else:
                lines.append(f"{sp}{key}: {yaml_scalar(v)}")
        return lines

    def sequence(lst, ind):
        lines = []
        sp = " " * ind
        for item in lst:
            if isinstance(item, dict) and item:
                sub = mapping(item, ind + 2)
                sub[0] = sp + "- " + sub[0][ind + 2 :]
                lines += sub
            elif isinstance(item, list) and item:
                raise TypeError("nested sequences are not written")
            else:
                lines.append(f"{sp}- {yaml_scalar(item)}")
        return lines

    return "\n".join(mapping(obj, 0)) + "\n"


def yaml_load(text):
    """Reads back what yaml_dump writes (self-check only)."""
    lines = [ln for ln in text.split("\n") if ln.strip()]
    key_re = re.compile(r"([A-Za-z_][A-Za-z0-9_\-]*):(?: (.*))?\Z")

    def indent_of(ln):
        return len(ln) - len(ln.lstrip(" "))

    def scalar(s):
        if s == "null":
            return None
        if s in ("true", "false"):
            return s == "true"
        if s == "{}":
            return {}
        if s == "[]":
            return []
        if s.startswith('"'):
            return json.loads(s)
        if s.startswith("'"):
            return s[1:-1].replace("''", "'")
        if re.fullmatch(r"-?\d+", s):
            return int(s)
        if re.fullmatch(r"-?\d+\.\d*(e[-+]?\d+)?", s, re.I):
            return float(s)
        return s

    def block(i, ind):
        if lines[i].lstrip().startswith("- ") and indent_of(lines[i]) == ind:
            return seq(i, ind)
        return mapping(i, ind)

    def mapping(i, ind):
        out = {}
        while i < len(lines) and indent_of(lines[i]) == ind and not lines[i].lstrip().startswith("- "):
            m = key_re.match(lines[i][ind:])
            assert m, lines[i]
            k, rest = m.group(1), m.group(2)
            i += 1
            if rest is not None:
                out[k] = scalar(rest)
            elif i < len(lines) and indent_of(lines[i]) > ind:
                out[k], i = block(i, indent_of(lines[i]))
            elif i < len(lines) and indent_of(lines[i]) == ind and lines[i].lstrip().startswith("- "):
                out[k], i = seq(i, ind)
            else:
                out[k] = None
        return out, i

    def seq(i, ind):
        out = []
        while i < len(lines) and indent_of(lines[i]) == ind and lines[i].lstrip().startswith("- "):
            content = lines[i][ind + 2 :]
            if key_re.match(content):
                lines[i] = " " * (ind + 2) + content
                v, i = mapping(i, ind + 2)
            else:
                v, i = scalar(content), i + 1
            out.append(v)
        return out, i

    v, i = block(0, 0)
    assert i == len(lines)
    return v


def upper_snake(obj):
    if isinstance(obj, dict):
        return {re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", k).upper(): upper_snake(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [upper_snake(v) for v in obj]
    return obj


def lower_keys(obj):
    if isinstance(obj, dict):
        return {k.lower(): lower_keys(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [lower_keys(v) for v in obj]
    return obj


def sms_segments(text):
    """GSM-7 text: 160 characters, or 153 per part; otherwise UCS-2: 70 code units, or 67."""
    if text.isascii():
        return 1 if len(text) <= 160 else -(-len(text) // 153)
    units = len(text.encode("utf-16-le")) // 2
    return 1 if units <= 70 else -(-units // 67)


def exp_literal(n, style):
    sign = "-" if n < 0 else ""
    d = str(abs(n))
    mant = d[0] + "." + (d[1:].rstrip("0") or "0")
    e = len(d) - 1
    lit = f"{sign}{mant}e{e}" if style == "e" else f"{sign}{mant}E+{e:02d}"
    assert float(lit) == n
    return lit


def numeric_entities(text, hex_quotes, non_ascii=False, markup=False):
    out = []
    for ch in text:
        if ch == '"':
            out.append("&#x22;" if hex_quotes else "&#34;")
        elif markup and ch in "<>":
            out.append(f"&#{ord(ch)};")
        elif non_ascii and ord(ch) > 127:
            out.append(f"&#{ord(ch)};")
        else:
            out.append(ch)
    return "".join(out)


# ---------------------------------------------------------------------------------------------
# The corpus
# ---------------------------------------------------------------------------------------------


def main():
    cases = []
    checks = {}
    used = set()
    rot = [0]

    def pick(platform, drift, exclude=()):
        for k in range(len(SCRIPTS)):
            s = SCRIPTS[(rot[0] + k) % len(SCRIPTS)]
            if s in exclude or (platform, drift, s) in used:
                continue
            used.add((platform, drift, s))
            rot[0] = (SCRIPTS.index(s) + 1) % len(SCRIPTS)
            return s
        raise RuntimeError(f"no script left for {platform}/{drift}")

    def add(platform, hint, drift, script, value, raw, expect, check, lane="deterministic"):
        """check(value as stored) -> (conversation_id, sender_id, text) for deterministic cases,
        or the decoded inner document for model cases."""
        case = {"id": f"{platform}/{drift}/{script}", "platform": platform, "hint": hint, "drift": drift, "lane": lane}
        if raw:
            assert isinstance(value, str)
            case["raw"] = value
        else:
            case["payload"] = value
        case["expect"] = {"conversation_id": expect[0], "sender_id": expect[1], "text": expect[2]} if lane == "deterministic" else {}
        assert case["id"] not in checks, case["id"]
        cases.append(case)
        checks[case["id"]] = check

    def platform_case(platform, variant, drift, hint="same", exclude=(), script=None):
        """(script, inner body, expected triple, reader)."""
        script = script or pick(platform, drift, exclude + exclude_for(platform, variant))
        body, expect = BUILDERS[platform](variant, TEXTS[script])
        return script, body, expect, (platform if hint == "same" else hint)

    # ---- A. Transports ----------------------------------------------------------------------
    tg_first = ["private", "edited", "photo"]
    for i, (drift, (build, decode)) in enumerate(TRANSPORTS.items()):
        lineup = [
            ("telegram", tg_first[i % 3], "same"),
            ("telegram", "group", None),
            ("whatsapp", "image" if i % 3 == 2 else "text", "same"),
            ("slack", "app_mention" if i % 2 else "message", "same"),
            ("salesforce", "task" if i % 2 else "case", "same"),
            ("standard", "msg", "same"),
        ]
        for j, (platform, variant, hint) in enumerate(lineup):
            script, body, expect, hint = platform_case(platform, variant, drift, hint)
            value = build(body, f"{drift}/{platform}/{script}", i + j)
            raw = isinstance(value, str)
            add(platform, hint, drift, script, value, raw, expect, (lambda p, d=decode, pl=platform: READERS[pl](d(p))))

    # Twilio: an incoming SMS (form-encoded), no platform adapter for it.
    twilio_numbers = [("+14155550183", "US", "CA", "SAN FRANCISCO", "94105"), ("+447700900461", "GB", "", "", ""), ("+4915112345678", "DE", "", "", "")]
    for n, (frm, country, state, city, zipc) in enumerate(twilio_numbers):
        drift = "twilio_sms_form"
        script = pick("unknown", drift, NO_LONG)
        text = TEXTS[script]
        sid = "SM" + hexs(f"{drift}/{n}", 32)
        pairs = [
            ("ToCountry", "US"),
            ("ToState", "CA"),
            ("SmsMessageSid", sid),
            ("NumMedia", "0"),
            ("ToCity", "OAKLAND"),
            ("FromZip", zipc),
            ("SmsSid", sid),
            ("FromState", state),
            ("SmsStatus", "received"),
            ("FromCity", city),
            ("Body", text),
            ("FromCountry", country),
            ("To", "+15105550147"),
        ]
        if n == 1:
            pairs.append(("MessagingServiceSid", "MG" + hexs("twilio/mg", 32)))
        pairs += [("ToZip", "94612"), ("NumSegments", str(sms_segments(text))), ("MessageSid", sid), ("AccountSid", "AC" + hexs("twilio/ac", 32)), ("From", frm), ("ApiVersion", "2010-04-01")]
        raw = urllib.parse.urlencode(pairs)

        def twilio_check(r):
            q = urllib.parse.parse_qs(r, keep_blank_values=True)
            return q["From"][0], q["From"][0], q["Body"][0]

        add("unknown", "unknown" if n % 2 == 0 else None, drift, script, raw, True, (frm, frm, text), twilio_check)

    # Twilio: an incoming WhatsApp message (form-encoded), the source set up as WhatsApp.
    twilio_wa = [("14155550183", "Teodora Vasquez"), ("5511987650321", "Jo\u00e3o Pedro Alves"), ("27825550199", "Thandiwe Nkosi")]
    for n, (wa, name) in enumerate(twilio_wa):
        drift = "twilio_whatsapp_form"
        script = pick("whatsapp", drift, NO_LONG)
        text = TEXTS[script]
        sid = "SM" + hexs(f"{drift}/{n}", 32)
        pairs = [
            ("SmsMessageSid", sid),
            ("NumMedia", "0"),
            ("ProfileName", name),
            ("MessageType", "text"),
            ("SmsSid", sid),
            ("WaId", wa),
            ("SmsStatus", "received"),
            ("Body", text),
            ("To", "whatsapp:+14155238886"),
            ("NumSegments", "1"),
            ("ReferralNumMedia", "0"),
            ("MessageSid", sid),
            ("AccountSid", "AC" + hexs("twilio/ac", 32)),
            ("From", f"whatsapp:+{wa}"),
            ("ApiVersion", "2010-04-01"),
        ]
        raw = urllib.parse.urlencode(pairs)

        def twilio_wa_check(r):
            q = urllib.parse.parse_qs(r, keep_blank_values=True)
            assert q["From"][0] == "whatsapp:+" + q["WaId"][0]
            return q["WaId"][0], q["WaId"][0], q["Body"][0]

        add("whatsapp", "whatsapp", drift, script, raw, True, (wa, wa, text), twilio_wa_check)

    # Vonage (Nexmo) inbound SMS: JSON, or GET query parameters.
    vonage = [("447700900461", "447520615230", "json"), ("819012345678", "447520615230", "json"), ("4915112345678", "12015550123", "query"), ("14155550183", "12015550123", "json")]
    for n, (msisdn, to, form) in enumerate(vonage):
        drift = "vonage_inbound_sms"
        script = pick("unknown", drift, NO_LONG)
        text = TEXTS[script]
        fields = {
            "msisdn": msisdn,
            "to": to,
            "messageId": "1" + hexs(f"{drift}/{n}", 15).upper(),
            "text": text,
            "type": "text" if text.isascii() else "unicode",
            "keyword": text.split()[0].upper(),
            "api-key": hexs("vonage/key", 8),
            "message-timestamp": "2026-03-14 09:26:53",
        }
        if form == "json":
            add("unknown", None if n % 2 else "unknown", drift, script, fields, False, (msisdn, msisdn, text), lambda p: (p["msisdn"], p["msisdn"], p["text"]))
        else:
            fields["timestamp"] = "1773480413"
            raw = urllib.parse.urlencode(fields)

            def vonage_q(r):
                q = urllib.parse.parse_qs(r, keep_blank_values=True)
                return q["msisdn"][0], q["msisdn"][0], q["text"][0]

            add("unknown", "unknown", drift, script, raw, True, (msisdn, msisdn, text), vonage_q)

    # ---- B. Serialisations ------------------------------------------------------------------
    def serial(drift, lineup, make, decode_inner):
        """lineup: [(platform, variant, hint)], make(body, n) -> (value, raw?),
        decode_inner(value) -> inner body."""
        for n, (platform, variant, hint) in enumerate(lineup):
            script, body, expect, hint = platform_case(platform, variant, drift, hint)
            value, raw = make(body, n)
            add(platform, hint, drift, script, value, raw, expect, (lambda p, pl=platform: READERS[pl](decode_inner(p))))

    json_lineup = [("telegram", "private", "same"), ("whatsapp", "text", "same"), ("slack", "app_mention", "same"), ("standard", "msg", "same"), ("telegram", "photo", None)]

    comment_sets = [
        {"/update_id": ("line", "captured by relay edge-3"), "/message/chat": ("block", "chat the reply goes to"), "/message/date": ("end", "unix seconds")},
        {"/object": ("line", "WhatsApp Cloud API webhook, copied from the request log"), "/entry": ("block", "one entry per business account")},
        {"/token": ("line", "verification token (deprecated)"), "/event": ("block", "the event itself"), "/event_time": ("end", "seconds")},
        {"/type": ("end", "event type"), "/data": ("block", "payload of the event")},
        {"/message/photo": ("block", "sizes, smallest first"), "/message/caption": ("line", "caption instead of text")},
    ]

    def with_header(text, n):
        return ("// forwarded webhook body\n" if n % 2 == 0 else "/* dumped by the debug proxy */\n") + text + "\n"

    serial(
        "json_comments",
        json_lineup,
        lambda body, n: (with_header(j5_dump(body, comments=comment_sets[n]), n), True),
        lambda r: J5Parser(r).parse(),
    )

    j5_styles = [dict(key_style=None, str_quote="'", trailing=True), dict(key_style=None, str_quote='"', trailing=True), dict(key_style="'", str_quote="'", trailing=True), dict(key_style=None, str_quote="'", trailing=True, comments={"/type": ("end", "JSON5")})]
    serial(
        "json5_trailing_commas",
        [("telegram", "group", "same"), ("whatsapp", "image", "same"), ("slack", "message", "same"), ("standard", "msg", "same")],
        lambda body, n: (j5_dump(body, **j5_styles[n]) + "\n", True),
        lambda r: J5Parser(r).parse(),
    )

    qs_forms = [
        lambda t: "?payload=" + urllib.parse.quote(t, safe="") + "&sig=sha256%3D" + hexs(t, 64),
        lambda t: "event=" + urllib.parse.quote_plus(t) + "&ts=1773480413",
        lambda t: "source=relay-7&data=" + urllib.parse.quote(t, safe="") + "&nonce=" + hexs(t, 12),
        lambda t: "json=" + urllib.parse.quote_plus(t) + "&v=2",
    ]

    def qs_decode(r):
        q = urllib.parse.parse_qs(r.lstrip("?"), keep_blank_values=True)
        (doc,) = [v[0] for k, v in q.items() if k in ("payload", "event", "data", "json")]
        return json.loads(doc)

    serial(
        "query_string_json",
        [("telegram", "edited", "same"), ("slack", "message", "same"), ("whatsapp", "text", "same"), ("standard", "msg", None)],
        lambda body, n: (qs_forms[n](json.dumps(body, ensure_ascii=False, separators=(",", ":"))), True),
        qs_decode,
    )

    serial(
        "string_encoded_three_times",
        [("telegram", "private", "same"), ("whatsapp", "text", "same"), ("slack", "message", "same"), ("salesforce", "case", "same"), ("standard", "msg", "same")],
        lambda body, n: (json.dumps(json.dumps(as_text(body) if isinstance(body, str) else json.dumps(body, ensure_ascii=False), ensure_ascii=False), ensure_ascii=(n % 2 == 1)), False),
        lambda p: parse_body(json.loads(json.loads(p))),
    )

    def compressed(drift, lineup, compress, decompress, field_names):
        def make(body, n):
            enc = b64(compress(as_text(body)))
            if n % 2 == 0:
                return enc, True
            key, meta = field_names[(n // 2) % len(field_names)]
            return dict({key: enc}, **meta), False

        def decode(v):
            enc = v if isinstance(v, str) else next(val for k, val in v.items() if k in {f[0] for f in field_names})
            return parse_body(decompress(unb64(enc)))

        serial(drift, lineup, make, decode)

    compressed(
        "gzip_base64",
        [("telegram", "private", "same"), ("whatsapp", "text", "same"), ("salesforce", "case", "same"), ("slack", "message", "same")],
        gz,
        gzip.decompress,
        [("blob", {"encoding": "gzip", "received_at": "2026-03-14T09:26:53Z"}), ("archived", {"content_encoding": "gzip", "b64": True})],
    )
    compressed(
        "zlib_base64",
        [("standard", "msg", "same"), ("telegram", "group", "same"), ("whatsapp", "image", "same"), ("salesforce", "task", "same")],
        lambda t: zlib.compress(t.encode("utf-8"), 9),
        zlib.decompress,
        [("z", {"codec": "zlib", "v": 1}), ("packed", {"algo": "zlib", "relay": "edge-2"})],
    )
    compressed(
        "deflate_base64",
        [("slack", "app_mention", "same"), ("standard", "msg", "same"), ("telegram", "edited", "same"), ("whatsapp", "text", None)],
        deflate_raw,
        lambda b: zlib.decompress(b, -15),
        [("compressed", {"content_encoding": "deflate"}), ("frame", {"compression": "raw-deflate", "size": 0})],
    )

    b64u_keys = [("content_b64", {"kind": "webhook.forward"}), ("msg", {"v": 1, "enc": "base64url"}), ("b64u", {"relay": "edge-5"}), ("raw_b64url", {"received_at": "2026-03-14T09:26:53Z"}), ("content_b64", {"kind": "webhook.forward", "format": "xml"})]
    serial(
        "base64url_in_field",
        [("telegram", "group", "same"), ("whatsapp", "text", "same"), ("slack", "message", "same"), ("standard", "msg", "same"), ("salesforce", "task", "same")],
        lambda body, n: (dict({b64u_keys[n][0]: b64url_nopad(as_text(body))}, **b64u_keys[n][1]), False),
        lambda p: parse_body(unb64url(next(v for k, v in p.items() if k in ("content_b64", "msg", "b64u", "raw_b64url")))),
    )

    unusual = [
        lambda t: {"envelope_version": 2, "webhook_json": t},
        lambda t: {"inbound": {"raw_json": t, "received": "2026-03-14T09:26:53Z"}, "relay_id": "r-17"},
        lambda t: {"captured": t, "captured_at": 1773480413, "relay_id": "r-17"},
        lambda t: {"forwarded_request": {"method": "POST", "path": "/hooks/in", "json_text": t}},
        lambda t: {"soap_xml": t, "route": "sf-outbound", "envelope_version": 2},
    ]

    def unusual_decode(p):
        for path in (("webhook_json",), ("inbound", "raw_json"), ("captured",), ("forwarded_request", "json_text"), ("soap_xml",)):
            v = p
            try:
                for k in path:
                    v = v[k]
            except (KeyError, TypeError):
                continue
            return parse_body(v)
        raise KeyError("no document")

    serial(
        "json_under_unusual_key",
        [("telegram", "private", "same"), ("whatsapp", "image", "same"), ("slack", "app_mention", "same"), ("standard", "msg", "same"), ("salesforce", "case", "same")],
        lambda body, n: (unusual[n](as_text(body)), False),
        unusual_decode,
    )

    serial(
        "percent_encoded_body",
        [("telegram", "group", "same"), ("whatsapp", "text", "same"), ("slack", "message", "same"), ("salesforce", "task", "same"), ("standard", "msg", "same")],
        lambda body, n: (urllib.parse.quote(as_text(body), safe="" if n != 2 else "{}[]:,@"), True),
        lambda r: parse_body(urllib.parse.unquote(r)),
    )

    entity_styles = [dict(hex_quotes=False), dict(hex_quotes=True), dict(hex_quotes=False, non_ascii=True), dict(hex_quotes=True), dict(hex_quotes=False, markup=True)]
    serial(
        "html_entities",
        [("telegram", "private", "same"), ("whatsapp", "text", "same"), ("standard", "msg", "same"), ("slack", "app_mention", "same"), ("salesforce", "case", "same")],
        lambda body, n: (numeric_entities(as_text(body), **entity_styles[n]), True),
        lambda r: parse_body(html.unescape(r)),
    )

    serial(
        "yaml_body",
        [("telegram", "group", "same"), ("whatsapp", "text", "same"), ("slack", "message", "same"), ("standard", "msg", "same"), ("telegram", "edited", None)],
        lambda body, n: (yaml_dump(body), True),
        yaml_load,
    )

    xml_forms = [
        lambda t: f"<webhook><received>2026-03-14T09:26:53Z</received><source>edge-relay</source><payload><![CDATA[{t}]]></payload></webhook>",
        lambda t: f'<?xml version="1.0" encoding="UTF-8"?>\n<message-envelope version="2">\n  <headers>\n    <header name="content-type">application/json</header>\n  </headers>\n  <body-json>{xml_escape(t)}</body-json>\n</message-envelope>\n',
        lambda t: f'<event><meta id="{hexs(t, 12)}" kind="forward"/><json>{xml_escape(t)}</json></event>',
        lambda t: f"<?xml version=\"1.0\"?>\n<capture>\n  <at>1773480413</at>\n  <document><![CDATA[{t}]]></document>\n</capture>",
    ]

    def xml_decode(r):
        root = ET.fromstring(r.encode("utf-8"))
        for el in root.iter():
            if el.text and el.text.strip().startswith("{"):
                return json.loads(el.text)
        raise KeyError("no JSON in the XML")

    serial(
        "json_in_xml",
        [("telegram", "private", "same"), ("slack", "app_mention", "same"), ("whatsapp", "text", "same"), ("standard", "msg", "same")],
        lambda body, n: (xml_forms[n](json.dumps(body, ensure_ascii=False)), True),
        xml_decode,
    )

    # prefixed keys (the platform named)
    def prefixed(drift="prefixed_keys"):
        s, body, exp, _ = platform_case("telegram", "private", drift)
        m = body["message"]
        v = {"tg_update_id": body["update_id"], "tg_chat_id": m["chat"]["id"], "tg_chat_type": "private", "tg_from_id": m["from"]["id"], "tg_from_first_name": m["from"]["first_name"], "tg_date": m["date"], "msg_text": m["text"]}
        add("telegram", "telegram", drift, s, v, False, exp, lambda p: (id_str(p["tg_chat_id"]), id_str(p["tg_from_id"]), p["msg_text"]))

        s, body, exp, _ = platform_case("telegram", "group", drift)
        m = body["message"]
        v = {"tg_update_id": body["update_id"], "tg_message": {"tg_message_id": m["message_id"], "tg_chat": {"tg_id": m["chat"]["id"], "tg_title": m["chat"]["title"]}, "tg_from": {"tg_id": m["from"]["id"], "tg_username": m["from"]["username"]}, "tg_text": m["text"]}}
        add("telegram", "telegram", drift, s, v, False, exp, lambda p: (id_str(p["tg_message"]["tg_chat"]["tg_id"]), id_str(p["tg_message"]["tg_from"]["tg_id"]), p["tg_message"]["tg_text"]))

        s, body, exp, _ = platform_case("whatsapp", "text", drift)
        m = body["entry"][0]["changes"][0]["value"]["messages"][0]
        v = {"wa_from": m["from"], "wa_msg_id": m["id"], "wa_timestamp": m["timestamp"], "wa_msg_type": "text", "wa_profile_name": "Teodora Vasquez", "wa_msg_body": m["text"]["body"]}
        add("whatsapp", "whatsapp", drift, s, v, False, exp, lambda p: (p["wa_from"], p["wa_from"], p["wa_msg_body"]))

        s, body, exp, _ = platform_case("slack", "message", drift)
        e = body["event"]
        v = {"slack_team": body["team_id"], "slack_event_id": body["event_id"], "slack_channel": e["channel"], "slack_user": e["user"], "slack_ts": e["ts"], "message_text": e["text"]}
        add("slack", "slack", drift, s, v, False, exp, lambda p: (p["slack_channel"], p["slack_user"], p["message_text"]))

        s, body, exp, _ = platform_case("standard", "msg", drift)
        d = body["data"]
        v = {"std_type": body["type"], "std_timestamp": body["timestamp"], "std_msg_id": d["id"], "std_conversation_id": d["conversation_id"], "std_sender_id": d["sender_id"], "std_text": d["text"]}
        add("standard", "standard", drift, s, v, False, exp, lambda p: (p["std_conversation_id"], p["std_sender_id"], p["std_text"]))

    prefixed()

    # UPPER_SNAKE keys: the whole body, and flat shapes.
    serial(
        "upper_snake_keys",
        [("telegram", "private", "same"), ("whatsapp", "text", "same"), ("slack", "message", "same"), ("standard", "msg", "same")],
        lambda body, n: (upper_snake(body), False),
        lower_keys,
    )
    s, body, exp, _ = platform_case("telegram", "group", "upper_snake_keys")
    m = body["message"]
    add(
        "telegram",
        "telegram",
        "upper_snake_keys",
        s,
        {"UPDATE_ID": body["update_id"], "CHAT_ID": m["chat"]["id"], "CHAT_TYPE": "supergroup", "SENDER_ID": m["from"]["id"], "SENDER_USERNAME": m["from"]["username"], "MESSAGE_TEXT": m["text"]},
        False,
        exp,
        lambda p: (id_str(p["CHAT_ID"]), id_str(p["SENDER_ID"]), p["MESSAGE_TEXT"]),
    )
    s = pick("unknown", "upper_snake_keys")
    add(
        "unknown",
        None,
        "upper_snake_keys",
        s,
        {"EVENT_ID": "evt-20260314-0042", "CHAT_ID": "room-9043", "SENDER_ID": "member-3318", "SENDER_NAME": "Ama Owusu", "MESSAGE_TEXT": TEXTS[s]},
        False,
        ("room-9043", "member-3318", TEXTS[s]),
        lambda p: (p["CHAT_ID"], p["SENDER_ID"], p["MESSAGE_TEXT"]),
    )

    # ids as exponent floats (raw text, so the literal survives)
    def exponent(platform, variant, style):
        drift = "exponent_ids"
        s, body, exp, hint = platform_case(platform, variant, drift)
        text = json.dumps(body, ensure_ascii=False)
        if platform == "telegram":
            for n in {exp[0], exp[1], str(body["update_id"])}:
                text = re.sub(rf"(?<=: ){re.escape(n)}(?=[,}}])", exp_literal(int(n), style), text)
        else:
            text = text.replace(f'"{exp[0]}"', exp_literal(int(exp[0]), style))
        assert exp[0] not in text
        add(platform, hint, drift, s, text, True, exp, lambda r, pl=platform: READERS[pl](json.loads(r)))

    exponent("telegram", "private", "e")
    exponent("telegram", "group", "E")
    exponent("whatsapp", "text", "e")
    exponent("telegram", "edited", "E")

    # WhatsApp ids formatted as a person would write the number
    for variant, formatted in [("text", "+1 (415) 555-0183"), ("text", "+1 415-555-0183"), ("image", "+55 11 98765-0321"), ("text", "+1.415.555.0183")]:
        drift = "formatted_phone_ids"
        s, _, exp, hint = platform_case("whatsapp", variant, drift)
        body, _ = whatsapp_body(variant, TEXTS[s], wa_from=formatted)
        assert re.sub(r"\D", "", formatted) == exp[0]
        add("whatsapp", hint, drift, s, body, False, exp, lambda p: read_whatsapp(p, phone=True))

    # ---- Combinations ---------------------------------------------------------------------
    for platform, variant in [("telegram", "private"), ("slack", "app_mention"), ("standard", "msg")]:
        drift = "sns_message_yaml"
        s, body, exp, hint = platform_case(platform, variant, drift)
        v = sns_notification(yaml_dump(body), f"{drift}/{platform}", subject="webhook (yaml)")
        add(platform, hint, drift, s, v, False, exp, lambda p, pl=platform: READERS[pl](yaml_load(p["Message"])))

    for platform, variant in [("whatsapp", "text"), ("standard", "msg"), ("salesforce", "case")]:
        drift = "sqs_body_base64"
        s, body, exp, hint = platform_case(platform, variant, drift)
        v = {"Records": [sqs_record(b64(as_text(body)), f"{drift}/{platform}")]}
        add(platform, hint, drift, s, v, False, exp, lambda p, pl=platform: READERS[pl](parse_body(unb64(p["Records"][0]["body"]))))

    def proxy_v1(form):
        return {
            "resource": "/hooks/{source}",
            "path": "/hooks/inbound",
            "httpMethod": "POST",
            "headers": {"Content-Type": "application/x-www-form-urlencoded", "Host": "abc123xyz9.execute-api.eu-central-1.amazonaws.com", "User-Agent": "relay/2.4"},
            "multiValueHeaders": {"Content-Type": ["application/x-www-form-urlencoded"]},
            "queryStringParameters": None,
            "multiValueQueryStringParameters": None,
            "pathParameters": {"source": "inbound"},
            "stageVariables": None,
            "requestContext": {"accountId": ACCOUNT, "apiId": "abc123xyz9", "httpMethod": "POST", "requestId": uuid_of(form), "resourcePath": "/hooks/{source}", "stage": "prod", "identity": {"sourceIp": "198.51.100.23"}},
            "body": form,
            "isBase64Encoded": False,
        }

    def proxy_v2(form):
        return {
            "version": "2.0",
            "routeKey": "POST /hooks/{source}",
            "rawPath": "/hooks/inbound",
            "rawQueryString": "",
            "headers": {"content-type": "application/x-www-form-urlencoded", "host": "abc123xyz9.execute-api.eu-central-1.amazonaws.com"},
            "requestContext": {
                "accountId": ACCOUNT,
                "apiId": "abc123xyz9",
                "domainName": "abc123xyz9.execute-api.eu-central-1.amazonaws.com",
                "http": {"method": "POST", "path": "/hooks/inbound", "protocol": "HTTP/1.1", "sourceIp": "198.51.100.23", "userAgent": "relay/2.4"},
                "requestId": uuid_of(form)[:18],
                "routeKey": "POST /hooks/{source}",
                "stage": "$default",
                "time": "14/Mar/2026:09:26:53 +0000",
                "timeEpoch": 1773480413618,
            },
            "pathParameters": {"source": "inbound"},
            "body": b64(form),
            "isBase64Encoded": True,
        }

    def proxy_decode(p):
        form = unb64(p["body"]).decode("utf-8") if p["isBase64Encoded"] else p["body"]
        q = urllib.parse.parse_qs(form, keep_blank_values=True)
        return json.loads(q["payload"][0])

    for n, (platform, variant) in enumerate([("telegram", "group"), ("slack", "message"), ("whatsapp", "image")]):
        drift = "lambda_proxy_form_json"
        s, body, exp, hint = platform_case(platform, variant, drift)
        form = urllib.parse.urlencode({"payload": json.dumps(body, ensure_ascii=False), "source": platform})
        v = proxy_v1(form) if n % 2 == 0 else proxy_v2(form)
        add(platform, hint, drift, s, v, False, exp, lambda p, pl=platform: READERS[pl](proxy_decode(p)))

    for platform, variant in [("whatsapp", "text"), ("telegram", "private"), ("standard", "msg")]:
        drift = "kinesis_cloudwatch_logs"
        s, body, exp, hint = platform_case(platform, variant, drift)
        doc = cwl_document(as_text(body), f"{drift}/{platform}")
        v = kinesis_lambda(b64(gz(json.dumps(doc, ensure_ascii=False, separators=(",", ":")))), f"{drift}/{platform}", partition_key=hexs(platform, 32))
        add(platform, hint, drift, s, v, False, exp, lambda p, pl=platform: READERS[pl](un_cwl_doc(un_kinesis_raw(p))))

    for platform, variant in [("slack", "message"), ("standard", "msg"), ("telegram", "edited")]:
        drift = "event_grid_json_string"
        s, body, exp, hint = platform_case(platform, variant, drift)
        v = event_grid(json.dumps(body, ensure_ascii=False), f"{drift}/{platform}", f"webhooks/{platform}")
        add(platform, hint, drift, s, v, False, exp, lambda p, pl=platform: READERS[pl](json.loads(p[0]["data"])))

    # ---- C. Model lane: two conversations of equal standing inside a transport ---------------
    drift = "ambiguous_two_conversations"
    s = pick("unknown", drift)
    inner = {"source_chat": {"id": 5512039477}, "target_chat": {"id": -1001987654321}, "forwarded": True, "text": TEXTS[s]}
    add("unknown", None, drift, s, pubsub_push(inner, f"{drift}/1"), False, None, un_pubsub, lane="model")
    s = pick("unknown", drift)
    inner = {"channels": ["C08B2QX7T9L", "C05ZQ1Y2X3W"], "user": "U07K1L2M3N4", "text": TEXTS[s]}
    add("unknown", "unknown", drift, s, sns_notification(as_text(inner), f"{drift}/2"), False, None, un_sns, lane="model")
    s = pick("unknown", drift)
    inner = {"participants": [{"wa_id": "14155550183"}, {"wa_id": "5511987650321"}], "content": TEXTS[s]}
    add("unknown", None, drift, s, sqs_batch(inner, f"{drift}/3"), False, None, un_sqs, lane="model")
    s = pick("unknown", drift)
    inner = {"room_a": "room-4410", "room_b": "room-7782", "author": "u-5521", "message": TEXTS[s]}
    add("unknown", "unknown", drift, s, cloudflare_batch(inner, f"{drift}/4"), False, None, un_cloudflare, lane="model")
    s = pick("unknown", drift)
    inner = {"conversation_ids": ["cnv_71a0c2", "cnv_93f4e8"], "sender_id": "usr_19bc4f", "text": TEXTS[s]}
    add("unknown", None, drift, s, event_grid(inner, f"{drift}/5", "webhooks/merge"), False, None, un_event_grid, lane="model")

    # ---- Write ----------------------------------------------------------------------------
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "queue", "tests", "drift", "heldout.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")

    self_check(out, checks)
    print(f"{len(cases)} cases -> {os.path.normpath(out)}")


def self_check(path, checks):
    """Reloads the corpus, decodes every layer each case was built with and checks that the
    expected fields come out of the innermost body by the documented mapping."""
    with open(path, encoding="utf-8") as f:
        cases = json.load(f)["cases"]
    ids = [c["id"] for c in cases]
    assert len(ids) == len(set(ids)), "duplicate ids"
    kinds = {}
    for c in cases:
        assert set(c) == {"id", "platform", "hint", "drift", "lane", "expect", "payload"} or set(c) == {"id", "platform", "hint", "drift", "lane", "expect", "raw"}, c["id"]
        assert c["platform"] in ("telegram", "whatsapp", "slack", "salesforce", "standard", "unknown")
        assert c["id"] == f"{c['platform']}/{c['drift']}/{c['id'].rsplit('/', 1)[1]}" and c["id"].rsplit("/", 1)[1] in TEXTS
        value = c["raw"] if "raw" in c else c["payload"]
        got = checks[c["id"]](value)
        if c["lane"] == "deterministic":
            exp = (c["expect"]["conversation_id"], c["expect"]["sender_id"], c["expect"]["text"])
            assert tuple(got) == exp, (c["id"], got, exp)
            script = c["id"].rsplit("/", 1)[1]
            assert TEXTS[script] in exp[2], c["id"]
        else:
            assert c["expect"] == {} and TEXTS[c["id"].rsplit("/", 1)[1]] in json.dumps(got, ensure_ascii=False)
        kinds.setdefault(c["drift"], set()).add(c["platform"])
    for drift, platforms in kinds.items():
        n = sum(1 for c in cases if c["drift"] == drift)
        assert n >= 3, f"{drift}: {n} cases"


if __name__ == "__main__":
    main()
