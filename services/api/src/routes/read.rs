//! Read endpoints. Every query filters on the caller's tenant; another
//! tenant's session answers 404, exactly like a missing one, so ids cannot
//! be probed.

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use achilles_core::db::{self, EventCursor, EventRow, SessionRow};
use achilles_core::model::SessionId;

use super::extract::{Path, Query};
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;

fn session_id(raw: &str) -> Result<SessionId, ApiError> {
    SessionId::parse(raw).map_err(|m| ApiError::bad_request("invalid_id", m))
}

/// A session with its summary fields.
#[utoipa::path(get, path = "/v1/sessions/{id}", tag = "read",
    params(("id" = String, Path, description = "Session UUID")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = SessionRow),
        (status = 400, description = "Malformed id", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, description = "No such session for this tenant", body = crate::error::ErrorBody),
    ))]
pub async fn get_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SessionRow>, ApiError> {
    let id = session_id(&id)?;
    db::get_session(state.pool(), &tenant, id)
        .await?
        .map(Json)
        .ok_or(ApiError::NotFound("session"))
}

#[derive(Deserialize, IntoParams)]
pub struct PageParams {
    /// Page size (default 100, at most 1000).
    limit: Option<i64>,
    /// `next_cursor` from the previous page.
    after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct EventPage {
    pub events: Vec<EventRow>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// A session's events in event-time order, paginated by cursor.
#[utoipa::path(get, path = "/v1/sessions/{id}/events", tag = "read",
    params(("id" = String, Path, description = "Session UUID"), PageParams),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = EventPage),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
    ))]
pub async fn list_events(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(page): Query<PageParams>,
) -> Result<Json<EventPage>, ApiError> {
    let id = session_id(&id)?;
    let api = &state.settings().api;
    let limit = page.limit.unwrap_or(api.page_size_default);
    if !(1..=api.page_size_max).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_request",
            format!("limit must be between 1 and {}", api.page_size_max),
        ));
    }
    let after = match page.after.as_deref() {
        None => None,
        Some(c) => Some(EventCursor::decode(c).ok_or_else(|| {
            ApiError::bad_request(
                "invalid_request",
                "`after` is not a cursor returned by this API",
            )
        })?),
    };
    if db::get_session(state.pool(), &tenant, id).await?.is_none() {
        return Err(ApiError::NotFound("session"));
    }
    let events = db::list_events(state.pool(), &tenant, id, after, limit).await?;
    let next_cursor = (events.len() as i64 == limit)
        .then(|| events.last())
        .flatten()
        .map(|e| {
            EventCursor {
                occurred_at: e.occurred_at,
                id: e.id,
            }
            .encode()
        });
    Ok(Json(EventPage {
        events,
        next_cursor,
    }))
}

/// What a deletion removed, per table.
#[derive(Serialize, ToSchema)]
pub struct SessionDeleted {
    pub session_id: uuid::Uuid,
    /// Rows removed per table (`sessions`, `events`, ...).
    #[schema(value_type = Object)]
    pub deleted: std::collections::BTreeMap<&'static str, u64>,
}

/// Deletes a session and every row derived from it (events, clusters'
/// shares, correlations, insights, verdicts, reports, consumer state,
/// unpublished records). Records of the session still in flight are
/// dropped by the consumers; aggregate cluster counts lose its share.
/// Audited in the log (`session deleted`, with rows per table).
#[utoipa::path(delete, path = "/v1/sessions/{id}", tag = "read",
    params(("id" = String, Path, description = "Session UUID")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = SessionDeleted),
        (status = 400, description = "Malformed id", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, description = "No such session for this tenant", body = crate::error::ErrorBody),
    ))]
pub async fn delete_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SessionDeleted>, ApiError> {
    let id = session_id(&id)?.as_uuid();
    let Some(deleted) = db::retention::delete_session(state.pool(), tenant.as_str(), id).await?
    else {
        return Err(ApiError::NotFound("session"));
    };
    tracing::info!(audit = "session_deleted", tenant = %tenant.as_str(), session = %id,
        rows = ?deleted, "session deleted");
    Ok(Json(SessionDeleted {
        session_id: id,
        deleted,
    }))
}
