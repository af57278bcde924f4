//! Every platform's webhook authentication on arbitrary headers and bodies: no panic, and a
//! forged request is never accepted. The input is `selector, header value, timestamp, body`,
//! separated by newlines.
#![no_main]

use http::{HeaderMap, HeaderName, HeaderValue};
use libfuzzer_sys::fuzz_target;
use sentinel_queue::platform::Platform;
use serde_json::json;

const NOW: i64 = 1_735_689_600;

mod production_stack;

fuzz_target!(|data: &[u8]| production_stack::run(check, data));

fn check(data: &[u8]) {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let mut parts = rest.splitn(3, |byte| *byte == b'\n');
    let (Some(value), Some(timestamp), Some(body)) = (parts.next(), parts.next(), parts.next())
    else {
        return;
    };
    let platform = Platform::ALL[usize::from(selector) % Platform::ALL.len()];
    let secrets = json!({
        "secret_token": "telegram-secret-0123456789",
        "app_secret": "meta-app-secret-0123456789", "verify_token": "meta-verify",
        "signing_secret": "slack-signing-secret",
        "organization_id": "00D000000000001AAA",
        "secret": ["whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"],
    });
    let mut headers = HeaderMap::new();
    let mut set = |name: &'static str, bytes: &[u8]| {
        if let Ok(header) = HeaderValue::from_bytes(bytes) {
            headers.insert(HeaderName::from_static(name), header);
        }
    };
    for name in [
        "x-telegram-bot-api-secret-token",
        "x-hub-signature-256",
        "x-slack-signature",
        "webhook-signature",
    ] {
        set(name, value);
    }
    set("x-slack-request-timestamp", timestamp);
    set("webhook-timestamp", timestamp);
    set("webhook-id", b"msg_fuzz");
    if let Ok(accepted) = platform.accept(&secrets, &headers, body, NOW) {
        // Telegram's secret token and Salesforce's organization id are not signatures: a request
        // that names them is genuine by definition. Every signed platform must have been given a
        // correct signature, which the fuzzer cannot forge.
        assert!(
            matches!(platform, Platform::Telegram | Platform::Salesforce),
            "{platform} accepted a request without a valid signature: {accepted:?}"
        );
    }
}
