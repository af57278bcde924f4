//! Memory bounded in bytes on the gateway's read paths, against a real gateway over HTTP, each
//! with a second tenant beside the one that misbehaves: a client that stops reading its event
//! stream is cut off at its byte limit and resumes with `Last-Event-ID`, while one that reads
//! slowly and one that reads at once are not; a revoked key or a
//! suspended tenant ends its open streams; a job list over large jobs is cut by bytes.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::{
    collections::HashSet,
    time::{Duration, Instant},
};

use common::{TestApp, ADMIN_TOKEN};
use futures::{stream::BoxStream, StreamExt};
use sentinel_api::Config;
use serde_json::{json, Value};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpSocket,
};
use uuid::Uuid;

/// One SSE event as a client sees it.
#[derive(Debug)]
struct Frame {
    id: i64,
    event: String,
    data: Value,
}

/// Takes every complete frame off the front of `buffer`.
fn take_frames(buffer: &mut Vec<u8>) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Some(end) = buffer.windows(2).position(|pair| pair == b"\n\n") {
        let raw: Vec<u8> = buffer.drain(..end + 2).collect();
        let text = String::from_utf8(raw).unwrap();
        let (mut id, mut event, mut data) = (None, String::new(), String::new());
        for line in text.lines() {
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
            frames.push(Frame {
                id,
                event,
                data: serde_json::from_str(&data).unwrap(),
            });
        }
    }
    frames
}

/// Reads an event stream frame by frame.
struct SseReader {
    body: BoxStream<'static, reqwest::Result<bytes::Bytes>>,
    buffer: Vec<u8>,
    ready: std::collections::VecDeque<Frame>,
}

impl SseReader {
    fn new(response: reqwest::Response) -> Self {
        assert_eq!(response.status(), 200);
        Self {
            body: response.bytes_stream().boxed(),
            buffer: Vec::new(),
            ready: Default::default(),
        }
    }

    /// The next event; None once the stream has ended.
    async fn next(&mut self, within: Duration) -> Option<Frame> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(frame) = self.ready.pop_front() {
                return Some(frame);
            }
            let chunk = tokio::time::timeout_at(deadline.into(), self.body.next())
                .await
                .expect("an event or the end of the stream within the time allowed");
            match chunk {
                Some(Ok(chunk)) => {
                    self.buffer.extend_from_slice(&chunk);
                    self.ready.extend(take_frames(&mut self.buffer));
                }
                Some(Err(_)) | None => return None,
            }
        }
    }
}

async fn stream(app: &TestApp, key: &str, last_event_id: Option<i64>) -> SseReader {
    let mut request = app.client.get(app.url("/v1/events")).bearer_auth(key);
    if let Some(id) = last_event_id {
        request = request.header("Last-Event-ID", id.to_string());
    }
    SseReader::new(request.send().await.unwrap())
}

/// Appends a `job.progress` event whose text has `text_bytes` bytes; returns its seq.
async fn progress_event(pool: &PgPool, tenant_id: Uuid, job_id: i64, text_bytes: i32) -> i64 {
    let seq: i64 = sqlx::query_scalar(
        "INSERT INTO events (tenant_id, job_id, type, data)
         VALUES ($1, $2, 'job.progress',
                 jsonb_build_object('job_id', $2, 'kind', 'llm.generate', 'status', 'running',
                                    'attempt', 1, 'at', '2026-12-01T00:00:00Z', 'stage', 'generate',
                                    'text', repeat('x', $3)))
         RETURNING seq",
    )
    .bind(tenant_id)
    .bind(job_id)
    .bind(text_bytes)
    .fetch_one(pool)
    .await
    .unwrap();
    sqlx::query("SELECT pg_notify('sentinel_events', '')")
        .execute(pool)
        .await
        .unwrap();
    seq
}

/// The size of each test event's text: most are over the hub's inline threshold (stubs, read by
/// seq), every fourth is small (carried in the page and on the ring).
fn text_bytes(i: i64) -> i32 {
    if i % 4 == 0 {
        1_000
    } else {
        300 * 1024
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_stalled_stream_is_cut_off_and_resumes_while_other_tenants_stream_on(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn_with(
        Config {
            sse_max_buffer_bytes: 64 * 1024,
            // One stream each: a resume is let in only once the cut-off stream's slot is back.
            sse_max_per_tenant: 1,
            ..common::config()
        },
        options,
    )
    .await;
    let (alice_id, alice) = app.tenant("alice").await;
    let (bob_id, bob) = app.tenant("bob").await;
    let (carol_id, carol) = app.tenant("carol").await;

    // 48 of Alice's events, about 10.5 MiB, far more than the kernel's socket buffers hold, with
    // Bob's interleaved (a resume must not see them).
    let mut alice_seqs = Vec::new();
    for i in 1..=48 {
        alice_seqs.push(progress_event(&pool, alice_id, 1, text_bytes(i)).await);
        if i % 8 == 0 {
            progress_event(&pool, bob_id, 2, 500).await;
        }
    }
    // Six of Carol's, 1.8 MiB, which her client reads slowly but steadily.
    let mut carol_seqs = Vec::new();
    for _ in 0..6 {
        carol_seqs.push(progress_event(&pool, carol_id, 3, 300 * 1024).await);
    }
    // Let the hub pass them, so a resume from 0 reads them all from the table.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    // Carol takes 16 KiB every 100 ms: 11 s for hers, the buffer full all along, never cut off.
    let carol_reads = tokio::spawn(read_slowly(app.addr, carol, carol_seqs.len()));

    // Bob reads normally from the live end.
    let mut bob_stream = stream(&app, &bob, None).await;

    // Alice's client: a small receive buffer, takes the first three events, then never reads.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut raw = socket.connect(app.addr).await.unwrap();
    raw.write_all(
        format!(
            "GET /v1/events HTTP/1.1\r\nHost: sentinel.test\r\nAuthorization: Bearer {alice}\r\n\
             Last-Event-ID: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut received: Vec<u8> = Vec::new();
    let mut seen: Vec<Frame> = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let head_end = loop {
        let n = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "the stream ended before its head");
        received.extend_from_slice(&chunk[..n]);
        if let Some(end) = received.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&received[..head_end]).to_string();
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked"));
    let mut body = Dechunker::default();
    body.push(&received[head_end..]);
    while seen.len() < 3 {
        let n = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0);
        body.push(&chunk[..n]);
        seen.extend(take_frames(&mut body.data));
    }
    let last_seen = seen.last().unwrap().id;
    let stalled_at = Instant::now();

    // While Alice's client stalls, Bob's events (large ones as stubs over the hub's ring) reach
    // his reading client in order.
    let write_bob = async {
        let mut seqs = Vec::new();
        for i in 1..=12 {
            seqs.push(progress_event(&pool, bob_id, 2, text_bytes(i)).await);
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        seqs
    };
    let read_bob = async {
        let mut frames = Vec::new();
        while frames.len() < 12 {
            frames.push(bob_stream.next(Duration::from_secs(10)).await.unwrap());
        }
        frames
    };
    let (bob_seqs, bob_frames) = tokio::join!(write_bob, read_bob);
    for (i, (seq, frame)) in bob_seqs.iter().zip(&bob_frames).enumerate() {
        assert_eq!(frame.id, *seq, "Bob's events arrive in order");
        assert_eq!(frame.event, "job.progress");
        assert_eq!(frame.data["type"], "job.progress");
        assert_eq!(
            frame.data["text"].as_str().unwrap().len() as i32,
            text_bytes(i as i64 + 1)
        );
    }

    // Alice's stream is cut off: counted, and its socket closed by the gateway.
    let deadline = Instant::now() + Duration::from_secs(30);
    while app.state.metrics.sse_cut_off.get() == 0 {
        assert!(
            Instant::now() < deadline,
            "the stalled stream was not cut off"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let cut_after = stalled_at.elapsed();
    let mut after_cut = 0usize;
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            match raw.read(&mut chunk).await {
                Ok(0) | Err(_) => return,
                Ok(n) => after_cut += n,
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "the cut-off socket was not closed");
    let total: usize = (1..=48).map(|i| text_bytes(i) as usize).sum();
    assert!(
        after_cut < total / 4,
        "the client got {after_cut} of {total} bytes: the stream was not cut off early"
    );
    assert_eq!(
        app.state.metrics.sse_cut_off.get(),
        1,
        "only Alice's stream"
    );
    println!("cut off {cut_after:?} after the client stopped reading");

    // Carol's slow reader got all of hers, in order.
    let carol_frames = carol_reads.await.unwrap();
    assert_eq!(
        carol_frames.iter().map(|f| f.id).collect::<Vec<_>>(),
        carol_seqs
    );
    assert_eq!(
        app.state.metrics.sse_cut_off.get(),
        1,
        "a slow reader is not cut off"
    );

    // Bob's stream is still open and live.
    let later = progress_event(&pool, bob_id, 2, 100).await;
    assert_eq!(
        bob_stream.next(Duration::from_secs(10)).await.unwrap().id,
        later
    );

    // Alice resumes after the last event her client got: everything after it, in order, once.
    let mut resumed = stream(&app, &alice, Some(last_seen)).await;
    let expected: Vec<i64> = alice_seqs
        .iter()
        .copied()
        .filter(|seq| *seq > last_seen)
        .collect();
    for seq in &expected {
        let frame = resumed.next(Duration::from_secs(15)).await.unwrap();
        assert_eq!(frame.id, *seq);
        let i = alice_seqs.iter().position(|s| s == seq).unwrap() as i64 + 1;
        assert_eq!(
            frame.data["text"].as_str().unwrap().len() as i32,
            text_bytes(i)
        );
    }
    let next_live = progress_event(&pool, alice_id, 1, 100).await;
    assert_eq!(
        resumed.next(Duration::from_secs(10)).await.unwrap().id,
        next_live,
        "nothing repeated or from Bob between the catch-up and the live feed"
    );
    app.stop().await;
}

/// Opens `key`'s stream from `Last-Event-ID: 0` on a raw socket with a small receive buffer and
/// reads 16 KiB every 100 ms until `n` events arrived.
async fn read_slowly(addr: std::net::SocketAddr, key: String, n: usize) -> Vec<Frame> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(16 * 1024).unwrap();
    let mut raw = socket.connect(addr).await.unwrap();
    raw.write_all(
        format!(
            "GET /v1/events HTTP/1.1\r\nHost: sentinel.test\r\nAuthorization: Bearer {key}\r\n\
             Last-Event-ID: 0\r\n\r\n"
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    let mut body = Dechunker::default();
    let mut frames = Vec::new();
    let mut chunk = vec![0u8; 16 * 1024];
    while frames.len() < n {
        let read = tokio::time::timeout(Duration::from_secs(10), raw.read(&mut chunk))
            .await
            .unwrap()
            .unwrap();
        assert!(read > 0, "the slow reader's stream was closed");
        match head.windows(4).position(|w| w == b"\r\n\r\n") {
            Some(_) => body.push(&chunk[..read]),
            None => {
                head.extend_from_slice(&chunk[..read]);
                if let Some(end) = head.windows(4).position(|w| w == b"\r\n\r\n") {
                    body.push(&head[end + 4..]);
                    head.truncate(end + 4);
                }
            }
        }
        frames.extend(take_frames(&mut body.data));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    frames
}

/// An HTTP/1.1 chunked body, decoded as it arrives.
#[derive(Default)]
struct Dechunker {
    raw: Vec<u8>,
    data: Vec<u8>,
}

impl Dechunker {
    fn push(&mut self, bytes: &[u8]) {
        self.raw.extend_from_slice(bytes);
        loop {
            let Some(line_end) = self.raw.windows(2).position(|w| w == b"\r\n") else {
                return;
            };
            let size_text = String::from_utf8_lossy(&self.raw[..line_end]).to_string();
            let size = usize::from_str_radix(size_text.trim(), 16).unwrap();
            if self.raw.len() < line_end + 2 + size + 2 {
                return;
            }
            let start = line_end + 2;
            self.data.extend_from_slice(&self.raw[start..start + size]);
            self.raw.drain(..start + size + 2);
        }
    }
}

#[sqlx::test(migrations = "../migrations")]
async fn a_revoked_key_and_a_suspended_tenant_end_their_open_streams(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (alice_id, alice) = app.tenant("alice").await;
    let (carol_id, carol) = app.tenant("carol").await;
    let (bob_id, bob) = app.tenant("bob").await;
    let mut alice_stream = stream(&app, &alice, None).await;
    let mut carol_stream = stream(&app, &carol, None).await;
    let mut bob_stream = stream(&app, &bob, None).await;
    // Every stream is live before anything changes.
    for (tenant_id, reader) in [
        (alice_id, &mut alice_stream),
        (carol_id, &mut carol_stream),
        (bob_id, &mut bob_stream),
    ] {
        let seq = progress_event(&pool, tenant_id, 1, 10).await;
        assert_eq!(reader.next(Duration::from_secs(10)).await.unwrap().id, seq);
    }

    let key_id: Uuid = sqlx::query_scalar("SELECT id FROM api_keys WHERE tenant_id = $1")
        .bind(alice_id)
        .fetch_one(&pool)
        .await
        .unwrap();
    let revoked = app
        .client
        .delete(app.url(&format!("/v1/admin/api_keys/{key_id}")))
        .bearer_auth(ADMIN_TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(revoked.status(), 204);
    let suspended = app
        .client
        .patch(app.url(&format!("/v1/admin/tenants/{carol_id}")))
        .bearer_auth(ADMIN_TOKEN)
        .json(&json!({"status": "suspended"}))
        .send()
        .await
        .unwrap();
    assert_eq!(suspended.status(), 200);
    let changed = Instant::now();

    // Both streams end within a few seconds, with nothing sent after the change.
    let (alice_end, carol_end) = tokio::join!(
        alice_stream.next(Duration::from_secs(6)),
        carol_stream.next(Duration::from_secs(6))
    );
    assert!(
        alice_end.is_none(),
        "the revoked key's stream sent {alice_end:?}"
    );
    assert!(
        carol_end.is_none(),
        "the suspended tenant's stream sent {carol_end:?}"
    );
    println!("streams ended {:?} after the change", changed.elapsed());

    // Bob's stream, open all along, still gets his events; his slot count is intact.
    let seq = progress_event(&pool, bob_id, 1, 10).await;
    assert_eq!(
        bob_stream.next(Duration::from_secs(10)).await.unwrap().id,
        seq
    );
    assert_eq!(app.state.metrics.sse_subscribers.get(), 1);
    app.stop().await;
}

#[sqlx::test(migrations = "../migrations")]
async fn a_job_list_over_large_jobs_is_cut_by_bytes_and_the_cursor_walk_returns_each_job_once(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let app = TestApp::spawn(options).await;
    let (alice_id, alice) = app.tenant("alice").await;
    let (bob_id, bob) = app.tenant("bob").await;
    // Alice: 24 jobs of 1 MiB (12 of them half input, half result), one of 5 MiB (over a
    // page's bytes alone), and 20 small ones; Bob: 3 large jobs of his own.
    let insert = |tenant_id: Uuid, input_bytes: i32, result_bytes: i32, n: i32| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "INSERT INTO jobs (tenant_id, kind, input, result)
                 SELECT $1, 'payload.heal', jsonb_build_object('payload', repeat('p', $2)),
                        CASE WHEN $3 > 0 THEN jsonb_build_object('reply', repeat('r', $3)) END
                 FROM generate_series(1, $4)
                 RETURNING id",
            )
            .bind(tenant_id)
            .bind(input_bytes)
            .bind(result_bytes)
            .bind(n)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    let mut alice_ids: HashSet<i64> = HashSet::new();
    alice_ids.extend(insert(alice_id, 1024 * 1024, 0, 12).await);
    alice_ids.extend(insert(alice_id, 5 * 1024 * 1024, 0, 1).await);
    alice_ids.extend(insert(alice_id, 512 * 1024, 512 * 1024, 12).await);
    insert(bob_id, 1024 * 1024, 0, 3).await;
    alice_ids.extend(insert(alice_id, 100, 0, 20).await);

    let page_bytes = 4 * 1024 * 1024;
    let mut walked: Vec<i64> = Vec::new();
    let mut pages = 0;
    let mut cursor: Option<String> = None;
    loop {
        let path = match &cursor {
            Some(cursor) => format!("/v1/jobs?limit=200&cursor={cursor}"),
            None => "/v1/jobs?limit=200".to_owned(),
        };
        let response = app.get(&alice, &path).await;
        assert_eq!(response.status(), 200);
        let page: Value = response.json().await.unwrap();
        pages += 1;
        let items = page["items"].as_array().unwrap();
        assert!(!items.is_empty(), "a page holds at least one job");
        let bytes: usize = items
            .iter()
            .map(|job| job["input"].to_string().len() + job["result"].to_string().len())
            .sum();
        // Over the bytes only when a single job is (the JSON here is the stored text, give or
        // take the `null` of a missing result).
        assert!(
            items.len() == 1 || bytes <= page_bytes + 64 * items.len(),
            "a page of {} jobs carries {bytes} bytes",
            items.len()
        );
        walked.extend(items.iter().map(|job| job["id"].as_i64().unwrap()));
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
        assert!(pages < 100, "the cursor walk does not end");
    }
    assert!(
        pages >= 6,
        "45 jobs under limit=200 in {pages} pages: not cut by bytes"
    );
    let unique: HashSet<i64> = walked.iter().copied().collect();
    assert_eq!(unique.len(), walked.len(), "a job listed twice");
    assert_eq!(unique, alice_ids, "every job of Alice's, and no other");
    assert!(
        walked.windows(2).all(|pair| pair[0] > pair[1]),
        "newest first"
    );

    // Bob's list is his own three jobs (3 MiB), in one page.
    let page: Value = app.get_json(&bob, "/v1/jobs?limit=200").await;
    assert_eq!(page["items"].as_array().unwrap().len(), 3);
    assert!(page.get("next_cursor").is_none());
    app.stop().await;
}
