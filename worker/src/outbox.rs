//! The outbox's circuit breakers and settings, and where each platform's reply API lives: what
//! [`crate::jobs::reply_deliver`] consults before and after each send.
//!
//! The breaker ([`Breakers`]) is per process and per platform and credential (a hash of the base
//! URL and the reply credentials; logs name only that hash): after
//! `SENTINEL_BREAKER_THRESHOLD` consecutive transient failures it opens, and the deliveries of that
//! credential are snoozed until its probe time; then exactly one delivery goes through as the probe
//! (half-open). Its success closes the breaker; its failure reopens it with twice the cooldown, up
//! to `SENTINEL_BREAKER_MAX_COOLDOWN_MS`. Other platforms and credentials are not affected.

use std::{
    collections::HashMap,
    fmt,
    sync::{Mutex, MutexGuard, PoisonError},
    time::{Duration, Instant},
};

use sentinel_queue::{
    kinds,
    outcome::default_policy,
    platform::{Platform, ReplyApi},
    RetryPolicy,
};
use serde_json::{json, Value as JsonValue};
use sha2::{Digest, Sha256};

/// Where each platform's reply API lives: its [`ReplyApi::default_base`] unless set; tests point
/// these at loopback.
#[derive(Debug, Clone, Default)]
pub struct ApiBases(HashMap<Platform, String>);

impl ApiBases {
    /// `platform`'s API at `base` instead of its default.
    pub fn with(mut self, platform: Platform, base: impl Into<String>) -> Self {
        self.0.insert(platform, base.into());
        self
    }

    /// Every reply API's [`ReplyApi::base_variable`] that is set.
    pub fn from_env(mut self) -> anyhow::Result<Self> {
        for &platform in Platform::ALL {
            if let Some(api) = &platform.spec().reply {
                let base = sentinel_queue::config::var_or(api.base_variable, String::new())?;
                if !base.is_empty() {
                    self.0.insert(platform, base);
                }
            }
        }
        Ok(self)
    }

    /// `platform`'s API base, without a trailing `/`.
    pub fn base(&self, platform: Platform, api: &ReplyApi) -> String {
        self.0
            .get(&platform)
            .map_or(api.default_base, String::as_str)
            .trim_end_matches('/')
            .to_owned()
    }
}

/// The outbox's settings (`SENTINEL_BREAKER_*`, `SENTINEL_DELIVERY_BACKOFF_MAX_MS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxConfig {
    /// Consecutive transient failures of one platform and credential that open its breaker.
    pub breaker_threshold: u32,
    /// How long an opened breaker waits before its first probe.
    pub breaker_cooldown: Duration,
    /// The longest wait between probes: each failed probe doubles the wait up to this.
    pub breaker_max_cooldown: Duration,
    /// The longest backoff between two attempts of one reply, so the platform is tried at least
    /// this often (the backoff starts at a second, or at this when it is shorter).
    pub backoff_max: Duration,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        Self {
            breaker_threshold: 5,
            breaker_cooldown: Duration::from_secs(1),
            breaker_max_cooldown: Duration::from_secs(30),
            backoff_max: default_policy(kinds::REPLY_DELIVER).cap,
        }
    }
}

impl OutboxConfig {
    /// The defaults, overridden by the environment; each bad value is named. The backoff's cap is
    /// `reply.deliver`'s retry policy's (`SENTINEL_RETRY_REPLY_DELIVER`) unless
    /// `SENTINEL_DELIVERY_BACKOFF_MAX_MS` sets it.
    pub fn from_env() -> anyhow::Result<Self> {
        let d = Self {
            backoff_max: RetryPolicy::for_kind(kinds::REPLY_DELIVER).cap,
            ..Self::default()
        };
        let ms = |name: &str, default: Duration| -> anyhow::Result<Duration> {
            let ms: u64 = sentinel_queue::config::var_or(name, default.as_millis() as u64)?;
            if ms == 0 {
                anyhow::bail!("{name} must be at least 1 millisecond");
            }
            Ok(Duration::from_millis(ms))
        };
        let config = Self {
            breaker_threshold: sentinel_queue::config::var_or(
                "SENTINEL_BREAKER_THRESHOLD",
                d.breaker_threshold,
            )?,
            breaker_cooldown: ms("SENTINEL_BREAKER_COOLDOWN_MS", d.breaker_cooldown)?,
            breaker_max_cooldown: ms("SENTINEL_BREAKER_MAX_COOLDOWN_MS", d.breaker_max_cooldown)?,
            backoff_max: ms("SENTINEL_DELIVERY_BACKOFF_MAX_MS", d.backoff_max)?,
        };
        config.check()?;
        Ok(config)
    }

    /// The checks [`Self::from_env`] makes, with the variables' names.
    pub fn check(&self) -> anyhow::Result<()> {
        if self.breaker_threshold == 0 {
            anyhow::bail!("SENTINEL_BREAKER_THRESHOLD must be at least 1");
        }
        if self.breaker_cooldown > self.breaker_max_cooldown {
            anyhow::bail!(
                "SENTINEL_BREAKER_COOLDOWN_MS ({} ms) must not exceed SENTINEL_BREAKER_MAX_COOLDOWN_MS ({} ms)",
                self.breaker_cooldown.as_millis(),
                self.breaker_max_cooldown.as_millis()
            );
        }
        if self.backoff_max.is_zero() || self.breaker_cooldown.is_zero() {
            anyhow::bail!("SENTINEL_DELIVERY_BACKOFF_MAX_MS and SENTINEL_BREAKER_COOLDOWN_MS must be at least 1 millisecond");
        }
        Ok(())
    }

    /// The backoff between attempts: `reply.deliver`'s policy (from a second, doubling), capped
    /// at [`Self::backoff_max`].
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::for_kind(kinds::REPLY_DELIVER).capped(self.backoff_max)
    }
}

/// A platform and one of its credentials: what a breaker is for. Shown as the platform and the
/// first 8 hex digits of a SHA-256 over the API's base URL and the credentials, never the secret.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct BreakerKey {
    platform: Platform,
    digest: [u8; 16],
}

impl BreakerKey {
    pub fn new(platform: Platform, base: &str, credentials: &JsonValue) -> Self {
        let hash = Sha256::new()
            .chain_update(platform.as_str())
            .chain_update([0])
            .chain_update(base)
            .chain_update([0])
            .chain_update(credentials.to_string())
            .finalize();
        let mut digest = [0; 16];
        digest.copy_from_slice(&hash[..16]);
        Self { platform, digest }
    }
}

impl fmt::Display for BreakerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.platform, hex::encode(&self.digest[..4]))
    }
}

/// Where one breaker is.
#[derive(Debug, Clone, Copy, PartialEq)]
enum State {
    Closed,
    /// Nothing is sent until `probe_at`; the first delivery then is the probe.
    Open {
        probe_at: Instant,
    },
    /// The probe is in flight; the others wait.
    Probing,
}

#[derive(Debug)]
struct Breaker {
    state: State,
    /// Consecutive transient failures while closed.
    failures: u32,
    /// The wait before the next probe once the current one fails.
    cooldown: Duration,
    /// A 429's hold: nothing is sent before this.
    held_until: Option<Instant>,
    /// The last transient failure, shown in the snoozed deliveries' error.
    last_error: JsonValue,
    touched: Instant,
}

/// A breaker that has not changed for this long, and is closed, is forgotten once the table is
/// large; it would start from closed anyway.
const FORGET_AFTER: Duration = Duration::from_secs(600);
/// The table's size from which closed, idle breakers are forgotten.
const FORGET_FROM: usize = 1024;

/// The circuit breakers of one worker process, per [`BreakerKey`]. Only credentials that failed
/// lately have an entry.
#[derive(Debug)]
pub struct Breakers {
    pub config: OutboxConfig,
    states: Mutex<HashMap<BreakerKey, Breaker>>,
}

/// Whether a delivery may be sent now.
pub enum Admission<'a> {
    /// Send it, and report how it went with [`Breakers::record`].
    Send(Ticket<'a>),
    /// Snooze it for `delay`; `error` says why.
    Wait { delay: Duration, error: JsonValue },
}

/// A delivery let through. A probe whose ticket is dropped unreported (the job panicked, lost its
/// lease, or the worker stopped) lets the next delivery probe.
pub struct Ticket<'a> {
    breakers: &'a Breakers,
    key: BreakerKey,
    probe: bool,
    reported: bool,
}

impl Ticket<'_> {
    /// Whether this delivery is its breaker's probe.
    pub fn is_probe(&self) -> bool {
        self.probe
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if self.probe && !self.reported {
            let mut states = self.breakers.lock();
            if let Some(breaker) = states.get_mut(&self.key) {
                if breaker.state == State::Probing {
                    breaker.state = State::Open {
                        probe_at: Instant::now(),
                    };
                }
            }
        }
    }
}

/// How a send went, as a breaker counts it.
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// The platform answered (a success, or a final refusal).
    Reachable,
    /// A 429: hold the credential for this long.
    Throttled(Duration),
    /// A transient failure, with its error.
    Failed(JsonValue),
}

impl Breakers {
    pub fn new(config: OutboxConfig) -> Self {
        Self {
            config,
            states: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<BreakerKey, Breaker>> {
        // The table holds no invariant a panic could break halfway.
        self.states.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether a delivery for `key` may be sent at `now`.
    pub fn admit(&self, key: BreakerKey, now: Instant) -> Admission<'_> {
        let send = |probe| {
            Admission::Send(Ticket {
                breakers: self,
                key,
                probe,
                reported: false,
            })
        };
        let mut states = self.lock();
        let Some(breaker) = states.get_mut(&key) else {
            return send(false);
        };
        if let Some(until) = breaker.held_until {
            if until > now {
                return Admission::Wait {
                    delay: until - now,
                    error: json!({
                        "code": "rate_limited",
                        "message": format!(
                            "{key} is held by the platform's 429 for {:.1} s more",
                            (until - now).as_secs_f64()
                        ),
                    }),
                };
            }
            breaker.held_until = None;
        }
        match breaker.state {
            State::Closed => send(false),
            State::Open { probe_at } if now >= probe_at => {
                breaker.state = State::Probing;
                breaker.touched = now;
                send(true)
            }
            State::Open { probe_at } => Admission::Wait {
                delay: probe_at - now,
                error: json!({
                    "code": "platform_unavailable",
                    "message": format!(
                        "the circuit breaker of {key} is open; its next probe is in {:.1} s",
                        (probe_at - now).as_secs_f64()
                    ),
                    "last_error": breaker.last_error,
                }),
            },
            // The probe's answer usually comes within milliseconds; a timeout takes longer,
            // and then the others look again after the shortest cooldown.
            State::Probing => Admission::Wait {
                delay: self.config.breaker_cooldown,
                error: json!({
                    "code": "platform_unavailable",
                    "message": format!("the circuit breaker of {key} is probing the platform"),
                    "last_error": breaker.last_error,
                }),
            },
        }
    }

    /// Records how a send went; returns how long until the breaker's next probe when it is open
    /// (or probing) afterwards.
    pub fn record(&self, mut ticket: Ticket<'_>, signal: Signal, now: Instant) -> Option<Duration> {
        ticket.reported = true;
        let (key, probe) = (ticket.key, ticket.probe);
        let config = self.config;
        let mut states = self.lock();
        match signal {
            Signal::Reachable => {
                let breaker = states.get_mut(&key)?;
                if breaker.state != State::Closed {
                    tracing::info!(breaker.key = %key, "delivery breaker closed: the platform answers again");
                }
                if breaker.held_until.is_some_and(|until| until > now) {
                    breaker.state = State::Closed;
                    breaker.failures = 0;
                    breaker.cooldown = config.breaker_cooldown;
                    breaker.touched = now;
                } else {
                    states.remove(&key);
                }
                None
            }
            Signal::Throttled(delay) => {
                let breaker = Self::entry(&mut states, key, &config, now);
                if breaker.state != State::Closed {
                    tracing::info!(breaker.key = %key, "delivery breaker closed: the platform answers again (with 429)");
                }
                let until = now + delay;
                breaker.held_until = Some(breaker.held_until.map_or(until, |held| held.max(until)));
                breaker.state = State::Closed;
                breaker.failures = 0;
                breaker.cooldown = config.breaker_cooldown;
                None
            }
            Signal::Failed(error) => {
                let breaker = Self::entry(&mut states, key, &config, now);
                breaker.last_error = error;
                match breaker.state {
                    State::Probing if probe => {
                        breaker.cooldown = breaker
                            .cooldown
                            .saturating_mul(2)
                            .min(config.breaker_max_cooldown);
                        breaker.state = State::Open {
                            probe_at: now + breaker.cooldown,
                        };
                        tracing::warn!(
                            breaker.key = %key,
                            breaker.cooldown_ms = breaker.cooldown.as_millis() as u64,
                            "delivery breaker stays open: the probe failed"
                        );
                    }
                    State::Closed => {
                        breaker.failures += 1;
                        if breaker.failures >= config.breaker_threshold {
                            breaker.cooldown = config.breaker_cooldown;
                            breaker.state = State::Open {
                                probe_at: now + breaker.cooldown,
                            };
                            tracing::warn!(
                                breaker.key = %key,
                                breaker.failures = breaker.failures,
                                breaker.cooldown_ms = breaker.cooldown.as_millis() as u64,
                                "delivery breaker opened: deliveries of this credential wait for a probe"
                            );
                        }
                    }
                    // A send that started before the breaker opened: it changes nothing.
                    State::Open { .. } | State::Probing => {}
                }
                match breaker.state {
                    State::Open { probe_at } => Some(probe_at.saturating_duration_since(now)),
                    State::Probing => Some(config.breaker_cooldown),
                    State::Closed => None,
                }
            }
        }
    }

    fn entry<'m>(
        states: &'m mut HashMap<BreakerKey, Breaker>,
        key: BreakerKey,
        config: &OutboxConfig,
        now: Instant,
    ) -> &'m mut Breaker {
        if states.len() >= FORGET_FROM && !states.contains_key(&key) {
            states.retain(|_, breaker| {
                breaker.state != State::Closed
                    || now.saturating_duration_since(breaker.touched) < FORGET_AFTER
            });
        }
        let breaker = states.entry(key).or_insert_with(|| Breaker {
            state: State::Closed,
            failures: 0,
            cooldown: config.breaker_cooldown,
            held_until: None,
            last_error: JsonValue::Null,
            touched: now,
        });
        breaker.touched = now;
        breaker
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breakers(threshold: u32) -> Breakers {
        Breakers::new(OutboxConfig {
            breaker_threshold: threshold,
            breaker_cooldown: Duration::from_secs(1),
            breaker_max_cooldown: Duration::from_secs(4),
            backoff_max: Duration::from_secs(60),
        })
    }

    fn key(platform: Platform, token: &str) -> BreakerKey {
        BreakerKey::new(
            platform,
            "https://api.example",
            &json!({"bot_token": token}),
        )
    }

    fn failed() -> Signal {
        Signal::Failed(json!({"code": "platform_error"}))
    }

    /// Admits a delivery that must be let through, and records `signal` for it.
    fn send(breakers: &Breakers, key: BreakerKey, at: Instant, signal: Signal) -> Option<Duration> {
        match breakers.admit(key, at) {
            Admission::Send(ticket) => breakers.record(ticket, signal, at),
            Admission::Wait { delay, error } => panic!("held for {delay:?}: {error}"),
        }
    }

    fn waits(breakers: &Breakers, key: BreakerKey, at: Instant) -> Duration {
        match breakers.admit(key, at) {
            Admission::Send(ticket) => panic!("let through (probe: {})", ticket.is_probe()),
            Admission::Wait { delay, .. } => delay,
        }
    }

    #[test]
    fn the_breaker_opens_probes_once_and_closes() {
        let breakers = breakers(3);
        let (telegram, other) = (key(Platform::Telegram, "a"), key(Platform::Telegram, "b"));
        let slack = key(Platform::Slack, "a");
        let t0 = Instant::now();
        assert_eq!(send(&breakers, telegram, t0, failed()), None);
        assert_eq!(send(&breakers, telegram, t0, failed()), None);
        assert_eq!(
            send(&breakers, telegram, t0, failed()),
            Some(Duration::from_secs(1)),
            "the third failure opens it"
        );
        assert_eq!(waits(&breakers, telegram, t0), Duration::from_secs(1));
        // Another credential of the platform, and another platform, are not held.
        assert_eq!(send(&breakers, other, t0, Signal::Reachable), None);
        assert_eq!(send(&breakers, slack, t0, Signal::Reachable), None);

        // After the cooldown exactly one probe goes; the others wait for it.
        let t1 = t0 + Duration::from_secs(1);
        let Admission::Send(probe) = breakers.admit(telegram, t1) else {
            panic!("no probe after the cooldown");
        };
        assert!(probe.is_probe());
        assert_eq!(waits(&breakers, telegram, t1), Duration::from_secs(1));
        // It fails: open again, the cooldown doubled, then capped.
        assert_eq!(
            breakers.record(probe, failed(), t1),
            Some(Duration::from_secs(2))
        );
        let t2 = t1 + Duration::from_secs(2);
        assert_eq!(
            send(&breakers, telegram, t2, failed()),
            Some(Duration::from_secs(4))
        );
        let t3 = t2 + Duration::from_secs(4);
        assert_eq!(
            send(&breakers, telegram, t3, failed()),
            Some(Duration::from_secs(4))
        );
        // The platform is back: the probe closes it, and everything flows.
        let t4 = t3 + Duration::from_secs(4);
        assert_eq!(send(&breakers, telegram, t4, Signal::Reachable), None);
        assert_eq!(send(&breakers, telegram, t4, Signal::Reachable), None);
        assert!(breakers.lock().is_empty(), "a closed breaker is forgotten");
    }

    #[test]
    fn a_success_between_failures_keeps_the_breaker_closed() {
        let breakers = breakers(2);
        let telegram = key(Platform::Telegram, "a");
        let t0 = Instant::now();
        for _ in 0..5 {
            assert_eq!(send(&breakers, telegram, t0, failed()), None);
            assert_eq!(send(&breakers, telegram, t0, Signal::Reachable), None);
        }
    }

    #[test]
    fn a_dropped_probe_lets_the_next_delivery_probe() {
        let breakers = breakers(1);
        let telegram = key(Platform::Telegram, "a");
        let t0 = Instant::now();
        send(&breakers, telegram, t0, failed());
        let t1 = t0 + Duration::from_secs(1);
        match breakers.admit(telegram, t1) {
            Admission::Send(probe) => drop(probe),
            Admission::Wait { .. } => panic!("no probe"),
        }
        match breakers.admit(telegram, t1) {
            Admission::Send(probe) => assert!(probe.is_probe()),
            Admission::Wait { .. } => panic!("the abandoned probe held the breaker"),
        };
    }

    #[test]
    fn a_429_holds_the_credential_until_its_retry_after() {
        let breakers = breakers(3);
        let (telegram, slack) = (key(Platform::Telegram, "a"), key(Platform::Slack, "a"));
        let t0 = Instant::now();
        send(
            &breakers,
            telegram,
            t0,
            Signal::Throttled(Duration::from_secs(7)),
        );
        assert_eq!(waits(&breakers, telegram, t0), Duration::from_secs(7));
        assert_eq!(
            waits(&breakers, telegram, t0 + Duration::from_secs(5)),
            Duration::from_secs(2)
        );
        assert_eq!(send(&breakers, slack, t0, Signal::Reachable), None);
        assert_eq!(
            send(
                &breakers,
                telegram,
                t0 + Duration::from_secs(7),
                Signal::Reachable
            ),
            None
        );
    }

    #[test]
    fn the_key_names_the_platform_and_never_the_token() {
        let shown = key(Platform::Telegram, "123456:SECRET-token").to_string();
        assert!(shown.starts_with("telegram:") && shown.len() == "telegram:".len() + 8);
        assert!(!shown.contains("SECRET"), "{shown}");
        assert_ne!(key(Platform::Telegram, "a"), key(Platform::Telegram, "b"));
    }

    #[test]
    fn settings_are_checked() {
        assert!(OutboxConfig::default().check().is_ok());
        let bad = OutboxConfig {
            breaker_cooldown: Duration::from_secs(60),
            ..OutboxConfig::default()
        };
        let error = bad.check().unwrap_err().to_string();
        assert!(error.contains("SENTINEL_BREAKER_COOLDOWN_MS"), "{error}");
        let bad = OutboxConfig {
            breaker_threshold: 0,
            ..OutboxConfig::default()
        };
        assert!(bad.check().is_err());
        let policy = OutboxConfig {
            backoff_max: Duration::from_millis(300),
            ..OutboxConfig::default()
        }
        .retry_policy();
        assert!(policy.delay(30) <= Duration::from_millis(300));
    }
}
