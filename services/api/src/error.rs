//! The API's error type and its single mapping to HTTP status codes.
//!
//! Every error body has the same shape, with a stable machine-readable
//! `code` that clients can switch on and a human `message`:
//!
//! ```json
//! {"error": {"code": "unauthorized", "message": "...", "details": ...}}
//! ```

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use achilles_core::publisher::PublishError;
use achilles_core::ValidationErrors;

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("a valid API key is required (Authorization: Bearer <key> or X-API-Key)")]
    Unauthorized,
    #[error("{0} not found")]
    NotFound(&'static str),
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    #[error("{0}")]
    PayloadTooLarge(String),
    /// A single-record submission (session start/end) is invalid.
    #[error("the submission is invalid: {0}")]
    Invalid(ValidationErrors),
    /// Every event of a batch was rejected; `details` lists each one.
    #[error("all {count} events of the batch were rejected")]
    AllRejected { count: usize, details: Value },
    /// Kafka could not take the records: retry later.
    #[error("the event pipeline is temporarily unavailable ({0}); retry later")]
    Unavailable(PublishError),
    #[error("a dependency failed: {0}")]
    Dependency(String),
    /// A bug of ours (e.g. a validated record that does not encode): the
    /// request is not retried as is, and nothing of it was published.
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<PublishError> for ApiError {
    fn from(e: PublishError) -> Self {
        match e {
            PublishError::Encode(e) => {
                tracing::error!(error = %e, "a validated record did not encode");
                Self::Internal(e.to_string())
            }
            e => Self::Unavailable(e),
        }
    }
}

/// The documented error body.
#[derive(Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Serialize, ToSchema)]
pub struct ErrorDetail {
    /// Stable code: unauthorized, not_found, invalid_json, invalid_id,
    /// invalid_request, payload_too_large, batch_too_large,
    /// validation_failed, all_rejected, unavailable, dependency_failed,
    /// internal_error.
    pub code: String,
    pub message: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub details: Option<Value>,
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Invalid(_) | Self::AllRejected { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            Self::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Dependency(_) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    pub fn code(&self) -> &'static str {
        match self {
            Self::Unauthorized => "unauthorized",
            Self::NotFound(_) => "not_found",
            Self::BadRequest { code, .. } => code,
            Self::PayloadTooLarge(_) => "payload_too_large",
            Self::Invalid(_) => "validation_failed",
            Self::AllRejected { .. } => "all_rejected",
            Self::Unavailable(_) => "unavailable",
            Self::Dependency(_) => "dependency_failed",
            Self::Internal(_) => "internal_error",
        }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::BadRequest {
            code,
            message: message.into(),
        }
    }
}

impl From<sqlx::Error> for ApiError {
    fn from(e: sqlx::Error) -> Self {
        tracing::error!(error = %e, "postgres query failed");
        Self::Dependency("postgres".into())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let details = match &self {
            Self::Invalid(errors) => Some(json!(errors)),
            Self::AllRejected { details, .. } => Some(details.clone()),
            _ => None,
        };
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code().to_owned(),
                message: self.to_string(),
                details,
            },
        };
        let mut resp = (status, Json(body)).into_response();
        let headers = resp.headers_mut();
        match &self {
            Self::Unauthorized => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            Self::Unavailable(_) | Self::Dependency(_) => {
                // Clients (and the CLI) back off by this much; a small
                // constant is honest, since we cannot know when Kafka
                // recovers.
                headers.insert(header::RETRY_AFTER, HeaderValue::from_static("2"));
            }
            _ => {}
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_mapping_is_the_documented_one() {
        let cases: Vec<(ApiError, u16, &str)> = vec![
            (ApiError::Unauthorized, 401, "unauthorized"),
            (ApiError::NotFound("session"), 404, "not_found"),
            (
                ApiError::bad_request("invalid_json", "x"),
                400,
                "invalid_json",
            ),
            (
                ApiError::PayloadTooLarge("x".into()),
                413,
                "payload_too_large",
            ),
            (
                ApiError::Unavailable(PublishError::QueueFull),
                503,
                "unavailable",
            ),
        ];
        for (err, status, code) in cases {
            assert_eq!(err.status().as_u16(), status);
            assert_eq!(err.code(), code);
        }
    }

    #[test]
    fn unavailable_carries_retry_after() {
        let resp = ApiError::Unavailable(PublishError::QueueFull).into_response();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "2");
    }
}
