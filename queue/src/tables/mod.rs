//! The statements of each table, one module per table (River keeps one file per table behind its
//! driver). A statement lives with the table it writes, or, when it only reads, the table it
//! mainly reads. The gateway and the workers call these functions; neither holds SQL text.
//!
//! The queue's own lifecycle statements (enqueue, claim, finish, rescue, retention) stay in their
//! modules and in `queue/sql/`.

pub mod api_keys;
pub mod conversations;
pub mod events;
pub mod ingress_drops;
pub mod job_attempts;
pub mod jobs;
pub mod limits;
pub mod sources;
pub mod tenants;

use sqlx::PgExecutor;

/// One round trip to the database: `Ok` when it answers.
pub async fn ping(executor: impl PgExecutor<'_>) -> sqlx::Result<()> {
    sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
        .fetch_one(executor)
        .await
        .map(|_| ())
}
