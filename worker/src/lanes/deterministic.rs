//! The deterministic lane: claims healing jobs at stage `new` hundreds at a time, heals each by
//! adapter or repair on the blocking pool, and ends the whole batch in one statement. Jobs that
//! need the model (the LLM step, or the built-in agent's reply) or the agent lane are handed off
//! to their stage (`llm_heal`, `model`, `agent`) in that same statement, so model-lane slots are
//! spent only on work that needs the model.

use std::{panic::AssertUnwindSafe, time::Duration};

use sentinel_queue::{
    agent::{self, AgentMode},
    claim_batch_within, finish_many_isolated, Claimable, Finish, Job, RetryPolicy, Waiter,
};
use sqlx::{types::Uuid, PgPool};
use tokio::sync::watch;

use super::runner::{log_failure, panicked};
use crate::jobs::heal::heal_without_model;

/// How often a failed batch finish is retried before its jobs are left to the rescuer.
const FINISH_TRIES: u32 = 3;

#[derive(Clone)]
pub struct HealLaneConfig {
    pub worker_id: String,
    pub claimable: Claimable,
    /// Jobs claimed per batch (`SENTINEL_HEAL_BATCH`).
    pub batch: usize,
    /// Stored bytes claimed per batch (`SENTINEL_HEAL_BATCH_BYTES`): the batch's raw bodies are
    /// held in memory while it heals.
    pub batch_bytes: usize,
    pub lease: Duration,
    pub poll_interval: Duration,
}

/// Runs until `shutdown` turns true. A batch in hand is always finished before it returns: it
/// takes milliseconds.
pub async fn run(
    pool: PgPool,
    config: HealLaneConfig,
    mut waiter: Waiter,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        if *shutdown.borrow() {
            break;
        }
        waiter.mark_seen();
        let claimed = claim_batch_within(
            &pool,
            &config.worker_id,
            &config.claimable,
            config.batch,
            config.lease,
            Some(config.batch_bytes),
        )
        .await;
        match claimed {
            Ok(jobs) => {
                // A batch cut short by its byte budget is full too: more may be waiting.
                let bytes: usize = jobs.iter().map(stored_bytes).sum();
                let full = jobs.len() == config.batch || bytes >= config.batch_bytes / 2;
                if !jobs.is_empty() {
                    finish_batch(&pool, jobs).await;
                }
                if full {
                    continue;
                }
            }
            Err(error) => tracing::warn!(%error, "claim failed; retrying after the poll interval"),
        }
        tokio::select! {
            _ = waiter.wait(config.poll_interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
}

/// A job's raw body length: most of what the claim's byte budget counts, read without
/// serializing anything.
fn stored_bytes(job: &Job) -> usize {
    job.raw_body.as_ref().map_or(0, Vec::len)
}

async fn finish_batch(pool: &PgPool, jobs: Vec<Job>) {
    // Who answers each source's messages, read once for the batch. On a failed read the batch is
    // left to the rescuer, as on a failed finish.
    let mut sources: Vec<Uuid> = jobs.iter().filter_map(|job| job.source_id).collect();
    sources.sort_unstable();
    sources.dedup();
    let agents = match agent::settings_of(pool, &sources).await {
        Ok(agents) => agents,
        Err(error) => {
            tracing::warn!(%error, jobs = jobs.len(), "reading the sources' agents failed; the rescuer requeues the batch when its lease expires");
            return;
        }
    };
    let healed = tokio::task::spawn_blocking(move || {
        jobs.iter()
            .filter_map(|job| {
                let lease = job.lease()?;
                let mode = job
                    .source_id
                    .and_then(|id| agents.get(&id))
                    .map_or(AgentMode::Builtin, |agent| agent.mode);
                // One job's panic fails that job alone, not the batch in hand.
                let result =
                    std::panic::catch_unwind(AssertUnwindSafe(|| heal_without_model(job, mode)))
                        .unwrap_or_else(|panic| Err(panicked(&*panic)));
                let outcome = RetryPolicy::for_kind(&job.kind).decide(lease.attempt, result);
                Some(Finish { lease, outcome })
            })
            .collect::<Vec<_>>()
    })
    .await;
    let finishes = match healed {
        Ok(finishes) => {
            for finish in &finishes {
                log_failure(&finish.lease, &finish.outcome);
            }
            finishes
        }
        Err(error) => {
            // Panics are caught per job above; only a failure of the blocking pool gets here, and
            // the rescuer requeues the batch at lease expiry.
            tracing::error!(%error, "healing a batch failed");
            return;
        }
    };
    for attempt in 1..=FINISH_TRIES {
        match finish_many_isolated(pool, &finishes).await {
            Ok(_) => return,
            Err(error) if attempt < FINISH_TRIES => {
                tracing::warn!(%error, jobs = finishes.len(), "finishing a healed batch failed; retrying");
                tokio::time::sleep(Duration::from_millis(200) * attempt).await;
            }
            Err(error) => tracing::error!(
                %error,
                jobs = finishes.len(),
                "finishing a healed batch failed; the rescuer requeues it when its lease expires"
            ),
        }
    }
}
