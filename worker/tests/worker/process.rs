//! The worker binary as operators run it, with the real default model: killed with SIGKILL in
//! the middle of a generation, stopped with SIGTERM, and sized by a GPU memory budget.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use sentinel_queue::{enqueue, kinds, tenant::create_tenant, Job, JobStatus, NewJob};
use serde_json::json;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

fn model_path() -> PathBuf {
    sentinel_worker::model::llm::model_path_or_default(
        &PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    )
}

fn database_url(options: &PgConnectOptions) -> String {
    format!(
        "postgres://{}@{}:{}/{}",
        options.get_username(),
        options.get_host(),
        options.get_port(),
        options.get_database().unwrap()
    )
}

/// Starts `sentinel-worker run` with its own identity and token budget.
fn spawn_worker(options: &PgConnectOptions, id: &str, max_tokens: usize, lease_secs: u64) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sentinel-worker"))
        .arg("run")
        .env("DATABASE_URL", database_url(options))
        .env("SENTINEL_MODEL", model_path())
        .env("SENTINEL_WORKER_ID", id)
        .env("SENTINEL_LEASE_SECS", lease_secs.to_string())
        .env("SENTINEL_MAX_SEQS", "1")
        .env("SENTINEL_MAX_TOKENS", max_tokens.to_string())
        .env("SENTINEL_POLL_INTERVAL_MS", "200")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .unwrap()
}

async fn generate_job(pool: &PgPool, max_tokens: usize) -> i64 {
    let tenant_id = create_tenant(pool, &format!("t{max_tokens}"), 100, 100)
        .await
        .unwrap();
    enqueue(
        pool,
        &NewJob::new(
            tenant_id,
            kinds::LLM_GENERATE,
            json!({"messages": [{"role": "user", "content": "Write a long story about a lighthouse keeper."}],
                   "max_tokens": max_tokens}),
        ),
    )
    .await
    .unwrap()
    .id
}

async fn wait_until<F: std::future::Future<Output = bool>>(
    what: &str,
    timeout: Duration,
    mut check: impl FnMut() -> F,
) {
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn progress_events(pool: &PgPool, job_id: i64) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM events WHERE job_id = $1 AND type = 'job.progress'")
        .bind(job_id)
        .fetch_one(pool)
        .await
        .unwrap()
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_worker_killed_mid_generation_leaves_the_job_to_another_exactly_once(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let job_id = generate_job(&pool, 2_000).await;
    let mut first = spawn_worker(&options, "doomed", 2_000, 4);
    wait_until(
        "the first worker to stream tokens",
        Duration::from_secs(120),
        || {
            let pool = pool.clone();
            async move { progress_events(&pool, job_id).await > 0 }
        },
    )
    .await;
    first.kill().unwrap();
    first.wait().unwrap();
    let job = Job::fetch(&pool, job_id).await.unwrap().unwrap();
    assert_eq!(
        (job.status, job.lease_owner.as_deref()),
        (JobStatus::Running, Some("doomed"))
    );

    let mut second = spawn_worker(&options, "survivor", 8, 4);
    wait_until("the job to finish", Duration::from_secs(120), || {
        let pool = pool.clone();
        async move {
            Job::fetch(&pool, job_id)
                .await
                .unwrap()
                .is_some_and(|job| job.status.is_final())
        }
    })
    .await;
    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    second.wait().unwrap();

    let job = Job::fetch(&pool, job_id).await.unwrap().unwrap();
    assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.last_error);
    assert_eq!(job.attempt, 2);
    assert!(!job.result.unwrap()["text"].as_str().unwrap().is_empty());
    let attempts: Vec<(String, String)> = sqlx::query_as(
        "SELECT worker_id, outcome FROM job_attempts WHERE job_id = $1 ORDER BY attempt",
    )
    .bind(job_id)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(attempts.len(), 2, "{attempts:?}");
    assert_eq!(attempts[0], ("doomed".into(), "lease_expired".into()));
    assert_eq!(attempts[1], ("survivor".into(), "succeeded".into()));
    let results: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM events WHERE job_id = $1 AND type = 'job.succeeded'",
    )
    .bind(job_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(results, 1);
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn sigterm_finishes_the_running_job_claims_nothing_more_and_exits_cleanly(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let running = generate_job(&pool, 24).await;
    let mut worker = spawn_worker(&options, "draining", 24, 60);
    wait_until("the job to start", Duration::from_secs(120), || {
        let pool = pool.clone();
        async move { progress_events(&pool, running).await > 0 }
    })
    .await;
    let status = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    tokio::time::sleep(Duration::from_millis(300)).await;
    let waiting = generate_job(&pool, 25).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    let exit = loop {
        if let Some(exit) = worker.try_wait().unwrap() {
            break exit;
        }
        assert!(
            Instant::now() < deadline,
            "the worker did not exit after SIGTERM"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(exit.success(), "exit status {exit:?}");
    let running = Job::fetch(&pool, running).await.unwrap().unwrap();
    assert_eq!(
        running.status,
        JobStatus::Succeeded,
        "{:?}",
        running.last_error
    );
    let waiting = Job::fetch(&pool, waiting).await.unwrap().unwrap();
    assert_eq!((waiting.status, waiting.attempt), (JobStatus::Queued, 0));
}

/// `sentinel-worker` with `args` and the environment `env`; returns (success, stdout, stderr).
fn worker_output(args: &[&str], env: &[(&str, &str)]) -> (bool, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_sentinel-worker"))
        .args(args)
        .env("SENTINEL_MODEL", model_path())
        .env("RUST_LOG", "info")
        .envs(env.iter().copied())
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn a_budget_the_model_cannot_fit_stops_start_up_with_the_numbers() {
    // Checked before the database is reached, so none is needed.
    let (ok, _, stderr) = worker_output(
        &["run"],
        &[
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
            ("SENTINEL_VRAM_BUDGET_MB", "600"),
        ],
    );
    assert!(!ok, "{stderr}");
    for part in [
        "SENTINEL_VRAM_BUDGET_MB=600 cannot hold this model",
        "weights ",
        "reserve 768 MB",
        "one sequence ",
        "raise the budget to at least",
    ] {
        assert!(stderr.contains(part), "{part:?} missing from: {stderr}");
    }
    let (ok, _, stderr) = worker_output(
        &["run"],
        &[
            ("DATABASE_URL", "postgres://nobody@127.0.0.1:1/none"),
            ("SENTINEL_VRAM_BUDGET_MB", "6144"),
            ("SENTINEL_MAX_SEQS", "500"),
        ],
    );
    assert!(!ok, "{stderr}");
    assert!(
        stderr.contains("SENTINEL_MAX_SEQS=500 does not fit SENTINEL_VRAM_BUDGET_MB=6144"),
        "{stderr}"
    );
}

#[test]
fn plan_prints_the_admission_arithmetic_for_the_default_model() {
    let (ok, stdout, stderr) = worker_output(&["plan"], &[("SENTINEL_VRAM_BUDGET_MB", "2048")]);
    assert!(ok, "{stderr}");
    // SmolLM2-135M: 2 × 30 layers × 3 KV heads × 64 × 2 bytes = 23,040 bytes of KV per token.
    for part in [
        "budget 2048 MB",
        "2048 tokens × 23040 B",
        "slots 8 (best measured point, 8)",
        "KV pool 360 MB",
    ] {
        assert!(stdout.contains(part), "{part:?} missing from: {stdout}");
    }
    // The log line (on stdout, like every log line) carries the same arithmetic.
    assert!(stdout.contains("GPU admission: budget 2048 MB"), "{stdout}");
}

#[tokio::test]
async fn a_prompt_longer_than_the_context_is_refused_and_an_answer_is_cut_to_what_is_left() {
    use sentinel_worker::model::llm::{ChatMessage, Llm, LlmError, ModelConfig, Role};
    let llm = Llm::load(&ModelConfig {
        path: model_path(),
        max_seqs: 1,
        paged_attn_mb: None,
        context_tokens: Some(64),
        heal_seqs: 0,
    })
    .await
    .unwrap();
    let long = vec![ChatMessage::new(Role::User, "lighthouse ".repeat(80))];
    match llm.generate(&long, 16, None, None, None).await {
        Err(LlmError::Invalid(message)) => assert!(
            message.contains("tokens; this worker's context per sequence is 64 tokens"),
            "{message}"
        ),
        other => panic!("expected a refusal, got {other:?}"),
    }
    let short = vec![ChatMessage::new(
        Role::User,
        "Write a long story about a lighthouse keeper.",
    )];
    let generation = llm.generate(&short, 200, None, None, None).await.unwrap();
    assert!(
        generation.usage.prompt_tokens + generation.usage.completion_tokens <= 64,
        "{:?}",
        generation.usage
    );
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_million_brackets_and_a_nul_result_cost_only_their_own_jobs(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let hostile = create_tenant(&pool, "hostile", 100, 100).await.unwrap();
    let other = create_tenant(&pool, "other", 100, 100).await.unwrap();
    let heal = |tenant_id, payload: serde_json::Value| {
        NewJob::new(
            tenant_id,
            kinds::PAYLOAD_HEAL,
            json!({"payload": payload, "platform": "telegram"}),
        )
    };
    // The payload that overflowed the worker's stack, and one whose healed text holds U+0000.
    let deep = enqueue(&pool, &heal(hostile, json!("[".repeat(1_000_000))))
        .await
        .unwrap()
        .id;
    let nul = enqueue(
        &pool,
        &heal(
            hostile,
            json!(r#"{"update_id": 1, "message": {"chat": {"id": 9}, "from": {"id": 9}, "text": "a\u0000b"}}"#),
        ),
    )
    .await
    .unwrap()
    .id;
    let mut others = Vec::new();
    for i in 0..20 {
        let update = json!({"update_id": 100 + i, "message": {"chat": {"id": 5}, "from": {"id": 5}, "text": "fine"}});
        others.push(enqueue(&pool, &heal(other, update)).await.unwrap().id);
    }
    let mut worker = spawn_worker(&options, "hostile-worker", 8, 30);
    let mut all = vec![deep, nul];
    all.extend(&others);
    wait_until("every job to finish", Duration::from_secs(120), || {
        let (pool, all) = (pool.clone(), all.clone());
        async move {
            Job::fetch_many(&pool, &all)
                .await
                .unwrap()
                .iter()
                .all(|job| job.status.is_final())
        }
    })
    .await;
    assert!(
        worker.try_wait().unwrap().is_none(),
        "the worker is still running"
    );
    let _ = Command::new("kill")
        .args(["-TERM", &worker.id().to_string()])
        .status();
    worker.wait().unwrap();

    let deep = Job::fetch(&pool, deep).await.unwrap().unwrap();
    assert_eq!(deep.status, JobStatus::Dead);
    assert_eq!(deep.attempt, 1, "dead after one attempt");
    let error = deep.last_error.unwrap();
    assert_eq!(error["code"], "payload_too_deep");
    assert!(
        error["message"]
            .as_str()
            .unwrap()
            .contains("1000000 levels deep"),
        "{error}"
    );
    let nul = Job::fetch(&pool, nul).await.unwrap().unwrap();
    assert_eq!(nul.status, JobStatus::Succeeded, "{:?}", nul.last_error);
    assert_eq!(nul.result.unwrap()["message"]["text"], "a\u{FFFD}b");
    for job in Job::fetch_many(&pool, &others).await.unwrap() {
        assert_eq!(job.status, JobStatus::Succeeded, "{:?}", job.last_error);
    }
}

/// A Telegram Bot API on loopback: records each `sendMessage` body, answers every method `ok`.
async fn fake_telegram() -> (
    String,
    std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
) {
    use poem::listener::{Acceptor, Listener};
    let sent: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>> = Default::default();
    let acceptor = poem::listener::TcpListener::bind("127.0.0.1:0")
        .into_acceptor()
        .await
        .unwrap();
    let addr = *acceptor.local_addr()[0].as_socket_addr().unwrap();
    let log = sent.clone();
    let endpoint = poem::endpoint::make(move |request: poem::Request| {
        let log = log.clone();
        async move {
            let path = request.uri().path().to_owned();
            let body = request.into_body().into_vec().await.unwrap_or_default();
            if path.ends_with("/sendMessage") {
                log.lock()
                    .unwrap()
                    .push(serde_json::from_slice(&body).unwrap_or_default());
            }
            poem::Response::builder()
                .content_type("application/json")
                .body(
                    r#"{"ok": true, "result": {"message_id": 9001, "chat": {"id": 0}, "date": 0}}"#,
                )
        }
    });
    tokio::spawn(poem::Server::new_with_acceptor(acceptor).run(endpoint));
    (format!("http://{addr}"), sent)
}

/// A turn as `conversation_turns` keeps it: job, status, reply, made, ended.
type TurnRow = (
    i64,
    String,
    Option<String>,
    chrono::DateTime<chrono::Utc>,
    Option<chrono::DateTime<chrono::Utc>>,
);

/// A message of `conversation` appended as the agent lane appends it.
async fn append(
    pool: &PgPool,
    tenant_id: sqlx::types::Uuid,
    source_id: sqlx::types::Uuid,
    inbound: i64,
    text: &str,
) {
    let message = json!({"platform": "telegram", "conversation_id": "77", "text": text});
    sentinel_queue::conversations::append(
        pool,
        &sentinel_queue::conversations::Arrival {
            tenant_id,
            source_id,
            conversation_id: "77",
            inbound_job_id: inbound,
            order_key: None,
            arrived_at: chrono::Utc::now(),
            message: &message,
            text,
            address: &json!({"chat_id": "77"}),
            dropped: None,
        },
    )
    .await
    .unwrap();
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_worker_killed_mid_turn_holds_the_lane_until_its_lease_ends_and_nothing_is_answered_twice(
    pool_options: PgPoolOptions,
    options: PgConnectOptions,
) {
    let pool = pool_options.connect_with(options.clone()).await.unwrap();
    let (telegram, sent) = fake_telegram().await;
    let tenant_id = create_tenant(&pool, "chat", 100, 100).await.unwrap();
    let source_id: sqlx::types::Uuid = sqlx::query_scalar(
        "INSERT INTO sources (tenant_id, platform, reply, turn_quiet_ms, turn_max_wait_ms, turn_typing)
         VALUES ($1, 'telegram', '{\"bot_token\": \"1:T\"}', 0, 0, false) RETURNING id",
    )
    .bind(tenant_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    let spawn = |id: &str, max_tokens: &str| {
        Command::new(env!("CARGO_BIN_EXE_sentinel-worker"))
            .arg("run")
            .env("DATABASE_URL", database_url(&options))
            .env("SENTINEL_MODEL", model_path())
            .env("SENTINEL_WORKER_ID", id)
            .env("SENTINEL_LEASE_SECS", "4")
            .env("SENTINEL_MAX_SEQS", "1")
            .env("SENTINEL_MAX_TOKENS", max_tokens)
            .env("SENTINEL_POLL_INTERVAL_MS", "200")
            .env("SENTINEL_TELEGRAM_API_BASE", &telegram)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .spawn()
            .unwrap()
    };
    let mut first = spawn("doomed", "2000");
    append(
        &pool,
        tenant_id,
        source_id,
        1,
        "Tell me a very long story about the sea.",
    )
    .await;
    let turn = |pool: PgPool| async move {
        sqlx::query_scalar::<_, i64>(
            "SELECT job_id FROM conversation_turns ORDER BY job_id LIMIT 1",
        )
        .fetch_optional(&pool)
        .await
        .unwrap()
    };
    wait_until("the first turn to start", Duration::from_secs(60), || {
        let pool = pool.clone();
        async move { turn(pool).await.is_some() }
    })
    .await;
    let first_turn = turn(pool.clone()).await.unwrap();
    wait_until(
        "the first worker to generate",
        Duration::from_secs(120),
        || {
            let pool = pool.clone();
            async move { progress_events(&pool, first_turn).await > 0 }
        },
    )
    .await;
    // The user writes again; then the worker answering dies.
    append(&pool, tenant_id, source_id, 2, "And make it end well.").await;
    first.kill().unwrap();
    first.wait().unwrap();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let turns: i64 = sqlx::query_scalar("SELECT count(*) FROM conversation_turns")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(turns, 1, "a second turn started beside the dead worker's");

    // Another worker takes the turn when the lease ends, then the next one.
    let mut second = spawn("survivor", "12");
    wait_until("both turns to end", Duration::from_secs(180), || {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, i64>(
                "SELECT count(*) FROM conversation_turns WHERE status <> 'open'",
            )
            .fetch_one(&pool)
            .await
            .unwrap()
                == 2
        }
    })
    .await;
    wait_until("both replies to be sent", Duration::from_secs(60), || {
        let sent = sent.clone();
        async move { sent.lock().unwrap().len() >= 2 }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = Command::new("kill")
        .args(["-TERM", &second.id().to_string()])
        .status();
    second.wait().unwrap();

    let rows: Vec<TurnRow> =
        sqlx::query_as(
            "SELECT job_id, status, reply, created_at, ended_at FROM conversation_turns ORDER BY job_id",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].0, first_turn);
    assert_eq!(
        (rows[0].1.as_str(), rows[1].1.as_str()),
        ("answered", "answered")
    );
    // One at a time: the second turn was made after the first ended.
    assert!(rows[1].3 >= rows[0].4.unwrap(), "{rows:?}");
    let attempts: Vec<(String, String)> = sqlx::query_as(
        "SELECT worker_id, outcome FROM job_attempts WHERE job_id = $1 ORDER BY attempt",
    )
    .bind(first_turn)
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(
        attempts,
        [
            ("doomed".to_owned(), "lease_expired".to_owned()),
            ("survivor".to_owned(), "succeeded".to_owned())
        ]
    );
    // Each turn's reply went out once, in turn order, and the second turn saw the first's reply.
    let sent = sent.lock().unwrap().clone();
    let texts: Vec<&str> = sent.iter().map(|b| b["text"].as_str().unwrap()).collect();
    assert_eq!(
        texts,
        [rows[0].2.as_deref().unwrap(), rows[1].2.as_deref().unwrap()]
    );
    let second_history: serde_json::Value = sqlx::query_scalar(
        "SELECT jsonb_agg(jsonb_build_object('role', role, 'text', text) ORDER BY position, role DESC)
         FROM conversation_transcript WHERE position < (SELECT first_position FROM conversation_turns WHERE job_id = $1)",
    )
    .bind(rows[1].0)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(
        second_history,
        json!([{"role": "user", "text": "Tell me a very long story about the sea."},
               {"role": "agent", "text": rows[0].2.as_deref().unwrap()}])
    );
}
