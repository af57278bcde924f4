//! Managing what exists, against a real gateway and database: a source read and changed in place
//! (its secrets rotated with an overlap), the admin's tenant listing, and bulk replay by filter.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{TestApp, ADMIN_TOKEN};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

async fn patch(app: &TestApp, key: &str, path: &str, body: Value) -> reqwest::Response {
    app.client
        .patch(app.url(path))
        .bearer_auth(key)
        .json(&body)
        .send()
        .await
        .unwrap()
}

async fn telegram_hook(app: &TestApp, source: Uuid, secret: &str, update_id: u64) -> u16 {
    let body = json!({"update_id": update_id, "message": {"message_id": 1, "date": 1700000000,
        "chat": {"id": 5, "type": "private"}, "from": {"id": 5, "is_bot": false, "first_name": "A"},
        "text": "hi"}});
    app.post_hook(
        source,
        &[("x-telegram-bot-api-secret-token", secret.to_owned())],
        body.to_string(),
    )
    .await
    .status()
    .as_u16()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_source_is_read_and_changed_in_place(_pool: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    let source = app
        .source(
            &key,
            "telegram",
            json!({"secret_token": "first-secret-0123456789"}),
        )
        .await;
    let path = format!("/v1/sources/{source}");

    let read = app.get_json(&key, &path).await;
    assert_eq!(read["platform"], "telegram");
    assert_eq!(read["has_reply_credentials"], false);
    assert_eq!(read["updated_at"], Value::Null);
    let ingest_url = read["ingest_url"].clone();

    let changed = patch(
        &app,
        &key,
        &path,
        json!({"name": "support", "system_prompt": "Be brief.", "reply_policy": "never",
               "reply": {"bot_token": "123:ABC"}}),
    )
    .await;
    assert_eq!(changed.status(), 200);
    let changed: Value = changed.json().await.unwrap();
    assert_eq!(changed["name"], "support");
    assert_eq!(changed["system_prompt"], "Be brief.");
    assert_eq!(changed["reply_policy"], "never");
    assert_eq!(changed["has_reply_credentials"], true);
    assert_eq!(
        changed["ingest_url"], ingest_url,
        "the ingest URL never changes"
    );
    assert!(changed["updated_at"].is_string());

    // Absent fields stay; null removes.
    let cleared = patch(
        &app,
        &key,
        &path,
        json!({"reply": null, "system_prompt": null}),
    )
    .await;
    let cleared: Value = cleared.json().await.unwrap();
    assert_eq!(cleared["name"], "support");
    assert_eq!(cleared["has_reply_credentials"], false);
    assert_eq!(cleared["system_prompt"], Value::Null);

    // Another tenant's source is not there for them.
    assert_eq!(app.get(&other, &path).await.status(), 404);
    let foreign = patch(&app, &other, &path, json!({"name": "mine"})).await;
    assert_eq!(foreign.status(), 404);
    assert_eq!(app.get_json(&key, &path).await["name"], "support");

    // Hostile changes: each refused with what was wrong, nothing written.
    for (body, status, code) in [
        (json!({"name": "a\u{0}b"}), 422, "invalid_source"),
        (json!({"system_prompt": "x\u{0}"}), 422, "invalid_source"),
        (
            json!({"secrets": {"secret_token": "short"}}),
            422,
            "invalid_secrets",
        ),
        (json!({"secrets": "not an object"}), 422, "invalid_secrets"),
        (json!({"reply": {"nothing": 1}}), 422, "invalid_reply"),
        (json!({"name": "x".repeat(201)}), 400, "bad_request"),
        (json!({"secrets_overlap_secs": -1}), 400, "bad_request"),
        (json!({"reply_policy": "sometimes"}), 400, "bad_request"),
    ] {
        let response = patch(&app, &key, &path, body.clone()).await;
        assert_eq!(response.status(), status, "{body}");
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["code"], code, "{body}");
    }
    assert_eq!(app.get_json(&key, &path).await["name"], "support");
    let missing = patch(
        &app,
        &key,
        &format!("/v1/sources/{}", Uuid::new_v4()),
        json!({}),
    )
    .await;
    assert_eq!(missing.status(), 404);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_rotated_secret_stays_valid_through_the_overlap_and_not_after(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;
    let old = "old-secret-0123456789";
    let new = "new-secret-0123456789";
    let source = app
        .source(&key, "telegram", json!({"secret_token": old}))
        .await;
    let path = format!("/v1/sources/{source}");
    assert_eq!(telegram_hook(&app, source, old, 1).await, 200);

    let rotated = patch(
        &app,
        &key,
        &path,
        json!({"secrets": {"secret_token": new}, "secrets_overlap_secs": 2}),
    )
    .await;
    assert_eq!(rotated.status(), 200);
    let rotated: Value = rotated.json().await.unwrap();
    assert!(rotated["previous_secrets_until"].is_string());
    // During the overlap both are taken; a third never is.
    assert_eq!(telegram_hook(&app, source, new, 2).await, 200);
    assert_eq!(telegram_hook(&app, source, old, 3).await, 200);
    assert_eq!(
        telegram_hook(&app, source, "third-secret-0123456789", 4).await,
        401
    );

    tokio::time::sleep(Duration::from_millis(2_300)).await;
    assert_eq!(telegram_hook(&app, source, old, 5).await, 401);
    assert_eq!(telegram_hook(&app, source, new, 6).await, 200);
    assert_eq!(
        app.get_json(&key, &path).await["previous_secrets_until"],
        Value::Null
    );

    // An overlap of 0 ends the replaced secret at once.
    let newest = "newest-secret-0123456789";
    patch(
        &app,
        &key,
        &path,
        json!({"secrets": {"secret_token": newest}, "secrets_overlap_secs": 0}),
    )
    .await;
    assert_eq!(telegram_hook(&app, source, new, 7).await, 401);
    assert_eq!(telegram_hook(&app, source, newest, 8).await, 200);
    let jobs: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE source_id = $1")
        .bind(source)
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(
        jobs, 5,
        "one job per accepted webhook: updates 1, 2, 3, 6, 8"
    );
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn the_admin_lists_tenants_a_page_at_a_time(_pool: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let mut made = Vec::new();
    for name in ["a", "b", "c"] {
        made.push(app.tenant(name).await);
    }
    app.source(
        &made[0].1,
        "telegram",
        json!({"secret_token": "first-secret-0123456789"}),
    )
    .await;

    let first = app.get_json(ADMIN_TOKEN, "/v1/admin/tenants?limit=2").await;
    let items = first["items"].as_array().unwrap();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["name"], "c", "newest first");
    let cursor = first["next_cursor"].as_str().unwrap();
    let url = format!("/v1/admin/tenants?limit=2&cursor={}", urlencode(cursor));
    let second = app.get_json(ADMIN_TOKEN, &url).await;
    let rest = second["items"].as_array().unwrap();
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0]["name"], "a");
    assert!(second.get("next_cursor").is_none());

    let one = app
        .get_json(ADMIN_TOKEN, &format!("/v1/admin/tenants/{}", made[0].0))
        .await;
    assert_eq!(one["name"], "a");
    assert_eq!(one["sources"], 1);
    assert_eq!(one["active_api_keys"], 1);
    assert_eq!(one["queued_jobs"], 0);

    let missing = app
        .get(
            ADMIN_TOKEN,
            &format!("/v1/admin/tenants/{}", Uuid::new_v4()),
        )
        .await;
    assert_eq!(missing.status(), 404);
    for bad in ["garbage", "2026-01-01T00:00:00Z,not-a-uuid", ",", "\u{0}"] {
        let response = app
            .get(
                ADMIN_TOKEN,
                &format!("/v1/admin/tenants?cursor={}", urlencode(bad)),
            )
            .await;
        assert_eq!(response.status(), 400, "{bad:?}");
    }
    // A tenant's own key is not the admin token.
    let tenant_key = app.get(&made[0].1, "/v1/admin/tenants").await;
    assert_eq!(tenant_key.status(), 401);
    app.stop().await;
}

fn urlencode(text: &str) -> String {
    form_urlencoded::byte_serialize(text.as_bytes()).collect()
}

#[sqlx::test(migrations = "../migrations")]
async fn bulk_replay_is_a_dry_run_first_bounded_and_never_replays_a_job_twice(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;
    let (_, other) = app.tenant("other").await;
    // Three dead jobs, ended by a worker through the worker API, and one that succeeded.
    let mut dead = Vec::new();
    for n in 0..4 {
        let created: Value = app
            .post(
                &key,
                "/v1/jobs",
                json!({"kind": "doc.x", "input": {"n": n}}),
            )
            .await
            .json()
            .await
            .unwrap();
        let id = created["id"].as_i64().unwrap();
        let claimed: Value = app
            .post(
                &key,
                "/v1/worker/claim",
                json!({"kinds": ["doc.x"], "worker_id": "w"}),
            )
            .await
            .json()
            .await
            .unwrap();
        let lease = claimed["jobs"][0]["lease"].clone();
        let (action, body) = if n < 3 {
            (
                "fail",
                json!({"lease": lease, "error": "broken", "retry": false}),
            )
        } else {
            ("complete", json!({"lease": lease}))
        };
        let ended = app
            .post(&key, &format!("/v1/worker/jobs/{id}/{action}"), body)
            .await;
        assert_eq!(ended.status(), 200);
        if n < 3 {
            dead.push(id);
        }
    }

    let dry: Value = app
        .post(
            &key,
            "/v1/jobs/replay",
            json!({"filter": {"kind": "doc.x"}, "limit": 2}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(dry["more"], true);
    let listed: Vec<i64> = dry["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| item["id"].as_i64().unwrap())
        .collect();
    assert_eq!(listed, dead[..2]);
    assert!(dry["items"][0].get("replay_id").is_none());
    let queued: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE status = 'queued'")
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    assert_eq!(queued, 0, "a dry run replays nothing");

    let real = json!({"filter": {"kind": "doc.x", "status": "dead"}, "limit": 2, "dry_run": false});
    let done: Value = app
        .post(&key, "/v1/jobs/replay", real.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(done["dry_run"], false);
    let replay_of: Vec<(i64, i64)> = done["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|item| {
            (
                item["id"].as_i64().unwrap(),
                item["replay_id"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(replay_of.len(), 2);
    for (original, replay) in &replay_of {
        let job = app.get_json(&key, &format!("/v1/jobs/{replay}")).await;
        assert_eq!(job["replay_of"], *original);
        assert_eq!(job["status"], "queued");
    }
    // The same filter again takes only the job not replayed yet, then nothing.
    let again: Value = app
        .post(&key, "/v1/jobs/replay", real.clone())
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(again["items"].as_array().unwrap().len(), 1);
    assert_eq!(again["items"][0]["id"], dead[2]);
    assert_eq!(again["more"], false);
    let empty: Value = app
        .post(&key, "/v1/jobs/replay", real)
        .await
        .json()
        .await
        .unwrap();
    assert!(empty["items"].as_array().unwrap().is_empty());

    // Another tenant's filter sees none of them; a filter on a status that is not final is refused.
    let foreign: Value = app
        .post(
            &other,
            "/v1/jobs/replay",
            json!({"filter": {}, "dry_run": false}),
        )
        .await
        .json()
        .await
        .unwrap();
    assert!(foreign["items"].as_array().unwrap().is_empty());
    for (body, status) in [
        (json!({"filter": {"status": "queued"}}), 422),
        (json!({"filter": {}, "limit": 1001}), 400),
        (json!({"filter": {}, "limit": 0}), 400),
        (json!({"limit": 5}), 400),
    ] {
        assert_eq!(
            app.post(&key, "/v1/jobs/replay", body.clone())
                .await
                .status(),
            status,
            "{body}"
        );
    }

    // The SQL function operators call does the same.
    let tenant: Uuid = sqlx::query_scalar("SELECT tenant_id FROM jobs WHERE id = $1")
        .bind(dead[0])
        .fetch_one(&app.state.pool)
        .await
        .unwrap();
    let succeeded: Vec<i64> = sqlx::query_scalar(
        "SELECT job_id FROM replay_jobs($1, p_status => 'succeeded', p_dry_run => true)",
    )
    .bind(tenant)
    .fetch_all(&app.state.pool)
    .await
    .unwrap();
    assert_eq!(succeeded.len(), 1);
    let refused = sqlx::query("SELECT * FROM replay_jobs($1, p_limit => 5000)")
        .bind(tenant)
        .fetch_all(&app.state.pool)
        .await
        .unwrap_err();
    assert!(
        refused.to_string().contains("limit must be from 1 to 1000"),
        "{refused}"
    );
    app.stop().await;
}
