//! `sentinel-api [serve|migrate|openapi]`: reads the config, then serves, runs the migrations, or
//! prints the OpenAPI spec.

use anyhow::Context;
use sentinel_api::Config;
use sentinel_queue::{db, shutdown, telemetry};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match std::env::args().nth(1).as_deref() {
        None | Some("serve") => {
            telemetry::init();
            let config = Config::from_env().context("invalid configuration")?;
            sentinel_api::serve(config, shutdown::on_signal()).await
        }
        Some("migrate") => {
            telemetry::init();
            db::migrate_from_env().await?;
            println!("migrations applied");
            Ok(())
        }
        Some("openapi") => {
            println!("{}", sentinel_api::openapi_json());
            Ok(())
        }
        Some(other) => {
            anyhow::bail!("unknown command {other:?}; expected `serve`, `migrate` or `openapi`")
        }
    }
}
