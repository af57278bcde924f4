//! The "lock, count, cap" step shared by the capped claims: the worker API's claim of capped
//! kinds ([`crate::tenant_kinds::claim_for_tenant`]) and the forward claim
//! ([`crate::agent::claim_forwards`]).
//!
//! Both claims run the same three steps in one transaction:
//! 1. lock, without waiting (`SKIP LOCKED`), the rows whose caps the claim decides: each capped
//!    kind's `job_kinds` row; the tenants whose turn it is. A row another claim holds is left to
//!    it (that claim commits within milliseconds), never waited for on a pooled connection. Which
//!    rows those are is each claim's own rule (kinds by name; tenants by their turn, found in the
//!    same statement), so each keeps its locking statement;
//! 2. count the running jobs of what was locked, with [`Running::count`], in a statement of its
//!    own: a new snapshot, so every claim that held those locks before has committed and its jobs
//!    are counted;
//! 3. take at most the free places under each cap ([`free_places`]).

use std::collections::HashMap;

use sqlx::PgConnection;
use uuid::Uuid;

use crate::tables::jobs::{self, RunningCount};

/// The running jobs of some kinds of some tenants, counted after their cap rows were locked.
#[derive(Debug, Default)]
pub struct Running {
    counts: Vec<RunningCount>,
}

impl Running {
    /// Counts the running jobs of `kinds` of `tenants`, by tenant, kind and source. Call it after
    /// the statement that locked their cap rows, never in the same one.
    pub async fn count(
        conn: &mut PgConnection,
        tenants: &[Uuid],
        kinds: &[String],
    ) -> sqlx::Result<Self> {
        if tenants.is_empty() || kinds.is_empty() {
            return Ok(Self::default());
        }
        Ok(Self {
            counts: jobs::count_running(conn, tenants, kinds).await?,
        })
    }

    /// Running jobs of `kind` (of every tenant counted).
    pub fn of_kind(&self, kind: &str) -> i64 {
        self.counts
            .iter()
            .filter(|count| count.kind == kind)
            .map(|count| count.running)
            .sum()
    }

    /// Running jobs by tenant.
    pub fn by_tenant(&self) -> HashMap<Uuid, i64> {
        let mut by_tenant = HashMap::new();
        for count in &self.counts {
            *by_tenant.entry(count.tenant_id).or_default() += count.running;
        }
        by_tenant
    }

    /// Running jobs by source (jobs without one left out).
    pub fn by_source(&self) -> HashMap<Uuid, i64> {
        let mut by_source = HashMap::new();
        for count in &self.counts {
            if let Some(source_id) = count.source_id {
                *by_source.entry(source_id).or_default() += count.running;
            }
        }
        by_source
    }
}

/// The places free under `cap` with `running` taken, at most `max` (and never below 0).
pub fn free_places(cap: i64, running: i64, max: i64) -> i64 {
    (cap - running).clamp(0, max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_places_stay_within_zero_and_the_claim() {
        assert_eq!(free_places(4, 1, 10), 3);
        assert_eq!(free_places(4, 6, 10), 0);
        assert_eq!(free_places(100, 0, 10), 10);
    }

    #[test]
    fn running_counts_add_up_by_kind_tenant_and_source() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let (s1, s2) = (Uuid::from_u128(10), Uuid::from_u128(20));
        let count = |tenant_id, kind: &str, source_id, running| RunningCount {
            tenant_id,
            kind: kind.to_owned(),
            source_id,
            running,
        };
        let running = Running {
            counts: vec![
                count(a, "doc.x", None, 2),
                count(a, "doc.x", Some(s1), 1),
                count(a, "doc.y", Some(s1), 4),
                count(b, "doc.x", Some(s2), 3),
            ],
        };
        assert_eq!(running.of_kind("doc.x"), 6);
        assert_eq!(running.of_kind("doc.z"), 0);
        assert_eq!(running.by_tenant(), HashMap::from([(a, 7), (b, 3)]));
        assert_eq!(running.by_source(), HashMap::from([(s1, 5), (s2, 3)]));
    }
}
