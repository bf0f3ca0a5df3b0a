//! Live push: the insight stream (Server-Sent Events) and webhook
//! registration. Delivery itself is the agent's (docs/push.md).

use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::sse::{KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use achilles_core::db::push::{self, DeliveryRow, EndpointRow, NewEndpoint};
use achilles_core::metrics;
use achilles_core::model::SessionId;
use achilles_core::webhook;

use super::answers::time_param;
use super::ingest::parse_body;
use crate::auth::Tenant;
use crate::error::{ApiError, ErrorBody, ErrorDetail};
use crate::state::AppState;
use crate::stream::{Start, StreamFilter};

const SEVERITIES: &[&str] = &["info", "warning", "critical"];
const STATUSES: &[&str] = &["open", "resolved"];
const TRANSITIONS: &[&str] = &["raised", "escalated", "resolved"];

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", message)
}

fn one_of(v: Option<String>, field: &str, allowed: &[&str]) -> Result<Option<String>, ApiError> {
    match v {
        Some(x) if !allowed.contains(&x.as_str()) => Err(bad(format!(
            "{field} must be one of {}",
            allowed.join(", ")
        ))),
        v => Ok(v),
    }
}

#[derive(Deserialize, IntoParams)]
pub struct StreamParams {
    /// Replay transitions decided since then (RFC 3339 or an age such as
    /// 1h) before following live ones; ignored when resuming.
    since: Option<String>,
    /// info, warning or critical.
    severity: Option<String>,
    /// Insight type, e.g. command_loop.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    insight_type: Option<String>,
    /// Only this session's insights.
    session: Option<String>,
    /// open or resolved (after the transition).
    status: Option<String>,
    /// Resume after this event id, like the `Last-Event-ID` header (which wins).
    after: Option<i64>,
}

/// Raised, escalated and resolved insights of the caller's tenant as
/// Server-Sent Events (`event:` the transition, `id:` its position,
/// `data:` the insight as JSON), with heartbeat comments while idle.
/// Resumable: reconnect with `Last-Event-ID` and nothing is missed. A
/// client that reads too slowly is disconnected (and resumes).
#[utoipa::path(get, path = "/v1/insights/stream", tag = "push",
    params(StreamParams, ("Last-Event-ID" = Option<i64>, Header, description = "Resume after this event id")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "text/event-stream of insight transitions", content_type = "text/event-stream"),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 503, description = "Too many open streams; retry later", body = crate::error::ErrorBody),
    ))]
pub async fn stream(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    Query(p): Query<StreamParams>,
) -> Result<Response, ApiError> {
    let filter = StreamFilter {
        severity: one_of(p.severity, "severity", SEVERITIES)?,
        insight_type: p.insight_type,
        session: p
            .session
            .as_deref()
            .map(|s| {
                SessionId::parse(s)
                    .map(|id| id.as_uuid())
                    .map_err(|m| ApiError::bad_request("invalid_id", m))
            })
            .transpose()?,
        status: one_of(p.status, "status", STATUSES)?,
    };
    let last_event_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .ok_or_else(|| bad("Last-Event-ID must be an event id of this stream"))
        })
        .transpose()?;
    let start = match (last_event_id.or(p.after), p.since.as_deref()) {
        (Some(id), _) => Start::After(id),
        (None, Some(s)) => match time_param("since", Some(s), Utc::now())? {
            Some(t) => Start::Since(t),
            None => Start::Now,
        },
        (None, None) => Start::Now,
    };
    let hub = state.stream();
    let Some(permit) = hub.admit() else {
        metrics::STREAM_DISCONNECTS
            .with_label_values(&["full"])
            .inc();
        let body = ErrorBody {
            error: ErrorDetail {
                code: "too_many_streams".into(),
                message: "this API process has as many open streams as it serves; retry later"
                    .into(),
                details: None,
            },
        };
        let mut resp = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
        resp.headers_mut()
            .insert("retry-after", HeaderValue::from_static("5"));
        return Ok(resp);
    };
    let events = hub.open(state.pool(), permit, tenant.to_string(), filter, start);
    let keep_alive = KeepAlive::new().interval(hub.heartbeat()).text("heartbeat");
    let mut resp = Sse::new(events).keep_alive(keep_alive).into_response();
    // Proxies (nginx) must pass events through as they come.
    resp.headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(resp)
}

/// `POST /v1/webhooks` body.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookRequest {
    /// http(s) URL; loopback, private, link-local and metadata addresses are
    /// refused unless the operator allowed them.
    url: String,
    description: Option<String>,
    /// Only these severities (default: all).
    severities: Option<Vec<String>>,
    /// Only these insight types (default: all).
    types: Option<Vec<String>>,
    /// Only these transitions: raised, escalated, resolved (default: all).
    transitions: Option<Vec<String>>,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookCreated {
    #[serde(flatten)]
    pub endpoint: EndpointRow,
    /// The signing secret (Achilles-Signature); shown only now.
    pub secret: String,
}

#[derive(Serialize, ToSchema)]
pub struct WebhookList {
    pub webhooks: Vec<EndpointRow>,
}

#[derive(Serialize, ToSchema)]
pub struct DeliveryList {
    /// Newest first.
    pub deliveries: Vec<DeliveryRow>,
}

fn all_of(
    v: Option<Vec<String>>,
    field: &str,
    allowed: Option<&[&str]>,
) -> Result<Option<Vec<String>>, ApiError> {
    let Some(v) = v else { return Ok(None) };
    if v.is_empty() || v.len() > 32 {
        return Err(bad(format!(
            "{field} must list 1 to 32 values, or be left out"
        )));
    }
    for x in &v {
        let known = allowed.is_none_or(|a| a.contains(&x.as_str()));
        if !known || x.is_empty() || x.len() > 128 {
            return Err(bad(match allowed {
                Some(a) => format!("{field}: {x:?} is not one of {}", a.join(", ")),
                None => format!("{field}: {x:?} must be 1 to 128 characters"),
            }));
        }
    }
    Ok(Some(v))
}

/// Registers a webhook endpoint; the answer holds its signing secret,
/// which is not shown again.
#[utoipa::path(post, path = "/v1/webhooks", tag = "push",
    request_body = WebhookRequest,
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 201, body = WebhookCreated),
        (status = 400, description = "Invalid or refused URL, unknown filter value, or too many endpoints", body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
    ))]
pub async fn create_webhook(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<WebhookCreated>), ApiError> {
    let doc = parse_body(&state, "/v1/webhooks", body)?;
    let req: WebhookRequest = serde_json::from_value(doc).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("not a webhook registration: {e}"))
    })?;
    let url = webhook::parse_destination(req.url.trim())
        .and_then(|u| webhook::check_literal(&u, state.address_policy()).map(|()| u))
        .map_err(|e| ApiError::bad_request("invalid_url", e.to_string()))?;
    if req.description.as_ref().is_some_and(|d| d.len() > 1024) {
        return Err(bad("description must be at most 1024 bytes"));
    }
    let secret = webhook::new_secret();
    let new = NewEndpoint {
        url: url.to_string(),
        secret: secret.clone(),
        description: req.description,
        severities: all_of(req.severities, "severities", Some(SEVERITIES))?,
        types: all_of(req.types, "types", None)?,
        transitions: all_of(req.transitions, "transitions", Some(TRANSITIONS))?,
    };
    let max = state.settings().push.webhook_max_endpoints_per_tenant;
    let endpoint = push::create_endpoint(state.pool(), tenant.as_str(), &new, max)
        .await?
        .ok_or_else(|| {
            ApiError::bad_request(
                "too_many_webhooks",
                format!("a tenant may register at most {max} webhooks; remove one first"),
            )
        })?;
    Ok((
        StatusCode::CREATED,
        Json(WebhookCreated { endpoint, secret }),
    ))
}

/// The tenant's webhook endpoints.
#[utoipa::path(get, path = "/v1/webhooks", tag = "push",
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = WebhookList), (status = 401, body = crate::error::ErrorBody)))]
pub async fn list_webhooks(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
) -> Result<Json<WebhookList>, ApiError> {
    let webhooks = push::list_endpoints(state.pool(), tenant.as_str()).await?;
    Ok(Json(WebhookList { webhooks }))
}

fn endpoint_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(raw).map_err(|_| ApiError::bad_request("invalid_id", "not a webhook id"))
}

/// Removes an endpoint; pending deliveries to it are dropped.
#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "push",
    params(("id" = String, Path, description = "Webhook id")),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 204), (status = 401, body = crate::error::ErrorBody),
        (status = 404, description = "No such webhook for this tenant", body = crate::error::ErrorBody)))]
pub async fn delete_webhook(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = endpoint_id(&id)?;
    if push::delete_endpoint(state.pool(), tenant.as_str(), id).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound("webhook"))
    }
}

#[derive(Deserialize, IntoParams)]
pub struct DeliveryParams {
    /// At most this many (default 100, at most 1000).
    limit: Option<i64>,
}

/// An endpoint's recent deliveries: status, attempts, last error.
#[utoipa::path(get, path = "/v1/webhooks/{id}/deliveries", tag = "push",
    params(("id" = String, Path, description = "Webhook id"), DeliveryParams),
    security(("api_key" = []), ("bearer" = [])),
    responses((status = 200, body = DeliveryList), (status = 401, body = crate::error::ErrorBody),
        (status = 404, description = "No such webhook for this tenant", body = crate::error::ErrorBody)))]
pub async fn webhook_deliveries(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(p): Query<DeliveryParams>,
) -> Result<Json<DeliveryList>, ApiError> {
    let id = endpoint_id(&id)?;
    let api = &state.settings().api;
    let limit = p.limit.unwrap_or(api.page_size_default);
    if !(1..=api.page_size_max).contains(&limit) {
        return Err(bad(format!(
            "limit must be between 1 and {}",
            api.page_size_max
        )));
    }
    let deliveries = push::endpoint_deliveries(state.pool(), tenant.as_str(), id, limit)
        .await?
        .ok_or(ApiError::NotFound("webhook"))?;
    Ok(Json(DeliveryList { deliveries }))
}
