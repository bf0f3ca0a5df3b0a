//! Analysis reads for dashboards and IDEs: a session's error clusters,
//! correlations, agent verdicts and summary; recent insights; one cluster
//! across sessions. Tenant-scoped like every read: another tenant's
//! session or cluster answers 404, exactly like a missing one.

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use achilles_core::db::analysis::{
    self, AgentPerformanceRow, ClusterRow, ClusterSessionRow, CorrelationView, InsightCursor,
    InsightFilter, InsightRow, SessionClusterRow,
};
use achilles_core::db::{self, SessionRow};
use achilles_core::model::{SessionId, TenantId};

use super::extract::{Path, Query};
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;

/// Clusters and insights shown in a summary.
const SUMMARY_TOP: i64 = 5;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", message)
}

/// The session, or 404 if it is not this tenant's.
async fn session(state: &AppState, tenant: &TenantId, raw: &str) -> Result<SessionRow, ApiError> {
    let id = SessionId::parse(raw).map_err(|m| ApiError::bad_request("invalid_id", m))?;
    db::get_session(state.pool(), tenant, id)
        .await?
        .ok_or(ApiError::NotFound("session"))
}

fn limit(state: &AppState, raw: Option<i64>) -> Result<i64, ApiError> {
    let api = &state.settings().api;
    let l = raw.unwrap_or(api.page_size_default);
    if (1..=api.page_size_max).contains(&l) {
        Ok(l)
    } else {
        Err(bad(format!(
            "limit must be between 1 and {}",
            api.page_size_max
        )))
    }
}

#[derive(Deserialize, IntoParams)]
pub struct LimitParams {
    /// At most this many rows (default 100, at most 1000).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionErrors {
    pub session_id: Uuid,
    /// Most frequent in the session first.
    pub clusters: Vec<SessionClusterRow>,
}

/// The error clusters of a session, with counts.
#[utoipa::path(get, path = "/v1/sessions/{id}/errors", tag = "analysis",
    params(("id" = String, Path, description = "Session UUID"), LimitParams),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = SessionErrors),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, description = "No such session for this tenant", body = crate::error::ErrorBody),
    ))]
pub async fn session_errors(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(p): Query<LimitParams>,
) -> Result<Json<SessionErrors>, ApiError> {
    let limit = limit(&state, p.limit)?;
    let s = session(&state, &tenant, &id).await?;
    let clusters = analysis::session_clusters(state.pool(), tenant.as_str(), s.id, limit).await?;
    Ok(Json(SessionErrors {
        session_id: s.id,
        clusters,
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct OffsetParams {
    /// At most this many rows (default 100, at most 1000).
    limit: Option<i64>,
    /// Rows to skip (default 0).
    offset: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct CorrelationPage {
    pub session_id: Uuid,
    /// All correlations of the session.
    pub total: i64,
    pub correlations: Vec<CorrelationView>,
}

/// A session's induced-error candidates (agent edit → failure) with their
/// break/fix status, in event-time order of the failures.
#[utoipa::path(get, path = "/v1/sessions/{id}/correlations", tag = "analysis",
    params(("id" = String, Path, description = "Session UUID"), OffsetParams),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = CorrelationPage),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
    ))]
pub async fn session_correlations(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(p): Query<OffsetParams>,
) -> Result<Json<CorrelationPage>, ApiError> {
    let limit = limit(&state, p.limit)?;
    let offset = p.offset.unwrap_or(0);
    if offset < 0 {
        return Err(bad("offset must not be negative"));
    }
    let s = session(&state, &tenant, &id).await?;
    let t = tenant.as_str();
    let correlations = analysis::session_correlations(state.pool(), t, s.id, limit, offset).await?;
    let total = analysis::count_correlations(state.pool(), t, s.id).await?;
    Ok(Json(CorrelationPage {
        session_id: s.id,
        total,
        correlations,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct AgentPerformance {
    pub session_id: Uuid,
    /// One row per agent; empty until the session ended and was judged.
    pub agents: Vec<AgentPerformanceRow>,
}

/// The monitoring agent's verdict on each agent of a session.
#[utoipa::path(get, path = "/v1/sessions/{id}/agent-performance", tag = "analysis",
    params(("id" = String, Path, description = "Session UUID")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = AgentPerformance),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
    ))]
pub async fn agent_performance(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<AgentPerformance>, ApiError> {
    let s = session(&state, &tenant, &id).await?;
    let agents = analysis::agent_performance(state.pool(), tenant.as_str(), s.id).await?;
    Ok(Json(AgentPerformance {
        session_id: s.id,
        agents,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct SessionSummary {
    /// The session with its summary fields.
    pub session: SessionRow,
    pub top_clusters: Vec<SessionClusterRow>,
    pub performance: Vec<AgentPerformanceRow>,
    pub open_insights: Vec<InsightRow>,
    /// Failures attributed to agent edits (correlations with confidence
    /// >= 0.5), with their causes and fixes.
    pub induced_errors: Vec<achilles_core::db::answers::InducedErrorRow>,
    /// The readable report, once the session ended and was judged.
    #[schema(value_type = Option<Object>)]
    pub report: Option<Value>,
    pub report_generated_at: Option<DateTime<Utc>>,
}

/// Everything about a session in one call: the session and its summary
/// fields, top clusters, agent performance, open insights and the report.
#[utoipa::path(get, path = "/v1/sessions/{id}/summary", tag = "analysis",
    params(("id" = String, Path, description = "Session UUID")),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = SessionSummary),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody),
    ))]
pub async fn session_summary(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
) -> Result<Json<SessionSummary>, ApiError> {
    let s = session(&state, &tenant, &id).await?;
    let (pool, t) = (state.pool(), tenant.as_str());
    let top_clusters = analysis::session_clusters(pool, t, s.id, SUMMARY_TOP).await?;
    let performance = analysis::agent_performance(pool, t, s.id).await?;
    let open_insights = analysis::session_insights(pool, t, s.id, true).await?;
    let induced_errors = achilles_core::db::answers::induced_error_details(pool, t, s.id).await?;
    let report = analysis::session_report(pool, t, s.id).await?;
    Ok(Json(SessionSummary {
        session: s,
        top_clusters,
        performance,
        open_insights,
        induced_errors,
        report_generated_at: report.as_ref().map(|r| r.generated_at),
        report: report.map(|r| r.report),
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct InsightParams {
    /// Only insights raised at or after this time (RFC 3339).
    since: Option<String>,
    /// info, warning or critical.
    severity: Option<String>,
    /// Insight type, e.g. command_loop.
    #[serde(rename = "type")]
    #[param(rename = "type")]
    insight_type: Option<String>,
    /// Only this session's insights.
    session: Option<String>,
    /// open or resolved.
    status: Option<String>,
    /// Page size (default 100, at most 1000).
    limit: Option<i64>,
    /// `next_cursor` from the previous page.
    after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct InsightPage {
    /// Most recently raised first.
    pub insights: Vec<InsightRow>,
    /// Pass as `after` to get the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The tenant's insights, most recently raised first, filtered and
/// keyset-paginated.
#[utoipa::path(get, path = "/v1/insights/recent", tag = "analysis",
    params(InsightParams),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = InsightPage),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
    ))]
pub async fn recent_insights(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(p): Query<InsightParams>,
) -> Result<Json<InsightPage>, ApiError> {
    let limit = limit(&state, p.limit)?;
    let one_of = |v: Option<String>, field: &str, allowed: &[&str]| match v {
        Some(x) if !allowed.contains(&x.as_str()) => Err(bad(format!(
            "{field} must be one of {}",
            allowed.join(", ")
        ))),
        v => Ok(v),
    };
    let filter = InsightFilter {
        since: p
            .since
            .as_deref()
            .map(|s| {
                DateTime::parse_from_rfc3339(s)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|_| bad("since must be an RFC 3339 time"))
            })
            .transpose()?,
        severity: one_of(p.severity, "severity", &["info", "warning", "critical"])?,
        insight_type: p.insight_type,
        session: p
            .session
            .as_deref()
            .map(|s| {
                SessionId::parse(s)
                    .map(|id| id.as_uuid())
                    .map_err(|m| ApiError::bad_request("invalid_id", m))
            })
            .transpose()?,
        status: one_of(p.status, "status", &["open", "resolved"])?,
    };
    let after = p
        .after
        .as_deref()
        .map(|c| {
            InsightCursor::decode(c)
                .ok_or_else(|| bad("`after` is not a cursor returned by this API"))
        })
        .transpose()?;
    let insights =
        analysis::recent_insights(state.pool(), tenant.as_str(), &filter, after, limit).await?;
    let next_cursor = (insights.len() as i64 == limit)
        .then(|| insights.last())
        .flatten()
        .map(|i| {
            InsightCursor {
                raised_at: i.raised_at,
                id: i.id,
            }
            .encode()
        });
    Ok(Json(InsightPage {
        insights,
        next_cursor,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct ClusterDetail {
    pub cluster: ClusterRow,
    /// Sessions it occurs in, most recent occurrence first.
    pub sessions: Vec<ClusterSessionRow>,
}

/// One error cluster across the tenant's sessions.
#[utoipa::path(get, path = "/v1/clusters/{id}", tag = "analysis",
    params(("id" = String, Path, description = "Cluster id"), LimitParams),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = ClusterDetail),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
        (status = 404, description = "No such cluster for this tenant", body = crate::error::ErrorBody),
    ))]
pub async fn get_cluster(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Path(id): Path<String>,
    Query(p): Query<LimitParams>,
) -> Result<Json<ClusterDetail>, ApiError> {
    let limit = limit(&state, p.limit)?;
    if id.is_empty() || id.len() > 128 {
        return Err(ApiError::bad_request(
            "invalid_id",
            "cluster ids are 1-128 characters",
        ));
    }
    let t = tenant.as_str();
    let cluster = analysis::get_cluster(state.pool(), t, &id)
        .await?
        .ok_or(ApiError::NotFound("cluster"))?;
    let sessions = analysis::cluster_sessions(state.pool(), t, &id, limit).await?;
    Ok(Json(ClusterDetail { cluster, sessions }))
}
