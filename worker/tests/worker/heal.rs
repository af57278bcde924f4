//! The worker's claim loop running the deterministic healing jobs against a real database.

use std::time::{Duration, Instant};

use sentinel_queue::{enqueue, kinds, tenant::create_tenant, Job, JobStatus, NewJob};
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::watch;

fn worker_config() -> sentinel_worker::Config {
    sentinel_worker::Config {
        worker_id: "test-worker".into(),
        heal_batch: 64,
        poll_interval: Duration::from_millis(200),
        ..sentinel_worker::Config::new(String::new())
    }
}

async fn wait_final(pool: &PgPool, ids: &[i64]) -> Vec<Job> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let jobs = Job::fetch_many(pool, ids).await.unwrap();
        if jobs.iter().all(|job| job.status.is_final()) {
            return jobs;
        }
        assert!(
            Instant::now() < deadline,
            "jobs did not finish: {:?}",
            jobs.iter().map(|j| j.status).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The whole worker without a model, in this process: the deterministic path never needs one.
fn spawn_worker(
    pool: &PgPool,
) -> (
    watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
) {
    let (stop, shutdown) = watch::channel(false);
    let worker = tokio::spawn(sentinel_worker::run_with(
        worker_config(),
        (*pool.connect_options()).clone(),
        None,
        shutdown,
    ));
    (stop, worker)
}

/// Stops a worker from [`spawn_worker`]; its drain returns.
async fn stop_worker(
    (stop, worker): (
        watch::Sender<bool>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ),
) {
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), worker)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn payloads_are_healed_by_adapter_or_repair_and_the_rest_fail_clearly(pool: PgPool) {
    let tenant_id = create_tenant(&pool, "acme", 100, 100).await.unwrap();
    let good = json!({"update_id": 1, "message": {"message_id": 2, "date": 1735689600,
        "chat": {"id": 42, "type": "private"}, "from": {"id": 42, "first_name": "Ada"}, "text": "hello"}});
    let truncated =
        r#"{"updateId": 3, "message": {"chat": {"id": 43}, "from": {"id": 43}, "body": "cut off"#;
    let mut inbound = NewJob::new(
        tenant_id,
        kinds::WEBHOOK_INBOUND,
        json!({"platform": "slack", "payload": null}),
    );
    inbound.raw_body = Some(br#"{"type": "event_callback", "event_id": "Ev9", "event": {"type": "message", "channel": "C9", "user": "U9", "text": "from raw", "ts": "1355517523.000005",}"#.to_vec());
    let jobs = [
        NewJob::new(
            tenant_id,
            kinds::PAYLOAD_HEAL,
            json!({"payload": good, "platform": "telegram"}),
        ),
        NewJob::new(
            tenant_id,
            kinds::PAYLOAD_HEAL,
            json!({"payload": truncated, "platform": "telegram"}),
        ),
        NewJob::new(
            tenant_id,
            kinds::PAYLOAD_HEAL,
            json!({"payload": "no json here at all"}),
        ),
        inbound,
    ];
    let mut ids = Vec::new();
    for job in &jobs {
        ids.push(enqueue(&pool, job).await.unwrap().id);
    }

    // No model: the deterministic path must never need one.
    let worker = spawn_worker(&pool);

    let done = wait_final(&pool, &ids).await;
    assert_eq!(done[0].status, JobStatus::Succeeded);
    let result = done[0].result.as_ref().unwrap();
    assert_eq!(result["healed_by"], "adapter");
    assert_eq!(result["message"]["text"], "hello");
    assert_eq!(result["message"]["conversation_id"], "42");

    assert_eq!(done[1].status, JobStatus::Succeeded);
    let result = done[1].result.as_ref().unwrap();
    assert_eq!(result["healed_by"], "repair");
    assert_eq!(result["message"]["text"], "cut off");
    assert_eq!(result["message"]["event_id"], "3");

    assert_eq!(done[2].status, JobStatus::Dead);
    let error = done[2].last_error.as_ref().unwrap();
    // Only the LLM step could heal prose, and this worker has no model: the error says so, and
    // why the deterministic steps failed.
    assert_eq!(error["code"], "no_model");
    assert!(
        error["deterministic"]
            .as_str()
            .unwrap()
            .contains("decodes into no JSON object"),
        "{error}"
    );

    assert_eq!(
        done[3].status,
        JobStatus::Succeeded,
        "{:?}",
        done[3].last_error
    );
    assert_eq!(
        done[3].result.as_ref().unwrap()["message"]["platform"],
        "slack"
    );
    assert_eq!(done[3].result.as_ref().unwrap()["healed_by"], "repair");
    // A message with text that has nowhere to be answered needs no model either.
    assert_eq!(
        done[3].result.as_ref().unwrap()["delivery"]["skipped"],
        "the job has no source"
    );

    // The audit trail: healed jobs finished in one attempt of the deterministic lane; the prose
    // was handed to the model lane (no attempt spent) and failed there.
    let outcomes = |id: i64| {
        let pool = pool.clone();
        async move {
            sqlx::query_scalar::<_, String>(
                "SELECT outcome FROM job_attempts WHERE job_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(outcomes(ids[0]).await, ["succeeded"]);
    assert_eq!(outcomes(ids[1]).await, ["succeeded"]);
    assert_eq!(outcomes(ids[2]).await, ["handed_off", "dead"]);
    let stage: String = sqlx::query_scalar("SELECT stage FROM jobs WHERE id = $1")
        .bind(ids[2])
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(stage, "llm_heal");

    // Shutdown drains and returns.
    stop_worker(worker).await;
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_handler_that_panics_spends_its_attempts_and_ends_dead(pool: PgPool) {
    use std::sync::Arc;

    use sentinel_queue::{Claimable, Listener, JOBS_CHANNEL};
    use sentinel_worker::lanes::runner::{self, Claims, Handler, RunnerConfig};

    let tenant_id = create_tenant(&pool, "acme", 100, 100).await.unwrap();
    let mut job = NewJob::new(tenant_id, "test.panics", json!({}));
    job.max_attempts = 2;
    let id = enqueue(&pool, &job).await.unwrap().id;
    // Run again at once instead of after the backoff, so the test sees both attempts.
    sqlx::raw_sql(
        "CREATE FUNCTION no_backoff() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN IF NEW.status = 'queued' THEN NEW.run_at := now(); END IF; RETURN NEW; END $$;
         CREATE TRIGGER no_backoff BEFORE UPDATE ON jobs FOR EACH ROW EXECUTE FUNCTION no_backoff();",
    )
    .execute(&pool)
    .await
    .unwrap();

    let (stop, shutdown) = watch::channel(false);
    let (listener, _task) = Listener::spawn(
        (*pool.connect_options()).clone(),
        &[JOBS_CHANNEL],
        shutdown.clone(),
    );
    let handler: Handler =
        Arc::new(|_job, _context| Box::pin(async { panic!("the handler broke") }));
    let runner = tokio::spawn(runner::run(
        pool.clone(),
        RunnerConfig {
            worker_id: "panicky".into(),
            claims: Claims::Kinds(Claimable::new(&["test.panics"])),
            max_slots: 1,
            lease: Duration::from_secs(30),
            poll_interval: Duration::from_millis(100),
        },
        listener.waiter(JOBS_CHANNEL),
        handler,
        shutdown,
    ));
    let done = wait_final(&pool, &[id]).await;
    assert_eq!(done[0].status, JobStatus::Dead);
    assert_eq!(done[0].attempt, 2, "each panic spent an attempt");
    let error = done[0].last_error.as_ref().unwrap();
    assert_eq!(error["code"], "handler_panicked");
    assert_eq!(error["message"], "the handler broke");
    stop.send(true).unwrap();
    runner.await.unwrap();
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn an_enveloped_body_is_healed_without_the_model_and_says_how(pool: PgPool) {
    let tenant_id = create_tenant(&pool, "acme", 100, 100).await.unwrap();
    let update = json!({"update_id": 7.0, "message": {"chat": {"id": 418800213.0}, "from": {"id": 418800213.0}, "text": "hi"}});
    let lambda = json!({"httpMethod": "POST", "isBase64Encoded": false, "headers": {}, "body": update.to_string()});
    let id = enqueue(
        &pool,
        &NewJob::new(
            tenant_id,
            kinds::PAYLOAD_HEAL,
            json!({"payload": lambda, "platform": "telegram"}),
        ),
    )
    .await
    .unwrap()
    .id;
    let worker = spawn_worker(&pool);
    let done = wait_final(&pool, &[id]).await;
    assert_eq!(
        done[0].status,
        JobStatus::Succeeded,
        "{:?}",
        done[0].last_error
    );
    let result = done[0].result.as_ref().unwrap();
    // The adapter read the body inside the proxy event; the trace says where each field was.
    assert_eq!(result["healed_by"], "adapter");
    assert_eq!(result["heal_confidence"], "high");
    assert_eq!(result["heal_trace"]["unwrapped"], json!(["/body: json"]));
    assert_eq!(
        result["heal_trace"]["fields"]["conversation_id"],
        "/message/chat/id"
    );
    assert_eq!(
        result["heal_trace"]["fields"]["sender_id"],
        "/message/from/id"
    );
    assert_eq!(result["message"]["conversation_id"], "418800213");
    stop_worker(worker).await;
}
