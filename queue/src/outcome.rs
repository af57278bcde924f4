//! How an attempt ends, decided in one place.
//!
//! A handler says what happened: `Ok(result)`, or a [`JobError`] (retry, fatal, snooze, canceled,
//! handed off). [`RetryPolicy::decide`] turns that into the [`Outcome`] the queue records, applying
//! the kind's policy: exponential backoff with jitter for a retry, the snooze cap for a snooze.
//! The worker's runner and lanes and the worker API's `fail` all call it, so every kind's delays
//! follow one rule and one configuration value.
//!
//! Each kind has a [`RetryPolicy`] (`base`, `cap`, `max_attempts`, `snooze_cap`): the defaults are
//! in [`default_policy`], and one environment value per kind overrides any of them,
//! `SENTINEL_RETRY_<KIND>` with the kind's name upper-cased and `.` and `-` as `_`, for example
//! `SENTINEL_RETRY_REPLY_DELIVER="base=1s,cap=1h,max_attempts=1000000,snooze_cap=24h"`. A retry
//! spends an attempt; the job is dead once `max_attempts` (stored on the row when it is enqueued)
//! are spent. A snooze and a hand-off give the attempt back.
//!
//! [`retry_after`] reads a `Retry-After` header for every caller (seconds or an HTTP date).

use std::{collections::HashMap, fmt, sync::OnceLock, time::Duration};

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{json, Value as JsonValue};

use crate::{
    claim::{Outcome, Stage},
    kinds,
};

/// What a handler returns: the job's result, or how the attempt failed.
pub type JobResult = Result<JsonValue, JobError>;

/// How a failed attempt ends, as recorded (see [`Outcome::Failed`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum FailKind {
    /// Try again after `retry_in`, unless the attempts are spent, in which case the job is dead.
    Retryable { retry_in: Duration },
    /// Dead at once: retrying cannot help (a 4xx from a platform, a payload nothing can heal).
    Fatal,
}

/// Why an attempt did not succeed, as a handler says it. The error values are kept in the job's
/// `last_error`.
#[derive(Debug, Clone, PartialEq)]
pub enum JobError {
    /// Try again, spending an attempt, after the kind's backoff (or as [`Retry`] says).
    Retry(Retry),
    /// Dead at once: another attempt cannot help.
    Fatal(JsonValue),
    /// Run again after `delay` (at most the kind's `snooze_cap`) without spending an attempt: a
    /// platform's 429 with `Retry-After`, an earlier reply to wait for.
    Snooze {
        delay: Duration,
        error: Option<JsonValue>,
    },
    /// The handler stopped because cancellation was requested.
    Canceled,
    /// Queue the job again at once for the lane that runs `stage`, without spending an attempt.
    HandOff(Stage),
}

/// A retryable failure, and what its handler knows about when to try again.
#[derive(Debug, Clone, PartialEq)]
pub struct Retry {
    pub error: JsonValue,
    /// Run again after exactly this, instead of the backoff (a circuit breaker's next probe).
    pub after: Option<Duration>,
    /// The backoff's cap for this job instead of the kind's (the outbox's
    /// `SENTINEL_DELIVERY_BACKOFF_MAX_MS`); the base is lowered to it when it is shorter.
    pub cap: Option<Duration>,
    /// The latest the next attempt may run, whatever the delay (a reply's remaining ttl).
    pub within: Option<Duration>,
}

impl Retry {
    /// A retry after the kind's backoff, recording `error`.
    pub fn new(error: JsonValue) -> Self {
        Self {
            error,
            after: None,
            cap: None,
            within: None,
        }
    }
}

/// A database error while handling a job is worth another attempt.
impl From<sqlx::Error> for Retry {
    fn from(error: sqlx::Error) -> Self {
        Retry::new(error_json("database", error.to_string()))
    }
}

impl JobError {
    /// A retryable failure `{code, message}`, after the kind's backoff.
    pub fn retry(code: &str, message: impl Into<String>) -> Self {
        Self::retry_with(error_json(code, message))
    }

    /// A retryable failure with `error` as its recorded error, after the kind's backoff.
    pub fn retry_with(error: JsonValue) -> Self {
        JobError::Retry(Retry::new(error))
    }

    /// A fatal failure `{code, message}`.
    pub fn fatal(code: &str, message: impl Into<String>) -> Self {
        JobError::Fatal(error_json(code, message))
    }

    /// A snooze for `delay`, recording `error`.
    pub fn snooze(delay: Duration, error: JsonValue) -> Self {
        JobError::Snooze {
            delay,
            error: Some(error),
        }
    }
}

/// A database error while handling a job is worth another attempt.
impl From<sqlx::Error> for JobError {
    fn from(error: sqlx::Error) -> Self {
        JobError::Retry(error.into())
    }
}

fn error_json(code: &str, message: impl Into<String>) -> JsonValue {
    json!({"code": code, "message": message.into()})
}

/// How one kind's failures are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// The first retry's delay (before jitter); each next one doubles it.
    pub base: Duration,
    /// The longest delay between two attempts (before jitter).
    pub cap: Duration,
    /// Attempts a job of the kind gets when it is enqueued; snoozes and hand-offs do not count.
    pub max_attempts: i32,
    /// The longest snooze, whatever a `Retry-After` asks for.
    pub snooze_cap: Duration,
}

const SECOND: Duration = Duration::from_secs(1);
const HOUR: Duration = Duration::from_secs(3600);

/// The policy of the built-in kinds that run in Sentinel's worker: 1 s doubling to an hour, 5
/// attempts, snoozes of at most an hour.
pub const STANDARD_POLICY: RetryPolicy = RetryPolicy {
    base: SECOND,
    cap: HOUR,
    max_attempts: 5,
    snooze_cap: HOUR,
};

/// The policy of `agent.turn` and tenant-defined kinds, failed through the worker API: snoozes
/// of up to a day (`retry_after_secs`).
pub const WORKER_API_POLICY: RetryPolicy = RetryPolicy {
    snooze_cap: Duration::from_secs(86_400),
    ..STANDARD_POLICY
};

/// Every kind's policy unless `SENTINEL_RETRY_<KIND>` changes it: a built-in kind's is in its
/// home module ([`kinds::BuiltinKind::retry`]); every other kind has [`WORKER_API_POLICY`].
pub fn default_policy(kind: &str) -> RetryPolicy {
    kinds::builtin(kind).map_or(WORKER_API_POLICY, |kind| kind.retry)
}

impl Default for RetryPolicy {
    fn default() -> Self {
        STANDARD_POLICY
    }
}

impl RetryPolicy {
    /// The policy of `kind` in this process: its default, with this process's
    /// `SENTINEL_RETRY_<KIND>` applied (read once; see [`RetryPolicies::from_env`]).
    pub fn for_kind(kind: &str) -> RetryPolicy {
        RetryPolicies::process().get(kind)
    }

    /// The delay before the attempt after `attempt` (1-based): `base * 2^(attempt-1)`, capped at
    /// `cap`, then scaled by a random factor in [0.5, 1.0] so that a crowd of failures spreads out.
    pub fn delay(&self, attempt: i32) -> Duration {
        let exponent = attempt.saturating_sub(1).clamp(0, 30) as u32;
        let uncapped = self.base.saturating_mul(1u32 << exponent);
        let capped = uncapped.min(self.cap);
        capped.mul_f64(rand::random_range(0.5..=1.0))
    }

    /// This policy with its backoff capped at `cap`, and its base lowered to `cap` when that is
    /// shorter.
    pub fn capped(self, cap: Duration) -> RetryPolicy {
        RetryPolicy {
            base: self.base.min(cap),
            cap,
            ..self
        }
    }

    /// A snooze's delay: at most [`Self::snooze_cap`].
    pub fn snooze_for(&self, delay: Duration) -> Duration {
        delay.min(self.snooze_cap)
    }

    /// The recorded end of attempt `attempt` (1-based) whose handler returned `result`.
    pub fn decide(&self, attempt: i32, result: JobResult) -> Outcome {
        match result {
            Ok(result) => Outcome::Succeeded { result },
            Err(JobError::Retry(retry)) => {
                let backoff = retry.cap.map_or(*self, |cap| self.capped(cap));
                let mut retry_in = retry.after.unwrap_or_else(|| backoff.delay(attempt));
                if let Some(within) = retry.within {
                    retry_in = retry_in.min(within);
                }
                Outcome::Failed {
                    kind: FailKind::Retryable { retry_in },
                    error: retry.error,
                }
            }
            Err(JobError::Fatal(error)) => Outcome::Failed {
                kind: FailKind::Fatal,
                error,
            },
            Err(JobError::Snooze { delay, error }) => Outcome::Snoozed {
                delay: self.snooze_for(delay),
                error,
            },
            Err(JobError::Canceled) => Outcome::Canceled,
            Err(JobError::HandOff(stage)) => Outcome::HandedOff { stage },
        }
    }

    /// Applies `base=…,cap=…,max_attempts=…,snooze_cap=…` (any of them, in any order) to `self`.
    fn with_overrides(mut self, spec: &str) -> Result<Self, String> {
        for setting in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (key, value) = setting
                .split_once('=')
                .ok_or_else(|| format!("{setting:?} is not key=value"))?;
            let (key, value) = (key.trim(), value.trim());
            match key {
                "base" => self.base = parse_duration(value)?,
                "cap" => self.cap = parse_duration(value)?,
                "snooze_cap" => self.snooze_cap = parse_duration(value)?,
                "max_attempts" => {
                    self.max_attempts = value.parse().ok().filter(|n| *n >= 1).ok_or_else(|| {
                        format!("max_attempts={value:?} is not a whole number of at least 1")
                    })?
                }
                other => {
                    return Err(format!(
                        "unknown setting {other:?}; expected base, cap, max_attempts or snooze_cap"
                    ))
                }
            }
        }
        if self.base.is_zero() || self.base > self.cap {
            return Err(format!(
                "base ({:?}) must be above zero and at most cap ({:?})",
                self.base, self.cap
            ));
        }
        Ok(self)
    }
}

/// A duration as `<whole number><unit>`, the unit one of `ms`, `s`, `m`, `h`, `d`.
fn parse_duration(value: &str) -> Result<Duration, String> {
    let split = value
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(value.len());
    let (number, unit) = value.split_at(split);
    let unit_ms: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => 0,
    };
    number
        .parse::<u64>()
        .ok()
        .filter(|_| unit_ms > 0)
        .and_then(|number| number.checked_mul(unit_ms))
        .map(Duration::from_millis)
        .ok_or_else(|| format!("{value:?} is not a duration like 500ms, 30s, 5m, 1h or 1d"))
}

/// Every kind's [`RetryPolicy`]: [`default_policy`] with the `SENTINEL_RETRY_<KIND>` overrides.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetryPolicies {
    /// By the kind's name as it appears in its variable (`REPLY_DELIVER`).
    overrides: HashMap<String, String>,
}

/// A `SENTINEL_RETRY_<KIND>` value that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}={value:?} is invalid: {problem}")]
pub struct BadRetryPolicy {
    pub variable: String,
    pub value: String,
    pub problem: String,
}

/// The prefix of the variables that override a kind's policy.
pub const RETRY_VARIABLE_PREFIX: &str = "SENTINEL_RETRY_";

impl RetryPolicies {
    /// The policies the environment sets; a value that cannot be read is an error naming its
    /// variable. Call it at start-up, so that a bad value stops the process there.
    pub fn from_env() -> Result<Self, BadRetryPolicy> {
        Self::from_vars(std::env::vars())
    }

    /// The policies `vars` (name, value) set; the names that do not start with
    /// [`RETRY_VARIABLE_PREFIX`] are ignored.
    pub fn from_vars(
        vars: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, BadRetryPolicy> {
        let mut overrides = HashMap::new();
        for (variable, value) in vars {
            let Some(kind) = variable.strip_prefix(RETRY_VARIABLE_PREFIX) else {
                continue;
            };
            if value.trim().is_empty() {
                continue;
            }
            // Checked now against the default of a kind of that name, so a typo fails start-up.
            STANDARD_POLICY
                .with_overrides(&value)
                .map_err(|problem| BadRetryPolicy {
                    variable: variable.clone(),
                    value: value.clone(),
                    problem,
                })?;
            overrides.insert(kind.to_owned(), value);
        }
        let policies = Self { overrides };
        for kind in kinds::BUILTIN_KINDS {
            policies.try_get(kind)?;
        }
        Ok(policies)
    }

    /// This process's policies: read from the environment at first use. A value that cannot be
    /// read is logged and its kind keeps its default (the worker refuses to start with one, see
    /// [`Self::from_env`]).
    pub fn process() -> &'static RetryPolicies {
        static POLICIES: OnceLock<RetryPolicies> = OnceLock::new();
        POLICIES.get_or_init(|| {
            Self::from_env().unwrap_or_else(|error| {
                tracing::error!(%error, "using the default retry policies");
                Self::default()
            })
        })
    }

    /// `kind`'s policy.
    pub fn get(&self, kind: &str) -> RetryPolicy {
        self.try_get(kind).unwrap_or_else(|_| default_policy(kind))
    }

    fn try_get(&self, kind: &str) -> Result<RetryPolicy, BadRetryPolicy> {
        let name = variable_name(kind);
        let policy = default_policy(kind);
        match self.overrides.get(&name) {
            Some(value) => policy
                .with_overrides(value)
                .map_err(|problem| BadRetryPolicy {
                    variable: format!("{RETRY_VARIABLE_PREFIX}{name}"),
                    value: value.clone(),
                    problem,
                }),
            None => Ok(policy),
        }
    }
}

/// The part of `kind`'s variable after [`RETRY_VARIABLE_PREFIX`]: `reply.deliver` is
/// `REPLY_DELIVER`.
pub fn variable_name(kind: &str) -> String {
    kind.chars()
        .map(|c| match c {
            '.' | '-' => '_',
            c => c.to_ascii_uppercase(),
        })
        .collect()
}

impl fmt::Display for RetryPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "base={:?},cap={:?},max_attempts={},snooze_cap={:?}",
            self.base, self.cap, self.max_attempts, self.snooze_cap
        )
    }
}

/// `Retry-After` (RFC 9110): a number of seconds, or an HTTP date (IMF-fixdate, or the obsolete
/// RFC 850 and asctime forms), as the wait from `now`; a date already past waits nothing. `None`
/// for anything else.
pub fn retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit()) {
        // Beyond u64 seconds is "a very long time": the caller's cap applies.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = DateTime::parse_from_rfc2822(value)
        .map(|at| at.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            ["%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"]
                .iter()
                .find_map(|format| NaiveDateTime::parse_from_str(value, format).ok())
                .map(|naive| naive.and_utc())
        })?;
    Some((at - now).to_std().unwrap_or(Duration::ZERO))
}

/// The `Retry-After` of a response's `headers`, read by [`retry_after`] from now.
pub fn retry_after_header(headers: &http::HeaderMap) -> Option<Duration> {
    let value = headers.get(http::header::RETRY_AFTER)?.to_str().ok()?;
    retry_after(value, Utc::now())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 5, 12, 0, 0).unwrap()
    }

    #[test]
    fn retry_delay_doubles_is_capped_and_jittered_downwards() {
        let policy = RetryPolicy {
            base: Duration::from_secs(2),
            cap: Duration::from_secs(60),
            ..STANDARD_POLICY
        };
        for _ in 0..100 {
            let first = policy.delay(1);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
            let third = policy.delay(3);
            assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8));
            let late = policy.delay(40);
            assert!(late >= Duration::from_secs(30) && late <= Duration::from_secs(60));
        }
    }

    #[test]
    fn the_defaults_are_the_values_each_kind_had() {
        for kind in [
            kinds::WEBHOOK_INBOUND,
            kinds::PAYLOAD_HEAL,
            kinds::LLM_GENERATE,
        ] {
            assert_eq!(default_policy(kind), STANDARD_POLICY, "{kind}");
        }
        let deliver = default_policy(kinds::REPLY_DELIVER);
        assert_eq!(
            (
                deliver.base,
                deliver.cap,
                deliver.max_attempts,
                deliver.snooze_cap
            ),
            (SECOND, Duration::from_secs(60), 1_000_000, HOUR)
        );
        assert_eq!(default_policy(kinds::AGENT_FORWARD).max_attempts, 8);
        for kind in [kinds::AGENT_TURN, "doc.summarise"] {
            let policy = default_policy(kind);
            assert_eq!(policy.snooze_cap, Duration::from_secs(86_400), "{kind}");
            assert_eq!(
                (policy.base, policy.cap, policy.max_attempts),
                (SECOND, HOUR, 5)
            );
        }
    }

    #[test]
    fn one_variable_overrides_part_of_a_kinds_policy() {
        let vars = [
            ("SENTINEL_RETRY_REPLY_DELIVER", "cap=5m, max_attempts=10"),
            ("SENTINEL_RETRY_DOC_SUMMARISE", "base=500ms,snooze_cap=2h"),
            ("SENTINEL_OTHER", "cap=nonsense"),
        ]
        .map(|(name, value)| (name.to_owned(), value.to_owned()));
        let policies = RetryPolicies::from_vars(vars).unwrap();
        let deliver = policies.get(kinds::REPLY_DELIVER);
        assert_eq!(deliver.cap, Duration::from_secs(300));
        assert_eq!(deliver.max_attempts, 10);
        assert_eq!(deliver.base, SECOND, "what is not named keeps its default");
        let custom = policies.get("doc.summarise");
        assert_eq!(custom.base, Duration::from_millis(500));
        assert_eq!(custom.snooze_cap, Duration::from_secs(7200));
        assert_eq!(policies.get(kinds::LLM_GENERATE), STANDARD_POLICY);
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        for (value, says) in [
            ("cap=soon", "not a duration"),
            ("cap", "not key=value"),
            ("jitter=1s", "unknown setting"),
            ("max_attempts=0", "at least 1"),
            ("base=2h", "at most cap"),
            ("base=0s", "above zero"),
            ("cap=99999999999999999999d", "not a duration"),
        ] {
            let error = RetryPolicies::from_vars([(
                "SENTINEL_RETRY_LLM_GENERATE".to_owned(),
                value.to_owned(),
            )])
            .unwrap_err()
            .to_string();
            assert!(error.starts_with("SENTINEL_RETRY_LLM_GENERATE="), "{error}");
            assert!(error.contains(says), "{value}: {error}");
        }
        // Checked against the kind's own default, not only the standard one.
        let error = RetryPolicies::from_vars([(
            "SENTINEL_RETRY_REPLY_DELIVER".to_owned(),
            "base=2m".to_owned(),
        )])
        .unwrap_err();
        assert_eq!(error.variable, "SENTINEL_RETRY_REPLY_DELIVER");
    }

    #[test]
    fn decide_applies_the_policy() {
        let policy = RetryPolicy {
            base: Duration::from_secs(10),
            cap: Duration::from_secs(100),
            max_attempts: 3,
            snooze_cap: Duration::from_secs(60),
        };
        assert_eq!(
            policy.decide(1, Ok(json!({"ok": true}))),
            Outcome::Succeeded {
                result: json!({"ok": true})
            }
        );
        let Outcome::Failed {
            kind: FailKind::Retryable { retry_in },
            error,
        } = policy.decide(2, Err(JobError::retry("database", "gone")))
        else {
            panic!("not a retry");
        };
        assert!((10..=20).contains(&retry_in.as_secs()), "{retry_in:?}");
        assert_eq!(error, json!({"code": "database", "message": "gone"}));
        let probe = JobError::Retry(Retry {
            error: json!({}),
            after: Some(Duration::from_secs(30)),
            cap: None,
            within: Some(Duration::from_secs(7)),
        });
        assert_eq!(
            policy.decide(1, Err(probe)),
            Outcome::Failed {
                kind: FailKind::Retryable {
                    retry_in: Duration::from_secs(7)
                },
                error: json!({})
            },
            "never later than within"
        );
        let capped = JobError::Retry(Retry {
            cap: Some(Duration::from_millis(400)),
            ..Retry::new(json!({}))
        });
        let Outcome::Failed {
            kind: FailKind::Retryable { retry_in },
            ..
        } = policy.decide(5, Err(capped))
        else {
            panic!("not a retry");
        };
        assert!((200..=400).contains(&retry_in.as_millis()), "{retry_in:?}");
        assert_eq!(
            policy.decide(1, Err(JobError::snooze(HOUR, json!({"code": "busy"})))),
            Outcome::Snoozed {
                delay: Duration::from_secs(60),
                error: Some(json!({"code": "busy"}))
            }
        );
        assert_eq!(
            policy.decide(1, Err(JobError::fatal("bad", "no"))),
            Outcome::Failed {
                kind: FailKind::Fatal,
                error: json!({"code": "bad", "message": "no"})
            }
        );
        assert_eq!(policy.decide(1, Err(JobError::Canceled)), Outcome::Canceled);
        assert_eq!(
            policy.decide(1, Err(JobError::HandOff(Stage::Model))),
            Outcome::HandedOff {
                stage: Stage::Model
            }
        );
    }

    #[test]
    fn retry_after_reads_seconds() {
        assert_eq!(retry_after("7", now()), Some(Duration::from_secs(7)));
        assert_eq!(retry_after(" 0 ", now()), Some(Duration::ZERO));
        assert_eq!(
            retry_after("99999999999999999999999", now()),
            Some(Duration::from_secs(u64::MAX))
        );
    }

    #[test]
    fn retry_after_reads_each_http_date_form() {
        // IMF-fixdate, RFC 850 and asctime, 90 s after now().
        for date in [
            "Sat, 05 Dec 2026 12:01:30 GMT",
            "Saturday, 05-Dec-26 12:01:30 GMT",
            "Sat Dec  5 12:01:30 2026",
        ] {
            assert_eq!(
                retry_after(date, now()),
                Some(Duration::from_secs(90)),
                "{date}"
            );
        }
        // A date already past waits nothing.
        assert_eq!(
            retry_after("Sat, 05 Dec 2026 11:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn retry_after_refuses_garbage() {
        let huge = "a".repeat(10_000);
        for garbage in [
            "",
            "soon",
            "-5",
            "1.5",
            "+3",
            "Sat, 99 Dec 2026 12:01:30 GMT",
            "Sat, 05 Dec 2026",
            "\u{0}",
            huge.as_str(),
        ] {
            assert_eq!(retry_after(garbage, now()), None, "{garbage:?}");
        }
    }

    #[test]
    fn retry_after_header_reads_seconds_and_dates() {
        let header = |value: &str| {
            let mut headers = http::HeaderMap::new();
            headers.insert(
                http::header::RETRY_AFTER,
                http::HeaderValue::from_str(value).unwrap(),
            );
            headers
        };
        assert_eq!(
            retry_after_header(&header("7")),
            Some(Duration::from_secs(7))
        );
        let later = (Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let wait = retry_after_header(&header(&later)).unwrap();
        assert!((85..=90).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(retry_after_header(&header("soon")), None);
        assert_eq!(retry_after_header(&http::HeaderMap::new()), None);
    }
}
