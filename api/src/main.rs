//! `sentinel-api [serve|migrate]`: reads the config, then serves or runs the migrations.

use anyhow::Context;
use sentinel_api::Config;
use sentinel_queue::{db, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    telemetry::init();
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            let config = Config::from_env().context("invalid configuration")?;
            sentinel_api::serve(config, shutdown::on_signal()).await
        }
        Some("migrate") => {
            db::migrate_from_env().await?;
            println!("migrations applied");
            Ok(())
        }
        Some(other) => anyhow::bail!("unknown command {other:?}; expected `serve` or `migrate`"),
    }
}
