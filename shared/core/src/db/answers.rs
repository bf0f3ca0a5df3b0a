//! Answers across sessions: the session list, recurring error clusters and
//! the agent leaderboard. Each reads the view or function of the same name
//! in `migrations/20261129004000_answers.sql`, so analysts querying
//! Postgres and clients of the API get the same numbers; formulas are in
//! the views' comments and docs/metrics.md.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

/// One session with its summary and verdict (`session_overview`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct SessionOverviewRow {
    pub session_id: Uuid,
    pub agent_name: Option<String>,
    pub agent_model: Option<String>,
    pub source: String,
    /// active, completed, failed, aborted or timed_out.
    pub status: String,
    pub started_at: DateTime<Utc>,
    pub ended_at: Option<DateTime<Utc>>,
    pub event_count: i64,
    pub error_count: i64,
    pub error_density: Option<f64>,
    pub duration_ms: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    /// Agent actions; null until the session was judged.
    pub total_actions: Option<i64>,
    /// Share of actions that neither failed nor induced an error; null
    /// until judged.
    pub success_rate: Option<f64>,
    /// Failures attributed to agent edits with confidence >= 0.5.
    pub induced_errors: i64,
}

/// Filters of `GET /v1/sessions`; `None` means "any".
#[derive(Debug, Clone, Default)]
pub struct SessionFilter {
    pub agent: Option<String>,
    pub model: Option<String>,
    pub status: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

/// Keyset position: sessions started strictly before (started_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionCursor {
    pub started_at: DateTime<Utc>,
    pub id: Uuid,
}

impl SessionCursor {
    /// Opaque text form: `<micros>_<uuid>`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.started_at.timestamp_micros(), self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (us, id) = s.split_once('_')?;
        Some(Self {
            started_at: DateTime::from_timestamp_micros(us.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// The tenant's sessions, most recently started first.
pub async fn list_sessions(
    pool: &PgPool,
    tenant: &str,
    f: &SessionFilter,
    after: Option<SessionCursor>,
    limit: i64,
) -> Result<Vec<SessionOverviewRow>, sqlx::Error> {
    let (t, id) = after.map_or((None, None), |c| (Some(c.started_at), Some(c.id)));
    sqlx::query_as(
        "SELECT session_id, agent_name, agent_model, source, status, started_at, ended_at,
                event_count, error_count, error_density, duration_ms, input_tokens, output_tokens,
                cost_usd, total_actions, success_rate, induced_errors
         FROM session_overview
         WHERE tenant_id = $1
           AND ($2::text IS NULL OR agent_name = $2)
           AND ($3::text IS NULL OR agent_model = $3)
           AND ($4::text IS NULL OR status = $4)
           AND ($5::timestamptz IS NULL OR started_at >= $5)
           AND ($6::timestamptz IS NULL OR started_at < $6)
           AND ($7::timestamptz IS NULL OR (started_at, session_id) < ($7, $8))
         ORDER BY started_at DESC, session_id DESC
         LIMIT $9",
    )
    .bind(tenant)
    .bind(f.agent.as_deref())
    .bind(f.model.as_deref())
    .bind(f.status.as_deref())
    .bind(f.since)
    .bind(f.until)
    .bind(t)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// A cluster that recurs in a window (`recurring_clusters_between`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct RecurringClusterRow {
    pub cluster_id: String,
    /// The pattern, variable parts masked as `<*>`.
    pub template: String,
    /// Sessions with occurrences in the window.
    pub sessions: i64,
    /// Occurrences in those sessions.
    pub occurrences: i64,
    /// The same for the window of equal length just before.
    pub previous_sessions: i64,
    pub previous_occurrences: i64,
    /// new, rising, falling or steady.
    pub trend: String,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub total_sessions: i64,
    pub total_occurrences: i64,
    #[schema(value_type = Vec<String>)]
    pub sample_messages: Value,
}

/// The clusters recurring in [since, until), in the most sessions first.
pub async fn recurring_clusters(
    pool: &PgPool,
    tenant: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<RecurringClusterRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT cluster_id, template, sessions, occurrences, previous_sessions,
                previous_occurrences, trend, first_seen, last_seen, total_sessions,
                total_occurrences, sample_messages
         FROM recurring_clusters_between($2, $3)
         WHERE tenant_id = $1
         ORDER BY sessions DESC, occurrences DESC, cluster_id
         LIMIT $4",
    )
    .bind(tenant)
    .bind(since)
    .bind(until)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// One agent and model on the leaderboard (`agent_leaderboard_between`).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct LeaderboardRow {
    pub agent_name: String,
    /// `unknown` for sessions that reported no model.
    pub agent_model: String,
    /// Judged sessions started in the window.
    pub sessions: i64,
    pub actions: i64,
    /// Successful actions / actions.
    pub success_rate: Option<f64>,
    pub induced_errors: i64,
    pub induced_errors_per_100_actions: Option<f64>,
    pub fixed_induced_errors: i64,
    /// Mean time from an induced error to its fix; null when none was fixed.
    pub mean_time_to_fix_ms: Option<f64>,
    pub tokens: i64,
    pub cost_usd: f64,
    pub tokens_per_successful_action: Option<f64>,
    pub cost_per_successful_action: Option<f64>,
}

/// The leaderboard of sessions started in [since, until): best success
/// rate first, then fewest induced errors per action.
pub async fn leaderboard(
    pool: &PgPool,
    tenant: &str,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<LeaderboardRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT agent_name, agent_model, sessions, actions, success_rate, induced_errors,
                induced_errors_per_100_actions, fixed_induced_errors, mean_time_to_fix_ms,
                tokens, cost_usd, tokens_per_successful_action, cost_per_successful_action
         FROM agent_leaderboard_between($2, $3)
         WHERE tenant_id = $1
         ORDER BY success_rate DESC NULLS LAST, induced_errors_per_100_actions NULLS LAST,
                  sessions DESC, agent_name, agent_model",
    )
    .bind(tenant)
    .bind(since)
    .bind(until)
    .fetch_all(pool)
    .await
}

/// One induced error of a session with its cause, for people: what failed,
/// which edit it is attributed to, and whether it was fixed.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct InducedErrorRow {
    pub effect_event_id: Uuid,
    pub effect_at: Option<DateTime<Utc>>,
    /// error, command, test_run, ...
    pub effect_kind: Option<String>,
    /// The failure in a line: the error message, the command and its exit
    /// code, the failing call.
    pub effect_summary: Option<String>,
    /// The edit with the strongest correlation.
    pub cause_event_id: Uuid,
    pub cause_at: Option<DateTime<Utc>>,
    pub file_path: Option<String>,
    pub confidence: f64,
    pub fixed_at: Option<DateTime<Utc>>,
    pub time_to_fix_ms: Option<f64>,
}

/// The session's induced errors (view `induced_errors`, confidence >= 0.5)
/// in the order they happened.
pub async fn induced_error_details(
    pool: &PgPool,
    tenant: &str,
    session: Uuid,
) -> Result<Vec<InducedErrorRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT * FROM (
             SELECT DISTINCT ON (c.effect_event_id)
                    c.effect_event_id, i.effect_at, e.kind AS effect_kind,
                    left(coalesce(e.data->>'message',
                                  (e.data->>'command') || ' (exit ' || coalesce(e.data->>'exit_code', '?') || ')',
                                  (e.data->>'failed') || ' of ' || ((e.data->>'passed')::bigint + (e.data->>'failed')::bigint)
                                      || ' ' || (e.data->>'framework') || ' tests failed',
                                  e.data->>'error', e.data->>'tool', e.kind), 200) AS effect_summary,
                    c.cause_event_id, c.cause_at, c.file_path, c.confidence, i.fixed_at,
                    (extract(epoch FROM i.fixed_at - i.effect_at) * 1000)::float8 AS time_to_fix_ms
             FROM induced_errors i
             JOIN event_correlations c
               ON c.session_id = i.session_id AND c.effect_event_id = i.effect_event_id
             LEFT JOIN events e ON e.id = i.effect_event_id
             WHERE i.session_id = $1 AND i.tenant_id = $2 AND c.confidence >= 0.5
             ORDER BY c.effect_event_id, c.confidence DESC, c.cause_at DESC
         ) d
         ORDER BY effect_at NULLS LAST, effect_event_id",
    )
    .bind(session)
    .bind(tenant)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_cursor_round_trip_and_garbage() {
        let c = SessionCursor {
            started_at: DateTime::from_timestamp_micros(1_763_726_400_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(SessionCursor::decode(&c.encode()), Some(c));
        assert_eq!(SessionCursor::decode("12_notauuid"), None);
        assert_eq!(SessionCursor::decode("nonsense"), None);
    }
}
