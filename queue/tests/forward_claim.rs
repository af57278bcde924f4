//! The forward claim (`agent::claim_forwards`): every source with ready forwards is looked at,
//! tenants take turns (fewest running first, then least recently served, equal shares,
//! interleaved), and a tenant's running forwards stay under the tenant cap across claimers, as a
//! source's stay under its `max_in_flight`.
#![allow(clippy::unwrap_used)] // Tests fail loudly on purpose.

mod common;

use std::collections::HashMap;

use common::tenant;
use sentinel_queue::{
    agent::claim_forwards, complete_many, enqueue_many, kinds::AGENT_FORWARD, Job, NewJob,
};
use serde_json::{json, Value};
use sqlx::{
    postgres::{PgConnectOptions, PgPoolOptions},
    PgPool,
};
use uuid::Uuid;

const LEASE_SECS: f64 = 30.0;

/// A source of `tenant_id` whose agent is `agent`.
async fn source(pool: &PgPool, tenant_id: Uuid, agent: Value) -> Uuid {
    sqlx::query_scalar!(
        "INSERT INTO sources (tenant_id, platform, agent) VALUES ($1, 'telegram', $2) RETURNING id",
        tenant_id,
        agent
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

/// A forwarding source of `tenant_id` that allows `max_in_flight`.
async fn forwarding(pool: &PgPool, tenant_id: Uuid, max_in_flight: u32) -> Uuid {
    let agent = json!({"mode": "forward", "url": "https://agent.example.com/hook",
                       "max_in_flight": max_in_flight, "timeout_ms": 10_000});
    source(pool, tenant_id, agent).await
}

/// Queues `n` forwards of `source_id`.
async fn forwards(pool: &PgPool, tenant_id: Uuid, source_id: Uuid, n: usize) {
    let jobs: Vec<NewJob> = (0..n)
        .map(|i| {
            NewJob::new(tenant_id, AGENT_FORWARD, json!({"inbound_job_id": i}))
                .with_source(source_id)
        })
        .collect();
    enqueue_many(pool, &jobs).await.unwrap();
}

async fn running(pool: &PgPool, tenant_id: Uuid) -> i64 {
    sqlx::query_scalar!(
        r#"SELECT count(*) AS "n!" FROM jobs
           WHERE status = 'running' AND kind = 'agent.forward' AND tenant_id = $1"#,
        tenant_id
    )
    .fetch_one(pool)
    .await
    .unwrap()
}

fn by_tenant(jobs: &[Job]) -> HashMap<Uuid, usize> {
    let mut counts = HashMap::new();
    for job in jobs {
        *counts.entry(job.tenant_id).or_default() += 1;
    }
    counts
}

async fn complete(pool: &PgPool, jobs: &[Job]) {
    let leases = jobs.iter().map(|job| (job.lease().unwrap(), json!({})));
    assert_eq!(complete_many(pool, leases).await.unwrap().len(), jobs.len());
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn every_source_with_ready_forwards_is_looked_at_not_the_first_64(pool: PgPool) {
    let acme = tenant(&pool, "acme").await;
    let mut sources = Vec::new();
    for _ in 0..70 {
        let source_id = forwarding(&pool, acme, 1).await;
        forwards(&pool, acme, source_id, 2).await;
        sources.push(source_id);
    }
    let last = sources.iter().max().copied().unwrap();

    let claimed = claim_forwards(&pool, "w1", 100, 100, LEASE_SECS)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 70, "one forward of each of the 70 sources");
    let mut claimed_sources: Vec<Uuid> = claimed.iter().filter_map(|job| job.source_id).collect();
    claimed_sources.sort();
    claimed_sources.dedup();
    assert_eq!(claimed_sources.len(), 70);
    assert!(
        claimed_sources.contains(&last),
        "the source with the largest id is claimed"
    );
    // Each source is at its max_in_flight of 1: nothing more until one ends.
    assert!(claim_forwards(&pool, "w1", 100, 100, LEASE_SECS)
        .await
        .unwrap()
        .is_empty());
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn tenants_take_turns_fewest_running_first_then_least_recently_served(pool: PgPool) {
    let (big, other, small) = (
        tenant(&pool, "big").await,
        tenant(&pool, "other").await,
        tenant(&pool, "small").await,
    );
    // The big tenant's 20 forwards are the oldest, spread over two sources; first in, first out
    // would give it every slot.
    let (big_a, big_b) = (
        forwarding(&pool, big, 128).await,
        forwarding(&pool, big, 128).await,
    );
    forwards(&pool, big, big_a, 10).await;
    forwards(&pool, big, big_b, 10).await;
    let other_source = forwarding(&pool, other, 128).await;
    forwards(&pool, other, other_source, 20).await;
    let small_source = forwarding(&pool, small, 128).await;
    forwards(&pool, small, small_source, 1).await;

    // 5 slots over 3 tenants: shares of 2, interleaved; the small tenant has only 1.
    let first = claim_forwards(&pool, "w1", 5, 100, LEASE_SECS)
        .await
        .unwrap();
    assert_eq!(
        by_tenant(&first),
        HashMap::from([(big, 2), (other, 2), (small, 1)])
    );
    // Within the big tenant, oldest first across its sources.
    let big_jobs: Vec<&Job> = first.iter().filter(|job| job.tenant_id == big).collect();
    assert!(big_jobs.iter().all(|job| job.source_id == Some(big_a)));

    // The big tenant's two end: it has the fewest running, so it goes first, twice.
    let big_done: Vec<Job> = first
        .iter()
        .filter(|job| job.tenant_id == big)
        .cloned()
        .collect();
    complete(&pool, &big_done).await;
    for _ in 0..2 {
        let next = claim_forwards(&pool, "w1", 1, 100, LEASE_SECS)
            .await
            .unwrap();
        assert_eq!(by_tenant(&next), HashMap::from([(big, 1)]));
    }
    // Two running each: the other tenant was served less recently.
    let next = claim_forwards(&pool, "w1", 1, 100, LEASE_SECS)
        .await
        .unwrap();
    assert_eq!(by_tenant(&next), HashMap::from([(other, 1)]));
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn the_tenant_cap_holds_across_concurrent_claimers(
    pool_options: PgPoolOptions,
    connect_options: PgConnectOptions,
) {
    let pool = pool_options
        .max_connections(12)
        .connect_with(connect_options)
        .await
        .unwrap();
    let (noisy, quiet) = (tenant(&pool, "noisy").await, tenant(&pool, "quiet").await);
    for _ in 0..4 {
        let source_id = forwarding(&pool, noisy, 128).await;
        forwards(&pool, noisy, source_id, 25).await;
    }
    let quiet_source = forwarding(&pool, quiet, 128).await;
    forwards(&pool, quiet, quiet_source, 5).await;

    const TENANT_MAX: usize = 3;
    let claimers = (0..8).map(|n| {
        let pool = pool.clone();
        tokio::spawn(async move {
            let mut claimed = 0;
            for _ in 0..10 {
                claimed += claim_forwards(&pool, &format!("w{n}"), 4, TENANT_MAX, LEASE_SECS)
                    .await
                    .unwrap()
                    .len();
                tokio::task::yield_now().await;
            }
            claimed
        })
    });
    let mut claimed = 0;
    for claimer in futures::future::join_all(claimers).await {
        claimed += claimer.unwrap();
    }
    // Claimers skip a tenant another one holds; one more claim takes whatever they left.
    claimed += claim_forwards(&pool, "last", 100, TENANT_MAX, LEASE_SECS)
        .await
        .unwrap()
        .len();
    assert_eq!(running(&pool, noisy).await, TENANT_MAX as i64);
    assert_eq!(running(&pool, quiet).await, TENANT_MAX as i64);
    assert_eq!(claimed, 2 * TENANT_MAX);
}

#[sqlx::test(migrator = "sentinel_queue::MIGRATOR")]
async fn a_source_keeps_its_max_in_flight_under_the_tenant_cap(pool: PgPool) {
    let acme = tenant(&pool, "acme").await;
    let narrow = forwarding(&pool, acme, 2).await;
    forwards(&pool, acme, narrow, 5).await;
    // A source no longer forwarding has its forwards claimed to be ended, not held to a cap of
    // its own; the tenant's cap still counts them.
    let switched = source(&pool, acme, json!({"mode": "none", "max_in_flight": 1})).await;
    forwards(&pool, acme, switched, 5).await;

    let claimed = claim_forwards(&pool, "w1", 10, 6, LEASE_SECS)
        .await
        .unwrap();
    let from = |source_id| {
        claimed
            .iter()
            .filter(|job| job.source_id == Some(source_id))
            .count()
    };
    assert_eq!((from(narrow), from(switched)), (2, 4));
    assert!(claim_forwards(&pool, "w1", 10, 6, LEASE_SECS)
        .await
        .unwrap()
        .is_empty());
}
