//! The event hub: one task per gateway tails the `events` table (woken by NOTIFY on
//! `sentinel_events`, polling as a fallback) and fans each row out to every SSE subscriber over a
//! broadcast channel. No subscriber holds a database connection of its own.
//!
//! Rows are delivered in `seq` order. `seq` is taken at insert time but rows become visible at
//! commit, so a gap can be a transaction still in flight: the hub waits for it, and skips it only
//! once it has stayed empty for `GAP_TIMEOUT` (a rolled-back transaction leaves a permanent gap).

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use sentinel_queue::Waiter;
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

pub const GAP_TIMEOUT: Duration = Duration::from_secs(2);
const BATCH: i64 = 1_000;

/// One row of `events`, as subscribers see it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub tenant_id: Uuid,
    pub job_id: Option<i64>,
    pub event_type: String,
    /// The `data` column, serialised once for every subscriber.
    pub data: String,
}

#[derive(Clone)]
pub struct Hub {
    tx: broadcast::Sender<Arc<StoredEvent>>,
    /// Every event with `seq <= delivered` has been broadcast (or skipped as a dead gap).
    delivered: Arc<AtomicI64>,
}

impl Hub {
    /// Starts tailing from the current end of the log.
    pub async fn start(
        pool: PgPool,
        waiter: Waiter,
        shutdown: watch::Receiver<bool>,
    ) -> sqlx::Result<Hub> {
        let start = sqlx::query_scalar!(r#"SELECT coalesce(max(seq), 0) AS "seq!" FROM events"#)
            .fetch_one(&pool)
            .await?;
        let (tx, _) = broadcast::channel(16_384);
        let hub = Hub {
            tx,
            delivered: Arc::new(AtomicI64::new(start)),
        };
        tokio::spawn(hub.clone().tail(pool, waiter, shutdown));
        Ok(hub)
    }

    /// A live feed plus the last seq delivered before it began: events after that seq arrive on
    /// the receiver; events up to it must be read from the table.
    pub fn subscribe(&self) -> (broadcast::Receiver<Arc<StoredEvent>>, i64) {
        let rx = self.tx.subscribe();
        (rx, self.delivered.load(Ordering::Acquire))
    }

    async fn tail(self, pool: PgPool, mut waiter: Waiter, mut shutdown: watch::Receiver<bool>) {
        let mut gap_seen: Option<(i64, Instant)> = None;
        loop {
            waiter.mark_seen();
            let mut retry_soon = false;
            loop {
                let cursor = self.delivered.load(Ordering::Acquire);
                let rows = match sqlx::query!(
                    r#"SELECT seq, tenant_id, job_id, type, data::text AS "data!"
                       FROM events WHERE seq > $1 ORDER BY seq LIMIT $2"#,
                    cursor,
                    BATCH
                )
                .fetch_all(&pool)
                .await
                {
                    Ok(rows) => rows,
                    Err(error) => {
                        tracing::warn!(%error, "reading events failed; retrying");
                        retry_soon = true;
                        break;
                    }
                };
                let n_rows = rows.len();
                let mut expected = cursor + 1;
                for row in rows {
                    if row.seq != expected {
                        match gap_seen {
                            Some((seq, since))
                                if seq == expected && since.elapsed() >= GAP_TIMEOUT =>
                            {
                                tracing::debug!(
                                    gap.from = expected,
                                    gap.to = row.seq - 1,
                                    "skipping a gap in events"
                                );
                            }
                            Some((seq, _)) if seq == expected => {
                                retry_soon = true;
                                break;
                            }
                            _ => {
                                gap_seen = Some((expected, Instant::now()));
                                retry_soon = true;
                                break;
                            }
                        }
                    }
                    gap_seen = None;
                    let _ = self.tx.send(Arc::new(StoredEvent {
                        seq: row.seq,
                        tenant_id: row.tenant_id,
                        job_id: row.job_id,
                        event_type: row.r#type,
                        data: row.data,
                    }));
                    self.delivered.store(row.seq, Ordering::Release);
                    expected = row.seq + 1;
                }
                if retry_soon || (n_rows as i64) < BATCH {
                    break;
                }
            }
            let wait = if retry_soon {
                Duration::from_millis(20)
            } else {
                Duration::from_secs(1)
            };
            tokio::select! {
                _ = waiter.wait(wait) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}
