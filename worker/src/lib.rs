//! Sentinel's worker process. Six claim lanes, each with its own slots, share one LISTEN
//! connection (see [`lanes`]):
//! - the deterministic lane claims new healing jobs (`webhook.inbound`, `payload.heal`) in batches
//!   of `SENTINEL_HEAL_BATCH`, finishes those that adapter or repair heals and that need no reply,
//!   and hands the rest on: to the model's stages (`jobs.stage = 'llm_heal'` or `'model'`) or to
//!   the agent lane (`'agent'`);
//! - two model lanes hold at most `SENTINEL_MAX_SEQS` jobs together, the sequences the model runs
//!   at once, so a burst of messages never becomes a burst of generations. The LLM healing lane
//!   (payloads only the LLM step can heal, `jobs.stage = 'llm_heal'`) has a share of them,
//!   `SENTINEL_HEAL_SEQS`; the reply lane (`llm.generate`, and the built-in agent's replies) has
//!   the rest, so healing generations never take the slots replies wait for (see
//!   [`lanes::heal_share`]). With a single slot, or `SENTINEL_HEAL_SEQS=0`, the reply lane takes
//!   both and the healing lane does not run;
//! - the delivery lane (`reply.deliver`) holds at most `SENTINEL_DELIVERY_SLOTS` jobs, so a slow
//!   platform API never takes a sequence slot;
//! - the agent lane takes the messages of sources whose agent is external or forward (`jobs.stage =
//!   'agent'`) and appends them to their conversations, with `SENTINEL_DELIVERY_SLOTS` slots; it
//!   never runs the model;
//! - the forward lane POSTs `agent.forward` jobs to the tenants' agents, `SENTINEL_FORWARD_SLOTS`
//!   at once, tenants taking turns, and never more than a source's `max_in_flight` nor a tenant's
//!   `SENTINEL_FORWARD_TENANT_MAX` across all workers (see [`lanes::forward_tenant_max`]).
//!
//! Beside them run the rescuer, which requeues jobs whose worker vanished, retention, the turn
//! starter (`sentinel_queue::conversations::run_starter`: one turn at a time per conversation,
//! `agent.reply`, `agent.turn` or `agent.forward` by the source's agent) and the typing indicator
//! ([`typing`]).
//!
//! The modules depend on each other in one direction: [`lanes`] run the handlers in [`jobs`] (one
//! module per job kind), which use [`model`] (the LLM and its generations), [`services`] (what
//! every handler shares), [`outbox`] and [`clients`]; a handler says how its attempt ended with a
//! `sentinel_queue::JobError`, and the lanes decide what that means for the job
//! (`sentinel_queue::outcome`).

pub mod attempt;
pub mod clients;
pub mod config;
pub mod health;
pub mod jobs;
pub mod lanes;
pub mod model;
pub mod outbox;
pub mod services;
pub mod typing;

use std::{sync::Arc, time::Duration};

use anyhow::Context;
use sentinel_queue::{
    conversations, db, rescue::run_rescuer, retention::run_retention, Listener, JOBS_CHANNEL,
};
use sqlx::postgres::PgConnectOptions;
use tokio::sync::watch;

use crate::model::{
    admission,
    llm::{self, Llm, ModelConfig},
};
pub use crate::{
    config::{vram_budget_from_env, Config},
    services::Services,
};

/// Loads the model, then runs the worker until `shutdown` turns true.
pub async fn run(mut config: Config, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let model = match config.vram_budget {
        Some(budget) => {
            if config.paged_attn_mb.is_some() {
                anyhow::bail!(
                    "set SENTINEL_VRAM_BUDGET_MB or SENTINEL_PAGED_ATTN_MB, not both: the budget sizes the KV pool"
                );
            }
            llm::check_model_file(&config.model)?;
            let plan = admission::admit(&config.model, budget)?;
            config.max_slots = plan.slots;
            ModelConfig::admitted(config.model.clone(), plan.slots, Some(&plan))
        }
        None => ModelConfig {
            paged_attn_mb: config.paged_attn_mb,
            ..ModelConfig::admitted(config.model.clone(), config.max_slots, None)
        },
    };
    // The LLM healing step's slots, on an engine of their own unless SENTINEL_HEAL_ENGINE=shared;
    // the replies' engine then runs only the replies' slots.
    let sizes = lanes::Sizes::of(&config);
    let model = if config.own_heal_engine && sizes.llm_heal > 0 {
        ModelConfig {
            max_seqs: sizes.model,
            heal_seqs: sizes.llm_heal,
            ..model
        }
    } else {
        model
    };
    let llm = Llm::load(&model).await?;
    // statement_timeout and lock_timeout on every connection (SENTINEL_DB_*_TIMEOUT_MS), and a
    // pooler in front of DATABASE_URL (SENTINEL_DB_POOLER, SENTINEL_DATABASE_DIRECT_URL).
    let connections = db::Connections::from_env(&config.database_url, db::DbTimeouts::from_env()?)?;
    run_connected(config, connections, Some(Arc::new(llm)), shutdown).await
}

/// Runs the worker with an already loaded model (or none: then the jobs that need one fail with
/// `no_model`).
pub async fn run_with(
    config: Config,
    options: PgConnectOptions,
    llm: Option<Arc<Llm>>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    run_connected(config, db::Connections::direct(options), llm, shutdown).await
}

/// [`run_with`] on the connections given: queries on `pooled`, LISTEN on `direct`.
pub async fn run_connected(
    config: Config,
    mut connections: db::Connections,
    llm: Option<Arc<Llm>>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    connections.locate_primary().await;
    let pool = connections.pool(6, Duration::from_secs(5));
    if config.auto_migrate {
        db::migrate_on(&connections.direct).await?;
    }
    sentinel_queue::tables::ping(&pool)
        .await
        .context("connecting to DATABASE_URL")?;
    db::check_schema(&pool).await?;
    let services = Arc::new(Services::new(pool.clone(), llm, &config)?);
    let sizes = lanes::Sizes::of(&config);
    tracing::info!(
        worker.id = %config.worker_id,
        worker.heal_batch = config.heal_batch,
        worker.model_slots = config.max_slots,
        worker.llm_heal_slots = sizes.llm_heal,
        worker.delivery_slots = config.delivery_slots,
        worker.forward_slots = config.forward_slots,
        worker.forward_tenant_max = sizes.forward_tenant_max,
        worker.forward_proxy = config.forward_proxy.is_some(),
        "worker started"
    );
    let failover = connections.spawn_failover(shutdown.clone());
    let (listener, listen_task) = Listener::spawn_on(
        connections.listen_pool(),
        &[JOBS_CHANNEL, conversations::TURNS_CHANNEL],
        shutdown.clone(),
    );
    let mut tasks = lanes::spawn(&pool, &config, &services, &listener, &shutdown);
    tasks.push(tokio::spawn(run_rescuer(
        pool.clone(),
        lanes::rescue_interval(config.lease),
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(conversations::run_starter(
        pool.clone(),
        listener.waiter(conversations::TURNS_CHANNEL),
        config.poll_interval,
        shutdown.clone(),
    )));
    tasks.push(tokio::spawn(typing::run(
        services.clone(),
        shutdown.clone(),
    )));
    if let Some(path) = config.health_file.clone() {
        tokio::spawn(health::beat(pool.clone(), path, shutdown.clone()));
    }
    tasks.push(tokio::spawn(run_retention(
        pool.clone(),
        config.retention,
        Duration::from_secs(300),
        shutdown,
    )));
    tasks.extend(failover);
    for task in tasks {
        let _ = task.await;
    }
    let _ = listen_task.await;
    pool.close().await;
    tracing::info!("worker stopped");
    Ok(())
}
