//! The `Tenant` extractor: resolves the caller's API key to a tenant.
//!
//! Accepted forms: `Authorization: Bearer <key>` or `X-API-Key: <key>`.
//! The tenant is never read from a request body. Resolving the tenant also
//! charges its request quota, so every authenticated route is limited.

use axum::extract::FromRequestParts;
use axum::http::request::Parts;

use achilles_core::model::TenantId;
use achilles_core::quota::Kind;

use crate::error::ApiError;
use crate::state::AppState;

/// The authenticated tenant of a request.
pub struct Tenant(pub TenantId);

impl FromRequestParts<AppState> for Tenant {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let presented = parts
            .headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| {
                v.strip_prefix("Bearer ")
                    .or_else(|| v.strip_prefix("bearer "))
            })
            .or_else(|| parts.headers.get("x-api-key").and_then(|v| v.to_str().ok()))
            .map(str::trim)
            .ok_or(ApiError::Unauthorized)?;
        let tenant = state
            .keys()
            .tenant_for(presented)
            .cloned()
            .ok_or(ApiError::Unauthorized)?;
        // Every authenticated request costs one token of the tenant's
        // request bucket (events are charged by the batch handler).
        state.quotas().try_take(&tenant, Kind::Requests, 1)?;
        Ok(Tenant(tenant))
    }
}
