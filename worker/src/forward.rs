//! `agent.forward`: a healed message POSTed to the tenant's agent, signed as a Standard Webhook
//! with the source's agent secret, and the agent's answer.
//!
//! The body is `{"type": "message.received", "timestamp", "data": {"job_id", "source_id",
//! "message", "history"}}`; `webhook-id` is the same on every attempt of a job, so the agent can
//! drop a repeat.
//!
//! | answer | outcome |
//! |---|---|
//! | 2xx `{"reply": "…"}` | succeeded; the reply goes out through the outbox (`reply.deliver`) |
//! | 2xx with no body, or no `reply` | succeeded; nothing is sent |
//! | 429 or 503 with `Retry-After` | snoozed for it (at most an hour); no attempt spent |
//! | other 5xx, 429/503 without `Retry-After`, a timeout, a network error | retried with backoff |
//! | other 4xx, a 3xx (redirects are not followed), a `reply` that is not text | dead, with the answer kept |
//!
//! The URL is checked against `SENTINEL_FORWARD_ALLOW` when it is set and again on every
//! connection: the client's resolver drops every address the list does not allow (see
//! [`GuardedResolver`]), so a host name that later resolves to the operator's network is refused.
//! The client therefore takes no proxy from `HTTP_PROXY`, `HTTPS_PROXY` or `ALL_PROXY`: a proxy
//! resolves the name itself, where the resolver never sees the address. An operator who wants one
//! names it in `SENTINEL_FORWARD_PROXY` (see [`client`]).

use std::{
    error::Error as StdError,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use chrono::{DateTime, SecondsFormat, Utc};
use reqwest::{
    dns::{Addrs, Name, Resolve, Resolving},
    header::{CONTENT_TYPE, RETRY_AFTER},
    StatusCode,
};
use sentinel_queue::{
    agent::{self, AgentMode, AgentSettings, ForwardAllow},
    enqueue,
    platform::standard,
    FailKind, Job, Outcome, RetryPolicy,
};
use serde_json::{json, Value as JsonValue};

use crate::{generate_job::fatal, Services};

/// The most of an agent's answer that is read; a longer one is cut, and kept cut in an error.
const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The most of an agent's answer kept in a failed job's error.
const ERROR_BODY_BYTES: usize = 4096;
/// The longest snooze a `Retry-After` may ask for.
const MAX_SNOOZE: Duration = Duration::from_secs(3600);

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

/// What the forward client is built from: the operator's allowlist (`SENTINEL_FORWARD_ALLOW`) and
/// proxy (`SENTINEL_FORWARD_PROXY`, none by default).
#[derive(Debug, Clone, Default)]
pub struct ClientSettings {
    pub allow: ForwardAllow,
    pub proxy: Option<String>,
}

/// The forward client: redirects not followed, every connection through [`GuardedResolver`], and
/// no proxy but `proxy` (`SENTINEL_FORWARD_PROXY`, checked by [`check_proxy`]): the environment's
/// `HTTP_PROXY`, `HTTPS_PROXY` and `ALL_PROXY` are ignored.
///
/// With a proxy, the agents' host names are resolved by the proxy, so only their address literals
/// (and `localhost`) are still checked against the allowlist, when the URL is read; the proxy's
/// own host name goes through [`GuardedResolver`] like any other.
pub fn client(allow: Arc<ForwardAllow>, proxy: Option<&str>) -> reqwest::Result<reqwest::Client> {
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

pub async fn handle(services: &Services, job: &Job) -> Outcome {
    let retry = |code: &str, message: String| Outcome::Failed {
        kind: RetryPolicy::default().retryable(job.attempt),
        error: json!({"code": code, "message": message}),
    };
    let Some(source_id) = job.source_id else {
        return fatal("source_deleted", "the job's source was deleted".into());
    };
    let source = sqlx::query!(
        r#"SELECT agent, agent_secret,
                  CASE WHEN previous_agent_secret_until > now() THEN previous_agent_secret END AS previous_secret
           FROM sources WHERE id = $1 AND deleted_at IS NULL"#,
        source_id
    )
    .fetch_optional(&services.pool)
    .await;
    let source = match source {
        Ok(Some(source)) => source,
        Ok(None) => return fatal("source_deleted", "the job's source was deleted".into()),
        Err(error) => return retry("database", error.to_string()),
    };
    let settings = AgentSettings::from_json(&source.agent);
    if settings.mode != AgentMode::Forward {
        return fatal(
            "agent_changed",
            format!(
                "the source's agent is now {}, not forward; set it back and replay the job to forward it",
                settings.mode.as_str()
            ),
        );
    }
    let url = match settings
        .url
        .as_deref()
        .ok_or_else(|| "the source's agent has no url".to_owned())
        .and_then(|url| services.forward_allow.check_url(url))
    {
        Ok(url) => url,
        Err(error) => return fatal("forward_refused", error),
    };
    let secrets: Vec<&str> = [
        source.agent_secret.as_deref(),
        source.previous_secret.as_deref(),
    ]
    .into_iter()
    .flatten()
    .collect();
    if secrets.is_empty() {
        return fatal(
            "no_secret",
            "the source has no agent secret to sign with; rotate it with PATCH /v1/sources/{id}"
                .into(),
        );
    }
    let body = json!({
        "type": "message.received",
        "timestamp": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
        "data": {
            "job_id": job.id,
            "source_id": source_id,
            "message": job.input.get("message"),
            "history": job.input.get("history").cloned().unwrap_or_else(|| json!([])),
        },
    });
    let body = body.to_string().into_bytes();
    let id = format!("msg_sentinel_{}", job.id);
    let timestamp = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
        .to_string();
    let signature = agent::signature_header(&secrets, &id, &timestamp, &body);
    let response = services
        .forward_http
        .post(url)
        .timeout(Duration::from_millis(u64::from(settings.timeout_ms())))
        .header(CONTENT_TYPE, "application/json")
        .header(standard::ID_HEADER, &id)
        .header(standard::TIMESTAMP_HEADER, &timestamp)
        .header(standard::SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await;
    let mut response = match response {
        Ok(response) => response,
        Err(error) => {
            if let Some(refused) = refusal(&error) {
                return fatal("forward_refused", refused.to_string());
            }
            let code = if error.is_timeout() {
                "agent_timeout"
            } else {
                "agent_unreachable"
            };
            return retry(code, error.to_string());
        }
    };
    let status = response.status();
    let retry_after = retry_after(response.headers().get(RETRY_AFTER));
    let mut answer = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = MAX_ANSWER_BYTES - answer.len();
                answer.extend_from_slice(&chunk[..chunk.len().min(room)]);
                if answer.len() >= MAX_ANSWER_BYTES {
                    break;
                }
            }
            Ok(None) => break,
            Err(error) if status.is_success() => {
                let code = if error.is_timeout() {
                    "agent_timeout"
                } else {
                    "agent_unreachable"
                };
                return retry(code, error.to_string());
            }
            // A failure's body is kept only for the record: what was read is enough.
            Err(_) => break,
        }
    }
    let kept = String::from_utf8_lossy(&answer[..answer.len().min(ERROR_BODY_BYTES)]).into_owned();
    let error = |code: &str| json!({"code": code, "status": status.as_u16(), "body": kept});
    if matches!(
        status,
        StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
    ) {
        if let Some(delay) = retry_after {
            return Outcome::Snoozed {
                delay: delay.min(MAX_SNOOZE),
                error: Some(error("agent_busy")),
            };
        }
    }
    if status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS {
        return Outcome::Failed {
            kind: RetryPolicy::default().retryable(job.attempt),
            error: error("agent_error"),
        };
    }
    if status.is_redirection() {
        return Outcome::Failed {
            kind: FailKind::Fatal,
            error: error("agent_redirected"),
        };
    }
    if !status.is_success() {
        return Outcome::Failed {
            kind: FailKind::Fatal,
            error: error("agent_refused"),
        };
    }
    let reply = if answer.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        match serde_json::from_slice::<JsonValue>(&answer) {
            Ok(JsonValue::Object(answer)) => match answer.get("reply") {
                None | Some(JsonValue::Null) => None,
                Some(JsonValue::String(text)) => Some(text.clone()),
                Some(_) => {
                    return Outcome::Failed {
                        kind: FailKind::Fatal,
                        error: error("invalid_reply"),
                    }
                }
            },
            // An answer that is not a JSON object carries no reply.
            _ => None,
        }
    };
    let Some(text) = reply else {
        return Outcome::Succeeded {
            result: json!({"status": status.as_u16(), "reply": null}),
        };
    };
    if let Err(problem) = agent::check_reply_text(&text) {
        let mut error = error("invalid_reply");
        error["message"] = json!(problem);
        return Outcome::Failed {
            kind: FailKind::Fatal,
            error,
        };
    }
    let deliver = match agent::reply_job(job, &text) {
        Ok(deliver) => deliver,
        Err(problem) => return fatal("invalid_input", problem),
    };
    match enqueue(&services.pool, &deliver).await {
        Ok(enqueued) => Outcome::Succeeded {
            result: json!({
                "status": status.as_u16(),
                "reply": text,
                "delivery": {"job_id": enqueued.id},
            }),
        },
        // The agent is asked again; the same webhook-id lets it answer from its own record.
        Err(error) => retry("database", error.to_string()),
    }
}

/// The allowlist's refusal, when that is why the request could not be sent.
fn refusal(error: &reqwest::Error) -> Option<&ForwardRefused> {
    let mut source = error.source();
    while let Some(cause) = source {
        if let Some(refused) = cause.downcast_ref::<ForwardRefused>() {
            return Some(refused);
        }
        source = cause.source();
    }
    None
}

/// `Retry-After` as seconds or as an HTTP date.
fn retry_after(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let value = value?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&Utc) - Utc::now();
    Some(
        wait.to_std()
            .unwrap_or(Duration::ZERO)
            .max(Duration::from_secs(1)),
    )
}

#[cfg(test)]
mod tests {
    use std::{
        io::{Read, Write},
        net::TcpListener,
        process::Command,
        sync::atomic::{AtomicUsize, Ordering},
    };

    use reqwest::header::HeaderValue;

    use super::*;

    /// The proxy test's name as libtest knows it, so that it can run itself alone.
    const PROXY_TEST: &str = "forward::tests::the_environments_proxies_are_ignored";
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
                post(client(allow.clone(), None).unwrap()).await,
                200,
                "the forward client ignores the proxy variables"
            );
            // A client that reads them goes through the proxy: the variables are set.
            assert_eq!(post(reqwest::Client::new()).await, 502);
            // The operator's proxy, named explicitly, is used.
            let proxy = std::env::var("HTTPS_PROXY").unwrap();
            let proxy = check_proxy(&proxy).unwrap();
            assert_eq!(post(client(allow, Some(&proxy)).unwrap()).await, 502);
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

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        assert_eq!(
            retry_after(Some(&HeaderValue::from_static("7"))),
            Some(Duration::from_secs(7))
        );
        let later = (Utc::now() + chrono::Duration::seconds(90)).to_rfc2822();
        let wait = retry_after(Some(&HeaderValue::from_str(&later).unwrap())).unwrap();
        assert!((85..=90).contains(&wait.as_secs()), "{wait:?}");
        assert_eq!(retry_after(Some(&HeaderValue::from_static("soon"))), None);
        assert_eq!(retry_after(None), None);
    }
}
