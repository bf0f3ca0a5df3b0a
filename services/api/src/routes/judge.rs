//! `POST /v1/sessions/{id}/judge`: re-run deep mode for one ended session.
//!
//! The API does not judge: it publishes a session-ended record for the
//! session, exactly like the processor's, and the monitoring agent's deep
//! mode judges it as it judges every ended session (waiting until the
//! session's events are landed, then upserting its one `agent_performance`
//! row per agent and its one `session_reports` document). So asking twice
//! leaves one verdict, updated, and nothing about judging is written twice.
//! The record's event count is the processor's (`sessions.event_count`,
//! written with the processor's state), which is what deep mode waits for.
//! Tenant-checked like every read: another tenant's session is a 404.

use std::time::Duration;

use axum::extract::State;
use axum::http::StatusCode;
use axum::Json;
use chrono::Utc;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;
use serde::Serialize;
use utoipa::ToSchema;

use achilles_core::db;
use achilles_core::metrics;
use achilles_core::model::{SessionId, SessionStatus};
use achilles_core::publisher::PublishError;
use achilles_core::telemetry;
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::session_ended::SessionEnded;

use super::extract::Path;
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;

/// The judge request was queued for deep mode.
#[derive(Serialize, ToSchema)]
pub struct JudgeQueued {
    pub session_id: String,
    /// Always `queued`: deep mode writes the verdict shortly (see
    /// `GET /v1/sessions/{id}/agent-performance`).
    pub status: &'static str,
    /// The session's status: completed, failed, aborted or timed_out.
    pub session_status: String,
    /// Events the processor applied; deep mode judges once as many landed.
    pub event_count: i64,
}

/// Re-runs deep mode for one ended session (idempotent: one verdict row per
/// agent and one report, updated).
#[utoipa::path(post, path = "/v1/sessions/{id}/judge", tag = "analysis",
    params(("id" = String, Path, description = "Session UUID")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 202, description = "Queued for deep mode", body = JudgeQueued),
        (status = 404, description = "No such session for this tenant", body = crate::error::ErrorBody),
        (status = 409, description = "The session has not ended (code session_active); it is judged when it ends", body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(tenant = %tenant))]
pub async fn judge_session(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<JudgeQueued>), ApiError> {
    let id = SessionId::parse(&id).map_err(|m| ApiError::bad_request("invalid_id", m))?;
    let row = db::get_session(state.pool(), &tenant, id)
        .await?
        .ok_or(ApiError::NotFound("session"))?;
    let status = SessionStatus::parse(&row.status)
        .filter(|s| *s != SessionStatus::Active)
        .ok_or_else(|| ApiError::Conflict {
            code: "session_active",
            message: "the session has not ended; it is judged when it ends".into(),
        })?;
    let record = SessionEnded {
        tenant: tenant.clone(),
        session_id: id,
        status,
        ended_at: row.ended_at.or(row.last_event_at).unwrap_or(row.updated_at),
        processed_at: Utc::now(),
        event_count: row.event_count,
        error_count: row.error_count,
    };
    let payload = record.encode().map_err(PublishError::from)?;
    let topic = Topics::new(state.settings().kafka.topic_prefix.clone()).name(Topic::SessionEnded);
    let key = id.to_string();
    let mut headers = OwnedHeaders::new();
    for (k, v) in telemetry::header_values(&telemetry::current_context()) {
        headers = headers.insert(Header {
            key: k,
            value: Some(v.as_str()),
        });
    }
    let timeout = Duration::from_millis(state.settings().api.request_timeout_ms);
    state
        .publisher()
        .producer()
        .send(
            FutureRecord::to(&topic)
                .key(&key)
                .payload(&payload)
                .headers(headers),
            timeout,
        )
        .await
        .map_err(|(e, _)| ApiError::Unavailable(PublishError::Kafka(e.to_string())))?;
    metrics::SESSION_REJUDGES
        .with_label_values(&["request"])
        .inc();
    Ok((
        StatusCode::ACCEPTED,
        Json(JudgeQueued {
            session_id: key,
            status: "queued",
            session_status: row.status,
            event_count: row.event_count,
        }),
    ))
}
