//! Wake-ups: one dedicated LISTEN connection per process fans notifications out to any number of
//! waiters, with a poll fallback so that a missed notification costs at most one interval.
//!
//! When the LISTEN connection drops (a restart, `pg_terminate_backend`), the listener logs it,
//! wakes every waiter (notifications may have been missed), and reconnects with backoff. Waiters
//! keep polling in the meantime, so the queue keeps moving.
//!
//! A channel whose payloads say what changed (`sentinel_worker_jobs`: which tenant and kind;
//! `sentinel_config`: which tenant, key or source) is also read as [`Notice`]s, so a dispatcher
//! can wake only the waiters a change concerns instead of every waiter of the channel.

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, AtomicU64, Ordering},
        Arc,
    },
    time::Duration,
};

use sqlx::{
    postgres::{PgConnectOptions, PgListener, PgPoolOptions},
    PgPool,
};
use tokio::{
    sync::{broadcast, watch},
    task::JoinHandle,
};

/// The application name of the LISTEN connection, so operators (and tests) can find it in
/// `pg_stat_activity`.
pub const LISTENER_APPLICATION_NAME: &str = "sentinel-listen";

/// The pool of one connection a [`Listener`] listens on, made with `options`.
pub fn listen_pool(options: PgConnectOptions) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_secs(5))
        .connect_lazy_with(options.application_name(LISTENER_APPLICATION_NAME))
}

/// What a payload reader learns from a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// One notification's payload.
    Payload(Arc<str>),
    /// Notifications may have been missed (the connection was lost and is back, or this reader
    /// fell behind): whatever depends on them must look again.
    Resync,
}

/// Payloads a reader may fall behind by before it gets [`Notice::Resync`] instead.
const PAYLOAD_BUFFER: usize = 4_096;

struct Channel {
    generation: watch::Sender<u64>,
    payloads: broadcast::Sender<Notice>,
}

#[derive(Debug, Default)]
struct State {
    connected: AtomicBool,
    connects: AtomicU64,
    disconnects: AtomicU64,
}

/// A handle on the process's LISTEN connection.
#[derive(Clone)]
pub struct Listener {
    channels: Arc<HashMap<String, Channel>>,
    state: Arc<State>,
}

impl Listener {
    /// Starts listening on `channels` over a connection of its own, until `shutdown` turns true.
    pub fn spawn(
        options: PgConnectOptions,
        channels: &[&str],
        shutdown: watch::Receiver<bool>,
    ) -> (Listener, JoinHandle<()>) {
        Self::spawn_on(listen_pool(options), channels, shutdown)
    }

    /// [`Listener::spawn`] on a pool of one connection made with [`listen_pool`] (one that
    /// follows the primary across a failover: `db::Connections::listen_pool`).
    pub fn spawn_on(
        pool: PgPool,
        channels: &[&str],
        shutdown: watch::Receiver<bool>,
    ) -> (Listener, JoinHandle<()>) {
        let listener = Listener {
            channels: Arc::new(
                channels
                    .iter()
                    .map(|channel| {
                        let channel_state = Channel {
                            generation: watch::channel(0u64).0,
                            payloads: broadcast::channel(PAYLOAD_BUFFER).0,
                        };
                        (channel.to_string(), channel_state)
                    })
                    .collect(),
            ),
            state: Arc::default(),
        };
        let task = tokio::spawn(listener.clone().run(pool, shutdown));
        (listener, task)
    }

    /// A waiter for one channel. Panics if the listener was not spawned with that channel, which
    /// is a programming error, not an input.
    pub fn waiter(&self, channel: &str) -> Waiter {
        Waiter {
            rx: self.channel(channel).generation.subscribe(),
        }
    }

    /// A reader of one channel's payloads. Panics if the listener was not spawned with that
    /// channel, which is a programming error, not an input.
    pub fn notices(&self, channel: &str) -> Notices {
        Notices {
            rx: self.channel(channel).payloads.subscribe(),
        }
    }

    fn channel(&self, channel: &str) -> &Channel {
        self.channels
            .get(channel)
            .unwrap_or_else(|| panic!("listener was not started with channel {channel}"))
    }

    /// Whether the LISTEN connection is up right now.
    pub fn is_connected(&self) -> bool {
        self.state.connected.load(Ordering::Relaxed)
    }

    /// How many times the LISTEN connection was (re)established.
    pub fn connects(&self) -> u64 {
        self.state.connects.load(Ordering::Relaxed)
    }

    /// How many times it was lost.
    pub fn disconnects(&self) -> u64 {
        self.state.disconnects.load(Ordering::Relaxed)
    }

    fn wake(&self, channel: &str, payload: &str) {
        if let Some(channel) = self.channels.get(channel) {
            channel
                .generation
                .send_modify(|generation| *generation += 1);
            // No reader is not an error: most channels have none.
            let _ = channel.payloads.send(Notice::Payload(Arc::from(payload)));
        }
    }

    fn wake_all(&self) {
        for channel in self.channels.values() {
            channel
                .generation
                .send_modify(|generation| *generation += 1);
            let _ = channel.payloads.send(Notice::Resync);
        }
    }

    async fn run(self, pool: PgPool, mut shutdown: watch::Receiver<bool>) {
        let channels: Vec<&str> = self.channels.keys().map(String::as_str).collect();
        let mut backoff = Backoff::new(Duration::from_millis(50), Duration::from_secs(5));
        loop {
            let connected = async {
                let mut listener = PgListener::connect_with(&pool).await?;
                listener.listen_all(channels.iter().copied()).await?;
                Ok::<_, sqlx::Error>(listener)
            };
            let connected = tokio::select! {
                result = connected => result,
                _ = shutdown.wait_for(|stop| *stop) => return,
            };
            let mut listener = match connected {
                Ok(listener) => listener,
                Err(error) => {
                    let delay = backoff.next_delay();
                    tracing::warn!(%error, retry_in_ms = delay.as_millis() as u64, "LISTEN connection failed");
                    tokio::select! {
                        _ = tokio::time::sleep(delay) => continue,
                        _ = shutdown.wait_for(|stop| *stop) => return,
                    }
                }
            };
            let n_connects = self.state.connects.fetch_add(1, Ordering::Relaxed) + 1;
            self.state.connected.store(true, Ordering::Relaxed);
            if n_connects > 1 {
                tracing::info!(
                    listen.connects = n_connects,
                    "LISTEN connection re-established"
                );
            }
            // Whatever was sent while we were away is lost; let every waiter look for itself.
            self.wake_all();
            backoff.reset();

            let lost = loop {
                tokio::select! {
                    received = listener.try_recv() => match received {
                        Ok(Some(notification)) => {
                            self.wake(notification.channel(), notification.payload())
                        }
                        Ok(None) => break "the server closed it".to_string(),
                        Err(error) => break error.to_string(),
                    },
                    _ = shutdown.wait_for(|stop| *stop) => return,
                }
            };
            self.state.connected.store(false, Ordering::Relaxed);
            self.state.disconnects.fetch_add(1, Ordering::Relaxed);
            drop(listener);
            self.wake_all();
            let delay = backoff.next_delay();
            tracing::warn!(reason = %lost, retry_in_ms = delay.as_millis() as u64,
                "LISTEN connection lost; polling until it is back");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
        }
    }
}

/// Why [`Waiter::wait`] returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Woke {
    Notified,
    Polled,
}

/// One task's view of a channel. Notifications that arrive between [`Waiter::mark_seen`] and
/// [`Waiter::wait`] are not lost: `wait` returns at once for them.
pub struct Waiter {
    rx: watch::Receiver<u64>,
}

impl Waiter {
    /// Call before looking for work, so a notification during the look is remembered.
    pub fn mark_seen(&mut self) {
        self.rx.borrow_and_update();
    }

    /// Waits for a notification since the last `mark_seen`, or for `poll_interval`.
    pub async fn wait(&mut self, poll_interval: Duration) -> Woke {
        tokio::select! {
            changed = self.rx.changed() => match changed {
                Ok(()) => Woke::Notified,
                // The listener is gone (shutting down): fall back to polling.
                Err(_) => {
                    tokio::time::sleep(poll_interval).await;
                    Woke::Polled
                }
            },
            _ = tokio::time::sleep(poll_interval) => Woke::Polled,
        }
    }
}

/// One task's reader of a channel's payloads (see [`Listener::notices`]).
pub struct Notices {
    rx: broadcast::Receiver<Notice>,
}

impl Notices {
    /// The next notice; `None` once the listener is gone (shutting down). A reader that fell
    /// behind gets [`Notice::Resync`] for what it missed.
    pub async fn next(&mut self) -> Option<Notice> {
        match self.rx.recv().await {
            Ok(notice) => Some(notice),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Notice::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// Exponential backoff with jitter for reconnects.
struct Backoff {
    initial: Duration,
    max: Duration,
    current: Duration,
}

impl Backoff {
    fn new(initial: Duration, max: Duration) -> Self {
        Self {
            initial,
            max,
            current: initial,
        }
    }

    fn next_delay(&mut self) -> Duration {
        let delay = self.current.mul_f64(rand::random_range(0.5..=1.0));
        self.current = (self.current * 2).min(self.max);
        delay
    }

    fn reset(&mut self) {
        self.current = self.initial;
    }
}
