//! Claiming: exactly-once under concurrency, tenant fairness, ordering, admission by free slots.
#![allow(clippy::unwrap_used)] // Tests and benchmarks fail loudly on purpose.

mod common;

use std::collections::HashSet;

use common::{count_jobs, enqueue_n, event_types, kinds, tenant, KIND, LEASE};
use sentinel_queue::{claim_batch, complete_many, enqueue_many, JobStatus, NewJob};
use serde_json::json;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn eight_concurrent_claimers_claim_each_of_10000_jobs_exactly_once(
    pool_options: PgPoolOptions,
    connect_options: PgConnectOptions,
) {
    let pool = pool_options
        .max_connections(16)
        .connect_with(connect_options)
        .await
        .unwrap();
    let tenant_id = tenant(&pool, "acme").await;
    let enqueued: HashSet<i64> = enqueue_n(&pool, tenant_id, 10_000)
        .await
        .into_iter()
        .collect();

    let claimers = (0..8).map(|n| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let worker_id = format!("worker-{n}");
            let mut claimed = Vec::new();
            loop {
                let jobs = claim_batch(&pool, &worker_id, &kinds(), 50, LEASE)
                    .await
                    .unwrap();
                if jobs.is_empty() {
                    return claimed;
                }
                let leases: Vec<_> = jobs
                    .iter()
                    .map(|job| (job.lease().unwrap(), json!({"ok": true})))
                    .collect();
                let finished = complete_many(&pool, leases).await.unwrap();
                assert_eq!(
                    finished.len(),
                    jobs.len(),
                    "every claimed lease must still be held"
                );
                claimed.extend(jobs.into_iter().map(|job| job.id));
            }
        })
    });
    let mut all = Vec::new();
    for claimer in futures::future::join_all(claimers).await {
        all.extend(claimer.unwrap());
    }

    let distinct: HashSet<i64> = all.iter().copied().collect();
    assert_eq!(all.len(), 10_000, "claims: {} for 10,000 jobs", all.len());
    assert_eq!(distinct, enqueued);
    assert_eq!(count_jobs(&pool, "succeeded").await, 10_000);
    let attempts = sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM job_attempts WHERE outcome = 'succeeded'"#
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(attempts, 10_000);
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_small_tenant_is_not_starved_by_a_large_one(pool: PgPool) {
    let big = tenant(&pool, "big").await;
    let small = tenant(&pool, "small").await;
    enqueue_n(&pool, big, 10_000).await;
    let small_jobs: HashSet<i64> = enqueue_n(&pool, small, 10).await.into_iter().collect();

    let mut small_claimed = 0;
    for claim in 1..=20 {
        let jobs = claim_batch(&pool, "w", &kinds(), 1, LEASE).await.unwrap();
        assert_eq!(jobs.len(), 1);
        let job = &jobs[0];
        if small_jobs.contains(&job.id) {
            small_claimed += 1;
        }
        complete_many(&pool, [(job.lease().unwrap(), json!({}))])
            .await
            .unwrap();
        if small_claimed == 10 {
            assert!(claim <= 20);
            break;
        }
    }
    assert_eq!(
        small_claimed, 10,
        "all 10 of the small tenant's jobs within the first 20 claims"
    );
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn free_slots_are_shared_between_ready_tenants(pool: PgPool) {
    let a = tenant(&pool, "a").await;
    let b = tenant(&pool, "b").await;
    enqueue_n(&pool, a, 100).await;
    enqueue_n(&pool, b, 100).await;

    let jobs = claim_batch(&pool, "w", &kinds(), 10, LEASE).await.unwrap();
    assert_eq!(jobs.len(), 10);
    let from_a = jobs.iter().filter(|job| job.tenant_id == a).count();
    assert_eq!(from_a, 5, "10 slots over 2 ready tenants");
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn claims_follow_priority_then_run_at_and_never_exceed_free_slots(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let mut urgent = NewJob::new(tenant_id, KIND, json!({"name": "urgent"}));
    urgent.priority = -10;
    let mut later = NewJob::new(tenant_id, KIND, json!({"name": "future"}));
    later.run_at = Some(chrono::Utc::now() + chrono::Duration::hours(1));
    let other_kind = NewJob::new(tenant_id, "other.kind", json!({"name": "other"}));
    let plain = NewJob::new(tenant_id, KIND, json!({"name": "plain"}));
    enqueue_many(&pool, &[plain, later, other_kind, urgent])
        .await
        .unwrap();

    let first = claim_batch(&pool, "w", &kinds(), 1, LEASE).await.unwrap();
    assert_eq!(first.len(), 1);
    assert_eq!(first[0].input["name"], "urgent");
    assert_eq!(first[0].status, JobStatus::Running);
    assert_eq!(first[0].attempt, 1);
    assert_eq!(first[0].lease_owner.as_deref(), Some("w"));

    let rest = claim_batch(&pool, "w", &kinds(), 10, LEASE).await.unwrap();
    let names: Vec<_> = rest.iter().map(|job| job.input["name"].clone()).collect();
    assert_eq!(
        names,
        vec![json!("plain")],
        "the future job and the other kind stay queued"
    );
    assert_eq!(
        event_types(&pool, first[0].id).await,
        vec!["job.queued", "job.running"]
    );
    assert!(claim_batch(&pool, "w", &kinds(), 0, LEASE)
        .await
        .unwrap()
        .is_empty());
}
