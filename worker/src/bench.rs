//! `sentinel-worker bench`: the model's speed on this machine. For each number of sequences in
//! flight it reports the prompt rate (prompt tokens over time to first token), the single-stream
//! decode rate and the aggregate decode rate, and prints a table.

use std::{path::PathBuf, sync::Arc, time::Instant};

use futures::future::join_all;

use crate::llm::{ChatMessage, Llm, ModelConfig, Role};

/// What to measure.
#[derive(Debug, Clone)]
pub struct BenchConfig {
    pub model: PathBuf,
    pub seqs: Vec<usize>,
    pub max_tokens: usize,
    pub rounds: usize,
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

pub async fn run(config: BenchConfig) -> anyhow::Result<()> {
    let max_seqs = config.seqs.iter().copied().max().unwrap_or(1);
    let llm = Arc::new(
        Llm::load(&ModelConfig {
            path: config.model.clone(),
            max_seqs,
            paged_attn_mb: None,
        })
        .await?,
    );
    // Warm up: the first generation pays one-time costs (allocations, the kernels' first use).
    llm.generate(&prompt(0), 8, None, None, None).await?;
    println!("model: {}", config.model.display());
    println!(
        "threads: {}",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    println!(
        "| sequences | prompt tokens | prompt tok/s | decode tok/s per sequence | aggregate decode tok/s | wall s |"
    );
    println!("|---|---|---|---|---|---|");
    let mut variant = 1;
    for &seqs in &config.seqs {
        for _ in 0..config.rounds {
            let started = Instant::now();
            let runs = join_all((0..seqs).map(|_| {
                variant += 1;
                let (llm, messages) = (llm.clone(), prompt(variant));
                let max_tokens = config.max_tokens;
                async move { llm.generate(&messages, max_tokens, None, None, None).await }
            }))
            .await;
            let wall = started.elapsed().as_secs_f64();
            let mut prompt_tokens = 0;
            let mut prompt_rate = 0.0;
            let mut decode_rate = 0.0;
            let mut completion_tokens = 0;
            for run in runs {
                let generation = run?;
                prompt_tokens += generation.usage.prompt_tokens;
                completion_tokens += generation.usage.completion_tokens;
                prompt_rate += generation.usage.prompt_tokens as f64
                    / generation.first_token_seconds.max(1e-9);
                decode_rate += generation.usage.completion_tokens.saturating_sub(1) as f64
                    / (generation.seconds - generation.first_token_seconds).max(1e-9);
            }
            let n = seqs as f64;
            println!(
                "| {seqs} | {} | {:.1} | {:.1} | {:.1} | {wall:.2} |",
                prompt_tokens / seqs,
                prompt_rate / n,
                decode_rate / n,
                completion_tokens as f64 / wall,
            );
        }
    }
    Ok(())
}
