//! The optional `Idempotency-Key` header of `sessions/start` and
//! `sessions/end` (derivation rules in `achilles_core::model::IdempotencyKey`).

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use achilles_core::model::IdempotencyKey;

use crate::error::ApiError;

pub const HEADER: &str = "idempotency-key";

/// The request's key, if it sent one.
pub struct IdemKey(pub Option<IdempotencyKey>);

impl<S: Send + Sync> FromRequestParts<S> for IdemKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let Some(raw) = parts.headers.get(HEADER) else {
            return Ok(Self(None));
        };
        let raw = raw.to_str().map_err(|_| {
            ApiError::BadIdempotencyKey("Idempotency-Key must be ASCII (a UUIDv7)".into())
        })?;
        IdempotencyKey::parse(raw.trim())
            .map(|k| Self(Some(k)))
            .map_err(ApiError::BadIdempotencyKey)
    }
}
