//! `events`: the log of job state changes, as the gateway's hub and SSE streams read it.

use sqlx::PgExecutor;
use uuid::Uuid;

/// An event of a page. `data` (as text) is carried only when it is at most the page's
/// `inline_data_bytes`; `bytes` is its length either way, and `carried` the bytes of data the page
/// carries through this row.
#[derive(Debug, Clone)]
pub struct EventRow {
    pub seq: i64,
    pub tenant_id: Uuid,
    pub job_id: Option<i64>,
    pub r#type: String,
    pub data: Option<String>,
    pub bytes: i32,
    pub carried: i64,
}

/// How a page is cut: at most `rows` rows, and it stops at the row that carries its data past
/// `carried_bytes`; data over `inline_data_bytes` is not carried.
#[derive(Debug, Clone, Copy)]
pub struct PageBounds {
    pub rows: i64,
    pub inline_data_bytes: i32,
    pub carried_bytes: i64,
}

/// Which of a tenant's events a page reads: those with `after < seq <= up_to`, of job `job_id`
/// and of the `types` (`None`: any).
#[derive(Debug, Clone, Copy)]
pub struct TenantRange<'a> {
    pub tenant_id: Uuid,
    pub after: i64,
    pub up_to: i64,
    pub job_id: Option<i64>,
    pub types: Option<&'a [String]>,
}

/// A page of the tenant's events in `range`, in seq order, cut by `bounds`.
pub async fn tenant_page(
    executor: impl PgExecutor<'_>,
    range: TenantRange<'_>,
    bounds: PageBounds,
) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as!(
        EventRow,
        r#"SELECT seq AS "seq!", tenant_id AS "tenant_id!", job_id, type AS "type!",
                  CASE WHEN bytes <= $7 THEN data::text END AS data,
                  bytes AS "bytes!", carried AS "carried!"
           FROM (SELECT seq, tenant_id, job_id, type, data, bytes,
                        sum(CASE WHEN bytes <= $7 THEN bytes ELSE 0 END)
                            OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS carried
                 FROM (SELECT seq, tenant_id, job_id, type, data, octet_length(data::text) AS bytes
                       FROM events
                       WHERE tenant_id = $1 AND seq > $2 AND seq <= $3
                         AND ($4::bigint IS NULL OR job_id = $4)
                         AND ($6::text[] IS NULL OR type = ANY($6))
                       ORDER BY seq LIMIT $5) AS page
                ) AS page
           WHERE carried - CASE WHEN bytes <= $7 THEN bytes ELSE 0 END < $8
           ORDER BY seq"#,
        range.tenant_id,
        range.after,
        range.up_to,
        range.job_id,
        bounds.rows,
        range.types,
        bounds.inline_data_bytes,
        bounds.carried_bytes
    )
    .fetch_all(executor)
    .await
}

/// A page of every tenant's events after seq `after`, in seq order, cut by `bounds`.
pub async fn page_after(
    executor: impl PgExecutor<'_>,
    after: i64,
    bounds: PageBounds,
) -> sqlx::Result<Vec<EventRow>> {
    sqlx::query_as!(
        EventRow,
        r#"SELECT seq AS "seq!", tenant_id AS "tenant_id!", job_id, type AS "type!",
                              CASE WHEN bytes <= $3 THEN data::text END AS data,
                              bytes AS "bytes!", carried AS "carried!"
                       FROM (SELECT seq, tenant_id, job_id, type, data, bytes,
                                    sum(CASE WHEN bytes <= $3 THEN bytes ELSE 0 END)
                                        OVER (ORDER BY seq ROWS UNBOUNDED PRECEDING) AS carried
                             FROM (SELECT seq, tenant_id, job_id, type, data,
                                          octet_length(data::text) AS bytes
                                   FROM events WHERE seq > $1 ORDER BY seq LIMIT $2) AS page
                            ) AS page
                       WHERE carried - CASE WHEN bytes <= $3 THEN bytes ELSE 0 END < $4
                       ORDER BY seq"#,
        after,
        bounds.rows,
        bounds.inline_data_bytes,
        bounds.carried_bytes
    )
    .fetch_all(executor)
    .await
}

/// The last seq of the log (0 when it is empty).
pub async fn last_seq(executor: impl PgExecutor<'_>) -> sqlx::Result<i64> {
    sqlx::query_scalar!(r#"SELECT coalesce(max(seq), 0) AS "seq!" FROM events"#)
        .fetch_one(executor)
        .await
}

/// The data of the event `seq` as text; `None` when the row is gone (retention removed it).
pub async fn read_data(executor: impl PgExecutor<'_>, seq: i64) -> sqlx::Result<Option<String>> {
    sqlx::query_scalar!(
        r#"SELECT data::text AS "data!" FROM events WHERE seq = $1"#,
        seq
    )
    .fetch_optional(executor)
    .await
}
