//! Noisy neighbours: what one tenant's misbehaviour on the worker API and the job API costs the
//! others. Each test has a second tenant and checks what it sees while the first misbehaves:
//! idle long polls that hold no connection and wake only for their own kinds, metered progress
//! and kind changes, a capped kind's claim that never waits on a lock, credentials checked again
//! during a long poll, bulk replays that spend tokens only for what they replay.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::TestApp;
use serde_json::{json, Value};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

fn spawn_claim(
    app: &TestApp,
    key: &str,
    body: Value,
) -> tokio::task::JoinHandle<(u16, Value, Duration)> {
    let request = app
        .client
        .post(app.url("/v1/worker/claim"))
        .bearer_auth(key)
        .json(&body);
    tokio::spawn(async move {
        let started = Instant::now();
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        (status, body, started.elapsed())
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// 800 long polls of one tenant on a capped kind wait while a third tenant submits jobs of its
/// own kind at about 20/s: the polls hold no claim connection, the submissions wake none of
/// them (so the claims they run stay a handful, not one per poll per second), and a bystander's
/// job reads and webhooks all succeed.
#[sqlx::test(migrations = "../migrations")]
async fn idle_long_polls_hold_no_connection_and_wake_only_for_their_own_kind(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with(
        sentinel_api::Config {
            claim_poll_interval: Duration::from_secs(2),
            // 800 polls at once are over the default request burst (400): the herd's own cost,
            // not what this test is about.
            tenant_requests: sentinel_api::admission::RequestBudget {
                per_sec: 1_000,
                burst: 2_000,
            },
            ..common::config()
        },
        options,
    )
    .await;
    let (_, herd) = app.tenant("herd").await;
    let (_, busy) = app
        .tenant_with(json!({"name": "busy", "rate_limit_per_sec": 1000, "burst": 1000}))
        .await;
    let (_, bystander) = app.tenant("bystander").await;
    assert_eq!(
        app.patch_kind(&herd, "herd.work", json!({"max_running": 1}))
            .await
            .status(),
        200
    );
    let bystander_job = app
        .submit(&bystander, "payload.heal", json!({"payload": "{}"}))
        .await;

    // reqwest opens one connection per concurrent request: 800 of them, started as a fleet of
    // workers would start, a batch at a time.
    let mut polls = Vec::new();
    for batch in 0..16 {
        for n in 0..50 {
            polls.push(spawn_claim(
                &app,
                &herd,
                json!({"kinds": ["herd.work"], "worker_id": format!("w{batch}.{n}"), "wait_ms": 10000}),
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let started = Instant::now();
    while app.state.claims.waiting() < 800 {
        if let Some(done) = polls.iter_mut().find(|poll| poll.is_finished()) {
            panic!("a poll answered early: {:?}", done.await.unwrap());
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "only {} polls were waiting",
            app.state.claims.waiting()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let claims_before = app.state.claims.claims_run();

    // The third tenant submits about 20 jobs a second for 3 s; the bystander reads its job.
    let submitter = {
        let (client, url, key) = (app.client.clone(), app.url("/v1/jobs"), busy.clone());
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            for n in 0..60 {
                let response = client
                    .post(&url)
                    .bearer_auth(&key)
                    .json(&json!({"kind": "busy.job", "input": {"n": n}}))
                    .send()
                    .await
                    .unwrap();
                statuses.push(response.status().as_u16());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            statuses
        })
    };
    let mut latencies = Vec::new();
    let mut claim_connections_in_use = 0;
    let reading = Instant::now();
    while reading.elapsed() < Duration::from_secs(3) {
        let sent = Instant::now();
        let response = app
            .get(&bystander, &format!("/v1/jobs/{bystander_job}"))
            .await;
        latencies.push(sent.elapsed());
        assert_eq!(response.status(), 200);
        let pool = &app.state.claim_pool;
        claim_connections_in_use =
            claim_connections_in_use.max(pool.size() as usize - pool.num_idle());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let statuses = submitter.await.unwrap();
    assert!(statuses.iter().all(|&s| s == 202), "{statuses:?}");
    let claims_during = app.state.claims.claims_run() - claims_before;
    // The poll interval wakes one poll of the one key every 2 s: a couple of claims in 3 s, where
    // every poll claiming every second would have been thousands.
    assert!(
        claims_during <= 4,
        "{claims_during} claims ran while 800 polls waited"
    );
    assert!(
        claim_connections_in_use <= 1,
        "{claim_connections_in_use} claim connections were in use while the polls waited"
    );
    assert_eq!(app.state.claims.waiting(), 800);
    latencies.sort();
    println!(
        "bystander GET /v1/jobs/{{id}} while 800 polls waited: n={} p50={:?} p99={:?}",
        latencies.len(),
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99)
    );

    // One job of the herd's kind wakes one poll, which takes it; the rest go on waiting.
    let id = app.submit(&herd, "herd.work", json!({})).await;
    let started = Instant::now();
    let mut taken = None;
    while taken.is_none() {
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "no poll took the job"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        taken = sqlx::query_scalar!("SELECT status FROM jobs WHERE id = $1", id)
            .fetch_one(&app.state.pool)
            .await
            .ok()
            .filter(|status| status == "running");
    }
    let mut answered = 0;
    for poll in polls {
        let (status, body, _) = poll.await.unwrap();
        assert_eq!(status, 200, "{body}");
        answered += body["jobs"].as_array().unwrap().len();
    }
    assert_eq!(answered, 1);
    app.stop().await;
}

/// A claim of a capped kind whose row another claim holds answers at once instead of waiting on
/// the lock, and a long poll takes the job once the row is free. Another tenant's claim of its
/// own capped kind is never held up.
#[sqlx::test(migrations = "../migrations")]
async fn a_capped_claim_never_waits_on_a_lock(_pool: PgPoolOptions, options: PgConnectOptions) {
    let app = TestApp::spawn(options).await;
    let (a, key_a) = app.tenant("a").await;
    let (_, key_b) = app.tenant("b").await;
    for key in [&key_a, &key_b] {
        assert_eq!(
            app.patch_kind(key, "cap.work", json!({"max_running": 1}))
                .await
                .status(),
            200
        );
        app.submit(key, "cap.work", json!({})).await;
    }
    // Hold tenant a's row as a claim in the middle of deciding would.
    let mut holder = app.state.pool.begin().await.unwrap();
    sqlx::query!(
        "SELECT kind FROM job_kinds WHERE tenant_id = $1 AND kind = 'cap.work' FOR UPDATE",
        a
    )
    .fetch_all(&mut *holder)
    .await
    .unwrap();

    let claim = json!({"kinds": ["cap.work"], "worker_id": "w"});
    let started = Instant::now();
    let (status, body, _) = spawn_claim(&app, &key_a, claim.clone()).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["jobs"].as_array().unwrap().len(), 0);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "the claim waited on the lock"
    );
    let (status, body, _) = spawn_claim(&app, &key_b, claim.clone()).await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(
        body["jobs"].as_array().unwrap().len(),
        1,
        "tenant b was held up"
    );

    let waiting = spawn_claim(
        &app,
        &key_a,
        json!({"kinds": ["cap.work"], "worker_id": "w", "wait_ms": 5000}),
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    holder.rollback().await.unwrap();
    let (status, body, waited) = waiting.await.unwrap();
    assert_eq!(status, 200);
    assert_eq!(body["jobs"].as_array().unwrap().len(), 1, "{body}");
    assert!(waited < Duration::from_secs(3), "{waited:?}");
    app.stop().await;
}

/// Progress reports and kind changes spend the tenant's event tokens: 30 reports in 0.1 s with a
/// limit of 1/s and a burst of 2 are mostly refused, with no event written for them, while
/// another tenant's reports go through.
#[sqlx::test(migrations = "../migrations")]
async fn progress_and_kind_changes_are_metered_per_tenant(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let (noisy, noisy_key) = app
        .tenant_with(json!({"name": "noisy", "rate_limit_per_sec": 1, "burst": 2}))
        .await;
    let (_, calm_key) = app.tenant("calm").await;
    let mut leases = Vec::new();
    for key in [&noisy_key, &calm_key] {
        app.submit(key, "meter.job", json!({})).await;
        let claimed = app
            .post(
                key,
                "/v1/worker/claim",
                json!({"kinds": ["meter.job"], "worker_id": "w"}),
            )
            .await
            .json::<Value>()
            .await
            .unwrap();
        let job = claimed["jobs"][0].clone();
        leases.push((job["id"].as_i64().unwrap(), job["lease"].clone()));
    }
    // Let the noisy tenant's bucket refill after its submission.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let mut statuses = Vec::new();
    for n in 0..30 {
        let (id, lease) = &leases[0];
        let response = app
            .post(
                &noisy_key,
                &format!("/v1/worker/jobs/{id}/progress"),
                json!({"lease": lease, "progress": {"n": n}}),
            )
            .await;
        statuses.push(response.status().as_u16());
    }
    let accepted = statuses.iter().filter(|&&s| s == 204).count();
    assert!((1..=3).contains(&accepted), "{statuses:?}");
    assert_eq!(
        accepted + statuses.iter().filter(|&&s| s == 429).count(),
        30
    );
    let written = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM events WHERE tenant_id = $1 AND type = 'job.progress'"#,
        noisy
    )
    .fetch_one(&app.state.pool)
    .await
    .unwrap();
    assert_eq!(written as usize, accepted);

    let (id, lease) = &leases[1];
    for n in 0..5 {
        let response = app
            .post(
                &calm_key,
                &format!("/v1/worker/jobs/{id}/progress"),
                json!({"lease": lease, "progress": {"n": n}}),
            )
            .await;
        assert_eq!(response.status(), 204);
    }

    let mut kind_statuses = Vec::new();
    for n in 0..10 {
        let response = app
            .patch_kind(&noisy_key, &format!("k{n}.x"), json!({"paused": true}))
            .await;
        kind_statuses.push(response.status().as_u16());
    }
    assert!(
        kind_statuses.iter().filter(|&&s| s == 429).count() >= 7,
        "{kind_statuses:?}"
    );
    let kinds = app.get_json(&noisy_key, "/v1/kinds?limit=1").await;
    assert!(kinds["items"].as_array().unwrap().len() <= 1);
    app.stop().await;
}

/// Progress, errors and results each have a size limit, answered 413 with the limit named.
#[sqlx::test(migrations = "../migrations")]
async fn oversized_progress_errors_and_results_name_their_limit(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with(
        sentinel_api::Config {
            max_body_bytes: 4 * 1024 * 1024,
            ..common::config()
        },
        options,
    )
    .await;
    let (_, key) = app.tenant("big").await;
    let id = app.submit(&key, "big.job", json!({})).await;
    let claimed = app
        .post(
            &key,
            "/v1/worker/claim",
            json!({"kinds": ["big.job"], "worker_id": "w"}),
        )
        .await
        .json::<Value>()
        .await
        .unwrap();
    let lease = claimed["jobs"][0]["lease"].clone();
    let cases = [
        (
            "progress",
            json!({"lease": lease, "progress": "x".repeat(70 * 1024)}),
            "progress_too_large",
            "65536",
        ),
        (
            "fail",
            json!({"lease": lease, "error": "x".repeat(20 * 1024)}),
            "error_too_large",
            "16384",
        ),
        (
            "complete",
            json!({"lease": lease, "result": "x".repeat(1100 * 1024)}),
            "result_too_large",
            "1048576",
        ),
    ];
    for (action, body, code, limit) in cases {
        let response = app
            .post(&key, &format!("/v1/worker/jobs/{id}/{action}"), body)
            .await;
        assert_eq!(response.status(), 413, "{action}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], code);
        assert!(
            body["error"]["message"].as_str().unwrap().contains(limit),
            "{body}"
        );
    }
    // Nothing was written: the job is still running under its lease.
    let done = app
        .post(
            &key,
            &format!("/v1/worker/jobs/{id}/complete"),
            json!({"lease": lease, "result": {"ok": true}}),
        )
        .await;
    assert_eq!(done.status(), 200);
    app.stop().await;
}

/// A long poll whose key is revoked, or whose tenant is suspended, ends within a few seconds; the
/// other tenant's poll goes on waiting.
#[sqlx::test(migrations = "../migrations")]
async fn a_revoked_key_or_suspended_tenant_ends_its_long_polls(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let created: Value = app
        .client
        .post(app.url("/v1/admin/tenants"))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"name": "leaving"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let tenant = created["id"].as_str().unwrap().to_owned();
    let first_key = created["api_key"].as_str().unwrap().to_owned();
    let second: Value = app
        .client
        .post(app.url(&format!("/v1/admin/tenants/{tenant}/api_keys")))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let second_key = second["api_key"].as_str().unwrap().to_owned();
    let second_key_id = second["id"].as_str().unwrap().to_owned();
    let (_, other) = app.tenant("staying").await;
    let poll = |key: &str| {
        spawn_claim(
            &app,
            key,
            json!({"kinds": ["any.work"], "worker_id": "w", "wait_ms": 20000}),
        )
    };
    let by_second_key = poll(&second_key);
    let by_other = poll(&other);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let revoked = app
        .client
        .delete(app.url(&format!("/v1/admin/api_keys/{second_key_id}")))
        .bearer_auth(common::ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert!(revoked.status().is_success());
    let (status, body, waited) = by_second_key.await.unwrap();
    assert_eq!(status, 401, "{body}");
    assert!(waited < Duration::from_secs(6), "{waited:?}");

    let by_first_key = poll(&first_key);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let suspended = app
        .client
        .patch(app.url(&format!("/v1/admin/tenants/{tenant}")))
        .bearer_auth(common::ADMIN_TOKEN)
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    assert!(suspended.status().is_success());
    let (status, body, waited) = by_first_key.await.unwrap();
    assert_eq!(status, 403, "{body}");
    assert!(waited < Duration::from_secs(6), "{waited:?}");
    assert!(!by_other.is_finished(), "the other tenant's poll ended");
    by_other.abort();
    app.stop().await;
}

/// A bulk replay over the tenant's burst replays nothing and spends nothing; one within it
/// replays exactly the jobs it spent tokens for.
#[sqlx::test(migrations = "../migrations")]
async fn a_bulk_replay_spends_tokens_only_for_what_it_replays(
    _pool: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let (tenant, key) = app
        .tenant_with(json!({"name": "replayer", "rate_limit_per_sec": 1, "burst": 5}))
        .await;
    // Eight dead jobs, written directly so no token is spent making them.
    sqlx::query!(
        "INSERT INTO jobs (tenant_id, kind, status, input, finished_at)
         SELECT $1, 'replay.me', 'dead', '{}'::jsonb, now() FROM generate_series(1, 8)",
        tenant
    )
    .execute(&app.state.pool)
    .await
    .unwrap();
    let over = app
        .post(
            &key,
            "/v1/jobs/replay",
            json!({"filter": {"kind": "replay.me"}, "dry_run": false, "limit": 8}),
        )
        .await;
    assert_eq!(over.status(), 413, "{}", over.text().await.unwrap());
    let replays = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM jobs WHERE tenant_id = $1 AND replay_of IS NOT NULL"#,
        tenant
    )
    .fetch_one(&app.state.pool)
    .await
    .unwrap();
    assert_eq!(replays, 0);
    // Nothing was spent: a replay of the whole burst goes through at once.
    let within = app
        .post(
            &key,
            "/v1/jobs/replay",
            json!({"filter": {"kind": "replay.me"}, "dry_run": false, "limit": 5}),
        )
        .await;
    assert_eq!(within.status(), 200, "{}", within.text().await.unwrap());
    let body: Value = within.json().await.unwrap();
    assert_eq!(body["items"].as_array().unwrap().len(), 5);
    assert_eq!(body["more"], true);
    let replays = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM jobs WHERE tenant_id = $1 AND replay_of IS NOT NULL"#,
        tenant
    )
    .fetch_one(&app.state.pool)
    .await
    .unwrap();
    assert_eq!(replays, 5);
    app.stop().await;
}
