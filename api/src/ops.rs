//! Operations: liveness, readiness and Prometheus metrics.

use std::sync::Arc;

use poem::web::Data;
use poem_openapi::{payload::PlainText, ApiResponse, OpenApi};

use crate::{ApiTags, AppState};

#[derive(ApiResponse)]
pub enum Readiness {
    /// The database answers.
    #[oai(status = 200)]
    Ready(PlainText<String>),
    /// The database does not answer.
    #[oai(status = 503)]
    NotReady(PlainText<String>),
}

pub struct OpsApi;

#[OpenApi(tag = "ApiTags::Operations")]
impl OpsApi {
    /// The process is up.
    #[oai(path = "/healthz", method = "get")]
    async fn healthz(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// The database is reachable.
    #[oai(path = "/readyz", method = "get")]
    async fn readyz(&self, state: Data<&Arc<AppState>>) -> Readiness {
        match sqlx::query_scalar!(r#"SELECT 1 AS "one!""#)
            .fetch_one(&state.pool)
            .await
        {
            Ok(_) => Readiness::Ready(PlainText("ready".into())),
            Err(error) => Readiness::NotReady(PlainText(format!("database unreachable: {error}"))),
        }
    }

    /// Prometheus metrics in text format.
    #[oai(path = "/metrics", method = "get")]
    async fn metrics(&self, state: Data<&Arc<AppState>>) -> PlainText<String> {
        let counts = sqlx::query!(
            r#"SELECT status AS "status!", count(*) AS "n!" FROM jobs GROUP BY status"#
        )
        .fetch_all(&state.pool)
        .await;
        if let Ok(rows) = counts {
            for status in sentinel_queue::JobStatus::ALL {
                let n = rows
                    .iter()
                    .find(|row| row.status == status.as_str())
                    .map_or(0, |row| row.n);
                state
                    .metrics
                    .queue_depth
                    .with_label_values(&[status.as_str()])
                    .set(n);
            }
        }
        PlainText(state.metrics.render())
    }
}
