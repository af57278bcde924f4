//! The job API, authentication and SSE against a real gateway: tenant isolation, idempotency,
//! pagination, cancel and replay, JWTs, revocation, SSE resume, and the committed OpenAPI spec.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::{TestApp, ADMIN_TOKEN, JWT_SECRET};
use futures::StreamExt;
use jsonwebtoken::{encode, EncodingKey, Header};
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use uuid::Uuid;

fn heal(text: &str) -> Value {
    json!({"kind": "payload.heal", "input": {"payload": text, "platform": "telegram"}})
}

#[sqlx::test(migrations = "../migrations")]
async fn jobs_are_created_listed_and_isolated_per_tenant(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let (_, alice) = app.tenant("alice").await;
    let (_, bob) = app.tenant("bob").await;

    let created = app.post(&alice, "/v1/jobs", heal("{}")).await;
    assert_eq!(created.status(), 202);
    let location = created.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = created.json().await.unwrap();
    assert_eq!(body["status"], "queued");
    assert_eq!(location, format!("/v1/jobs/{}", body["id"]));

    let job: Value = app.get(&alice, &location).await.json().await.unwrap();
    assert_eq!(job["kind"], "payload.heal");
    assert_eq!(job["input"]["payload"], "{}");
    for field in [
        "attempt",
        "max_attempts",
        "priority",
        "source_id",
        "result",
        "last_error",
        "replay_of",
        "created_at",
        "started_at",
        "finished_at",
    ] {
        assert!(
            job.as_object().unwrap().contains_key(field),
            "{field} missing from {job}"
        );
    }
    let foreign = app.get(&bob, &location).await;
    assert_eq!(foreign.status(), 404);
    let foreign_cancel = app
        .post(&bob, &format!("{location}/cancel"), json!({}))
        .await;
    assert_eq!(foreign_cancel.status(), 404);
    let foreign_replay = app
        .post(&bob, &format!("{location}/replay"), json!({}))
        .await;
    assert_eq!(foreign_replay.status(), 404);
    let bob_list: Value = app.get(&bob, "/v1/jobs").await.json().await.unwrap();
    assert_eq!(bob_list["items"], json!([]));

    // A kind of the tenant's own is accepted (its workers claim it); a name outside the rule is not.
    let own = app
        .post(
            &alice,
            "/v1/jobs",
            json!({"kind": "image.render", "input": {}}),
        )
        .await;
    assert_eq!(own.status(), 202);
    let unknown = app
        .post(
            &alice,
            "/v1/jobs",
            json!({"kind": "Image Render", "input": {}}),
        )
        .await;
    assert_eq!(unknown.status(), 422);
    let body: Value = unknown.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_job");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("Image Render"));
    let internal_kind = app
        .post(
            &alice,
            "/v1/jobs",
            json!({"kind": "webhook.inbound", "input": {}}),
        )
        .await;
    assert_eq!(internal_kind.status(), 422);
    let bad_input = app
        .post(
            &alice,
            "/v1/jobs",
            json!({"kind": "llm.generate", "input": {"messages": []}}),
        )
        .await;
    assert_eq!(bad_input.status(), 422);
    let no_auth = app.client.get(app.url("/v1/jobs")).send().await.unwrap();
    assert_eq!(no_auth.status(), 401);
    let body: Value = no_auth.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthorized");
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn idempotency_pagination_cancel_replay_and_stats(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let (_, key) = app.tenant("acme").await;

    let first = app
        .client
        .post(app.url("/v1/jobs"))
        .bearer_auth(&key)
        .header("Idempotency-Key", "order-77")
        .json(&heal("a"))
        .send()
        .await
        .unwrap();
    let again = app
        .client
        .post(app.url("/v1/jobs"))
        .bearer_auth(&key)
        .header("Idempotency-Key", "order-77")
        .json(&heal("b"))
        .send()
        .await
        .unwrap();
    let (first, again): (Value, Value) = (first.json().await.unwrap(), again.json().await.unwrap());
    assert_eq!(
        first["id"], again["id"],
        "the same Idempotency-Key is the same job"
    );

    for i in 0..4 {
        assert_eq!(
            app.post(&key, "/v1/jobs", heal(&i.to_string()))
                .await
                .status(),
            202
        );
    }
    let page1: Value = app
        .get(&key, "/v1/jobs?limit=2")
        .await
        .json()
        .await
        .unwrap();
    let page1_ids: Vec<i64> = page1["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|j| j["id"].as_i64().unwrap())
        .collect();
    assert_eq!(page1_ids.len(), 2);
    assert!(page1_ids[0] > page1_ids[1], "newest first");
    let cursor = page1["next_cursor"].as_str().unwrap();
    let page2: Value = app
        .get(&key, &format!("/v1/jobs?limit=2&cursor={cursor}"))
        .await
        .json()
        .await
        .unwrap();
    let page3: Value = app
        .get(
            &key,
            &format!(
                "/v1/jobs?limit=2&cursor={}",
                page2["next_cursor"].as_str().unwrap()
            ),
        )
        .await
        .json()
        .await
        .unwrap();
    let mut all: Vec<i64> = page1_ids.clone();
    for page in [&page2, &page3] {
        all.extend(
            page["items"]
                .as_array()
                .unwrap()
                .iter()
                .map(|j| j["id"].as_i64().unwrap()),
        );
    }
    assert_eq!(all.len(), 5);
    assert!(page3["next_cursor"].is_null());
    assert_eq!(app.get(&key, "/v1/jobs?status=paused").await.status(), 400);

    let id = first["id"].as_i64().unwrap();
    let canceled: Value = app
        .post(&key, &format!("/v1/jobs/{id}/cancel"), json!({}))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(canceled["status"], "canceled");
    let replayed = app
        .post(&key, &format!("/v1/jobs/{id}/replay"), json!({}))
        .await;
    assert_eq!(replayed.status(), 202);
    let replayed: Value = replayed.json().await.unwrap();
    assert_eq!(replayed["replay_of"], id);
    let copy: Value = app
        .get(&key, &format!("/v1/jobs/{}", replayed["id"]))
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(
        copy["input"],
        json!({"payload": "a", "platform": "telegram"})
    );

    let stats: Value = app.get(&key, "/v1/stats").await.json().await.unwrap();
    assert_eq!(stats["counts"]["queued"], 5);
    assert_eq!(stats["counts"]["canceled"], 1);
    assert!(stats["oldest_queued_age_ms"].as_i64().unwrap() >= 0);
    app.stop().await;
}

#[derive(serde::Serialize)]
struct Claims {
    sub: String,
    tenant_id: Uuid,
    exp: i64,
    role: Option<String>,
}

#[sqlx::test(migrations = "../migrations")]
async fn jwts_are_checked_and_revoked_keys_stop_working(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (tenant_id, key) = app.tenant("acme").await;
    let claims = |exp: i64| Claims {
        sub: "user-1".into(),
        tenant_id,
        exp,
        role: Some("viewer".into()),
    };
    let token = |claims: &Claims, secret: &str| {
        encode(
            &Header::default(),
            claims,
            &EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    let future = chrono::Utc::now().timestamp() + 600;

    assert_eq!(
        app.get(&token(&claims(future), JWT_SECRET), "/v1/jobs")
            .await
            .status(),
        200
    );
    assert_eq!(
        app.get(&token(&claims(future), "wrong-secret"), "/v1/jobs")
            .await
            .status(),
        401
    );
    assert_eq!(
        app.get(
            &token(&claims(chrono::Utc::now().timestamp() - 600), JWT_SECRET),
            "/v1/jobs"
        )
        .await
        .status(),
        401
    );
    // alg "none" and a different algorithm are refused: the algorithm is pinned to HS256.
    let none = {
        use base64::{engine::general_purpose::URL_SAFE_NO_PAD as B64, Engine};
        let header = B64.encode(r#"{"alg":"none","typ":"JWT"}"#);
        let body = B64.encode(serde_json::to_vec(&claims(future)).unwrap());
        format!("{header}.{body}.")
    };
    assert_eq!(app.get(&none, "/v1/jobs").await.status(), 401);
    let hs512 = encode(
        &Header::new(jsonwebtoken::Algorithm::HS512),
        &claims(future),
        &EncodingKey::from_secret(JWT_SECRET.as_bytes()),
    )
    .unwrap();
    let refused = app.get(&hs512, "/v1/jobs").await;
    assert_eq!(refused.status(), 401);
    let body: Value = refused.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_token");

    // API keys are stored only as hashes.
    let stored = sqlx::query!(
        "SELECT prefix, secret_sha256 FROM api_keys WHERE tenant_id = $1",
        tenant_id
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(stored.len(), 1);
    assert!(key.contains(&stored[0].prefix));
    assert!(!hex::encode(&stored[0].secret_sha256).contains(&key[key.len() - 16..]));

    // A second key, then revoking the first: refused at once, the second still works.
    let second = app
        .client
        .post(app.url(&format!("/v1/admin/tenants/{tenant_id}/api_keys")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(second.status(), 201);
    let second: Value = second.json().await.unwrap();
    let second_key = second["api_key"].as_str().unwrap().to_owned();
    assert_eq!(app.get(&key, "/v1/jobs").await.status(), 200);
    let first_id = sqlx::query_scalar!(
        "SELECT id FROM api_keys WHERE prefix = $1",
        stored[0].prefix
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    let revoked = app
        .client
        .delete(app.url(&format!("/v1/admin/api_keys/{first_id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    assert_eq!(app.get(&key, "/v1/jobs").await.status(), 401);
    assert_eq!(app.get(&second_key, "/v1/jobs").await.status(), 200);
    assert_eq!(
        app.client
            .delete(app.url(&format!("/v1/admin/api_keys/{}", Uuid::new_v4())))
            .bearer_auth(ADMIN_TOKEN)
            .send()
            .await
            .unwrap()
            .status(),
        404
    );
    assert_eq!(
        app.client
            .post(app.url("/v1/admin/tenants"))
            .bearer_auth("not-admin")
            .json(&json!({"name": "x"}))
            .send()
            .await
            .unwrap()
            .status(),
        401
    );
    app.stop().await;
}

/// Reads SSE frames until `n` events arrived; returns (id, event, data) for each.
async fn read_events(response: reqwest::Response, n: usize) -> Vec<(i64, String, Value)> {
    let mut stream = response.bytes_stream();
    let mut buffer = String::new();
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while events.len() < n {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .unwrap_or_else(|_| panic!("only {} of {n} events arrived: {events:?}", events.len()))
            .unwrap()
            .unwrap();
        buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        while let Some(end) = buffer.find("\n\n") {
            let frame: String = buffer.drain(..end + 2).collect();
            let (mut id, mut event, mut data) = (None, String::new(), String::new());
            for line in frame.lines() {
                if let Some(v) = line.strip_prefix("id: ") {
                    id = v.parse().ok();
                }
                if let Some(v) = line.strip_prefix("event: ") {
                    event = v.to_owned();
                }
                if let Some(v) = line.strip_prefix("data: ") {
                    data.push_str(v);
                }
            }
            if let Some(id) = id {
                events.push((id, event, serde_json::from_str(&data).unwrap()));
            }
        }
    }
    events
}

#[sqlx::test(migrations = "../migrations")]
async fn sse_is_tenant_scoped_and_resumes_from_last_event_id(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let (_, alice) = app.tenant("alice").await;
    let (_, bob) = app.tenant("bob").await;

    let alice_stream = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(&alice)
        .send()
        .await
        .unwrap();
    assert_eq!(alice_stream.status(), 200);
    assert!(alice_stream.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/event-stream"));
    let bob_stream = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(&bob)
        .send()
        .await
        .unwrap();

    let a1: Value = app
        .post(&alice, "/v1/jobs", heal("1"))
        .await
        .json()
        .await
        .unwrap();
    let b1: Value = app
        .post(&bob, "/v1/jobs", heal("b"))
        .await
        .json()
        .await
        .unwrap();
    let a2: Value = app
        .post(&alice, "/v1/jobs", heal("2"))
        .await
        .json()
        .await
        .unwrap();

    let seen = read_events(alice_stream, 2).await;
    assert_eq!(seen[0].1, "job.queued");
    assert_eq!(
        seen[0].2["type"], "job.queued",
        "the data names its own type"
    );
    assert_eq!(seen[0].2["job_id"], a1["id"]);
    assert_eq!(seen[1].2["job_id"], a2["id"]);
    assert_eq!(seen[0].2["status"], "queued");
    assert!(seen[0].2["at"].is_string() && seen[0].2["kind"] == "payload.heal");
    let bob_seen = read_events(bob_stream, 1).await;
    assert_eq!(
        bob_seen[0].2["job_id"], b1["id"],
        "bob sees only his own job"
    );

    // Disconnect after the first event, miss one more, then resume.
    let a3: Value = app
        .post(&alice, "/v1/jobs", heal("3"))
        .await
        .json()
        .await
        .unwrap();
    let resumed = app
        .client
        .get(app.url("/v1/events"))
        .bearer_auth(&alice)
        .header("Last-Event-ID", seen[0].0.to_string())
        .send()
        .await
        .unwrap();
    let replayed = read_events(resumed, 2).await;
    let job_ids: Vec<&Value> = replayed
        .iter()
        .map(|(_, _, data)| &data["job_id"])
        .collect();
    assert_eq!(
        job_ids,
        vec![&a2["id"], &a3["id"]],
        "the missed events, in order, without the one already seen"
    );
    assert!(replayed[0].0 > seen[0].0);

    // Filter by job: only that job's events.
    let one = app
        .client
        .get(app.url(&format!("/v1/events?job_id={}", a1["id"])))
        .bearer_auth(&alice)
        .header("Last-Event-ID", "0")
        .send()
        .await
        .unwrap();
    let only = read_events(one, 1).await;
    assert_eq!(only[0].2["job_id"], a1["id"]);
    app.stop().await;
}

#[test]
fn the_committed_openapi_spec_is_what_the_code_generates() {
    let committed = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../openapi/openapi.json"
    ))
    .expect("openapi/openapi.json is committed");
    let generated = sentinel_api::openapi_json();
    assert!(
        committed.trim_end() == generated.trim_end(),
        "openapi/openapi.json is stale: run `cargo run -p sentinel-api -- openapi > openapi/openapi.json`"
    );
    let spec: Value = serde_json::from_str(&generated).unwrap();
    for path in [
        "/hooks/{source_id}",
        "/v1/jobs",
        "/v1/jobs/{id}",
        "/v1/events",
        "/v1/sources",
        "/v1/admin/tenants",
        "/v1/stats",
    ] {
        assert!(
            spec["paths"].get(path).is_some(),
            "{path} missing from the spec"
        );
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_skipped_reply_is_sent_after_review_once(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (alice_id, alice) = app.tenant("alice").await;
    let (_, bob) = app.tenant("bob").await;
    // Two inbound messages the worker healed: one whose reply the source's policy skipped (the
    // extractor healed it), one it answered.
    let finished = |result: Value| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO jobs (tenant_id, kind, input, status, result, attempt, started_at, finished_at)
                 VALUES ($1, 'webhook.inbound', $2, 'succeeded', $3, 1, now(), now()) RETURNING id",
            )
            .bind(alice_id)
            .bind(json!({"platform": "telegram", "payload": {"chat_id": 7, "text": "hi"}}))
            .bind(result)
            .fetch_one(&pool)
            .await
            .unwrap()
        }
    };
    let skipped = finished(json!({"healed_by": "extractor", "reply": null,
        "reply_skipped": {"reason": "the message was healed by the generic extractor", "healed_by": "extractor", "reply_policy": "deterministic"}}))
    .await;
    let answered = finished(json!({"healed_by": "adapter", "reply": "hello"})).await;

    let foreign = app
        .post(&bob, &format!("/v1/jobs/{skipped}/reply"), json!({}))
        .await;
    assert_eq!(foreign.status(), 404);
    let not_skipped = app
        .post(&alice, &format!("/v1/jobs/{answered}/reply"), json!({}))
        .await;
    assert_eq!(not_skipped.status(), 409);
    let body: Value = not_skipped.json().await.unwrap();
    assert_eq!(body["error"]["code"], "reply_not_skipped");

    let approved = app
        .post(&alice, &format!("/v1/jobs/{skipped}/reply"), json!({}))
        .await;
    assert_eq!(approved.status(), 202);
    let location = approved.headers()["location"].to_str().unwrap().to_owned();
    let body: Value = approved.json().await.unwrap();
    assert_eq!(body["replay_of"], skipped);
    let replay: Value = app.get(&alice, &location).await.json().await.unwrap();
    assert_eq!(replay["kind"], "webhook.inbound");
    assert_eq!(replay["status"], "queued");
    assert_eq!(replay["replay_of"], skipped);
    assert_eq!(replay["input"]["reply_approved"], true);
    assert_eq!(replay["input"]["payload"]["chat_id"], 7);

    // Twice, even at once: one reply.
    let path = format!("/v1/jobs/{skipped}/reply");
    let (again, again_too) = tokio::join!(
        app.post(&alice, &path, json!({})),
        app.post(&alice, &path, json!({}))
    );
    for response in [again, again_too] {
        assert_eq!(response.status(), 409);
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "reply_already_approved");
    }
    let replays: i64 = sqlx::query_scalar("SELECT count(*) FROM jobs WHERE replay_of = $1")
        .bind(skipped)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(replays, 1);
}
