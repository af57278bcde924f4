//! Following the primary across a failover, with a connection string that names several servers
//! (`postgres://user@primary:5432,standby:5432/sentinel`, as libpq writes it).
//!
//! sqlx connects to one host, so the hosts are split here into one set of connect options each.
//! [`Failover::run`] keeps a connection to the server the pools point at and asks it every
//! [`CHECK_EVERY`] whether it is still the primary (`pg_is_in_recovery()`). When it is gone or has
//! become a standby, every server is asked in turn, and the first primary found becomes every
//! followed pool's target: new connections go there, and the connections to the old server fail
//! their liveness check (or their next statement, answered 503) and are replaced. Nothing is
//! written to a standby: a server in recovery is never chosen.
//!
//! The promotion itself is the operator's or the platform's (`pg_ctl promote`, Patroni, a managed
//! service); with a synchronous standby (`synchronous_commit = on`), every commit a gateway
//! acknowledged is on the server that takes over. docs/SCALING.md describes the setup and
//! scripts/cluster.sh failover measures it.

use std::{
    sync::{
        atomic::{AtomicUsize, Ordering},
        Arc, Mutex,
    },
    time::Duration,
};

use anyhow::Context;
use sqlx::{
    postgres::{PgConnectOptions, PgConnection},
    ConnectOptions, PgPool,
};
use tokio::sync::watch;

/// How often the current server is asked whether it is still the primary.
pub const CHECK_EVERY: Duration = Duration::from_millis(500);
/// How long one server may take to answer that question.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// The URL once per host it names: `postgres://u@a:1,b:2/db?x=y` gives `postgres://u@a:1/db?x=y`
/// and `postgres://u@b:2/db?x=y`. `target_session_attrs` (libpq's) is dropped: the primary is
/// always what Sentinel connects to. A URL with one host is returned as it is.
pub fn split_hosts(url: &str) -> anyhow::Result<Vec<String>> {
    let (scheme, rest) = url
        .split_once("://")
        .context("a database URL must start with postgres://")?;
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    let (userinfo, hosts) = match authority.rfind('@') {
        Some(at) => (&authority[..=at], &authority[at + 1..]),
        None => ("", authority),
    };
    let tail = drop_param(tail, "target_session_attrs");
    if !hosts.contains(',') {
        return Ok(vec![format!("{scheme}://{userinfo}{hosts}{tail}")]);
    }
    hosts
        .split(',')
        .map(|host| {
            anyhow::ensure!(
                !host.trim().is_empty(),
                "the database URL names an empty host between commas"
            );
            Ok(format!("{scheme}://{userinfo}{}{tail}", host.trim()))
        })
        .collect()
}

/// `tail` (path and query) without the query parameter `name`.
fn drop_param(tail: &str, name: &str) -> String {
    let Some((path, query)) = tail.split_once('?') else {
        return tail.to_owned();
    };
    let kept: Vec<&str> = query
        .split('&')
        .filter(|pair| pair.split('=').next() != Some(name) && !pair.is_empty())
        .collect();
    if kept.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", kept.join("&"))
    }
}

/// The servers, and the pools that follow whichever of them is the primary.
pub struct Failover {
    /// Each server's options for the probe (direct, no pooler).
    servers: Vec<PgConnectOptions>,
    /// Which server the pools point at.
    current: AtomicUsize,
    /// Each followed pool with its options for every server, in the servers' order.
    followers: Mutex<Vec<(PgPool, Vec<PgConnectOptions>)>>,
}

impl std::fmt::Debug for Failover {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Failover")
            .field("servers", &self.servers.len())
            .field("current", &self.current.load(Ordering::Relaxed))
            .finish()
    }
}

impl Failover {
    /// Follows the primary among `servers` (at least two).
    pub fn new(servers: Vec<PgConnectOptions>) -> Arc<Self> {
        Arc::new(Self {
            servers,
            current: AtomicUsize::new(0),
            followers: Mutex::default(),
        })
    }

    /// How many servers there are.
    pub fn servers(&self) -> usize {
        self.servers.len()
    }

    /// Makes `pool` follow the primary: `hosts` holds its options for each server, in order.
    pub fn follow(&self, pool: &PgPool, hosts: Vec<PgConnectOptions>) {
        if hosts.len() != self.servers.len() {
            return;
        }
        let current = self.current.load(Ordering::Relaxed);
        if let Some(options) = hosts.get(current) {
            pool.set_connect_options(options.clone());
        }
        self.lock().push((pool.clone(), hosts));
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(PgPool, Vec<PgConnectOptions>)>> {
        self.followers
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Finds the primary before anything connects (a process may start while the first server
    /// named is a standby): its index, or 0 when none answers as one yet.
    pub async fn locate(&self) -> usize {
        for (index, server) in self.servers.iter().enumerate() {
            if is_primary(&mut None, server).await {
                self.current.store(index, Ordering::Relaxed);
                return index;
            }
        }
        self.current.load(Ordering::Relaxed)
    }

    /// Watches the current server until `shutdown`, moving the pools to the primary when it
    /// changes.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut probe: Option<PgConnection> = None;
        let mut ticker = tokio::time::interval(CHECK_EVERY);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticker.tick() => {}
                _ = shutdown.wait_for(|stop| *stop) => return,
            }
            let current = self.current.load(Ordering::Relaxed);
            if is_primary(&mut probe, &self.servers[current]).await {
                continue;
            }
            probe = None;
            // The others first, in order, then the current one again.
            let order = (1..=self.servers.len()).map(|step| (current + step) % self.servers.len());
            for candidate in order {
                let mut connection = None;
                if is_primary(&mut connection, &self.servers[candidate]).await {
                    probe = connection;
                    if candidate != current {
                        self.switch(current, candidate);
                    }
                    break;
                }
            }
        }
    }

    fn switch(&self, from: usize, to: usize) {
        self.current.store(to, Ordering::Relaxed);
        let followers = self.lock();
        for (pool, hosts) in followers.iter() {
            pool.set_connect_options(hosts[to].clone());
        }
        tracing::warn!(
            from = %describe(&self.servers[from]),
            to = %describe(&self.servers[to]),
            pools = followers.len(),
            "the database primary changed; new connections go to the new primary"
        );
    }
}

/// `host:port` of a server, for the log.
fn describe(options: &PgConnectOptions) -> String {
    format!("{}:{}", options.get_host(), options.get_port())
}

/// Whether the server answers as a primary, over `connection` (opened when `None`, kept when it
/// answers, dropped when it fails).
async fn is_primary(connection: &mut Option<PgConnection>, options: &PgConnectOptions) -> bool {
    let asked = tokio::time::timeout(PROBE_TIMEOUT, async {
        if connection.is_none() {
            *connection = Some(options.clone().connect().await?);
        }
        let Some(open) = connection.as_mut() else {
            return Err(sqlx::Error::PoolClosed);
        };
        sqlx::query_scalar::<_, bool>("SELECT pg_is_in_recovery()")
            .fetch_one(open)
            .await
    })
    .await;
    match asked {
        Ok(Ok(in_recovery)) => !in_recovery,
        _ => {
            *connection = None;
            false
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn one_host_is_kept_as_written() {
        assert_eq!(
            split_hosts("postgres://u:p@db:5432/sentinel?sslmode=disable").unwrap(),
            vec!["postgres://u:p@db:5432/sentinel?sslmode=disable"]
        );
    }

    #[test]
    fn several_hosts_give_one_url_each_without_target_session_attrs() {
        assert_eq!(
            split_hosts(
                "postgres://u:p@a:5432,b:5433/sentinel?target_session_attrs=read-write&sslmode=disable"
            )
            .unwrap(),
            vec![
                "postgres://u:p@a:5432/sentinel?sslmode=disable",
                "postgres://u:p@b:5433/sentinel?sslmode=disable"
            ]
        );
        assert_eq!(
            split_hosts("postgresql://a,b/db?target_session_attrs=primary").unwrap(),
            vec!["postgresql://a/db", "postgresql://b/db"]
        );
    }

    #[test]
    fn an_empty_host_or_no_scheme_is_refused() {
        assert!(split_hosts("postgres://u@a,,b/db").is_err());
        assert!(split_hosts("a,b/db").is_err());
    }
}
