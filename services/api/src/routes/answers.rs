//! Answers across sessions: which sessions there were, which errors keep
//! coming back, which agents and models do well. Tenant-scoped like every
//! read; the numbers come from the SQL views analysts query
//! (`session_overview`, `recurring_clusters_between`,
//! `agent_leaderboard_between`).

use axum::extract::{Query, State};
use axum::Json;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use achilles_core::db::answers::{
    self, LeaderboardRow, RecurringClusterRow, SessionCursor, SessionFilter, SessionOverviewRow,
};

use crate::auth::Tenant;
use crate::error::ApiError;
use crate::state::AppState;

fn bad(message: impl Into<String>) -> ApiError {
    ApiError::bad_request("invalid_request", message)
}

/// An RFC 3339 time, or an age before `now` such as `30m`, `24h`, `7d`.
pub(crate) fn time_param(
    field: &str,
    raw: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(raw) = raw.map(str::trim) else {
        return Ok(None);
    };
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    let err = || {
        bad(format!(
            "{field} must be an RFC 3339 time or an age like 30m, 24h, 7d"
        ))
    };
    let (n, unit) = raw.split_at(raw.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| err())?;
    let age = match unit {
        "s" => Duration::try_seconds(n),
        "m" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        _ => None,
    }
    .filter(|d| *d >= Duration::zero())
    .ok_or_else(err)?;
    Ok(Some(now - age))
}

fn window(
    since: Option<&str>,
    until: Option<&str>,
    default_days: i64,
) -> Result<(DateTime<Utc>, DateTime<Utc>), ApiError> {
    let now = Utc::now();
    let until = time_param("until", until, now)?.unwrap_or(now);
    let since = time_param("since", since, now)?.unwrap_or(until - Duration::days(default_days));
    if since >= until {
        return Err(bad("since must be before until"));
    }
    Ok((since, until))
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
pub struct SessionListParams {
    /// Agent name, e.g. claude-code.
    agent: Option<String>,
    /// Model, e.g. claude-sonnet-4-5.
    model: Option<String>,
    /// active, completed, failed, aborted or timed_out.
    status: Option<String>,
    /// Started at or after (RFC 3339, or an age such as 24h or 7d).
    since: Option<String>,
    /// Started before (RFC 3339, or an age).
    until: Option<String>,
    /// Page size (default 100, at most 1000).
    limit: Option<i64>,
    /// `next_cursor` from the previous page.
    after: Option<String>,
}

#[derive(Serialize, ToSchema)]
pub struct SessionList {
    /// Most recently started first.
    pub sessions: Vec<SessionOverviewRow>,
    /// Pass as `after` for the next page; absent on the last page.
    pub next_cursor: Option<String>,
}

/// The tenant's sessions with their summaries and verdicts, filtered and
/// keyset-paginated.
#[utoipa::path(get, path = "/v1/sessions", tag = "answers",
    params(SessionListParams),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = SessionList),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
    ))]
pub async fn list_sessions(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(p): Query<SessionListParams>,
) -> Result<Json<SessionList>, ApiError> {
    let limit = limit(&state, p.limit)?;
    let now = Utc::now();
    if let Some(s) = p.status.as_deref() {
        if !achilles_core::model::SessionStatus::ALL
            .iter()
            .any(|x| x.as_str() == s)
        {
            return Err(bad(
                "status must be one of active, completed, failed, aborted, timed_out",
            ));
        }
    }
    let filter = SessionFilter {
        agent: p.agent,
        model: p.model,
        status: p.status,
        since: time_param("since", p.since.as_deref(), now)?,
        until: time_param("until", p.until.as_deref(), now)?,
    };
    let after = p
        .after
        .as_deref()
        .map(|c| {
            SessionCursor::decode(c)
                .ok_or_else(|| bad("`after` is not a cursor returned by this API"))
        })
        .transpose()?;
    let sessions =
        answers::list_sessions(state.pool(), tenant.as_str(), &filter, after, limit).await?;
    let next_cursor = (sessions.len() as i64 == limit)
        .then(|| sessions.last())
        .flatten()
        .map(|s| {
            SessionCursor {
                started_at: s.started_at,
                id: s.session_id,
            }
            .encode()
        });
    Ok(Json(SessionList {
        sessions,
        next_cursor,
    }))
}

#[derive(Deserialize, IntoParams)]
pub struct WindowParams {
    /// Window start (RFC 3339, or an age such as 24h or 7d); default 7 days
    /// before `until` for clusters, 30 days for the leaderboard.
    since: Option<String>,
    /// Window end (default now).
    until: Option<String>,
    /// At most this many rows (default 100, at most 1000; clusters only).
    limit: Option<i64>,
}

#[derive(Serialize, ToSchema)]
pub struct ClusterList {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// In the most sessions first.
    pub clusters: Vec<RecurringClusterRow>,
}

/// The error clusters that recur across the tenant's sessions in a
/// window, with how often they occurred in the window before (trend).
#[utoipa::path(get, path = "/v1/clusters", tag = "answers",
    params(WindowParams),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = ClusterList),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
    ))]
pub async fn list_clusters(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(p): Query<WindowParams>,
) -> Result<Json<ClusterList>, ApiError> {
    let limit = limit(&state, p.limit)?;
    let (since, until) = window(p.since.as_deref(), p.until.as_deref(), 7)?;
    let clusters =
        answers::recurring_clusters(state.pool(), tenant.as_str(), since, until, limit).await?;
    Ok(Json(ClusterList {
        since,
        until,
        clusters,
    }))
}

#[derive(Serialize, ToSchema)]
pub struct Leaderboard {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    /// Per agent and model, best success rate first.
    pub agents: Vec<LeaderboardRow>,
}

/// Agents and models over the judged sessions started in a window:
/// success rate, induced errors per 100 actions (correlations with
/// confidence >= 0.5), mean time to fix, tokens and cost per successful
/// action.
#[utoipa::path(get, path = "/v1/agents/leaderboard", tag = "answers",
    params(WindowParams),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, body = Leaderboard),
        (status = 400, body = crate::error::ErrorBody),
        (status = 401, body = crate::error::ErrorBody),
    ))]
pub async fn leaderboard(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    Query(p): Query<WindowParams>,
) -> Result<Json<Leaderboard>, ApiError> {
    let (since, until) = window(p.since.as_deref(), p.until.as_deref(), 30)?;
    let agents = answers::leaderboard(state.pool(), tenant.as_str(), since, until).await?;
    Ok(Json(Leaderboard {
        since,
        until,
        agents,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_or_ages() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(
            time_param("since", Some("7d"), now).unwrap(),
            Some(now - Duration::days(7))
        );
        assert_eq!(
            time_param("since", Some("2026-11-21T10:00:00+01:00"), now).unwrap(),
            Some(now - Duration::hours(3))
        );
        assert_eq!(time_param("since", None, now).unwrap(), None);
        for bad in ["yesterday", "-3d", "7w", "99999999999999999d"] {
            assert!(time_param("since", Some(bad), now).is_err(), "{bad}");
        }
    }
}
