//! `sentinel-loadgen neighbours`: what one tenant's misbehaviour costs a bystander tenant, measured
//! against a running gateway, first on an idle stack and then while the noise runs:
//! - `polls`: one tenant holds `--polls` long polls (re-sent as they answer) on a kind capped at
//!   `max_running: 1` while a third tenant submits jobs of its own kind at `--rate`/s;
//! - `progress`: one tenant (limit 1/s, burst 2) posts 30 progress reports in about 0.1 s.
//!
//! The bystander sends a signed Telegram webhook and reads one of its jobs (`GET /v1/jobs/{id}`)
//! at `--rate` per second each, open-loop (latency counted from when each request was due), and a
//! table gives p50, p95, p99 and max per scenario, with any answer other than 200.

use std::{
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context;
use hdrhistogram::Histogram;
use serde_json::{json, Value};

use crate::{send, setup, Answer, Args, Target};

struct Sample {
    acks: Histogram<u64>,
    reads: Histogram<u64>,
    other: BTreeMap<String, u64>,
}

impl Sample {
    fn new() -> anyhow::Result<Self> {
        Ok(Self {
            acks: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            reads: Histogram::new_with_bounds(1, 60_000_000, 3)?,
            other: BTreeMap::new(),
        })
    }
}

async fn tenant(
    client: &reqwest::Client,
    url: &str,
    admin_token: &str,
    body: Value,
) -> anyhow::Result<String> {
    let tenant: Value = client
        .post(format!("{url}/v1/admin/tenants"))
        .bearer_auth(admin_token)
        .json(&body)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    Ok(tenant["api_key"].as_str().context("no api_key")?.to_owned())
}

/// The bystander's load for `secs`: a webhook and a job read every `1/rate` s, each request on a
/// task of its own so a slow answer never delays the next one.
async fn bystander(
    client: &reqwest::Client,
    target: &Arc<Target>,
    job_id: i64,
    rate: u64,
    secs: u64,
) -> anyhow::Result<Sample> {
    let sample = Arc::new(Mutex::new(Sample::new()?));
    let interval = Duration::from_secs_f64(1.0 / rate.max(1) as f64);
    let run: u64 = rand::random_range(1..1_000_000);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..rate * secs {
        let due = started + interval * n as u32;
        tokio::time::sleep_until(due.into()).await;
        let (client, target, sample) = (client.clone(), target.clone(), sample.clone());
        tasks.push(tokio::spawn(async move {
            let (_, answer) = send(&client, &target, run, n * 2, true).await;
            let acked = due.elapsed();
            let read = client
                .get(format!("{}/v1/jobs/{job_id}", target.urls[0]))
                .bearer_auth(&target.api_key)
                .send()
                .await
                .map(|response| response.status().as_u16());
            let read_at = due.elapsed();
            let mut sample = sample.lock().expect("sample");
            match answer {
                Answer::Status(200) => {
                    let _ = sample.acks.record(acked.as_micros().max(1) as u64);
                }
                other => *sample.other.entry(format!("ack {other}")).or_insert(0) += 1,
            }
            match read {
                Ok(200) => {
                    // The read was sent after the ack came back: its own latency.
                    let _ = sample
                        .reads
                        .record((read_at - acked).as_micros().max(1) as u64);
                }
                Ok(status) => {
                    *sample
                        .other
                        .entry(format!("read HTTP {status}"))
                        .or_insert(0) += 1
                }
                Err(_) => *sample.other.entry("read: no answer".into()).or_insert(0) += 1,
            }
        }));
    }
    for task in tasks {
        task.await?;
    }
    Arc::try_unwrap(sample)
        .map_err(|_| anyhow::anyhow!("a bystander task outlived the run"))?
        .into_inner()
        .map_err(|_| anyhow::anyhow!("a bystander task panicked"))
}

fn ms(histogram: &Histogram<u64>, quantile: f64) -> String {
    format!(
        "{:.1}",
        histogram.value_at_quantile(quantile) as f64 / 1000.0
    )
}

fn row(scenario: &str, sample: &Sample) {
    let other = if sample.other.is_empty() {
        "none".to_owned()
    } else {
        sample
            .other
            .iter()
            .map(|(what, n)| format!("{n} × {what}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    println!(
        "| {scenario} | {} / {} / {} / {} | {} / {} / {} / {} | {other} |",
        ms(&sample.acks, 0.5),
        ms(&sample.acks, 0.95),
        ms(&sample.acks, 0.99),
        ms(&sample.acks, 1.0),
        ms(&sample.reads, 0.5),
        ms(&sample.reads, 0.95),
        ms(&sample.reads, 0.99),
        ms(&sample.reads, 1.0),
    );
}

pub async fn neighbours(args: &Args) -> anyhow::Result<()> {
    let url = args.get("url", "http://127.0.0.1:8080".to_string())?;
    let admin_token = args.required("admin-token")?;
    let secs: u64 = args.get("secs", 10)?;
    let polls: usize = args.get("polls", 800)?;
    let rate: u64 = args.get("rate", 20)?;
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(4096)
        .timeout(Duration::from_secs(60))
        .build()?;
    let target = Arc::new(setup(&client, &url, &admin_token).await?);
    let job: Value = client
        .post(format!("{url}/v1/jobs"))
        .bearer_auth(&target.api_key)
        .json(&json!({"kind": "bystander.job", "input": {}}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let job_id = job["id"].as_i64().context("no job id")?;

    println!("| scenario | bystander ack ms p50 / p95 / p99 / max | bystander GET /v1/jobs/{{id}} ms p50 / p95 / p99 / max | other answers |");
    println!("|---|---|---|---|");
    let idle = bystander(&client, &target, job_id, rate, secs).await?;
    row("idle stack", &idle);

    // One tenant's crowd of long polls on a capped kind, and a third tenant's steady submissions.
    let herd = tenant(&client, &url, &admin_token, json!({"name": "herd"})).await?;
    client
        .patch(format!("{url}/v1/kinds/herd.work"))
        .bearer_auth(&herd)
        .json(&json!({"max_running": 1}))
        .send()
        .await?
        .error_for_status()?;
    let busy = tenant(
        &client,
        &url,
        &admin_token,
        json!({"name": "busy", "rate_limit_per_sec": 100_000, "burst": 100_000}),
    )
    .await?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poll_answers = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let waiting = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut noise = Vec::new();
    for n in 0..polls {
        let (client, url, herd, stop, answers, waiting) = (
            client.clone(),
            url.clone(),
            herd.clone(),
            stop.clone(),
            poll_answers.clone(),
            waiting.clone(),
        );
        noise.push(tokio::spawn(async move {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                waiting.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let answer = client
                    .post(format!("{url}/v1/worker/claim"))
                    .bearer_auth(&herd)
                    .json(&json!({"kinds": ["herd.work"], "worker_id": format!("w{n}"), "wait_ms": 30000}))
                    .send()
                    .await
                    .map(|response| response.status().as_u16());
                waiting.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                let label = match answer {
                    Ok(status) => format!("HTTP {status}"),
                    Err(_) => "no answer".into(),
                };
                *answers.lock().expect("answers").entry(label).or_insert(0) += 1;
                if !matches!(answer, Ok(200)) {
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        }));
    }
    let submissions = Arc::new(Mutex::new(BTreeMap::<u16, u64>::new()));
    {
        let (client, url, busy, stop, submissions) = (
            client.clone(),
            url.clone(),
            busy.clone(),
            stop.clone(),
            submissions.clone(),
        );
        noise.push(tokio::spawn(async move {
            let mut ticker =
                tokio::time::interval(Duration::from_secs_f64(1.0 / rate.max(1) as f64));
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                ticker.tick().await;
                let status = client
                    .post(format!("{url}/v1/jobs"))
                    .bearer_auth(&busy)
                    .json(&json!({"kind": "busy.job", "input": {}}))
                    .send()
                    .await
                    .map_or(0, |response| response.status().as_u16());
                *submissions
                    .lock()
                    .expect("submissions")
                    .entry(status)
                    .or_insert(0) += 1;
            }
        }));
    }
    // Let the polls connect and settle: a crowd over the tenant's request burst is let in as its
    // budget refills (the rest get 429 and try again).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let waiting_before = waiting.load(std::sync::atomic::Ordering::Relaxed);
    let noisy = bystander(&client, &target, job_id, rate, secs).await?;
    let waiting_after = waiting.load(std::sync::atomic::Ordering::Relaxed);
    row(
        &format!("{polls} idle long polls (capped kind) + {rate}/s submissions of a third tenant"),
        &noisy,
    );
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for task in noise {
        task.abort();
    }
    println!();
    println!(
        "long polls in flight when the measurement began / ended: {waiting_before} / {waiting_after}; \
         answers while trying to get in: {:?}",
        poll_answers.lock().expect("answers")
    );
    println!(
        "third tenant's submissions by status: {:?}",
        submissions.lock().expect("submissions")
    );

    // 30 progress reports in about 0.1 s from a tenant limited to 1/s, burst 2.
    let noisy_key = tenant(
        &client,
        &url,
        &admin_token,
        json!({"name": "progress", "rate_limit_per_sec": 1, "burst": 2}),
    )
    .await?;
    client
        .post(format!("{url}/v1/jobs"))
        .bearer_auth(&noisy_key)
        .json(&json!({"kind": "report.job", "input": {}}))
        .send()
        .await?
        .error_for_status()?;
    let claimed: Value = client
        .post(format!("{url}/v1/worker/claim"))
        .bearer_auth(&noisy_key)
        .json(&json!({"kinds": ["report.job"], "worker_id": "w"}))
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let claimed = &claimed["jobs"][0];
    let (id, lease) = (
        claimed["id"].as_i64().context("no claimed job")?,
        claimed["lease"].clone(),
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut statuses = BTreeMap::<u16, u64>::new();
    let started = Instant::now();
    for n in 0..30 {
        let status = client
            .post(format!("{url}/v1/worker/jobs/{id}/progress"))
            .bearer_auth(&noisy_key)
            .json(&json!({"lease": lease, "progress": {"n": n}}))
            .send()
            .await
            .map_or(0, |response| response.status().as_u16());
        *statuses.entry(status).or_insert(0) += 1;
    }
    println!(
        "30 progress reports in {:?} with a limit of 1/s, burst 2: {statuses:?}",
        started.elapsed()
    );
    Ok(())
}
