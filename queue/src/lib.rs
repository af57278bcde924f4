//! Sentinel's Postgres job queue, shared by the gateway and the workers.
//!
//! Postgres is the queue, the wake-up bus, the audit trail and the replay tool: there is no other
//! broker. Every job state change appends a row to `events` in the same transaction, and every
//! batch of changes sends one small NOTIFY so that workers and gateways wake without polling.

#[cfg(feature = "db")]
pub mod agent;
pub mod canonical;
#[cfg(feature = "db")]
pub mod caps;
#[cfg(feature = "db")]
pub mod claim;
#[cfg(feature = "db")]
pub mod config;
#[cfg(feature = "db")]
pub mod conversations;
#[cfg(feature = "db")]
pub mod db;
pub mod decode;
#[cfg(feature = "db")]
pub mod enqueue;
pub mod extract;
#[cfg(feature = "db")]
pub mod failover;
pub mod heal;
#[cfg(feature = "db")]
pub mod ingest;
#[cfg(feature = "db")]
pub mod job;
#[cfg(feature = "db")]
pub mod kinds;
#[cfg(feature = "db")]
pub mod outcome;
pub mod platform;
#[cfg(feature = "db")]
pub mod rescue;
#[cfg(feature = "db")]
pub mod retention;
#[cfg(feature = "db")]
pub mod shutdown;
pub mod storable;
#[cfg(feature = "db")]
pub mod tables;
#[cfg(feature = "db")]
pub mod telemetry;
#[cfg(feature = "db")]
pub mod tenant;
#[cfg(feature = "db")]
pub mod tenant_kinds;
#[cfg(feature = "db")]
pub mod wakeup;

#[cfg(feature = "db")]
pub use claim::{
    acknowledge_cancel, claim_batch, claim_batch_within, complete, complete_many, fail,
    finish_many, finish_many_isolated, finish_one, heartbeat, progress, snooze, Claimable, Finish,
    FinishError, Finished, Heartbeat, LeaseLost, Outcome, Stage,
};
#[cfg(feature = "db")]
pub use enqueue::{enqueue, enqueue_many, Enqueued};
#[cfg(feature = "db")]
pub use ingest::{IngestError, Ingestor, IngestorConfig};
#[cfg(feature = "db")]
pub use job::{cancel, replay, CancelOutcome, Job, JobStatus, Lease, NewJob};
#[cfg(feature = "db")]
pub use outcome::{FailKind, JobError, JobResult, Retry, RetryPolicies, RetryPolicy};
#[cfg(feature = "db")]
pub use rescue::{rescue_expired, Rescued};
#[cfg(feature = "db")]
pub use wakeup::{Listener, Notice, Notices, Waiter, Woke};

/// The migrations in `migrations/` at the workspace root, embedded at build time.
#[cfg(feature = "db")]
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// NOTIFY channel that wakes workers when jobs become ready. The payload is empty.
#[cfg(feature = "db")]
pub const JOBS_CHANNEL: &str = "sentinel_jobs";
/// NOTIFY channel that wakes the worker API's long-polling claims when a job of a tenant-defined
/// kind is queued (new, replayed or rescued). The payload is empty.
#[cfg(feature = "db")]
pub const WORKER_JOBS_CHANNEL: &str = "sentinel_worker_jobs";
/// NOTIFY channel that tells gateways to drop a cached entry: the payload names it
/// (`tenant:<id>`, `api_key:<prefix>`, `source:<id>`).
#[cfg(feature = "db")]
pub const CONFIG_CHANNEL: &str = "sentinel_config";
/// NOTIFY channel that tells gateways new rows were appended to `events`. The payload is empty.
#[cfg(feature = "db")]
pub const EVENTS_CHANNEL: &str = "sentinel_events";
