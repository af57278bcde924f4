//! Helpers shared by the queue's integration tests. Each test gets its own database from
//! `#[sqlx::test]`, migrated with `sentinel_queue::MIGRATOR`.
#![allow(clippy::unwrap_used, dead_code)] // Tests fail loudly on purpose; not every test uses every helper.

use std::time::Duration;

use sentinel_queue::{enqueue_many, tenant::create_tenant, Claimable, NewJob};
use serde_json::json;
use sqlx::PgPool;
use uuid::Uuid;

pub const KIND: &str = "test.noop";
pub const LEASE: Duration = Duration::from_secs(30);

pub fn kinds() -> Claimable {
    Claimable::new(&[KIND])
}

pub async fn tenant(pool: &PgPool, name: &str) -> Uuid {
    create_tenant(pool, name, 1_000, 1_000)
        .await
        .expect("create tenant")
}

/// Enqueues `n` jobs of [`KIND`] for `tenant_id` in batches and returns their ids in order.
pub async fn enqueue_n(pool: &PgPool, tenant_id: Uuid, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| NewJob::new(tenant_id, KIND, json!({ "i": i })))
        .collect();
    for chunk in jobs.chunks(1_000) {
        let resolved = enqueue_many(pool, chunk).await.expect("enqueue_many");
        ids.extend(resolved.into_iter().map(|e| e.id));
    }
    ids
}

pub async fn count_jobs(pool: &PgPool, status: &str) -> i64 {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM jobs WHERE status = $1"#,
        status
    )
    .fetch_one(pool)
    .await
    .expect("count jobs")
}

pub async fn event_types(pool: &PgPool, job_id: i64) -> Vec<String> {
    sqlx::query_scalar!(
        "SELECT type FROM events WHERE job_id = $1 ORDER BY seq",
        job_id
    )
    .fetch_all(pool)
    .await
    .expect("read events")
}

/// Moves a job's lease into the past, as if its worker had stopped heartbeating long ago.
pub async fn expire_lease(pool: &PgPool, job_id: i64) {
    sqlx::query!(
        "UPDATE jobs SET lease_expires_at = now() - interval '1 second' WHERE id = $1",
        job_id
    )
    .execute(pool)
    .await
    .expect("expire lease");
}

/// Makes a job that waits for its backoff runnable now.
pub async fn make_due(pool: &PgPool, job_id: i64) {
    sqlx::query!("UPDATE jobs SET run_at = now() WHERE id = $1", job_id)
        .execute(pool)
        .await
        .expect("make due");
}
