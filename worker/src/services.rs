//! What every job handler shares: the database, the model, the HTTP clients and the outbox's
//! breakers.

use std::sync::Arc;

use anyhow::Context;
use sentinel_queue::agent::ForwardAllow;
use sqlx::PgPool;

use crate::{
    clients,
    config::Config,
    model::llm::Llm,
    outbox::{ApiBases, Breakers},
};

/// What every job handler shares.
pub struct Services {
    pub pool: PgPool,
    /// `None` only in tests that exercise the paths that never need it.
    pub llm: Option<Arc<Llm>>,
    /// The token budget of one generation (`SENTINEL_MAX_TOKENS`).
    pub max_tokens: usize,
    pub http: reqwest::Client,
    pub api_bases: ApiBases,
    /// The client that forwards messages to the tenants' agents (see [`clients::forward`]).
    pub forward_http: reqwest::Client,
    /// The operator's allowlist for forward URLs (`SENTINEL_FORWARD_ALLOW`).
    pub forward_allow: Arc<ForwardAllow>,
    /// The outbox's settings and its circuit breakers, per platform and credential.
    pub outbox: Breakers,
}

impl Services {
    /// The services of a worker with `config`, on `pool`, with `llm`.
    pub fn new(pool: PgPool, llm: Option<Arc<Llm>>, config: &Config) -> anyhow::Result<Self> {
        let forward_allow = Arc::new(config.forward_allow.clone());
        Ok(Self {
            pool,
            llm,
            max_tokens: config.max_tokens,
            http: clients::platform(config.delivery_timeout).context("building the HTTP client")?,
            api_bases: config.api_bases.clone(),
            forward_http: clients::forward(forward_allow.clone(), config.forward_proxy.as_deref())
                .context("building the forward client")?,
            forward_allow,
            outbox: Breakers::new(config.outbox),
        })
    }
}
