//! `api_keys`: making, revoking and looking up tenants' API keys.

use sqlx::PgExecutor;
use uuid::Uuid;

use crate::CONFIG_CHANNEL;

/// Stores a key of tenant `tenant_id` (only its prefix and the SHA-256 of its secret).
pub async fn insert(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    prefix: &str,
    secret_sha256: &[u8],
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO api_keys (tenant_id, prefix, secret_sha256) VALUES ($1, $2, $3)",
        tenant_id,
        prefix,
        secret_sha256
    )
    .execute(executor)
    .await
    .map(|_| ())
}

/// Stores a key of tenant `tenant_id` if the tenant exists: the key's id, `None` when it does not.
pub async fn insert_if_tenant(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    prefix: &str,
    secret_sha256: &[u8],
) -> sqlx::Result<Option<Uuid>> {
    sqlx::query_scalar!(
        "INSERT INTO api_keys (tenant_id, prefix, secret_sha256)
             SELECT id, $2, $3 FROM tenants WHERE id = $1 RETURNING id",
        tenant_id,
        prefix,
        secret_sha256
    )
    .fetch_optional(executor)
    .await
}

/// Revokes key `id` (once: a second revocation keeps the first time) and tells every gateway
/// (`api_key:<prefix>` on [`CONFIG_CHANNEL`]): the key's prefix, `None` when there is no such key.
pub async fn revoke(executor: impl PgExecutor<'_>, id: Uuid) -> sqlx::Result<Option<String>> {
    let revoked = sqlx::query!(
        r#"WITH revoked AS (
                   UPDATE api_keys SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING prefix
               )
               SELECT (SELECT count(pg_notify($2, 'api_key:' || prefix)) FROM revoked) AS "n!",
                      (SELECT min(prefix) FROM revoked) AS prefix"#,
        id,
        CONFIG_CHANNEL
    )
    .fetch_one(executor)
    .await?;
    Ok(revoked.prefix.filter(|_| revoked.n > 0))
}

/// An unrevoked key's tenant and the SHA-256 of its secret.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub tenant_id: Uuid,
    pub secret_sha256: Vec<u8>,
}

/// The unrevoked key with `prefix`.
pub async fn active(executor: impl PgExecutor<'_>, prefix: &str) -> sqlx::Result<Option<KeyRow>> {
    sqlx::query_as!(
        KeyRow,
        "SELECT tenant_id, secret_sha256 FROM api_keys WHERE prefix = $1 AND revoked_at IS NULL",
        prefix
    )
    .fetch_optional(executor)
    .await
}
