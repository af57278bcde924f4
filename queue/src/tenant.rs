//! Tenants as the queue sees them: created, suspended, and the owners of jobs.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Creates an active tenant and returns its id.
pub async fn create_tenant(
    executor: impl PgExecutor<'_>,
    name: &str,
    rate_limit_per_sec: i32,
    burst: i32,
) -> sqlx::Result<Uuid> {
    sqlx::query_scalar!(
        "INSERT INTO tenants (name, rate_limit_per_sec, burst) VALUES ($1, $2, $3) RETURNING id",
        name,
        rate_limit_per_sec,
        burst
    )
    .fetch_one(executor)
    .await
}
