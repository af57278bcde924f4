//! Deterministic healing throughput, end to end through the queue: `webhook.inbound` jobs
//! (WhatsApp delivery statuses, which need no reply; every tenth one a raw body with a trailing
//! comma, healed by repair) enqueued up front, then drained by a whole worker with no model loaded
//! (the deterministic path must never need one).
//!
//! With `SENTINEL_BENCH_LLM=N` it measures the LLM path instead: N `payload.heal` jobs whose
//! payload is prose no adapter or repair can read, healed by the real model (`SENTINEL_MODEL`, else
//! the fetched default) with the canonical schema as constraint, for each number of model slots in
//! `SENTINEL_BENCH_LLM_SEQS` (default 1,4). Jobs the model cannot heal end dead and are counted.
//!
//! With `SENTINEL_BENCH_DRIFT=1` it runs the drift corpus (`queue/tests/drift/corpus.json`)
//! through a whole worker with the real model loaded (one slot): every case a `payload.heal` job.
//! It prints, by the step that healed each, the jobs, the expected fields exact, and the mean and
//! longest job time; the cases left to the model are listed with what it answered.
//!
//! With `SENTINEL_BENCH_SHARE=1` it measures what healing generations cost the generations behind
//! them: 8 `payload.heal` jobs only the model can heal, then 4 `llm.generate` jobs submitted once
//! healing has started, on 4 model slots: with no healing share (`SENTINEL_HEAL_SEQS=0`: one lane
//! takes both, the design before the share), the same with the generations at a higher priority
//! (what a priority for replies over healing would do), and with the default share (one slot). It
//! prints how long the `llm.generate` jobs waited for a slot and took in all, and how long the
//! healing jobs took to drain.
//!
//! With `SENTINEL_BENCH_WHITESPACE=1` it profiles issue 16's slow case, the LLM step as it was
//! before the grounded extraction: four generations at once on four slots, each asked for the
//! canonical message (free strings) of a whole WhatsApp webhook under the canonical schema, with a
//! 200-token budget; once with the JSON grammar's default (flexible whitespace) and once with
//! `"x-guidance": {"whitespace_flexible": false}`. It prints the time to the first token and in all,
//! the tokens, and how much of each answer is whitespace outside strings.
//!
//! Run: `DATABASE_URL=postgres://… cargo bench --workspace --bench inbound`
//! Knobs: `SENTINEL_BENCH_JOBS` (default 20000), `SENTINEL_BENCH_BATCHES` (the deterministic
//! lane's claim batch sizes to try, comma list, default 64,256,1024).
//! It creates and drops a database of its own next to the one DATABASE_URL names.
#![allow(clippy::unwrap_used)]

#[path = "../../queue/tests/drift/eval.rs"]
#[allow(dead_code)] // The judging half is the queue's drift test's.
mod eval;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::Context;
use sentinel_queue::{db, enqueue_many, kinds, tenant::create_tenant, NewJob};
use sentinel_worker::model::llm::{Llm, ModelConfig};
use serde_json::json;
use sqlx::{postgres::PgConnectOptions, Connection, PgConnection, PgPool};
use tokio::sync::watch;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = std::env::var("DATABASE_URL").context("DATABASE_URL must name a Postgres server")?;
    let jobs: usize = sentinel_queue::config::var_or("SENTINEL_BENCH_JOBS", 20_000)?;
    let batches: String =
        sentinel_queue::config::var_or("SENTINEL_BENCH_BATCHES", "64,256,1024".to_string())?;
    let admin_options = db::connect_options(&url)?;
    let mut admin = PgConnection::connect_with(&admin_options).await?;
    if sentinel_queue::config::var_or("SENTINEL_BENCH_DRIFT", 0u8)? == 1 {
        return drift(&mut admin, &admin_options).await;
    }
    if sentinel_queue::config::var_or("SENTINEL_BENCH_WHITESPACE", 0u8)? == 1 {
        return whitespace().await;
    }
    if sentinel_queue::config::var_or("SENTINEL_BENCH_SHARE", 0u8)? == 1 {
        return share(&mut admin, &admin_options).await;
    }
    let llm_jobs: usize = sentinel_queue::config::var_or("SENTINEL_BENCH_LLM", 0)?;
    if llm_jobs > 0 {
        return llm_path(&mut admin, &admin_options, llm_jobs).await;
    }
    println!("| heal batch | jobs | seconds | healed jobs/s |");
    println!("|---|---|---|---|");
    for batch in batches.split(',').map(|n| n.trim().parse::<usize>()) {
        let batch = batch.context("SENTINEL_BENCH_BATCHES takes numbers")?;
        let bench_db = format!("sentinel_bench_inbound_{}_{batch}", std::process::id());
        let (pool, options) = bench_database(&mut admin, &admin_options, &bench_db).await?;
        let seconds = drain(&pool, options, jobs, batch).await;
        drop_database(&mut admin, pool, &bench_db).await?;
        let seconds = seconds?;
        println!(
            "| {batch} | {jobs} | {seconds:.2} | {:.0} |",
            jobs as f64 / seconds
        );
    }
    Ok(())
}

async fn drain(
    pool: &PgPool,
    options: PgConnectOptions,
    jobs: usize,
    heal_batch: usize,
) -> anyhow::Result<f64> {
    let tenant_id = create_tenant(pool, "bench", 1_000_000, 1_000_000).await?;
    for chunk in (0..jobs).collect::<Vec<_>>().chunks(1_000) {
        let batch: Vec<NewJob> = chunk
            .iter()
            .map(|i| {
                let status = json!({"id": format!("wamid.{i}"), "status": "delivered",
                    "timestamp": "1749416383", "recipient_id": "16505551234"});
                let payload = json!({"object": "whatsapp_business_account",
                    "metadata": {"phone_number_id": "106540352242922"}, "status": status});
                let mut job = if i % 10 == 0 {
                    // Drifted: only a raw body, with a trailing comma.
                    let mut job = NewJob::new(
                        tenant_id,
                        kinds::WEBHOOK_INBOUND,
                        json!({"platform": "whatsapp", "payload": null}),
                    );
                    let raw = payload.to_string();
                    job.raw_body = Some(format!("{},}}", &raw[..raw.len() - 1]).into_bytes());
                    job
                } else {
                    NewJob::new(
                        tenant_id,
                        kinds::WEBHOOK_INBOUND,
                        json!({"platform": "whatsapp", "payload": payload}),
                    )
                };
                job = job.with_dedupe_key(format!("status:wamid.{i}:delivered"));
                job
            })
            .collect();
        enqueue_many(pool, &batch).await?;
    }
    let (stop, shutdown) = watch::channel(false);
    let config = sentinel_worker::Config {
        worker_id: "bench".into(),
        heal_batch,
        poll_interval: Duration::from_millis(100),
        ..sentinel_worker::Config::new(String::new())
    };
    let started = Instant::now();
    let worker = tokio::spawn(sentinel_worker::run_with(config, options, None, shutdown));
    loop {
        let (done, dead): (i64, i64) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE status = 'succeeded'), count(*) FILTER (WHERE status = 'dead') FROM jobs",
        )
        .fetch_one(pool)
        .await?;
        if dead > 0 {
            let error: Option<serde_json::Value> =
                sqlx::query_scalar("SELECT last_error FROM jobs WHERE status = 'dead' LIMIT 1")
                    .fetch_one(pool)
                    .await?;
            anyhow::bail!("{dead} jobs failed, for example: {error:?}");
        }
        if done as usize >= jobs {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let seconds = started.elapsed().as_secs_f64();
    stop.send(true)?;
    worker.await??;
    Ok(seconds)
}

/// Prose that no adapter or repair can turn into a canonical message.
const PROSE: [&str; 4] = [
    "Telegram message from Ada (user 7001) in chat 7001 at 2025-01-01 10:00 UTC: where is my order?",
    "Ada Lovelace wrote on Telegram, chat 7002: can I change the delivery address",
    "new msg / chat 7003 / from Bo / text: the parcel arrived damaged",
    "Chat 7004, sender Cy (id 7004), says: thanks, all sorted!",
];

async fn llm_path(
    admin: &mut PgConnection,
    admin_options: &PgConnectOptions,
    jobs: usize,
) -> anyhow::Result<()> {
    let seqs: String =
        sentinel_queue::config::var_or("SENTINEL_BENCH_LLM_SEQS", "1,4".to_string())?;
    println!(
        "| model slots | jobs | attempts | seconds | healed by llm | dead | healed jobs/s | prompt tokens / job | answer tokens / job | tokens/s (prompt + answer) |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    let mut dead_reasons = Vec::new();
    for slots in seqs.split(',').map(|n| n.trim().parse::<usize>()) {
        let slots = slots.context("SENTINEL_BENCH_LLM_SEQS takes numbers")?;
        let llm = load_model(slots).await?;
        let bench_db = format!("sentinel_bench_llm_{}_{slots}", std::process::id());
        let (pool, options) = bench_database(admin, admin_options, &bench_db).await?;
        let tenant_id = create_tenant(&pool, "bench", 1_000_000, 1_000_000).await?;
        enqueue_many(&pool, &prose_heals(tenant_id, jobs)).await?;
        let started = Instant::now();
        // Every slot heals: this measures the model's healing throughput, not the share.
        let (stop, worker) = model_worker(options, llm, slots, 0, 128);
        let (healed, dead) = loop {
            let (healed, dead): (i64, i64) = sqlx::query_as(
                "SELECT count(*) FILTER (WHERE status = 'succeeded' AND result->>'healed_by' = 'llm'),
                        count(*) FILTER (WHERE status = 'dead') FROM jobs",
            )
            .fetch_one(&pool)
            .await?;
            let finished: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'dead', 'canceled')",
            )
            .fetch_one(&pool)
            .await?;
            if finished as usize >= jobs {
                break (healed, dead);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let seconds = started.elapsed().as_secs_f64();
        let attempts: i64 = sqlx::query_scalar("SELECT coalesce(sum(attempt), 0)::int8 FROM jobs")
            .fetch_one(&pool)
            .await?;
        let (prompt_tokens, answer_tokens): (i64, i64) = sqlx::query_as(
            "SELECT coalesce(sum((result->'heal_usage'->>'prompt_tokens')::int8), 0)::int8,
                    coalesce(sum((result->'heal_usage'->>'completion_tokens')::int8), 0)::int8
             FROM jobs WHERE status = 'succeeded'",
        )
        .fetch_one(&pool)
        .await?;
        let reasons: Vec<(String, i64)> = sqlx::query_as(
            "SELECT left(coalesce(last_error->>'message', last_error::text), 160), count(*)
             FROM jobs WHERE status = 'dead' GROUP BY 1 ORDER BY 2 DESC",
        )
        .fetch_all(&pool)
        .await?;
        dead_reasons.extend(
            reasons
                .into_iter()
                .map(|(reason, n)| format!("{slots} slot(s), {n} job(s): {reason}")),
        );
        stop.send(true)?;
        worker.await??;
        drop_database(admin, pool, &bench_db).await?;
        let per_job = |tokens: i64| tokens as f64 / healed.max(1) as f64;
        println!(
            "| {slots} | {jobs} | {attempts} | {seconds:.1} | {healed} | {dead} | {:.2} | {:.0} | {:.0} | {:.1} |",
            healed as f64 / seconds,
            per_job(prompt_tokens),
            per_job(answer_tokens),
            (prompt_tokens + answer_tokens) as f64 / seconds,
        );
    }
    for reason in dead_reasons {
        println!("dead: {reason}");
    }
    Ok(())
}

/// The drift corpus through a whole worker with the model: which step healed each case, how
/// exact, and how long each job took from its claim to its end.
async fn drift(admin: &mut PgConnection, admin_options: &PgConnectOptions) -> anyhow::Result<()> {
    let corpus = eval::load();
    let llm = load_model(1).await?;
    let bench_db = format!("sentinel_bench_drift_{}", std::process::id());
    let (pool, options) = bench_database(admin, admin_options, &bench_db).await?;
    let tenant_id = create_tenant(&pool, "bench", 1_000_000, 1_000_000).await?;
    let jobs: Vec<NewJob> = corpus
        .cases
        .iter()
        .map(|case| {
            let mut input = json!({"payload": case.job_payload()});
            if let Some(hint) = &case.hint {
                input["platform"] = json!(hint);
            }
            NewJob::new(tenant_id, kinds::PAYLOAD_HEAL, input)
        })
        .collect();
    let ids: Vec<i64> = enqueue_many(&pool, &jobs)
        .await?
        .into_iter()
        .map(|enqueued| enqueued.id)
        .collect();
    let started = Instant::now();
    let (stop, worker) = model_worker(options, llm, 1, 0, 128);
    wait_finished(&pool, ids.len()).await?;
    let seconds = started.elapsed().as_secs_f64();
    type Row = (
        i64,
        String,
        Option<serde_json::Value>,
        Option<serde_json::Value>,
        f64,
    );
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, status, result, last_error,
                    coalesce(extract(epoch FROM finished_at - started_at), 0)::float8
             FROM jobs ORDER BY id",
    )
    .fetch_all(&pool)
    .await?;
    // step -> (jobs, exact fields, expected fields, total seconds, longest seconds)
    type Step = (usize, usize, usize, f64, f64);
    let mut steps: std::collections::BTreeMap<String, Step> = Default::default();
    let mut model_cases = Vec::new();
    let case_of: std::collections::HashMap<i64, &eval::Case> =
        ids.iter().copied().zip(&corpus.cases).collect();
    for (id, status, result, error, took) in &rows {
        let case = case_of[id];
        let step = result
            .as_ref()
            .and_then(|result| result["healed_by"].as_str())
            .map_or_else(|| format!("{status} (not healed)"), str::to_owned);
        let entry = steps.entry(step.clone()).or_default();
        entry.0 += 1;
        entry.3 += took;
        entry.4 = entry.4.max(*took);
        for field in eval::FIELDS {
            if let Some(expected) = case.expect.get(field) {
                entry.2 += 1;
                let got = result.as_ref().and_then(|r| r["message"][field].as_str());
                if got == Some(expected.as_str()) {
                    entry.1 += 1;
                }
            }
        }
        if case.lane == "model" || step == "llm" {
            let answer = result.as_ref().map_or_else(
                || error.clone().unwrap_or_default().to_string(),
                |result| {
                    format!(
                        "conversation_id {}, reply_skipped {}",
                        result["message"]["conversation_id"],
                        !result["reply_skipped"].is_null()
                    )
                },
            );
            model_cases.push(format!("{} ({status}, {took:.2} s): {answer}", case.id));
        }
    }
    println!("| step | jobs | expected fields exact | mean ms per job | longest ms |");
    println!("|---|---|---|---|---|");
    for (step, (jobs, exact, expected, total, longest)) in &steps {
        let exact = if *expected == 0 {
            "-".to_owned()
        } else {
            format!("{exact} of {expected}")
        };
        println!(
            "| {step} | {jobs} | {exact} | {:.1} | {:.1} |",
            1e3 * total / *jobs as f64,
            1e3 * longest
        );
    }
    println!("\n{} jobs drained in {seconds:.1} s", ids.len());
    for case in model_cases {
        println!("model lane: {case}");
    }
    stop.send(true)?;
    worker.await??;
    drop_database(admin, pool, &bench_db).await
}

/// A migrated database of the bench's own, next to the one `DATABASE_URL` names.
async fn bench_database(
    admin: &mut PgConnection,
    admin_options: &PgConnectOptions,
    name: &str,
) -> anyhow::Result<(PgPool, PgConnectOptions)> {
    sqlx::raw_sql(&format!("CREATE DATABASE {name}"))
        .execute(&mut *admin)
        .await?;
    let options = admin_options.clone().database(name);
    let pool = db::pool(options.clone(), 8, Duration::from_secs(5));
    db::migrate(&pool).await?;
    Ok((pool, options))
}

async fn drop_database(admin: &mut PgConnection, pool: PgPool, name: &str) -> anyhow::Result<()> {
    pool.close().await;
    sqlx::raw_sql(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .execute(&mut *admin)
        .await?;
    Ok(())
}

/// The model (`SENTINEL_MODEL`, else the fetched default) with `slots` sequence slots.
async fn load_model(slots: usize) -> anyhow::Result<Arc<Llm>> {
    let path = sentinel_worker::model::llm::model_path_or_default(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    );
    Ok(Arc::new(
        Llm::load(&ModelConfig {
            path,
            max_seqs: slots,
            paged_attn_mb: None,
            context_tokens: None,
        })
        .await?,
    ))
}

/// Waits until `n` jobs have ended (succeeded, dead or canceled).
async fn wait_finished(pool: &PgPool, n: usize) -> anyhow::Result<()> {
    loop {
        let finished: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE status IN ('succeeded', 'dead', 'canceled')",
        )
        .fetch_one(pool)
        .await?;
        if finished as usize >= n {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `n` `payload.heal` jobs of [`PROSE`]: only the model heals them.
fn prose_heals(tenant_id: sqlx::types::Uuid, n: usize) -> Vec<NewJob> {
    (0..n)
        .map(|i| {
            NewJob::new(
                tenant_id,
                kinds::PAYLOAD_HEAL,
                json!({"payload": PROSE[i % PROSE.len()], "platform": "telegram"}),
            )
        })
        .collect()
}

type Worker = (
    watch::Sender<bool>,
    tokio::task::JoinHandle<anyhow::Result<()>>,
);

/// A whole worker with `llm` on `slots` model slots, `heal_slots` of them kept for healing.
fn model_worker(
    options: PgConnectOptions,
    llm: Arc<Llm>,
    slots: usize,
    heal_slots: usize,
    max_tokens: usize,
) -> Worker {
    let (stop, shutdown) = watch::channel(false);
    let config = sentinel_worker::Config {
        worker_id: "bench".into(),
        max_slots: slots,
        heal_slots: Some(heal_slots),
        max_tokens,
        poll_interval: Duration::from_millis(100),
        ..sentinel_worker::Config::new(String::new())
    };
    let worker = tokio::spawn(sentinel_worker::run_with(
        config,
        options,
        Some(llm),
        shutdown,
    ));
    (stop, worker)
}

/// Healing generations beside `llm.generate` jobs, without and with the healing share.
async fn share(admin: &mut PgConnection, admin_options: &PgConnectOptions) -> anyhow::Result<()> {
    const SLOTS: usize = 4;
    const HEALS: usize = 8;
    const GENERATES: usize = 4;
    let llm = load_model(SLOTS).await?;
    println!("| healing share of {SLOTS} slots | llm.generate priority | llm.generate: mean wait for a slot (ms) | longest wait (ms) | mean time queued to done (ms) | healing jobs | healing drained (s) |");
    println!("|---|---|---|---|---|---|---|");
    // No share (one lane, first come first served); no share with the generations claimed first
    // (priority -1, what a priority for replies over healing would do); the share.
    for (heal_slots, priority) in [(0, 0i16), (0, -1), (1, 0)] {
        let name = format!(
            "sentinel_bench_share_{}_{heal_slots}_{}",
            std::process::id(),
            priority.abs()
        );
        let (pool, options) = bench_database(admin, admin_options, &name).await?;
        let tenant_id = create_tenant(&pool, "bench", 1_000_000, 1_000_000).await?;
        enqueue_many(&pool, &prose_heals(tenant_id, HEALS)).await?;
        let started = Instant::now();
        let (stop, worker) = model_worker(options, llm.clone(), SLOTS, heal_slots, 16);
        // The generations arrive once healing holds what it can of the slots.
        loop {
            let healing: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM jobs WHERE status = 'running' AND kind = 'payload.heal' AND stage <> 'new'",
            )
            .fetch_one(&pool)
            .await?;
            if healing as usize >= if heal_slots == 0 { SLOTS } else { heal_slots } {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let generates: Vec<NewJob> = (0..GENERATES)
            .map(|i| NewJob {
                priority,
                ..NewJob::new(
                    tenant_id,
                    kinds::LLM_GENERATE,
                    json!({"messages": [{"role": "user", "content": format!("Say hello to customer {i}.")}],
                           "max_tokens": 16}),
                )
            })
            .collect();
        enqueue_many(&pool, &generates).await?;
        wait_finished(&pool, HEALS + GENERATES).await?;
        let (mean_wait, max_wait, mean_total): (f64, f64, f64) = sqlx::query_as(
            "SELECT (avg(extract(epoch FROM started_at - created_at)) * 1e3)::float8,
                    (max(extract(epoch FROM started_at - created_at)) * 1e3)::float8,
                    (avg(extract(epoch FROM finished_at - created_at)) * 1e3)::float8
             FROM jobs WHERE kind = 'llm.generate'",
        )
        .fetch_one(&pool)
        .await?;
        let healed_at: f64 = sqlx::query_scalar(
            "SELECT extract(epoch FROM max(finished_at) - min(created_at))::float8 FROM jobs WHERE kind = 'payload.heal'",
        )
        .fetch_one(&pool)
        .await?;
        stop.send(true)?;
        worker.await??;
        drop_database(admin, pool, &name).await?;
        println!(
            "| {heal_slots} | {priority} | {mean_wait:.0} | {max_wait:.0} | {mean_total:.0} | {HEALS} | {healed_at:.1} (bench {:.1}) |",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// A WhatsApp Cloud API webhook as Meta sends it (one message), pretty-printed as a relay writes it.
fn whatsapp_body() -> String {
    serde_json::to_string_pretty(&json!({
        "object": "whatsapp_business_account",
        "entry": [{"id": "102290129340398", "changes": [{"field": "messages", "value": {
            "messaging_product": "whatsapp",
            "metadata": {"display_phone_number": "15550783881", "phone_number_id": "106540352242922"},
            "contacts": [{"profile": {"name": "Sheena Nelson"}, "wa_id": "16505551234"}],
            "messages": [{"from": "16505551234", "id": "wamid.HBgLMTY1MDM4Nzk0MzkVAgASGBQzQTRBNjU5OUFFRTAzODEwMTQ0RgA=",
                "timestamp": "1749416383", "type": "text", "text": {"body": "Does it come in another color?"}}]
        }}]}]
    }))
    .unwrap_or_default()
}

/// Whitespace outside JSON strings: what a flexible grammar lets the model spend tokens on.
fn free_whitespace(text: &str) -> usize {
    let (mut in_string, mut escaped, mut count) = (false, false, 0);
    for ch in text.chars() {
        match ch {
            _ if escaped => escaped = false,
            '\\' if in_string => escaped = true,
            '"' => in_string = !in_string,
            _ if !in_string && ch.is_whitespace() => count += 1,
            _ => {}
        }
    }
    count
}

/// Issue 16's slow case: four generations under the canonical schema, free and fixed whitespace.
async fn whitespace() -> anyhow::Result<()> {
    const SLOTS: usize = 4;
    let llm = load_model(SLOTS).await?;
    let mut schema = sentinel_queue::canonical::schema();
    if let Some(object) = schema.as_object_mut() {
        object.remove("$schema");
        object.remove("$id");
    }
    let prompt = format!(
        "Read this webhook payload and answer with its canonical message as JSON.\n\n{}",
        whatsapp_body()
    );
    let messages = [sentinel_worker::model::llm::ChatMessage {
        role: sentinel_worker::model::llm::Role::User,
        content: prompt,
    }];
    println!("| grammar | generations at once | seconds (all four) | first token (s, mean) | tokens per answer (mean) | whitespace outside strings per answer (mean characters) | answers cut by the budget | ms per token per sequence |");
    println!("|---|---|---|---|---|---|---|---|");
    for flexible in [true, false] {
        let mut constraint = schema.clone();
        if !flexible {
            constraint["x-guidance"] = json!({"whitespace_flexible": false});
        }
        let started = Instant::now();
        let runs = futures::future::join_all(
            (0..SLOTS).map(|_| llm.generate(&messages, 200, Some(&constraint), None, None)),
        )
        .await;
        let seconds = started.elapsed().as_secs_f64();
        let answers: Vec<_> = runs.into_iter().collect::<Result<_, _>>()?;
        let n = answers.len() as f64;
        let tokens: f64 = answers
            .iter()
            .map(|a| a.usage.completion_tokens as f64)
            .sum::<f64>()
            / n;
        let first: f64 = answers.iter().map(|a| a.first_token_seconds).sum::<f64>() / n;
        let spaces: f64 = answers
            .iter()
            .map(|a| free_whitespace(&a.text) as f64)
            .sum::<f64>()
            / n;
        let cut = answers
            .iter()
            .filter(|a| a.finish_reason == "length")
            .count();
        let per_token: f64 = answers
            .iter()
            .map(|a| {
                1e3 * (a.seconds - a.first_token_seconds)
                    / (a.usage.completion_tokens.max(1) as f64)
            })
            .sum::<f64>()
            / n;
        println!(
            "| {} | {SLOTS} | {seconds:.1} | {first:.1} | {tokens:.0} | {spaces:.0} | {cut} of {SLOTS} | {per_token:.0} |",
            if flexible { "flexible whitespace (default)" } else { "whitespace_flexible: false" }
        );
        if let Some(answer) = answers.first() {
            println!(
                "first answer: {:?}",
                answer.text.chars().take(300).collect::<String>()
            );
        }
    }
    Ok(())
}
