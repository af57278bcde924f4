//! The worker API's long polls: which claims wait on which tenant's kinds, and waking only those.
//!
//! A waiting claim holds no database connection and no request slot; it is a [`Registration`] in
//! the [`Dispatcher`], listed under each `(tenant, kind)` it asked for. What wakes it:
//! - a NOTIFY on `sentinel_worker_jobs` whose payload is `<tenant id>:<kind>` (a job of that kind
//!   was queued, replayed or rescued) wakes ONE claim waiting on that key, round robin;
//! - a claim that took jobs passes the turn on to the next claim of each of its keys, so a burst of
//!   jobs is taken by as many claims as it needs, one claim at a time, and an idle crowd of claims
//!   costs the database nothing;
//! - every `SENTINEL_CLAIM_POLL_MS` (and when notifications may have been missed), one claim per
//!   key looks again: retries and snoozes that came due, a capped kind's slot that came free, a
//!   notification lost with the LISTEN connection.
//!
//! So another tenant's enqueues never wake this tenant's claims, and 800 claims waiting on one
//! kind cost at most one claim statement per poll interval between them.

use std::{
    collections::{HashMap, VecDeque},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use sentinel_queue::{Notice, Notices};
use tokio::sync::{watch, Notify};
use uuid::Uuid;

use crate::{error::ApiError, limits::SlotGuard};

type Key = (Uuid, String);

/// One waiting claim's bell.
#[derive(Default)]
struct Bell {
    notify: Notify,
}

#[derive(Default)]
struct Waiting {
    /// The claims waiting on each key, in the order they will be woken.
    keys: HashMap<Key, VecDeque<Arc<Bell>>>,
    /// Waiting claims per tenant, for the cap.
    per_tenant: HashMap<Uuid, usize>,
    total: usize,
}

/// The long polls' caps (`SENTINEL_CLAIM_MAX_POLLS_PER_TENANT`, `SENTINEL_CLAIM_MAX_POLLS`).
#[derive(Debug, Clone, Copy)]
pub struct PollLimits {
    pub per_tenant: usize,
    pub total: usize,
}

/// Every waiting claim of this gateway, by tenant and kind.
pub struct Dispatcher {
    waiting: Mutex<Waiting>,
    limits: PollLimits,
    /// Claim statements the worker API has run, waiting or not.
    claims_run: AtomicU64,
}

impl Dispatcher {
    pub fn new(limits: PollLimits) -> Arc<Self> {
        Arc::new(Self {
            waiting: Mutex::default(),
            limits,
            claims_run: AtomicU64::new(0),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Waiting> {
        // A panic while holding this lock leaves plain collections behind: still usable.
        self.waiting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Lists a claim of `tenant_id` as waiting on `kinds`, or refuses it (429 `too_many_polls`)
    /// when the tenant, or the gateway, already has as many waiting as its cap.
    /// `place` is the tenant's place among its waiting claims on all gateways, held as long as
    /// the registration.
    pub fn register(
        self: &Arc<Self>,
        place: Option<SlotGuard>,
        tenant_id: Uuid,
        kinds: &[String],
    ) -> Result<Registration, ApiError> {
        let mut waiting = self.lock();
        let mine = waiting.per_tenant.get(&tenant_id).copied().unwrap_or(0);
        if mine >= self.limits.per_tenant {
            return Err(ApiError::too_many(
                "too_many_polls",
                format!(
                    "the tenant already has {mine} claims waiting on this gateway, the most allowed \
                     (SENTINEL_CLAIM_MAX_POLLS_PER_TENANT); claim with a shorter wait_ms or fewer workers"
                ),
                1,
            ));
        }
        if waiting.total >= self.limits.total {
            return Err(ApiError::too_many(
                "too_many_polls",
                format!(
                    "the gateway already has {} claims waiting, the most allowed (SENTINEL_CLAIM_MAX_POLLS)",
                    waiting.total
                ),
                1,
            ));
        }
        let bell = Arc::new(Bell::default());
        let keys: Vec<Key> = kinds.iter().map(|kind| (tenant_id, kind.clone())).collect();
        for key in &keys {
            waiting
                .keys
                .entry(key.clone())
                .or_default()
                .push_back(bell.clone());
        }
        *waiting.per_tenant.entry(tenant_id).or_insert(0) += 1;
        waiting.total += 1;
        Ok(Registration {
            _place: place,
            dispatcher: self.clone(),
            bell,
            keys,
            tenant_id,
        })
    }

    /// Wakes the next claim waiting on `key`, if any, and moves it to the back of the line.
    fn wake_one(waiting: &mut Waiting, key: &Key) {
        if let Some(line) = waiting.keys.get_mut(key) {
            if let Some(bell) = line.pop_front() {
                bell.notify.notify_one();
                line.push_back(bell);
            }
        }
    }

    /// Wakes one claim waiting on `tenant_id`'s `kind`.
    pub fn notify_key(&self, tenant_id: Uuid, kind: &str) {
        let mut waiting = self.lock();
        Self::wake_one(&mut waiting, &(tenant_id, kind.to_owned()));
    }

    /// Wakes one claim per key: each key looks again once.
    pub fn poll_every_key(&self) {
        let mut waiting = self.lock();
        let keys: Vec<Key> = waiting.keys.keys().cloned().collect();
        for key in &keys {
            Self::wake_one(&mut waiting, key);
        }
    }

    /// Counts one claim statement.
    pub fn record_claim(&self) {
        self.claims_run.fetch_add(1, Ordering::Relaxed);
    }

    /// Claim statements run since the gateway started.
    pub fn claims_run(&self) -> u64 {
        self.claims_run.load(Ordering::Relaxed)
    }

    /// Claims waiting now, in all.
    pub fn waiting(&self) -> usize {
        self.lock().total
    }

    /// Reads `sentinel_worker_jobs` and wakes the claims each notification concerns; every
    /// `poll_interval`, one claim per key looks again. Ends when `shutdown` turns true.
    pub async fn run(
        self: Arc<Self>,
        mut notices: Notices,
        poll_interval: Duration,
        mut shutdown: watch::Receiver<bool>,
    ) {
        let mut ticker = tokio::time::interval(poll_interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                notice = notices.next() => match notice {
                    Some(Notice::Payload(payload)) => match parse_key(&payload) {
                        Some((tenant_id, kind)) => self.notify_key(tenant_id, kind),
                        // An older gateway's empty payload: it says only "look again".
                        None => self.poll_every_key(),
                    },
                    Some(Notice::Resync) => self.poll_every_key(),
                    None => return,
                },
                _ = ticker.tick() => self.poll_every_key(),
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}

/// `<tenant id>:<kind>`, the payload of `sentinel_worker_jobs`.
fn parse_key(payload: &str) -> Option<(Uuid, &str)> {
    let (tenant, kind) = payload.split_once(':')?;
    let tenant_id = tenant.parse().ok()?;
    (!kind.is_empty()).then_some((tenant_id, kind))
}

/// A waiting claim's place in the [`Dispatcher`]; it leaves every line when dropped.
pub struct Registration {
    /// The tenant's place among its waiting claims on all gateways.
    _place: Option<SlotGuard>,
    dispatcher: Arc<Dispatcher>,
    bell: Arc<Bell>,
    keys: Vec<Key>,
    tenant_id: Uuid,
}

impl Registration {
    /// Waits until this claim is woken (true) or `timeout` passes (false). A wake that came while
    /// the claim was busy is kept, so this returns at once for it.
    pub async fn wait(&self, timeout: Duration) -> bool {
        tokio::time::timeout(timeout, self.bell.notify.notified())
            .await
            .is_ok()
    }

    /// This claim took jobs: more may be ready, so the next claim of each of its keys looks too.
    pub fn pass_on(&self) {
        let mut waiting = self.dispatcher.lock();
        for key in &self.keys {
            // Not this claim again: it is about to answer.
            if let Some(line) = waiting.keys.get_mut(key) {
                if line
                    .front()
                    .is_some_and(|bell| Arc::ptr_eq(bell, &self.bell))
                {
                    line.rotate_left(1);
                }
            }
            Dispatcher::wake_one(&mut waiting, key);
        }
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        let mut waiting = self.dispatcher.lock();
        for key in &self.keys {
            if let Some(line) = waiting.keys.get_mut(key) {
                line.retain(|bell| !Arc::ptr_eq(bell, &self.bell));
                if line.is_empty() {
                    waiting.keys.remove(key);
                }
            }
        }
        if let Some(mine) = waiting.per_tenant.get_mut(&self.tenant_id) {
            *mine = mine.saturating_sub(1);
            if *mine == 0 {
                waiting.per_tenant.remove(&self.tenant_id);
            }
        }
        waiting.total = waiting.total.saturating_sub(1);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn limits(per_tenant: usize, total: usize) -> PollLimits {
        PollLimits { per_tenant, total }
    }

    #[tokio::test]
    async fn a_notification_wakes_one_claim_of_its_key_only() {
        let dispatcher = Dispatcher::new(limits(10, 10));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let kinds = vec!["email.send".to_owned()];
        let a1 = dispatcher.register(None, a, &kinds).unwrap();
        let a2 = dispatcher.register(None, a, &kinds).unwrap();
        let b1 = dispatcher.register(None, b, &kinds).unwrap();
        dispatcher.notify_key(a, "email.send");
        let short = Duration::from_millis(20);
        let woke = [
            a1.wait(short).await,
            a2.wait(short).await,
            b1.wait(short).await,
        ];
        assert_eq!(woke.iter().filter(|&&w| w).count(), 1, "{woke:?}");
        assert!(!woke[2], "another tenant's claim was woken");
        // The next notification goes to the claim that was not woken.
        dispatcher.notify_key(a, "email.send");
        let again = [a1.wait(short).await, a2.wait(short).await];
        assert_eq!(again.iter().filter(|&&w| w).count(), 1);
        assert_ne!(
            woke[..2],
            again[..],
            "the same claim was woken twice in a row"
        );
    }

    #[tokio::test]
    async fn a_claim_that_took_jobs_passes_the_turn_on() {
        let dispatcher = Dispatcher::new(limits(10, 10));
        let tenant = Uuid::new_v4();
        let kinds = vec!["k".to_owned()];
        let first = dispatcher.register(None, tenant, &kinds).unwrap();
        let second = dispatcher.register(None, tenant, &kinds).unwrap();
        dispatcher.notify_key(tenant, "k");
        assert!(first.wait(Duration::from_millis(20)).await);
        first.pass_on();
        assert!(second.wait(Duration::from_millis(20)).await);
    }

    #[tokio::test]
    async fn caps_hold_and_leaving_frees_the_place() {
        let dispatcher = Dispatcher::new(limits(2, 3));
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let kinds = vec!["k".to_owned()];
        let a1 = dispatcher.register(None, a, &kinds).unwrap();
        let _a2 = dispatcher.register(None, a, &kinds).unwrap();
        let refused = dispatcher.register(None, a, &kinds).err().unwrap();
        assert_eq!(refused.status(), poem::http::StatusCode::TOO_MANY_REQUESTS);
        let _b1 = dispatcher.register(None, b, &kinds).unwrap();
        assert!(
            dispatcher.register(None, b, &kinds).is_err(),
            "the gateway's total cap"
        );
        drop(a1);
        assert_eq!(dispatcher.waiting(), 2);
        assert!(dispatcher.register(None, b, &kinds).is_ok());
    }

    #[test]
    fn payloads_parse_or_mean_look_again() {
        let tenant = Uuid::new_v4();
        assert_eq!(
            parse_key(&format!("{tenant}:email.send")),
            Some((tenant, "email.send"))
        );
        assert_eq!(parse_key(""), None);
        assert_eq!(parse_key("nope:kind"), None);
        assert_eq!(parse_key(&format!("{tenant}:")), None);
    }
}
