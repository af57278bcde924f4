//! What a tenant may submit, checked before anything is written: one rate-limit token per event
//! (each event of a webhook, each job submission, replay, progress report, source and kind
//! change), and a cap on the tenant's queued jobs. Apart from that, every authenticated request
//! spends one token of the tenant's request budget ([`RequestBudget`]) and holds one of the
//! tenant's places in flight ([`InFlight`]) while it runs, so no tenant's reads or worker API calls
//! can crowd out another's. The rate limits are shared by all gateways ([`crate::limits`]); the
//! places in flight are this gateway's (they protect its own pools).
//!
//! The queued counts come from a background task ([`refresh_counts`]), never from a query per
//! request: a count per tenant every [`COUNT_INTERVAL`], read from the partial index of queued
//! jobs, plus what this gateway admitted since. Other gateways' admissions show at the next count,
//! so with N gateways a tenant can pass its cap by what the others admit within one interval: at
//! most its burst plus 2 s of its rate, since the rate limit is shared. The same task keeps the
//! `sentinel_jobs` gauges, so a `/metrics` scrape reads no table.

use std::{
    collections::HashMap,
    num::NonZeroU32,
    sync::{Arc, RwLock},
    time::Duration,
};

use poem::http::StatusCode;
use sentinel_queue::tables::jobs;
use sqlx::PgPool;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::{
    directory::TenantRecord,
    error::ApiError,
    limits::{Bucket, Denied},
    metrics::Metrics,
};

/// How often the queued counts are read again.
pub const COUNT_INTERVAL: Duration = Duration::from_secs(2);
/// How often the job counts by status (a scan of `jobs`) are read for the metrics.
pub const STATUS_COUNT_INTERVAL: Duration = Duration::from_secs(30);

/// What each tenant's API requests may spend: `per_sec` tokens a second, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestBudget {
    pub per_sec: usize,
    pub burst: usize,
}

impl Default for RequestBudget {
    fn default() -> Self {
        Self {
            per_sec: 200,
            burst: 400,
        }
    }
}

/// Spends one token of the tenant's request budget, or refuses the request (429 `rate_limited`).
pub async fn spend_request(tenant: &TenantRecord) -> Result<(), ApiError> {
    spend_from(&tenant.requests, NonZeroU32::MIN)
        .await
        .map_err(|refusal| match refusal {
            Refusal::RateLimited { retry_after_secs } => ApiError::too_many(
                "rate_limited",
                "the tenant is over its API request rate (SENTINEL_TENANT_REQUESTS_PER_SEC)",
                retry_after_secs,
            ),
            other => other.into(),
        })
}

/// How long a request waits for one of its tenant's places in flight.
pub const IN_FLIGHT_WAIT: Duration = Duration::from_secs(1);

/// Each tenant's requests in flight on this gateway, under a cap.
pub struct InFlight {
    cap: usize,
    tenants: moka::sync::Cache<Uuid, Arc<Semaphore>>,
}

impl InFlight {
    pub fn new(cap: usize) -> Self {
        Self {
            cap: cap.max(1),
            // A tenant's semaphore is kept while it is in use; one idle for an hour is dropped
            // (and made anew, full, on its next request).
            tenants: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(3_600))
                .build(),
        }
    }

    /// One of the tenant's places, held until the permit is dropped. When all are taken, the
    /// request waits its turn (holding no connection) for up to [`IN_FLIGHT_WAIT`], then gets 429
    /// `too_many_in_flight`: a burst of one tenant's requests queues behind its own, never
    /// another tenant's.
    pub async fn enter(&self, tenant_id: Uuid) -> Result<OwnedSemaphorePermit, ApiError> {
        let semaphore = self
            .tenants
            .get_with(tenant_id, || Arc::new(Semaphore::new(self.cap)));
        match tokio::time::timeout(IN_FLIGHT_WAIT, semaphore.acquire_owned()).await {
            Ok(Ok(permit)) => Ok(permit),
            _ => Err(ApiError::too_many(
                "too_many_in_flight",
                format!(
                    "the tenant had {} requests in flight on this gateway, the most allowed \
                     (SENTINEL_TENANT_MAX_IN_FLIGHT), for longer than this one could wait",
                    self.cap
                ),
                1,
            )),
        }
    }
}

/// Why a submission was refused before anything was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// One request carries more events than the tenant's burst: it could never be admitted (413).
    OverBurst { events: usize, burst: u32 },
    /// Over the rate limit; retry after the given seconds (429).
    RateLimited { retry_after_secs: u64 },
    /// The shared rate limit could not be leased: the database did not answer (503).
    Unavailable,
    /// The tenant's queue is at its cap (429).
    QueueFull { queued: i64, cap: i64 },
}

impl Refusal {
    pub fn status(&self) -> StatusCode {
        match self {
            Refusal::OverBurst { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Refusal::RateLimited { .. } | Refusal::QueueFull { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Refusal::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Refusal::OverBurst { .. } => "too_many_events",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::QueueFull { .. } => "queue_full",
            Refusal::Unavailable => "database_unavailable",
        }
    }

    pub fn message(&self) -> String {
        match self {
            Refusal::OverBurst { events, burst } => format!(
                "the request carries {events} events, more than the tenant's burst of {burst}: each event spends one rate-limit token"
            ),
            Refusal::RateLimited { .. } => "the tenant is over its rate limit".into(),
            Refusal::Unavailable => {
                "the database is unreachable or saturated; retry shortly".into()
            }
            Refusal::QueueFull { queued, cap } => format!(
                "the tenant has {queued} jobs queued, at its cap of {cap}; retry once workers catch up"
            ),
        }
    }

    /// Seconds to wait before retrying, for the answers that have one.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Refusal::OverBurst { .. } => None,
            Refusal::Unavailable => Some(1),
            Refusal::RateLimited { retry_after_secs } => Some(*retry_after_secs),
            Refusal::QueueFull { .. } => Some(COUNT_INTERVAL.as_secs().max(1)),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(refusal: Refusal) -> Self {
        if refusal == Refusal::Unavailable {
            return ApiError::unavailable(refusal.message());
        }
        match refusal.retry_after_secs() {
            Some(secs) => ApiError::too_many(refusal.code(), refusal.message(), secs),
            None => ApiError::payload_too_large(refusal.code(), refusal.message()),
        }
    }
}

/// Queued jobs by tenant, as last counted plus what was admitted since.
#[derive(Default)]
pub struct QueueCounts {
    queued: RwLock<HashMap<Uuid, i64>>,
}

impl QueueCounts {
    /// The tenant's queued jobs, as of the last refresh (every 2 s).
    pub fn queued(&self, tenant_id: Uuid) -> i64 {
        self.queued
            .read()
            .map(|counts| counts.get(&tenant_id).copied().unwrap_or(0))
            .unwrap_or(0)
    }

    fn add(&self, tenant_id: Uuid, n: i64) {
        if let Ok(mut counts) = self.queued.write() {
            *counts.entry(tenant_id).or_insert(0) += n;
        }
    }

    fn replace(&self, counted: HashMap<Uuid, i64>) {
        if let Ok(mut counts) = self.queued.write() {
            *counts = counted;
        }
    }
}

/// Admits `events` new jobs for `tenant`: the queue cap first (a refusal spends no token), then one
/// rate-limit token per event. What is admitted counts against the cap at once.
pub async fn admit(
    counts: &QueueCounts,
    tenant: &TenantRecord,
    events: usize,
) -> Result<(), Refusal> {
    let Some(n) = NonZeroU32::new(u32::try_from(events).unwrap_or(u32::MAX)) else {
        return Ok(());
    };
    let queued = counts.queued(tenant.id);
    if queued + i64::from(n.get()) > tenant.max_queued_jobs {
        return Err(Refusal::QueueFull {
            queued,
            cap: tenant.max_queued_jobs,
        });
    }
    spend(tenant, n).await?;
    counts.add(tenant.id, i64::from(n.get()));
    Ok(())
}

/// Spends `n` of the tenant's rate-limit tokens (for requests that queue nothing, such as source
/// changes).
pub async fn spend(tenant: &TenantRecord, n: NonZeroU32) -> Result<(), Refusal> {
    spend_from(&tenant.limiter, n).await
}

/// Spends `n` tokens of `bucket`, as a [`Refusal`] when it cannot.
pub async fn spend_from(bucket: &Bucket, n: NonZeroU32) -> Result<(), Refusal> {
    match bucket.take(n.get()).await {
        Ok(()) => Ok(()),
        Err(Denied::Wait(wait)) => Err(Refusal::RateLimited {
            retry_after_secs: wait.as_secs_f64().ceil() as u64,
        }),
        Err(Denied::OverBurst { asked, burst }) => Err(Refusal::OverBurst {
            events: asked as usize,
            burst,
        }),
        Err(Denied::Unavailable(error)) => {
            tracing::warn!(%error, "could not lease a shared rate limit");
            Err(Refusal::Unavailable)
        }
    }
}

/// Keeps [`QueueCounts`] and the job gauges current until `shutdown` turns true.
pub async fn refresh_counts(
    pool: PgPool,
    counts: Arc<QueueCounts>,
    metrics: Arc<Metrics>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticker = tokio::time::interval(COUNT_INTERVAL);
    let every = (STATUS_COUNT_INTERVAL.as_secs() / COUNT_INTERVAL.as_secs()).max(1);
    let mut tick = 0u64;
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        match jobs::queued_by_tenant(&pool).await {
            Ok(rows) => {
                let total = rows.iter().map(|row| row.n).sum();
                metrics
                    .queue_depth
                    .with_label_values(&["queued"])
                    .set(total);
                counts.replace(rows.into_iter().map(|row| (row.tenant_id, row.n)).collect());
            }
            Err(error) => {
                tracing::warn!(%error, "could not count queued jobs; keeping the last counts")
            }
        }
        if tick % every == 0 {
            match jobs::count_by_status(&pool).await {
                Ok(rows) => {
                    for status in sentinel_queue::JobStatus::ALL {
                        let n = rows
                            .iter()
                            .find(|row| row.status == status.as_str())
                            .map_or(0, |row| row.n);
                        metrics
                            .queue_depth
                            .with_label_values(&[status.as_str()])
                            .set(n);
                    }
                }
                Err(error) => tracing::warn!(%error, "could not count jobs by status"),
            }
        }
        tick += 1;
    }
}
