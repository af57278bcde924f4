//! The one API error type: each kind maps to an HTTP status and the JSON body
//! `{"error": {"code": "...", "message": "..."}}`. Internal details go to the log, not the client.

use poem::{http::StatusCode, IntoResponse, Response};
use poem_openapi::{payload::Json, ApiResponse, Object};

#[derive(Debug, Clone, Object)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, Object)]
pub struct ErrorDetail {
    /// A stable snake_case code to branch on.
    pub code: String,
    /// What was wrong, for a person.
    pub message: String,
}

#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed.
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// Missing or invalid credentials.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// Authenticated, but not allowed.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource for this tenant.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// The resource is not in a state that allows this (a job whose reply was not skipped, or
    /// whose reply was already sent after review).
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The request carries more than a limit allows (events per request, the tenant's burst).
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// The request is well-formed but its content is not acceptable.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Over the tenant's rate limit (`rate_limited`) or queued-job cap (`queue_full`), or too
    /// many open event streams (`too_many_streams`); retry after the given seconds.
    #[oai(status = 429)]
    TooManyRequests(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
    /// Something failed on our side; the details are in the gateway's log.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The database is unreachable or saturated; retry after the given seconds.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

fn body(code: &str, message: impl Into<String>) -> Json<ErrorBody> {
    Json(ErrorBody {
        error: ErrorDetail {
            code: code.to_owned(),
            message: message.into(),
        },
    })
}

impl ApiError {
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        ApiError::BadRequest(body(code, message))
    }
    pub fn unauthorized(code: &str, message: impl Into<String>) -> Self {
        ApiError::Unauthorized(body(code, message))
    }
    pub fn forbidden(code: &str, message: impl Into<String>) -> Self {
        ApiError::Forbidden(body(code, message))
    }
    pub fn not_found(code: &str, message: impl Into<String>) -> Self {
        ApiError::NotFound(body(code, message))
    }
    pub fn unprocessable(code: &str, message: impl Into<String>) -> Self {
        ApiError::Unprocessable(body(code, message))
    }
    pub fn conflict(code: &str, message: impl Into<String>) -> Self {
        ApiError::Conflict(body(code, message))
    }
    pub fn payload_too_large(code: &str, message: impl Into<String>) -> Self {
        ApiError::PayloadTooLarge(body(code, message))
    }
    pub fn too_many(code: &str, message: impl Into<String>, retry_after_secs: u64) -> Self {
        ApiError::TooManyRequests(body(code, message), retry_after_secs.max(1))
    }
    pub fn rate_limited(retry_after_secs: u64) -> Self {
        ApiError::TooManyRequests(
            body("rate_limited", "the tenant is over its rate limit"),
            retry_after_secs.max(1),
        )
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        ApiError::Unavailable(body("database_unavailable", message), 1)
    }

    /// Logs `error` and hides it from the client.
    pub fn internal(error: impl std::fmt::Display) -> Self {
        tracing::error!(%error, "internal error");
        ApiError::Internal(body("internal", "internal error; see the gateway log"))
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized(_) => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::Unprocessable(_) => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooManyRequests(..) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
            ApiError::Unavailable(..) => StatusCode::SERVICE_UNAVAILABLE,
        }
    }
}

/// The code and message for a value Postgres text cannot hold.
pub const INVALID_TEXT: &str = "invalid_text";
pub const INVALID_TEXT_MESSAGE: &str =
    "a text value in the request contains U+0000 (NUL), which cannot be stored or matched; remove it";

/// Every statement's failure reaches the client through here, so what a request's values can make
/// a statement do is decided in one place: a value Postgres text cannot hold (U+0000 in a filter,
/// a lease, a name: SQLSTATE 22021, or a `\u0000` escape in jsonb: 22P05) is the caller's 400,
/// never a 500; a statement or lock timeout (57014, 55P03) is a 503 to retry.
impl From<sqlx::Error> for ApiError {
    fn from(error: sqlx::Error) -> Self {
        let sqlstate = match &error {
            sqlx::Error::Database(database) => database.code().map(|code| code.into_owned()),
            _ => None,
        };
        match (error, sqlstate.as_deref()) {
            (_, Some("22021" | "22P05")) => {
                ApiError::bad_request(INVALID_TEXT, INVALID_TEXT_MESSAGE)
            }
            (error, Some("57014" | "55P03")) => {
                tracing::warn!(%error, "a statement ran past its statement or lock timeout");
                ApiError::unavailable("the database is busy; retry shortly")
            }
            // The server or the pooler in front of it went away, is starting, shutting down, full,
            // or is a standby now (a failover in progress): all pass with a retry.
            (error, Some(code))
                if code.starts_with("08")
                    || matches!(code, "53300" | "57P01" | "57P02" | "57P03" | "25006") =>
            {
                tracing::warn!(%error, "database unavailable");
                ApiError::unavailable("the database is unreachable or saturated; retry shortly")
            }
            (
                error @ (sqlx::Error::PoolTimedOut | sqlx::Error::Io(_) | sqlx::Error::PoolClosed),
                _,
            ) => {
                tracing::warn!(%error, "database unavailable");
                ApiError::unavailable("the database is unreachable or saturated; retry shortly")
            }
            (other, _) => ApiError::internal(other),
        }
    }
}

/// A JSON error response outside poem-openapi (ingress, the catch-all for framework errors).
pub fn error_response(status: StatusCode, code: &str, message: &str) -> Response {
    let body = serde_json::json!({"error": {"code": code, "message": message}});
    poem::web::Json(body).with_status(status).into_response()
}

/// The snake_case code for a framework error's status.
pub fn code_for_status(status: StatusCode) -> &'static str {
    match status.as_u16() {
        400 => "bad_request",
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        405 => "method_not_allowed",
        413 => "payload_too_large",
        415 => "unsupported_media_type",
        422 => "unprocessable",
        429 => "rate_limited",
        503 => "unavailable",
        s if s >= 500 => "internal",
        _ => "error",
    }
}
