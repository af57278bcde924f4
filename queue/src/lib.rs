//! Sentinel's Postgres job queue, shared by the gateway and the workers.
//!
//! Postgres is the queue, the wake-up bus, the audit trail and the replay tool: there is no other
//! broker. Every job state change appends a row to `events` in the same transaction, and every
//! batch of changes sends one small NOTIFY so that workers and gateways wake without polling.

pub mod canonical;
pub mod claim;
pub mod config;
pub mod db;
pub mod enqueue;
pub mod envelope;
pub mod extract;
pub mod heal;
pub mod ingest;
pub mod job;
pub mod kinds;
pub mod platform;
pub mod rescue;
pub mod retention;
pub mod shutdown;
pub mod storable;
pub mod telemetry;
pub mod tenant;
pub mod wakeup;

pub use claim::{
    acknowledge_cancel, claim_batch, claim_batch_within, complete, complete_many, fail,
    finish_many, finish_many_isolated, heartbeat, progress, snooze, Claimable, Finish, FinishError,
    Finished, Heartbeat, LeaseLost, Outcome, Stage,
};
pub use enqueue::{enqueue, enqueue_many, Enqueued};
pub use ingest::{IngestError, Ingestor, IngestorConfig};
pub use job::{
    cancel, replay, CancelOutcome, FailKind, Job, JobStatus, Lease, NewJob, RetryPolicy,
};
pub use rescue::{rescue_expired, Rescued};
pub use wakeup::{Listener, Waiter, Woke};

/// The migrations in `migrations/` at the workspace root, embedded at build time.
pub static MIGRATOR: sqlx::migrate::Migrator = sqlx::migrate!("../migrations");

/// NOTIFY channel that wakes workers when jobs become ready. The payload is empty.
pub const JOBS_CHANNEL: &str = "sentinel_jobs";
/// NOTIFY channel that tells gateways new rows were appended to `events`. The payload is empty.
pub const EVENTS_CHANNEL: &str = "sentinel_events";
