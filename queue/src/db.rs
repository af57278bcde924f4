//! Connecting to Postgres and running the migrations, the same way in every binary.

use std::time::Duration;

use anyhow::Context;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgExecutor, PgPool,
};

use crate::kinds;

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

/// How long any one statement may run, and wait for a lock, on a Sentinel connection
/// (`statement_timeout` and `lock_timeout`, set when it connects). Every request path and lane
/// takes its locks with `SKIP LOCKED` or `NOWAIT`; these are the backstop that keeps a stuck
/// statement or an unexpected lock wait from holding a pooled connection for long. A statement
/// that runs into one fails (SQLSTATE 57014 or 55P03) and is retried by its caller or answered
/// 503. Migrations run without them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DbTimeouts {
    pub statement: Duration,
    pub lock: Duration,
}

impl Default for DbTimeouts {
    fn default() -> Self {
        Self {
            statement: Duration::from_secs(30),
            lock: Duration::from_secs(5),
        }
    }
}

impl DbTimeouts {
    /// `SENTINEL_DB_STATEMENT_TIMEOUT_MS` and `SENTINEL_DB_LOCK_TIMEOUT_MS` (milliseconds, at
    /// least 1), or the defaults.
    pub fn from_env() -> anyhow::Result<Self> {
        let defaults = Self::default();
        let millis = |name: &str, default: Duration| -> anyhow::Result<Duration> {
            let ms: u64 = crate::config::var_or(name, default.as_millis() as u64)?;
            anyhow::ensure!(ms > 0, "{name} must be at least 1 (milliseconds)");
            Ok(Duration::from_millis(ms))
        };
        Ok(Self {
            statement: millis("SENTINEL_DB_STATEMENT_TIMEOUT_MS", defaults.statement)?,
            lock: millis("SENTINEL_DB_LOCK_TIMEOUT_MS", defaults.lock)?,
        })
    }

    /// `options` with these timeouts as the session's settings.
    pub fn apply(&self, options: PgConnectOptions) -> PgConnectOptions {
        options.options([
            (
                "statement_timeout",
                self.statement.as_millis().to_string().as_str(),
            ),
            ("lock_timeout", self.lock.as_millis().to_string().as_str()),
        ])
    }
}

/// A pool whose `acquire` gives up after `acquire_timeout`, so a caller facing an unreachable or
/// exhausted database fails fast instead of hanging.
pub fn pool(options: PgConnectOptions, max_connections: u32, acquire_timeout: Duration) -> PgPool {
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(acquire_timeout)
        .connect_lazy_with(options)
}

/// Applies the pending migrations in `migrations/`, over a connection of its own without the
/// statement and lock timeouts (an index build may take longer than any request should).
pub async fn migrate(pool: &PgPool) -> anyhow::Result<()> {
    // A later `-c` setting wins over an earlier one of the same name.
    let options = (*pool.connect_options())
        .clone()
        .options([("statement_timeout", "0"), ("lock_timeout", "0")]);
    let migrations = PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(30))
        .connect_with(options)
        .await
        .context("connecting to run the migrations")?;
    let applied = crate::MIGRATOR
        .run(&migrations)
        .await
        .context("running the migrations in migrations/");
    let checked = match applied {
        Ok(()) => sync_builtin_kinds(&migrations).await,
        Err(error) => Err(error),
    };
    migrations.close().await;
    checked
}

/// Makes the schema's list of the kinds Sentinel's own worker runs (`sentinel_builtin_kinds()`)
/// this build's [`kinds::WORKER_KINDS`], rebuilding the partial index that reads it when it
/// changed (`sync_sentinel_builtin_kinds()`, migrations/…_start_jobs.sql), then checks the result.
/// Part of every migration run, so a built-in kind is added in Rust alone.
pub async fn sync_builtin_kinds(pool: &PgPool) -> anyhow::Result<()> {
    let build: Vec<String> = kinds::WORKER_KINDS
        .iter()
        .map(|&kind| kind.to_owned())
        .collect();
    let changed = sqlx::query_scalar!(
        r#"SELECT sync_sentinel_builtin_kinds($1) AS "changed!""#,
        &build
    )
    .fetch_one(pool)
    .await
    .context("setting sentinel_builtin_kinds() to this build's WORKER_KINDS")?;
    if changed {
        tracing::info!(kinds = ?build, "the schema's built-in job kinds are now this build's");
    }
    check_schema(pool).await
}

/// Checks, at start-up, that the database agrees with this build on what the code and the schema
/// must both know: the kinds Sentinel's own worker runs. The schema reads them from
/// `sentinel_builtin_kinds()` (`builtin_job_kind()`, the partial index `jobs_worker_claim` and
/// the queries that must match it); this build from [`kinds::WORKER_KINDS`]. A process whose list
/// differs would send the worker API's kinds to the built-in worker, or the reverse, so it refuses
/// to start, saying both lists. Migrating with this build ([`migrate`]) makes them agree.
pub async fn check_schema(executor: impl PgExecutor<'_>) -> anyhow::Result<()> {
    let lists = sqlx::query!(
        r#"SELECT sentinel_builtin_kinds() AS "builtin!", sentinel_turn_kinds() AS "turns!""#
    )
    .fetch_one(executor)
    .await
    .context("reading sentinel_builtin_kinds() (is the database migrated?)")?;
    let (in_database, turn_kinds) = (lists.builtin, lists.turns);
    let mut database: Vec<&str> = in_database.iter().map(String::as_str).collect();
    database.sort_unstable();
    let mut build = kinds::WORKER_KINDS.to_vec();
    build.sort_unstable();
    anyhow::ensure!(
        turn_kinds == kinds::TURN_KINDS,
        "the database's turn kinds, sentinel_turn_kinds() = {turn_kinds:?}, are not this build's \
         sentinel_queue::kinds::TURN_KINDS = {:?}: migrate the database with this build",
        kinds::TURN_KINDS
    );
    anyhow::ensure!(
        database == build,
        "the database's built-in job kinds, sentinel_builtin_kinds() = {database:?}, are not this \
         build's sentinel_queue::kinds::WORKER_KINDS = {build:?}: migrate the database with this \
         build (its `migrate` command), or run the build the database was migrated with"
    );
    Ok(())
}

/// The `migrate` subcommand of every binary: applies the migrations to `DATABASE_URL`.
pub async fn migrate_from_env() -> anyhow::Result<()> {
    let url = crate::config::required("DATABASE_URL")?;
    let pool = pool(connect_options(&url)?, 1, Duration::from_secs(10));
    migrate(&pool).await?;
    pool.close().await;
    Ok(())
}
