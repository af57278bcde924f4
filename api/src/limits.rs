//! Tenants' limits that hold across every gateway on one database, without a database round trip
//! per request (migrations/…_shared_limits.sql).
//!
//! **Rates** (a tenant's events and API requests per second, and the directory's uncached
//! lookups) are token buckets in `rate_buckets`. A gateway leases a slice of a bucket (what the
//! request needs plus a quarter second of the bucket's rate) and spends it locally for at most
//! [`LEASE`]; whatever is left then goes back ([`Limits::run`]). Requests of a tenant on one
//! gateway wait for that gateway's one lease in flight, so a burst costs one round trip, not one
//! per request; a bucket found empty is not asked again before it has refilled, so a tenant
//! flooding a gateway costs the database about one lease per refill.
//!
//! Tokens only leave the bucket through leases, so across N gateways the tenant is admitted at
//! most what one gateway would admit (`burst` at once, `per_sec` after), plus what the bucket
//! refills while slices are out: at most `per_sec` × [`LEASE`] in any window, whatever N is. The
//! cost is the other way: tokens leased by one gateway and not yet spent are not available to
//! another for up to [`LEASE`].
//!
//! **Caps** (a tenant's open event streams and waiting long polls) are places in `limit_slots`.
//! Taking one is a round trip (an event stream or a long poll is one request that lasts seconds);
//! giving it back is another, sent when the guard drops. Each gateway renews what it holds every
//! [`RENEW_EVERY`]; a gateway that dies loses its places after [`SLOT_TTL`].
//!
//! When the database cannot be reached, nothing is admitted (503 `database_unavailable`): an
//! admitted request could not be stored either.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sentinel_queue::tables::limits as table;
use sqlx::PgPool;
use tokio::sync::watch;
use uuid::Uuid;

/// How long a leased slice may be spent before what is left of it goes back.
pub const LEASE: Duration = Duration::from_secs(1);
/// How long a gateway's places last unless it renews them.
pub const SLOT_TTL: Duration = Duration::from_secs(30);
/// How often a gateway renews its places and returns its stale slices.
pub const RENEW_EVERY: Duration = Duration::from_secs(10);
/// How often stale slices are looked for.
const RETURN_EVERY: Duration = Duration::from_millis(250);

/// A shared budget: what its tokens are for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Budget {
    /// A tenant's events (each webhook event, submission, replay, progress report, change).
    Events,
    /// A tenant's authenticated API requests.
    Requests,
    /// Uncached directory lookups, across all tenants (the bucket of the nil tenant).
    DirectoryLookups,
}

impl Budget {
    fn as_str(self) -> &'static str {
        match self {
            Budget::Events => "events",
            Budget::Requests => "requests",
            Budget::DirectoryLookups => "directory_lookups",
        }
    }
}

/// A capped kind of place a tenant holds while a request lasts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Slot {
    /// An open event stream (`SENTINEL_SSE_MAX_PER_TENANT`).
    Streams,
    /// A waiting long poll of the worker API (`SENTINEL_CLAIM_MAX_POLLS_PER_TENANT`).
    Polls,
}

impl Slot {
    fn as_str(self) -> &'static str {
        match self {
            Slot::Streams => "streams",
            Slot::Polls => "polls",
        }
    }
}

/// Why tokens were not granted.
#[derive(Debug)]
pub enum Denied {
    /// The bucket holds fewer than asked; it will hold them after this long.
    Wait(Duration),
    /// More than the bucket's burst was asked at once: never possible.
    OverBurst { asked: u32, burst: u32 },
    /// The database did not answer the lease.
    Unavailable(sqlx::Error),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct BucketKey {
    tenant_id: Uuid,
    budget: Budget,
    per_sec: u32,
    burst: u32,
}

/// What a gateway holds of one bucket.
#[derive(Debug)]
struct Slice {
    tokens: f64,
    /// When what is left of `tokens` must go back.
    expires: Instant,
    /// The bucket was found without enough tokens; it is not asked again before then.
    empty_until: Option<Instant>,
}

/// One shared token bucket, as this gateway sees it.
#[derive(Debug)]
pub struct Bucket {
    key: BucketKey,
    pool: PgPool,
    slice: tokio::sync::Mutex<Slice>,
}

impl Bucket {
    /// The most tokens one take may ask for.
    pub fn burst(&self) -> u32 {
        self.key.burst
    }

    /// Spends `n` tokens: from this gateway's slice when it holds them, else from a new lease.
    pub async fn take(&self, n: u32) -> Result<(), Denied> {
        if n > self.key.burst {
            return Err(Denied::OverBurst {
                asked: n,
                burst: self.key.burst,
            });
        }
        let wanted = f64::from(n);
        let mut slice = self.slice.lock().await;
        let now = Instant::now();
        if now < slice.expires && slice.tokens >= wanted {
            slice.tokens -= wanted;
            return Ok(());
        }
        if let Some(until) = slice.empty_until {
            if now < until {
                return Err(Denied::Wait(until - now));
            }
        }
        // What is left goes back with this lease, so every token held is at most LEASE old.
        let returned = std::mem::take(&mut slice.tokens);
        let per_sec = f64::from(self.key.per_sec);
        let burst = f64::from(self.key.burst);
        let extra = (per_sec * LEASE.as_secs_f64() / 4.0)
            .floor()
            .min(burst - wanted);
        let lease = table::lease_tokens(
            &self.pool,
            self.key.tenant_id,
            self.key.budget.as_str(),
            per_sec,
            burst,
            wanted,
            extra,
            returned,
        )
        .await
        .map_err(Denied::Unavailable)?;
        if lease.granted >= wanted {
            slice.tokens = lease.granted - wanted;
            slice.expires = now + LEASE;
            slice.empty_until = None;
            Ok(())
        } else {
            let wait = Duration::from_secs_f64(lease.wait_secs.clamp(0.001, 3_600.0));
            slice.empty_until = Some(now + wait);
            Err(Denied::Wait(wait))
        }
    }

    /// The slice's unspent tokens when it is past its lease (and not being leased right now).
    fn take_stale(&self, now: Instant) -> Option<f64> {
        let mut slice = self.slice.try_lock().ok()?;
        if now < slice.expires || slice.tokens <= 0.0 {
            return None;
        }
        Some(std::mem::take(&mut slice.tokens))
    }

    /// The slice's unspent tokens, whatever their age (at shutdown).
    fn take_all(&self) -> Option<f64> {
        let mut slice = self.slice.try_lock().ok()?;
        (slice.tokens > 0.0).then(|| std::mem::take(&mut slice.tokens))
    }
}

/// This gateway's leases of every shared limit.
pub struct Limits {
    pool: PgPool,
    gateway_id: Uuid,
    buckets: moka::sync::Cache<BucketKey, Arc<Bucket>>,
    slots: Mutex<HashMap<(Uuid, Slot), i32>>,
    /// Held while the places are written, so a renewal and a release cannot cross.
    writes: tokio::sync::Mutex<()>,
}

/// One of a tenant's places, given back when dropped.
pub struct SlotGuard {
    limits: Arc<Limits>,
    tenant_id: Uuid,
    slot: Slot,
}

impl std::fmt::Debug for SlotGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SlotGuard")
            .field("tenant_id", &self.tenant_id)
            .field("slot", &self.slot)
            .finish()
    }
}

/// Why a place was not taken.
#[derive(Debug)]
pub enum SlotDenied {
    /// Live gateways hold all of the tenant's places: this many.
    Full {
        held: i64,
    },
    Unavailable(sqlx::Error),
}

impl SlotDenied {
    /// The answer to a request refused a place: 429 `code` naming the cap's `setting`, or 503.
    pub fn into_api_error(
        self,
        code: &str,
        what: &str,
        setting: &str,
        retry_after_secs: u64,
    ) -> crate::error::ApiError {
        match self {
            SlotDenied::Full { held } => crate::error::ApiError::too_many(
                code,
                format!(
                    "the tenant already has {held} {what} across all gateways, the most allowed \
                     ({setting})"
                ),
                retry_after_secs,
            ),
            SlotDenied::Unavailable(error) => {
                tracing::warn!(%error, "could not lease one of a tenant's places");
                crate::error::ApiError::unavailable(
                    "the database is unreachable or saturated; retry shortly",
                )
            }
        }
    }
}

impl Limits {
    pub fn new(pool: PgPool) -> Arc<Self> {
        Arc::new(Self {
            pool,
            gateway_id: Uuid::new_v4(),
            // A bucket idle for a minute is dropped (its slice went back long before).
            buckets: moka::sync::Cache::builder()
                .max_capacity(100_000)
                .time_to_idle(Duration::from_secs(60))
                .build(),
            slots: Mutex::default(),
            writes: tokio::sync::Mutex::new(()),
        })
    }

    /// This gateway's id in `limit_slots`.
    pub fn gateway_id(&self) -> Uuid {
        self.gateway_id
    }

    /// The tenant's bucket of `budget`, refilled at `per_sec` up to `burst` (a changed quota is a
    /// new bucket key here, and the same row in the database).
    pub fn bucket(&self, tenant_id: Uuid, budget: Budget, per_sec: u32, burst: u32) -> Arc<Bucket> {
        let key = BucketKey {
            tenant_id,
            budget,
            per_sec: per_sec.max(1),
            burst: burst.max(1),
        };
        self.buckets.get_with(key, || {
            Arc::new(Bucket {
                key,
                pool: self.pool.clone(),
                slice: tokio::sync::Mutex::new(Slice {
                    tokens: 0.0,
                    expires: Instant::now(),
                    empty_until: None,
                }),
            })
        })
    }

    fn held(&self) -> std::sync::MutexGuard<'_, HashMap<(Uuid, Slot), i32>> {
        self.slots
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes one of the tenant's `cap` places of `slot` across all gateways.
    pub async fn slot(
        self: &Arc<Self>,
        tenant_id: Uuid,
        slot: Slot,
        cap: usize,
    ) -> Result<SlotGuard, SlotDenied> {
        let _writing = self.writes.lock().await;
        let cap = i32::try_from(cap).unwrap_or(i32::MAX);
        let full = table::lease_slot(
            &self.pool,
            tenant_id,
            slot.as_str(),
            self.gateway_id,
            cap,
            SLOT_TTL.as_secs_f64(),
        )
        .await
        .map_err(SlotDenied::Unavailable)?;
        if let Some(held) = full {
            return Err(SlotDenied::Full { held });
        }
        *self.held().entry((tenant_id, slot)).or_insert(0) += 1;
        Ok(SlotGuard {
            limits: self.clone(),
            tenant_id,
            slot,
        })
    }

    /// Returns stale slices every [`RETURN_EVERY`] and renews this gateway's places every
    /// [`RENEW_EVERY`] until `shutdown`; then gives everything back.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut returns = tokio::time::interval(RETURN_EVERY);
        let mut renewals = tokio::time::interval(RENEW_EVERY);
        loop {
            // Which tick it is, decided before any await: the shutdown's guard is not Send.
            let renew = tokio::select! {
                _ = returns.tick() => false,
                _ = renewals.tick() => true,
                _ = shutdown.wait_for(|stop| *stop) => break,
            };
            if renew {
                self.renew().await;
            } else {
                let now = Instant::now();
                self.give_back(|bucket| bucket.take_stale(now)).await;
            }
        }
        self.give_back(Bucket::take_all).await;
        self.held().clear();
        self.renew().await;
    }

    async fn give_back(&self, take: impl Fn(&Bucket) -> Option<f64>) {
        let mut tenants = Vec::new();
        let mut budgets = Vec::new();
        let mut tokens = Vec::new();
        for (_, bucket) in self.buckets.iter() {
            if let Some(unspent) = take(&bucket) {
                tenants.push(bucket.key.tenant_id);
                budgets.push(bucket.key.budget.as_str().to_owned());
                tokens.push(unspent);
            }
        }
        if tenants.is_empty() {
            return;
        }
        // Tokens that cannot go back are lost to the tenant until its bucket refills: never more
        // than it may spend.
        if let Err(error) = table::return_tokens(&self.pool, &tenants, &budgets, &tokens).await {
            tracing::warn!(%error, "could not give unspent rate-limit tokens back");
        }
    }

    async fn renew(&self) {
        let _writing = self.writes.lock().await;
        let (tenants, (slots, held)): (Vec<Uuid>, (Vec<String>, Vec<i32>)) = self
            .held()
            .iter()
            .filter(|(_, &n)| n > 0)
            .map(|(&(tenant, slot), &n)| (tenant, (slot.as_str().to_owned(), n)))
            .unzip();
        if let Err(error) = table::renew_slots(
            &self.pool,
            self.gateway_id,
            &tenants,
            &slots,
            &held,
            SLOT_TTL.as_secs_f64(),
        )
        .await
        {
            tracing::warn!(%error, "could not renew this gateway's stream and poll places");
        }
    }
}

impl Limits {
    fn forget(&self, tenant_id: Uuid, slot: Slot) {
        let mut held = self.held();
        if let Some(n) = held.get_mut(&(tenant_id, slot)) {
            *n -= 1;
            if *n <= 0 {
                held.remove(&(tenant_id, slot));
            }
        }
    }

    async fn release(&self, tenant_id: Uuid, slot: Slot) {
        let _writing = self.writes.lock().await;
        self.forget(tenant_id, slot);
        if let Err(error) =
            table::release_slot(&self.pool, tenant_id, slot.as_str(), self.gateway_id).await
        {
            tracing::debug!(%error, "could not give a place back; the next renewal will");
        }
    }
}

impl Drop for SlotGuard {
    fn drop(&mut self) {
        let (limits, tenant_id, slot) = (self.limits.clone(), self.tenant_id, self.slot);
        match tokio::runtime::Handle::try_current() {
            // Given back at once, in turn with the renewals (if this fails, the next renewal
            // writes what is held).
            Ok(runtime) => {
                runtime.spawn(async move { limits.release(tenant_id, slot).await });
            }
            Err(_) => limits.forget(tenant_id, slot),
        }
    }
}
