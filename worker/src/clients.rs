//! The worker's HTTP clients: the one that calls the platforms' reply APIs, and the one that
//! forwards messages to the tenants' agents.
//!
//! A forward's URL is checked against `SENTINEL_FORWARD_ALLOW` when it is set and again on every
//! connection: the forward client's resolver drops every address the list does not allow (see
//! [`GuardedResolver`]), so a host name that later resolves to the operator's network is refused.
//! The client therefore takes no proxy from `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY`: a proxy
//! resolves the name itself, where the resolver never sees the address. An operator who wants one
//! names it in `SENTINEL_FORWARD_PROXY` (see [`forward`]).

use std::{error::Error as StdError, net::SocketAddr, sync::Arc, time::Duration};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use sentinel_queue::agent::ForwardAllow;

/// The client of the platforms' reply APIs: every request ends within `delivery_timeout`
/// (`SENTINEL_DELIVERY_TIMEOUT_SECS`).
pub fn platform(delivery_timeout: Duration) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5).min(delivery_timeout))
        .timeout(delivery_timeout)
        .user_agent(concat!("sentinel-worker/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// An address the operator's allowlist does not allow: ends the job, as no retry can change it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ForwardRefused(String);

/// The forward client's resolver: the system's, less every address [`ForwardAllow`] refuses. A
/// host the list names keeps all its addresses.
pub struct GuardedResolver {
    pub allow: Arc<ForwardAllow>,
}

impl Resolve for GuardedResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let allow = self.allow.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            if allow.names_host(&host) {
                return Ok(Box::new(addrs.into_iter()) as Addrs);
            }
            let allowed: Vec<SocketAddr> = addrs
                .iter()
                .copied()
                .filter(|addr| allow.allows_ip(addr.ip()))
                .collect();
            if allowed.is_empty() {
                let listed: Vec<String> = addrs.iter().map(|addr| addr.ip().to_string()).collect();
                return Err(Box::new(ForwardRefused(format!(
                    "{host} resolves to {}, which is not a public address, and SENTINEL_FORWARD_ALLOW does not allow it",
                    listed.join(", ")
                ))) as Box<dyn StdError + Send + Sync>);
            }
            Ok(Box::new(allowed.into_iter()) as Addrs)
        })
    }
}

/// The forward client: redirects not followed, every connection through [`GuardedResolver`], and
/// no proxy but `proxy` (`SENTINEL_FORWARD_PROXY`, checked by [`check_proxy`]): the environment's
/// `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are ignored.
///
/// With a proxy, the agents' host names are resolved by the proxy, so only their address literals
/// (and `localhost`) are still checked against the allowlist, when the URL is read; the proxy's
/// own host name goes through [`GuardedResolver`] like any other.
pub fn forward(allow: Arc<ForwardAllow>, proxy: Option<&str>) -> reqwest::Result<reqwest::Client> {
    let builder = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .dns_resolver(Arc::new(GuardedResolver { allow }))
        .connect_timeout(Duration::from_secs(5))
        .pool_max_idle_per_host(64)
        .user_agent(concat!("sentinel-worker/", env!("CARGO_PKG_VERSION")));
    match proxy {
        Some(proxy) => builder.proxy(reqwest::Proxy::all(proxy)?).build(),
        None => builder.build(),
    }
}

/// Checks `SENTINEL_FORWARD_PROXY` at start-up: an http or https URL with a host, and perhaps
/// credentials and a port, but no path, query or fragment. The error never repeats the value,
/// which may hold the proxy's credentials.
pub fn check_proxy(raw: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(raw).map_err(|error| format!("not a URL: {error}"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "the scheme must be http or https, not {}",
            url.scheme()
        ));
    }
    if url.host().is_none() {
        return Err("the URL has no host".into());
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err("a proxy URL has no path, query or fragment".into());
    }
    reqwest::Proxy::all(url.as_str()).map_err(|_| "reqwest refuses it as a proxy".to_owned())?;
    Ok(raw.to_owned())
}

/// The allowlist's refusal, when that is why the request could not be sent.
pub fn refusal(error: &reqwest::Error) -> Option<&ForwardRefused> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<ForwardRefused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpListener,
        process::Command,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use super::*;

    /// The proxy test's name as libtest knows it, so that it can run itself alone.
    const PROXY_TEST: &str = "clients::tests::the_environments_proxies_are_ignored";
    /// Set in that test's own child run: the URL of the agent to POST to.
    const CHILD_AGENT_URL: &str = "SENTINEL_TEST_FORWARD_AGENT_URL";
    /// The variables reqwest reads a proxy from.
    const PROXY_VARS: [&str; 6] = [
        "HTTP_PROXY",
        "HTTPS_PROXY",
        "ALL_PROXY",
        "http_proxy",
        "https_proxy",
        "all_proxy",
    ];

    /// A loopback HTTP server that counts its connections and answers every request with `status`.
    fn counting_server(status: &'static str) -> (SocketAddr, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        std::thread::spawn(move || {
            for mut stream in listener.incoming().map_while(Result::ok) {
                counted.fetch_add(1, Ordering::SeqCst);
                // Read the head and the body (its content-length) before answering.
                let mut request = Vec::new();
                let mut buffer = [0u8; 4096];
                while let Ok(n @ 1..) = stream.read(&mut buffer) {
                    request.extend_from_slice(&buffer[..n]);
                    let text = String::from_utf8_lossy(&request).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|line| line.strip_prefix("content-length:"))
                            .and_then(|value| value.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        if request.len() >= end + 4 + length {
                            break;
                        }
                    }
                }
                let answer =
                    format!("HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
                let _ = stream.write_all(answer.as_bytes());
            }
        });
        (addr, connections)
    }

    /// The proxy variables are process-wide, so the test runs itself again, alone, in a child
    /// process that has them set (pointing at a server that counts connections), and the child
    /// makes the requests.
    #[test]
    fn the_environments_proxies_are_ignored() {
        if let Ok(agent_url) = std::env::var(CHILD_AGENT_URL) {
            return post_from_the_child(&agent_url);
        }
        let (agent, agent_connections) = counting_server("200 OK");
        let (proxy, proxy_connections) = counting_server("502 Bad Gateway");
        let proxy_url = format!("http://{proxy}");
        let output = Command::new(std::env::current_exe().unwrap())
            .args([PROXY_TEST, "--exact", "--nocapture", "--test-threads=1"])
            .env(CHILD_AGENT_URL, format!("http://{agent}/agent"))
            .envs(PROXY_VARS.map(|name| (name, proxy_url.as_str())))
            .env_remove("NO_PROXY")
            .env_remove("no_proxy")
            .env_remove("REQUEST_METHOD")
            .output()
            .unwrap();
        let printed = format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert!(
            output.status.success() && printed.contains("1 passed"),
            "the child run: {printed}"
        );
        assert_eq!(
            agent_connections.load(Ordering::SeqCst),
            1,
            "the forward client went straight to the agent"
        );
        assert_eq!(
            proxy_connections.load(Ordering::SeqCst),
            2,
            "the proxy saw only the client that reads the environment and the one given SENTINEL_FORWARD_PROXY"
        );
    }

    fn post_from_the_child(agent_url: &str) {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let post = |client: reqwest::Client| async move {
                let response = client.post(agent_url).body("{}").send().await.unwrap();
                response.status().as_u16()
            };
            let allow: Arc<ForwardAllow> = Arc::new("127.0.0.0/8".parse().unwrap());
            assert_eq!(
                post(forward(allow.clone(), None).unwrap()).await,
                200,
                "the forward client ignores the proxy variables"
            );
            // A client that reads them goes through the proxy: the variables are set.
            assert_eq!(post(reqwest::Client::new()).await, 502);
            // The operator's proxy, named explicitly, is used.
            let proxy = std::env::var("HTTPS_PROXY").unwrap();
            let proxy = check_proxy(&proxy).unwrap();
            assert_eq!(post(forward(allow, Some(&proxy)).unwrap()).await, 502);
        });
    }

    #[test]
    fn a_forward_proxy_is_checked_without_repeating_it() {
        assert!(check_proxy("http://10.0.0.5:3128").is_ok());
        assert!(check_proxy("https://user:pass@proxy.internal:8443/").is_ok());
        for (value, says) in [
            ("socks5://user:hunter2@proxy:1080", "scheme"),
            ("http://user:hunter2@proxy:3128/path", "no path"),
            ("http://user:hunter2@proxy:3128/?q=1", "no path"),
            ("user:hunter2@proxy:3128", "scheme"),
            ("not a url hunter2", "not a URL"),
        ] {
            let error = check_proxy(value).unwrap_err();
            assert!(error.contains(says), "{value}: {error}");
            assert!(!error.contains("hunter2"), "{value}: {error}");
        }
    }
}
