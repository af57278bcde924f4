//! The gateway's cached view of tenants, API keys and sources. Every gateway caches them in moka
//! and drops its caches on a NOTIFY on `sentinel_config`, which every change sends in its own
//! transaction, so a suspension, a revocation or a deleted source reaches all gateways within
//! milliseconds (and within the cache's 60 s time-to-live even if a notification were lost).

use std::{num::NonZeroU32, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use moka::future::Cache;
use sentinel_queue::{
    platform::{Accepted, Platform, Rejected, Verifier},
    tables::{api_keys, sources, tenants},
};
use serde_json::Value as JsonValue;
use sqlx::PgPool;
use uuid::Uuid;

use crate::{
    admission::RequestBudget,
    error::ApiError,
    limits::{Bucket, Budget, Limits},
};

// The NOTIFY channel that tells gateways to drop their caches; the queue crate names it.
pub use sentinel_queue::CONFIG_CHANNEL;

const TTL: Duration = Duration::from_secs(60);

#[derive(Debug)]
pub struct TenantRecord {
    pub id: Uuid,
    pub name: String,
    pub active: bool,
    /// The tenant's shared bucket sized by its `rate_limit_per_sec` and `burst`: what the
    /// tenant's events (webhooks, submissions, replays, progress, configuration changes) spend,
    /// across all gateways. It outlives this record (see [`Limits`]).
    pub limiter: Arc<Bucket>,
    /// The tenant's API requests budget (every authenticated call spends one token), sized by the
    /// gateway's [`RequestBudget`], shared by all gateways.
    pub requests: Arc<Bucket>,
    /// The tenant's burst: the most tokens one request can spend.
    pub burst: NonZeroU32,
    /// The most jobs the tenant may have queued.
    pub max_queued_jobs: i64,
}

/// A tenant as cached, without its limiter.
#[derive(Clone)]
struct TenantRow {
    id: Uuid,
    name: String,
    active: bool,
    per_sec: NonZeroU32,
    burst: NonZeroU32,
    max_queued_jobs: i64,
}

#[derive(Debug)]
pub struct KeyRecord {
    pub tenant_id: Uuid,
    pub secret_sha256: Vec<u8>,
}

#[derive(Debug)]
pub struct SourceRecord {
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub platform: Platform,
    /// The secrets, decoded once for every webhook this source receives.
    pub verifier: Verifier,
    /// The secrets a rotation replaced, and until when they are still taken.
    pub previous: Option<(Verifier, DateTime<Utc>)>,
}

impl SourceRecord {
    pub fn secrets(&self) -> &JsonValue {
        self.verifier.secrets()
    }

    /// The replaced secrets while their overlap lasts.
    pub fn previous_at(&self, now: DateTime<Utc>) -> Option<&Verifier> {
        self.previous
            .as_ref()
            .filter(|(_, until)| now < *until)
            .map(|(verifier, _)| verifier)
    }

    /// The current secrets, then the replaced ones while their overlap lasts.
    pub fn verifiers(&self, now: DateTime<Utc>) -> impl Iterator<Item = &Verifier> {
        std::iter::once(&self.verifier).chain(self.previous_at(now))
    }

    /// Authenticates and reads a webhook ([`Verifier::accept`]) with the current secrets and,
    /// during a rotation's overlap, the replaced ones; a failure is the current secrets' answer.
    pub fn accept(
        &self,
        headers: &poem::http::HeaderMap,
        body: &[u8],
        now: DateTime<Utc>,
    ) -> Result<Accepted, Rejected> {
        match self.verifier.accept(headers, body, now.timestamp()) {
            Err(Rejected::Unauthenticated(reason)) => match self.previous_at(now) {
                Some(previous) => previous
                    .accept(headers, body, now.timestamp())
                    .map_err(|_| Rejected::Unauthenticated(reason)),
                None => Err(Rejected::Unauthenticated(reason)),
            },
            other => other,
        }
    }
}

#[derive(Clone)]
pub struct Directory {
    pool: PgPool,
    tenants: Cache<Uuid, Option<TenantRow>>,
    keys: Cache<String, Option<Arc<KeyRecord>>>,
    sources: Cache<Uuid, Option<Arc<SourceRecord>>>,
    /// The shared rate limits. Buckets are kept apart from the records and never dropped on a
    /// configuration change, so creating or deleting a source (which invalidates every cache)
    /// refills no one's limit.
    limits: Arc<Limits>,
    requests: (NonZeroU32, NonZeroU32),
    /// Database lookups for keys, tenants and sources that are not cached, across all gateways:
    /// random source ids and key prefixes cannot turn into unbounded database reads.
    lookups: Arc<Bucket>,
}

/// Uncached directory lookups the database serves per second by default (twice that in a burst),
/// across all callers and gateways (`SENTINEL_DIRECTORY_LOOKUPS_PER_SEC`); beyond them a lookup answers 503
/// with `Retry-After`.
pub const DEFAULT_LOOKUPS_PER_SEC: u32 = 2_000;

fn cache<K, V>() -> Cache<K, V>
where
    K: std::hash::Hash + Eq + Send + Sync + 'static,
    V: Clone + Send + Sync + 'static,
{
    Cache::builder()
        .max_capacity(100_000)
        .time_to_live(TTL)
        .build()
}

fn from_cache_error(error: Arc<sqlx::Error>) -> ApiError {
    match &*error {
        sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed => {
            ApiError::unavailable("the database is unreachable or saturated; retry shortly")
        }
        other => ApiError::internal(other),
    }
}

impl Directory {
    pub fn new(
        pool: PgPool,
        limits: Arc<Limits>,
        lookups_per_sec: u32,
        requests: RequestBudget,
    ) -> Self {
        let per_sec = lookups_per_sec.max(1);
        let positive = |n: usize| {
            NonZeroU32::new(u32::try_from(n).unwrap_or(u32::MAX)).unwrap_or(NonZeroU32::MIN)
        };
        Self {
            requests: (positive(requests.per_sec), positive(requests.burst)),
            pool,
            tenants: cache(),
            keys: cache(),
            sources: cache(),
            lookups: limits.bucket(
                Uuid::nil(),
                Budget::DirectoryLookups,
                per_sec,
                per_sec.saturating_mul(2),
            ),
            limits,
        }
    }

    /// Spends one of the uncached-lookup tokens, or refuses the lookup.
    async fn budget_lookup(lookups: &Bucket) -> Result<(), sqlx::Error> {
        match lookups.take(1).await {
            Ok(()) => Ok(()),
            Err(crate::limits::Denied::Unavailable(error)) => Err(error),
            Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }

    pub fn invalidate_all(&self) {
        self.tenants.invalidate_all();
        self.keys.invalidate_all();
        self.sources.invalidate_all();
    }

    /// Drops the one entry a `sentinel_config` payload names (`tenant:<id>`, `api_key:<prefix>`,
    /// `source:<id>`); everything when the payload names nothing this gateway knows.
    pub async fn invalidate(&self, payload: &str) {
        let (what, id) = payload.split_once(':').unwrap_or((payload, ""));
        match (what, id.parse::<Uuid>()) {
            ("tenant", Ok(id)) => self.tenants.invalidate(&id).await,
            ("source", Ok(id)) => self.sources.invalidate(&id).await,
            ("api_key", _) if !id.is_empty() => self.keys.invalidate(id).await,
            _ => self.invalidate_all(),
        }
    }

    pub async fn tenant(&self, id: Uuid) -> Result<Option<Arc<TenantRecord>>, ApiError> {
        let pool = self.pool.clone();
        let lookups = self.lookups.clone();
        let row = self
            .tenants
            .try_get_with(id, async move {
                Self::budget_lookup(&lookups).await?;
                let row = tenants::limits(&pool, id).await?;
                Ok::<_, sqlx::Error>(row.map(|row| {
                    let per_sec = NonZeroU32::new(row.rate_limit_per_sec.max(1) as u32)
                        .unwrap_or(NonZeroU32::MIN);
                    let burst = NonZeroU32::new(row.burst.max(1) as u32).unwrap_or(NonZeroU32::MIN);
                    TenantRow {
                        id: row.id,
                        name: row.name,
                        active: row.status == "active",
                        per_sec,
                        burst,
                        max_queued_jobs: row.max_queued_jobs.max(1) as i64,
                    }
                }))
            })
            .await
            .map_err(from_cache_error)?;
        // The limiter is looked up outside the record's cache entry, so the record can come and go.
        Ok(row.map(|row| {
            Arc::new(TenantRecord {
                id: row.id,
                limiter: self.limits.bucket(
                    row.id,
                    Budget::Events,
                    row.per_sec.get(),
                    row.burst.get(),
                ),
                requests: self.limits.bucket(
                    row.id,
                    Budget::Requests,
                    self.requests.0.get(),
                    self.requests.1.get(),
                ),
                name: row.name,
                active: row.active,
                burst: row.burst,
                max_queued_jobs: row.max_queued_jobs,
            })
        }))
    }

    pub async fn key(&self, prefix: &str) -> Result<Option<Arc<KeyRecord>>, ApiError> {
        let pool = self.pool.clone();
        let owned = prefix.to_owned();
        let lookups = self.lookups.clone();
        self.keys
            .try_get_with(owned.clone(), async move {
                Self::budget_lookup(&lookups).await?;
                let row = api_keys::active(&pool, &owned).await?;
                Ok::<_, sqlx::Error>(row.map(|row| {
                    Arc::new(KeyRecord {
                        tenant_id: row.tenant_id,
                        secret_sha256: row.secret_sha256,
                    })
                }))
            })
            .await
            .map_err(from_cache_error)
    }

    pub async fn source(&self, id: Uuid) -> Result<Option<Arc<SourceRecord>>, ApiError> {
        let pool = self.pool.clone();
        let lookups = self.lookups.clone();
        self.sources
            .try_get_with(id, async move {
                Self::budget_lookup(&lookups).await?;
                let row = sources::for_ingress(&pool, id).await?;
                Ok::<_, sqlx::Error>(row.and_then(|row| {
                    let platform: Platform = row.platform.parse().ok()?;
                    Some(Arc::new(SourceRecord {
                        id: row.id,
                        tenant_id: row.tenant_id,
                        platform,
                        verifier: Verifier::new(platform, row.secrets),
                        previous: row
                            .previous_secrets
                            .zip(row.previous_secrets_until)
                            .map(|(secrets, until)| (Verifier::new(platform, secrets), until)),
                    }))
                }))
            })
            .await
            .map_err(from_cache_error)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn directory() -> Directory {
        // A lazy pool: these tests never reach the database.
        let pool = sqlx::postgres::PgPoolOptions::new()
            .connect_lazy("postgres://nobody@127.0.0.1:1/none")
            .unwrap();
        Directory::new(
            pool.clone(),
            Limits::new(pool),
            10,
            RequestBudget::default(),
        )
    }

    #[tokio::test]
    async fn a_change_drops_only_the_entry_it_names() {
        let directory = directory();
        let (mine, theirs) = (Uuid::new_v4(), Uuid::new_v4());
        for id in [mine, theirs] {
            directory.sources.insert(id, None).await;
            directory.tenants.insert(id, None).await;
        }
        directory.keys.insert("abc".into(), None).await;
        directory.keys.insert("def".into(), None).await;

        directory.invalidate(&format!("source:{mine}")).await;
        directory.invalidate(&format!("tenant:{mine}")).await;
        directory.invalidate("api_key:abc").await;
        assert!(!directory.sources.contains_key(&mine));
        assert!(directory.sources.contains_key(&theirs));
        assert!(!directory.tenants.contains_key(&mine));
        assert!(directory.tenants.contains_key(&theirs));
        assert!(!directory.keys.contains_key("abc"));
        assert!(directory.keys.contains_key("def"));

        // A payload this gateway does not understand drops everything.
        directory.invalidate("something:new").await;
        directory.sources.run_pending_tasks().await;
        assert!(!directory.sources.contains_key(&theirs));
    }
}
