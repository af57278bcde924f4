//! What the dashboard's job detail and Live pages read: a job's stored request, its attempts from
//! the audit table, jobs finished per minute; and the dashboard's files at `/dashboard/`.
#![allow(clippy::unwrap_used)]

mod common;

use base64::Engine as _;
use common::{config, TestApp};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

const SECRET: &str = "detail-secret-0123456789";

async fn webhook_job(app: &TestApp, key: &str, body: impl Into<reqwest::Body>) -> i64 {
    let source = app
        .source(key, "telegram", json!({"secret_token": SECRET}))
        .await;
    let answer = app
        .post_hook(
            source,
            &[
                ("x-telegram-bot-api-secret-token", SECRET.to_owned()),
                ("content-type", "application/json".to_owned()),
            ],
            body,
        )
        .await;
    assert_eq!(answer.status(), 200);
    let page = app.get_json(key, "/v1/jobs?kind=webhook.inbound").await;
    page["items"][0]["id"].as_i64().unwrap()
}

async fn unauthenticated(app: &TestApp, path: &str) -> reqwest::Response {
    app.client.get(app.url(path)).send().await.unwrap()
}

/// A `payload.heal` job submitted through the API (no worker runs in these tests).
async fn heal_job(app: &TestApp, key: &str) -> Value {
    app.post(
        key,
        "/v1/jobs",
        json!({"kind": "payload.heal", "input": {"payload": "{}"}}),
    )
    .await
    .json()
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_webhook_jobs_request_is_readable_as_text_or_base64(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;
    let text =
        r#"{"update_id": 7, "message": {"message_id": 1, "chat": {"id": 5}, "text": "héllo"}}"#;
    let id = webhook_job(&app, &key, text).await;

    let payload = app.get_json(&key, &format!("/v1/jobs/{id}/payload")).await;
    assert_eq!(payload["encoding"], "utf8");
    assert_eq!(payload["body"], text);
    assert_eq!(payload["size_bytes"], text.len());
    assert_eq!(payload["headers"]["content-type"], "application/json");
    let headers = payload["headers"].to_string().to_lowercase();
    assert!(
        !headers.contains(SECRET),
        "the secret token is never kept: {headers}"
    );

    // A body that is not UTF-8 (signed, so it is kept for replay) comes back as base64.
    let bytes = vec![0xff, 0xfe, b'{', 0x00, 0x80];
    let id = webhook_job(&app, &key, bytes.clone()).await;
    let payload = app.get_json(&key, &format!("/v1/jobs/{id}/payload")).await;
    assert_eq!(payload["encoding"], "base64");
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(payload["body"].as_str().unwrap())
        .unwrap();
    assert_eq!(decoded, bytes);

    // A job from the API has no request to show; another tenant's job does not exist.
    let api_job = heal_job(&app, &key).await;
    let missing = app
        .get(&key, &format!("/v1/jobs/{}/payload", api_job["id"]))
        .await;
    assert_eq!(missing.status(), 404);
    let body: Value = missing.json().await.unwrap();
    assert_eq!(body["error"]["code"], "no_payload");
    let (_, other) = app.tenant("other").await;
    let foreign = app.get(&other, &format!("/v1/jobs/{id}/payload")).await;
    assert_eq!(foreign.status(), 404);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn attempts_come_from_the_audit_table_and_stats_count_each_minute(
    pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options.clone()).await;
    let (_, key) = app.tenant("acme").await;
    let id = heal_job(&app, &key).await["id"].as_i64().unwrap();
    let fresh = app.get_json(&key, &format!("/v1/jobs/{id}/attempts")).await;
    assert_eq!(fresh["items"], json!([]), "no attempt has ended yet");

    // Two attempts as a worker writes them (a retry, then success), by an operator's SQL.
    let db = pool.connect_with(options).await.unwrap();
    sqlx::query(
        "INSERT INTO job_attempts (job_id, attempt, worker_id, started_at, finished_at, outcome, error)
         VALUES ($1, 1, 'w-1', now() - interval '3 seconds', now() - interval '2 seconds', 'retry', '{\"code\": \"boom\"}'),
                ($1, 2, 'w-2', now() - interval '1 second', now(), 'succeeded', NULL)",
    )
    .bind(id)
    .execute(&db)
    .await
    .unwrap();
    sqlx::query(
        "UPDATE jobs SET status = 'succeeded', attempt = 2, finished_at = now() WHERE id = $1",
    )
    .bind(id)
    .execute(&db)
    .await
    .unwrap();

    let attempts = app.get_json(&key, &format!("/v1/jobs/{id}/attempts")).await;
    let items = attempts["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["attempt"], 1);
    assert_eq!(items[0]["outcome"], "retry");
    assert_eq!(items[0]["error"]["code"], "boom");
    assert_eq!(items[1]["worker_id"], "w-2");
    assert_eq!(items[1]["outcome"], "succeeded");
    let (_, other) = app.tenant("other").await;
    assert_eq!(
        app.get(&other, &format!("/v1/jobs/{id}/attempts"))
            .await
            .status(),
        404
    );

    let stats = app.get_json(&key, "/v1/stats").await;
    let minutes = stats["per_minute"].as_array().unwrap();
    assert_eq!(minutes.len(), 15);
    assert_eq!(minutes[14]["succeeded"], 1, "{stats}");
    let total: i64 = minutes
        .iter()
        .map(|m| m["succeeded"].as_i64().unwrap())
        .sum();
    assert_eq!(total, 1);
    let other_stats = app.get_json(&other, "/v1/stats").await;
    assert!(other_stats["per_minute"]
        .as_array()
        .unwrap()
        .iter()
        .all(|m| m["succeeded"] == 0));
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_dashboard_is_served_from_its_directory_or_explains_how_to_build_it(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let dir = std::env::temp_dir().join(format!("sentinel-dashboard-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(
        dir.join("index.html"),
        "<!doctype html><title>Sentinel</title>",
    )
    .unwrap();
    std::fs::write(dir.join("assets/app.js"), "console.log(1)").unwrap();
    let app = TestApp::spawn_with(
        sentinel_api::Config {
            dashboard_dir: dir.clone(),
            ..config()
        },
        options.clone(),
    )
    .await;
    let index = unauthenticated(&app, "/dashboard/").await;
    assert_eq!(index.status(), 200);
    assert!(index
        .text()
        .await
        .unwrap()
        .contains("<title>Sentinel</title>"));
    let script = unauthenticated(&app, "/dashboard/assets/app.js").await;
    assert_eq!(script.status(), 200);
    assert!(script.headers()["content-type"]
        .to_str()
        .unwrap()
        .contains("javascript"));
    let outside = unauthenticated(&app, "/dashboard/../Cargo.toml").await;
    assert_eq!(outside.status(), 404);
    app.stop().await;

    let app = TestApp::spawn_with(
        sentinel_api::Config {
            dashboard_dir: dir.join("missing"),
            ..config()
        },
        options,
    )
    .await;
    let unbuilt = unauthenticated(&app, "/dashboard/").await;
    assert_eq!(unbuilt.status(), 404);
    let body: Value = unbuilt.json().await.unwrap();
    assert_eq!(body["error"]["code"], "dashboard_not_built");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("npm run build"));
    app.stop().await;
    std::fs::remove_dir_all(dir).unwrap();
}
