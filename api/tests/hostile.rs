//! Hostile input against a real gateway over HTTP: each costs only the request that carries it.
//! U+0000 among other tenants' webhooks, SOAP attribute floods, weak and oversized secrets, a
//! limiter that outlives cache invalidation, amplification by batched bodies, slow and idle
//! clients, the queue cap, `/metrics` behind its token, SSE caps and a filtered resume over many
//! pages, and ingest tokens. docs/RELIABILITY.md's "Hostile input" table cites these tests.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::time::{Duration, Instant};

use common::{telegram_headers, TestApp, ADMIN_TOKEN, TG_TOKEN};
use futures::StreamExt;
use hmac::{Hmac, Mac};
use sentinel_api::{server::HttpLimits, Config};
use serde_json::{json, Value};
use sha2::Sha256;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use uuid::Uuid;

fn large_bodies() -> Config {
    Config {
        max_body_bytes: 4 * 1024 * 1024,
        ..common::config()
    }
}

fn hmac_hex(key: &[u8], body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

async fn count(pool: &PgPool, tenant_id: Uuid) -> i64 {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM jobs WHERE tenant_id = $1"#,
        tenant_id
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = "../migrations")]
async fn nul_in_signed_webhooks_is_acknowledged_kept_and_fails_no_other_tenant(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (hostile, hostile_key) = app.tenant("hostile").await;
    let (clean, clean_key) = app.tenant("clean").await;
    let hostile_source = app
        .source(&hostile_key, "telegram", json!({"secret_token": TG_TOKEN}))
        .await;
    let clean_source = app
        .source(&clean_key, "telegram", json!({"secret_token": TG_TOKEN}))
        .await;
    // Five with a JSON \u0000 escape, five with a raw 0x00 byte (not JSON at all).
    let hostile_bodies: Vec<Vec<u8>> = (0..10)
        .map(|i| {
            if i < 5 {
                format!(r#"{{"update_id": {i}, "message": {{"chat": {{"id": 7}}, "text": "a\u0000b", "k\u0000": 1}}}}"#).into_bytes()
            } else {
                let mut body = format!(r#"{{"update_id": {i}, "message": {{"chat": {{"id": 7}}, "text": "a"#).into_bytes();
                body.extend_from_slice(b"\x00b\"}}");
                body
            }
        })
        .collect();
    let requests = hostile_bodies
        .iter()
        .map(|body| (hostile_source, body.clone()))
        .chain((0..60).map(|i| {
            (
                clean_source,
                json!({"update_id": 1000 + i, "message": {"chat": {"id": 1}, "text": "fine"}})
                    .to_string()
                    .into_bytes(),
            )
        }));
    let answers = futures::future::join_all(requests.map(|(source, body)| {
        let app = &app;
        async move {
            app.post_hook(source, &telegram_headers(), body)
                .await
                .status()
        }
    }))
    .await;
    assert!(answers.iter().all(|status| *status == 200), "{answers:?}");
    assert_eq!(count(&pool, hostile).await, 10);
    assert_eq!(count(&pool, clean).await, 60);
    let stored = sqlx::query!(
        r#"SELECT input, raw_body AS "raw_body!" FROM jobs WHERE tenant_id = $1 ORDER BY id"#,
        hostile
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    let raws: Vec<&Vec<u8>> = stored.iter().map(|row| &row.raw_body).collect();
    for body in &hostile_bodies {
        assert!(raws.contains(&body), "the raw bytes are kept exactly");
    }
    let escaped: Vec<&Value> = stored
        .iter()
        .filter_map(|row| row.input["payload"].as_object().map(|_| &row.input))
        .collect();
    assert_eq!(escaped.len(), 5);
    for input in escaped {
        assert_eq!(input["payload"]["message"]["text"], "a\u{FFFD}b");
        assert_eq!(input["payload"]["message"]["k\u{FFFD}"], 1);
    }
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn soap_attribute_floods_are_refused_fast_and_healthz_stays_quick(
    _pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with(large_bodies(), options).await;
    let (_, key) = app.tenant("acme").await;
    let source = app
        .source(
            &key,
            "salesforce",
            json!({"organization_id": "00D000000000062EAA"}),
        )
        .await;
    let attributes: String = (0..60_000).map(|i| format!(" attr{i}=\"1\"")).collect();
    let flood = format!(
        r#"<?xml version="1.0"?><soapenv:Envelope{attributes}><soapenv:Body/></soapenv:Envelope>"#
    );
    assert!(flood.len() > 700_000);
    let started = Instant::now();
    let floods = futures::future::join_all((0..2).map(|_| {
        let (app, flood) = (&app, flood.clone());
        async move {
            let response = app
                .post_hook(source, &[("content-type", "text/xml".into())], flood)
                .await;
            (response.status(), response.json::<Value>().await.unwrap())
        }
    }));
    let healthz = async {
        let started = Instant::now();
        let status = app
            .client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status();
        (status, started.elapsed())
    };
    let (floods, (healthz_status, healthz_took)) = tokio::join!(floods, healthz);
    for (status, body) in floods {
        assert_eq!(status, 400);
        assert_eq!(body["error"]["code"], "malformed_body");
        assert!(
            body["error"]["message"]
                .as_str()
                .unwrap()
                .contains("attributes"),
            "{body}"
        );
    }
    assert_eq!(healthz_status, 200);
    // Was 4.5 s for /healthz and 6 s per body on quick-xml 0.37; a generous bound, not a benchmark.
    assert!(healthz_took < Duration::from_secs(2), "{healthz_took:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn weak_and_oversized_secrets_are_refused_naming_the_field(
    _pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with(large_bodies(), options).await;
    let (_, key) = app.tenant("acme").await;
    let key_24 = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    let cases = [
        (
            json!({"platform": "standard", "secrets": {"secret": "whsec_"}}),
            "24 to 64 bytes",
        ),
        (
            json!({"platform": "standard", "secrets": {"secret": vec![key_24; 5_000]}}),
            "at most 3",
        ),
        (
            json!({"platform": "telegram", "secrets": {"secret_token": "t"}}),
            "secrets.secret_token",
        ),
        (
            json!({"platform": "slack", "secrets": {"signing_secret": "short"}}),
            "secrets.signing_secret",
        ),
        (
            json!({"platform": "whatsapp", "secrets": {"app_secret": "0123456789abcdef", "verify_token": "v"}}),
            "secrets.verify_token",
        ),
        (
            json!({"platform": "salesforce", "secrets": {"organization_id": "00DOTHER"}}),
            "secrets.organization_id",
        ),
        (
            json!({"platform": "salesforce", "secrets": {"organization_id": "00D000000000062EAA", "ingest_token": "short"}}),
            "secrets.ingest_token",
        ),
        (
            json!({"platform": "telegram", "secrets": {"secret_token": "0123456789abcdef\u{0}"}}),
            "U+0000",
        ),
        (
            json!({"platform": "telegram", "name": "a\u{0}b", "secrets": {"secret_token": TG_TOKEN}}),
            "U+0000",
        ),
    ];
    for (body, named) in cases {
        let response = app.post(&key, "/v1/sources", body.clone()).await;
        assert_eq!(response.status(), 422, "{named}");
        let answer: Value = response.json().await.unwrap();
        assert!(
            answer["error"]["message"].as_str().unwrap().contains(named),
            "{named}: {answer}"
        );
    }
    let rotation = app
        .post(
            &key,
            "/v1/sources",
            json!({"platform": "standard", "secrets": {"secret": [key_24, key_24]}}),
        )
        .await;
    assert_eq!(rotation.status(), 201);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_tenants_limit_survives_cache_invalidation(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (tenant_id, key) = app
        .tenant_with(json!({"name": "tiny", "rate_limit_per_sec": 1, "burst": 2}))
        .await;
    let source = app
        .source(&key, "telegram", json!({"secret_token": TG_TOKEN}))
        .await;
    let mut admitted = 0;
    for i in 0..9 {
        // Every change of configuration drops every gateway's caches.
        let patched = app
            .client
            .patch(app.url(&format!("/v1/admin/tenants/{tenant_id}")))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"status": "active"}))
            .send()
            .await
            .unwrap();
        assert_eq!(patched.status(), 200);
        let update = json!({"update_id": i, "message": {"chat": {"id": 1}, "text": "x"}});
        if app
            .post_hook(source, &telegram_headers(), update.to_string())
            .await
            .status()
            == 200
        {
            admitted += 1;
        }
    }
    // Burst 2, one of it spent on the source, 1 per second: the loop takes well under a second,
    // so at most one more token refilled. Before, each invalidation refilled the limit (6 of 9).
    assert!(admitted <= 2, "{admitted} of 9 admitted");
    assert_eq!(count(&pool, tenant_id).await, admitted as i64);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_batched_body_spends_a_token_per_event_and_is_capped(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn_with(large_bodies(), options).await;
    let app_secret = "wa-app-secret-0123456789";
    let whatsapp_body = |n: usize, offset: usize| {
        let messages: Vec<Value> = (0..n)
            .map(|i| json!({"from": "16505551234", "id": format!("wamid.{}", offset + i), "timestamp": "1749416383", "type": "text", "text": {"body": "hi"}}))
            .collect();
        json!({"object": "whatsapp_business_account", "entry": [{"id": "1", "changes": [{"field": "messages",
            "value": {"messaging_product": "whatsapp", "metadata": {"phone_number_id": "106540352242922"}, "messages": messages}}]}]})
        .to_string()
    };
    let send = |source: Uuid, body: String| {
        let app = &app;
        async move {
            let signature = format!(
                "sha256={}",
                hmac_hex(app_secret.as_bytes(), body.as_bytes())
            );
            let response = app
                .post_hook(source, &[("x-hub-signature-256", signature)], body)
                .await;
            let status = response.status();
            (
                status,
                response.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let secrets = json!({"app_secret": app_secret, "verify_token": "verify-0123"});

    // 3,000 messages in one request: over the per-request cap.
    let (_, default_key) = app.tenant("default").await;
    let default_source = app.source(&default_key, "whatsapp", secrets.clone()).await;
    let (status, body) = send(default_source, whatsapp_body(3_000, 0)).await;
    assert_eq!(status, 413, "{body}");
    assert_eq!(body["error"]["code"], "too_many_events");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("at most 1000"));
    // 300 messages against the default burst of 200: one request can never have that many tokens.
    let (status, body) = send(default_source, whatsapp_body(300, 0)).await;
    assert_eq!(status, 413, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("burst of 200"),
        "{body}"
    );

    // A burst of 1,000 at 1 per second: 300 events spend 300 tokens, so 800 more are refused.
    let (tenant_id, key) = app
        .tenant_with(json!({"name": "big", "rate_limit_per_sec": 1, "burst": 1000}))
        .await;
    let source = app.source(&key, "whatsapp", secrets).await;
    let (status, _) = send(source, whatsapp_body(300, 0)).await;
    assert_eq!(status, 200);
    assert_eq!(count(&pool, tenant_id).await, 300);
    let (status, body) = send(source, whatsapp_body(800, 300)).await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(count(&pool, tenant_id).await, 300);
    app.stop().await;
}

/// Opens a connection and sends `bytes` without finishing the request.
async fn hold(addr: std::net::SocketAddr, bytes: &[u8]) -> tokio::net::TcpStream {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(bytes).await.unwrap();
    stream
}

/// Reads until the server closes the connection; returns what it sent.
async fn read_to_close(stream: &mut tokio::net::TcpStream, within: Duration) -> Option<String> {
    let mut answer = Vec::new();
    match tokio::time::timeout(within, stream.read_to_end(&mut answer)).await {
        Ok(_) => Some(String::from_utf8_lossy(&answer).into_owned()),
        Err(_) => None,
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn slow_and_idle_clients_are_cut_off_and_connections_are_capped(
    _pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with(
        Config {
            http: HttpLimits {
                header_read_timeout: Duration::from_secs(1),
                idle_timeout: Duration::from_secs(3),
                body_read_timeout: Duration::from_secs(1),
                http2_max_streams: 100,
                max_connections: 250,
            },
            ..common::config()
        },
        options,
    )
    .await;
    // 200 connections that send a partial request head and stop.
    let mut held = Vec::new();
    for _ in 0..200 {
        held.push(
            hold(
                app.addr,
                b"POST /hooks/x HTTP/1.1\r\nHost: sentinel\r\nX-Slow: ",
            )
            .await,
        );
    }
    // The gateway answers others meanwhile.
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    for stream in &mut held {
        assert!(
            read_to_close(stream, Duration::from_secs(4))
                .await
                .is_some(),
            "a partial head was still open after the header timeout"
        );
    }

    // A body that stops arriving: 408 once the body deadline passes.
    let (_, key) = app.tenant("acme").await;
    let source = app
        .source(&key, "telegram", json!({"secret_token": TG_TOKEN}))
        .await;
    let head = format!(
        "POST /hooks/{source} HTTP/1.1\r\nHost: sentinel\r\nX-Telegram-Bot-Api-Secret-Token: {TG_TOKEN}\r\nContent-Length: 100\r\n\r\n{{\"update_id\": 1"
    );
    let mut slow_body = hold(app.addr, head.as_bytes()).await;
    let answer = read_to_close(&mut slow_body, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(answer.contains("body_timeout"), "{answer}");

    // An idle keep-alive connection is closed too.
    let mut idle = hold(app.addr, b"GET /healthz HTTP/1.1\r\nHost: sentinel\r\n\r\n").await;
    let answer = read_to_close(&mut idle, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn connections_beyond_the_cap_are_closed_at_once(
    _pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with(
        Config {
            http: HttpLimits {
                header_read_timeout: Duration::from_secs(2),
                max_connections: 20,
                ..HttpLimits::default()
            },
            ..common::config()
        },
        options,
    )
    .await;
    let mut held = Vec::new();
    for _ in 0..20 {
        held.push(hold(app.addr, b"GET /healthz HTTP/1.1\r\n").await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut refused = hold(app.addr, b"GET /healthz HTTP/1.1\r\nHost: s\r\n\r\n").await;
    let answer = read_to_close(&mut refused, Duration::from_secs(1)).await;
    assert_eq!(answer.as_deref(), Some(""), "closed without an answer");
    // Once the held connections time out, the gateway takes new ones again.
    for stream in &mut held {
        read_to_close(stream, Duration::from_secs(4)).await.unwrap();
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(
        app.client
            .get(app.url("/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn jobs_replays_and_source_changes_are_limited_and_the_queue_is_capped(
    _pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn(options).await;
    let job = json!({"kind": "payload.heal", "input": {"payload": "{}"}});
    let (_, capped) = app
        .tenant_with(json!({"name": "capped", "max_queued_jobs": 3}))
        .await;
    let mut first = None;
    for _ in 0..3 {
        let accepted = app.post(&capped, "/v1/jobs", job.clone()).await;
        assert_eq!(accepted.status(), 202);
        first.get_or_insert(
            accepted.json::<Value>().await.unwrap()["id"]
                .as_i64()
                .unwrap(),
        );
    }
    let full = app.post(&capped, "/v1/jobs", job.clone()).await;
    assert_eq!(full.status(), 429);
    assert!(full.headers().contains_key("retry-after"));
    let body: Value = full.json().await.unwrap();
    assert_eq!(body["error"]["code"], "queue_full");
    let replay = app
        .post(
            &capped,
            &format!("/v1/jobs/{}/replay", first.unwrap()),
            json!({}),
        )
        .await;
    assert_eq!(replay.status(), 429);

    let (_, slow) = app
        .tenant_with(json!({"name": "slow", "rate_limit_per_sec": 1, "burst": 2}))
        .await;
    let statuses: Vec<u16> = futures::future::join_all((0..4).map(|_| async {
        app.post(&slow, "/v1/jobs", job.clone())
            .await
            .status()
            .as_u16()
    }))
    .await;
    assert_eq!(
        statuses.iter().filter(|s| **s == 202).count(),
        2,
        "{statuses:?}"
    );
    assert_eq!(
        statuses.iter().filter(|s| **s == 429).count(),
        2,
        "{statuses:?}"
    );
    let source = app
        .post(
            &slow,
            "/v1/sources",
            json!({"platform": "telegram", "secrets": {"secret_token": TG_TOKEN}}),
        )
        .await;
    assert_eq!(source.status(), 429, "source changes spend tokens too");

    // Input nested deeper than healing reads is refused before it is queued.
    let mut deep = json!("x");
    for _ in 0..101 {
        deep = json!([deep]);
    }
    let (_, key) = app.tenant("deep").await;
    let refused = app
        .post(
            &key,
            "/v1/jobs",
            json!({"kind": "payload.heal", "input": {"payload": {"a": deep}}}),
        )
        .await;
    assert_eq!(refused.status(), 422);
    let body: Value = refused.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("levels deep"),
        "{body}"
    );
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn metrics_ask_for_their_token_when_one_is_set(
    _pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let token = "metrics-token-0123456789";
    let app = TestApp::spawn_with(
        Config {
            metrics_token: Some(token.into()),
            ..common::config()
        },
        options,
    )
    .await;
    let open = app.client.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(open.status(), 401);
    let wrong = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth("wrong")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let scraped = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(scraped.status(), 200);
    assert!(scraped
        .text()
        .await
        .unwrap()
        .contains("sentinel_sse_subscribers"));
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn event_streams_are_capped_and_a_filtered_resume_reads_every_page(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn_with(
        Config {
            sse_max_per_tenant: 2,
            ..common::config()
        },
        options,
    )
    .await;
    let (tenant_id, key) = app.tenant("acme").await;
    // 3,000 events, one in three job.succeeded: 1,000 to find across many catch-up pages.
    sqlx::query!(
        r#"INSERT INTO events (tenant_id, job_id, type, data)
           SELECT $1, i, CASE WHEN i % 3 = 0 THEN 'job.succeeded' ELSE 'job.queued' END,
                  jsonb_build_object('job_id', i, 'kind', 'payload.heal', 'status', 'succeeded', 'attempt', 1, 'at', '2026-12-01T00:00:00Z')
           FROM generate_series(1, 3000) AS i"#,
        tenant_id
    )
    .execute(&pool)
    .await
    .unwrap();
    // Let the hub deliver them, so a resume reads them all from the table, page by page.
    sqlx::query!("SELECT pg_notify('sentinel_events', '')")
        .execute(&pool)
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let open = |resume: bool| {
        let mut request = app
            .client
            .get(app.url("/v1/events?types=job.succeeded"))
            .bearer_auth(&key);
        if resume {
            request = request.header("Last-Event-ID", "0");
        }
        request.send()
    };
    let resumed = open(true).await.unwrap();
    assert_eq!(resumed.status(), 200);
    let other = open(false).await.unwrap();
    assert_eq!(other.status(), 200);
    let third = open(false).await.unwrap();
    assert_eq!(third.status(), 429);
    let body: Value = third.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_streams");

    let mut stream = resumed.bytes_stream();
    let mut text = String::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while text.matches("event: job.succeeded").count() < 1_000 {
        let chunk = tokio::time::timeout_at(deadline.into(), stream.next())
            .await
            .expect("every job.succeeded event arrives")
            .unwrap()
            .unwrap();
        text.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert_eq!(text.matches("event: job.queued").count(), 0);
    assert!(text.contains("id: 3000\n"), "the last one arrived");
    drop(stream);
    drop(other);
    // The slots come back when the streams end.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(open(false).await.unwrap().status(), 200);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_salesforce_source_with_an_ingest_token_takes_webhooks_only_with_it(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (tenant_id, key) = app.tenant("acme").await;
    let token = "sf-ingest-token-0123456789abcdef";
    let created = app
        .post(
            &key,
            "/v1/sources",
            json!({"platform": "salesforce", "secrets": {"organization_id": "00D000000000062EAA", "ingest_token": token}}),
        )
        .await;
    assert_eq!(created.status(), 201);
    let created: Value = created.json().await.unwrap();
    let url = created["ingest_url"].as_str().unwrap().to_owned();
    assert!(url.ends_with(&format!("?token={token}")), "{url}");
    let source: Uuid = created["id"].as_str().unwrap().parse().unwrap();
    let listed = app.get_json(&key, "/v1/sources").await;
    assert!(
        !listed.to_string().contains(token),
        "listings never show the token"
    );

    let soap = r#"<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/"><soapenv:Body>
      <notifications xmlns="http://soap.sforce.com/2005/09/outbound"><OrganizationId>00D000000000062EAA</OrganizationId>
      <Notification><Id>04l000000000001AAA</Id><sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:Id>500A</sf:Id></sObject></Notification>
      </notifications></soapenv:Body></soapenv:Envelope>"#;
    for query in ["", "?token=wrong-token-0123456789abcdef"] {
        let response = app
            .client
            .post(app.url(&format!("/hooks/{source}{query}")))
            .body(soap)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 401, "{query}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_token");
    }
    assert_eq!(count(&pool, tenant_id).await, 0);
    let accepted = app
        .client
        .post(app.url(&format!("/hooks/{source}?token={token}")))
        .body(soap)
        .send()
        .await
        .unwrap();
    assert_eq!(accepted.status(), 200);
    assert!(accepted.text().await.unwrap().contains("<Ack>true</Ack>"));
    assert_eq!(count(&pool, tenant_id).await, 1);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn api_bodies_are_read_only_after_authentication_and_within_limits(
    _pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with(
        Config {
            http: HttpLimits {
                body_read_timeout: Duration::from_secs(1),
                ..HttpLimits::default()
            },
            ..common::config()
        },
        options,
    )
    .await;
    let (_, key) = app.tenant("acme").await;
    // A body that sends one chunk and then never ends.
    let stalled = || {
        reqwest::Body::wrap_stream(
            futures::stream::iter([Ok::<_, std::io::Error>(bytes::Bytes::from_static(
                b"{\"kind\": \"payload.heal\", ",
            ))])
            .chain(futures::stream::pending()),
        )
    };
    let anonymous = tokio::time::timeout(
        Duration::from_secs(5),
        app.client
            .post(app.url("/v1/jobs"))
            .header("content-type", "application/json")
            .body(stalled())
            .send(),
    )
    .await
    .expect("answered without waiting for the body")
    .unwrap();
    assert_eq!(anonymous.status(), 401);

    let timed_out = app
        .client
        .post(app.url("/v1/jobs"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(stalled())
        .send()
        .await
        .unwrap();
    assert_eq!(timed_out.status(), 408);
    let body: Value = timed_out.json().await.unwrap();
    assert_eq!(body["error"]["code"], "body_timeout");

    // Over the limit without a Content-Length (chunked): 413 once the limit is passed.
    let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b' '; 1024])));
    let too_large = app
        .client
        .post(app.url("/v1/jobs"))
        .bearer_auth(&key)
        .header("content-type", "application/json")
        .body(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
        .send()
        .await
        .unwrap();
    assert_eq!(too_large.status(), 413);
    let body: Value = too_large.json().await.unwrap();
    assert_eq!(body["error"]["code"], "payload_too_large");
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn random_source_ids_cannot_become_unbounded_database_reads(
    _pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let app = TestApp::spawn_with(
        Config {
            directory_lookups_per_sec: 5,
            ..common::config()
        },
        options,
    )
    .await;
    let statuses: Vec<u16> = futures::future::join_all((0..60).map(|_| async {
        app.post_hook(Uuid::new_v4(), &telegram_headers(), "{}")
            .await
            .status()
            .as_u16()
    }))
    .await;
    let looked_up = statuses.iter().filter(|s| **s == 404).count();
    let refused = statuses.iter().filter(|s| **s == 503).count();
    assert_eq!(looked_up + refused, 60, "{statuses:?}");
    // A burst of 10 and 5 per second: the 60 random ids cost at most a dozen database reads.
    assert!(looked_up <= 12, "{looked_up} lookups reached the database");
    app.stop().await;
}
