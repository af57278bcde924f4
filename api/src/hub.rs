//! The event hub: one task per gateway tails the `events` table (woken by NOTIFY on
//! `sentinel_events`, polling as a fallback) and fans each row out to every SSE subscriber over a
//! broadcast channel. No subscriber holds a database connection of its own.
//!
//! Rows are delivered in `seq` order. `seq` is taken at insert time but rows become visible at
//! commit, so a gap can be a transaction still in flight: the hub waits for it, and skips it only
//! once it has stayed empty for `GAP_TIMEOUT` (a rolled-back transaction leaves a permanent gap).
//!
//! Memory is bounded in bytes, not only in rows (a row's data may hold megabytes):
//! - an event whose data is over [`INLINE_DATA_BYTES`] goes over the broadcast ring as a stub,
//!   without its data, which a subscriber reads by `seq` ([`events::read_data`], a probe of each
//!   day partition's primary key) when it is its turn to send it. The ring holds at most [`RING_LEN`] events of at most
//!   [`INLINE_DATA_BYTES`] each: 16,384 × 8 KiB = 128 MiB of data (plus about 200 bytes of row
//!   per event, 3 MiB) in the worst case, when a subscriber lags a whole ring of large events;
//!   a value leaves the ring as soon as every subscriber has taken it;
//! - a read page stops at [`PAGE_BYTES`] of the data it carries (at least one row), so the tail
//!   holds at most 1 MiB + 8 KiB of data (and 1,000 rows) at a time.

use std::{
    sync::{
        atomic::{AtomicI64, Ordering},
        Arc,
    },
    time::{Duration, Instant},
};

use sentinel_queue::{tables::events, Waiter};
use sqlx::PgPool;
use tokio::sync::{broadcast, watch};
use uuid::Uuid;

pub const GAP_TIMEOUT: Duration = Duration::from_secs(2);
/// Rows of one read page.
const BATCH: i64 = 1_000;
/// Bytes of data one read page carries, past which it stops (always after at least one row).
const PAGE_BYTES: i64 = 1024 * 1024;
/// Events the broadcast ring holds; a subscriber further behind reads the table instead.
pub const RING_LEN: usize = 16_384;
/// Data longer than this (as text) travels as a stub: the ring and catch-up pages carry its
/// length only, and a subscriber reads it by `seq` when it sends it.
pub const INLINE_DATA_BYTES: i32 = 8 * 1024;

/// One row of `events`, as subscribers see it.
#[derive(Debug, Clone)]
pub struct StoredEvent {
    pub seq: i64,
    pub tenant_id: Uuid,
    pub job_id: Option<i64>,
    pub event_type: String,
    /// The `data` column as text, serialised once for every subscriber; `None` when it is over
    /// [`INLINE_DATA_BYTES`] (read it with [`events::read_data`]).
    pub data: Option<String>,
    /// The length of the `data` column as text, in bytes, carried or not.
    pub data_bytes: usize,
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
        let start = events::last_seq(&pool).await?;
        let (tx, _) = broadcast::channel(RING_LEN);
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
                // The page is the rows after the cursor up to BATCH, cut where the data it
                // carries passes PAGE_BYTES; data over INLINE_DATA_BYTES is not carried.
                let bounds = events::PageBounds {
                    rows: BATCH,
                    inline_data_bytes: INLINE_DATA_BYTES,
                    carried_bytes: PAGE_BYTES,
                };
                let rows = match events::page_after(&pool, cursor, bounds).await {
                    Ok(rows) => rows,
                    Err(error) => {
                        tracing::warn!(%error, "reading events failed; retrying");
                        retry_soon = true;
                        break;
                    }
                };
                // A page cut by rows or by bytes may have more behind it.
                let full = rows.len() as i64 == BATCH
                    || rows.last().is_some_and(|row| row.carried >= PAGE_BYTES);
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
                        data_bytes: usize::try_from(row.bytes).unwrap_or_default(),
                    }));
                    self.delivered.store(row.seq, Ordering::Release);
                    expected = row.seq + 1;
                }
                if retry_soon || !full {
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
