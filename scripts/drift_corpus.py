#!/usr/bin/env python3
"""Writes queue/tests/drift/corpus.json: the drift corpus healing is measured on.

Each platform's body comes from its documentation (Telegram Bot API `Update`, WhatsApp Cloud API
webhook, Slack Events API `event_callback`, Salesforce outbound message, Standard Webhooks), then
goes through what real pipelines do to a webhook on its way: proxies and relays that wrap it,
re-serialisation, re-typed and renamed fields, form and text bodies, broken JSON. Every case says
which fields healing must give back, exactly, and which lane may heal it:

- "deterministic": the adapters, repair or the generic extractor must heal it, with these fields;
- "model": nothing deterministic may answer (it would be a guess: two ids fit equally well); the
  model step gets it, and no automatic reply goes out under the default policy.

Texts rotate through English, right-to-left scripts, CJK, emoji sequences, combining marks and a
2,000-character message, so every platform meets every script. The output is deterministic:
run `python3 scripts/drift_corpus.py` and commit the result; the test compares nothing against
this script, only against the corpus.
"""

import base64
import gzip
import html
import json
import os
import urllib.parse

TEXTS = {
    "latin": "Where is my order #4521? It was due on Monday.",
    "rtl": "\u0645\u0631\u062d\u0628\u0627\u060c \u0623\u064a\u0646 \u0637\u0644\u0628\u064a\u061f \u05e9\u05dc\u05d5\u05dd, \u05d0\u05d9\u05e4\u05d4 \u05d4\u05d4\u05d6\u05de\u05e0\u05d4?",
    "cjk": "\u6211\u7684\u8ba2\u5355\u5728\u54ea\u91cc\uff1f\u6ce8\u6587\u306f\u3069\u3053\u3067\u3059\u304b\u3002\uc8fc\ubb38\uc740 \uc5b4\ub514\uc5d0 \uc788\ub098\uc694?",
    "emoji": "Order late again \U0001F624\U0001F4E6 \U0001F468\u200D\U0001F469\u200D\U0001F467 \U0001F1E9\U0001F1EA \U0001F44D\U0001F3FD",
    "combining": "Ou\u0300 est ma commande? Z\u0351\u0352a\u0301lgo\u0308 n\u0303o\u0302",
    "long": ("Line of a long complaint about the parcel that never arrived. " * 40)[:2000],
}
SCRIPTS = list(TEXTS)


def telegram_update(text, chat=418800213, sender=418800213, update=770130001):
    return {
        "update_id": update,
        "message": {
            "message_id": 1365,
            "from": {"id": sender, "is_bot": False, "first_name": "Amira", "language_code": "ar"},
            "chat": {"id": chat, "first_name": "Amira", "type": "private"},
            "date": 1733011200,
            "text": text,
        },
    }


def whatsapp_body(text, wa_id="16315551181", message_id="wamid.HBgLMTYzMTU1NTExODEVAgASGBQzQTdGRkY3"):
    return {
        "object": "whatsapp_business_account",
        "entry": [
            {
                "id": "102290129340398",
                "changes": [
                    {
                        "value": {
                            "messaging_product": "whatsapp",
                            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
                            "contacts": [{"profile": {"name": "Kerry Fisher"}, "wa_id": wa_id}],
                            "messages": [
                                {"from": wa_id, "id": message_id, "timestamp": "1733011200", "type": "text", "text": {"body": text}}
                            ],
                        },
                        "field": "messages",
                    }
                ],
            }
        ],
    }


def whatsapp_event(text):
    body = whatsapp_body(text)
    value = body["entry"][0]["changes"][0]["value"]
    return {
        "object": body["object"],
        "entry_id": body["entry"][0]["id"],
        "field": "messages",
        "metadata": value["metadata"],
        "contacts": value["contacts"],
        "message": value["messages"][0],
    }


def slack_body(text):
    return {
        "token": "XXYYZZ",
        "team_id": "T061EG9R6",
        "api_app_id": "A0PNCHHK2",
        "event": {
            "type": "message",
            "channel": "C0LAN2Q65",
            "user": "U061F7AUR",
            "text": text,
            "ts": "1733011200.000200",
            "event_ts": "1733011200.000200",
            "channel_type": "channel",
        },
        "type": "event_callback",
        "event_id": "Ev0PV52K25",
        "event_time": 1733011200,
        "authorizations": [{"team_id": "T061EG9R6", "user_id": "U0JD3BPNC", "is_bot": True}],
    }


def salesforce_soap(text):
    subject = html.escape(text, quote=False)
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">\n'
        " <soapenv:Body>\n"
        '  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">\n'
        "   <OrganizationId>00D000000000062EAA</OrganizationId>\n"
        "   <ActionId>04k000000000001AAA</ActionId>\n"
        '   <SessionId xsi:nil="true"/>\n'
        "   <EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/59.0/00D000000000062</EnterpriseUrl>\n"
        "   <PartnerUrl>https://example.my.salesforce.com/services/Soap/u/59.0/00D000000000062</PartnerUrl>\n"
        "   <Notification>\n"
        "    <Id>04l000000000001AAA</Id>\n"
        '    <sObject xsi:type="sf:Case" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">\n'
        "     <sf:Id>500000000000001AAA</sf:Id>\n"
        f"     <sf:Subject>{subject}</sf:Subject>\n"
        "     <sf:Status>New</sf:Status>\n"
        "     <sf:LastModifiedById>005000000000001AAA</sf:LastModifiedById>\n"
        "    </sObject>\n"
        "   </Notification>\n"
        "  </notifications>\n"
        " </soapenv:Body>\n"
        "</soapenv:Envelope>\n"
    )


def salesforce_event(text):
    return {
        "organization_id": "00D000000000062EAA",
        "action_id": "04k000000000001AAA",
        "notification_id": "04l000000000001AAA",
        "sobject_type": "Case",
        "sobject": {"Id": "500000000000001AAA", "Subject": text, "Status": "New", "LastModifiedById": "005000000000001AAA"},
    }


def standard_body(text):
    return {
        "type": "message.received",
        "timestamp": "2026-12-01T00:00:00Z",
        "data": {"id": "msg_2Xb9", "conversation_id": "conv_81f3", "sender_id": "user_7c1", "sender_name": "Lin", "text": text},
    }


EXPECT = {
    "telegram": {"conversation_id": "418800213", "sender_id": "418800213"},
    "whatsapp": {"conversation_id": "16315551181", "sender_id": "16315551181"},
    "slack": {"conversation_id": "C0LAN2Q65", "sender_id": "U061F7AUR"},
    "salesforce": {"conversation_id": "500000000000001AAA", "sender_id": "005000000000001AAA"},
    "standard": {"conversation_id": "conv_81f3", "sender_id": "user_7c1"},
}
# The body as the platform sends it, and (for WhatsApp and Salesforce) the per-event shape ingress
# stores after fan-out. Salesforce's own body is SOAP text.
BODIES = {
    "telegram": telegram_update,
    "whatsapp": whatsapp_body,
    "slack": slack_body,
    "salesforce": salesforce_soap,
    "standard": standard_body,
}
EVENTS = {"whatsapp": whatsapp_event, "salesforce": salesforce_event}

HEADERS = {"content-type": "application/json", "user-agent": "relay/1.0", "x-forwarded-for": "203.0.113.9"}


def as_text(body):
    return body if isinstance(body, str) else json.dumps(body, ensure_ascii=False)


def lambda_proxy(body, b64=False):
    text = as_text(body)
    return {
        "resource": "/hook",
        "path": "/hook",
        "httpMethod": "POST",
        "headers": HEADERS,
        "queryStringParameters": None,
        "requestContext": {"requestId": "c6af9ac6-7b61-11e6-9a41-93e8deadbeef", "stage": "prod"},
        "body": base64.b64encode(text.encode()).decode() if b64 else text,
        "isBase64Encoded": b64,
    }


def n8n(body):
    return [{"headers": HEADERS, "params": {}, "query": {}, "body": body, "webhookUrl": "https://n8n.example/webhook/x"}]


def cloudevent(body, b64=False):
    event = {
        "specversion": "1.0",
        "type": "com.example.webhook.received",
        "source": "/relay/webhooks",
        "id": "A234-1234-1234",
        "time": "2026-12-01T00:00:00Z",
        "datacontenttype": "application/json" if not isinstance(body, str) else "text/xml",
    }
    if b64:
        event["data_base64"] = base64.b64encode(as_text(body).encode()).decode()
    else:
        event["data"] = body
    return event


def kafka(body):
    return {
        "topic": "webhooks.inbound",
        "partition": 3,
        "offset": 88211,
        "timestamp": 1733011200123,
        "key": "tenant-42",
        "value": as_text(body),
        "headers": [{"key": "source", "value": "gateway"}],
    }


def eventbridge(body):
    return {
        "version": "0",
        "id": "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
        "detail-type": "Webhook Received",
        "source": "relay.webhooks",
        "account": "111122223333",
        "time": "2026-12-01T00:00:00Z",
        "region": "eu-west-1",
        "resources": [],
        "detail": body,
    }


def wrapper(key):
    return lambda body: {key: body, "received_at": "2026-12-01T00:00:00Z", "relay": "edge-2"}


def html_quotes(body):
    return as_text(body).replace('"', "&quot;")


def form_field(body):
    return "payload=" + urllib.parse.quote(as_text(body), safe="")


def pubsub_push(body):
    return {
        "message": {
            "attributes": {"relay": "edge-2"},
            "data": base64.b64encode(as_text(body).encode()).decode(),
            "messageId": "2070443601311540",
            "publishTime": "2026-12-01T00:00:00.000Z",
        },
        "subscription": "projects/relay/subscriptions/webhooks-push",
    }


def sns_notification(body):
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": "arn:aws:sns:eu-west-1:111122223333:webhooks",
        "Message": as_text(body),
        "Timestamp": "2026-12-01T00:00:00.000Z",
        "SignatureVersion": "1",
    }


def sqs_batch(body):
    return {"Records": [{"messageId": "059f36b4-87a3-44ab-83d2-661975830a7d", "body": as_text(body),
                         "eventSource": "aws:sqs", "awsRegion": "eu-west-1"}]}


def gzip_field(body):
    packed = gzip.compress(as_text(body).encode(), mtime=0)
    return {"encoding": "gzip", "blob": base64.b64encode(packed).decode(), "received_at": "2026-12-01T00:00:00Z"}


def jsonc(body):
    text = json.dumps(body, ensure_ascii=False, indent=1)
    return "// relayed by edge-2\n" + text.replace("{", "{ /* note */", 1)


def yaml_text(value, indent=0):
    """A block-style YAML dump (strings JSON-quoted, which YAML reads as double-quoted)."""
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            if isinstance(item, (dict, list)) and item:
                lines.append(f"{pad}{key}:")
                lines.append(yaml_text(item, indent + 1))
            else:
                lines.append(f"{pad}{key}: {json.dumps(item, ensure_ascii=False)}")
    else:
        for item in value:
            if isinstance(item, (dict, list)) and item:
                inner = yaml_text(item, indent + 1).lstrip()
                lines.append(f"{pad}- {inner}")
            else:
                lines.append(f"{pad}- {json.dumps(item, ensure_ascii=False)}")
    return "\n".join(lines)


def xml_cdata(body):
    return f"<webhook><received>2026-12-01T00:00:00Z</received><payload><![CDATA[{as_text(body)}]]></payload></webhook>"


def upper_keys(value):
    if isinstance(value, dict):
        return {key.upper(): upper_keys(item) for key, item in value.items()}
    if isinstance(value, list):
        return [upper_keys(item) for item in value]
    return value


# Drift kinds for JSON bodies only (a SOAP text has no keys to rename or JSON to comment).
JSON_ONLY = {"jsonc", "yaml_body", "upper_snake"}

# Drift kinds that apply to any platform body: name -> (transform, gives raw text?).
ENVELOPES = {
    "platform_body": (lambda body: body, False),
    "proxy_string": (lambda body: lambda_proxy(body), False),
    "proxy_base64": (lambda body: lambda_proxy(body, b64=True), False),
    "list_of_one": (lambda body: [body], False),
    "n8n_list": (n8n, False),
    "wrapper_body": (wrapper("body"), False),
    "wrapper_data": (wrapper("data"), False),
    "wrapper_event": (wrapper("event"), False),
    "wrapper_payload": (wrapper("payload"), False),
    "wrapper_detail": (eventbridge, False),
    "wrapper_record": (wrapper("record"), False),
    "wrapper_value": (wrapper("value"), False),
    "cloudevents": (cloudevent, False),
    "cloudevents_base64": (lambda body: cloudevent(body, b64=True), False),
    "kafka_record": (kafka, False),
    "json_string": (lambda body: as_text(body), False),
    "json_string_twice": (lambda body: json.dumps(as_text(body)), False),
    "json_string_in_wrapper": (lambda body: {"payload": json.dumps(as_text(body))}, False),
    "ndjson": (lambda body: as_text(body) + "\n", True),
    "bom": (lambda body: "\ufeff" + as_text(body), True),
    "html_quotes": (html_quotes, True),
    "form_field_json": (form_field, True),
    "pubsub_push": (pubsub_push, False),
    "sns_notification": (sns_notification, False),
    "sqs_batch": (sqs_batch, False),
    "gzip_base64_field": (gzip_field, False),
    "json_string_thrice": (lambda body: json.dumps(json.dumps(as_text(body))), False),
    "percent_encoded": (lambda body: urllib.parse.quote(as_text(body), safe=""), True),
    "numeric_entities": (lambda body: as_text(body).replace('"', "&#34;"), True),
    "json_in_xml": (xml_cdata, True),
    "jsonc": (jsonc, True),
    "yaml_body": (yaml_text, True),
    "upper_snake": (upper_keys, False),
}


def retyped(platform, text):
    """Re-typed and renamed ids: (drift kind, payload, raw?) for the platforms where it applies."""
    cases = []
    if platform == "telegram":
        body = telegram_update(text)
        body["message"]["chat"]["id"] = 418800213.0
        body["message"]["from"]["id"] = 418800213.0
        body["update_id"] = 770130001.0
        cases.append(("float_ids", body, False))
        body = telegram_update(text)
        body["message"]["chat"]["id"] = "418800213"
        body["message"]["from"]["id"] = "418800213"
        cases.append(("string_ids", body, False))
        cases.append(("float_ids_text", json.dumps(telegram_update(text)).replace("418800213", "418800213.0"), True))
        cases.append(("exponent_ids", json.dumps(telegram_update(text)).replace("418800213", "4.18800213e8"), True))
        body = telegram_update(text)
        cases.append(("prefixed_keys", {"tg_update_id": body["update_id"], "tg_message": body["message"]}, False))
    if platform == "whatsapp":
        body = whatsapp_body(text)
        message = body["entry"][0]["changes"][0]["value"]["messages"][0]
        message["from"] = 16315551181
        body["entry"][0]["changes"][0]["value"]["contacts"][0]["wa_id"] = 16315551181
        cases.append(("number_ids", body, False))
        body = whatsapp_body(text)
        value = body["entry"][0]["changes"][0]["value"]
        value["messages"][0]["from"] = "+1 631-555-1181"
        value["contacts"][0]["wa_id"] = "+1 (631) 555-1181"
        cases.append(("formatted_phone_ids", body, False))
    return cases


def unknown_shapes(text, index):
    """Shapes no adapter knows, read by the generic extractor (platform hint 'unknown' or none)."""
    conv, sender = "room-5521", "u-881"
    shapes = {
        "flattened": {"chat_id": conv, "from_id": sender, "text": text},
        "renamed": {"conversation": {"id": conv}, "sender": {"id": sender, "name": "Ana"}, "content": text},
        "camel_case": {"chatId": conv, "senderId": sender, "messageText": text},
        "pascal_case": {"ChatId": conv, "SenderId": sender, "Body": text},
        "kebab_case": {"chat-id": conv, "sender-id": sender, "message": text},
        "thread_author": {"thread": {"id": conv}, "author": {"id": sender}, "body": text},
        "channel_user": {"channel": conv, "user": sender, "message": {"text": text}},
        "prefixed_flat": {"tg_chat_id": conv, "tg_from_id": sender, "msg_text": text},
        "upper_snake_flat": {"CHAT_ID": conv, "SENDER_ID": sender, "MESSAGE_TEXT": text},
    }
    cases = [(kind, shape, False) for kind, shape in shapes.items()]
    cases.append(("form_body", urllib.parse.urlencode({"chat_id": conv, "sender": sender, "message": text}), True))
    cases.append(("key_value_text", f"chat_id={conv}\nsender={sender}\ntext={text}", True))
    cases.append(("yaml_text", f"conversation: {conv}\nsender: {sender}\ntext: {json.dumps(text, ensure_ascii=False)}", True))
    return [(kind, payload, raw, {"conversation_id": conv, "sender_id": sender}) for kind, payload, raw in cases]


def broken(platform, text):
    """Broken JSON of the platform's own body: what repair exists for."""
    if platform == "salesforce":
        return []
    good = json.dumps(BODIES[platform](text), ensure_ascii=False)
    return [
        ("broken_trailing_comma", good[:-1] + ",}", True),
        ("broken_truncated", good[:-2], True),
        ("broken_single_quotes", good.replace('"', "'"), True),
    ]


def ambiguous(text):
    """Two ids fit the conversation equally well: a deterministic answer would be a guess."""
    return [
        ("ambiguous_two_rooms", {"room_a": {"id": "r-1"}, "room_b": {"id": "r-2"}, "text": text}, False),
        ("ambiguous_two_threads", {"threads": [{"id": "t-1"}, {"id": "t-2"}], "content": text}, False),
        ("ambiguous_no_conversation", {"note": text, "ids": ["a-1", "a-2"]}, False),
    ]


def main():
    cases = []
    n = 0

    def add(platform_hint, drift, payload, raw, expect, text, lane="deterministic", platform=None):
        nonlocal n
        case = {
            "id": f"{platform or platform_hint or 'none'}/{drift}/{SCRIPTS[n % len(SCRIPTS)]}",
            "platform": platform or platform_hint or "unknown",
            "hint": platform_hint,
            "drift": drift,
            "lane": lane,
        }
        if raw or isinstance(payload, str):
            case["raw"] = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
        else:
            case["payload"] = payload
        case["expect"] = dict(expect, text=text) if lane == "deterministic" else {}
        cases.append(case)
        n += 1

    def text():
        return TEXTS[SCRIPTS[n % len(SCRIPTS)]]

    for platform, make in BODIES.items():
        shapes = [("", make)] + ([("event_", EVENTS[platform])] if platform in EVENTS else [])
        for prefix, build in shapes:
            for drift, (transform, _) in ENVELOPES.items():
                if drift in JSON_ONLY and isinstance(build("x"), str):
                    continue
                if drift == "json_in_xml" and isinstance(build("x"), str):
                    continue
                t = text()
                payload = transform(build(t))
                # The platform named, and (for the platform's own body) not named.
                add(platform, prefix + drift, payload, isinstance(payload, str), EXPECT[platform], t)
                if drift in ("platform_body", "proxy_string", "cloudevents", "n8n_list") and not prefix:
                    t = text()
                    payload = transform(build(t))
                    add(None, prefix + drift + "_no_hint", payload, isinstance(payload, str), EXPECT[platform], t, platform=platform)
        for drift, payload, raw in retyped(platform, "{text}"):
            t = text()
            payload = json.loads(json.dumps(payload).replace("{text}", json.dumps(t)[1:-1]))
            add(platform, drift, payload, raw, EXPECT[platform], t)
        for drift, payload, raw in broken(platform, "{text}"):
            t = text()
            payload = payload.replace("{text}", json.dumps(t, ensure_ascii=False)[1:-1])
            add(platform, drift, payload, raw, EXPECT[platform], t)
    for hint in ("unknown", None):
        for index, (drift, payload, raw, expect) in enumerate(unknown_shapes("{text}", 0)):
            t = text()
            if isinstance(payload, str):
                if drift == "form_body":
                    payload = urllib.parse.urlencode({"chat_id": expect["conversation_id"], "sender": expect["sender_id"], "message": t})
                elif drift == "yaml_text":
                    payload = payload.replace('"{text}"', json.dumps(t, ensure_ascii=False))
                else:
                    payload = payload.replace("{text}", t.replace("\n", " "))
            else:
                payload = json.loads(json.dumps(payload).replace("{text}", json.dumps(t)[1:-1]))
            add(hint, ("" if hint else "no_hint_") + drift, payload, raw, expect, t, platform="unknown")
    for drift, payload, raw in ambiguous("{text}"):
        t = text()
        payload = json.loads(json.dumps(payload).replace("{text}", json.dumps(t)[1:-1]))
        add("unknown", drift, payload, raw, {}, t, lane="model", platform="unknown")

    out = os.path.join(os.path.dirname(__file__), "..", "queue", "tests", "drift", "corpus.json")
    os.makedirs(os.path.dirname(out), exist_ok=True)
    with open(out, "w", encoding="utf-8") as f:
        json.dump({"cases": cases}, f, ensure_ascii=False, indent=1)
        f.write("\n")
    print(f"{len(cases)} cases -> {os.path.normpath(out)}")


if __name__ == "__main__":
    main()
