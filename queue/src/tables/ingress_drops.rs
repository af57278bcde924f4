//! `ingress_drops`: the webhooks ingress acknowledged without keeping.

use sqlx::PgExecutor;
use uuid::Uuid;

/// Records that a webhook of a suspended tenant was dropped (`tenant_suspended`), with the dedupe
/// key of its first event.
pub async fn record_suspended(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    source_id: Uuid,
    platform: &str,
    first_dedupe_key: Option<&str>,
) -> sqlx::Result<()> {
    sqlx::query!(
        "INSERT INTO ingress_drops (tenant_id, source_id, platform, reason, dedupe_key)
             VALUES ($1, $2, $3, 'tenant_suspended', $4)",
        tenant_id,
        source_id,
        platform,
        first_dedupe_key
    )
    .execute(executor)
    .await
    .map(|_| ())
}
