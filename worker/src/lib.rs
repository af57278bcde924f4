//! Sentinel's worker process: the claim loop with the deterministic healing jobs
//! (`payload.heal`, `webhook.inbound`), the rescuer that requeues jobs whose worker vanished, and
//! retention. The LLM jobs come with the mistral.rs integration.

pub mod heal_job;
pub mod runner;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use sentinel_queue::{
    config, db, kinds, rescue::run_rescuer, retention::run_retention, Listener, JOBS_CHANNEL,
};
use tokio::sync::watch;

use crate::runner::{Handler, RunnerConfig};

/// The kinds this worker claims.
pub const HANDLED_KINDS: [&str; 2] = [kinds::WEBHOOK_INBOUND, kinds::PAYLOAD_HEAL];

/// The handler for [`HANDLED_KINDS`].
pub fn handler() -> Handler {
    Arc::new(|job, _context| Box::pin(async move { heal_job::handle(&job) }))
}

/// The worker's settings, read once from the environment at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub worker_id: String,
    pub lease: Duration,
    /// Jobs in flight at once (`SENTINEL_MAX_SEQS`): the claim slots.
    pub max_slots: usize,
    pub poll_interval: Duration,
    pub auto_migrate: bool,
    pub retention: Duration,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        let default_id = format!(
            "{}-{}",
            std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
            std::process::id()
        );
        let retention_days: u64 = config::var_or("SENTINEL_RETENTION_DAYS", 7)?;
        Ok(Self {
            database_url: config::required("DATABASE_URL")?,
            worker_id: config::var_or("SENTINEL_WORKER_ID", default_id)?,
            lease: config::secs_or("SENTINEL_LEASE_SECS", 60)?,
            max_slots: match config::var_or("SENTINEL_MAX_SEQS", 4usize)? {
                0 => anyhow::bail!("SENTINEL_MAX_SEQS must be at least 1"),
                n => n,
            },
            poll_interval: Duration::from_millis(config::var_or(
                "SENTINEL_POLL_INTERVAL_MS",
                1_000,
            )?),
            auto_migrate: config::flag("SENTINEL_AUTO_MIGRATE")?,
            retention: Duration::from_secs(retention_days.max(1) * 86_400),
        })
    }
}

/// Runs the worker until `shutdown` turns true.
pub async fn run(config: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let options = db::connect_options(&config.database_url)?;
    let pool = db::pool(options.clone(), 4, Duration::from_secs(5));
    if config.auto_migrate {
        db::migrate(&pool).await?;
    }
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .context("connecting to DATABASE_URL")?;
    tracing::info!(worker.id = %config.worker_id, worker.slots = config.max_slots, "worker started");
    let (listener, listen_task) = Listener::spawn(options, &[JOBS_CHANNEL], shutdown.clone());
    let runner = tokio::spawn(runner::run(
        pool.clone(),
        RunnerConfig {
            worker_id: config.worker_id.clone(),
            kinds: HANDLED_KINDS.iter().map(|kind| kind.to_string()).collect(),
            max_slots: config.max_slots,
            lease: config.lease,
            poll_interval: config.poll_interval,
        },
        listener.waiter(JOBS_CHANNEL),
        handler(),
        shutdown.clone(),
    ));
    let rescuer = tokio::spawn(run_rescuer(
        pool.clone(),
        (config.lease / 4).max(Duration::from_secs(1)),
        shutdown.clone(),
    ));
    let retention = tokio::spawn(run_retention(
        pool.clone(),
        config.retention,
        Duration::from_secs(300),
        shutdown,
    ));
    let _ = tokio::join!(runner, rescuer, retention, listen_task);
    pool.close().await;
    tracing::info!("worker stopped");
    Ok(())
}
