//! `sentinel-worker [run|migrate|bench|plan|health]`: reads the config, then runs the worker, the
//! migrations, the model benchmark (`bench [--seqs 1,2,4] [--tokens 64] [--rounds 2]`), the GPU
//! admission's arithmetic for `SENTINEL_MODEL` and `SENTINEL_VRAM_BUDGET_MB` (`plan`), or the
//! liveness check (`health`: the worker's `SENTINEL_HEALTH_FILE` is at most
//! `SENTINEL_HEALTH_MAX_AGE_SECS` old, default 60).

use anyhow::Context;
use sentinel_queue::{config, db, shutdown, telemetry};
use sentinel_worker::{model::llm, Config};

fn main() -> anyhow::Result<()> {
    // The model loads from a local file; never reach for the model hub. Set before any thread
    // exists, as setting the environment requires.
    if std::env::var_os("HF_HUB_OFFLINE").is_none() {
        std::env::set_var("HF_HUB_OFFLINE", "1");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async {
        telemetry::init();
        match std::env::args().nth(1).as_deref() {
            None | Some("run") => {
                let config = Config::from_env().context("invalid configuration")?;
                sentinel_worker::run(config, shutdown::on_signal()).await
            }
            Some("bench") => {
                let arg = |name: &str| std::env::args().skip_while(|a| a != name).nth(1);
                let seqs = arg("--seqs")
                    .unwrap_or_else(|| "1,2,4".into())
                    .split(',')
                    .map(|n| {
                        n.trim()
                            .parse::<usize>()
                            .context("--seqs takes numbers like 1,2,4")
                    })
                    .collect::<anyhow::Result<Vec<_>>>()?;
                let config = sentinel_worker::model::bench::BenchConfig {
                    model: llm::model_path_or_default(std::path::Path::new(".")),
                    seqs,
                    max_tokens: arg("--tokens")
                        .map_or(Ok(64), |n| n.parse())
                        .context("--tokens")?,
                    rounds: arg("--rounds")
                        .map_or(Ok(2), |n| n.parse())
                        .context("--rounds")?,
                    budget: sentinel_worker::vram_budget_from_env()?,
                };
                sentinel_worker::model::bench::run(config).await
            }
            Some("plan") => {
                let model = llm::model_path_or_default(std::path::Path::new("."));
                let budget = sentinel_worker::vram_budget_from_env()?.context(
                    "set SENTINEL_VRAM_BUDGET_MB (and SENTINEL_MODEL) to plan the GPU admission",
                )?;
                let plan = sentinel_worker::model::admission::admit(&model, budget)?;
                println!("{}: {plan}", model.display());
                Ok(())
            }
            Some("health") => {
                let path: std::path::PathBuf = config::required("SENTINEL_HEALTH_FILE")?.into();
                let max_age = config::secs_or("SENTINEL_HEALTH_MAX_AGE_SECS", 60)?;
                sentinel_worker::health::check(&path, max_age)?;
                println!("healthy");
                Ok(())
            }
            Some("migrate") => {
                db::migrate_from_env().await?;
                println!("migrations applied");
                Ok(())
            }
            Some(other) => {
                anyhow::bail!(
                    "unknown command {other:?}; expected `run`, `migrate`, `bench`, `plan` or `health`"
                )
            }
        }
    })
}
