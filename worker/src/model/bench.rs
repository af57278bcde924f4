//! `sentinel-worker bench`: the model's speed on this machine. For each number of sequences in
//! flight it reports the prompt rate (prompt tokens over time to first token), the single-stream
//! decode rate, the aggregate rate, and on an NVIDIA GPU the peak GPU memory of this process and
//! whether it stayed inside `SENTINEL_VRAM_BUDGET_MB`, and prints a table. With a budget the model
//! is loaded as the worker would load it: the KV pool and context that admission sizes.

use std::{path::PathBuf, sync::Arc, time::Instant};

use futures::future::join_all;

use super::{
    admission::{self, Budget},
    gpu_memory::{GpuMemory, PeakSampler},
    llm::{ChatMessage, Llm, ModelConfig, Role},
};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub model: PathBuf,
    pub seqs: Vec<usize>,
    pub max_tokens: usize,
    pub rounds: usize,
    /// `SENTINEL_VRAM_BUDGET_MB` and its knobs, when set.
    pub budget: Option<Budget>,
}

/// A prompt of about 80 tokens, like a support message with a short system prompt.
fn prompt(variant: usize) -> Vec<ChatMessage> {
    vec![
        ChatMessage::new(
            Role::System,
            "You are the support agent of an online bakery. Answer politely, in two sentences, and never invent order numbers.",
        ),
        ChatMessage::new(
            Role::User,
            format!(
                "Hello, this is customer {variant}. I ordered a chocolate cake and two baguettes yesterday for delivery today, but nothing has arrived yet. Could you tell me what happened and when it will come?"
            ),
        ),
    ]
}

/// One round's sums over its sequences.
struct Round {
    prompt_tokens: usize,
    completion_tokens: usize,
    prompt_rate: f64,
    decode_rate: f64,
    wall: f64,
    peak_mb: Option<u64>,
}

/// Runs `seqs` generations of `max_tokens` at once, each with its own prompt (`variant` counts
/// them), sampling the GPU's memory meanwhile when there is one.
async fn round(
    llm: &Arc<Llm>,
    gpu: &Result<Arc<GpuMemory>, String>,
    seqs: usize,
    max_tokens: usize,
    variant: &mut usize,
) -> anyhow::Result<Round> {
    let sampler = gpu.as_ref().ok().cloned().map(PeakSampler::start);
    let started = Instant::now();
    let runs = join_all((0..seqs).map(|_| {
        *variant += 1;
        let (llm, messages) = (llm.clone(), prompt(*variant));
        async move { llm.generate(&messages, max_tokens, None, None, None).await }
    }))
    .await;
    let wall = started.elapsed().as_secs_f64();
    let peak_mb = sampler.map(PeakSampler::finish);
    let mut row = Round {
        prompt_tokens: 0,
        completion_tokens: 0,
        prompt_rate: 0.0,
        decode_rate: 0.0,
        wall,
        peak_mb,
    };
    for run in runs {
        let generation = run?;
        row.prompt_tokens += generation.usage.prompt_tokens;
        row.completion_tokens += generation.usage.completion_tokens;
        row.prompt_rate +=
            generation.usage.prompt_tokens as f64 / generation.first_token_seconds.max(1e-9);
        row.decode_rate += generation.usage.completion_tokens.saturating_sub(1) as f64
            / (generation.seconds - generation.first_token_seconds).max(1e-9);
    }
    Ok(row)
}

pub async fn run(config: BenchConfig) -> anyhow::Result<()> {
    let max_seqs = config.seqs.iter().copied().max().unwrap_or(1);
    let gpu = GpuMemory::open().map(Arc::new);
    let plan = match config.budget {
        Some(mut budget) => {
            // The bench runs up to `max_seqs` at once; admission still sizes the pool for its
            // own choice of slots, which is the configuration being measured.
            budget.max_seqs = None;
            Some(admission::admit(&config.model, budget)?)
        }
        None => None,
    };
    let llm = Arc::new(
        Llm::load(&ModelConfig::admitted(
            config.model.clone(),
            max_seqs,
            plan.as_ref(),
        ))
        .await?,
    );
    // Warm up: the first generation pays one-time costs (allocations, the kernels' first use).
    llm.generate(&prompt(0), 8, None, None, None).await?;
    println!("model: {}", config.model.display());
    match &gpu {
        Ok(gpu) => println!("device: {}", gpu.name()),
        Err(why) => println!(
            "device: CPU, {} threads (GPU memory not measured: {why})",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        ),
    }
    if let Some(plan) = &plan {
        println!("admission: {plan}");
    }
    println!(
        "| sequences | prompt tokens | prompt tok/s | decode tok/s per sequence | aggregate tok/s | peak GPU MB | budget held | wall s |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    let mut variant = 1;
    for &seqs in &config.seqs {
        for _ in 0..config.rounds {
            let row = round(&llm, &gpu, seqs, config.max_tokens, &mut variant).await?;
            let label = match &plan {
                Some(plan) if plan.slots == seqs => format!("{seqs} (admission default)"),
                _ => seqs.to_string(),
            };
            let n = seqs as f64;
            println!(
                "| {label} | {} | {:.1} | {:.1} | {:.1} | {} | {} | {:.2} |",
                row.prompt_tokens / seqs,
                row.prompt_rate / n,
                row.decode_rate / n,
                row.completion_tokens as f64 / row.wall,
                row.peak_mb.map_or("n/a".into(), |mb| mb.to_string()),
                budget_held(row.peak_mb, config.budget),
                row.wall,
            );
        }
    }
    Ok(())
}

fn budget_held(peak_mb: Option<u64>, budget: Option<Budget>) -> String {
    match (peak_mb, budget) {
        (Some(peak), Some(budget)) if peak <= budget.vram_mb => "yes".into(),
        (Some(peak), Some(budget)) => format!("no, {} MB over", peak - budget.vram_mb),
        _ => "n/a".into(),
    }
}
