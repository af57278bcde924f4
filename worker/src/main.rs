//! `sentinel-worker [run|migrate]`: reads the config, then runs the worker or the migrations.

use anyhow::Context;
use sentinel_queue::{db, shutdown, telemetry};
use sentinel_worker::Config;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    match std::env::args().nth(1).as_deref() {
        None | Some("run") => {
            let config = Config::from_env().context("invalid configuration")?;
            sentinel_worker::run(config, shutdown::on_signal()).await
        }
        Some("migrate") => {
            db::migrate_from_env().await?;
            println!("migrations applied");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `run` or `migrate`"),
    }
}
