//! Connecting to Postgres and running the migrations, the same way in every binary.

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};

/// Parses `DATABASE_URL`, naming the variable in the error.
///
/// Every Sentinel connection plans each statement for its actual parameters: the queue's
/// statements take arrays and limits whose sizes change the best plan, and Postgres's generic plan
/// for them (chosen after five executions of a prepared statement) was measured 3-4x slower.
///
/// JIT compilation is off ([`SESSION_OPTIONS`]): the claim's row estimates (a per-tenant share
/// Postgres cannot see at plan time) put its cost past `jit_above_cost`, and compiling it took
/// 86 ms of a 146 ms claim of 500 jobs; without JIT the same claim took 33 ms.
pub fn connect_options(database_url: &str) -> anyhow::Result<PgConnectOptions> {
    Ok(database_url
        .parse::<PgConnectOptions>()
        .context("DATABASE_URL is not a valid postgres:// URL")?
        .options(SESSION_OPTIONS))
}

/// The session settings of every Sentinel connection (see [`connect_options`]).
pub const SESSION_OPTIONS: [(&str, &str); 2] =
    [("plan_cache_mode", "force_custom_plan"), ("jit", "off")];

/// A pool whose `acquire` gives up after `acquire_timeout`, so a caller facing an unreachable or
/// exhausted database fails fast instead of hanging.
pub fn pool(options: PgConnectOptions, max_connections: u32, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options)
}

/// Applies the pending migrations in `migrations/`.
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    crate::MIGRATOR
        .run(pool)
        .await
        .context("running the migrations in migrations/")
}

/// The `migrate` subcommand of every binary: applies the migrations to `DATABASE_URL`.
pub async fn migrate_from_env() -> anyhow::Result<()> {
    let url = crate::config::required("DATABASE_URL")?;
    let pool = pool(connect_options(&url)?, 1, Duration::from_secs(10));
    migrate(&pool).await?;
    pool.close().await;
    Ok(())
}
