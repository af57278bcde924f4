//! The worker's claim loop running the deterministic healing jobs against a real database.
#![allow(clippy::unwrap_used)]

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use sentinel_queue::{
    enqueue, kinds, tenant::create_tenant, Job, JobStatus, Listener, NewJob, JOBS_CHANNEL,
};
use sentinel_worker::{
    deliver::ApiBases,
    runner::{self, RunnerConfig},
    Services,
};
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::watch;

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

    let (stop, shutdown) = watch::channel(false);
    let (listener, listen_task) = Listener::spawn(
        (*pool.connect_options()).clone(),
        &[JOBS_CHANNEL],
        shutdown.clone(),
    );
    let config = RunnerConfig {
        worker_id: "test-worker".into(),
        kinds: sentinel_worker::MODEL_KINDS
            .iter()
            .map(|k| k.to_string())
            .collect(),
        max_slots: 2,
        lease: Duration::from_secs(30),
        poll_interval: Duration::from_millis(200),
    };
    let runner = tokio::spawn(runner::run(
        pool.clone(),
        config,
        listener.waiter(JOBS_CHANNEL),
        // No model: the deterministic path must never need one.
        sentinel_worker::handler(Arc::new(
            Services::new(
                pool.clone(),
                None,
                32,
                ApiBases::default(),
                Duration::from_secs(5),
            )
            .unwrap(),
        )),
        shutdown,
    ));

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
            .contains("could not be repaired"),
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

    // Shutdown drains and returns.
    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), runner)
        .await
        .unwrap()
        .unwrap();
    listen_task.await.unwrap();
}
