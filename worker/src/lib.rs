//! Sentinel's worker process. Three claim lanes share one LISTEN connection:
//! - the deterministic lane claims new healing jobs (`webhook.inbound`, `payload.heal`) in batches
//!   of `SENTINEL_HEAL_BATCH`, finishes those that adapter or repair heals and that need no reply,
//!   and hands the rest to the model lane (`jobs.stage = 'model'`);
//! - the model lanes hold at most `SENTINEL_MAX_SEQS` jobs together, the sequences the model runs
//!   at once, so a burst of messages never becomes a burst of generations. The healing lane
//!   (payloads only the LLM step can heal, `jobs.stage = 'llm_heal'`) has a share of them,
//!   `SENTINEL_HEAL_SEQS`; the reply lane (`llm.generate`, and the agent's replies) has the rest,
//!   so healing generations never take the slots replies wait for (see [`heal_share`]);
//! - the delivery lane (`reply.deliver`) holds at most `SENTINEL_DELIVERY_SLOTS` jobs, so a slow
//!   platform API never takes a sequence slot;
//! - the agent lane takes the messages of sources whose agent is external or forward (`jobs.stage =
//!   'agent'`), reads the conversation's history and makes their `agent.turn` or `agent.forward`
//!   job, with `SENTINEL_DELIVERY_SLOTS` slots; it never runs the model;
//! - the forward lane POSTs `agent.forward` jobs to the tenants' agents, `SENTINEL_FORWARD_SLOTS`
//!   at once, tenants taking turns, and never more than a source's `max_in_flight` nor a tenant's
//!   `SENTINEL_FORWARD_TENANT_MAX` across all workers (see [`forward_tenant_max`]).
//!
//! Beside them run the rescuer, which requeues jobs whose worker vanished, and retention.

pub mod admission;
pub mod bench;
pub mod deliver;
pub mod forward;
pub mod generate_job;
pub mod gpu_memory;
pub mod heal_job;
pub mod heal_lane;
pub mod health;
pub mod llm;
pub mod progress;
pub mod reply;
pub mod requant;
pub mod runner;

use std::{path::PathBuf, sync::Arc, time::Duration};

use anyhow::Context;
use sentinel_queue::{
    agent::ForwardAllow, config, db, kinds, rescue::run_rescuer, retention::run_retention,
    Claimable, Listener, Stage, JOBS_CHANNEL,
};
use sqlx::{postgres::PgConnectOptions, PgPool};
use tokio::sync::watch;

use crate::{
    deliver::{ApiBases, Breakers, OutboxConfig},
    generate_job::fatal,
    heal_job::Lane,
    heal_lane::HealLaneConfig,
    llm::{Llm, ModelConfig},
    runner::{Claims, Handler, RunnerConfig},
};

/// The healing kinds: the deterministic lane claims them at stage `new`, the model lane at stage
/// `model`.
pub const HEAL_KINDS: [&str; 2] = [kinds::WEBHOOK_INBOUND, kinds::PAYLOAD_HEAL];
/// The kinds the delivery lane claims.
pub const DELIVERY_KINDS: [&str; 1] = [kinds::REPLY_DELIVER];

/// What the deterministic lane claims.
pub fn heal_claimable() -> Claimable {
    Claimable::new(&HEAL_KINDS)
}

/// What the model lane claims: `llm.generate`, and healing jobs handed off to it for the agent's
/// reply; with `llm_heal`, the LLM healing step too (a worker with no healing share).
pub fn model_claimable(llm_heal: bool) -> Claimable {
    let claimable = Claimable::new(&[kinds::LLM_GENERATE]).with(&HEAL_KINDS, Stage::Model);
    if llm_heal {
        claimable.with(&HEAL_KINDS, Stage::LlmHeal)
    } else {
        claimable
    }
}

/// What the healing share of the model's slots claims: the LLM healing step.
pub fn llm_heal_claimable() -> Claimable {
    Claimable::default().with(&HEAL_KINDS, Stage::LlmHeal)
}

/// What the agent lane claims: messages for an external or forwarded agent.
pub fn agent_claimable() -> Claimable {
    Claimable::default().with(&[kinds::WEBHOOK_INBOUND], Stage::Agent)
}

/// The model slots kept for the LLM healing step, out of `model_slots`: `configured`
/// (`SENTINEL_HEAL_SEQS`), else a quarter, at least one; always leaving one for replies. 0 when
/// the model has a single slot (or `SENTINEL_HEAL_SEQS=0`): then one lane takes both, and a
/// healing generation can hold the slot a reply waits for, for up to its wall-clock budget.
pub fn heal_share(model_slots: usize, configured: Option<usize>) -> usize {
    let wanted = configured.unwrap_or((model_slots / 4).max(1));
    wanted.min(model_slots.saturating_sub(1))
}

/// The forwards one tenant may have running at once, across all workers: `configured`
/// (`SENTINEL_FORWARD_TENANT_MAX`), else half of `forward_slots`, at least one. So a tenant whose
/// agent is slow holds at most half of a worker's forward slots, and another tenant's forward
/// finds one free.
pub fn forward_tenant_max(forward_slots: usize, configured: Option<usize>) -> usize {
    configured.unwrap_or(forward_slots / 2).max(1)
}

/// What every job handler shares.
pub struct Services {
    pub pool: PgPool,
    /// `None` only in tests that exercise the paths that never need it.
    pub llm: Option<Arc<Llm>>,
    /// The token budget of one generation (`SENTINEL_MAX_TOKENS`).
    pub max_tokens: usize,
    pub http: reqwest::Client,
    pub api_bases: ApiBases,
    /// The client that forwards messages to the tenants' agents (see [`forward::client`]).
    pub forward_http: reqwest::Client,
    /// The operator's allowlist for forward URLs (`SENTINEL_FORWARD_ALLOW`).
    pub forward_allow: Arc<ForwardAllow>,
    /// The outbox's settings and its circuit breakers, per platform and credential.
    pub outbox: Breakers,
}

impl Services {
    pub fn new(
        pool: PgPool,
        llm: Option<Arc<Llm>>,
        max_tokens: usize,
        api_bases: ApiBases,
        delivery_timeout: Duration,
        forwarding: forward::ClientSettings,
        outbox: OutboxConfig,
    ) -> anyhow::Result<Self> {
        let forward_allow = Arc::new(forwarding.allow);
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5).min(delivery_timeout))
            .timeout(delivery_timeout)
            .user_agent(concat!("sentinel-worker/", env!("CARGO_PKG_VERSION")))
            .build()
            .context("building the HTTP client")?;
        Ok(Self {
            pool,
            llm,
            max_tokens,
            http,
            api_bases,
            forward_http: forward::client(forward_allow.clone(), forwarding.proxy.as_deref())
                .context("building the forward client")?,
            forward_allow,
            outbox: Breakers::new(outbox),
        })
    }
}

/// The handler for every kind this worker claims.
pub fn handler(services: Arc<Services>) -> Handler {
    Arc::new(move |job, context| {
        let services = services.clone();
        Box::pin(async move {
            match job.kind.as_str() {
                kinds::WEBHOOK_INBOUND | kinds::PAYLOAD_HEAL => {
                    heal_job::handle(&services, &job, &context).await
                }
                kinds::LLM_GENERATE => generate_job::handle(&services, &job, &context).await,
                kinds::REPLY_DELIVER => deliver::handle(&services, &job).await,
                kinds::AGENT_FORWARD => forward::handle(&services, &job).await,
                other => fatal(
                    "unknown_kind",
                    format!("this worker does not handle {other} jobs"),
                ),
            }
        })
    })
}

/// The agent lane's handler: an inbound message for an external or forwarded agent.
pub fn agent_handler(services: Arc<Services>) -> Handler {
    Arc::new(move |job, context| {
        let services = services.clone();
        Box::pin(async move { heal_job::handle_in(&services, &job, &context, Lane::Agent).await })
    })
}

/// The worker's settings, read once from the environment at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub worker_id: String,
    pub lease: Duration,
    /// Sequences the model runs at once (`SENTINEL_MAX_SEQS`): the model lanes' claim slots.
    pub max_slots: usize,
    /// Of those, the slots kept for the LLM healing step (`SENTINEL_HEAL_SEQS`); `None` for the
    /// default share (see [`heal_share`]).
    pub heal_slots: Option<usize>,
    /// Deliveries in flight at once (`SENTINEL_DELIVERY_SLOTS`); the agent lane's slots too.
    pub delivery_slots: usize,
    /// Forwards to the tenants' agents in flight at once (`SENTINEL_FORWARD_SLOTS`).
    pub forward_slots: usize,
    /// Which private addresses and hosts forwards may reach (`SENTINEL_FORWARD_ALLOW`).
    pub forward_allow: ForwardAllow,
    /// Forwards one tenant may have running at once across all workers
    /// (`SENTINEL_FORWARD_TENANT_MAX`); `None` for half of `forward_slots` (see
    /// [`forward_tenant_max`]).
    pub forward_tenant_max: Option<usize>,
    /// The proxy forwards go through (`SENTINEL_FORWARD_PROXY`, checked by
    /// [`forward::check_proxy`]). None by default, whatever `HTTP_PROXY`, `HTTPS_PROXY` or
    /// `ALL_PROXY` say: a proxy resolves the agents' names itself, out of the allowlist's reach.
    pub forward_proxy: Option<String>,
    /// Healing jobs the deterministic lane claims at once (`SENTINEL_HEAL_BATCH`).
    pub heal_batch: usize,
    /// The most stored input and raw-body bytes one deterministic batch holds
    /// (`SENTINEL_HEAL_BATCH_BYTES`); a single larger job is still claimed alone.
    pub heal_batch_bytes: usize,
    pub delivery_timeout: Duration,
    /// The outbox's breaker and backoff (`SENTINEL_BREAKER_THRESHOLD`,
    /// `SENTINEL_BREAKER_COOLDOWN_MS`, `SENTINEL_BREAKER_MAX_COOLDOWN_MS`,
    /// `SENTINEL_DELIVERY_BACKOFF_MAX_MS`).
    pub outbox: OutboxConfig,
    /// The GGUF file (`SENTINEL_MODEL`).
    pub model: PathBuf,
    pub max_tokens: usize,
    /// The GPU's paged-attention KV pool in MB (`SENTINEL_PAGED_ATTN_MB`, `cuda` builds only).
    pub paged_attn_mb: Option<usize>,
    /// The GPU memory budget (`SENTINEL_VRAM_BUDGET_MB` and its knobs): when set, admission sizes
    /// the slots and the KV pool from it (see [`admission`]).
    pub vram_budget: Option<admission::Budget>,
    pub api_bases: ApiBases,
    pub poll_interval: Duration,
    pub auto_migrate: bool,
    pub retention: Duration,
    /// Where the liveness proof goes (`SENTINEL_HEALTH_FILE`); none when unset.
    pub health_file: Option<PathBuf>,
}

impl Config {
    /// The defaults, for `database_url`.
    pub fn new(database_url: String) -> Self {
        Self {
            database_url,
            worker_id: format!(
                "{}-{}",
                std::env::var("HOSTNAME").unwrap_or_else(|_| "worker".into()),
                std::process::id()
            ),
            lease: Duration::from_secs(60),
            max_slots: 4,
            heal_slots: None,
            delivery_slots: 16,
            forward_slots: 64,
            forward_allow: ForwardAllow::default(),
            forward_tenant_max: None,
            forward_proxy: None,
            heal_batch: 512,
            heal_batch_bytes: 64 * 1024 * 1024,
            delivery_timeout: Duration::from_secs(15),
            outbox: OutboxConfig::default(),
            model: PathBuf::from(llm::DEFAULT_MODEL_PATH),
            max_tokens: 128,
            paged_attn_mb: None,
            vram_budget: None,
            api_bases: ApiBases::default(),
            poll_interval: Duration::from_millis(1_000),
            auto_migrate: false,
            retention: Duration::from_secs(7 * 86_400),
            health_file: None,
        }
    }

    /// The defaults, overridden by the environment.
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::new(config::required("DATABASE_URL")?);
        let retention_days: u64 =
            config::var_or("SENTINEL_RETENTION_DAYS", d.retention.as_secs() / 86_400)?;
        let count = |name: &str, default: usize| at_least_one(name, config::var_or(name, default)?);
        Ok(Self {
            worker_id: config::var_or("SENTINEL_WORKER_ID", d.worker_id)?,
            lease: config::secs_or("SENTINEL_LEASE_SECS", d.lease.as_secs())?,
            max_slots: count("SENTINEL_MAX_SEQS", d.max_slots)?,
            heal_slots: match config::var_or("SENTINEL_HEAL_SEQS", String::new())?.as_str() {
                "" => None,
                value => Some(value.parse().with_context(|| {
                    format!("SENTINEL_HEAL_SEQS={value:?} is not a number of slots")
                })?),
            },
            delivery_slots: count("SENTINEL_DELIVERY_SLOTS", d.delivery_slots)?,
            forward_slots: count("SENTINEL_FORWARD_SLOTS", d.forward_slots)?,
            forward_allow: config::var_or("SENTINEL_FORWARD_ALLOW", String::new())?
                .parse()
                .map_err(|error| anyhow::anyhow!("SENTINEL_FORWARD_ALLOW: {error}"))?,
            forward_tenant_max: match config::var_or("SENTINEL_FORWARD_TENANT_MAX", String::new())?
                .as_str()
            {
                "" => None,
                value => Some(at_least_one(
                    "SENTINEL_FORWARD_TENANT_MAX",
                    value.parse().with_context(|| {
                        format!("SENTINEL_FORWARD_TENANT_MAX={value:?} is not a number of forwards")
                    })?,
                )?),
            },
            forward_proxy: match config::var_or("SENTINEL_FORWARD_PROXY", String::new())?.as_str() {
                "" => None,
                value => Some(
                    forward::check_proxy(value)
                        .map_err(|error| anyhow::anyhow!("SENTINEL_FORWARD_PROXY: {error}"))?,
                ),
            },
            heal_batch: count("SENTINEL_HEAL_BATCH", d.heal_batch)?,
            heal_batch_bytes: count("SENTINEL_HEAL_BATCH_BYTES", d.heal_batch_bytes)?,
            delivery_timeout: config::secs_or(
                "SENTINEL_DELIVERY_TIMEOUT_SECS",
                d.delivery_timeout.as_secs(),
            )?,
            outbox: OutboxConfig::from_env()?,
            model: config::var_or("SENTINEL_MODEL", d.model)?,
            max_tokens: count("SENTINEL_MAX_TOKENS", d.max_tokens)?,
            paged_attn_mb: match config::var_or("SENTINEL_PAGED_ATTN_MB", 0usize)? {
                0 => None,
                mb => Some(mb),
            },
            vram_budget: vram_budget_from_env()?,
            api_bases: d.api_bases.from_env()?,
            poll_interval: Duration::from_millis(config::var_or(
                "SENTINEL_POLL_INTERVAL_MS",
                d.poll_interval.as_millis() as u64,
            )?),
            auto_migrate: config::flag("SENTINEL_AUTO_MIGRATE")?,
            retention: Duration::from_secs(retention_days.max(1) * 86_400),
            health_file: std::env::var_os("SENTINEL_HEALTH_FILE")
                .filter(|path| !path.is_empty())
                .map(PathBuf::from),
            database_url: d.database_url,
        })
    }
}

/// `SENTINEL_VRAM_BUDGET_MB` with `SENTINEL_CONTEXT_TOKENS`, `SENTINEL_VRAM_RESERVE_MB` and
/// `SENTINEL_VRAM_PER_SEQ_MB`; `None` when no budget is set.
pub fn vram_budget_from_env() -> anyhow::Result<Option<admission::Budget>> {
    let vram_mb: u64 = config::var_or("SENTINEL_VRAM_BUDGET_MB", 0)?;
    if vram_mb == 0 {
        return Ok(None);
    }
    let d = admission::Budget::new(vram_mb);
    let max_seqs: usize = config::var_or("SENTINEL_MAX_SEQS", 0)?;
    Ok(Some(admission::Budget {
        vram_mb,
        context_tokens: at_least_one(
            "SENTINEL_CONTEXT_TOKENS",
            config::var_or("SENTINEL_CONTEXT_TOKENS", d.context_tokens)?,
        )?,
        reserve_mb: config::var_or("SENTINEL_VRAM_RESERVE_MB", d.reserve_mb)?,
        per_seq_mb: config::var_or("SENTINEL_VRAM_PER_SEQ_MB", d.per_seq_mb)?,
        max_seqs: (max_seqs > 0).then_some(max_seqs),
    }))
}

fn at_least_one(name: &str, value: usize) -> anyhow::Result<usize> {
    if value == 0 {
        anyhow::bail!("{name} must be at least 1");
    }
    Ok(value)
}

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
    let llm = Llm::load(&model).await?;
    // statement_timeout and lock_timeout on every connection (SENTINEL_DB_*_TIMEOUT_MS).
    let options = db::DbTimeouts::from_env()?.apply(db::connect_options(&config.database_url)?);
    run_with(config, options, Some(Arc::new(llm)), shutdown).await
}

/// Runs the worker with an already loaded model (or none: then the jobs that need one fail with
/// `no_model`).
pub async fn run_with(
    config: Config,
    options: PgConnectOptions,
    llm: Option<Arc<Llm>>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let pool = db::pool(options.clone(), 6, Duration::from_secs(5));
    if config.auto_migrate {
        db::migrate(&pool).await?;
    }
    sqlx::query("SELECT 1")
        .execute(&pool)
        .await
        .context("connecting to DATABASE_URL")?;
    let services = Arc::new(Services::new(
        pool.clone(),
        llm,
        config.max_tokens,
        config.api_bases.clone(),
        config.delivery_timeout,
        forward::ClientSettings {
            allow: config.forward_allow.clone(),
            proxy: config.forward_proxy.clone(),
        },
        config.outbox,
    )?);
    let tenant_max = forward_tenant_max(config.forward_slots, config.forward_tenant_max);
    let heal_slots = heal_share(config.max_slots, config.heal_slots);
    tracing::info!(
        worker.id = %config.worker_id,
        worker.heal_batch = config.heal_batch,
        worker.model_slots = config.max_slots,
        worker.llm_heal_slots = heal_slots,
        worker.delivery_slots = config.delivery_slots,
        worker.forward_slots = config.forward_slots,
        worker.forward_tenant_max = tenant_max,
        worker.forward_proxy = config.forward_proxy.is_some(),
        "worker started"
    );
    let (listener, listen_task) = Listener::spawn(options, &[JOBS_CHANNEL], shutdown.clone());
    let heal_lane = tokio::spawn(heal_lane::run(
        pool.clone(),
        HealLaneConfig {
            worker_id: config.worker_id.clone(),
            claimable: heal_claimable(),
            batch: config.heal_batch,
            batch_bytes: config.heal_batch_bytes,
            lease: config.lease,
            poll_interval: config.poll_interval,
        },
        listener.waiter(JOBS_CHANNEL),
        shutdown.clone(),
    ));
    let lane_with = |claims: Claims, max_slots: usize, handler: Handler| {
        tokio::spawn(runner::run(
            pool.clone(),
            RunnerConfig {
                worker_id: config.worker_id.clone(),
                claims,
                max_slots,
                lease: config.lease,
                poll_interval: config.poll_interval,
            },
            listener.waiter(JOBS_CHANNEL),
            handler,
            shutdown.clone(),
        ))
    };
    let lane = |claimable: Claimable, max_slots: usize| {
        lane_with(
            Claims::Kinds(claimable),
            max_slots,
            handler(services.clone()),
        )
    };
    let model_lane = lane(
        model_claimable(heal_slots == 0),
        config.max_slots - heal_slots,
    );
    let llm_heal_lane = if heal_slots > 0 {
        lane(llm_heal_claimable(), heal_slots)
    } else {
        tokio::spawn(async {})
    };
    let delivery_lane = lane(Claimable::new(&DELIVERY_KINDS), config.delivery_slots);
    let agent_lane = lane_with(
        Claims::Kinds(agent_claimable()),
        config.delivery_slots,
        agent_handler(services.clone()),
    );
    let forward_lane = lane_with(
        Claims::Forwards { tenant_max },
        config.forward_slots,
        handler(services.clone()),
    );
    let rescuer = tokio::spawn(run_rescuer(
        pool.clone(),
        (config.lease / 4).max(Duration::from_secs(1)),
        shutdown.clone(),
    ));
    if let Some(path) = config.health_file.clone() {
        tokio::spawn(health::beat(pool.clone(), path, shutdown.clone()));
    }
    let retention = tokio::spawn(run_retention(
        pool.clone(),
        config.retention,
        Duration::from_secs(300),
        shutdown,
    ));
    let _ = tokio::join!(
        heal_lane,
        model_lane,
        llm_heal_lane,
        delivery_lane,
        agent_lane,
        forward_lane,
        rescuer,
        retention,
        listen_task
    );
    pool.close().await;
    tracing::info!("worker stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::{forward_tenant_max, heal_share};

    #[test]
    fn a_tenant_gets_half_the_forward_slots_unless_configured() {
        // (forward slots, SENTINEL_FORWARD_TENANT_MAX) -> forwards one tenant may run.
        for (slots, configured, max) in [
            (64, None, 32),
            (4, None, 2),
            (3, None, 1),
            (1, None, 1),
            (64, Some(8), 8),
            (4, Some(100), 100),
        ] {
            assert_eq!(
                forward_tenant_max(slots, configured),
                max,
                "{slots} slots, {configured:?}"
            );
        }
    }

    #[test]
    fn healing_keeps_a_share_and_leaves_replies_at_least_one_slot() {
        // (model slots, SENTINEL_HEAL_SEQS) -> slots kept for healing generations.
        for (slots, configured, share) in [
            (1, None, 0),
            (2, None, 1),
            (4, None, 1),
            (8, None, 2),
            (4, Some(0), 0),
            (4, Some(2), 2),
            (4, Some(9), 3),
            (1, Some(1), 0),
        ] {
            assert_eq!(
                heal_share(slots, configured),
                share,
                "{slots} slots, {configured:?}"
            );
        }
    }
}
