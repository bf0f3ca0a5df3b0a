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
        healthz, readyz, metrics,
        judge_session),
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
        JudgeQueued,
    )),
    modifiers(&Security, &CommonResponses),
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

/// Answers every authenticated operation can give, documented once here
/// rather than on each handler: 400 (malformed id or query), 401, 429 (the
/// tenant's quota, with its headers), 503 (a dependency, with
/// `Retry-After`), and 413 wherever there is a request body.
struct CommonResponses;

impl Modify for CommonResponses {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::header::HeaderBuilder;
        use utoipa::openapi::{ContentBuilder, ObjectBuilder, Ref, ResponseBuilder, Type};
        let int_header = |d: &str| {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::Integer))
                .description(Some(d))
                .build()
        };
        let text_header = |d: &str| {
            HeaderBuilder::new()
                .schema(ObjectBuilder::new().schema_type(Type::String))
                .description(Some(d))
                .build()
        };
        let error = |d: &str| {
            ResponseBuilder::new().description(d).content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("ErrorBody")))
                    .build(),
            )
        };
        let retry_after = || int_header("Seconds to wait before retrying");
        let throttled = error("The tenant's request or event quota is exhausted (per replica); retry after Retry-After")
            .header("Retry-After", retry_after())
            .header("RateLimit-Limit", int_header("Tokens per second of the bucket that refused"))
            .header("RateLimit-Remaining", int_header("Tokens left (0)"))
            .header("RateLimit-Reset", int_header("Seconds until enough tokens are back"))
            .header("RateLimit-Policy", text_header("<per_sec>;w=1;burst=<burst>;name=<requests|events>"))
            .build();
        let unavailable = error("A dependency (Kafka or Postgres) is unavailable, or the request timed out; retry after Retry-After")
            .header("Retry-After", retry_after())
            .build();
        for item in openapi.paths.paths.values_mut() {
            for op in [
                &mut item.get,
                &mut item.post,
                &mut item.delete,
                &mut item.put,
            ]
            .into_iter()
            .flatten()
            {
                let authenticated = op.security.as_ref().is_some_and(|s| !s.is_empty());
                if !authenticated {
                    continue;
                }
                let has_body = op.request_body.is_some();
                let r = &mut op.responses.responses;
                let mut add = |code: &str, resp: utoipa::openapi::Response| {
                    r.entry(code.to_owned()).or_insert_with(|| resp.into());
                };
                add("400", error("Malformed id, query or body").build());
                add("401", error("Missing or unknown API key").build());
                add("429", throttled.clone());
                add("503", unavailable.clone());
                if has_body {
                    add("413", error("Body or batch too large").build());
                }
            }
        }
    }
}

pub async fn serve() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every `(method, path)` the router serves, read from its source, so
    /// a route added there without an OpenAPI entry fails this test.
    fn routes_in_router() -> Vec<(String, String)> {
        let src = include_str!("routes/mod.rs");
        let body = &src[src.find("Router::new()").unwrap()..];
        let mut routes = Vec::new();
        for chunk in body.split(".route(").skip(1) {
            let chunk = chunk.split(".layer(").next().unwrap();
            let path = chunk.split('"').nth(1).unwrap().to_string();
            for method in ["get", "post", "put", "patch", "delete"] {
                let calls = chunk.matches(&format!("{method}(")).count()
                    - chunk.matches(&format!("_{method}(")).count();
                if calls > 0 {
                    routes.push((method.to_string(), path.clone()));
                }
            }
        }
        routes
    }

    #[test]
    fn document_lists_every_route() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let routes = routes_in_router();
        assert!(routes.len() >= 25, "router parse found only {routes:?}");
        for (method, path) in routes {
            if path == "/openapi.json" {
                continue; // the document itself
            }
            assert!(
                doc["paths"][&path].get(&method).is_some(),
                "{} {path} is served but missing from the OpenAPI document",
                method.to_uppercase()
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

    #[test]
    fn every_authenticated_operation_documents_429_and_503() {
        let doc = serde_json::to_value(ApiDoc::openapi()).unwrap();
        let mut checked = 0;
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                if op.get("security").is_none() {
                    continue;
                }
                checked += 1;
                for code in ["400", "401", "429", "503"] {
                    assert!(
                        op["responses"].get(code).is_some(),
                        "{method} {path} lacks {code}"
                    );
                }
                let h = &op["responses"]["429"]["headers"];
                assert!(h.get("Retry-After").is_some() && h.get("RateLimit-Limit").is_some());
            }
        }
        // Ingest, OTLP, reads, answers and push: every /v1 operation.
        assert!(checked >= 20, "{checked} authenticated operations");
        let start = &doc["paths"]["/v1/sessions/start"]["post"];
        assert_eq!(start["parameters"][0]["name"], "Idempotency-Key");
    }
}
