//! Operations: liveness, readiness and Prometheus metrics.

use std::sync::Arc;

use poem::{web::Data, Request};
use poem_openapi::{
    payload::{Json, PlainText},
    ApiResponse, OpenApi,
};
use subtle::ConstantTimeEq;

use crate::{
    error::{ErrorBody, ErrorDetail},
    ApiTags, AppState,
};

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
    #[oai(path = "/healthz", method = "get", operation_id = "healthz")]
    async fn healthz(&self) -> PlainText<&'static str> {
        PlainText("ok")
    }

    /// The database is reachable.
    #[oai(path = "/readyz", method = "get", operation_id = "readyz")]
    async fn readyz(&self, state: Data<&Arc<AppState>>) -> Readiness {
        match sentinel_queue::tables::ping(&state.pool).await {
            Ok(_) => Readiness::Ready(PlainText("ready".into())),
            Err(error) => Readiness::NotReady(PlainText(format!("database unreachable: {error}"))),
        }
    }

    /// Prometheus metrics in text format. The job counts come from a background task (every 2 s
    /// for queued jobs, every 30 s by status), so a scrape reads no table. With
    /// `SENTINEL_METRICS_TOKEN` set, it asks for `Authorization: Bearer <token>`.
    #[oai(path = "/metrics", method = "get", operation_id = "metrics")]
    async fn metrics(&self, req: &Request, state: Data<&Arc<AppState>>) -> Metrics {
        if let Some(expected) = state.config.metrics_token.as_deref() {
            let given = req
                .headers()
                .get("authorization")
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .unwrap_or_default();
            if !bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
                return Metrics::Unauthorized(error_body(
                    "invalid_metrics_token",
                    "/metrics needs Authorization: Bearer <SENTINEL_METRICS_TOKEN>",
                ));
            }
        }
        Metrics::Ok(PlainText(state.metrics.render()))
    }
}

#[derive(ApiResponse)]
pub enum Metrics {
    /// The metrics.
    #[oai(status = 200)]
    Ok(PlainText<String>),
    /// `SENTINEL_METRICS_TOKEN` is set and the request does not carry it.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
}

fn error_body(code: &str, message: &str) -> Json<ErrorBody> {
    Json(ErrorBody {
        error: ErrorDetail {
            code: code.into(),
            message: message.into(),
        },
    })
}
