//! Tenant-defined job kinds: the tenant's own workers claim them through the worker API, under the
//! per-kind controls an operator sets (pause, and a concurrency cap across all workers).
//!
//! The cap is enforced in the claim, not by the workers: a claim of a capped kind locks the kind's
//! `job_kinds` row, counts the kind's running jobs in a statement that starts after the lock is
//! held (so it sees every claim committed before), and takes at most the free slots. Two claims
//! racing for the last slot never both take it: the second skips the locked row (`SKIP LOCKED`)
//! and takes none of that kind this time, so no claim waits on a lock while holding a pooled
//! connection. Claims of uncapped kinds take no lock.

use std::{collections::HashMap, time::Duration};

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::{
    caps,
    claim::job_from_row,
    job::{Job, JobStatus},
    tables::jobs,
};

/// One kind's controls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KindControls {
    pub paused: bool,
    /// At most this many jobs of the kind run at once, across all of the tenant's workers.
    pub max_running: Option<i32>,
}

/// A kind as the tenant's operators see it: its controls and its jobs in flight.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KindState {
    pub kind: String,
    pub controls: KindControls,
    pub queued: i64,
    pub running: i64,
    pub updated_at: Option<DateTime<Utc>>,
}

/// A change to a kind's controls; `None` leaves a setting as it is.
#[derive(Debug, Clone, Copy, Default)]
pub struct ControlsChange {
    pub paused: Option<bool>,
    /// `Some(None)` removes the cap.
    pub max_running: Option<Option<i32>>,
}

/// The most kinds with controls a tenant may have: each `PATCH /v1/kinds/{kind}` of a new name
/// adds a row, so without a bound one tenant could fill the table.
pub const MAX_CONTROLLED_KINDS: i64 = 1_000;

/// Applies `change` to the tenant's `kind` and returns its controls after it; `None` when the kind
/// has no row yet and the tenant already has [`MAX_CONTROLLED_KINDS`]. (Two first changes of new
/// kinds at once may both pass the count: the bound can be overshot by the changes in flight.)
pub async fn set_controls(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    kind: &str,
    change: ControlsChange,
) -> sqlx::Result<Option<KindControls>> {
    let row = sqlx::query!(
        r#"WITH allowed AS (
               SELECT EXISTS (SELECT 1 FROM job_kinds WHERE tenant_id = $1 AND kind = $2)
                      OR (SELECT count(*) FROM job_kinds WHERE tenant_id = $1) < $6 AS ok
           )
           INSERT INTO job_kinds AS k (tenant_id, kind, paused, max_running)
           SELECT $1, $2, coalesce($3::bool, false), CASE WHEN $4::bool THEN $5::int4 END
           FROM allowed WHERE ok
           ON CONFLICT (tenant_id, kind) DO UPDATE
           SET paused = coalesce($3::bool, k.paused),
               max_running = CASE WHEN $4::bool THEN $5::int4 ELSE k.max_running END,
               updated_at = now()
           RETURNING paused, max_running"#,
        tenant_id,
        kind,
        change.paused,
        change.max_running.is_some(),
        change.max_running.flatten(),
        MAX_CONTROLLED_KINDS
    )
    .fetch_optional(executor)
    .await?;
    Ok(row.map(|row| KindControls {
        paused: row.paused,
        max_running: row.max_running,
    }))
}

/// The tenant's kinds that have controls or jobs queued or running, by name, after `after` and at
/// most `limit` of them; or only `kind`.
pub async fn list(
    executor: impl PgExecutor<'_>,
    tenant_id: Uuid,
    kind: Option<&str>,
    after: Option<&str>,
    limit: i64,
) -> sqlx::Result<Vec<KindState>> {
    let rows = sqlx::query!(
        // Queued jobs are counted from the partial index jobs_worker_claim (its predicate word for
        // word), so a tenant's queued webhook traffic is never walked; running jobs are few.
        r#"WITH queued AS (
               SELECT kind, count(*) AS n FROM jobs
               WHERE tenant_id = $1 AND status = 'queued' AND ($2::text IS NULL OR kind = $2)
                 AND kind <> ALL (sentinel_builtin_kinds())
               GROUP BY kind
           ),
           running AS (
               SELECT kind, count(*) AS n FROM jobs
               WHERE status = 'running' AND tenant_id = $1 AND ($2::text IS NULL OR kind = $2)
                 AND NOT builtin_job_kind(kind)
               GROUP BY kind
           ),
           counts AS (
               SELECT coalesce(q.kind, r.kind) AS kind, coalesce(q.n, 0) AS queued, coalesce(r.n, 0) AS running
               FROM queued q FULL JOIN running r ON r.kind = q.kind
           )
           SELECT coalesce(k.kind, c.kind) AS "kind!", coalesce(k.paused, false) AS "paused!",
                  k.max_running, coalesce(c.queued, 0) AS "queued!", coalesce(c.running, 0) AS "running!",
                  k.updated_at AS "updated_at?"
           FROM (SELECT * FROM job_kinds WHERE tenant_id = $1 AND ($2::text IS NULL OR kind = $2)) k
           FULL JOIN counts c ON c.kind = k.kind
           WHERE $3::text IS NULL OR coalesce(k.kind, c.kind) > $3
           ORDER BY 1
           LIMIT $4"#,
        tenant_id,
        kind,
        after,
        limit
    )
    .fetch_all(executor)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| KindState {
            kind: row.kind,
            controls: KindControls {
                paused: row.paused,
                max_running: row.max_running,
            },
            queued: row.queued,
            running: row.running,
            updated_at: row.updated_at,
        })
        .collect())
}

/// What a worker asks for.
#[derive(Debug, Clone)]
pub struct TenantClaim<'a> {
    pub tenant_id: Uuid,
    /// The lease owner written on each claimed job (and in its audit rows).
    pub lease_owner: &'a str,
    /// Tenant-defined kinds only; the caller checks the names.
    pub kinds: &'a [String],
    pub max: usize,
    pub lease: Duration,
    /// The claimed jobs' stored inputs add up to at most this (a larger single job is still
    /// claimed alone).
    pub max_bytes: usize,
}

/// What a claim took, and whether a capped kind was left out because another claim held its row.
#[derive(Debug, Default)]
pub struct Claimed {
    pub jobs: Vec<Job>,
    /// A capped kind's row was locked by another claim deciding its slots, so this claim took none
    /// of that kind: look again shortly (that claim commits within milliseconds).
    pub contended: bool,
}

/// Claims up to `claim.max` of the tenant's ready jobs of `claim.kinds`, within each kind's pause
/// and concurrency cap, in one transaction. It never waits on a lock: a capped kind whose row
/// another claim holds is skipped this time ([`Claimed::contended`]).
pub async fn claim_for_tenant(pool: &PgPool, claim: &TenantClaim<'_>) -> sqlx::Result<Claimed> {
    if claim.max == 0 || claim.kinds.is_empty() {
        return Ok(Claimed::default());
    }
    // Nothing ready (a waiting claim looking again, most often): one index read, no transaction
    // and no lock another claim could find held.
    if !jobs::any_ready_for_worker_api(pool, claim.tenant_id, claim.kinds).await? {
        return Ok(Claimed::default());
    }
    let max = i64::try_from(claim.max).unwrap_or(i64::MAX);
    let mut tx = pool.begin().await?;
    let KindLimits {
        kinds,
        limits,
        contended,
    } = kind_limits(&mut tx, claim, max).await?;
    if kinds.is_empty() {
        tx.rollback().await?;
        return Ok(Claimed {
            jobs: Vec::new(),
            contended,
        });
    }
    let rows = sqlx::query_file!(
        "sql/claim_tenant.sql",
        claim.lease_owner,
        claim.tenant_id,
        &kinds,
        &limits,
        claim.lease.as_secs_f64(),
        max,
        i64::try_from(claim.max_bytes).unwrap_or(i64::MAX)
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Claimed {
        jobs: rows.into_iter().map(|row| job_from_row!(row)).collect(),
        contended,
    })
}

/// How many jobs of each kind a claim may take: the kinds with free places and their places, and
/// whether a capped kind was left out because another claim held its row.
struct KindLimits {
    kinds: Vec<String>,
    limits: Vec<i64>,
    contended: bool,
}

/// Each kind's places for a claim of at most `max` jobs: none for a paused kind or a capped kind
/// whose row another claim holds, the free places under a capped kind's cap, `max` otherwise. The
/// lock and count of [`crate::caps`]: the capped kinds' rows are locked first, so that two claims
/// never both take the last slot, and their running jobs counted after.
async fn kind_limits(
    conn: &mut PgConnection,
    claim: &TenantClaim<'_>,
    max: i64,
) -> sqlx::Result<KindLimits> {
    // Only kinds that are paused or capped have a row that matters.
    let controls = sqlx::query!(
        r#"SELECT kind, paused, max_running FROM job_kinds
           WHERE tenant_id = $1 AND kind = ANY($2) AND (paused OR max_running IS NOT NULL)
           ORDER BY kind"#,
        claim.tenant_id,
        claim.kinds
    )
    .fetch_all(&mut *conn)
    .await?;
    let mut limits: HashMap<&str, i64> = claim.kinds.iter().map(|k| (k.as_str(), max)).collect();
    let capped: Vec<String> = controls
        .iter()
        .filter(|row| !row.paused && row.max_running.is_some())
        .map(|row| row.kind.clone())
        .collect();
    // The capped kinds' rows, locked so that two claims never both take the last slot; a row
    // another claim holds is skipped rather than waited for, on a pooled connection.
    let locked: Vec<String> = if capped.is_empty() {
        Vec::new()
    } else {
        sqlx::query_scalar!(
            r#"SELECT kind FROM job_kinds
               WHERE tenant_id = $1 AND kind = ANY($2)
               ORDER BY kind
               FOR UPDATE SKIP LOCKED"#,
            claim.tenant_id,
            &capped
        )
        .fetch_all(&mut *conn)
        .await?
    };
    let contended = locked.len() < capped.len();
    // A new statement, so a new snapshot: every claim that held these locks before has committed.
    let running = caps::Running::count(conn, &[claim.tenant_id], &locked).await?;
    for row in &controls {
        let limit = match (row.paused, row.max_running) {
            (true, _) => 0,
            // Held by another claim: none of this kind now.
            (false, Some(_)) if !locked.contains(&row.kind) => 0,
            (false, Some(cap)) => {
                caps::free_places(i64::from(cap), running.of_kind(&row.kind), max)
            }
            (false, None) => max,
        };
        limits.insert(row.kind.as_str(), limit);
    }
    let (kinds, limits): (Vec<String>, Vec<i64>) = limits
        .into_iter()
        .filter(|&(_, limit)| limit > 0)
        .map(|(kind, limit)| (kind.to_owned(), limit))
        .unzip();
    Ok(KindLimits {
        kinds,
        limits,
        contended,
    })
}
