//! The worker API against a real gateway and database: tenant-defined kinds end to end, leases
//! and their fencing, the long poll, the per-kind pause and concurrency cap, failures, tenant
//! isolation, and hostile requests.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

async fn app(options: PgConnectOptions) -> TestApp {
    TestApp::spawn_with(
        sentinel_api::Config {
            rescue_interval: Duration::from_millis(100),
            ..common::config()
        },
        options,
    )
    .await
}

async fn claim(app: &TestApp, key: &str, body: Value) -> Vec<Value> {
    let response = app.post(key, "/v1/worker/claim", body).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let body: Value = response.json().await.unwrap();
    body["jobs"].as_array().unwrap().clone()
}

/// A claim sent from a task of its own, so several can wait at once: its answer and how long it took.
fn spawn_claim(
    app: &TestApp,
    key: &str,
    body: Value,
) -> tokio::task::JoinHandle<(Value, Duration)> {
    let request = app
        .client
        .post(app.url("/v1/worker/claim"))
        .bearer_auth(key)
        .json(&body);
    tokio::spawn(async move {
        let started = Instant::now();
        let body: Value = request.send().await.unwrap().json().await.unwrap();
        (body, started.elapsed())
    })
}

fn claim_of(kind: &str, max: u32) -> Value {
    json!({"kinds": [kind], "max": max, "worker_id": "w1"})
}

async fn call(app: &TestApp, key: &str, id: i64, action: &str, body: Value) -> reqwest::Response {
    app.post(key, &format!("/v1/worker/jobs/{id}/{action}"), body)
        .await
}

async fn error_code(response: reqwest::Response) -> (u16, String) {
    let status = response.status().as_u16();
    let body: Value = response.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

#[sqlx::test(migrations = "../migrations")]
async fn a_custom_job_runs_through_the_worker_api_end_to_end(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = app(options).await;
    let (_, key) = app.tenant("docs").await;
    let id = app
        .submit(&key, "doc.summarise", json!({"url": "s3://b/a.pdf"}))
        .await;

    let jobs = claim(&app, &key, claim_of("doc.summarise", 10)).await;
    assert_eq!(jobs.len(), 1);
    let job = &jobs[0];
    assert_eq!(job["id"], id);
    assert_eq!(job["kind"], "doc.summarise");
    assert_eq!(job["attempt"], 1);
    assert_eq!(job["input"]["url"], "s3://b/a.pdf");
    let lease = job["lease"].as_str().unwrap().to_owned();
    // Claimed once: a second claim finds nothing.
    assert!(claim(&app, &key, claim_of("doc.summarise", 10))
        .await
        .is_empty());

    let beat = call(
        &app,
        &key,
        id,
        "heartbeat",
        json!({"lease": lease, "lease_secs": 60}),
    )
    .await;
    assert_eq!(beat.status(), 200);
    let beat: Value = beat.json().await.unwrap();
    assert_eq!(beat["cancel_requested"], false);

    let progress = call(
        &app,
        &key,
        id,
        "progress",
        json!({"lease": lease, "progress": {"pages": 3}}),
    )
    .await;
    assert_eq!(progress.status(), 204);
    let progressed: Value =
        sqlx::query_scalar("SELECT data FROM events WHERE job_id = $1 AND type = 'job.progress'")
            .bind(id)
            .fetch_one(&app.state.pool)
            .await
            .unwrap();
    assert_eq!(progressed["progress"]["pages"], 3);

    let done = call(
        &app,
        &key,
        id,
        "complete",
        json!({"lease": lease, "result": {"summary": "ok"}}),
    )
    .await;
    assert_eq!(done.status(), 200);
    let done: Value = done.json().await.unwrap();
    assert_eq!(done["status"], "succeeded");
    let stored = app.get_json(&key, &format!("/v1/jobs/{id}")).await;
    assert_eq!(stored["status"], "succeeded");
    assert_eq!(stored["result"]["summary"], "ok");

    // The same lease again: the attempt is over.
    let again = call(
        &app,
        &key,
        id,
        "complete",
        json!({"lease": lease, "result": 1}),
    )
    .await;
    assert_eq!(error_code(again).await, (409, "lease_lost".to_owned()));
    let attempts = app.get_json(&key, &format!("/v1/jobs/{id}/attempts")).await;
    let items = attempts["items"].as_array().unwrap();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["outcome"], "succeeded");
    assert!(items[0]["worker_id"].as_str().unwrap().starts_with("w1#"));
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn an_expired_lease_is_claimed_again_and_the_late_worker_gets_409(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = app(options).await;
    let (_, key) = app.tenant("docs").await;
    let id = app.submit(&key, "doc.ocr", json!({})).await;
    let first = claim(&app, &key, claim_of("doc.ocr", 1)).await;
    let first_lease = first[0]["lease"].as_str().unwrap().to_owned();

    // The first worker stops heartbeating: its lease runs out, and the rescuer (every 100 ms
    // here) puts the job back, where a long-polling second worker takes it.
    sqlx::query("UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1")
        .bind(id)
        .execute(&app.state.pool)
        .await
        .unwrap();
    let second = claim(
        &app,
        &key,
        json!({"kinds": ["doc.ocr"], "worker_id": "w2", "wait_ms": 10000}),
    )
    .await;
    assert_eq!(second.len(), 1);
    assert_eq!(second[0]["attempt"], 2);
    let second_lease = second[0]["lease"].as_str().unwrap().to_owned();
    assert_ne!(first_lease, second_lease);

    for action in ["heartbeat", "progress", "complete", "fail"] {
        let late = call(
            &app,
            &key,
            id,
            action,
            json!({"lease": first_lease, "progress": 1, "result": "late", "error": "late"}),
        )
        .await;
        assert_eq!(
            error_code(late).await,
            (409, "lease_lost".to_owned()),
            "{action}"
        );
    }
    let done = call(
        &app,
        &key,
        id,
        "complete",
        json!({"lease": second_lease, "result": "second"}),
    )
    .await;
    assert_eq!(done.status(), 200);
    let job = app.get_json(&key, &format!("/v1/jobs/{id}")).await;
    assert_eq!(job["result"], "second");
    let outcomes: Vec<String> =
        sqlx::query_scalar("SELECT outcome FROM job_attempts WHERE job_id = $1 ORDER BY attempt")
            .bind(id)
            .fetch_all(&app.state.pool)
            .await
            .unwrap();
    assert_eq!(outcomes, ["lease_expired", "succeeded"]);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_long_poll_answers_when_a_job_arrives_and_empty_when_none_does(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = app(options).await;
    let (_, key) = app.tenant("docs").await;

    let started = Instant::now();
    let none = claim(
        &app,
        &key,
        json!({"kinds": ["doc.ocr"], "worker_id": "w", "wait_ms": 300}),
    )
    .await;
    assert!(none.is_empty());
    assert!(started.elapsed() >= Duration::from_millis(300));

    let waiting = spawn_claim(
        &app,
        &key,
        json!({"kinds": ["doc.ocr"], "worker_id": "w", "wait_ms": 20000}),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Another kind, and a built-in job, do not answer it.
    app.submit(&key, "doc.other", json!({})).await;
    app.submit(&key, "payload.heal", json!({"payload": "{}"}))
        .await;
    let id = app.submit(&key, "doc.ocr", json!({"n": 1})).await;
    let (body, waited) = waiting.await.unwrap();
    assert_eq!(body["jobs"][0]["id"], id);
    assert!(waited < Duration::from_secs(20), "{waited:?}");
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_concurrency_cap_of_two_holds_with_five_workers_claiming(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = app(options).await;
    let (_, key) = app.tenant("docs").await;
    let capped = app
        .patch_kind(&key, "doc.render", json!({"max_running": 2}))
        .await;
    assert_eq!(capped.status(), 200);
    let capped: Value = capped.json().await.unwrap();
    assert_eq!(capped["max_running"], 2);
    for n in 0..10 {
        app.submit(&key, "doc.render", json!({"n": n})).await;
    }

    let claimers: Vec<_> = (0..5)
        .map(|n| {
            let body = json!({"kinds": ["doc.render"], "max": 5, "worker_id": format!("w{n}")});
            spawn_claim(&app, &key, body)
        })
        .collect();
    let mut claimed = Vec::new();
    for claimer in claimers {
        let (body, _) = claimer.await.unwrap();
        claimed.extend(body["jobs"].as_array().unwrap().clone());
    }
    assert_eq!(claimed.len(), 2, "{claimed:?}");
    let kinds = app.get_json(&key, "/v1/kinds").await;
    assert_eq!(kinds["items"][0]["kind"], "doc.render");
    assert_eq!(kinds["items"][0]["running"], 2);
    assert_eq!(kinds["items"][0]["queued"], 8);

    // One finishes: one slot frees, and only one more job is handed out.
    let job = &claimed[0];
    let done = call(
        &app,
        &key,
        job["id"].as_i64().unwrap(),
        "complete",
        json!({"lease": job["lease"]}),
    )
    .await;
    assert_eq!(done.status(), 200);
    assert_eq!(claim(&app, &key, claim_of("doc.render", 5)).await.len(), 1);
    assert!(claim(&app, &key, claim_of("doc.render", 5))
        .await
        .is_empty());

    // Removing the cap hands out the rest.
    let uncapped = app
        .patch_kind(&key, "doc.render", json!({"max_running": null}))
        .await;
    let uncapped: Value = uncapped.json().await.unwrap();
    assert_eq!(uncapped["max_running"], Value::Null);
    assert_eq!(
        claim(&app, &key, claim_of("doc.render", 100)).await.len(),
        7
    );
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn pause_stops_claims_and_resume_restarts_them(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = app(options).await;
    let (_, key) = app.tenant("docs").await;
    app.submit(&key, "mail.send", json!({})).await;
    app.submit(&key, "mail.bounce", json!({})).await;
    let paused = app
        .patch_kind(&key, "mail.send", json!({"paused": true}))
        .await;
    let paused: Value = paused.json().await.unwrap();
    assert_eq!(paused["paused"], true);
    assert_eq!(paused["queued"], 1);

    // A paused kind is skipped; the other kind in the same claim is not.
    let jobs = claim(
        &app,
        &key,
        json!({"kinds": ["mail.send", "mail.bounce"], "max": 10, "worker_id": "w"}),
    )
    .await;
    assert_eq!(jobs.len(), 1);
    assert_eq!(jobs[0]["kind"], "mail.bounce");
    assert!(claim(&app, &key, claim_of("mail.send", 10))
        .await
        .is_empty());

    let resumed = app
        .patch_kind(&key, "mail.send", json!({"paused": false}))
        .await;
    assert_eq!(resumed.json::<Value>().await.unwrap()["paused"], false);
    assert_eq!(claim(&app, &key, claim_of("mail.send", 10)).await.len(), 1);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn fail_retries_with_backoff_snoozes_kills_and_ends_a_canceled_job(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = app(options).await;
    let (_, key) = app.tenant("docs").await;
    let kind = "doc.flaky";
    let id = app.submit(&key, kind, json!({})).await;

    // Retry: queued again later, an attempt spent, the error kept.
    let job = &claim(&app, &key, claim_of(kind, 1)).await[0];
    let failed = call(
        &app,
        &key,
        id,
        "fail",
        json!({"lease": job["lease"], "error": "timeout"}),
    )
    .await;
    let failed: Value = failed.json().await.unwrap();
    assert_eq!(failed["status"], "queued");
    assert!(failed["run_at"].is_string());
    let stored = app.get_json(&key, &format!("/v1/jobs/{id}")).await;
    assert_eq!(stored["last_error"]["message"], "timeout");
    assert_eq!(stored["attempt"], 1);

    // Snooze: queued after the given delay without spending an attempt.
    sqlx::query("UPDATE jobs SET run_at = now() WHERE id = $1")
        .bind(id)
        .execute(&app.state.pool)
        .await
        .unwrap();
    let job = &claim(&app, &key, claim_of(kind, 1)).await[0];
    let snoozed = call(
        &app,
        &key,
        id,
        "fail",
        json!({"lease": job["lease"], "error": {"code": "rate_limited"}, "retry_after_secs": 120}),
    )
    .await;
    let snoozed: Value = snoozed.json().await.unwrap();
    assert_eq!(snoozed["status"], "queued");
    let stored = app.get_json(&key, &format!("/v1/jobs/{id}")).await;
    assert_eq!(stored["max_attempts"], 6, "a snooze gives the attempt back");
    assert_eq!(stored["last_error"]["code"], "rate_limited");
    assert!(
        claim(&app, &key, claim_of(kind, 1)).await.is_empty(),
        "snoozed for 120 s"
    );

    // Fatal: dead at once.
    let fatal_id = app.submit(&key, "doc.fatal", json!({})).await;
    let job = &claim(&app, &key, claim_of("doc.fatal", 1)).await[0];
    let dead = call(
        &app,
        &key,
        fatal_id,
        "fail",
        json!({"lease": job["lease"], "error": "bad", "retry": false}),
    )
    .await;
    assert_eq!(dead.json::<Value>().await.unwrap()["status"], "dead");

    // Canceled while running: the heartbeat says so, and the worker's fail ends it canceled.
    let cancel_id = app.submit(&key, "doc.long", json!({})).await;
    let job = &claim(&app, &key, claim_of("doc.long", 1)).await[0];
    let canceled = app
        .post(&key, &format!("/v1/jobs/{cancel_id}/cancel"), json!({}))
        .await;
    assert_eq!(canceled.status(), 200);
    let beat: Value = call(
        &app,
        &key,
        cancel_id,
        "heartbeat",
        json!({"lease": job["lease"]}),
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(beat["cancel_requested"], true);
    let stopped = call(
        &app,
        &key,
        cancel_id,
        "fail",
        json!({"lease": job["lease"], "error": "stopped"}),
    )
    .await;
    assert_eq!(stopped.json::<Value>().await.unwrap()["status"], "canceled");

    // Both retry: false and a snooze is a contradiction.
    let other = app.submit(&key, "doc.other", json!({})).await;
    let job = &claim(&app, &key, claim_of("doc.other", 1)).await[0];
    let both = call(
        &app,
        &key,
        other,
        "fail",
        json!({"lease": job["lease"], "error": "x", "retry": false, "retry_after_secs": 5}),
    )
    .await;
    assert_eq!(error_code(both).await, (422, "invalid_failure".to_owned()));
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn every_worker_endpoint_keeps_tenants_apart(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = app(options).await;
    let (_, alice) = app.tenant("alice").await;
    let (_, bob) = app.tenant("bob").await;
    let id = app.submit(&alice, "doc.x", json!({"secret": 1})).await;
    app.patch_kind(&alice, "doc.y", json!({"paused": true}))
        .await;

    // Bob's claim never sees Alice's job, nor his kinds list her kinds.
    assert!(claim(&app, &bob, claim_of("doc.x", 10)).await.is_empty());
    assert!(app.get_json(&bob, "/v1/kinds").await["items"]
        .as_array()
        .unwrap()
        .is_empty());
    let job = &claim(&app, &alice, claim_of("doc.x", 10)).await[0];
    // Bob holding Alice's job id and even her lease changes nothing: 404.
    for action in ["heartbeat", "progress", "complete", "fail"] {
        let foreign = call(
            &app,
            &bob,
            id,
            action,
            json!({"lease": job["lease"], "progress": 1, "error": "x"}),
        )
        .await;
        assert_eq!(
            error_code(foreign).await,
            (404, "job_not_found".to_owned()),
            "{action}"
        );
    }
    // Bob's controls are his own: pausing doc.x for him leaves Alice's doc.x alone.
    app.patch_kind(&bob, "doc.x", json!({"paused": true})).await;
    app.submit(&alice, "doc.x", json!({})).await;
    assert_eq!(claim(&app, &alice, claim_of("doc.x", 10)).await.len(), 1);
    let alice_kinds = app.get_json(&alice, "/v1/kinds").await;
    let names: Vec<&str> = alice_kinds["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|kind| kind["kind"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["doc.x", "doc.y"]);
    let job = app.get_json(&alice, &format!("/v1/jobs/{id}")).await;
    assert_eq!(job["status"], "running");
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn hostile_worker_requests_get_a_clear_error_and_change_nothing(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = app(options).await;
    let (_, key) = app.tenant("docs").await;

    // Kind names: Sentinel's own, reserved, malformed, U+0000, too long.
    for bad in [
        "payload.heal",
        "webhook.inbound",
        "sentinel.x",
        "Doc",
        "doc..x",
        "doc\u{0}x",
        &"a".repeat(65),
    ] {
        let response = app
            .post(
                &key,
                "/v1/worker/claim",
                json!({"kinds": [bad], "worker_id": "w"}),
            )
            .await;
        let (status, _) = error_code(response).await;
        assert!(status == 422 || status == 400, "{bad:?}: {status}");
        let response = app
            .post(&key, "/v1/jobs", json!({"kind": bad, "input": {}}))
            .await;
        let (status, _) = error_code(response).await;
        assert!(status == 422 || status == 400, "{bad:?}: {status}");
    }
    // A body over the gateway's limit is refused before it is parsed; the next call is served.
    let huge = json!({"kinds": ["doc.x"], "worker_id": "w".repeat(100 * 1024)});
    let response = app.post(&key, "/v1/worker/claim", huge).await;
    assert_eq!(
        error_code(response).await,
        (413, "payload_too_large".to_owned())
    );
    assert!(claim(&app, &key, claim_of("doc.x", 1)).await.is_empty());
    // Out-of-range numbers and a huge list of kinds.
    for body in [
        json!({"kinds": ["a"], "worker_id": "w", "max": 0}),
        json!({"kinds": ["a"], "worker_id": "w", "max": 101}),
        json!({"kinds": ["a"], "worker_id": "w", "wait_ms": 30001}),
        json!({"kinds": ["a"], "worker_id": "w", "lease_secs": 1}),
        json!({"kinds": [], "worker_id": "w"}),
        json!({"kinds": vec!["a"; 10_000], "worker_id": "w"}),
        json!({"kinds": ["a"], "worker_id": ""}),
        json!({"kinds": "a", "worker_id": "w"}),
    ] {
        let response = app.post(&key, "/v1/worker/claim", body.clone()).await;
        assert_eq!(response.status(), 400, "{body}");
    }

    let id = app.submit(&key, "doc.x", json!({})).await;
    let job = &claim(&app, &key, claim_of("doc.x", 1)).await[0];
    // Leases that are not tokens: malformed, forged, enormous.
    for lease in [
        "".to_owned(),
        "nonsense".to_owned(),
        "1.%%%".to_owned(),
        "x.d29ya2Vy".to_owned(),
        "1.d29ya2Vy".to_owned(), // attempt 1, owner "worker": well formed, not the owner
        "9".repeat(600),
    ] {
        let response = call(&app, &key, id, "complete", json!({"lease": lease})).await;
        let (status, code) = error_code(response).await;
        assert!(
            (status == 400 && (code == "invalid_lease" || code == "bad_request"))
                || (status == 409 && code == "lease_lost"),
            "{lease:.40}: {status} {code}"
        );
    }
    // A result nested past the limit, and one with U+0000, which jsonb cannot hold.
    let mut deep = json!(1);
    for _ in 0..115 {
        deep = json!([deep]);
    }
    let response = call(
        &app,
        &key,
        id,
        "complete",
        json!({"lease": job["lease"], "result": deep}),
    )
    .await;
    assert_eq!(error_code(response).await, (422, "too_deep".to_owned()));
    let response = call(
        &app,
        &key,
        id,
        "complete",
        json!({"lease": job["lease"], "result": {"text": "a\u{0}b"}}),
    )
    .await;
    assert_eq!(response.status(), 200);
    let stored = app.get_json(&key, &format!("/v1/jobs/{id}")).await;
    assert_eq!(stored["status"], "succeeded");
    assert!(stored["result"]["text"].as_str().unwrap().starts_with('a'));

    // A built-in job is never the worker API's, even with a guessed lease owner.
    let heal = app
        .post(
            &key,
            "/v1/jobs",
            json!({"kind": "payload.heal", "input": {"payload": "{}"}}),
        )
        .await;
    let heal_id = heal.json::<Value>().await.unwrap()["id"].as_i64().unwrap();
    sqlx::query(
        "UPDATE jobs SET status = 'running', attempt = 1, lease_owner = 'worker', \
         lease_expires_at = now() + interval '1 minute' WHERE id = $1",
    )
    .bind(heal_id)
    .execute(&app.state.pool)
    .await
    .unwrap();
    let response = call(
        &app,
        &key,
        heal_id,
        "complete",
        json!({"lease": "1.d29ya2Vy"}),
    )
    .await;
    assert_eq!(error_code(response).await, (409, "lease_lost".to_owned()));
    let stored = app.get_json(&key, &format!("/v1/jobs/{heal_id}")).await;
    assert_eq!(stored["status"], "running");

    // Controls on a bad kind name, or a negative cap.
    let response = app
        .patch_kind(&key, "payload.heal", json!({"paused": true}))
        .await;
    assert_eq!(error_code(response).await, (422, "invalid_kind".to_owned()));
    let response = app
        .patch_kind(&key, "doc.x", json!({"max_running": -1}))
        .await;
    assert_eq!(response.status(), 400);
    app.stop().await;
}
