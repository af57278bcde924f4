//! Sentinel's worker process. Until the LLM job handlers land it runs the queue's maintenance:
//! the rescuer that requeues jobs whose worker vanished, and retention.

use std::time::Duration;

use anyhow::Context;
use sentinel_queue::{config, db, rescue::run_rescuer, retention::run_retention};
use tokio::sync::watch;

/// The worker's settings, read once from the environment at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub worker_id: String,
    pub lease: Duration,
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
            auto_migrate: config::flag("SENTINEL_AUTO_MIGRATE")?,
            retention: Duration::from_secs(retention_days.max(1) * 86_400),
        })
    }
}

/// Runs the worker until `shutdown` turns true.
pub async fn run(config: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let options = db::connect_options(&config.database_url)?;
    let pool = db::pool(options, 4, Duration::from_secs(5));
    if config.auto_migrate {
        db::migrate(&pool).await?;
    }
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .context("connecting to DATABASE_URL")?;
    tracing::info!(worker.id = %config.worker_id, "worker started: rescuer and retention running");
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
    let _ = tokio::join!(rescuer, retention);
    pool.close().await;
    tracing::info!("worker stopped");
    Ok(())
}
