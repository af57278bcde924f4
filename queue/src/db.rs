//! Connecting to Postgres and running the migrations, the same way in every binary.

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgExecutor, PgPool,
};
use tokio::sync::watch;

use crate::{
    failover::{self, Failover},
    kinds,
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

/// The session settings of every Sentinel connection (see [`connect_options`]). Behind a pooler
/// in transaction mode, where no session setting survives, the same settings are the database's
/// defaults (migrations/…_shared_limits.sql sets them).
pub const SESSION_OPTIONS: [(&str, &str); 2] =
    [("plan_cache_mode", "force_custom_plan"), ("jit", "off")];

/// What sits between Sentinel and Postgres on `DATABASE_URL` (`SENTINEL_DB_POOLER`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pooler {
    /// Nothing, or a pooler in session mode: every connection is a session of its own.
    None,
    /// A pooler in transaction mode (PgBouncer's `pool_mode = transaction`): a server connection
    /// is this process's only for one transaction or one statement outside one.
    Transaction,
}

/// The connections of a gateway or a worker: `pooled` for every query, `direct` for what needs a
/// session of its own (LISTEN, and the migrations' advisory lock). Without a pooler both are
/// `DATABASE_URL`. A URL naming several servers (`postgres://u@a:5432,b:5432/db`) makes the pools
/// follow whichever is the primary ([`Failover`]).
#[derive(Debug, Clone)]
pub struct Connections {
    pub pooled: PgConnectOptions,
    pub direct: PgConnectOptions,
    pub pooler: Pooler,
    pooled_hosts: Vec<PgConnectOptions>,
    direct_hosts: Vec<PgConnectOptions>,
    failover: Option<Arc<Failover>>,
}

impl Connections {
    /// Both on `options`, as without a pooler.
    pub fn direct(options: PgConnectOptions) -> Self {
        Self {
            pooled: options.clone(),
            direct: options,
            pooler: Pooler::None,
            pooled_hosts: Vec::new(),
            direct_hosts: Vec::new(),
            failover: None,
        }
    }

    /// From `database_url` and the environment: `SENTINEL_DB_POOLER` (`none`, the default, or
    /// `transaction`), `SENTINEL_DATABASE_DIRECT_URL` (the server itself, for LISTEN and the
    /// migrations; required with a transaction pooler, else `database_url`), and the timeouts.
    ///
    /// Behind a transaction pooler no session state is used: statements are prepared unnamed and
    /// sent with the statement that runs them (the statement cache is off; see
    /// vendor/sqlx-postgres/SENTINEL.md), the planner settings are the database's defaults, and
    /// `statement_timeout` and `lock_timeout` are the role's or the pooler's (docs/SCALING.md),
    /// never sent as startup options a pooler would refuse or lose.
    ///
    /// When the direct URL names several servers, they are followed across a failover; the pooled
    /// URL follows too when it names as many (one pooler in front of them needs nothing).
    pub fn from_env(database_url: &str, timeouts: DbTimeouts) -> anyhow::Result<Self> {
        let pooler =
            match crate::config::var_or("SENTINEL_DB_POOLER", String::from("none"))?.as_str() {
                "none" | "session" => Pooler::None,
                "transaction" => Pooler::Transaction,
                other => anyhow::bail!(
                    "SENTINEL_DB_POOLER must be `none` or `transaction` (a pooler in transaction \
                 mode such as PgBouncer's pool_mode = transaction), not {other:?}"
                ),
            };
        let direct_url = std::env::var("SENTINEL_DATABASE_DIRECT_URL")
            .ok()
            .filter(|url| !url.trim().is_empty());
        anyhow::ensure!(
            pooler == Pooler::None || direct_url.is_some(),
            "SENTINEL_DB_POOLER=transaction needs SENTINEL_DATABASE_DIRECT_URL, the server's own \
             URL: LISTEN and the migrations need a session of their own"
        );
        let direct_hosts = failover::split_hosts(direct_url.as_deref().unwrap_or(database_url))?
            .iter()
            .map(|url| {
                connect_options(url)
                    .map(|options| timeouts.apply(options))
                    .context("SENTINEL_DATABASE_DIRECT_URL (or DATABASE_URL)")
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let pooled_hosts = failover::split_hosts(database_url)?
            .iter()
            .map(|url| match pooler {
                Pooler::None => connect_options(url).map(|options| timeouts.apply(options)),
                Pooler::Transaction => Ok(url
                    .parse::<PgConnectOptions>()
                    .context("DATABASE_URL is not a valid postgres:// URL")?
                    .statement_cache_capacity(0)),
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let failover = (direct_hosts.len() > 1).then(|| Failover::new(direct_hosts.clone()));
        Ok(Self {
            pooled: pooled_hosts[0].clone(),
            direct: direct_hosts[0].clone(),
            pooler,
            pooled_hosts,
            direct_hosts,
            failover,
        })
    }

    /// With several servers: points `pooled` and `direct` at the one that is the primary now.
    pub async fn locate_primary(&mut self) {
        let Some(failover) = &self.failover else {
            return;
        };
        let index = failover.locate().await;
        self.direct = self.direct_hosts[index].clone();
        if self.pooled_hosts.len() == self.direct_hosts.len() {
            self.pooled = self.pooled_hosts[index].clone();
        }
    }

    /// A pool of `max_connections` on `pooled`, following the primary.
    pub fn pool(&self, max_connections: u32, acquire_timeout: Duration) -> PgPool {
        let pool = pool(self.pooled.clone(), max_connections, acquire_timeout);
        if let Some(failover) = &self.failover {
            failover.follow(&pool, self.pooled_hosts.clone());
        }
        pool
    }

    /// The LISTEN connection's pool (one connection on `direct`), following the primary.
    pub fn listen_pool(&self) -> PgPool {
        let pool = crate::wakeup::listen_pool(self.direct.clone());
        if let Some(failover) = &self.failover {
            let hosts = self
                .direct_hosts
                .iter()
                .map(|options| {
                    options
                        .clone()
                        .application_name(crate::wakeup::LISTENER_APPLICATION_NAME)
                })
                .collect();
            failover.follow(&pool, hosts);
        }
        pool
    }

    /// The task that moves the pools to a new primary, when several servers are named.
    pub fn spawn_failover(
        &self,
        shutdown: watch::Receiver<bool>,
    ) -> Option<tokio::task::JoinHandle<()>> {
        self.failover
            .clone()
            .map(|failover| tokio::spawn(failover.run(shutdown)))
    }
}

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
    migrate_on(&pool.connect_options()).await
}

/// [`migrate`] on a connection made with `options` (a direct one: the migrator holds a session
/// advisory lock).
pub async fn migrate_on(options: &PgConnectOptions) -> anyhow::Result<()> {
    // A later `-c` setting wins over an earlier one of the same name.
    let options = options
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

/// The `migrate` subcommand of every binary: applies the migrations to
/// `SENTINEL_DATABASE_DIRECT_URL`, or `DATABASE_URL` when it is not set.
pub async fn migrate_from_env() -> anyhow::Result<()> {
    let url = crate::config::required("DATABASE_URL")?;
    let mut connections = Connections::from_env(&url, DbTimeouts::from_env()?)?;
    connections.locate_primary().await;
    migrate_on(&connections.direct).await
}
