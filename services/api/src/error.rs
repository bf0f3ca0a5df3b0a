//! The API's error type and its single mapping to HTTP status codes.
//!
//! Every error body has the same shape, with a stable machine-readable
//! `code` that clients can switch on and a human `message`:
//!
//! ```json
//! {"error": {"code": "unauthorized", "message": "...", "details": ...}}
//! ```

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;
use serde_json::{json, Value};
use utoipa::ToSchema;

use achilles_core::publisher::PublishError;
use achilles_core::quota::Throttled;
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
    /// The tenant's request or event bucket is empty: retry after
    /// `Retry-After`. Nothing of the request was processed.
    #[error("rate limited: {0}")]
    RateLimited(Throttled),
    /// `Idempotency-Key` is not a UUIDv7.
    #[error("{0}")]
    BadIdempotencyKey(String),
    /// The resource is not in a state that allows the request (e.g.
    /// judging a session that has not ended).
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
}

impl From<Throttled> for ApiError {
    fn from(t: Throttled) -> Self {
        if t.never {
            // Waiting cannot help: the batch is larger than the bucket.
            Self::PayloadTooLarge(format!(
                "the batch has more events than your burst of {} ({}/s); send smaller batches",
                t.burst, t.per_sec
            ))
        } else {
            Self::RateLimited(t)
        }
    }
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
    /// invalid_request, invalid_idempotency_key, payload_too_large,
    /// validation_failed, all_rejected, rate_limited, unavailable,
    /// dependency_failed, internal_error, session_active.
    pub code: String,
    pub message: String,
    /// For `validation_failed` the list of problems (`field`, `code`,
    /// `message`); for `all_rejected` the batch's per-event results.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
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
            Self::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
            Self::BadIdempotencyKey(_) => StatusCode::BAD_REQUEST,
            Self::Conflict { .. } => StatusCode::CONFLICT,
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
            Self::RateLimited(_) => "rate_limited",
            Self::BadIdempotencyKey(_) => "invalid_idempotency_key",
            Self::Conflict { code, .. } => code,
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
            Self::RateLimited(t) => {
                // Whole seconds, rounded up: retrying earlier is refused.
                let secs = t.retry_after.as_secs() + u64::from(t.retry_after.subsec_nanos() > 0);
                let secs = secs.max(1).to_string();
                let policy = format!(
                    "{};w=1;burst={};name={}",
                    t.per_sec,
                    t.burst,
                    t.kind.as_str()
                );
                for (name, value) in [
                    (header::RETRY_AFTER.as_str(), secs.clone()),
                    (RATELIMIT_LIMIT, t.per_sec.to_string()),
                    (RATELIMIT_REMAINING, "0".to_owned()),
                    (RATELIMIT_RESET, secs),
                    (RATELIMIT_POLICY, policy),
                ] {
                    if let Ok(v) = HeaderValue::from_str(&value) {
                        headers.insert(name, v);
                    }
                }
            }
            // Every 503 (these and the request timeout's) gets its
            // `Retry-After` from `api.retry_after_secs` in `retry_after`.
            _ => {}
        }
        resp
    }
}

/// The IETF RateLimit header fields, sent with every 429.
pub const RATELIMIT_LIMIT: &str = "ratelimit-limit";
pub const RATELIMIT_REMAINING: &str = "ratelimit-remaining";
pub const RATELIMIT_RESET: &str = "ratelimit-reset";
pub const RATELIMIT_POLICY: &str = "ratelimit-policy";

/// Gives every 503 `Retry-After: api.retry_after_secs`: clients (and the
/// CLI) back off by this much. A constant is honest, since we cannot know
/// when Kafka or Postgres recovers.
pub async fn retry_after(State(secs): State<u64>, mut resp: Response) -> Response {
    if resp.status() == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(secs));
    }
    resp
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

    #[tokio::test]
    async fn every_503_carries_the_configured_retry_after() {
        let resp = ApiError::Unavailable(PublishError::QueueFull).into_response();
        let resp = retry_after(State(7), resp).await;
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(resp.headers()[header::RETRY_AFTER], "7");
        let ok = retry_after(State(7), StatusCode::OK.into_response()).await;
        assert!(ok.headers().get(header::RETRY_AFTER).is_none());
    }

    #[test]
    fn throttled_is_429_with_rate_limit_headers_or_413_when_it_never_fits() {
        use achilles_core::quota::Kind;
        let t = Throttled {
            kind: Kind::Events,
            per_sec: 100,
            burst: 200,
            retry_after: std::time::Duration::from_millis(1_500),
            never: false,
        };
        let resp = ApiError::from(t.clone()).into_response();
        assert_eq!(resp.status(), StatusCode::TOO_MANY_REQUESTS);
        let h = resp.headers();
        assert_eq!(h[header::RETRY_AFTER], "2");
        assert_eq!(h[RATELIMIT_LIMIT], "100");
        assert_eq!(h[RATELIMIT_REMAINING], "0");
        assert_eq!(h[RATELIMIT_RESET], "2");
        assert_eq!(h[RATELIMIT_POLICY], "100;w=1;burst=200;name=events");
        let never = ApiError::from(Throttled { never: true, ..t });
        assert_eq!(never.status(), StatusCode::PAYLOAD_TOO_LARGE);
    }
}
