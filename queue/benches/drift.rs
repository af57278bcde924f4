//! The drift benchmark: every case of the drift corpora through the deterministic healing steps,
//! as a `payload.heal` job's deterministic lane runs them: the development corpus
//! (`queue/tests/drift/corpus.json`) and the held-out one (`heldout.json`, written from the
//! platforms' and transports' documentation before the code that heals it). Prints, for each,
//! the field accuracy per drift kind and per platform, how many cases each step healed (and how
//! many it left to the model), and the healed jobs per second of each step.
//!
//! Run: `cargo bench -p sentinel-queue --bench drift` (no database). `SENTINEL_BENCH_SECS` sets
//! how long each step's throughput is measured (default 2); `SENTINEL_BENCH_CORPUS` runs one
//! corpus (`corpus` or `heldout`) instead of both.
#![allow(clippy::unwrap_used)] // Benchmarks fail loudly on purpose.

#[path = "../tests/drift/eval.rs"]
mod eval;

use std::{
    collections::BTreeMap,
    time::{Duration, Instant},
};

use eval::{Case, Verdict, FIELDS};

#[derive(Default)]
struct Tally {
    cases: usize,
    fields: usize,
    exact: usize,
    without_model: usize,
    left: usize,
    guessed: usize,
}

impl Tally {
    fn add(&mut self, case: &Case, verdict: &Verdict) {
        self.cases += 1;
        match verdict {
            Verdict::Healed { exact, .. } => {
                self.fields += FIELDS.len();
                self.exact += exact;
                self.without_model += 1;
            }
            Verdict::LeftToModel(_) => {
                self.fields += FIELDS.len();
                self.left += 1;
            }
            Verdict::Refused => {
                // Correctly left to the model: its fields are the model's to find.
                debug_assert_eq!(case.lane, "model");
                self.left += 1;
            }
            Verdict::Guessed(_) => self.guessed += 1,
        }
    }

    fn row(&self, name: &str) -> String {
        let percent = |part: usize, whole: usize| {
            if whole == 0 {
                "-".to_owned()
            } else {
                format!("{:.1}%", 100.0 * part as f64 / whole as f64)
            }
        };
        format!(
            "| {name} | {} | {} | {} | {} | {} |",
            self.cases,
            percent(self.exact, self.fields),
            percent(self.without_model, self.cases),
            self.left,
            self.guessed
        )
    }
}

/// Strips what only says which variant of a drift kind a case is (`event_` for the per-event
/// shape ingress stores, `_no_hint` / `no_hint_` for a job that names no platform).
fn kind_of(drift: &str) -> String {
    let drift = drift.strip_prefix("event_").unwrap_or(drift);
    let drift = drift.strip_prefix("no_hint_").unwrap_or(drift);
    drift.strip_suffix("_no_hint").unwrap_or(drift).to_owned()
}

fn main() {
    let secs: f64 = std::env::var("SENTINEL_BENCH_SECS")
        .ok()
        .and_then(|value| value.parse().ok())
        .unwrap_or(2.0);
    let names = match std::env::var("SENTINEL_BENCH_CORPUS") {
        Ok(name) => vec![name],
        Err(_) => vec!["corpus".to_owned(), "heldout".to_owned()],
    };
    for name in names {
        println!("\n## {name}.json");
        let corpus = if name == "corpus" {
            eval::load()
        } else {
            eval::load_named(&name)
        };
        report(&corpus, secs);
    }
}

fn report(corpus: &eval::Corpus, secs: f64) {
    let mut by_kind: BTreeMap<String, Tally> = BTreeMap::new();
    let mut by_platform: BTreeMap<String, Tally> = BTreeMap::new();
    let mut total = Tally::default();
    let mut by_step: BTreeMap<&'static str, Vec<&Case>> = BTreeMap::new();
    let mut slowest = (Duration::ZERO, String::new());
    for case in &corpus.cases {
        let started = Instant::now();
        let healed = case.heal();
        let took = started.elapsed();
        if took > slowest.0 {
            slowest = (took, case.id.clone());
        }
        let verdict = case.judge(&healed);
        by_kind
            .entry(kind_of(&case.drift))
            .or_default()
            .add(case, &verdict);
        by_platform
            .entry(case.platform.clone())
            .or_default()
            .add(case, &verdict);
        total.add(case, &verdict);
        let step = match &verdict {
            Verdict::Healed { step, .. } => step,
            Verdict::LeftToModel(_) | Verdict::Refused => "left to the model",
            Verdict::Guessed(_) => "guessed (a defect)",
        };
        by_step.entry(step).or_default().push(case);
        if let Verdict::Healed { wrong, .. } = &verdict {
            if !wrong.is_empty() {
                println!("wrong fields in {}: {}", case.id, wrong.join("; "));
            }
        }
    }

    let header = "| | cases | fields exact | healed without the model | left to the model | guessed |\n|---|---|---|---|---|---|";
    println!("\n### By drift kind\n\n{header}");
    for (kind, tally) in &by_kind {
        println!("{}", tally.row(kind));
    }
    println!("{}", total.row("**all**"));
    println!("\n### By platform\n\n{header}");
    for (platform, tally) in &by_platform {
        println!("{}", tally.row(platform));
    }
    println!("{}", total.row("**all**"));

    // Throughput: each step's cases healed round-robin for `secs` seconds, one core.
    println!("\n### By step\n\n| step | cases | healed jobs/s (one core) | mean µs per job |\n|---|---|---|---|");
    for (step, cases) in &by_step {
        let deadline = Instant::now() + Duration::from_secs_f64(secs);
        let started = Instant::now();
        let mut runs = 0u64;
        while Instant::now() < deadline {
            for case in cases {
                std::hint::black_box(case.heal().is_ok());
                runs += 1;
            }
        }
        let elapsed = started.elapsed().as_secs_f64();
        println!(
            "| {step} | {} | {:.0} | {:.1} |",
            cases.len(),
            runs as f64 / elapsed,
            1e6 * elapsed / runs as f64
        );
    }
    println!(
        "\nslowest case: {} in {:.2} ms (its first run)",
        slowest.1,
        slowest.0.as_secs_f64() * 1e3
    );
}
