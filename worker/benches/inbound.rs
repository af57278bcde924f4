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
//! longest job time; the cases left to the model are listed with what it answered. Then the same
//! table for each case class (the case's `lane`), a table of the jobs that reached the model per
//! class (their time from the model's claim to the end, the wait for a healing slot, how many ran
//! past the healing budget and ended dead with `generation_deadline`, the fields exact), and one
//! row per drift kind (fields exact, healed without the model, past the budget).
//! `SENTINEL_BENCH_CORPUS` names the file of `queue/tests/drift/`: `corpus` (the default) or
//! `heldout` (`heldout.json`, the same schema). `SENTINEL_BENCH_OFFSET=M` and
//! `SENTINEL_BENCH_LIMIT=N` run only N cases from the M-th (default: all from the first).
//! With `SENTINEL_BENCH_BUSY=1` the reply lane is busy throughout: the worker has 4 model slots,
//! one kept for healing, and `llm.generate` jobs (a prompt of a few hundred tokens, 256 tokens
//! each) are kept queued from before the corpus is enqueued until it has drained, so the three
//! reply slots never idle. It prints, as evidence, how many `llm.generate` jobs ran while the
//! corpus did, how many were running when each healing job reached the model, and the sampled
//! count of busy reply slots.
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

/// The model slots of the busy drift run (`SENTINEL_BENCH_BUSY=1`), as a worker with
/// `SENTINEL_MAX_SEQS=4` has them.
const BUSY_SLOTS: usize = 4;
/// Of those, the slots kept for healing (`SENTINEL_HEAL_SEQS`); the rest are the reply lane's.
const BUSY_HEAL_SLOTS: usize = 1;
/// The busy run's `llm.generate` budget (and the worker's `max_tokens`, which caps it): each
/// generation holds its slot for seconds, long beside a claim.
const BUSY_MAX_TOKENS: usize = 256;

/// The busy run's reply slots: those of the model lane, which `llm.generate` jobs take (see
/// [`sentinel_worker::lanes::heal_share`]).
fn busy_reply_slots() -> usize {
    BUSY_SLOTS - sentinel_worker::lanes::heal_share(BUSY_SLOTS, Some(BUSY_HEAL_SLOTS))
}

/// The drift corpus through a whole worker with the model: which step healed each case, how
/// exact, and how long each job took from its claim to its end; with `SENTINEL_BENCH_BUSY=1`,
/// while the reply lane's slots generate throughout.
async fn drift(admin: &mut PgConnection, admin_options: &PgConnectOptions) -> anyhow::Result<()> {
    let corpus_name: String =
        sentinel_queue::config::var_or("SENTINEL_BENCH_CORPUS", "corpus".to_string())?;
    let busy = sentinel_queue::config::var_or("SENTINEL_BENCH_BUSY", 0u8)? == 1;
    let offset: usize = sentinel_queue::config::var_or("SENTINEL_BENCH_OFFSET", 0)?;
    let limit: usize = sentinel_queue::config::var_or("SENTINEL_BENCH_LIMIT", usize::MAX)?;
    anyhow::ensure!(
        matches!(corpus_name.as_str(), "corpus" | "heldout"),
        "SENTINEL_BENCH_CORPUS takes corpus or heldout, not {corpus_name:?}"
    );
    let corpus = eval::load_named(&corpus_name);
    let cases: Vec<&eval::Case> = corpus.cases.iter().skip(offset).take(limit).collect();
    anyhow::ensure!(
        !cases.is_empty(),
        "SENTINEL_BENCH_OFFSET={offset} and SENTINEL_BENCH_LIMIT={limit} leave none of the {} cases of {corpus_name}.json",
        corpus.cases.len()
    );
    // As a worker runs it (`SENTINEL_HEAL_ENGINE`): on the CPU, healing on an engine of its own.
    let own_engine = sentinel_worker::Config::new(String::new()).own_heal_engine
        && std::env::var("SENTINEL_HEAL_ENGINE").as_deref() != Ok("shared");
    let llm = if busy {
        load_model_with(BUSY_SLOTS, if own_engine { BUSY_HEAL_SLOTS } else { 0 }).await?
    } else {
        load_model(1).await?
    };
    if busy {
        println!(
            "healing engine: {}",
            if own_engine {
                "its own (SENTINEL_HEAL_ENGINE=own)"
            } else {
                "the replies' (SENTINEL_HEAL_ENGINE=shared)"
            }
        );
    }
    let bench_db = format!("sentinel_bench_drift_{}", std::process::id());
    let (pool, options) = bench_database(admin, admin_options, &bench_db).await?;
    let run = drift_run(&pool, options, llm, &cases, busy).await;
    drop_database(admin, pool, &bench_db).await?;
    let run = run?;
    println!(
        "\ndrift corpus `{corpus_name}`: {} of its {} cases, from case {offset}",
        cases.len(),
        corpus.cases.len()
    );
    run.print_classes();
    run.print_drift_kinds();
    if let Some(evidence) = &run.busy {
        evidence.print();
    }
    Ok(())
}

/// The `payload.heal` job of one drift case.
fn heal_job(tenant_id: sqlx::types::Uuid, case: &eval::Case) -> NewJob {
    let mut input = json!({"payload": case.job_payload()});
    if let Some(hint) = &case.hint {
        input["platform"] = json!(hint);
    }
    NewJob::new(tenant_id, kinds::PAYLOAD_HEAL, input)
}

/// How one drift case's job ended.
struct Outcome<'a> {
    case: &'a eval::Case,
    /// The step that healed it (`healed_by`), or its status when nothing did.
    step: String,
    healed: bool,
    /// Handed off to the LLM healing step.
    reached_model: bool,
    /// Dead because its generation ran past the healing budget (`generation_deadline`).
    past_budget: bool,
    /// Of the fields the case expects, how many came back exact, and how many it expects.
    exact: usize,
    expected: usize,
    /// From the last claim (the model's, for a job that reached it) to the end.
    took_seconds: f64,
    /// From the hand-off to the model's claim.
    wait_seconds: Option<f64>,
}

impl<'a> Outcome<'a> {
    fn of(
        case: &'a eval::Case,
        (_, status, stage, result, error, took_seconds, wait_seconds): JobRow,
    ) -> Self {
        let healed_by = result
            .as_ref()
            .and_then(|result| result["healed_by"].as_str());
        let step = healed_by.map_or_else(|| format!("{status} (not healed)"), str::to_owned);
        let (mut exact, mut expected) = (0, 0);
        for field in eval::FIELDS {
            if let Some(want) = case.expect.get(field) {
                expected += 1;
                let got = result.as_ref().and_then(|r| r["message"][field].as_str());
                if got == Some(want.as_str()) {
                    exact += 1;
                }
            }
        }
        let error_code = error.as_ref().and_then(|error| error["code"].as_str());
        Self {
            case,
            healed: status == "succeeded" && healed_by.is_some(),
            reached_model: stage == "llm_heal" || healed_by == Some("llm"),
            past_budget: status == "dead" && error_code == Some("generation_deadline"),
            step,
            exact,
            expected,
            took_seconds,
            wait_seconds,
        }
    }
}

/// A job's id, status, stage, result, last error, seconds from its last claim to its end, and
/// seconds from its hand-off to that claim (if it was handed off).
type JobRow = (
    i64,
    String,
    String,
    Option<serde_json::Value>,
    Option<serde_json::Value>,
    f64,
    Option<f64>,
);

/// Jobs, the fields they were expected to give back and gave back exact, and their time.
#[derive(Default)]
struct Tally {
    jobs: usize,
    exact: usize,
    expected: usize,
    total_seconds: f64,
    longest_seconds: f64,
    past_budget: usize,
    healed_without_model: usize,
    /// Waits from hand-off to the model's claim: their sum and count.
    wait_seconds: f64,
    waits: usize,
}

impl Tally {
    fn add(&mut self, outcome: &Outcome) {
        self.jobs += 1;
        self.exact += outcome.exact;
        self.expected += outcome.expected;
        self.total_seconds += outcome.took_seconds;
        self.longest_seconds = self.longest_seconds.max(outcome.took_seconds);
        self.past_budget += usize::from(outcome.past_budget);
        self.healed_without_model += usize::from(outcome.healed && !outcome.reached_model);
        if let Some(wait) = outcome.wait_seconds {
            self.wait_seconds += wait;
            self.waits += 1;
        }
    }

    fn of<'a, 'b: 'a>(outcomes: impl IntoIterator<Item = &'a Outcome<'b>>) -> Self {
        let mut tally = Self::default();
        for outcome in outcomes {
            tally.add(outcome);
        }
        tally
    }

    /// "`exact` of `expected`", or "-" when no field was expected.
    fn exact_of(&self) -> String {
        if self.expected == 0 {
            "-".to_owned()
        } else {
            format!("{} of {}", self.exact, self.expected)
        }
    }

    fn mean_ms(&self) -> f64 {
        1e3 * self.total_seconds / self.jobs.max(1) as f64
    }
}

/// `part` of `whole` in percent, or "-" of nothing.
fn percent(part: usize, whole: usize) -> String {
    if whole == 0 {
        "-".to_owned()
    } else {
        format!("{:.1}", 100.0 * part as f64 / whole as f64)
    }
}

/// The table by healing step (the drift run's first table).
fn print_steps<'a, 'b: 'a>(outcomes: impl IntoIterator<Item = &'a Outcome<'b>>) {
    let mut steps: std::collections::BTreeMap<&str, Tally> = Default::default();
    for outcome in outcomes {
        steps.entry(&outcome.step).or_default().add(outcome);
    }
    println!("| step | jobs | expected fields exact | mean ms per job | longest ms |");
    println!("|---|---|---|---|---|");
    for (step, tally) in &steps {
        println!(
            "| {step} | {} | {} | {:.1} | {:.1} |",
            tally.jobs,
            tally.exact_of(),
            tally.mean_ms(),
            1e3 * tally.longest_seconds
        );
    }
}

/// A drift run's outcomes, and with a busy reply lane, the evidence that it was busy.
struct DriftRun<'a> {
    outcomes: Vec<Outcome<'a>>,
    busy: Option<BusyEvidence>,
}

impl DriftRun<'_> {
    /// The case classes (`lane`), in the corpus's order.
    fn classes(&self) -> Vec<&str> {
        let mut classes: Vec<&str> = Vec::new();
        for outcome in &self.outcomes {
            if !classes.contains(&outcome.case.lane.as_str()) {
                classes.push(&outcome.case.lane);
            }
        }
        classes
    }

    fn of_class<'s>(&'s self, class: &'s str) -> impl Iterator<Item = &'s Outcome<'s>> + 's {
        self.outcomes
            .iter()
            .filter(move |outcome| outcome.case.lane == class)
    }

    /// The table by step for each case class, then the jobs of each that reached the model.
    fn print_classes(&self) {
        for class in self.classes() {
            println!(
                "\ncase class `{class}` ({} cases):",
                self.of_class(class).count()
            );
            print_steps(self.of_class(class));
        }
        println!("\n| case class | cases | reached the model | mean ms claim to end | longest ms | mean ms handed off to claimed | past budget (generation_deadline) | expected fields exact |");
        println!("|---|---|---|---|---|---|---|---|");
        for class in self.classes() {
            let model = Tally::of(self.of_class(class).filter(|outcome| outcome.reached_model));
            let (mean, longest, wait) = if model.jobs == 0 {
                ("-".to_owned(), "-".to_owned(), "-".to_owned())
            } else {
                (
                    format!("{:.1}", model.mean_ms()),
                    format!("{:.1}", 1e3 * model.longest_seconds),
                    format!(
                        "{:.1}",
                        1e3 * model.wait_seconds / model.waits.max(1) as f64
                    ),
                )
            };
            println!(
                "| {class} | {} | {} | {mean} | {longest} | {wait} | {} | {} |",
                self.of_class(class).count(),
                model.jobs,
                model.past_budget,
                model.exact_of()
            );
        }
    }

    /// One row per drift kind, in the corpus's order.
    fn print_drift_kinds(&self) {
        let mut kinds: Vec<(&str, Tally)> = Vec::new();
        for outcome in &self.outcomes {
            let drift = outcome.case.drift.as_str();
            let index = kinds
                .iter()
                .position(|(kind, _)| *kind == drift)
                .unwrap_or_else(|| {
                    kinds.push((drift, Tally::default()));
                    kinds.len() - 1
                });
            kinds[index].1.add(outcome);
        }
        println!(
            "\n| drift kind | cases | fields exact % | healed without model % | past budget |"
        );
        println!("|---|---|---|---|---|");
        for (kind, tally) in &kinds {
            println!(
                "| {kind} | {} | {} | {} | {} |",
                tally.jobs,
                percent(tally.exact, tally.expected),
                percent(tally.healed_without_model, tally.jobs),
                tally.past_budget
            );
        }
    }
}

/// Runs `cases` as `payload.heal` jobs through a whole worker with `llm` and prints the table by
/// step, the drain time and the cases left to the model; with `busy`, behind a reply lane kept
/// generating. Stops the worker before it returns.
async fn drift_run<'a>(
    pool: &PgPool,
    options: PgConnectOptions,
    llm: Arc<Llm>,
    cases: &[&'a eval::Case],
    busy: bool,
) -> anyhow::Result<DriftRun<'a>> {
    let tenant_id = create_tenant(pool, "bench", 1_000_000, 1_000_000).await?;
    let jobs: Vec<NewJob> = cases.iter().map(|case| heal_job(tenant_id, case)).collect();
    let (ids, started, (stop, worker), load) = if busy {
        // The reply lane generates before the first case arrives, and until the last has ended.
        let load = ReplyLoad::start(pool, tenant_id, busy_reply_slots());
        let worker = model_worker(options, llm, BUSY_SLOTS, BUSY_HEAL_SLOTS, BUSY_MAX_TOKENS);
        load.wait_generating().await?;
        let ids = enqueue_ids(pool, &jobs).await?;
        (ids, Instant::now(), worker, Some(load))
    } else {
        let ids = enqueue_ids(pool, &jobs).await?;
        let started = Instant::now();
        (ids, started, model_worker(options, llm, 1, 0, 128), None)
    };
    wait_ended(pool, &ids).await?;
    let drained = Instant::now();
    let seconds = (drained - started).as_secs_f64();
    let busy = match load {
        Some(load) => {
            let samples = load.finish().await?;
            let evidence = BusyEvidence::gather(pool, &ids, &samples, started..drained).await;
            cancel_generations(pool, tenant_id).await?;
            Some(evidence?)
        }
        None => None,
    };
    let rows: Vec<JobRow> = sqlx::query_as(
        "SELECT j.id, j.status, j.stage, j.result, j.last_error,
                    coalesce(extract(epoch FROM j.finished_at - j.started_at), 0)::float8,
                    extract(epoch FROM j.started_at - (SELECT max(a.finished_at) FROM job_attempts a
                        WHERE a.job_id = j.id AND a.outcome = 'handed_off'))::float8
             FROM jobs j WHERE j.id = ANY($1) ORDER BY j.id",
    )
    .bind(&ids)
    .fetch_all(pool)
    .await?;
    stop.send(true)?;
    worker.await??;
    let case_of: std::collections::HashMap<i64, &eval::Case> =
        ids.iter().copied().zip(cases.iter().copied()).collect();
    let mut outcomes = Vec::new();
    let mut model_cases = Vec::new();
    for row in rows {
        let case = case_of[&row.0];
        let (_, status, _, result, error, took, _) = &row;
        if case.lane == "model" || result.as_ref().is_some_and(|r| r["healed_by"] == "llm") {
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
        outcomes.push(Outcome::of(case, row));
    }
    print_steps(&outcomes);
    println!("\n{} jobs drained in {seconds:.1} s", ids.len());
    for case in model_cases {
        println!("model lane: {case}");
    }
    Ok(DriftRun { outcomes, busy })
}

/// `llm.generate` jobs kept queued behind the reply lane's slots so that none idles, and samples
/// of how many run.
struct ReplyLoad {
    slots: usize,
    pool: PgPool,
    stop: watch::Sender<bool>,
    keeper: tokio::task::JoinHandle<anyhow::Result<Vec<(Instant, i64)>>>,
}

impl ReplyLoad {
    /// Starts topping the queued `llm.generate` jobs up to `slots` every 100 ms: as many again as
    /// run, so a slot that frees claims the next at once.
    fn start(pool: &PgPool, tenant_id: sqlx::types::Uuid, slots: usize) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let keeper_pool = pool.clone();
        let keeper = tokio::spawn(async move {
            let mut samples = Vec::new();
            let mut enqueued = 0;
            loop {
                let (queued, running) = generations(&keeper_pool).await?;
                samples.push((Instant::now(), running));
                let missing = slots.saturating_sub(queued as usize);
                if missing > 0 {
                    let jobs = generate_jobs(
                        tenant_id,
                        enqueued..enqueued + missing,
                        0,
                        BUSY_MAX_TOKENS,
                        long_reply_prompt,
                    );
                    enqueue_many(&keeper_pool, &jobs).await?;
                    enqueued += missing;
                }
                tokio::select! {
                    _ = stopped.wait_for(|stop| *stop) => return anyhow::Ok(samples),
                    () = tokio::time::sleep(Duration::from_millis(100)) => {}
                }
            }
        });
        Self {
            slots,
            pool: pool.clone(),
            stop,
            keeper,
        }
    }

    /// Waits until every reply slot generates (the model is loaded, the lane has claimed).
    async fn wait_generating(&self) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(300);
        while generations(&self.pool).await?.1 < self.slots as i64 {
            anyhow::ensure!(
                !self.keeper.is_finished(),
                "the task that keeps llm.generate jobs queued failed"
            );
            anyhow::ensure!(
                Instant::now() < deadline,
                "the reply lane's {} slots did not all take an llm.generate job within 5 minutes",
                self.slots
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(())
    }

    /// Stops topping up; the samples of running `llm.generate` jobs, with when each was taken.
    async fn finish(self) -> anyhow::Result<Vec<(Instant, i64)>> {
        self.stop.send(true)?;
        self.keeper.await?
    }
}

/// The `llm.generate` jobs queued and running.
async fn generations(pool: &PgPool) -> anyhow::Result<(i64, i64)> {
    Ok(sqlx::query_as(
        "SELECT count(*) FILTER (WHERE status = 'queued'), count(*) FILTER (WHERE status = 'running')
         FROM jobs WHERE kind = 'llm.generate'",
    )
    .fetch_one(pool)
    .await?)
}

/// Cancels the `llm.generate` jobs not yet ended, so that the worker's drain need not wait for
/// their generations (a running one sees the request at its next heartbeat).
async fn cancel_generations(pool: &PgPool, tenant_id: sqlx::types::Uuid) -> anyhow::Result<()> {
    let open: Vec<i64> = sqlx::query_scalar(
        "SELECT id FROM jobs WHERE kind = 'llm.generate' AND status IN ('queued', 'running')",
    )
    .fetch_all(pool)
    .await?;
    for id in open {
        sentinel_queue::cancel(pool, tenant_id, id).await?;
    }
    Ok(())
}

/// A prompt of a few hundred tokens (a whole WhatsApp webhook) asking for a long answer.
fn long_reply_prompt(i: usize) -> String {
    format!(
        "You answer customer {i} of a clothing shop. Their WhatsApp message arrived as the webhook \
         below. Write a long, warm and detailed reply: thank them, list every colour and size the \
         item comes in, describe the fabric and its care, explain delivery times, costs and \
         returns step by step, and end with a friendly sign-off.\n\n{}",
        whatsapp_body()
    )
}

/// What shows that the reply lane was busy while the corpus ran.
struct BusyEvidence {
    reply_slots: usize,
    /// Running `llm.generate` jobs, sampled every 100 ms from the corpus's enqueue to its drain.
    samples: Vec<i64>,
    /// Running `llm.generate` jobs when each job that reached the model was claimed by it.
    at_model_claims: Vec<i64>,
    /// `llm.generate` jobs that ran during the corpus run, and of those, that ended in it.
    overlapped: i64,
    ended_within: i64,
    /// `llm.generate` jobs enqueued in all, and the mean prompt and answer tokens of those ended.
    enqueued: i64,
    prompt_tokens: f64,
    answer_tokens: f64,
}

impl BusyEvidence {
    async fn gather(
        pool: &PgPool,
        ids: &[i64],
        samples: &[(Instant, i64)],
        window: std::ops::Range<Instant>,
    ) -> anyhow::Result<Self> {
        let at_model_claims: Vec<i64> = sqlx::query_scalar(
            "SELECT (SELECT count(*) FROM jobs g WHERE g.kind = 'llm.generate'
                         AND g.started_at <= h.started_at
                         AND (g.finished_at IS NULL OR g.finished_at > h.started_at))
             FROM jobs h WHERE h.id = ANY($1) AND h.stage = 'llm_heal' ORDER BY h.id",
        )
        .bind(ids)
        .fetch_all(pool)
        .await?;
        let (overlapped, ended_within): (i64, i64) = sqlx::query_as(
            "WITH corpus AS (SELECT min(created_at) AS began, max(finished_at) AS ended
                             FROM jobs WHERE id = ANY($1))
             SELECT count(*), count(*) FILTER (WHERE g.finished_at <= c.ended)
             FROM jobs g, corpus c
             WHERE g.kind = 'llm.generate' AND g.started_at < c.ended
                   AND (g.finished_at IS NULL OR g.finished_at > c.began)",
        )
        .bind(ids)
        .fetch_one(pool)
        .await?;
        let (enqueued, prompt_tokens, answer_tokens): (i64, f64, f64) = sqlx::query_as(
            "SELECT count(*),
                    coalesce(avg((result->'usage'->>'prompt_tokens')::float8), 0)::float8,
                    coalesce(avg((result->'usage'->>'completion_tokens')::float8), 0)::float8
             FROM jobs WHERE kind = 'llm.generate'",
        )
        .fetch_one(pool)
        .await?;
        Ok(Self {
            reply_slots: busy_reply_slots(),
            samples: samples
                .iter()
                .filter(|(at, _)| window.contains(at))
                .map(|(_, running)| *running)
                .collect(),
            at_model_claims,
            overlapped,
            ended_within,
            enqueued,
            prompt_tokens,
            answer_tokens,
        })
    }

    fn print(&self) {
        let slots = self.reply_slots;
        println!(
            "\nreply lane busy: {BUSY_SLOTS} model slots, {} kept for healing; the other {slots} kept generating llm.generate jobs (max_tokens {BUSY_MAX_TOKENS})",
            BUSY_SLOTS - slots
        );
        let n = self.samples.len();
        let full = self
            .samples
            .iter()
            .filter(|&&running| running as usize >= slots)
            .count();
        println!("| llm.generate running during the corpus run | samples (every 100 ms) | fewest | mean | samples with all {slots} reply slots generating |");
        println!("|---|---|---|---|---|");
        println!(
            "| sampled | {n} | {} | {:.2} | {} % |",
            self.samples.iter().min().copied().unwrap_or_default(),
            self.samples.iter().sum::<i64>() as f64 / n.max(1) as f64,
            percent(full, n)
        );
        println!(
            "llm.generate running when each healing job reached the model: {:?}",
            self.at_model_claims
        );
        println!(
            "llm.generate jobs that overlapped the corpus run: {} ({} of them ended within it); {} enqueued in all, ended ones with {:.0} prompt and {:.0} answer tokens on average",
            self.overlapped, self.ended_within, self.enqueued, self.prompt_tokens, self.answer_tokens
        );
    }
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
    load_model_with(slots, 0).await
}

/// [`load_model`], with an engine of `heal_seqs` sequences of its own for the LLM healing step
/// (0: healing shares the replies' engine).
async fn load_model_with(slots: usize, heal_seqs: usize) -> anyhow::Result<Arc<Llm>> {
    let path = sentinel_worker::model::llm::model_path_or_default(
        &std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".."),
    );
    Ok(Arc::new(
        Llm::load(&ModelConfig {
            path,
            max_seqs: slots,
            paged_attn_mb: None,
            context_tokens: None,
            heal_seqs,
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

/// Waits until the jobs `ids` have ended (succeeded, dead or canceled), whatever else runs.
async fn wait_ended(pool: &PgPool, ids: &[i64]) -> anyhow::Result<()> {
    loop {
        let ended: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM jobs WHERE id = ANY($1) AND status IN ('succeeded', 'dead', 'canceled')",
        )
        .bind(ids)
        .fetch_one(pool)
        .await?;
        if ended as usize >= ids.len() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Enqueues `jobs`; their ids, in order.
async fn enqueue_ids(pool: &PgPool, jobs: &[NewJob]) -> anyhow::Result<Vec<i64>> {
    Ok(enqueue_many(pool, jobs)
        .await?
        .into_iter()
        .map(|enqueued| enqueued.id)
        .collect())
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

/// `llm.generate` jobs at `priority`, one for each of `indexes`, asking `prompt(i)` with a budget of
/// `max_tokens`.
fn generate_jobs(
    tenant_id: sqlx::types::Uuid,
    indexes: std::ops::Range<usize>,
    priority: i16,
    max_tokens: usize,
    prompt: impl Fn(usize) -> String,
) -> Vec<NewJob> {
    indexes
        .map(|i| NewJob {
            priority,
            ..NewJob::new(
                tenant_id,
                kinds::LLM_GENERATE,
                json!({"messages": [{"role": "user", "content": prompt(i)}],
                       "max_tokens": max_tokens}),
            )
        })
        .collect()
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
        let generates = generate_jobs(tenant_id, 0..GENERATES, priority, 16, |i| {
            format!("Say hello to customer {i}.")
        });
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
