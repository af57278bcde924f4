//! Agents per source (`sources.agent`): who answers a source's inbound messages.
//!
//! | mode | what a conversation's turn ([`crate::conversations`]) becomes |
//! |---|---|
//! | `builtin` (default) | an `agent.reply` job: the built-in worker's reply, from the source's system prompt |
//! | `none` | nothing: the message is healed and kept, no one answers |
//! | `external` | an `agent.turn` job, claimed by the tenant's workers through the worker API; `complete` with `reply` answers |
//! | `forward` | an `agent.forward` job: the built-in worker POSTs it, signed as a Standard Webhook, to the tenant's URL; a 2xx `{reply}` answers |
//!
//! The three kinds carry the same input ([`crate::kinds::agent_turn::Input`]): the source, the
//! platform, the turn's messages (the last as `message`), the inbound job of the last and the
//! reply's address; the conversation's history is read when the turn runs. A reply goes out
//! through the outbox as a `reply.deliver` job whose dedupe key is the inbound job's
//! (`reply:<id>`), so a turn is answered once, whoever answers it.
//!
//! Forward URLs are checked against the operator's allowlist ([`ForwardAllow`],
//! `SENTINEL_FORWARD_ALLOW`): an address that is not public (loopback, private, link-local, …) is
//! refused unless the list names the host or a range that holds it.

use std::{
    collections::HashMap,
    net::{IpAddr, Ipv4Addr},
    str::FromStr,
};

use ipnet::IpNet;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value as JsonValue};
use sqlx::{PgConnection, PgExecutor, PgPool};
use uuid::Uuid;

use crate::{caps, claim::job_from_row, job::JobStatus, kinds, platform::standard, Job};

/// The forward requests one source may have outstanding by default, across all workers.
pub const DEFAULT_MAX_IN_FLIGHT: u32 = 4;
/// The most a source may set.
pub const MAX_MAX_IN_FLIGHT: u32 = 256;
/// How long a forward request may take by default before it is retried.
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;
/// The range a source may set `timeout_ms` in.
pub const TIMEOUT_MS_RANGE: std::ops::RangeInclusive<u32> = 100..=60_000;
/// The longest forward URL.
pub const MAX_URL_LEN: usize = 2_000;
/// Messages of history an agent turn carries, user and agent turns together.
pub const HISTORY_MESSAGES: usize = 10;
/// The most of one history message's text an agent turn carries (a longer one is cut at a
/// character boundary), so a turn's input stays small whatever the conversation held.
pub const HISTORY_TEXT_BYTES: usize = 4_000;
/// The longest reply an agent may send (Telegram's and WhatsApp's limit for one text message).
pub const MAX_REPLY_CHARS: usize = 4_096;
/// How long a reply keeps being retried, from its job's `created_at`, when its source sets no
/// `reply_ttl`: an hour.
pub const DEFAULT_REPLY_TTL_SECS: i32 = 3_600;
/// The `reply_ttl` a source may set, in seconds: a minute to a week (the column's CHECK too).
pub const REPLY_TTL_SECS_RANGE: std::ops::RangeInclusive<i64> = 60..=604_800;

/// Who answers a source's inbound messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum AgentMode {
    #[default]
    Builtin,
    None,
    External,
    Forward,
}

impl AgentMode {
    pub fn as_str(self) -> &'static str {
        match self {
            AgentMode::Builtin => "builtin",
            AgentMode::None => "none",
            AgentMode::External => "external",
            AgentMode::Forward => "forward",
        }
    }

    /// The job kind a message becomes for this agent, when it is not the built-in one.
    pub fn job_kind(self) -> Option<&'static str> {
        match self {
            AgentMode::External => Some(crate::kinds::AGENT_TURN),
            AgentMode::Forward => Some(crate::kinds::AGENT_FORWARD),
            AgentMode::Builtin | AgentMode::None => None,
        }
    }
}

/// A source's agent setting, as `sources.agent` stores it (forward's defaults filled in).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct AgentSettings {
    pub mode: AgentMode,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_in_flight: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u32>,
}

impl AgentSettings {
    /// The stored setting; one that does not read (it never should: the API writes it) is the
    /// default, the built-in agent.
    pub fn from_json(value: &JsonValue) -> Self {
        serde_json::from_value(value.clone()).unwrap_or_default()
    }

    pub fn to_json(&self) -> JsonValue {
        serde_json::to_value(self).unwrap_or_else(|_| json!({"mode": "builtin"}))
    }

    pub fn max_in_flight(&self) -> u32 {
        self.max_in_flight.unwrap_or(DEFAULT_MAX_IN_FLIGHT)
    }

    pub fn timeout_ms(&self) -> u32 {
        self.timeout_ms.unwrap_or(DEFAULT_TIMEOUT_MS)
    }

    /// Checks a setting a tenant sent, saying what is wrong, and fills in forward's defaults.
    pub fn checked(mut self, allow: &ForwardAllow) -> Result<Self, String> {
        if self.mode != AgentMode::Forward {
            if self.url.is_some() || self.max_in_flight.is_some() || self.timeout_ms.is_some() {
                return Err(format!(
                    "agent.url, agent.max_in_flight and agent.timeout_ms are for mode forward, not {}",
                    self.mode.as_str()
                ));
            }
            return Ok(self);
        }
        let url = self
            .url
            .as_deref()
            .ok_or("agent.url is required for mode forward")?;
        allow
            .check_url(url)
            .map_err(|error| format!("agent.url: {error}"))?;
        let in_flight = self.max_in_flight();
        if !(1..=MAX_MAX_IN_FLIGHT).contains(&in_flight) {
            return Err(format!(
                "agent.max_in_flight must be from 1 to {MAX_MAX_IN_FLIGHT}, not {in_flight}"
            ));
        }
        let timeout = self.timeout_ms();
        if !TIMEOUT_MS_RANGE.contains(&timeout) {
            return Err(format!(
                "agent.timeout_ms must be from {} to {}, not {timeout}",
                TIMEOUT_MS_RANGE.start(),
                TIMEOUT_MS_RANGE.end()
            ));
        }
        self.max_in_flight = Some(in_flight);
        self.timeout_ms = Some(timeout);
        Ok(self)
    }
}

/// The operator's allowlist for forward URLs (`SENTINEL_FORWARD_ALLOW`): host names, and address
/// ranges in CIDR notation, comma-separated. A URL is allowed when its host is named, or when every
/// address it resolves to is public or inside a listed range.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ForwardAllow {
    hosts: Vec<String>,
    nets: Vec<IpNet>,
}

impl FromStr for ForwardAllow {
    type Err = String;

    fn from_str(list: &str) -> Result<Self, Self::Err> {
        let mut allow = ForwardAllow::default();
        for entry in list.split(',').map(str::trim).filter(|e| !e.is_empty()) {
            if let Ok(net) = entry.parse::<IpNet>() {
                allow.nets.push(net);
            } else if let Ok(ip) = entry.parse::<IpAddr>() {
                allow.nets.push(IpNet::from(ip));
            } else if entry.contains('/') {
                return Err(format!(
                    "{entry:?} is not a CIDR range (for example 10.0.0.0/8)"
                ));
            } else if entry
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'))
            {
                allow.hosts.push(entry.to_ascii_lowercase());
            } else {
                return Err(format!("{entry:?} is neither a host name nor a CIDR range"));
            }
        }
        Ok(allow)
    }
}

impl ForwardAllow {
    /// Whether the list names `host` itself.
    pub fn names_host(&self, host: &str) -> bool {
        let host = host.trim_end_matches('.').to_ascii_lowercase();
        self.hosts.contains(&host)
    }

    /// Whether a forward may connect to `ip`: a public address, or one inside a listed range.
    pub fn allows_ip(&self, ip: IpAddr) -> bool {
        is_public(ip) || self.nets.iter().any(|net| net.contains(&ip))
    }

    /// Checks a forward URL as far as can be told without resolving it: http or https, a host, no
    /// credentials, and an address literal (or `localhost`) that is allowed. A host name is checked
    /// again, on every connection, against the addresses it resolves to (the worker's resolver).
    pub fn check_url(&self, raw: &str) -> Result<url::Url, String> {
        if raw.len() > MAX_URL_LEN {
            return Err(format!("the URL is longer than {MAX_URL_LEN} bytes"));
        }
        // PostgreSQL's jsonb cannot store U+0000, and no URL needs a control character.
        if let Some(bad) = raw.chars().find(|c| c.is_control()) {
            return Err(format!("the URL holds the control character {bad:?}"));
        }
        let url = url::Url::parse(raw).map_err(|error| format!("{raw:?} is not a URL: {error}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "the scheme must be http or https, not {}",
                url.scheme()
            ));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err("the URL must not carry credentials".into());
        }
        let refused = |what: String| {
            Err(format!(
                "{what} is not a public address, and SENTINEL_FORWARD_ALLOW does not allow it"
            ))
        };
        match url.host() {
            None => return Err("the URL has no host".into()),
            Some(url::Host::Ipv4(ip)) if !self.allows_ip(IpAddr::V4(ip)) => {
                return refused(ip.to_string())
            }
            Some(url::Host::Ipv6(ip)) if !self.allows_ip(IpAddr::V6(ip)) => {
                return refused(ip.to_string())
            }
            Some(url::Host::Domain(name)) if !self.names_host(name) => {
                let name = name.trim_end_matches('.').to_ascii_lowercase();
                let loopback = IpAddr::V4(Ipv4Addr::LOCALHOST);
                if (name == "localhost" || name.ends_with(".localhost"))
                    && !self.allows_ip(loopback)
                {
                    return refused(name);
                }
            }
            Some(_) => {}
        }
        Ok(url)
    }
}

/// Whether `ip` is an address on the public internet: not loopback, private, link-local, shared
/// (carrier-grade NAT), unspecified, broadcast, multicast, documentation or benchmarking space, and
/// for IPv6 not unique-local, and not an IPv4-mapped or NAT64 form of such an address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => {
            if let Some(v4) = ip.to_ipv4_mapped() {
                return is_public_v4(v4);
            }
            let segments = ip.segments();
            // 64:ff9b::/96, NAT64: the IPv4 address is the last 32 bits.
            if segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let [.., a, b, c, d] = ip.octets();
                return is_public_v4(Ipv4Addr::new(a, b, c, d));
            }
            !(ip.is_loopback()
                || ip.is_unspecified()
                || ip.is_multicast()
                || (segments[0] & 0xfe00) == 0xfc00 // fc00::/7, unique local
                || (segments[0] & 0xffc0) == 0xfe80 // fe80::/10, link-local
                || (segments[0] & 0xffc0) == 0xfec0 // fec0::/10, site-local (deprecated)
                || (segments[0] == 0x2001 && segments[1] == 0x0db8)) // documentation
        }
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_unspecified()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0 // 0.0.0.0/8, "this network"
        || (a == 100 && (64..128).contains(&b)) // 100.64.0.0/10, shared address space
        || (a == 192 && b == 0 && c == 0) // 192.0.0.0/24, protocol assignments
        || (a == 198 && (18..20).contains(&b)) // 198.18.0.0/15, benchmarking
        || a >= 240) // 240.0.0.0/4, reserved
}

/// The `webhook-signature` header of a forward: one `v1,` entry for each of the source's current
/// secrets (the new one, and during a rotation's overlap the previous one), space-separated, as
/// Standard Webhooks writes a rotation. Secrets that do not decode are left out.
pub fn signature_header(secrets: &[&str], id: &str, timestamp: &str, body: &[u8]) -> String {
    let keys = standard::secret_keys(&json!({ "secret": secrets })).unwrap_or_default();
    keys.iter()
        .map(|key| standard::signature(key, id, timestamp, body))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The text of a reply an agent sent, checked: not empty, at most [`MAX_REPLY_CHARS`], no U+0000.
pub fn check_reply_text(text: &str) -> Result<(), String> {
    if text.trim().is_empty() {
        return Err("the reply is empty".into());
    }
    let chars = text.chars().count();
    if chars > MAX_REPLY_CHARS {
        return Err(format!(
            "the reply has {chars} characters; at most {MAX_REPLY_CHARS} are sent"
        ));
    }
    if text.contains('\0') {
        return Err("the reply must not contain U+0000".into());
    }
    Ok(())
}

/// The agent settings of `sources` (deleted ones included), by id.
pub async fn settings_of(
    executor: impl PgExecutor<'_>,
    sources: &[Uuid],
) -> sqlx::Result<HashMap<Uuid, AgentSettings>> {
    Ok(
        sqlx::query!("SELECT id, agent FROM sources WHERE id = ANY($1)", sources)
            .fetch_all(executor)
            .await?
            .into_iter()
            .map(|row| (row.id, AgentSettings::from_json(&row.agent)))
            .collect(),
    )
}

/// Claims up to `max` ready `agent.forward` jobs for `worker_id`, with a lease of `lease_secs`,
/// never more than a source's `max_in_flight`, nor more than `tenant_max` of one tenant's
/// forwards, running at once across all workers.
///
/// Tenants take turns as in the other lanes' claim (`sql/claim.sql`): the tenants with ready
/// forwards go fewest running forwards first, then least recently served (the latest
/// `started_at` of their forwards, read from `jobs_forward_started`), each gets an equal share of
/// the free slots, and the shares are interleaved; within a tenant, priority, then `run_at`, then
/// id. Every source with ready forwards is looked at, by a loose index scan over
/// `jobs_forward_claim` (one probe per such source: idle sources are not in it).
///
/// The tenants whose turn it is are locked (`FOR NO KEY UPDATE SKIP LOCKED`: a tenant another
/// claimer holds is left to it until the next claim, and ingress's inserts, which only take a
/// key-share lock on it, never wait), then their running forwards are counted in a new
/// statement, which sees every claim committed before the locks were taken, and at most the free
/// places are claimed. Nothing waits for a lock.
pub async fn claim_forwards(
    pool: &PgPool,
    worker_id: &str,
    max: usize,
    tenant_max: usize,
    lease_secs: f64,
) -> sqlx::Result<Vec<Job>> {
    if max == 0 {
        return Ok(Vec::new());
    }
    let max = i64::try_from(max).unwrap_or(i64::MAX);
    let tenant_max = i64::try_from(tenant_max).unwrap_or(i64::MAX).max(1);
    let mut tx = pool.begin().await?;
    let ready = ready_sources(&mut tx, max, tenant_max).await?;
    if ready.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let mut tenants: Vec<Uuid> = ready.iter().map(|source| source.tenant_id).collect();
    tenants.dedup();
    // A new statement, so a new snapshot: every claim that held these locks before committed.
    let running =
        caps::Running::count(&mut tx, &tenants, &[kinds::AGENT_FORWARD.to_owned()]).await?;
    let running_now = RunningForwards {
        by_tenant: running.by_tenant(),
        by_source: running.by_source(),
    };
    let plan = ForwardPlan::new(&ready, &running_now, max, tenant_max);
    if plan.sources.is_empty() {
        tx.commit().await?;
        return Ok(Vec::new());
    }
    let rows = sqlx::query_file!(
        "sql/claim_forward.sql",
        worker_id,
        &plan.sources,
        &plan.limits,
        &plan.turns,
        &plan.shares,
        max,
        lease_secs
    )
    .fetch_all(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(rows.into_iter().map(|row| job_from_row!(row)).collect())
}

/// The forward claim's first statement, the lock of [`crate::caps`]: the sources with ready
/// forwards and room under their max_in_flight, by a first, unlocked count, grouped by the turn of
/// their tenant; the tenants with room under `tenant_max` are locked, at most one per free slot.
async fn ready_sources(
    conn: &mut PgConnection,
    max: i64,
    tenant_max: i64,
) -> sqlx::Result<Vec<ReadySource>> {
    let ready = sqlx::query!(
        r#"WITH RECURSIVE ready AS (
               (SELECT source_id FROM jobs
                WHERE status = 'queued' AND kind = 'agent.forward' AND run_at <= now() AND source_id IS NOT NULL
                ORDER BY source_id LIMIT 1)
               UNION ALL
               SELECT (SELECT j.source_id FROM jobs j
                       WHERE j.status = 'queued' AND j.kind = 'agent.forward' AND j.run_at <= now()
                         AND j.source_id > r.source_id
                       ORDER BY j.source_id LIMIT 1)
               FROM ready r WHERE r.source_id IS NOT NULL
           ),
           open AS (
               SELECT s.id, s.tenant_id, s.agent, s.deleted_at IS NOT NULL AS deleted
               FROM sources s
               WHERE s.id IN (SELECT source_id FROM ready WHERE source_id IS NOT NULL)
                 AND (s.deleted_at IS NOT NULL OR s.agent ->> 'mode' <> 'forward'
                      OR (SELECT count(*) FROM jobs b
                          WHERE b.status = 'running' AND b.tenant_id = s.tenant_id AND b.kind = 'agent.forward'
                            AND b.source_id = s.id)
                         < coalesce((s.agent ->> 'max_in_flight')::int, $1))
           ),
           turns AS (
               SELECT t.id, busy.running, served.last_served
               FROM (SELECT DISTINCT tenant_id FROM open) r
               JOIN tenants t ON t.id = r.tenant_id
               CROSS JOIN LATERAL (
                   SELECT count(*) AS running FROM jobs b
                   WHERE b.status = 'running' AND b.tenant_id = r.tenant_id AND b.kind = 'agent.forward'
               ) busy
               CROSS JOIN LATERAL (
                   SELECT max(f.started_at) AS last_served FROM jobs f
                   WHERE f.tenant_id = r.tenant_id AND f.kind = 'agent.forward' AND f.started_at IS NOT NULL
               ) served
               WHERE busy.running < $2
               ORDER BY busy.running, served.last_served NULLS FIRST, t.id
               LIMIT $3
               FOR NO KEY UPDATE OF t SKIP LOCKED
           )
           SELECT o.tenant_id AS "tenant_id!", o.id AS "source_id!", o.agent AS "agent!",
                  o.deleted AS "deleted!"
           FROM turns t
           JOIN open o ON o.tenant_id = t.id
           ORDER BY t.running, t.last_served NULLS FIRST, t.id, o.id"#,
        DEFAULT_MAX_IN_FLIGHT as i32,
        tenant_max,
        max
    )
    .fetch_all(conn)
    .await?
    .into_iter()
    .map(|row| {
        let agent = AgentSettings::from_json(&row.agent);
        ReadySource {
            tenant_id: row.tenant_id,
            source_id: row.source_id,
            // A deleted source's forwards, or those of one no longer forwarding, are claimed to
            // be ended (the worker says why), not held to a cap of the source's.
            max_in_flight: (!row.deleted && agent.mode == AgentMode::Forward)
                .then(|| i64::from(agent.max_in_flight())),
        }
    })
    .collect();
    Ok(ready)
}

/// A source with ready forwards, as the forward claim's first statement found it, in its
/// tenant's turn.
#[derive(Debug, Clone)]
struct ReadySource {
    tenant_id: Uuid,
    source_id: Uuid,
    /// `None` when the source is not held to a cap (deleted, or no longer forwarding).
    max_in_flight: Option<i64>,
}

/// Running forwards, by tenant and by source, counted under the tenants' locks.
#[derive(Debug, Default)]
struct RunningForwards {
    by_tenant: HashMap<Uuid, i64>,
    by_source: HashMap<Uuid, i64>,
}

/// What one forward claim may take: at most `limits[i]` jobs of `sources[i]`, whose tenant has
/// turn `turns[i]` (from 1), and at most `shares[t - 1]` jobs of the tenant with turn `t`.
#[derive(Debug, Default, PartialEq, Eq)]
struct ForwardPlan {
    sources: Vec<Uuid>,
    limits: Vec<i64>,
    turns: Vec<i64>,
    shares: Vec<i64>,
}

impl ForwardPlan {
    /// The plan for `max` free slots: each tenant with a free place under `tenant_max` and a
    /// source with one under its `max_in_flight` gets a turn, in the order of `ready` (whose
    /// sources come grouped by tenant), and an equal share of the slots (rounded up; the claim
    /// interleaves the shares and stops at `max`), never more than its free places.
    fn new(ready: &[ReadySource], running: &RunningForwards, max: i64, tenant_max: i64) -> Self {
        /// A tenant's free places under `tenant_max`, and its sources' under their caps.
        struct Turn {
            tenant_id: Uuid,
            free: i64,
            sources: Vec<(Uuid, i64)>,
        }
        let mut tenants: Vec<Turn> = Vec::new();
        for source in ready {
            if tenants.last().map(|turn| turn.tenant_id) != Some(source.tenant_id) {
                let busy = running.by_tenant.get(&source.tenant_id).copied();
                tenants.push(Turn {
                    tenant_id: source.tenant_id,
                    free: tenant_max - busy.unwrap_or(0),
                    sources: Vec::new(),
                });
            }
            let busy = running.by_source.get(&source.source_id).copied();
            let free = source
                .max_in_flight
                .map_or(max, |cap| caps::free_places(cap, busy.unwrap_or(0), max));
            if let Some(turn) = tenants.last_mut().filter(|_| free > 0) {
                turn.sources.push((source.source_id, free));
            }
        }
        tenants.retain(|turn| turn.free > 0 && !turn.sources.is_empty());
        let Ok(turns) = i64::try_from(tenants.len()) else {
            return Self::default();
        };
        if turns == 0 {
            return Self::default();
        }
        let share = max / turns + i64::from(max % turns != 0);
        let mut plan = Self::default();
        for (number, turn) in (1..).zip(tenants) {
            let limit = turn.free.min(share);
            plan.shares.push(limit);
            for (source_id, source_free) in turn.sources {
                plan.sources.push(source_id);
                plan.limits.push(source_free.min(limit));
                plan.turns.push(number);
            }
        }
        plan
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_public_addresses_pass_without_the_allowlist() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "255.255.255.255",
            "224.0.0.1",
            "::1",
            "::",
            "fc00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
            "198.18.0.1",
            "240.0.0.1",
        ] {
            let ip: IpAddr = private.parse().unwrap();
            assert!(!is_public(ip), "{private}");
        }
        for public in [
            "1.1.1.1",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:1.1.1.1",
            "64:ff9b::101:101",
        ] {
            let ip: IpAddr = public.parse().unwrap();
            assert!(is_public(ip), "{public}");
        }
    }

    #[test]
    fn the_allowlist_names_hosts_and_ranges() {
        let allow: ForwardAllow = "127.0.0.0/8, agent.internal,::1".parse().unwrap();
        assert!(allow.allows_ip("127.0.0.5".parse().unwrap()));
        assert!(allow.allows_ip("::1".parse().unwrap()));
        assert!(!allow.allows_ip("10.0.0.1".parse().unwrap()));
        assert!(allow.names_host("Agent.Internal."));
        assert!(allow.check_url("http://127.0.0.1:9000/hook").is_ok());
        assert!(allow.check_url("http://localhost:9000/hook").is_ok());
        assert!(allow.check_url("http://agent.internal/hook").is_ok());
        let none = ForwardAllow::default();
        for (url, says) in [
            ("http://127.0.0.1/x", "not a public address"),
            ("http://[::1]/x", "not a public address"),
            ("http://localhost/x", "not a public address"),
            ("http://169.254.169.254/latest", "not a public address"),
            ("http://0x7f000001/x", "not a public address"),
            ("ftp://example.com/x", "http or https"),
            ("https://user:pw@example.com/x", "credentials"),
            ("not a url", "not a URL"),
            ("https://example.com/\u{0}", "control character"),
        ] {
            let error = none.check_url(url).unwrap_err();
            assert!(error.contains(says), "{url}: {error}");
        }
        assert!(none.check_url("https://agent.example.com/hook").is_ok());
        for bad in ["10.0.0.0/33", "exa mple", "a\u{0}b"] {
            assert!(bad.parse::<ForwardAllow>().is_err(), "{bad}");
        }
    }

    #[test]
    fn forward_settings_are_checked_and_completed() {
        let allow: ForwardAllow = "127.0.0.0/8".parse().unwrap();
        let forward = |value: JsonValue| {
            serde_json::from_value::<AgentSettings>(value)
                .unwrap()
                .checked(&allow)
        };
        let checked = forward(json!({"mode": "forward", "url": "http://127.0.0.1:9/a"})).unwrap();
        assert_eq!(checked.max_in_flight, Some(DEFAULT_MAX_IN_FLIGHT));
        assert_eq!(checked.timeout_ms, Some(DEFAULT_TIMEOUT_MS));
        for (value, says) in [
            (json!({"mode": "forward"}), "required"),
            (
                json!({"mode": "forward", "url": "http://127.0.0.1/", "max_in_flight": 0}),
                "max_in_flight",
            ),
            (
                json!({"mode": "forward", "url": "http://127.0.0.1/", "timeout_ms": 50}),
                "timeout_ms",
            ),
            (
                json!({"mode": "external", "url": "http://127.0.0.1/"}),
                "for mode forward",
            ),
        ] {
            let error = forward(value.clone()).unwrap_err();
            assert!(error.contains(says), "{value}: {error}");
        }
        assert_eq!(
            AgentSettings::from_json(&json!({"mode": "nonsense"})).mode,
            AgentMode::Builtin
        );
    }

    #[test]
    fn the_forward_plan_shares_slots_by_tenant_within_both_caps() {
        let (a, b, c) = (Uuid::from_u128(1), Uuid::from_u128(2), Uuid::from_u128(3));
        let source = |tenant_id, n, max_in_flight| ReadySource {
            tenant_id,
            source_id: Uuid::from_u128(n),
            max_in_flight,
        };
        let ready = [
            source(a, 10, Some(128)),
            source(a, 11, Some(2)),
            source(b, 20, Some(128)),
            source(c, 30, None),
        ];
        let mut running = RunningForwards::default();
        // a holds 3 of its tenant cap of 4, two of them on source 11 (at its cap).
        running.by_tenant.insert(a, 3);
        running.by_source.insert(Uuid::from_u128(10), 1);
        running.by_source.insert(Uuid::from_u128(11), 2);
        let plan = ForwardPlan::new(&ready, &running, 8, 4);
        assert_eq!(
            plan,
            ForwardPlan {
                sources: [10, 20, 30].map(Uuid::from_u128).to_vec(),
                limits: vec![1, 3, 3],
                turns: vec![1, 2, 3],
                shares: vec![1, 3, 3],
            },
            "8 slots over 3 tenants: shares of 3, a's cut to its 1 free place"
        );
        // A tenant at its cap gets no turn; one slot goes to the first turn alone.
        running.by_tenant.insert(a, 4);
        let plan = ForwardPlan::new(&ready, &running, 1, 4);
        assert_eq!(plan.sources, vec![Uuid::from_u128(20), Uuid::from_u128(30)]);
        assert_eq!(
            (plan.limits, plan.turns, plan.shares),
            (vec![1, 1], vec![1, 2], vec![1, 1])
        );
        assert_eq!(
            ForwardPlan::new(&ready[..2], &running, 8, 4),
            ForwardPlan::default()
        );
    }

    #[test]
    fn a_rotation_signs_with_both_secrets() {
        let (old, new) = (
            "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
            "whsec_c2VudGluZWwtdGVzdC1rZXktMDEyMzQ1Njc4OQ==",
        );
        let header = signature_header(&[new, old], "msg_1", "1700000000", b"{}");
        let entries: Vec<&str> = header.split(' ').collect();
        assert_eq!(entries.len(), 2);
        let keys = standard::secret_keys(&json!({ "secret": old })).unwrap();
        assert_eq!(
            entries[1],
            standard::signature(&keys[0], "msg_1", "1700000000", b"{}")
        );
    }
}
