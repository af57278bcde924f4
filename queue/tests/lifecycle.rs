//! A job's life after the claim: leases and rescue, fencing, retries, fatal errors, snoozes,
//! cancellation and replay.
#![allow(clippy::unwrap_used)] // Tests and benchmarks fail loudly on purpose.

mod common;

use std::time::Duration;

use common::{count_jobs, event_types, expire_lease, kinds, make_due, tenant, KIND, LEASE};
use sentinel_queue::{
    acknowledge_cancel, cancel, claim_batch, complete, enqueue, fail, heartbeat, progress, replay,
    rescue_expired, snooze, CancelOutcome, FailKind, FinishError, Heartbeat, Job, JobStatus,
    NewJob, Rescued,
};
use serde_json::json;
use sqlx::PgPool;

async fn claim_one(pool: &PgPool, worker_id: &str) -> Job {
    let mut jobs = claim_batch(pool, worker_id, &kinds(), 1, LEASE)
        .await
        .unwrap();
    assert_eq!(jobs.len(), 1, "{worker_id} expected to claim one job");
    jobs.pop().unwrap()
}

async fn job(pool: &PgPool, id: i64) -> Job {
    Job::fetch(pool, id).await.unwrap().expect("job exists")
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn an_expired_lease_is_rescued_and_the_late_completion_is_rejected(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let id = enqueue(&pool, &NewJob::new(tenant_id, KIND, json!({})))
        .await
        .unwrap()
        .id;

    let first = claim_one(&pool, "worker-a").await;
    let stale_lease = first.lease().unwrap();
    expire_lease(&pool, id).await;
    let rescued = rescue_expired(&pool, 100).await.unwrap();
    assert_eq!(
        rescued,
        Rescued {
            requeued: 1,
            dead: 0,
            canceled: 0
        }
    );
    assert_eq!(job(&pool, id).await.status, JobStatus::Queued);

    let second = claim_one(&pool, "worker-b").await;
    assert_eq!(second.attempt, 2);

    // worker-a wakes up late: every fenced write it tries is refused.
    let late = complete(&pool, &stale_lease, json!({"by": "a"})).await;
    assert!(matches!(late, Err(FinishError::LeaseLost(_))), "{late:?}");
    assert!(matches!(
        heartbeat(&pool, &stale_lease, LEASE).await,
        Err(FinishError::LeaseLost(_))
    ));
    assert!(!progress(&pool, &stale_lease, json!({"tokens": 1}))
        .await
        .unwrap());

    complete(&pool, &second.lease().unwrap(), json!({"by": "b"}))
        .await
        .unwrap();
    let done = job(&pool, id).await;
    assert_eq!(done.status, JobStatus::Succeeded);
    assert_eq!(done.result, Some(json!({"by": "b"})));
    let outcomes = sqlx::query_scalar!(
        "SELECT outcome FROM job_attempts WHERE job_id = $1 ORDER BY attempt",
        id
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(outcomes, vec!["lease_expired", "succeeded"]);
    assert_eq!(
        event_types(&pool, id).await,
        vec![
            "job.queued",
            "job.running",
            "job.retrying",
            "job.running",
            "job.succeeded"
        ]
    );
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_heartbeat_extends_the_lease(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    enqueue(&pool, &NewJob::new(tenant_id, KIND, json!({})))
        .await
        .unwrap();
    let claimed = claim_batch(&pool, "w", &kinds(), 1, Duration::from_secs(1))
        .await
        .unwrap();
    let lease = claimed[0].lease().unwrap();
    let before = claimed[0].lease_expires_at.unwrap();

    assert_eq!(
        heartbeat(&pool, &lease, Duration::from_secs(600))
            .await
            .unwrap(),
        Heartbeat::Extended
    );
    let after = job(&pool, lease.job_id).await.lease_expires_at.unwrap();
    assert!(
        after - before > chrono::Duration::seconds(500),
        "{before} -> {after}"
    );
    assert_eq!(rescue_expired(&pool, 100).await.unwrap().total(), 0);
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn retryable_failures_back_off_then_the_job_dies(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let mut new = NewJob::new(tenant_id, KIND, json!({}));
    new.max_attempts = 3;
    let id = enqueue(&pool, &new).await.unwrap().id;

    for attempt in 1..=3 {
        let claimed = claim_one(&pool, "w").await;
        assert_eq!(claimed.attempt, attempt);
        let retry_in = Duration::from_secs(60);
        let finished = fail(
            &pool,
            &claimed.lease().unwrap(),
            FailKind::Retryable { retry_in },
            json!({"code": "upstream_503", "message": "platform answered 503"}),
        )
        .await
        .unwrap();
        if attempt < 3 {
            assert_eq!(finished.status, JobStatus::Queued);
            let wait = finished.run_at - chrono::Utc::now();
            assert!(
                wait > chrono::Duration::seconds(50),
                "backoff not applied: {wait}"
            );
            assert!(
                claim_batch(&pool, "w", &kinds(), 1, LEASE)
                    .await
                    .unwrap()
                    .is_empty(),
                "a job in backoff is not claimable"
            );
            make_due(&pool, id).await;
        } else {
            assert_eq!(finished.status, JobStatus::Dead);
        }
    }
    let dead = job(&pool, id).await;
    assert_eq!(dead.status, JobStatus::Dead);
    assert_eq!(dead.last_error.unwrap()["code"], "upstream_503");
    assert!(dead.finished_at.is_some());
    let last_error = sqlx::query_scalar!(
        r#"SELECT last_error->>'message' AS "message!" FROM dead_jobs WHERE job_id = $1"#,
        id
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(last_error, "platform answered 503");
    assert_eq!(
        event_types(&pool, id).await,
        vec![
            "job.queued",
            "job.running",
            "job.retrying",
            "job.running",
            "job.retrying",
            "job.running",
            "job.dead"
        ]
    );
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_fatal_failure_kills_the_job_at_once(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let id = enqueue(&pool, &NewJob::new(tenant_id, KIND, json!({})))
        .await
        .unwrap()
        .id;
    let claimed = claim_one(&pool, "w").await;
    let finished = fail(
        &pool,
        &claimed.lease().unwrap(),
        FailKind::Fatal,
        json!({"code": "bad_request"}),
    )
    .await
    .unwrap();
    assert_eq!(finished.status, JobStatus::Dead);
    assert_eq!(job(&pool, id).await.attempt, 1);
    assert_eq!(count_jobs(&pool, "dead").await, 1);
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_snooze_requeues_without_spending_an_attempt(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let mut new = NewJob::new(tenant_id, KIND, json!({}));
    new.max_attempts = 1;
    let id = enqueue(&pool, &new).await.unwrap().id;
    let claimed = claim_one(&pool, "w").await;
    let finished = snooze(&pool, &claimed.lease().unwrap(), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(finished.status, JobStatus::Queued);
    assert!(finished.run_at > chrono::Utc::now() + chrono::Duration::seconds(20));

    make_due(&pool, id).await;
    let again = claim_one(&pool, "w").await;
    // One attempt was allowed; the snooze gave it back, so a retryable failure now is final.
    assert_eq!(again.max_attempts, 2);
    let finished = fail(
        &pool,
        &again.lease().unwrap(),
        FailKind::Retryable {
            retry_in: Duration::ZERO,
        },
        json!({}),
    )
    .await
    .unwrap();
    assert_eq!(finished.status, JobStatus::Dead);
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn cancel_stops_a_queued_job_at_once_and_a_running_one_at_its_heartbeat(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let other_tenant = tenant(&pool, "other").await;
    let queued = enqueue(&pool, &NewJob::new(tenant_id, KIND, json!({"n": 1})))
        .await
        .unwrap()
        .id;
    assert_eq!(
        cancel(&pool, other_tenant, queued).await.unwrap(),
        CancelOutcome::NotFound
    );
    assert_eq!(
        cancel(&pool, tenant_id, queued).await.unwrap(),
        CancelOutcome::Canceled
    );
    assert_eq!(job(&pool, queued).await.status, JobStatus::Canceled);
    assert_eq!(
        cancel(&pool, tenant_id, queued).await.unwrap(),
        CancelOutcome::AlreadyFinished(JobStatus::Canceled)
    );

    let running_id = enqueue(&pool, &NewJob::new(tenant_id, KIND, json!({"n": 2})))
        .await
        .unwrap()
        .id;
    let running = claim_one(&pool, "w").await;
    assert_eq!(running.id, running_id);
    let lease = running.lease().unwrap();
    assert_eq!(
        cancel(&pool, tenant_id, running_id).await.unwrap(),
        CancelOutcome::Requested
    );
    assert_eq!(job(&pool, running_id).await.status, JobStatus::Running);
    assert_eq!(
        heartbeat(&pool, &lease, LEASE).await.unwrap(),
        Heartbeat::CancelRequested
    );
    acknowledge_cancel(&pool, &lease).await.unwrap();
    assert_eq!(job(&pool, running_id).await.status, JobStatus::Canceled);
    assert_eq!(
        event_types(&pool, running_id).await,
        vec!["job.queued", "job.running", "job.canceled"]
    );
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn replay_creates_a_new_job_with_the_same_input_and_raw_body(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let mut original =
        NewJob::new(tenant_id, KIND, json!({"text": "hello"})).with_dedupe_key("evt-1");
    original.raw_body = Some(b"{\"raw\": true}".to_vec());
    original.headers = Some(json!({"x-platform": "test"}));
    let id = enqueue(&pool, &original).await.unwrap().id;
    let claimed = claim_one(&pool, "w").await;
    fail(
        &pool,
        &claimed.lease().unwrap(),
        FailKind::Fatal,
        json!({"code": "boom"}),
    )
    .await
    .unwrap();

    assert_eq!(
        replay(&pool, tenant(&pool, "stranger").await, id)
            .await
            .unwrap(),
        None
    );
    let replayed_id = replay(&pool, tenant_id, id)
        .await
        .unwrap()
        .expect("replayed");
    let replayed = job(&pool, replayed_id).await;
    assert_eq!(replayed.replay_of, Some(id));
    assert_eq!(replayed.status, JobStatus::Queued);
    assert_eq!(replayed.input, json!({"text": "hello"}));
    assert_eq!(replayed.raw_body.as_deref(), Some(&b"{\"raw\": true}"[..]));
    assert_eq!(replayed.headers, Some(json!({"x-platform": "test"})));
    assert_eq!(replayed.dedupe_key, None);
    assert_eq!(event_types(&pool, replayed_id).await, vec!["job.queued"]);

    // The operator's path is the same function.
    let from_sql = sqlx::query_scalar!(
        r#"SELECT replay_job(job_id) AS "id!" FROM dead_jobs WHERE tenant_id = $1"#,
        tenant_id
    )
    .fetch_all(&pool)
    .await
    .unwrap();
    assert_eq!(from_sql.len(), 1);
    assert_eq!(job(&pool, from_sql[0]).await.replay_of, Some(id));
    let missing = sqlx::query_scalar!(r#"SELECT replay_job(-1) AS "id!""#)
        .fetch_one(&pool)
        .await;
    let message = missing.unwrap_err().to_string();
    assert!(message.contains("job -1 does not exist"), "{message}");
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn an_expired_lease_on_the_last_attempt_makes_the_job_dead(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let mut new = NewJob::new(tenant_id, KIND, json!({}));
    new.max_attempts = 1;
    let id = enqueue(&pool, &new).await.unwrap().id;
    claim_one(&pool, "w").await;
    expire_lease(&pool, id).await;
    assert_eq!(
        rescue_expired(&pool, 100).await.unwrap(),
        Rescued {
            requeued: 0,
            dead: 1,
            canceled: 0
        }
    );
    let dead = job(&pool, id).await;
    assert_eq!(dead.status, JobStatus::Dead);
    assert_eq!(dead.last_error.unwrap()["code"], "lease_expired");
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn retention_deletes_old_finished_jobs_and_events_and_keeps_the_rest(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let old = enqueue(&pool, &NewJob::new(tenant_id, KIND, json!({"n": "old"})))
        .await
        .unwrap()
        .id;
    let claimed = claim_one(&pool, "w").await;
    complete(&pool, &claimed.lease().unwrap(), json!({}))
        .await
        .unwrap();
    let recent = enqueue(&pool, &NewJob::new(tenant_id, KIND, json!({"n": "recent"})))
        .await
        .unwrap()
        .id;
    let claimed = claim_one(&pool, "w").await;
    complete(&pool, &claimed.lease().unwrap(), json!({}))
        .await
        .unwrap();
    let queued_long_ago = enqueue(&pool, &NewJob::new(tenant_id, KIND, json!({"n": "queued"})))
        .await
        .unwrap()
        .id;
    sqlx::query!(
        "UPDATE jobs SET finished_at = now() - interval '8 days', created_at = now() - interval '8 days'
         WHERE id = ANY($1)",
        &[old, queued_long_ago][..]
    )
    .execute(&pool)
    .await
    .unwrap();
    sqlx::query!(
        "UPDATE events SET created_at = now() - interval '8 days' WHERE job_id = $1",
        old
    )
    .execute(&pool)
    .await
    .unwrap();

    // A batch of 1 proves the deletes repeat until nothing old is left.
    let purged = sentinel_queue::retention::purge(&pool, Duration::from_secs(7 * 86_400), 1)
        .await
        .unwrap();
    assert_eq!(purged.jobs, 1);
    assert_eq!(purged.events, 3);
    assert!(Job::fetch(&pool, old).await.unwrap().is_none());
    assert!(Job::fetch(&pool, recent).await.unwrap().is_some());
    assert!(
        Job::fetch(&pool, queued_long_ago).await.unwrap().is_some(),
        "an unfinished job is never purged"
    );
    let attempts = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM job_attempts WHERE job_id = $1"#,
        old
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(attempts, 0, "attempts go with their job");
}
