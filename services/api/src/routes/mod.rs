//! The router: every route, its layers, and nothing else.

mod analysis;
mod answers;
mod extract;
mod health;
mod ingest;
mod judge;
mod push;
mod read;

use std::time::Duration;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::Router;
use tower_http::timeout::TimeoutLayer;

use crate::state::AppState;
use crate::{observe, openapi, otlp};

pub(crate) use analysis::{
    __path_agent_performance, __path_get_cluster, __path_recent_insights,
    __path_session_correlations, __path_session_errors, __path_session_summary, AgentPerformance,
    ClusterDetail, CorrelationPage, InsightPage, SessionErrors, SessionSummary,
};
pub(crate) use answers::{
    __path_leaderboard, __path_list_clusters, __path_list_sessions, ClusterList, Leaderboard,
    SessionList,
};
pub(crate) use health::{__path_healthz, __path_metrics, __path_readyz};
pub(crate) use ingest::{
    __path_end_session, __path_ingest_batch, __path_start_session, count_rejections,
    BatchItemResult, BatchRequest, BatchResponse, SessionAccepted,
};
pub(crate) use judge::{__path_judge_session, JudgeQueued};
pub(crate) use push::{
    __path_create_webhook, __path_delete_webhook, __path_list_webhooks, __path_stream,
    __path_webhook_deliveries, DeliveryList, WebhookCreated, WebhookList, WebhookRequest,
};
pub(crate) use read::{__path_get_session, __path_list_events, EventPage};

pub fn router(state: AppState) -> Router {
    let api = &state.settings().api;
    // Our own limit check (in the handlers) gives a JSON 413; this layer
    // sits one byte above it only so axum's default 2 MB cap is lifted.
    let body_limit = DefaultBodyLimit::max(api.max_body_bytes + 1);
    let timeout = Duration::from_millis(api.request_timeout_ms);
    Router::new()
        .route("/v1/sessions/start", post(ingest::start_session))
        .route("/v1/sessions/end", post(ingest::end_session))
        .route("/v1/events/batch", post(ingest::ingest_batch))
        .route("/v1/logs", post(otlp::export_logs))
        .route("/v1/traces", post(otlp::export_traces))
        .route("/v1/sessions", get(answers::list_sessions))
        .route("/v1/clusters", get(answers::list_clusters))
        .route("/v1/agents/leaderboard", get(answers::leaderboard))
        .route("/v1/sessions/{id}", get(read::get_session))
        .route("/v1/sessions/{id}/events", get(read::list_events))
        .route("/v1/sessions/{id}/errors", get(analysis::session_errors))
        .route(
            "/v1/sessions/{id}/correlations",
            get(analysis::session_correlations),
        )
        .route(
            "/v1/sessions/{id}/agent-performance",
            get(analysis::agent_performance),
        )
        .route("/v1/sessions/{id}/summary", get(analysis::session_summary))
        .route("/v1/sessions/{id}/judge", post(judge::judge_session))
        .route("/v1/insights/recent", get(analysis::recent_insights))
        .route("/v1/insights/stream", get(push::stream))
        .route(
            "/v1/webhooks",
            get(push::list_webhooks).post(push::create_webhook),
        )
        .route(
            "/v1/webhooks/{id}",
            axum::routing::delete(push::delete_webhook),
        )
        .route(
            "/v1/webhooks/{id}/deliveries",
            get(push::webhook_deliveries),
        )
        .route("/v1/clusters/{id}", get(analysis::get_cluster))
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        .route("/metrics", get(health::metrics))
        .route("/openapi.json", get(openapi::serve))
        .layer(body_limit)
        .layer(axum::middleware::from_fn(observe::middleware))
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            timeout,
        ))
        // Outermost: also sees the timeout layer's 503s.
        .layer(axum::middleware::map_response_with_state(
            api.retry_after_secs,
            crate::error::retry_after,
        ))
        .with_state(state)
}
