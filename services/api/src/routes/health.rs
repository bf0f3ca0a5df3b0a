//! Liveness, readiness and metrics endpoints (no authentication).

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::Json;
use serde_json::json;

use achilles_core::metrics as m;

use crate::state::AppState;

/// The process is up. Deliberately checks nothing else: a liveness probe
/// that fails when Kafka is down would restart a healthy API in a loop.
#[utoipa::path(get, path = "/healthz", tag = "operations",
    responses((status = 200, description = "The process is alive")))]
pub async fn healthz() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

/// Kafka and Postgres are both reachable: the API can accept and serve.
/// Answered from a check at most `api.ready_cache_ms` old (see `ready.rs`).
#[utoipa::path(get, path = "/readyz", tag = "operations",
    responses(
        (status = 200, description = "Ready", body = Object),
        (status = 503, description = "A dependency is unreachable", body = Object,
            headers(("Retry-After" = u64, description = "Seconds to wait (api.retry_after_secs)"))),
    ))]
pub async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    let r = state.ready().get(&state).await;
    let (pg, kafka) = (r.postgres, r.kafka);
    let word = |ok: bool| if ok { "ok" } else { "unreachable" };
    let status = if pg && kafka {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (
        status,
        Json(json!({"postgres": word(pg), "kafka": word(kafka)})),
    )
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "operations",
    responses((status = 200, description = "Prometheus metrics", content_type = "text/plain")))]
pub async fn metrics() -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m::render(),
    )
}
