//! Enqueueing: dedupe under concurrency, batches, and enqueueing inside a caller's transaction.
#![allow(clippy::unwrap_used)] // Tests and benchmarks fail loudly on purpose.

mod common;

use std::collections::HashSet;

use common::{count_jobs, event_types, tenant, KIND};
use sentinel_queue::{enqueue, enqueue_many, JobStatus, NewJob};
use serde_json::json;
use sqlx::{postgres::PgPoolOptions, PgPool};

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn fifty_concurrent_identical_enqueues_make_one_row(
    pool_options: PgPoolOptions,
    connect_options: sqlx::postgres::PgConnectOptions,
) {
    let pool = pool_options
        .max_connections(16)
        .connect_with(connect_options)
        .await
        .unwrap();
    let tenant_id = tenant(&pool, "acme").await;
    let job = NewJob::new(tenant_id, KIND, json!({"text": "hi"})).with_dedupe_key("update-1");

    let results = futures::future::join_all((0..50).map(|_| {
        let pool = pool.clone();
        let job = job.clone();
        tokio::spawn(async move { enqueue(&pool, &job).await })
    }))
    .await;

    let resolved: Vec<_> = results
        .into_iter()
        .map(|joined| joined.unwrap().unwrap())
        .collect();
    let ids: HashSet<i64> = resolved.iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 1, "every caller must see the same job id");
    assert_eq!(resolved.iter().filter(|e| e.inserted).count(), 1);
    assert_eq!(count_jobs(&pool, "queued").await, 1);
    let job_id = *ids.iter().next().unwrap();
    assert_eq!(event_types(&pool, job_id).await, vec!["job.queued"]);
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_batch_resolves_each_row_in_order_and_folds_duplicates(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let existing = enqueue(
        &pool,
        &NewJob::new(tenant_id, KIND, json!({})).with_dedupe_key("seen-before"),
    )
    .await
    .unwrap();

    let batch = vec![
        NewJob::new(tenant_id, KIND, json!({"n": 0})),
        NewJob::new(tenant_id, KIND, json!({"n": 1})).with_dedupe_key("a"),
        NewJob::new(tenant_id, KIND, json!({"n": 2})).with_dedupe_key("seen-before"),
        NewJob::new(tenant_id, KIND, json!({"n": 3})).with_dedupe_key("a"),
        NewJob::new(tenant_id, KIND, json!({"n": 4})),
    ];
    let resolved = enqueue_many(&pool, &batch).await.unwrap();

    assert_eq!(resolved.len(), 5);
    assert!(resolved[0].inserted && resolved[1].inserted && resolved[4].inserted);
    assert!(!resolved[2].inserted && !resolved[3].inserted);
    assert_eq!(resolved[2].id, existing.id);
    assert_eq!(resolved[3].id, resolved[1].id);
    assert_ne!(resolved[0].id, resolved[4].id);
    assert!(resolved.iter().all(|e| e.status == JobStatus::Queued));
    // The row written for key "a" is the first one of the batch.
    let input = sqlx::query_scalar!("SELECT input FROM jobs WHERE id = $1", resolved[1].id)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(input, json!({"n": 1}));
    assert_eq!(count_jobs(&pool, "queued").await, 4);
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn the_same_key_under_another_source_or_tenant_is_another_job(pool: PgPool) {
    let a = tenant(&pool, "a").await;
    let b = tenant(&pool, "b").await;
    let first = enqueue(&pool, &NewJob::new(a, KIND, json!({})).with_dedupe_key("k"))
        .await
        .unwrap();
    let other_tenant = enqueue(&pool, &NewJob::new(b, KIND, json!({})).with_dedupe_key("k"))
        .await
        .unwrap();
    assert!(first.inserted && other_tenant.inserted);
    assert_ne!(first.id, other_tenant.id);
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn enqueue_inside_a_rolled_back_transaction_leaves_nothing(pool: PgPool) {
    let tenant_id = tenant(&pool, "acme").await;
    let mut tx = pool.begin().await.unwrap();
    let inside = enqueue(&mut *tx, &NewJob::new(tenant_id, KIND, json!({})))
        .await
        .unwrap();
    assert!(inside.inserted);
    tx.rollback().await.unwrap();

    assert_eq!(count_jobs(&pool, "queued").await, 0);
    let events = sqlx::query_scalar!(r#"SELECT count(*) AS "n!" FROM events"#)
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(events, 0, "the event must roll back with the job");
}
