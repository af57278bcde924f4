//! Several gateways on one database: a tenant's limits hold across them (api/src/limits.rs).
//! Each test runs two gateways (two `Gateway`s with their own caches, pools and leases, as two
//! processes would have) and a second tenant beside the one that pushes against its limits.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::time::{Duration, Instant};

use common::{telegram_headers, TestApp, TG_TOKEN};
use sentinel_api::Config;
use serde_json::{json, Value};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};
use uuid::Uuid;

async fn jobs_of(pool: &PgPool, tenant_id: Uuid) -> i64 {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM jobs WHERE tenant_id = $1"#,
        tenant_id
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

async fn hook(app: &TestApp, source: Uuid, update_id: u64) -> u16 {
    let update = json!({"update_id": update_id, "message": {"chat": {"id": 1}, "text": "x"}});
    app.post_hook(source, &telegram_headers(), update.to_string())
        .await
        .status()
        .as_u16()
}

#[sqlx::test(migrations = "../migrations")]
async fn a_tenants_rate_limit_holds_across_two_gateways(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let (one, two) = (
        TestApp::spawn(options.clone()).await,
        TestApp::spawn(options).await,
    );
    let (tiny, tiny_key) = one
        .tenant_with(json!({"name": "tiny", "rate_limit_per_sec": 1, "burst": 4}))
        .await;
    let (other, other_key) = one.tenant("bystander").await;
    let tiny_source = one
        .source(&tiny_key, "telegram", json!({"secret_token": TG_TOKEN}))
        .await;
    let other_source = two
        .source(&other_key, "telegram", json!({"secret_token": TG_TOKEN}))
        .await;

    let started = Instant::now();
    let (mut admitted, mut refused, mut bystander) = (0, 0, 0);
    for i in 0..16u64 {
        let app = if i % 2 == 0 { &one } else { &two };
        match hook(app, tiny_source, i).await {
            200 => admitted += 1,
            429 => refused += 1,
            other => panic!("webhook {i} answered {other}"),
        }
        // The bystander's webhooks go to the other gateway at the same time.
        let app = if i % 2 == 0 { &two } else { &one };
        if hook(app, other_source, 1_000 + i).await == 200 {
            bystander += 1;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    // Burst 4, one token spent creating the source, 1 per second: one gateway admits 3 plus what
    // refilled while the loop ran. Before the limits were shared, two gateways admitted 7 of 16.
    // A lease may hold at most per_sec x 1 s (= 1) more.
    let allowed = 3 + elapsed.ceil() as usize + 1;
    assert!(
        admitted <= allowed,
        "{admitted} of 16 admitted in {elapsed:.2} s across two gateways (at most {allowed})"
    );
    assert!(admitted >= 3, "the burst was admitted: {admitted}");
    assert_eq!(admitted + refused, 16);
    assert_eq!(jobs_of(&pool, tiny).await, admitted as i64);
    // The bystander's default limit is its own: every one of its webhooks was admitted.
    assert_eq!(bystander, 16);
    assert_eq!(jobs_of(&pool, other).await, 16);

    // A refused request says when to retry; after that the bucket has refilled on both gateways.
    let refused_answer = one
        .post_hook(
            tiny_source,
            &telegram_headers(),
            json!({"update_id": 99, "message": {"chat": {"id": 1}, "text": "x"}}).to_string(),
        )
        .await;
    assert_eq!(refused_answer.status(), 429);
    let retry_after: u64 = refused_answer.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=2).contains(&retry_after), "Retry-After {retry_after}");
    tokio::time::sleep(Duration::from_secs(retry_after + 1)).await;
    assert_eq!(hook(&two, tiny_source, 100).await, 200);
    one.stop().await;
    two.stop().await;
}

/// An event stream of `key`'s tenant on `app`, as soon as it has a place (within 5 s), or the
/// last refusal.
async fn open_within(app: &TestApp, key: &str) -> reqwest::Response {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let stream = app
            .client
            .get(app.url("/v1/events"))
            .bearer_auth(key)
            .send()
            .await
            .unwrap();
        if stream.status() == 200 || Instant::now() > deadline {
            return stream;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_tenants_event_streams_are_capped_across_gateways(
    _pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let capped = || Config {
        sse_max_per_tenant: 2,
        ..common::config()
    };
    let one = TestApp::spawn_with(capped(), options.clone()).await;
    let two = TestApp::spawn_with(capped(), options).await;
    let (_, key) = one.tenant("acme").await;
    let (_, other_key) = one.tenant("bystander").await;
    let open = |app: &TestApp, key: &str| {
        app.client
            .get(app.url("/v1/events"))
            .bearer_auth(key)
            .send()
    };
    let first = open(&one, &key).await.unwrap();
    assert_eq!(first.status(), 200);
    let second = open(&two, &key).await.unwrap();
    assert_eq!(second.status(), 200);
    // Each gateway holds one of the tenant's two places: a third is refused on either.
    for app in [&one, &two] {
        let third = open(app, &key).await.unwrap();
        assert_eq!(third.status(), 429);
        let body: Value = third.json().await.unwrap();
        assert_eq!(body["error"]["code"], "too_many_streams");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("across all gateways"),
            "{body}"
        );
    }
    // Another tenant's streams are its own.
    let theirs = [
        open(&one, &other_key).await.unwrap(),
        open(&two, &other_key).await.unwrap(),
    ];
    assert!(theirs.iter().all(|stream| stream.status() == 200));

    // A stream that ends gives its place back to every gateway (once the gateway has seen the
    // client go).
    drop(second);
    let reopened = open_within(&one, &key).await;
    assert_eq!(reopened.status(), 200);

    // A gateway that stops gives back what it held: its place is free on the other one.
    drop(first);
    drop(reopened);
    drop(theirs);
    let held_by_two = open_within(&two, &key).await;
    assert_eq!(held_by_two.status(), 200);
    drop(held_by_two);
    two.stop().await;
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut open_now = Vec::new();
    while open_now.len() < 2 && Instant::now() < deadline {
        let stream = open(&one, &key).await.unwrap();
        if stream.status() == 200 {
            open_now.push(stream);
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    assert_eq!(
        open_now.len(),
        2,
        "both places are free once gateway two stopped"
    );
    one.stop().await;
}
