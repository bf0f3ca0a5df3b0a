//! The OpenAPI document, generated from the handlers and types.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::otlp::{__path_export_logs, __path_export_traces};
use crate::routes::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "Achilles API", description = "Telemetry ingestion and analysis for AI coding agents."),
    paths(start_session, end_session, ingest_batch, export_logs, export_traces, get_session, list_events,
        session_errors, session_correlations, agent_performance, session_summary, recent_insights, get_cluster,
        list_sessions, list_clusters, leaderboard,
        stream, create_webhook, list_webhooks, delete_webhook, webhook_deliveries,
        healthz, readyz, metrics),
    components(schemas(
        BatchRequest, BatchResponse, BatchItemResult, SessionAccepted, EventPage,
        achilles_core::model::submission::EventSubmission,
        achilles_core::model::submission::SessionStartSubmission,
        achilles_core::model::submission::SessionEndSubmission,
        achilles_core::model::FileEdit, achilles_core::model::Command, achilles_core::model::TestRun,
        achilles_core::model::ErrorEvent, achilles_core::model::LlmCall, achilles_core::model::ToolCall,
        achilles_core::model::AgentAction, achilles_core::model::UserMessage, achilles_core::model::CallStatus,
        achilles_core::db::SessionRow, achilles_core::db::EventRow,
        SessionList, ClusterList, Leaderboard,
        WebhookRequest, WebhookCreated, WebhookList, DeliveryList,
        achilles_core::db::push::EndpointRow, achilles_core::db::push::DeliveryRow,
        achilles_core::db::push::TransitionRow,
        achilles_core::db::answers::SessionOverviewRow, achilles_core::db::answers::RecurringClusterRow,
        achilles_core::db::answers::LeaderboardRow, achilles_core::db::answers::InducedErrorRow,
        SessionErrors, CorrelationPage, AgentPerformance, SessionSummary, InsightPage, ClusterDetail,
        achilles_core::db::analysis::SessionClusterRow, achilles_core::db::analysis::CorrelationView,
        achilles_core::db::analysis::AgentPerformanceRow, achilles_core::db::analysis::InsightRow,
        achilles_core::db::analysis::ClusterRow, achilles_core::db::analysis::ClusterSessionRow,
        achilles_core::ValidationError, crate::error::ErrorBody, crate::error::ErrorDetail,
    )),
    modifiers(&Security),
    tags(
        (name = "ingest", description = "Write path: validated, hashed, acknowledged by Kafka before 202."),
        (name = "otlp", description = "OpenTelemetry (OTLP/HTTP) logs and traces of coding agents, mapped onto sessions and events (docs/otlp.md)."),
        (name = "read", description = "Tenant-scoped reads from Postgres."),
        (name = "analysis", description = "Clusters, correlations, agent verdicts and insights (tenant-scoped)."),
        (name = "push", description = "Live insights: a Server-Sent Events stream and signed webhooks (docs/push.md)."),
        (name = "answers", description = "Across sessions: the session list, recurring error clusters with their trend, the agent leaderboard (the SQL views of the same names)."),
        (name = "operations", description = "Probes and metrics (no authentication)."),
    )
)]
pub struct ApiDoc;

struct Security;

impl Modify for Security {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))),
        );
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn document_lists_every_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        for path in [
            "/v1/sessions/start",
            "/v1/sessions/end",
            "/v1/events/batch",
            "/v1/logs",
            "/v1/traces",
            "/v1/sessions/{id}",
            "/v1/sessions/{id}/events",
            "/v1/sessions/{id}/errors",
            "/v1/sessions/{id}/correlations",
            "/v1/sessions/{id}/agent-performance",
            "/v1/sessions/{id}/summary",
            "/v1/insights/recent",
            "/v1/clusters/{id}",
            "/v1/sessions",
            "/v1/clusters",
            "/v1/agents/leaderboard",
            "/v1/insights/stream",
            "/v1/webhooks",
            "/v1/webhooks/{id}",
            "/v1/webhooks/{id}/deliveries",
            "/readyz",
        ] {
            assert!(
                doc["paths"].get(path).is_some(),
                "{path} missing from OpenAPI"
            );
        }
        assert!(doc["components"]["securitySchemes"].get("bearer").is_some());
        let params: Vec<&str> = doc["paths"]["/v1/insights/recent"]["get"]["parameters"]
            .as_array()
            .map(|ps| ps.iter().filter_map(|p| p["name"].as_str()).collect())
            .unwrap_or_default();
        for name in [
            "since", "severity", "type", "session", "status", "limit", "after",
        ] {
            assert!(params.contains(&name), "{name} missing from {params:?}");
        }
    }
}
