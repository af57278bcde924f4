//! The worker's settings, read once from the environment at start-up (`SENTINEL_...`,
//! `DATABASE_URL`), each bad value named.

use std::{path::PathBuf, time::Duration};

use anyhow::Context;
use sentinel_queue::{agent::ForwardAllow, config, RetryPolicies};

use crate::{
    clients,
    model::{admission, llm},
    outbox::{ApiBases, OutboxConfig},
};

/// The worker's settings, read once from the environment at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub worker_id: String,
    pub lease: Duration,
    /// Sequences the model runs at once (`SENTINEL_MAX_SEQS`): the model lanes' claim slots.
    pub max_slots: usize,
    /// Of those, the slots kept for the LLM healing step (`SENTINEL_HEAL_SEQS`); `None` for the
    /// default share (see [`crate::lanes::heal_share`]).
    pub heal_slots: Option<usize>,
    /// Whether the LLM healing step's slots run on an engine of their own
    /// (`SENTINEL_HEAL_ENGINE=own`, the default on the CPU) or on the replies' (`shared`, the
    /// default in a `cuda` build, where a second copy of the weights would cost GPU memory and
    /// steps are short enough to share). See [`crate::model::llm::ModelConfig::heal_seqs`].
    pub own_heal_engine: bool,
    /// Deliveries in flight at once (`SENTINEL_DELIVERY_SLOTS`); the agent lane's slots too.
    pub delivery_slots: usize,
    /// Forwards to the tenants' agents in flight at once (`SENTINEL_FORWARD_SLOTS`).
    pub forward_slots: usize,
    /// Which private addresses and hosts forwards may reach (`SENTINEL_FORWARD_ALLOW`).
    pub forward_allow: ForwardAllow,
    /// Forwards one tenant may have running at once across all workers
    /// (`SENTINEL_FORWARD_TENANT_MAX`); `None` for half of `forward_slots` (see
    /// [`crate::lanes::forward_tenant_max`]).
    pub forward_tenant_max: Option<usize>,
    /// The proxy forwards go through (`SENTINEL_FORWARD_PROXY`, checked by
    /// [`clients::check_proxy`]). None by default, whatever `HTTP_PROXY`, `HTTPS_PROXY` or
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
            own_heal_engine: !cfg!(feature = "cuda"),
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

    /// The defaults, overridden by the environment; each bad value is named.
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self::new(config::required("DATABASE_URL")?);
        let retention_days: u64 =
            config::var_or("SENTINEL_RETENTION_DAYS", d.retention.as_secs() / 86_400)?;
        let count = |name: &str, default: usize| at_least_one(name, config::var_or(name, default)?);
        // Checked now, so that a bad SENTINEL_RETRY_<KIND> stops the worker at start-up.
        RetryPolicies::from_env()?;
        Ok(Self {
            worker_id: config::var_or("SENTINEL_WORKER_ID", d.worker_id)?,
            lease: config::secs_or("SENTINEL_LEASE_SECS", d.lease.as_secs())?,
            max_slots: count("SENTINEL_MAX_SEQS", d.max_slots)?,
            heal_slots: optional("SENTINEL_HEAL_SEQS", "a number of slots")?,
            own_heal_engine: own_heal_engine_from_env(d.own_heal_engine)?,
            delivery_slots: count("SENTINEL_DELIVERY_SLOTS", d.delivery_slots)?,
            forward_slots: count("SENTINEL_FORWARD_SLOTS", d.forward_slots)?,
            forward_allow: config::var_or("SENTINEL_FORWARD_ALLOW", String::new())?
                .parse()
                .map_err(|error| anyhow::anyhow!("SENTINEL_FORWARD_ALLOW: {error}"))?,
            forward_tenant_max: optional("SENTINEL_FORWARD_TENANT_MAX", "a number of forwards")?
                .map(|max| at_least_one("SENTINEL_FORWARD_TENANT_MAX", max))
                .transpose()?,
            forward_proxy: forward_proxy_from_env()?,
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

/// `SENTINEL_HEAL_ENGINE`: `own` or `shared`; unset, `default`, except with a GPU memory budget
/// (`SENTINEL_VRAM_BUDGET_MB`), whose plan has no room for a second copy of the weights: there
/// `shared`, and `own` is refused.
fn own_heal_engine_from_env(default: bool) -> anyhow::Result<bool> {
    let budget = !config::var_or("SENTINEL_VRAM_BUDGET_MB", String::new())?.is_empty();
    match config::var_or("SENTINEL_HEAL_ENGINE", String::new())?.as_str() {
        "" => Ok(default && !budget),
        "own" if budget => anyhow::bail!(
            "SENTINEL_HEAL_ENGINE=own loads a second copy of the weights, which SENTINEL_VRAM_BUDGET_MB does not plan for: use shared"
        ),
        "own" => Ok(true),
        "shared" => Ok(false),
        other => anyhow::bail!("SENTINEL_HEAL_ENGINE={other:?}: use own or shared"),
    }
}

/// A count that is unset unless `name` is set; `what` names what it counts in the error.
fn optional(name: &str, what: &str) -> anyhow::Result<Option<usize>> {
    match config::var_or(name, String::new())?.as_str() {
        "" => Ok(None),
        value => value
            .parse()
            .map(Some)
            .with_context(|| format!("{name}={value:?} is not {what}")),
    }
}

/// `SENTINEL_FORWARD_PROXY`, checked by [`clients::check_proxy`]; none when unset.
fn forward_proxy_from_env() -> anyhow::Result<Option<String>> {
    match config::var_or("SENTINEL_FORWARD_PROXY", String::new())?.as_str() {
        "" => Ok(None),
        value => clients::check_proxy(value)
            .map(Some)
            .map_err(|error| anyhow::anyhow!("SENTINEL_FORWARD_PROXY: {error}")),
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
