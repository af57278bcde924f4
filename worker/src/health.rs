//! Liveness for process supervisors (a container health check): while the worker runs, a task
//! proves every few seconds that the runtime is responsive and the database answers, and then
//! writes the time to `SENTINEL_HEALTH_FILE`. `sentinel-worker health` reads that file and fails
//! when the last proof is older than the allowed age.

use std::{
    path::{Path, PathBuf},
    time::{Duration, SystemTime, UNIX_EPOCH},
};

use anyhow::Context;
use sqlx::PgPool;
use tokio::sync::watch;

/// How often the proof is written.
pub const BEAT: Duration = Duration::from_secs(10);

fn now_unix() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_secs())
}

/// Writes the proof to `path` every [`BEAT`] while the database answers, until shutdown.
pub async fn beat(pool: PgPool, path: PathBuf, mut shutdown: watch::Receiver<bool>) {
    loop {
        let alive = tokio::time::timeout(BEAT, sentinel_queue::tables::ping(&pool)).await;
        match alive {
            Ok(Ok(_)) => {
                let written = tokio::fs::write(&path, now_unix().to_string()).await;
                if let Err(error) = written {
                    tracing::warn!(path = %path.display(), %error, "cannot write the health file");
                }
            }
            Ok(Err(error)) => tracing::warn!(%error, "health: the database did not answer"),
            Err(_) => tracing::warn!("health: the database did not answer within {BEAT:?}"),
        }
        tokio::select! {
            _ = tokio::time::sleep(BEAT) => {}
            _ = shutdown.wait_for(|stop| *stop) => break,
        }
    }
    let _ = tokio::fs::remove_file(&path).await;
}

/// Succeeds when `path` holds a proof at most `max_age` old.
pub fn check(path: &Path, max_age: Duration) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "no health file at {} (is the worker running?)",
            path.display()
        )
    })?;
    let written: u64 = text
        .trim()
        .parse()
        .with_context(|| format!("{} does not hold a time", path.display()))?;
    let age = now_unix().saturating_sub(written);
    if age > max_age.as_secs() {
        anyhow::bail!(
            "the worker's last health proof is {age} s old (limit {} s): it is stuck or cannot reach the database",
            max_age.as_secs()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_proof_passes_and_a_stale_or_missing_one_fails() {
        let dir = std::env::temp_dir().join(format!("sentinel-health-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("health");
        assert!(check(&path, Duration::from_secs(60))
            .unwrap_err()
            .to_string()
            .contains("no health file"));
        std::fs::write(&path, now_unix().to_string()).unwrap();
        check(&path, Duration::from_secs(60)).unwrap();
        std::fs::write(&path, (now_unix() - 120).to_string()).unwrap();
        let stale = check(&path, Duration::from_secs(60))
            .unwrap_err()
            .to_string();
        assert!(stale.contains("120 s old"), "{stale}");
        std::fs::write(&path, "garbage").unwrap();
        assert!(check(&path, Duration::from_secs(60)).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
