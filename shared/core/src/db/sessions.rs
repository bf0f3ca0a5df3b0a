//! Session rows as the API and the agent read them, tenant-scoped. (The
//! raw sink writes them, in its own crate.)

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::{SessionId, TenantId};

/// A session as analysts and the API see it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct SessionRow {
    pub id: Uuid,
    pub tenant_id: String,
    pub agent_name: Option<String>,
    pub agent_model: Option<String>,
    pub source: String,
    pub status: String,
    pub started_at: Option<DateTime<Utc>>,
    pub ended_at: Option<DateTime<Utc>>,
    #[schema(value_type = Object)]
    pub metadata: serde_json::Value,
    /// Events arrived before the session start; agent fields still unknown.
    pub placeholder: bool,
    pub event_count: i64,
    pub agent_activity_score: Option<f64>,
    pub error_density: Option<f64>,
    pub error_count: i64,
    pub duration_ms: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub first_event_at: Option<DateTime<Utc>>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub summary_final: bool,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// The session, if it exists *for this tenant*. Another tenant's session
/// is indistinguishable from a missing one.
#[tracing::instrument(skip(pool), err)]
pub async fn get_session(
    pool: &PgPool,
    tenant: &TenantId,
    id: SessionId,
) -> Result<Option<SessionRow>, sqlx::Error> {
    sqlx::query_as("SELECT * FROM sessions WHERE id = $1 AND tenant_id = $2")
        .bind(id.as_uuid())
        .bind(tenant.as_str())
        .fetch_optional(pool)
        .await
}
