//! Session rows: bulk writes for the raw sink, tenant-scoped reads for the API.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::{SessionEnd, SessionId, SessionStart, TenantId};

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

/// Owners of the sessions that already exist among `ids`.
///
/// No row lock: a session's tenant is fixed by the insert that created the
/// row (every later write filters on it, none sets it) and sessions are
/// never deleted, so the answer cannot change before the transaction
/// ends. A `FOR SHARE` here made the raw sink, the processor and the agent
/// queue behind each other on every active session's row (their updates of
/// that row wait for each other's share locks), which cost tens of ms per
/// batch under `make bench`.
pub async fn session_owners(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, String>, sqlx::Error> {
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, tenant_id FROM sessions WHERE id = ANY($1)")
            .bind(ids)
            .fetch_all(&mut **tx)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Inserts started sessions; a start for an existing placeholder fills in
/// its agent fields. Re-delivered starts change nothing, and a start never
/// resets the status of a session that already ended.
pub async fn upsert_session_starts(
    tx: &mut Transaction<'_, Postgres>,
    starts: &[&SessionStart],
) -> Result<(), sqlx::Error> {
    if starts.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = starts.iter().map(|s| s.session_id.as_uuid()).collect();
    let tenants: Vec<&str> = starts.iter().map(|s| s.tenant.as_str()).collect();
    let names: Vec<&str> = starts.iter().map(|s| s.agent_name.as_str()).collect();
    let models: Vec<Option<&str>> = starts.iter().map(|s| s.agent_model.as_deref()).collect();
    let sources: Vec<&str> = starts.iter().map(|s| s.source.as_str()).collect();
    let started: Vec<DateTime<Utc>> = starts.iter().map(|s| s.started_at).collect();
    let metadata: Vec<serde_json::Value> = starts
        .iter()
        .map(|s| serde_json::Value::Object(s.metadata.clone()))
        .collect();
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, agent_name, agent_model, source, started_at, metadata)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::timestamptz[], $7::jsonb[])
         ON CONFLICT (id) DO UPDATE SET
             agent_name = EXCLUDED.agent_name, agent_model = EXCLUDED.agent_model,
             source = EXCLUDED.source, started_at = EXCLUDED.started_at,
             metadata = EXCLUDED.metadata, placeholder = false, updated_at = now()
         WHERE sessions.placeholder AND sessions.tenant_id = EXCLUDED.tenant_id",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&names)
    .bind(&models)
    .bind(&sources)
    .bind(&started)
    .bind(&metadata)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Makes sure a row exists for sessions that events (or an end) refer to
/// before their start arrived; the start fills it in later.
pub async fn ensure_placeholders(
    tx: &mut Transaction<'_, Postgres>,
    sessions: &[(Uuid, &str, DateTime<Utc>)],
) -> Result<(), sqlx::Error> {
    if sessions.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = sessions.iter().map(|s| s.0).collect();
    let tenants: Vec<&str> = sessions.iter().map(|s| s.1).collect();
    let started: Vec<DateTime<Utc>> = sessions.iter().map(|s| s.2).collect();
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, started_at, placeholder)
         SELECT id, tenant_id, started_at, true
         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) AS t(id, tenant_id, started_at)
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&started)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Marks sessions ended. Idempotent: a re-delivered end writes the same
/// values again.
pub async fn apply_session_ends(
    tx: &mut Transaction<'_, Postgres>,
    ends: &[&SessionEnd],
) -> Result<(), sqlx::Error> {
    if ends.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = ends.iter().map(|s| s.session_id.as_uuid()).collect();
    let tenants: Vec<&str> = ends.iter().map(|s| s.tenant.as_str()).collect();
    let ended: Vec<DateTime<Utc>> = ends.iter().map(|s| s.ended_at).collect();
    let status: Vec<&str> = ends.iter().map(|s| s.status.as_str()).collect();
    sqlx::query(
        "UPDATE sessions s SET status = t.status, ended_at = t.ended_at, updated_at = now()
         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::text[])
              AS t(id, tenant_id, ended_at, status)
         WHERE s.id = t.id AND s.tenant_id = t.tenant_id",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&ended)
    .bind(&status)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
