//! `tenants`: creating, listing, changing and looking up tenants.

use chrono::{DateTime, Utc};
use sqlx::PgExecutor;
use uuid::Uuid;

use crate::CONFIG_CHANNEL;

/// A tenant's row, as the admin API shows it.
#[derive(Debug, Clone)]
pub struct TenantRow {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub rate_limit_per_sec: i32,
    pub burst: i32,
    pub max_queued_jobs: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A tenant with how many live sources and unrevoked API keys it holds.
#[derive(Debug, Clone)]
pub struct TenantSummaryRow {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub rate_limit_per_sec: i32,
    pub burst: i32,
    pub max_queued_jobs: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    pub sources: i64,
    pub keys: i64,
}

impl TenantSummaryRow {
    /// The tenant's own columns, and its counts of sources and keys.
    pub fn into_parts(self) -> (TenantRow, i64, i64) {
        let tenant = TenantRow {
            id: self.id,
            name: self.name,
            status: self.status,
            rate_limit_per_sec: self.rate_limit_per_sec,
            burst: self.burst,
            max_queued_jobs: self.max_queued_jobs,
            created_at: self.created_at,
            updated_at: self.updated_at,
        };
        (tenant, self.sources, self.keys)
    }
}

/// Which tenants [`summaries`] reads: one (`id`), or a page of all of them, newest first, after
/// the `(created_at, id)` of the last one of the page before.
#[derive(Debug, Clone, Copy)]
pub struct SummaryPage {
    pub id: Option<Uuid>,
    pub after: Option<(DateTime<Utc>, Uuid)>,
    pub limit: i64,
}

/// The tenants of `page`, newest first, each with its counts.
pub async fn summaries(
    executor: impl PgExecutor<'_>,
    page: SummaryPage,
) -> sqlx::Result<Vec<TenantSummaryRow>> {
    let (after_at, after_id) = page.after.unzip();
    sqlx::query_as!(
        TenantSummaryRow,
        r#"SELECT t.id, t.name, t.status, t.rate_limit_per_sec, t.burst, t.max_queued_jobs,
                  t.created_at, t.updated_at,
                  (SELECT count(*) FROM sources s WHERE s.tenant_id = t.id AND s.deleted_at IS NULL) AS "sources!",
                  (SELECT count(*) FROM api_keys k WHERE k.tenant_id = t.id AND k.revoked_at IS NULL) AS "keys!"
           FROM tenants t
           WHERE ($1::uuid IS NULL OR t.id = $1)
             AND ($2::timestamptz IS NULL OR (t.created_at, t.id) < ($2, $3::uuid))
           ORDER BY t.created_at DESC, t.id DESC
           LIMIT $4"#,
        page.id,
        after_at,
        after_id,
        page.limit
    )
    .fetch_all(executor)
    .await
}

/// A new tenant's settings; the limits left out take the defaults (100 per second, a burst of
/// 200, 100,000 queued jobs).
#[derive(Debug, Clone, Copy)]
pub struct NewTenant<'a> {
    pub name: &'a str,
    pub rate_limit_per_sec: Option<i32>,
    pub burst: Option<i32>,
    pub max_queued_jobs: Option<i32>,
}

/// Inserts a tenant.
pub async fn insert(
    executor: impl PgExecutor<'_>,
    tenant: NewTenant<'_>,
) -> sqlx::Result<TenantLimits> {
    sqlx::query_as!(
        TenantLimits,
        "INSERT INTO tenants (name, rate_limit_per_sec, burst, max_queued_jobs)
             VALUES ($1, coalesce($2, 100), coalesce($3, 200), coalesce($4, 100000))
             RETURNING id, name, status, rate_limit_per_sec, burst, max_queued_jobs",
        tenant.name,
        tenant.rate_limit_per_sec,
        tenant.burst,
        tenant.max_queued_jobs
    )
    .fetch_one(executor)
    .await
}

/// What [`update`] changes; `None` keeps the column.
#[derive(Debug, Clone, Copy)]
pub struct TenantChange<'a> {
    pub status: Option<&'a str>,
    pub rate_limit_per_sec: Option<i32>,
    pub burst: Option<i32>,
    pub max_queued_jobs: Option<i32>,
}

/// Changes tenant `id` and tells every gateway (`tenant:<id>` on [`CONFIG_CHANNEL`]); `None` when
/// there is no such tenant.
pub async fn update(
    executor: impl PgExecutor<'_>,
    id: Uuid,
    change: TenantChange<'_>,
) -> sqlx::Result<Option<TenantRow>> {
    let row = sqlx::query!(
        r#"WITH changed AS (
                   UPDATE tenants SET status = coalesce($2, status),
                                      rate_limit_per_sec = coalesce($3, rate_limit_per_sec),
                                      burst = coalesce($4, burst),
                                      max_queued_jobs = coalesce($6, max_queued_jobs),
                                      updated_at = now()
                   WHERE id = $1
                   RETURNING id, name, status, rate_limit_per_sec, burst, max_queued_jobs, created_at, updated_at
               )
               SELECT id, name, status, rate_limit_per_sec, burst, max_queued_jobs, created_at, updated_at,
                      (SELECT count(pg_notify($5, 'tenant:' || c.id::text)) FROM changed c) AS "notified!"
               FROM changed"#,
        id,
        change.status,
        change.rate_limit_per_sec,
        change.burst,
        CONFIG_CHANNEL,
        change.max_queued_jobs
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|row| TenantRow {
        id: row.id,
        name: row.name,
        status: row.status,
        rate_limit_per_sec: row.rate_limit_per_sec,
        burst: row.burst,
        max_queued_jobs: row.max_queued_jobs,
        created_at: row.created_at,
        updated_at: row.updated_at,
    }))
}

/// A tenant's status and limits: what the gateway's directory caches, and what making one
/// answers.
#[derive(Debug, Clone)]
pub struct TenantLimits {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub rate_limit_per_sec: i32,
    pub burst: i32,
    pub max_queued_jobs: i32,
}

/// Tenant `id`'s status and limits.
pub async fn limits(executor: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<TenantLimits>> {
    sqlx::query_as!(
        TenantLimits,
        "SELECT id, name, status, rate_limit_per_sec, burst, max_queued_jobs FROM tenants WHERE id = $1",
        id
    )
    .fetch_optional(executor)
    .await
}
