//! `/v1/admin/*`: tenants and their API keys, behind the admin token.

use std::sync::Arc;

use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::{
    param::{Path, Query},
    payload::Json,
    ApiResponse, Enum, Object, OpenApi,
};
use sentinel_queue::tables::{api_keys, tenants};
use uuid::Uuid;

use crate::{
    auth::{generate_api_key, AdminAuth},
    error::ApiError,
    ApiTags, AppState,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum TenantStatus {
    Active,
    Suspended,
}

#[derive(Debug, Object)]
pub struct CreateTenant {
    #[oai(validator(min_length = 1, max_length = 200))]
    pub name: String,
    /// Sustained webhooks per second; default 100.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
    pub rate_limit_per_sec: Option<i32>,
    /// Burst above the sustained rate; default 200. Each webhook event, job submission, replay
    /// and source change spends one token.
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
    pub burst: Option<i32>,
    /// The most jobs the tenant may have queued; default 100,000. Beyond it new work gets 429
    /// `queue_full`.
    #[oai(validator(minimum(value = "1"), maximum(value = "100000000")))]
    pub max_queued_jobs: Option<i32>,
}

#[derive(Debug, Object)]
pub struct PatchTenant {
    pub status: Option<TenantStatus>,
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
    pub rate_limit_per_sec: Option<i32>,
    #[oai(validator(minimum(value = "1"), maximum(value = "1000000")))]
    pub burst: Option<i32>,
    #[oai(validator(minimum(value = "1"), maximum(value = "100000000")))]
    pub max_queued_jobs: Option<i32>,
}

#[derive(Debug, Object)]
pub struct Tenant {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub rate_limit_per_sec: i32,
    pub burst: i32,
    pub max_queued_jobs: i32,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A tenant as the admin listing shows it: its settings and how much it holds.
#[derive(Debug, Object)]
pub struct TenantSummary {
    #[oai(flatten)]
    pub tenant: Tenant,
    /// Its queued jobs, as of the gateway's last count (every 2 s).
    pub queued_jobs: i64,
    /// Its sources that are not deleted.
    pub sources: i64,
    /// Its API keys that are not revoked.
    pub active_api_keys: i64,
}

#[derive(Debug, Object)]
pub struct TenantPage {
    /// Newest first.
    pub items: Vec<TenantSummary>,
    /// Pass as `cursor` for the next page; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

#[derive(Debug, Object)]
pub struct TenantCreated {
    pub id: Uuid,
    pub name: String,
    pub status: String,
    pub rate_limit_per_sec: i32,
    pub burst: i32,
    pub max_queued_jobs: i32,
    /// The tenant's first API key. It is shown only here.
    pub api_key: String,
}

#[derive(Debug, Object)]
pub struct ApiKeyCreated {
    pub id: Uuid,
    /// Shown only here; Sentinel keeps its SHA-256 alone.
    pub api_key: String,
}

#[derive(ApiResponse)]
pub enum CreatedTenant {
    #[oai(status = 201)]
    Created(Json<TenantCreated>),
}

#[derive(ApiResponse)]
pub enum CreatedKey {
    #[oai(status = 201)]
    Created(Json<ApiKeyCreated>),
}

#[derive(ApiResponse)]
pub enum Deleted {
    #[oai(status = 204)]
    NoContent,
}

pub struct AdminApi;

async fn tenant_summaries(
    state: &AppState,
    id: Option<Uuid>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<TenantSummary>, ApiError> {
    let page = tenants::SummaryPage { id, after, limit };
    let rows = tenants::summaries(&state.pool, page).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let (tenant, sources, active_api_keys) = row.into_parts();
            TenantSummary {
                queued_jobs: state.queue_counts.queued(tenant.id),
                sources,
                active_api_keys,
                tenant: tenant.into(),
            }
        })
        .collect())
}

impl From<tenants::TenantRow> for Tenant {
    fn from(row: tenants::TenantRow) -> Self {
        Tenant {
            id: row.id,
            name: row.name,
            status: row.status,
            rate_limit_per_sec: row.rate_limit_per_sec,
            burst: row.burst,
            max_queued_jobs: row.max_queued_jobs,
            created_at: row.created_at,
            updated_at: row.updated_at,
        }
    }
}

#[OpenApi(prefix_path = "/v1/admin", tag = "ApiTags::Admin")]
impl AdminApi {
    /// Create a tenant and its first API key.
    #[oai(path = "/tenants", method = "post", operation_id = "createTenant")]
    async fn create_tenant(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        body: Json<CreateTenant>,
    ) -> Result<CreatedTenant, ApiError> {
        let key = generate_api_key();
        let mut tx = state.pool.begin().await?;
        let new_tenant = tenants::NewTenant {
            name: &body.name,
            rate_limit_per_sec: body.rate_limit_per_sec,
            burst: body.burst,
            max_queued_jobs: body.max_queued_jobs,
        };
        let tenant = tenants::insert(&mut *tx, new_tenant).await?;
        api_keys::insert(&mut *tx, tenant.id, &key.prefix, &key.secret_sha256).await?;
        tx.commit().await?;
        tracing::info!(tenant.id = %tenant.id, "tenant created");
        Ok(CreatedTenant::Created(Json(TenantCreated {
            id: tenant.id,
            name: tenant.name,
            status: tenant.status,
            rate_limit_per_sec: tenant.rate_limit_per_sec,
            burst: tenant.burst,
            max_queued_jobs: tenant.max_queued_jobs,
            api_key: key.key,
        })))
    }

    /// The tenants, newest first, a page at a time.
    #[oai(path = "/tenants", method = "get", operation_id = "listTenants")]
    async fn list_tenants(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        #[oai(validator(minimum(value = "1"), maximum(value = "200")))] limit: Query<Option<i64>>,
        #[oai(validator(max_length = 100))] cursor: Query<Option<String>>,
    ) -> Result<Json<TenantPage>, ApiError> {
        let limit = limit.0.unwrap_or(50);
        // The cursor is the last item's `created_at` and id: `<RFC 3339>,<uuid>`.
        let after: Option<(DateTime<Utc>, Uuid)> = match cursor.0.as_deref() {
            None | Some("") => None,
            Some(text) => Some(
                text.split_once(',')
                    .and_then(|(at, id)| Some((at.parse().ok()?, id.parse().ok()?)))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "invalid_cursor",
                            "cursor must be a next_cursor from an earlier page",
                        )
                    })?,
            ),
        };
        let mut items = tenant_summaries(&state, None, after, limit + 1).await?;
        let next_cursor = (items.len() as i64 > limit)
            .then(|| {
                items.truncate(limit as usize);
                items.last().map(|item| {
                    format!(
                        "{},{}",
                        item.tenant
                            .created_at
                            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                        item.tenant.id
                    )
                })
            })
            .flatten();
        Ok(Json(TenantPage { items, next_cursor }))
    }

    /// One tenant, with how much it holds.
    #[oai(path = "/tenants/:id", method = "get", operation_id = "getTenant")]
    async fn get_tenant(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
    ) -> Result<Json<TenantSummary>, ApiError> {
        tenant_summaries(&state, Some(id.0), None, 1)
            .await?
            .pop()
            .map(Json)
            .ok_or_else(|| ApiError::not_found("tenant_not_found", format!("no tenant {}", id.0)))
    }

    /// Change a tenant's status or limits. A suspension reaches every gateway within a second.
    #[oai(path = "/tenants/:id", method = "patch", operation_id = "updateTenant")]
    async fn patch_tenant(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
        body: Json<PatchTenant>,
    ) -> Result<Json<Tenant>, ApiError> {
        let status = body.status.map(|status| match status {
            TenantStatus::Active => "active",
            TenantStatus::Suspended => "suspended",
        });
        let change = tenants::TenantChange {
            status,
            rate_limit_per_sec: body.rate_limit_per_sec,
            burst: body.burst,
            max_queued_jobs: body.max_queued_jobs,
        };
        let tenant: Tenant = tenants::update(&state.pool, id.0, change)
            .await?
            .ok_or_else(|| ApiError::not_found("tenant_not_found", format!("no tenant {}", id.0)))?
            .into();
        // At once on this gateway; the notification does the same on every other.
        state
            .directory
            .invalidate(&format!("tenant:{}", id.0))
            .await;
        Ok(Json(tenant))
    }

    /// Create another API key for a tenant (for rotation).
    #[oai(
        path = "/tenants/:id/api_keys",
        method = "post",
        operation_id = "createApiKey"
    )]
    async fn create_api_key(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
    ) -> Result<CreatedKey, ApiError> {
        let key = generate_api_key();
        let key_id = api_keys::insert_if_tenant(&state.pool, id.0, &key.prefix, &key.secret_sha256)
            .await?
            .ok_or_else(|| {
                ApiError::not_found("tenant_not_found", format!("no tenant {}", id.0))
            })?;
        Ok(CreatedKey::Created(Json(ApiKeyCreated {
            id: key_id,
            api_key: key.key,
        })))
    }

    /// Revoke an API key. Every gateway refuses it within a second.
    #[oai(
        path = "/api_keys/:id",
        method = "delete",
        operation_id = "revokeApiKey"
    )]
    async fn revoke_api_key(
        &self,
        _auth: AdminAuth,
        state: Data<&Arc<AppState>>,
        id: Path<Uuid>,
    ) -> Result<Deleted, ApiError> {
        let Some(prefix) = api_keys::revoke(&state.pool, id.0).await? else {
            return Err(ApiError::not_found(
                "api_key_not_found",
                format!("no API key {}", id.0),
            ));
        };
        state
            .directory
            .invalidate(&format!("api_key:{prefix}"))
            .await;
        Ok(Deleted::NoContent)
    }
}
