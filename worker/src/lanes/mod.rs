//! The claim lanes, each with its own slots so that one kind of work never waits for another's:
//! the deterministic lane ([`deterministic`]) takes healing jobs in batches and needs no model; the
//! others run one job per slot through the [`runner`]: the model lanes (replies and
//! `llm.generate`, and the LLM healing step's share), the delivery lane, the agent lane and the
//! forward lane. [`spawn`] starts them all; the crate's documentation says what each claims.

pub mod deterministic;
pub mod runner;

use std::{sync::Arc, time::Duration};

use sentinel_queue::{kinds, Claimable, Listener, Stage, JOBS_CHANNEL};
use sqlx::PgPool;
use tokio::{sync::watch, task::JoinHandle};

use self::{
    deterministic::HealLaneConfig,
    runner::{Claims, Handler, RunnerConfig},
};
use crate::{
    config::Config,
    jobs::{self, heal, Lane},
    services::Services,
};

/// The healing kinds ([`kinds::Lane::Heal`] in `kinds::BUILTIN`): the deterministic lane claims them at
/// stage `new`, the model lane at stage `model` (and `llm_heal`).
fn heal_kinds() -> Vec<&'static str> {
    kinds::kinds_in(kinds::Lane::Heal)
}

/// What the deterministic lane claims.
pub fn heal_claimable() -> Claimable {
    Claimable::new(&heal_kinds())
}

/// What the model lane claims: `llm.generate`, and healing jobs handed off to it for the agent's
/// reply; with `llm_heal`, the LLM healing step too (a worker with no healing share).
pub fn model_claimable(llm_heal: bool) -> Claimable {
    let claimable =
        Claimable::new(&kinds::kinds_in(kinds::Lane::Model)).with(&heal_kinds(), Stage::Model);
    if llm_heal {
        claimable.with(&heal_kinds(), Stage::LlmHeal)
    } else {
        claimable
    }
}

/// What the healing share of the model's slots claims: the LLM healing step.
pub fn llm_heal_claimable() -> Claimable {
    Claimable::default().with(&heal_kinds(), Stage::LlmHeal)
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

/// The handler of every kind the runner's lanes claim: each kind's module in [`crate::jobs`].
pub fn handler(services: Arc<Services>) -> Handler {
    Arc::new(move |job, context| {
        let services = services.clone();
        Box::pin(async move { jobs::run(&services, &job, &context).await })
    })
}

/// The agent lane's handler: an inbound message for an external or forwarded agent.
pub fn agent_handler(services: Arc<Services>) -> Handler {
    Arc::new(move |job, context| {
        let services = services.clone();
        Box::pin(async move { heal::handle_in(&services, &job, &context, Lane::Agent).await })
    })
}

/// The sizes of the lanes, from the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sizes {
    /// Model slots for replies and `llm.generate` (and the LLM healing step when `llm_heal` is 0).
    pub model: usize,
    /// Model slots kept for the LLM healing step (see [`heal_share`]).
    pub llm_heal: usize,
    /// Forwards one tenant may have running at once (see [`forward_tenant_max`]).
    pub forward_tenant_max: usize,
}

impl Sizes {
    pub fn of(config: &Config) -> Self {
        let llm_heal = heal_share(config.max_slots, config.heal_slots);
        Self {
            model: config.max_slots - llm_heal,
            llm_heal,
            forward_tenant_max: forward_tenant_max(config.forward_slots, config.forward_tenant_max),
        }
    }
}

/// Starts every lane on `listener`'s wake-ups; each returns once `shutdown` turns true and it
/// has drained.
pub fn spawn(
    pool: &PgPool,
    config: &Config,
    services: &Arc<Services>,
    listener: &Listener,
    shutdown: &watch::Receiver<bool>,
) -> Vec<JoinHandle<()>> {
    let sizes = Sizes::of(config);
    let lane = |claims: Claims, max_slots: usize, handler: Handler| {
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
    let kinds_lane = |claimable: Claimable, max_slots: usize| {
        lane(
            Claims::Kinds(claimable),
            max_slots,
            handler(services.clone()),
        )
    };
    let mut lanes = vec![
        tokio::spawn(deterministic::run(
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
        )),
        kinds_lane(model_claimable(sizes.llm_heal == 0), sizes.model),
        kinds_lane(
            Claimable::new(&kinds::kinds_in(kinds::Lane::Delivery)),
            config.delivery_slots,
        ),
        lane(
            Claims::Kinds(agent_claimable()),
            config.delivery_slots,
            agent_handler(services.clone()),
        ),
        lane(
            Claims::Forwards {
                tenant_max: sizes.forward_tenant_max,
            },
            config.forward_slots,
            handler(services.clone()),
        ),
    ];
    if sizes.llm_heal > 0 {
        lanes.push(kinds_lane(llm_heal_claimable(), sizes.llm_heal));
    }
    lanes
}

/// How often the rescuer looks for expired leases: a quarter of the lease, at least a second.
pub fn rescue_interval(lease: Duration) -> Duration {
    (lease / 4).max(Duration::from_secs(1))
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
