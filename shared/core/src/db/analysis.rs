//! Analysis tables as the API and the agent's deep mode read them
//! (insights, agent performance, session reports, and the processor's
//! clusters and correlations). Their writers live with the services that
//! own them.
//!
//! Every read takes the caller's tenant and filters on it, so another
//! tenant's rows are indistinguishable from missing ones.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

/// An error cluster as it occurs in one session.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct SessionClusterRow {
    pub cluster_id: String,
    /// The cluster's pattern, variable parts masked as `<*>`.
    pub template: String,
    /// Occurrences in this session.
    pub occurrences: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Occurrences across all of the tenant's sessions.
    pub total_occurrences: i64,
    /// Sessions of the tenant in which the cluster occurs.
    pub session_count: i64,
    #[schema(value_type = Vec<String>)]
    pub sample_messages: Value,
}

/// The session's clusters, most frequent first.
pub async fn session_clusters(
    pool: &PgPool,
    tenant: &str,
    session: Uuid,
    limit: i64,
) -> Result<Vec<SessionClusterRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT s.cluster_id, c.template, s.occurrence_count AS occurrences, s.first_seen, s.last_seen,
                c.occurrence_count AS total_occurrences, c.session_count, c.sample_messages
         FROM error_cluster_sessions s
         JOIN error_clusters c ON c.tenant_id = s.tenant_id AND c.id = s.cluster_id
         WHERE s.session_id = $1 AND s.tenant_id = $2
         ORDER BY s.occurrence_count DESC, s.cluster_id
         LIMIT $3",
    )
    .bind(session)
    .bind(tenant)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// An induced-error row: an agent edit (cause) and a later failure
/// (effect), with its break/fix status. `confidence >= 0.5` is a claim
/// (counted by verdicts); below, a candidate.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct CorrelationView {
    pub cause_event_id: Uuid,
    pub effect_event_id: Uuid,
    /// How the failure points at the edited file: `error_location`,
    /// `mention`, `test_subject` or `context` (`same_file`/`any_failure`
    /// on rows written before 2026-11-29); docs/processing.md.
    pub match_kind: String,
    pub file_path: Option<String>,
    pub gap_ms: i64,
    pub confidence: f64,
    pub fixed_by_event_id: Option<Uuid>,
    pub fixed_at: Option<DateTime<Utc>>,
    pub cause_at: Option<DateTime<Utc>>,
    pub effect_at: Option<DateTime<Utc>>,
}

/// The session's correlations in event-time order of their effects.
pub async fn session_correlations(
    pool: &PgPool,
    tenant: &str,
    session: Uuid,
    limit: i64,
    offset: i64,
) -> Result<Vec<CorrelationView>, sqlx::Error> {
    sqlx::query_as(
        "SELECT cause_event_id, effect_event_id, match_kind, file_path, gap_ms, confidence,
                fixed_by_event_id, fixed_at, cause_at, effect_at
         FROM event_correlations
         WHERE session_id = $1 AND tenant_id = $2
         ORDER BY effect_at NULLS LAST, cause_at NULLS LAST, cause_event_id, effect_event_id
         LIMIT $3 OFFSET $4",
    )
    .bind(session)
    .bind(tenant)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await
}

pub async fn count_correlations(
    pool: &PgPool,
    tenant: &str,
    session: Uuid,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT count(*) FROM event_correlations WHERE session_id = $1 AND tenant_id = $2",
    )
    .bind(session)
    .bind(tenant)
    .fetch_one(pool)
    .await
}

/// One `agent_performance` row (formulas in docs/agent.md).
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct AgentPerformanceRow {
    pub session_id: Uuid,
    pub agent_name: String,
    pub total_actions: i64,
    pub induced_error_count: i64,
    pub success_rate: Option<f64>,
    pub break_fix_cycles: i64,
    pub mean_time_to_fix_ms: Option<f64>,
    pub total_tokens: i64,
    pub cost_usd: f64,
    pub tokens_per_successful_action: Option<f64>,
    pub cost_per_successful_action: Option<f64>,
    pub computed_at: DateTime<Utc>,
}

pub async fn agent_performance(
    pool: &PgPool,
    tenant: &str,
    session: Uuid,
) -> Result<Vec<AgentPerformanceRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT session_id, agent_name, total_actions, induced_error_count, success_rate,
                break_fix_cycles, mean_time_to_fix_ms, total_tokens, cost_usd,
                tokens_per_successful_action, cost_per_successful_action, computed_at
         FROM agent_performance WHERE session_id = $1 AND tenant_id = $2 ORDER BY agent_name",
    )
    .bind(session)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// An insight of the monitoring agent.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct InsightRow {
    pub id: Uuid,
    pub session_id: Uuid,
    /// high_error_density, agent_churn, command_loop, stalled_session,
    /// runaway_cost, ...
    #[serde(rename = "type")]
    pub insight_type: String,
    /// info, warning or critical.
    pub severity: String,
    /// open or resolved.
    pub status: String,
    pub dedup_key: String,
    pub title: String,
    pub detail: Option<String>,
    #[schema(value_type = Object)]
    pub evidence: Value,
    pub raised_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

const INSIGHT_COLUMNS: &str = "id, session_id, type AS insight_type, severity, status, dedup_key, \
     title, detail, evidence, raised_at, last_seen_at, resolved_at";

/// The session's insights, newest first; only open ones if asked.
pub async fn session_insights(
    pool: &PgPool,
    tenant: &str,
    session: Uuid,
    only_open: bool,
) -> Result<Vec<InsightRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {INSIGHT_COLUMNS} FROM insights
         WHERE session_id = $1 AND tenant_id = $2 AND (NOT $3 OR status = 'open')
         ORDER BY raised_at DESC, id DESC"
    ))
    .bind(session)
    .bind(tenant)
    .bind(only_open)
    .fetch_all(pool)
    .await
}

/// Filters of `GET /v1/insights/recent`; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct InsightFilter {
    pub since: Option<DateTime<Utc>>,
    pub severity: Option<String>,
    pub insight_type: Option<String>,
    pub session: Option<Uuid>,
    pub status: Option<String>,
}

/// Keyset position: insights strictly older than (raised_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InsightCursor {
    pub raised_at: DateTime<Utc>,
    pub id: Uuid,
}

impl InsightCursor {
    /// Opaque text form: `<micros>_<uuid>`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.raised_at.timestamp_micros(), self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (us, id) = s.split_once('_')?;
        Some(Self {
            raised_at: DateTime::from_timestamp_micros(us.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// The tenant's insights, most recently raised first, keyset-paginated.
pub async fn recent_insights(
    pool: &PgPool,
    tenant: &str,
    f: &InsightFilter,
    after: Option<InsightCursor>,
    limit: i64,
) -> Result<Vec<InsightRow>, sqlx::Error> {
    let (t, id) = after.map_or((None, None), |c| (Some(c.raised_at), Some(c.id)));
    sqlx::query_as(&format!(
        "SELECT {INSIGHT_COLUMNS} FROM insights
         WHERE tenant_id = $1
           AND ($2::timestamptz IS NULL OR raised_at >= $2)
           AND ($3::text IS NULL OR severity = $3)
           AND ($4::text IS NULL OR type = $4)
           AND ($5::uuid IS NULL OR session_id = $5)
           AND ($6::text IS NULL OR status = $6)
           AND ($7::timestamptz IS NULL OR (raised_at, id) < ($7, $8))
         ORDER BY raised_at DESC, id DESC
         LIMIT $9"
    ))
    .bind(tenant)
    .bind(f.since)
    .bind(f.severity.as_deref())
    .bind(f.insight_type.as_deref())
    .bind(f.session)
    .bind(f.status.as_deref())
    .bind(t)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// An error cluster across the tenant's sessions.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ClusterRow {
    pub id: String,
    pub template: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub occurrence_count: i64,
    pub session_count: i64,
    #[schema(value_type = Vec<String>)]
    pub sample_messages: Value,
}

pub async fn get_cluster(
    pool: &PgPool,
    tenant: &str,
    id: &str,
) -> Result<Option<ClusterRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, template, first_seen, last_seen, occurrence_count, session_count, sample_messages
         FROM error_clusters WHERE tenant_id = $1 AND id = $2",
    )
    .bind(tenant)
    .bind(id)
    .fetch_optional(pool)
    .await
}

/// One session in which a cluster occurs.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct ClusterSessionRow {
    pub session_id: Uuid,
    pub occurrence_count: i64,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub agent_name: Option<String>,
    pub status: String,
}

/// The sessions a cluster occurs in, most recent occurrence first.
pub async fn cluster_sessions(
    pool: &PgPool,
    tenant: &str,
    id: &str,
    limit: i64,
) -> Result<Vec<ClusterSessionRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.session_id, c.occurrence_count, c.first_seen, c.last_seen, s.agent_name, s.status
         FROM error_cluster_sessions c JOIN sessions s ON s.id = c.session_id
         WHERE c.tenant_id = $1 AND c.cluster_id = $2 AND s.tenant_id = $1
         ORDER BY c.last_seen DESC, c.session_id
         LIMIT $3",
    )
    .bind(tenant)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The stored report of an ended session.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct SessionReportRow {
    pub session_id: Uuid,
    #[schema(value_type = Object)]
    pub report: Value,
    pub generated_at: DateTime<Utc>,
}

pub async fn session_report(
    pool: &PgPool,
    tenant: &str,
    session: Uuid,
) -> Result<Option<SessionReportRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT session_id, report, generated_at FROM session_reports
         WHERE session_id = $1 AND tenant_id = $2",
    )
    .bind(session)
    .bind(tenant)
    .fetch_optional(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn insight_cursor_round_trip_and_garbage() {
        let c = InsightCursor {
            raised_at: DateTime::from_timestamp_micros(1_763_726_400_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(InsightCursor::decode(&c.encode()), Some(c));
        assert_eq!(InsightCursor::decode("x_y"), None);
    }
}
