//! One running attempt of a job, as its handler sees it.

use sentinel_queue::Lease;
use tokio::sync::watch;

/// What a handler gets besides the job: its lease (for progress events) and a flag that turns
/// true when cancellation is requested.
#[derive(Clone)]
pub struct JobContext {
    pub lease: Lease,
    pub canceled: watch::Receiver<bool>,
}
