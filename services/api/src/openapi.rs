//! The OpenAPI document, generated from the handlers and types.

use axum::Json;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::routes::*;

#[derive(OpenApi)]
#[openapi(
    info(title = "Achilles API", description = "Telemetry ingestion and analysis for AI coding agents."),
    paths(start_session, end_session, ingest_batch, get_session, list_events, healthz, readyz, metrics),
    components(schemas(
        BatchRequest, BatchResponse, BatchItemResult, SessionAccepted, EventPage,
        achilles_core::model::submission::EventSubmission,
        achilles_core::model::submission::SessionStartSubmission,
        achilles_core::model::submission::SessionEndSubmission,
        achilles_core::model::FileEdit, achilles_core::model::Command, achilles_core::model::TestRun,
        achilles_core::model::ErrorEvent, achilles_core::model::LlmCall, achilles_core::model::ToolCall,
        achilles_core::model::AgentAction, achilles_core::model::UserMessage, achilles_core::model::CallStatus,
        achilles_core::db::SessionRow, achilles_core::db::EventRow,
        achilles_core::ValidationError, crate::error::ErrorBody, crate::error::ErrorDetail,
    )),
    modifiers(&Security),
    tags(
        (name = "ingest", description = "Write path: validated, hashed, acknowledged by Kafka before 202."),
        (name = "read", description = "Tenant-scoped reads from Postgres."),
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
            "/v1/sessions/{id}",
            "/v1/sessions/{id}/events",
            "/readyz",
        ] {
            assert!(
                doc["paths"].get(path).is_some(),
                "{path} missing from OpenAPI"
            );
        }
        assert!(doc["components"]["securitySchemes"].get("bearer").is_some());
    }
}
