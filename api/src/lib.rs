//! Sentinel's gateway. This first cut serves the health endpoints; webhook ingress, the job API,
//! SSE and the OpenAPI spec build on it.

use std::{net::SocketAddr, time::Duration};

use anyhow::Context;
use poem::{
    get, handler, http::StatusCode, listener::TcpListener, web::Data, EndpointExt, Route, Server,
};
use sentinel_queue::{config, db};
use sqlx::PgPool;
use tokio::sync::watch;

/// The gateway's settings, read once from the environment at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    pub database_url: String,
    pub listen: SocketAddr,
    pub auto_migrate: bool,
}

impl Config {
    pub fn from_env() -> anyhow::Result<Self> {
        Ok(Self {
            database_url: config::required("DATABASE_URL")?,
            listen: config::var_or("SENTINEL_LISTEN", SocketAddr::from(([127, 0, 0, 1], 8080)))?,
            auto_migrate: config::flag("SENTINEL_AUTO_MIGRATE")?,
        })
    }
}

#[handler]
fn healthz() -> &'static str {
    "ok"
}

#[handler]
async fn readyz(pool: Data<&PgPool>) -> (StatusCode, &'static str) {
    match sqlx::query("SELECT 1").execute(*pool).await {
        Ok(_) => (StatusCode::OK, "ready"),
        Err(_) => (StatusCode::SERVICE_UNAVAILABLE, "database unreachable"),
    }
}

/// Serves until `shutdown` turns true.
pub async fn serve(config: Config, mut shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let pool = db::pool(
        db::connect_options(&config.database_url)?,
        16,
        Duration::from_secs(1),
    );
    if config.auto_migrate {
        db::migrate(&pool).await?;
    }
    let app = Route::new()
        .at("/healthz", get(healthz))
        .at("/readyz", get(readyz))
        .data(pool.clone());
    tracing::info!(listen = %config.listen, "gateway listening");
    Server::new(TcpListener::bind(config.listen))
        .run_with_graceful_shutdown(
            app,
            async move {
                let _ = shutdown.wait_for(|stop| *stop).await;
            },
            Some(Duration::from_secs(10)),
        )
        .await
        .context("serving HTTP")?;
    pool.close().await;
    Ok(())
}
