//! `sentinel-loadgen`: drives a running gateway and prints a table.
//!
//! ```text
//! sentinel-loadgen acks --url http://127.0.0.1:8080 --admin-token T [--rate 5000] [--secs 10] [--concurrency 64]
//!                        [--payload text|noreply] [--record FILE] [--timeline true] [--timeout-ms 10000]
//! sentinel-loadgen hold --url http://127.0.0.1:8080 --admin-token T --pid PID [--idle 10000] [--sse 1000]
//! sentinel-loadgen neighbours --url http://127.0.0.1:8080 --admin-token T [--secs 10] [--polls 800] [--rate 20]
//! sentinel-loadgen limit --url http://127.0.0.1:8080,http://127.0.0.1:8081 --admin-token T [--secs 10]
//!                        [--tenant-rate 100] [--tenant-burst 200] [--concurrency 32]
//! ```
//!
//! `--url` may list several gateways, comma-separated: webhooks go to each in turn (both
//! platforms to every gateway). `limit` gives its tenant a rate limit and sends webhooks flat out
//! to every gateway listed, then compares what was admitted with what one gateway may admit
//! (`burst + rate × seconds`), which is the limiter's overshoot across gateways.
//!
//! `acks` creates a tenant with a Telegram and a Slack source, then sends correctly signed
//! webhooks with unique ids, alternating platforms: flat out with `--concurrency` closed-loop
//! senders (no `--rate`), or open-loop at `--rate` per second, where each request's latency is
//! measured from the moment it was due, so a stalled gateway cannot hide its queueing.
//! `--payload noreply` sends events that need no agent reply (Telegram locations, Slack
//! reactions), so a worker drains them without the model. `--record FILE` writes the dedupe key
//! (Telegram `update_id`, Slack `event_id`) of every acknowledged event, one per line, for
//! reconciling with `jobs` after a fault. Answers other than 200 (503 while the database is down)
//! and transport errors (a killed gateway) are counted, not fatal; `--timeline true` prints them
//! per second.
//! `hold` opens idle keep-alive connections and SSE subscribers and reports the gateway's RSS.
//! `neighbours` measures a bystander tenant's acks and reads on an idle stack and while another
//! tenant misbehaves (see [`neighbours`]).

mod neighbours;

use std::{
    collections::{BTreeMap, HashMap},
    sync::{
        atomic::{AtomicU64, Ordering},
        Arc, Mutex,
    },
    time::{Duration, Instant},
};

use anyhow::{bail, Context};
use hdrhistogram::Histogram;
use sentinel_queue::platform::slack;
use serde_json::{json, Value};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

struct Args {
    command: String,
    flags: HashMap<String, String>,
}

impl Args {
    fn parse() -> anyhow::Result<Args> {
        let mut raw = std::env::args().skip(1);
        let command = raw.next().context(
            "usage: sentinel-loadgen acks|hold|neighbours --url URL --admin-token T ...",
        )?;
        let mut flags = HashMap::new();
        while let Some(flag) = raw.next() {
            let name = flag
                .strip_prefix("--")
                .with_context(|| format!("unexpected argument {flag:?}"))?;
            let value = raw
                .next()
                .with_context(|| format!("--{name} needs a value"))?;
            flags.insert(name.to_owned(), value);
        }
        Ok(Args { command, flags })
    }

    fn get<T: std::str::FromStr>(&self, name: &str, default: T) -> anyhow::Result<T> {
        match self.flags.get(name) {
            None => Ok(default),
            Some(value) => value
                .parse()
                .map_err(|_| anyhow::anyhow!("--{name} {value:?} is invalid")),
        }
    }

    fn required(&self, name: &str) -> anyhow::Result<String> {
        self.flags
            .get(name)
            .cloned()
            .with_context(|| format!("--{name} is required"))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse()?;
    match args.command.as_str() {
        "acks" => acks(&args).await,
        "hold" => hold(&args).await,
        "neighbours" => neighbours::neighbours(&args).await,
        "limit" => limit(&args).await,
        other => bail!("unknown command {other:?}; expected acks, hold, neighbours or limit"),
    }
}

struct Target {
    /// The gateways, in turn.
    urls: Vec<String>,
    api_key: String,
    telegram: String,
    slack: String,
}

const TELEGRAM_SECRET: &str = "loadgen-telegram-secret";
const SLACK_SECRET: &str = "loadgen-slack-signing-secret";

async fn setup(client: &reqwest::Client, url: &str, admin_token: &str) -> anyhow::Result<Target> {
    setup_limited(client, url, admin_token, 1_000_000, 1_000_000).await
}

/// [`setup`] with the tenant's rate limit given.
async fn setup_limited(
    client: &reqwest::Client,
    urls: &str,
    admin_token: &str,
    rate_limit_per_sec: u64,
    burst: u64,
) -> anyhow::Result<Target> {
    let urls: Vec<String> = urls
        .split(',')
        .map(|url| url.trim().trim_end_matches('/').to_owned())
        .filter(|url| !url.is_empty())
        .collect();
    let url = urls.first().context("--url names no gateway")?.clone();
    let tenant: Value = client
        .post(format!("{url}/v1/admin/tenants"))
        .bearer_auth(admin_token)
        .json(&json!({"name": "loadgen", "rate_limit_per_sec": rate_limit_per_sec, "burst": burst, "max_queued_jobs": 100_000_000}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let api_key = tenant["api_key"].as_str().context("no api_key")?.to_owned();
    let source = |platform: &'static str, secrets: Value| {
        let request = client
            .post(format!("{url}/v1/sources"))
            .bearer_auth(&api_key)
            .json(&json!({"platform": platform, "secrets": secrets}));
        async move {
            let body: Value = request.send().await?.error_for_status()?.json().await?;
            Ok::<_, anyhow::Error>(body["id"].as_str().context("no id")?.to_owned())
        }
    };
    let telegram = source("telegram", json!({"secret_token": TELEGRAM_SECRET})).await?;
    let slack = source("slack", json!({"signing_secret": SLACK_SECRET})).await?;
    Ok(Target {
        urls,
        api_key,
        telegram,
        slack,
    })
}

/// How one request ended.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Answer {
    Status(u16),
    TransportError,
}

impl std::fmt::Display for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Answer::Status(status) => write!(f, "HTTP {status}"),
            Answer::TransportError => {
                f.write_str("no answer (connection refused, reset or timed out)")
            }
        }
    }
}

/// Sends webhook number `n`: Telegram for even numbers, Slack for odd ones. Returns the event's
/// dedupe key and how the request ended.
async fn send(
    client: &reqwest::Client,
    target: &Target,
    run: u64,
    n: u64,
    noreply: bool,
) -> (String, Answer) {
    // Each platform to every gateway in turn.
    let url = &target.urls[((n + n / 2) % target.urls.len() as u64) as usize];
    let (key, request) = if n % 2 == 0 {
        let update_id = run * 1_000_000_000 + n;
        let mut message = json!({"message_id": n, "date": 1_735_689_600,
            "chat": {"id": 7001, "type": "private"}, "from": {"id": 7001, "first_name": "Load"}});
        if noreply {
            message["location"] = json!({"latitude": 52.52, "longitude": 13.40});
        } else {
            message["text"] = json!("load test");
        }
        let body = json!({"update_id": update_id, "message": message}).to_string();
        let request = client
            .post(format!("{url}/hooks/{}", target.telegram))
            .header("x-telegram-bot-api-secret-token", TELEGRAM_SECRET)
            .header("content-type", "application/json")
            .body(body);
        (update_id.to_string(), request)
    } else {
        let event_id = format!("Ev{run}x{n}");
        let event = if noreply {
            json!({"type": "reaction_added", "user": "U1", "reaction": "eyes",
                   "item": {"type": "message", "channel": "C1", "ts": "1.0"}, "event_ts": "1.0"})
        } else {
            json!({"type": "message", "channel": "C1", "user": "U1", "text": "load test", "ts": "1.0"})
        };
        let body = json!({"type": "event_callback", "team_id": "T0001", "event_id": event_id,
            "event": event})
        .to_string();
        let ts = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
            .to_string();
        let request = client
            .post(format!("{url}/hooks/{}", target.slack))
            .header("x-slack-request-timestamp", &ts)
            .header(
                "x-slack-signature",
                slack::signature(SLACK_SECRET, &ts, body.as_bytes()),
            )
            .header("content-type", "application/json")
            .body(body);
        (event_id, request)
    };
    let answer = match request.send().await {
        Ok(response) => Answer::Status(response.status().as_u16()),
        Err(_) => Answer::TransportError,
    };
    (key, answer)
}

/// What the run saw: latencies of acks, and every answer by kind and by second.
struct Tally {
    histogram: Histogram<u64>,
    answers: BTreeMap<Answer, (u64, Duration)>,
    timeline: BTreeMap<(u64, Answer), u64>,
    acked: Vec<String>,
    started: Instant,
}

impl Tally {
    fn record(&mut self, key: String, answer: Answer, since: Instant) {
        let took = since.elapsed();
        let entry = self.answers.entry(answer).or_insert((0, Duration::ZERO));
        entry.0 += 1;
        entry.1 = entry.1.max(took);
        *self
            .timeline
            .entry((since.duration_since(self.started).as_secs(), answer))
            .or_insert(0) += 1;
        if answer == Answer::Status(200) {
            let micros = took.as_micros().max(1) as u64;
            let _ = self.histogram.record(micros.min(60_000_000));
            self.acked.push(key);
        }
    }

    fn count(&self, answer: Answer) -> u64 {
        self.answers.get(&answer).map_or(0, |(n, _)| *n)
    }
}

async fn acks(args: &Args) -> anyhow::Result<()> {
    let url = args.get("url", "http://127.0.0.1:8080".to_string())?;
    let admin_token = args.required("admin-token")?;
    let secs: u64 = args.get("secs", 10)?;
    let rate: u64 = args.get("rate", 0)?;
    let concurrency: usize = args.get("concurrency", 64)?;
    let noreply = match args.get("payload", "text".to_string())?.as_str() {
        "text" => false,
        "noreply" => true,
        other => bail!("--payload {other:?} is invalid; expected text or noreply"),
    };
    let record_to: Option<String> = args.flags.get("record").cloned();
    let timeline: bool = args.get("timeline", false)?;
    let timeout_ms: u64 = args.get("timeout-ms", 10_000)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_millis(timeout_ms))
        .build()?;
    let target = Arc::new(setup(&client, &url, &admin_token).await?);
    let run: u64 = rand::random_range(1..1_000_000);
    let started = Instant::now();
    let tally = Arc::new(Mutex::new(Tally {
        histogram: Histogram::<u64>::new_with_bounds(1, 60_000_000, 3)?,
        answers: BTreeMap::new(),
        timeline: BTreeMap::new(),
        acked: Vec::new(),
        started,
    }));
    let deadline = started + Duration::from_secs(secs);
    let record = {
        let tally = tally.clone();
        move |(key, answer): (String, Answer), since: Instant| {
            tally.lock().expect("tally").record(key, answer, since);
        }
    };
    if rate == 0 {
        let next = Arc::new(AtomicU64::new(0));
        let senders: Vec<_> = (0..concurrency)
            .map(|_| {
                let (client, target, next, record) =
                    (client.clone(), target.clone(), next.clone(), record.clone());
                tokio::spawn(async move {
                    while Instant::now() < deadline {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        let sent = Instant::now();
                        let outcome = send(&client, &target, run, n, noreply).await;
                        if outcome.1 == Answer::TransportError {
                            // A gateway that is down refuses at once: don't spin on it.
                            tokio::time::sleep(Duration::from_millis(20)).await;
                        }
                        record(outcome, sent);
                    }
                })
            })
            .collect();
        for sender in senders {
            sender.await?;
        }
    } else {
        let interval = Duration::from_secs_f64(1.0 / rate as f64);
        let mut tasks = Vec::new();
        let mut n = 0u64;
        loop {
            let due = started + interval.mul_f64(n as f64);
            if due >= deadline {
                break;
            }
            tokio::time::sleep_until(due.into()).await;
            let (client, target, record) = (client.clone(), target.clone(), record.clone());
            tasks.push(tokio::spawn(async move {
                record(send(&client, &target, run, n, noreply).await, due)
            }));
            n += 1;
        }
        for task in tasks {
            task.await?;
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let tally = tally.lock().expect("tally");
    let ms = |q: f64| tally.histogram.value_at_quantile(q) as f64 / 1000.0;
    let mode = if rate == 0 {
        format!("flat out, {concurrency} connections")
    } else {
        format!("open loop at {rate}/s")
    };
    let acked = tally.count(Answer::Status(200));
    let failed: u64 = tally.answers.values().map(|(n, _)| n).sum::<u64>() - acked;
    println!("| mode | acks (200) | errors | acks/s | p50 ms | p99 ms | p999 ms | max ms |");
    println!("|---|---|---|---|---|---|---|---|");
    println!(
        "| {mode} | {acked} | {failed} | {:.0} | {:.2} | {:.2} | {:.2} | {:.2} |",
        acked as f64 / elapsed,
        ms(0.5),
        ms(0.99),
        ms(0.999),
        tally.histogram.max() as f64 / 1000.0
    );
    if failed > 0 {
        println!();
        println!("| answer | requests | slowest |");
        println!("|---|---|---|");
        for (answer, (n, slowest)) in &tally.answers {
            println!(
                "| {answer} | {n} | {:.0} ms |",
                slowest.as_secs_f64() * 1000.0
            );
        }
    }
    if timeline {
        println!();
        println!("| second | answer | requests |");
        println!("|---|---|---|");
        for ((second, answer), n) in &tally.timeline {
            println!("| {second} | {answer} | {n} |");
        }
    }
    if let Some(path) = record_to {
        let mut lines = tally.acked.join("\n");
        lines.push('\n');
        std::fs::write(&path, lines).with_context(|| format!("writing {path}"))?;
    }
    let _ = &target.api_key;
    Ok(())
}

/// Floods one rate-limited tenant through every gateway in `--url` and prints what was admitted
/// against what one gateway may admit.
async fn limit(args: &Args) -> anyhow::Result<()> {
    let urls = args.get("url", "http://127.0.0.1:8080".to_string())?;
    let admin_token = args.required("admin-token")?;
    let secs: u64 = args.get("secs", 10)?;
    let per_sec: u64 = args.get("tenant-rate", 100)?;
    let burst: u64 = args.get("tenant-burst", 200)?;
    let concurrency: usize = args.get("concurrency", 32)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(10))
        .build()?;
    let target = Arc::new(setup_limited(&client, &urls, &admin_token, per_sec, burst).await?);
    let run: u64 = rand::random_range(1..1_000_000);
    let next = Arc::new(AtomicU64::new(0));
    let admitted = Arc::new(AtomicU64::new(0));
    let refused = Arc::new(AtomicU64::new(0));
    let other = Arc::new(AtomicU64::new(0));
    // Creating the two sources spent two of the tenant's tokens.
    let started = Instant::now();
    let deadline = started + Duration::from_secs(secs);
    let senders: Vec<_> = (0..concurrency)
        .map(|_| {
            let (client, target, next) = (client.clone(), target.clone(), next.clone());
            let (admitted, refused, other) = (admitted.clone(), refused.clone(), other.clone());
            tokio::spawn(async move {
                while Instant::now() < deadline {
                    let n = next.fetch_add(1, Ordering::Relaxed);
                    match send(&client, &target, run, n, true).await.1 {
                        Answer::Status(200) => admitted.fetch_add(1, Ordering::Relaxed),
                        Answer::Status(429) => refused.fetch_add(1, Ordering::Relaxed),
                        _ => other.fetch_add(1, Ordering::Relaxed),
                    };
                }
            })
        })
        .collect();
    for sender in senders {
        sender.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let admitted = admitted.load(Ordering::Relaxed);
    let allowed = (burst as f64 - 2.0 + per_sec as f64 * elapsed).floor();
    println!(
        "| gateways | tenant limit | seconds | requests | admitted (200) | refused (429) | other | one gateway's limit | overshoot | overshoot % |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    println!(
        "| {} | {per_sec}/s, burst {burst} | {elapsed:.1} | {} | {admitted} | {} | {} | {allowed:.0} | {:.0} | {:.2}% |",
        target.urls.len(),
        next.load(Ordering::Relaxed),
        refused.load(Ordering::Relaxed),
        other.load(Ordering::Relaxed),
        admitted as f64 - allowed,
        (admitted as f64 - allowed) / allowed * 100.0
    );
    Ok(())
}

fn rss_mb(pid: u32) -> anyhow::Result<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kb: f64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS line")?;
    Ok(kb / 1024.0)
}

async fn hold(args: &Args) -> anyhow::Result<()> {
    let url = args.get("url", "http://127.0.0.1:8080".to_string())?;
    let admin_token = args.required("admin-token")?;
    let pid: u32 = args.get("pid", 0)?;
    let n_idle: usize = args.get("idle", 10_000)?;
    let n_sse: usize = args.get("sse", 1_000)?;
    let host = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let client = reqwest::Client::new();
    let target = setup(&client, &url, &admin_token).await?;
    let before = rss_mb(pid)?;

    let mut idle = Vec::with_capacity(n_idle);
    for _ in 0..n_idle {
        let mut stream = TcpStream::connect(&host)
            .await
            .with_context(|| format!("connecting to {host}"))?;
        stream
            .write_all(
                format!("GET /healthz HTTP/1.1\r\nHost: {host}\r\nConnection: keep-alive\r\n\r\n")
                    .as_bytes(),
            )
            .await?;
        let mut buf = [0u8; 256];
        let n = stream.read(&mut buf).await?;
        if !buf[..n].starts_with(b"HTTP/1.1 200") {
            bail!("an idle connection's request failed");
        }
        idle.push(stream);
    }
    let mut subscribers = Vec::with_capacity(n_sse);
    for _ in 0..n_sse {
        let mut stream = TcpStream::connect(&host).await?;
        stream
            .write_all(
                format!(
                    "GET /v1/events HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {}\r\nAccept: text/event-stream\r\n\r\n",
                    target.api_key
                )
                .as_bytes(),
            )
            .await?;
        let mut buf = [0u8; 512];
        let n = stream.read(&mut buf).await?;
        if !buf[..n].starts_with(b"HTTP/1.1 200") {
            bail!(
                "an SSE subscription failed: {}",
                String::from_utf8_lossy(&buf[..n])
            );
        }
        subscribers.push(stream);
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = rss_mb(pid)?;
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let counted = metrics
        .lines()
        .find_map(|line| line.strip_prefix("sentinel_sse_subscribers "))
        .unwrap_or("?")
        .to_owned();
    println!("| idle keep-alive connections | SSE subscribers (gateway's count) | gateway RSS before | gateway RSS held |");
    println!("|---|---|---|---|");
    println!(
        "| {} | {} ({counted}) | {before:.1} MB | {held:.1} MB |",
        idle.len(),
        subscribers.len()
    );
    Ok(())
}
