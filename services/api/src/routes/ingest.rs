//! Write endpoints: session start, event batches, session end.
//!
//! Batch semantics (documented in the OpenAPI document and README):
//! * every event is judged on its own: `accepted`, `duplicate` (same event
//!   hash as an event this API process accepted recently, or earlier in the
//!   same batch) or
//!   `rejected` with its index and every reason;
//! * accepted events are published, and `202` is returned only after the
//!   broker acknowledged all of them; if Kafka cannot take them the whole
//!   request is `503` with `Retry-After` and may be retried as is
//!   (duplicates are harmless, everything downstream dedups on the hash);
//! * a batch in which nothing was accepted or duplicate is `422`;
//! * bodies over `api.max_body_bytes` or batches over
//!   `api.max_batch_events` are `413` before anything is validated.

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use bytes::Bytes;
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use achilles_core::metrics;
use achilles_core::model::submission::{
    from_json, Context, EventSubmission, SessionEndSubmission, SessionStartSubmission,
};
use achilles_core::model::{Event, SessionId};
use achilles_core::wire::{Envelope, Record};
use achilles_core::ValidationError;

use achilles_core::quota::Kind;

use crate::accept::{accept, SessionRecords};
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::idempotency::IdemKey;
use crate::state::AppState;

#[path = "batch_body.rs"]
mod batch_body;

/// `POST /v1/events/batch` body.
#[derive(Deserialize, ToSchema)]
#[allow(dead_code)] // Parsed field by field for better errors; kept for the schema.
pub struct BatchRequest {
    /// Default session for events that name none.
    session_id: Option<String>,
    events: Vec<EventSubmission>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchResponse {
    pub accepted: usize,
    pub duplicates: usize,
    pub rejected: usize,
    /// One entry per submitted event, in order.
    pub results: Vec<BatchItemResult>,
}

#[derive(Serialize, ToSchema)]
pub struct BatchItemResult {
    pub index: usize,
    /// `accepted`, `duplicate` or `rejected`.
    pub status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub event_hash: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub errors: Option<Vec<ValidationError>>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionAccepted {
    pub session_id: String,
    pub status: &'static str,
}

/// Turns a body (or its rejection) into JSON, with our error shapes.
pub(crate) fn parse_body(
    state: &AppState,
    route: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Value, ApiError> {
    let body = checked_body(state, route, body)?;
    serde_json::from_slice(&body).map_err(|e| {
        ApiError::bad_request("invalid_json", format!("the body is not valid JSON: {e}"))
    })
}

/// The body's bytes within `api.max_body_bytes`, with our error shapes.
fn checked_body(
    state: &AppState,
    route: &str,
    body: Result<Bytes, BytesRejection>,
) -> Result<Bytes, ApiError> {
    let limit = state.settings().api.max_body_bytes;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(format!("the body exceeds the {limit}-byte limit"))
        } else {
            ApiError::bad_request("invalid_request", e.body_text())
        }
    })?;
    if body.len() > limit {
        return Err(ApiError::PayloadTooLarge(format!(
            "the body is {} bytes; the limit is {limit}",
            body.len()
        )));
    }
    metrics::HTTP_BODY_BYTES
        .with_label_values(&[route])
        .observe(body.len() as f64);
    Ok(body)
}

pub(crate) fn count_rejections(errors: &achilles_core::ValidationErrors) {
    metrics::INGEST_EVENTS
        .with_label_values(&["rejected"])
        .inc();
    metrics::INGEST_REJECTIONS
        .with_label_values(&[errors.primary_code()])
        .inc();
}

/// Accepts a batch of events.
#[utoipa::path(post, path = "/v1/events/batch", tag = "ingest",
    request_body = BatchRequest,
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 202, description = "Broker acknowledged every accepted event", body = BatchResponse),
        (status = 400, description = "Not JSON, or not a batch", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = crate::error::ErrorBody),
        (status = 413, description = "Body or batch too large", body = crate::error::ErrorBody),
        (status = 422, description = "Every event was rejected; details list each", body = crate::error::ErrorBody),
        (status = 503, description = "Kafka could not take the events; retry after Retry-After", body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(tenant = %tenant, session_id = tracing::field::Empty))]
pub async fn ingest_batch(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<BatchResponse>), ApiError> {
    let body = checked_body(&state, "/v1/events/batch", body)?;
    let max = state.settings().api.max_batch_events;
    let batch = batch_body::parse(&body, max)?;
    let default_session = batch
        .session_id
        .map(|s| SessionId::parse(&s).map_err(|m| ApiError::bad_request("invalid_id", m)))
        .transpose()?;
    let items = batch.events;
    if items.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_request",
            "the `events` array is empty",
        ));
    }
    // One token per submitted event, before any validation work.
    let n = u32::try_from(items.len()).unwrap_or(u32::MAX);
    state.quotas().try_take(&tenant, Kind::Events, n)?;

    let now = Utc::now();
    let limits = &state.settings().validation;
    let ctx = Context {
        tenant: &tenant,
        now,
        limits,
        scrub: Some(state.scrubber()),
    };
    let mut results = Vec::with_capacity(items.len());
    let mut valid: Vec<(usize, Event)> = Vec::with_capacity(items.len());
    for (index, item) in items.into_iter().enumerate() {
        let parsed = batch_body::item(item)
            .and_then(from_json::<EventSubmission>)
            .and_then(|s| s.validate(ctx, default_session));
        match parsed {
            Ok(ev) => valid.push((index, ev)),
            Err(errors) => {
                count_rejections(&errors);
                results.push(BatchItemResult {
                    index,
                    status: "rejected",
                    event_id: None,
                    event_hash: None,
                    errors: Some(errors.0),
                });
            }
        }
    }

    // One session for the whole batch (the usual case): say so in the logs.
    if let Some((_, first)) = valid.first() {
        if valid.iter().all(|(_, e)| e.session_id == first.session_id) {
            tracing::Span::current().record("session_id", first.session_id.to_string());
        }
    }

    let (indexes, events): (Vec<usize>, Vec<Event>) = valid.into_iter().unzip();
    let described: Vec<(String, String)> = events
        .iter()
        .map(|e| (e.id.to_string(), e.hash.to_hex()))
        .collect();
    if events.is_empty() {
        return Err(ApiError::AllRejected {
            count: results.len(),
            details: serde_json::to_value(&results).unwrap_or_default(),
        });
    }
    let duplicate = accept(&state, now, events, SessionRecords::default()).await?;
    for ((index, (event_id, event_hash)), dup) in indexes.into_iter().zip(described).zip(duplicate)
    {
        results.push(BatchItemResult {
            index,
            status: if dup { "duplicate" } else { "accepted" },
            event_id: Some(event_id),
            event_hash: Some(event_hash),
            errors: None,
        });
    }
    results.sort_by_key(|r| r.index);
    let count = |s: &str| results.iter().filter(|r| r.status == s).count();
    let (accepted, duplicates, rejected) =
        (count("accepted"), count("duplicate"), count("rejected"));
    Ok((
        StatusCode::ACCEPTED,
        Json(BatchResponse {
            accepted,
            duplicates,
            rejected,
            results,
        }),
    ))
}

/// Starts a session.
#[utoipa::path(post, path = "/v1/sessions/start", tag = "ingest",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "A UUIDv7 created once per call and sent on every retry: the session id (start, when the body has none) and the start/end time (when absent) are derived from it, so a retry has no second effect")),
    request_body = SessionStartSubmission,
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 202, description = "Broker acknowledged the session start", body = SessionAccepted),
        (status = 400, description = "Not JSON, or an Idempotency-Key that is not a UUIDv7", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid submission", body = crate::error::ErrorBody),
        (status = 503, description = "Kafka unavailable; retry", body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(tenant = %tenant, session_id = tracing::field::Empty))]
pub async fn start_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    IdemKey(key): IdemKey,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SessionAccepted>), ApiError> {
    let doc = parse_body(&state, "/v1/sessions/start", body)?;
    let ctx = Context {
        tenant: &tenant,
        now: Utc::now(),
        limits: &state.settings().validation,
        scrub: Some(state.scrubber()),
    };
    let start = from_json::<SessionStartSubmission>(doc)
        .map(|mut s| {
            if let Some(k) = &key {
                s.fill_from_key(k, &tenant);
            }
            s
        })
        .and_then(|s| s.validate(ctx))
        .map_err(ApiError::Invalid)?;
    let session_id = start.session_id;
    publish_one(&state, Record::SessionStart(start)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SessionAccepted {
            session_id: session_id.to_string(),
            status: "accepted",
        }),
    ))
}

/// Ends a session.
#[utoipa::path(post, path = "/v1/sessions/end", tag = "ingest",
    params(("Idempotency-Key" = Option<String>, Header,
        description = "A UUIDv7 created once per call and sent on every retry: the session id (start, when the body has none) and the start/end time (when absent) are derived from it, so a retry has no second effect")),
    request_body = SessionEndSubmission,
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 202, description = "Broker acknowledged the session end", body = SessionAccepted),
        (status = 400, description = "Not JSON, or an Idempotency-Key that is not a UUIDv7", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = crate::error::ErrorBody),
        (status = 422, description = "Invalid submission", body = crate::error::ErrorBody),
        (status = 503, description = "Kafka unavailable; retry", body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(tenant = %tenant, session_id = tracing::field::Empty))]
pub async fn end_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    IdemKey(key): IdemKey,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<SessionAccepted>), ApiError> {
    let doc = parse_body(&state, "/v1/sessions/end", body)?;
    let ctx = Context {
        tenant: &tenant,
        now: Utc::now(),
        limits: &state.settings().validation,
        scrub: Some(state.scrubber()),
    };
    let end = from_json::<SessionEndSubmission>(doc)
        .map(|mut s| {
            if let Some(k) = &key {
                s.fill_from_key(k);
            }
            s
        })
        .and_then(|s| s.validate(ctx))
        .map_err(ApiError::Invalid)?;
    let session_id = end.session_id;
    publish_one(&state, Record::SessionEnd(end)).await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(SessionAccepted {
            session_id: session_id.to_string(),
            status: "accepted",
        }),
    ))
}

async fn publish_one(state: &AppState, record: Record) -> Result<(), ApiError> {
    tracing::Span::current().record("session_id", record.session_id().to_string());
    let env = Envelope {
        ingested_at: Utc::now(),
        record,
    };
    state
        .publisher()
        .publish(std::slice::from_ref(&env), None)
        .await
        .map_err(|e| {
            metrics::BACKPRESSURE.with_label_values(&[e.cause()]).inc();
            ApiError::from(e)
        })
}
