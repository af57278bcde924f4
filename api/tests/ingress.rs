//! Ingress, per platform, against a real gateway and database: signatures, handshakes, fan-out,
//! dedupe under retry storms, edge drops, limits, and a database that goes away and comes back.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use base64::{engine::general_purpose::STANDARD as BASE64, Engine};
use common::{DbProxy, TestApp};
use hmac::{Hmac, Mac};
use serde_json::json;
use sha2::Sha256;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};
use uuid::Uuid;

fn hmac_hex(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    hex::encode(mac.finalize().into_bytes())
}

fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

async fn jobs_of(pool: &PgPool, source: Uuid) -> Vec<(String, serde_json::Value)> {
    sqlx::query!(
        r#"SELECT dedupe_key AS "key!", input FROM jobs WHERE source_id = $1 ORDER BY id"#,
        source
    )
    .fetch_all(pool)
    .await
    .unwrap()
    .into_iter()
    .map(|row| (row.key, row.input))
    .collect()
}

/// A gateway with tenant "acme" and a Telegram source whose secret token is `TG_TOKEN`.
async fn telegram_app(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) -> (PgPool, TestApp, Uuid, String, Uuid) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (tenant_id, key) = app.tenant("acme").await;
    let source = app
        .source(&key, "telegram", json!({"secret_token": TG_TOKEN}))
        .await;
    (pool, app, tenant_id, key, source)
}

fn telegram_headers(token: &str) -> [(&'static str, String); 2] {
    [
        ("x-telegram-bot-api-secret-token", token.to_owned()),
        ("content-type", "application/json".to_owned()),
    ]
}

/// A minimal Telegram update with the given `update_id`.
fn update(id: i64) -> String {
    json!({"update_id": id, "message": {"chat": {"id": 1}, "text": "x"}}).to_string()
}

/// The Telegram secret token of the sources these tests create.
const TG_TOKEN: &str = "tg-token-0123456789";

const TELEGRAM_UPDATE: &str = r#"{"update_id": 815, "message": {"message_id": 52, "date": 1735689600,
  "from": {"id": 7001, "is_bot": false, "first_name": "Ada", "language_code": "en"},
  "chat": {"id": 7001, "first_name": "Ada", "type": "private"}, "text": "Where is my order?"}}"#;

#[sqlx::test(migrations = "../migrations")]
async fn telegram_needs_its_secret_token(pool_options: PgPoolOptions, options: PgConnectOptions) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;
    let source = app
        .source(
            &key,
            "telegram",
            json!({"secret_token": "tg-secret-0123456789"}),
        )
        .await;

    let ok = app
        .post_hook(
            source,
            &telegram_headers("tg-secret-0123456789"),
            TELEGRAM_UPDATE,
        )
        .await;
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.text().await.unwrap(), "");
    let bad = app
        .post_hook(source, &telegram_headers("guess"), TELEGRAM_UPDATE)
        .await;
    assert_eq!(bad.status(), 401);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_signature");

    let jobs = jobs_of(&pool, source).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].0, "815");
    assert_eq!(
        jobs[0].1["payload"]["message"]["text"],
        "Where is my order?"
    );
    assert_eq!(jobs[0].1["platform"], "telegram");
    let kept = sqlx::query_scalar!("SELECT headers FROM jobs WHERE source_id = $1", source)
        .fetch_one(&pool)
        .await
        .unwrap()
        .unwrap();
    assert!(
        kept.get("x-telegram-bot-api-secret-token").is_none(),
        "secrets are never stored: {kept}"
    );
    app.stop().await;
}

const SLACK_SECRET: &str = "slack-signing-secret";

/// A gateway with tenant "acme" and a Slack source signed with [`SLACK_SECRET`].
async fn slack_app(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) -> (PgPool, TestApp, Uuid) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;
    let source = app
        .source(&key, "slack", json!({"signing_secret": SLACK_SECRET}))
        .await;
    (pool, app, source)
}

fn slack_headers(secret: &str, timestamp: i64, body: &str) -> Vec<(&'static str, String)> {
    let ts = timestamp.to_string();
    let signature = format!(
        "v0={}",
        hmac_hex(secret.as_bytes(), format!("v0:{ts}:{body}").as_bytes())
    );
    vec![
        ("x-slack-request-timestamp", ts),
        ("x-slack-signature", signature),
        ("content-type", "application/json".into()),
    ]
}

const SLACK_EVENT: &str = r#"{"token": "XXYYZZ", "team_id": "T0001", "api_app_id": "A0001",
  "event": {"type": "message", "channel": "C2147483705", "user": "U2147483697", "text": "Hello world",
            "ts": "1355517523.000005", "channel_type": "channel"},
  "type": "event_callback", "event_id": "Ev0PV52K21", "event_time": 1355517523}"#;

#[sqlx::test(migrations = "../migrations")]
async fn slack_signatures_timestamps_challenge_and_a_retry_storm(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let (pool, app, source) = slack_app(pool_options, options).await;
    let secret = SLACK_SECRET;

    let challenge = r#"{"token": "Jhj5dZrVaK7ZwHHjRyZWjbDl", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P", "type": "url_verification"}"#;
    let answered = app
        .post_hook(source, &slack_headers(secret, now(), challenge), challenge)
        .await;
    assert_eq!(answered.status(), 200);
    let body: serde_json::Value = answered.json().await.unwrap();
    assert_eq!(
        body,
        json!({"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P"})
    );
    assert!(
        jobs_of(&pool, source).await.is_empty(),
        "url_verification creates no job"
    );

    let stale = app
        .post_hook(
            source,
            &slack_headers(secret, now() - 600, SLACK_EVENT),
            SLACK_EVENT,
        )
        .await;
    assert_eq!(stale.status(), 401);
    let body: serde_json::Value = stale.json().await.unwrap();
    assert_eq!(body["error"]["code"], "stale_timestamp");
    let forged = app
        .post_hook(
            source,
            &slack_headers("not-the-secret", now(), SLACK_EVENT),
            SLACK_EVENT,
        )
        .await;
    assert_eq!(forged.status(), 401);

    // The same event 20 times at once, as Slack's retries would: 200 every time, one job.
    let sends = (0..20).map(|attempt| {
        let mut headers = slack_headers(secret, now(), SLACK_EVENT);
        if attempt > 0 {
            headers.push(("x-slack-retry-num", attempt.to_string()));
            headers.push(("x-slack-retry-reason", "http_timeout".into()));
        }
        let app = &app;
        async move { app.post_hook(source, &headers, SLACK_EVENT).await.status() }
    });
    let statuses = futures::future::join_all(sends).await;
    assert!(statuses.iter().all(|status| *status == 200), "{statuses:?}");
    let jobs = jobs_of(&pool, source).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].0, "Ev0PV52K21");
    app.stop().await;
}

/// Slack's documented slash-command body, with an argument.
const SLACK_COMMAND: &str = "token=gIkuvaNzQIHg97ATvDxqgjtO&team_id=T0001&team_domain=example&channel_id=C2147483705&channel_name=test&user_id=U2147483697&user_name=Steve&command=%2Fweather&text=94070&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2F1234%2F5678&trigger_id=13345224609.738474920.8088930838d88f008e0";

#[sqlx::test(migrations = "../migrations")]
async fn a_slack_slash_command_form_is_one_job_keyed_by_its_trigger_id(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let (pool, app, source) = slack_app(pool_options, options).await;
    let secret = SLACK_SECRET;
    let headers = |secret: &str| {
        let mut headers = slack_headers(secret, now(), SLACK_COMMAND);
        headers.retain(|(name, _)| *name != "content-type");
        headers.push(("content-type", "application/x-www-form-urlencoded".into()));
        headers
    };
    for _ in 0..2 {
        let answered = app.post_hook(source, &headers(secret), SLACK_COMMAND).await;
        assert_eq!(answered.status(), 200);
        assert_eq!(
            answered.text().await.unwrap(),
            "",
            "Slack shows nothing for an empty 200"
        );
    }
    let forged = app
        .post_hook(source, &headers("not-the-secret"), SLACK_COMMAND)
        .await;
    assert_eq!(forged.status(), 401);
    let jobs = jobs_of(&pool, source).await;
    assert_eq!(jobs.len(), 1, "the same command twice is one job");
    assert_eq!(jobs[0].0, "13345224609.738474920.8088930838d88f008e0");
    assert_eq!(jobs[0].1["payload"]["command"], "/weather");
    assert_eq!(jobs[0].1["payload"]["text"], "94070");
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn whatsapp_handshake_and_a_three_message_batch(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;
    let app_secret = "wa-app-secret-0123456789";
    let source = app
        .source(
            &key,
            "whatsapp",
            json!({"app_secret": app_secret, "verify_token": "meatyhamhock"}),
        )
        .await;

    let url = app.url(&format!(
        "/hooks/{source}?hub.mode=subscribe&hub.challenge=1158201444&hub.verify_token=meatyhamhock"
    ));
    let handshake = app.client.get(url).send().await.unwrap();
    assert_eq!(handshake.status(), 200);
    assert!(handshake.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain"));
    assert_eq!(handshake.text().await.unwrap(), "1158201444");
    let url = app.url(&format!(
        "/hooks/{source}?hub.mode=subscribe&hub.challenge=1&hub.verify_token=wrong"
    ));
    assert_eq!(app.client.get(url).send().await.unwrap().status(), 403);

    let message = |id: &str, text: &str| json!({"from": "16505551234", "id": id, "timestamp": "1749416383", "type": "text", "text": {"body": text}});
    let body = json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
            "messages": [message("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=", "Hi"),
                         message("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgB=", "Are you there?"),
                         message("wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgC=", "Hello?")]
        }}]}]
    })
    .to_string();
    let signature = format!(
        "sha256={}",
        hmac_hex(app_secret.as_bytes(), body.as_bytes())
    );
    let headers = [
        ("x-hub-signature-256", signature),
        ("content-type", "application/json".into()),
    ];
    let acked = app.post_hook(source, &headers, body.clone()).await;
    assert_eq!(acked.status(), 200);
    let again = app.post_hook(source, &headers, body.clone()).await;
    assert_eq!(again.status(), 200);
    let jobs = jobs_of(&pool, source).await;
    assert_eq!(
        jobs.len(),
        3,
        "one job per message, and the retry adds none"
    );
    assert_eq!(
        jobs[1].1["payload"]["message"]["text"]["body"],
        "Are you there?"
    );
    assert_eq!(
        jobs[1].1["payload"]["metadata"]["phone_number_id"],
        "106540352242922"
    );

    let tampered = app
        .post_hook(
            source,
            &[
                ("x-hub-signature-256", format!("sha256={}", "0".repeat(64))),
                ("content-type", "application/json".into()),
            ],
            body,
        )
        .await;
    assert_eq!(tampered.status(), 401);
    app.stop().await;
}

const SALESFORCE_MESSAGE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00D5e000000Abc1EAC</OrganizationId>
   <ActionId>04k5e000000XyZaAAK</ActionId>
   <SessionId xsi:nil="true"/>
   <EnterpriseUrl>https://acme.my.salesforce.com/services/Soap/c/60.0/00D5e000000Abc1</EnterpriseUrl>
   <PartnerUrl>https://acme.my.salesforce.com/services/Soap/u/60.0/00D5e000000Abc1</PartnerUrl>
   <Notification>
    <Id>04l5e00000A1b2cAAB</Id>
    <sObject xsi:type="sf:Case" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>5005e00000Q1w2eAAB</sf:Id><sf:CaseNumber>00001026</sf:CaseNumber><sf:Subject>Refund request</sf:Subject>
    </sObject>
   </Notification>
   <Notification>
    <Id>04l5e00000A1b2dAAB</Id>
    <sObject xsi:type="sf:Case" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">
     <sf:Id>5005e00000Q1w2fAAB</sf:Id><sf:CaseNumber>00001027</sf:CaseNumber><sf:Subject>Login issue</sf:Subject>
    </sObject>
   </Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#;

#[sqlx::test(migrations = "../migrations")]
async fn salesforce_two_notifications_two_jobs_and_the_soap_ack(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;
    let source = app
        .source(
            &key,
            "salesforce",
            json!({"organization_id": "00D5e000000Abc1EAC"}),
        )
        .await;
    let headers = [
        ("content-type", "text/xml; charset=utf-8".to_string()),
        ("soapaction", "\"\"".into()),
    ];

    let acked = app.post_hook(source, &headers, SALESFORCE_MESSAGE).await;
    assert_eq!(acked.status(), 200);
    assert!(acked.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/xml"));
    let body = acked.text().await.unwrap();
    assert!(
        body.contains("notificationsResponse") && body.contains("<Ack>true</Ack>"),
        "{body}"
    );
    let jobs = jobs_of(&pool, source).await;
    let keys: Vec<_> = jobs.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(keys, ["04l5e00000A1b2cAAB", "04l5e00000A1b2dAAB"]);
    assert_eq!(jobs[0].1["payload"]["sobject"]["Subject"], "Refund request");

    let other_org = SALESFORCE_MESSAGE.replace("00D5e000000Abc1EAC", "00D000000000BAD");
    assert_eq!(
        app.post_hook(source, &headers, other_org).await.status(),
        403
    );
    let garbage = app
        .post_hook(source, &headers, "<soapenv:Envelope><broken")
        .await;
    assert_eq!(garbage.status(), 400);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn standard_webhooks_any_listed_signature_may_match(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;
    let secret_bytes = b"a-standard-webhooks-secret-key!!";
    let secret = format!("whsec_{}", BASE64.encode(secret_bytes));
    let source = app
        .source(&key, "standard", json!({"secret": secret}))
        .await;
    let body = r#"{"type": "invoice.paid", "timestamp": "2026-11-22T10:00:00Z", "data": {"id": "inv_123"}}"#;
    let sign = |ts: i64| {
        let mut mac = Hmac::<Sha256>::new_from_slice(secret_bytes).unwrap();
        mac.update(format!("msg_2KWPBgLlAfxdpx2AI54pPJ85f4W.{ts}.{body}").as_bytes());
        format!("v1,{}", BASE64.encode(mac.finalize().into_bytes()))
    };
    let headers = |ts: i64| {
        vec![
            ("webhook-id", "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W".to_string()),
            ("webhook-timestamp", ts.to_string()),
            ("webhook-signature", format!("v1,Zm9yZ2Vk {}", sign(ts))),
            ("content-type", "application/json".into()),
        ]
    };
    assert_eq!(
        app.post_hook(source, &headers(now()), body).await.status(),
        200
    );
    assert_eq!(
        app.post_hook(source, &headers(now() - 400), body)
            .await
            .status(),
        401
    );
    let jobs = jobs_of(&pool, source).await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0].0, "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W");
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_signed_body_that_does_not_parse_is_kept_for_healing(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let (pool, app, _, _, source) = telegram_app(pool_options, options).await;
    let broken = r#"{"update_id": 816, "message": {"text": "unterminated"#;
    let headers = telegram_headers(TG_TOKEN);
    assert_eq!(app.post_hook(source, &headers, broken).await.status(), 200);
    let row = sqlx::query!(
        "SELECT dedupe_key, raw_body, input FROM jobs WHERE source_id = $1",
        source
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(row.dedupe_key.unwrap().starts_with("sha256:"));
    assert_eq!(row.raw_body.unwrap(), broken.as_bytes());
    assert_eq!(row.input["payload"], serde_json::Value::Null);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_suspended_tenant_is_dropped_at_the_edge_and_recorded(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let (pool, app, tenant_id, key, source) = telegram_app(pool_options, options).await;
    let suspended = app
        .client
        .patch(app.url(&format!("/v1/admin/tenants/{tenant_id}")))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status(), 200);

    let headers = telegram_headers(TG_TOKEN);
    let dropped = app.post_hook(source, &headers, TELEGRAM_UPDATE).await;
    assert_eq!(dropped.status(), 200);
    assert_eq!(dropped.headers()["x-sentinel-dropped"], "tenant_suspended");
    assert!(jobs_of(&pool, source).await.is_empty());
    let drops = sqlx::query!(
        "SELECT reason, platform, dedupe_key FROM ingress_drop_log WHERE tenant_id = $1",
        tenant_id
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(drops.len(), 1);
    assert_eq!(
        (
            drops[0].reason.as_deref(),
            drops[0].platform.as_deref(),
            drops[0].dedupe_key.as_deref()
        ),
        (Some("tenant_suspended"), Some("telegram"), Some("815"))
    );
    // The API refuses the suspended tenant too.
    assert_eq!(app.get(&key, "/v1/jobs").await.status(), 403);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_rate_limit_answers_429_with_retry_after_and_big_bodies_413(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (_, key) = app
        .tenant_with(json!({"name": "tiny", "rate_limit_per_sec": 1, "burst": 2}))
        .await;
    // Creating the source spends one of the two tokens.
    let source = app
        .source(&key, "telegram", json!({"secret_token": TG_TOKEN}))
        .await;
    let headers = telegram_headers(TG_TOKEN);

    assert_eq!(
        app.post_hook(source, &headers, update(1)).await.status(),
        200
    );
    let limited = app.post_hook(source, &headers, update(2)).await;
    assert_eq!(limited.status(), 429);
    let retry_after: u64 = limited.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "{retry_after}");
    assert_eq!(jobs_of(&pool, source).await.len(), 1);

    let huge = "x".repeat(65 * 1024);
    let too_large = app.post_hook(source, &headers, huge).await;
    assert_eq!(too_large.status(), 413);
    let body: serde_json::Value = too_large.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");

    // Deleting a source spends a token too: wait for one.
    tokio::time::sleep(Duration::from_secs(retry_after)).await;
    let deleted = app
        .client
        .delete(app.url(&format!("/v1/sources/{source}")))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap();
    assert_eq!(deleted.status(), 204);
    assert_eq!(
        app.post_hook(source, &headers, update(3)).await.status(),
        404
    );
    assert_eq!(
        app.post_hook(Uuid::new_v4(), &headers, update(3))
            .await
            .status(),
        404
    );
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_lost_database_gets_503_quickly_and_recovers_without_a_restart(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let target = format!("{}:{}", options.get_host(), options.get_port());
    let target = tokio::net::lookup_host(target)
        .await
        .unwrap()
        .next()
        .unwrap();
    let proxy = DbProxy::start(target).await;
    let app = TestApp::spawn(options.clone().host("127.0.0.1").port(proxy.port)).await;
    let (_, key) = app.tenant("acme").await;
    let source = app
        .source(&key, "telegram", json!({"secret_token": TG_TOKEN}))
        .await;
    let headers = telegram_headers(TG_TOKEN);
    assert_eq!(
        app.post_hook(source, &headers, update(1)).await.status(),
        200
    );

    proxy.down();
    let started = Instant::now();
    let refused = app.post_hook(source, &headers, update(2)).await;
    let waited = started.elapsed();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "1");
    assert!(waited < Duration::from_secs(3), "answered after {waited:?}");
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), 503);

    proxy.up();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = app.post_hook(source, &headers, update(2)).await.status();
        if status == 200 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still {status} after the database came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let keys: Vec<String> = jobs_of(&pool, source)
        .await
        .into_iter()
        .map(|(key, _)| key)
        .collect();
    assert_eq!(keys, ["1", "2"]);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_suspension_through_one_gateway_reaches_another_within_a_second(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let _pool = pool_options.connect_with(options.clone()).await.unwrap();
    let first = TestApp::spawn(options.clone()).await;
    let second = TestApp::spawn(options).await;
    let (tenant_id, key) = first.tenant("acme").await;
    let source = first
        .source(&key, "telegram", json!({"secret_token": TG_TOKEN}))
        .await;
    let headers = telegram_headers(TG_TOKEN);
    // The second gateway has the tenant cached as active.
    let before = second.post_hook(source, &headers, update(1)).await;
    assert_eq!(before.status(), 200);
    assert!(before.headers().get("x-sentinel-dropped").is_none());

    let suspended = first
        .client
        .patch(first.url(&format!("/v1/admin/tenants/{tenant_id}")))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status(), 200);
    let changed_at = Instant::now();
    let mut n = 2;
    loop {
        let response = second.post_hook(source, &headers, update(n)).await;
        if response.headers().get("x-sentinel-dropped").is_some() {
            break;
        }
        assert!(
            changed_at.elapsed() < Duration::from_secs(1),
            "the second gateway still accepts after 1 s"
        );
        n += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    first.stop().await;
    second.stop().await;
}
