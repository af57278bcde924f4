//! Security properties checked against a real gateway and database: a flood of forged webhooks
//! writes nothing, API keys are kept only as hashes, and bad input gets a clear 4xx.
#![allow(clippy::unwrap_used)]

mod common;

use common::{TestApp, ADMIN_TOKEN};
use futures::{stream, StreamExt};
use serde_json::{json, Value};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};
use uuid::Uuid;

/// Rows in every table a request can write to.
async fn written_rows(pool: &PgPool) -> i64 {
    sqlx::query_scalar(
        "SELECT (SELECT count(*) FROM jobs) + (SELECT count(*) FROM events)
              + (SELECT count(*) FROM job_attempts) + (SELECT count(*) FROM ingress_drops)",
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// Every row of `table`, as JSON text.
async fn dump(pool: &PgPool, table: &str) -> String {
    sqlx::query_scalar(&format!(
        "SELECT coalesce(string_agg(row_to_json(t)::text, E'\\n'), '') FROM {table} t"
    ))
    .fetch_one(pool)
    .await
    .unwrap()
}

const SALESFORCE: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">
 <soapenv:Body>
  <notifications xmlns="http://soap.sforce.com/2005/09/outbound">
   <OrganizationId>00DFORGEDFORGED</OrganizationId>
   <ActionId>04k5e000000Abc</ActionId>
   <Notification><Id>04l5e000001</Id><sObject xsi:type="sf:Case" xmlns:sf="urn:sobject.enterprise.soap.sforce.com" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><sf:Id>5005e000001</sf:Id></sObject></Notification>
  </notifications>
 </soapenv:Body>
</soapenv:Envelope>"#;

/// A forged webhook: the source it targets, its headers, its body.
type Forged<'a> = (Uuid, Vec<(&'a str, String)>, &'a str);
#[sqlx::test(migrations = "../migrations")]
async fn an_unauthenticated_flood_of_forged_webhooks_writes_nothing(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;
    let telegram = app
        .source(
            &key,
            "telegram",
            json!({"secret_token": "tg-secret-0123456789"}),
        )
        .await;
    let slack = app
        .source(
            &key,
            "slack",
            json!({"signing_secret": "slack-secret-0123456789"}),
        )
        .await;
    let whatsapp = app
        .source(
            &key,
            "whatsapp",
            json!({"app_secret": "wa-secret-0123456789", "verify_token": "verify-0123"}),
        )
        .await;
    let salesforce = app
        .source(
            &key,
            "salesforce",
            json!({"organization_id": "00D5e000000Abc1EAC"}),
        )
        .await;
    let standard = app
        .source(
            &key,
            "standard",
            json!({"secret": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}),
        )
        .await;
    let before = written_rows(&pool).await;

    let now = chrono::Utc::now().timestamp().to_string();
    let body = r#"{"update_id": 1, "message": {"message_id": 1, "chat": {"id": 1}, "text": "x"}}"#;
    let forged: Vec<Forged> = vec![
        (telegram, vec![], body),
        (
            telegram,
            vec![("x-telegram-bot-api-secret-token", "guess".into())],
            body,
        ),
        (
            slack,
            vec![
                ("x-slack-request-timestamp", now.clone()),
                ("x-slack-signature", format!("v0={}", "0".repeat(64))),
            ],
            body,
        ),
        (slack, vec![], body),
        (
            whatsapp,
            vec![("x-hub-signature-256", format!("sha256={}", "a".repeat(64)))],
            body,
        ),
        (whatsapp, vec![], body),
        (
            salesforce,
            vec![("content-type", "text/xml".into())],
            SALESFORCE,
        ),
        (
            standard,
            vec![
                ("webhook-id", "msg_1".into()),
                ("webhook-timestamp", now.clone()),
                ("webhook-signature", "v1,Zm9yZ2VkIHNpZ25hdHVyZQ==".into()),
            ],
            body,
        ),
        (standard, vec![], body),
        (Uuid::new_v4(), vec![], body),
    ];
    let requests = (0..400).map(|i| forged[i % forged.len()].clone());
    let statuses: Vec<(u16, Value)> = stream::iter(requests)
        .map(|(source, headers, body)| {
            let app = &app;
            async move {
                let response = app.post_hook(source, &headers, body.to_owned()).await;
                let status = response.status().as_u16();
                (status, response.json().await.unwrap_or(Value::Null))
            }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    for (status, body) in &statuses {
        assert!(
            (400..500).contains(status) && *status != 429,
            "a forged webhook got {status}: {body}"
        );
        assert!(
            body["error"]["code"].is_string() && body["error"]["message"].is_string(),
            "a forged webhook's answer names what was wrong: {body}"
        );
    }
    assert_eq!(
        written_rows(&pool).await,
        before,
        "forged webhooks wrote to the database"
    );
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn api_keys_are_stored_only_as_hashes(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (tenant, first) = app.tenant("acme").await;
    let response = app
        .client
        .post(app.url(&format!("/v1/admin/tenants/{tenant}/api_keys")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let second = response.json::<Value>().await.unwrap()["api_key"]
        .as_str()
        .unwrap()
        .to_owned();
    // Both keys work, so the database holds enough to check them.
    for key in [&first, &second] {
        assert_eq!(app.get(key, "/v1/jobs").await.status(), 200);
    }

    let mut everything = String::new();
    for table in ["tenants", "api_keys", "sources", "jobs", "events"] {
        everything.push_str(&dump(&pool, table).await);
    }
    assert!(
        everything.contains("secret_sha256"),
        "the dump has the key rows"
    );
    for key in [&first, &second] {
        // The whole key, and its secret part after the public prefix, appear nowhere.
        let secret = key.rsplit('_').next().unwrap();
        assert!(secret.len() >= 32, "{key}");
        assert!(
            !everything.contains(key.as_str()),
            "a key is stored in clear"
        );
        assert!(
            !everything.contains(secret),
            "a key's secret part is stored in clear"
        );
    }
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn bad_input_gets_a_clear_4xx_that_names_the_problem(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;
    let salesforce = app
        .source(
            &key,
            "salesforce",
            json!({"organization_id": "00D5e000000Abc1EAC"}),
        )
        .await;
    let telegram = app
        .source(
            &key,
            "telegram",
            json!({"secret_token": "tg-secret-0123456789"}),
        )
        .await;

    let nested = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_input = format!(r#"{{"kind": "payload.heal", "input": {{"payload": {nested}}}}}"#);
    let invalid_utf8: &[u8] =
        b"{\"kind\": \"payload.heal\", \"input\": {\"payload\": \"\xff\xfe\"}}";
    let oversized = "x".repeat(65 * 1024);
    let jobs = app.url("/v1/jobs");
    let cases: Vec<(&str, reqwest::RequestBuilder)> = vec![
        (
            "deeply nested JSON",
            app.client
                .post(&jobs)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(deep_input.clone()),
        ),
        (
            "invalid UTF-8",
            app.client
                .post(&jobs)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(invalid_utf8.to_vec()),
        ),
        (
            "wrong content type",
            app.client
                .post(&jobs)
                .bearer_auth(&key)
                .header("content-type", "text/plain")
                .body(r#"{"kind": "payload.heal", "input": {"payload": "x"}}"#),
        ),
        (
            "not JSON",
            app.client
                .post(&jobs)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body("{not json"),
        ),
        (
            "oversized job",
            app.client
                .post(&jobs)
                .bearer_auth(&key)
                .header("content-type", "application/json")
                .body(format!(
                    r#"{{"kind": "payload.heal", "input": {{"payload": "{oversized}"}}}}"#
                )),
        ),
        (
            "garbage XML",
            app.client
                .post(app.url(&format!("/hooks/{salesforce}")))
                .header("content-type", "text/xml")
                .body("<soapenv:Envelope><notifications><OrganizationId>00D5e000000Abc1EAC</Org"),
        ),
        (
            "XML where JSON is expected",
            app.client
                .post(app.url(&format!("/hooks/{salesforce}")))
                .header("content-type", "application/json")
                .body("{\"OrganizationId\": \"00D5e000000Abc1EAC\"}"),
        ),
        (
            "oversized webhook",
            app.client
                .post(app.url(&format!("/hooks/{telegram}")))
                .header("x-telegram-bot-api-secret-token", "tg-secret-0123456789")
                .header("content-type", "application/json")
                .body(oversized.clone()),
        ),
        (
            "malformed source id",
            app.client
                .post(app.url("/hooks/not-a-uuid"))
                .header("content-type", "application/json")
                .body("{}"),
        ),
    ];
    for (case, request) in cases {
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        assert!(
            (400..500).contains(&status),
            "{case}: expected a 4xx, got {status}: {text}"
        );
        let body: Value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{case}: the error is not JSON: {text}"));
        let message = body["error"]["message"].as_str().unwrap_or_default();
        assert!(
            !message.is_empty(),
            "{case}: the error names the problem: {text}"
        );
    }
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(jobs, 0, "no bad input became a job");
    // The gateway is still serving.
    assert_eq!(app.get(&key, "/v1/jobs").await.status(), 200);
    app.stop().await;
}
