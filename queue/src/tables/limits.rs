//! `rate_buckets` and `limit_slots`: tenants' limits shared by every gateway (see
//! migrations/…_shared_limits.sql and the gateway's `limits` module).

use sqlx::PgExecutor;
use uuid::Uuid;

/// What [`lease_tokens`] granted: all of `need` and some of `extra`, or nothing and how long until
/// the bucket holds `need`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Lease {
    pub granted: f64,
    pub wait_secs: f64,
}

/// Takes `need` tokens, and up to `extra` more, from the tenant's `budget` bucket (refilled at
/// `per_sec` up to `burst`), after putting back `returned`.
#[allow(clippy::too_many_arguments)]
pub async fn lease_tokens(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    budget: &str,
    per_sec: f64,
    burst: f64,
    need: f64,
    extra: f64,
    returned: f64,
) -> sqlx::Result<Lease> {
    let row = sqlx::query!(
        r#"SELECT granted AS "granted!", wait_secs AS "wait_secs!"
           FROM lease_rate_tokens($1, $2, $3, $4, $5, $6, $7)"#,
        tenant_id,
        budget,
        per_sec,
        burst,
        need,
        extra,
        returned
    )
    .fetch_one(executor)
    .await?;
    Ok(Lease {
        granted: row.granted,
        wait_secs: row.wait_secs,
    })
}

/// Puts unspent tokens back into their buckets (never past a bucket's burst).
pub async fn return_tokens(
    executor: impl PgExecutor<'_>,
    tenants: &[Uuid],
    budgets: &[String],
    tokens: &[f64],
) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT return_rate_tokens($1, $2, $3)",
        tenants,
        budgets,
        tokens
    )
    .execute(executor)
    .await
    .map(|_| ())
}

/// Takes one of the tenant's `cap` places of `slot` for `gateway_id`: `Ok(None)` when taken,
/// `Ok(Some(held))` with the places live gateways hold when all are taken.
pub async fn lease_slot(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    slot: &str,
    gateway_id: Uuid,
    cap: i32,
    ttl_secs: f64,
) -> sqlx::Result<Option<i64>> {
    let row = sqlx::query!(
        r#"SELECT taken AS "taken!", held AS "held!" FROM lease_limit_slot($1, $2, $3, $4, $5)"#,
        tenant_id,
        slot,
        gateway_id,
        cap,
        ttl_secs
    )
    .fetch_one(executor)
    .await?;
    Ok((!row.taken).then_some(row.held))
}

/// Gives one place of the tenant's `slot` back.
pub async fn release_slot(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    slot: &str,
    gateway_id: Uuid,
) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT release_limit_slot($1, $2, $3)",
        tenant_id,
        slot,
        gateway_id
    )
    .execute(executor)
    .await
    .map(|_| ())
}

/// The gateway's heartbeat: the places it holds now, renewed for `ttl_secs`.
pub async fn renew_slots(
    executor: impl PgExecutor<'_>,
    gateway_id: Uuid,
    tenants: &[Uuid],
    slots: &[String],
    held: &[i32],
    ttl_secs: f64,
) -> sqlx::Result<()> {
    sqlx::query!(
        "SELECT renew_limit_slots($1, $2, $3, $4, $5)",
        gateway_id,
        tenants,
        slots,
        held,
        ttl_secs
    )
    .execute(executor)
    .await
    .map(|_| ())
}
