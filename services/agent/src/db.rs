//! The monitoring agent's SQL: insight upserts (light mode, in the
//! runtime's batch transaction, with the positions), and deep mode's
//! inputs and idempotent result upserts.

use chrono::{DateTime, Utc};
use serde_json::Value;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// The final state of one insight after a batch.
#[derive(Debug, Clone, PartialEq)]
pub struct InsightWrite {
    pub id: Uuid,
    pub tenant: String,
    pub session_id: Uuid,
    pub insight_type: String,
    pub dedup_key: String,
    pub severity: String,
    pub status: String,
    pub title: String,
    pub detail: String,
    pub evidence: Value,
    pub raised_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
}

/// Writes insights; one row per (session, type, dedup key), whatever
/// happened to it before.
pub async fn upsert_insights(
    conn: &mut PgConnection,
    rows: &[InsightWrite],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<&InsightWrite> = rows.iter().collect();
    // A stable order avoids deadlocks between instances.
    rows.sort_by_key(|r| r.id);
    let s = |f: fn(&InsightWrite) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<&str>>();
    let ids: Vec<Uuid> = rows.iter().map(|r| r.id).collect();
    let sessions: Vec<Uuid> = rows.iter().map(|r| r.session_id).collect();
    let evidence: Vec<&Value> = rows.iter().map(|r| &r.evidence).collect();
    let raised: Vec<DateTime<Utc>> = rows.iter().map(|r| r.raised_at).collect();
    let seen: Vec<DateTime<Utc>> = rows.iter().map(|r| r.last_seen_at).collect();
    let resolved: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.resolved_at).collect();
    sqlx::query(
        "INSERT INTO insights (id, tenant_id, session_id, type, severity, status, dedup_key, title,
                               detail, evidence, raised_at, last_seen_at, resolved_at)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::uuid[], $4::text[], $5::text[], $6::text[],
                              $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::timestamptz[],
                              $12::timestamptz[], $13::timestamptz[])
         ON CONFLICT (session_id, type, dedup_key) DO UPDATE SET
             severity = EXCLUDED.severity, status = EXCLUDED.status, title = EXCLUDED.title,
             detail = EXCLUDED.detail, evidence = EXCLUDED.evidence,
             raised_at = EXCLUDED.raised_at, last_seen_at = EXCLUDED.last_seen_at,
             resolved_at = EXCLUDED.resolved_at",
    )
    .bind(&ids)
    .bind(s(|r| &r.tenant))
    .bind(&sessions)
    .bind(s(|r| &r.insight_type))
    .bind(s(|r| &r.severity))
    .bind(s(|r| &r.status))
    .bind(s(|r| &r.dedup_key))
    .bind(s(|r| &r.title))
    .bind(s(|r| &r.detail))
    .bind(&evidence)
    .bind(&raised)
    .bind(&seen)
    .bind(&resolved)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// How far the raw sink and light mode have got with one session:
/// (events landed, events light mode applied).
pub async fn session_progress(pool: &PgPool, session: Uuid) -> Result<(i64, i64), sqlx::Error> {
    sqlx::query_as(
        "SELECT (SELECT count(*) FROM events WHERE session_id = $1),
                coalesce((SELECT applied FROM consumer_state
                          WHERE consumer = 'agent' AND session_id = $1), 0)",
    )
    .bind(session)
    .fetch_one(pool)
    .await
}

/// Counts deep mode reads from the events of one session.
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct ActionStats {
    pub events: i64,
    pub failures: i64,
    /// Events with actor = agent whose kind is an action.
    pub agent_actions: i64,
    /// Those of them that failed themselves.
    pub failed_agent_actions: i64,
    /// Input plus output tokens of llm_call events.
    pub tokens: i64,
    pub cost_usd: f64,
}

pub async fn action_stats(pool: &PgPool, session: Uuid) -> Result<ActionStats, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(*) AS events,
                count(*) FILTER (WHERE is_failure) AS failures,
                count(*) FILTER (WHERE actor = 'agent' AND kind IN
                    ('file_edit', 'command', 'test_run', 'tool_call', 'llm_call', 'agent_action')) AS agent_actions,
                count(*) FILTER (WHERE actor = 'agent' AND is_failure AND kind IN
                    ('file_edit', 'command', 'test_run', 'tool_call', 'llm_call', 'agent_action')) AS failed_agent_actions,
                -- numeric sum, saturated to bigint: a long session of calls at
                -- the validated maximum would overflow it.
                least(coalesce(sum(coalesce((data->>'input_tokens')::numeric, 0) + coalesce((data->>'output_tokens')::numeric, 0))
                    FILTER (WHERE kind = 'llm_call'), 0), 9223372036854775807)::bigint AS tokens,
                -- numeric sums exactly, whatever the row order: re-runs agree.
                coalesce(sum((data->>'cost_usd')::numeric) FILTER (WHERE kind = 'llm_call'), 0)::float8 AS cost_usd
         FROM events WHERE session_id = $1",
    )
    .bind(session)
    .fetch_one(pool)
    .await
}

/// Per file: (path, agent edits, failing events naming it).
pub async fn file_activity(
    pool: &PgPool,
    session: Uuid,
) -> Result<Vec<(String, i64, i64)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT file_path,
                count(*) FILTER (WHERE kind = 'file_edit' AND actor = 'agent'),
                count(*) FILTER (WHERE is_failure)
         FROM events WHERE session_id = $1 AND file_path IS NOT NULL
         GROUP BY file_path ORDER BY file_path",
    )
    .bind(session)
    .fetch_all(pool)
    .await
}

/// One agent's verdict, as deep mode computed it.
#[derive(Debug, Clone, PartialEq)]
pub struct PerformanceWrite {
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
}

/// Replaces the session's verdicts with `rows`. A row whose values did not
/// change is left untouched (its `computed_at` too), so a re-delivered
/// session-ended record changes nothing.
pub async fn replace_performance(
    conn: &mut PgConnection,
    tenant: &str,
    session: Uuid,
    rows: &[PerformanceWrite],
) -> Result<(), sqlx::Error> {
    let names: Vec<&str> = rows.iter().map(|r| r.agent_name.as_str()).collect();
    // An agent renamed since the last run (a placeholder filled in) must
    // not leave its old row behind.
    sqlx::query(
        "DELETE FROM agent_performance WHERE session_id = $1 AND NOT (agent_name = ANY($2))",
    )
    .bind(session)
    .bind(&names)
    .execute(&mut *conn)
    .await?;
    for r in rows {
        sqlx::query(
            "INSERT INTO agent_performance (tenant_id, session_id, agent_name, total_actions,
                 induced_error_count, success_rate, break_fix_cycles, mean_time_to_fix_ms,
                 total_tokens, cost_usd, tokens_per_successful_action, cost_per_successful_action)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
             ON CONFLICT (session_id, agent_name) DO UPDATE SET
                 tenant_id = EXCLUDED.tenant_id, total_actions = EXCLUDED.total_actions,
                 induced_error_count = EXCLUDED.induced_error_count,
                 success_rate = EXCLUDED.success_rate, break_fix_cycles = EXCLUDED.break_fix_cycles,
                 mean_time_to_fix_ms = EXCLUDED.mean_time_to_fix_ms,
                 total_tokens = EXCLUDED.total_tokens, cost_usd = EXCLUDED.cost_usd,
                 tokens_per_successful_action = EXCLUDED.tokens_per_successful_action,
                 cost_per_successful_action = EXCLUDED.cost_per_successful_action,
                 computed_at = now()
             WHERE (agent_performance.tenant_id, agent_performance.total_actions,
                    agent_performance.induced_error_count, agent_performance.success_rate,
                    agent_performance.break_fix_cycles, agent_performance.mean_time_to_fix_ms,
                    agent_performance.total_tokens, agent_performance.cost_usd,
                    agent_performance.tokens_per_successful_action,
                    agent_performance.cost_per_successful_action)
                IS DISTINCT FROM
                   (EXCLUDED.tenant_id, EXCLUDED.total_actions, EXCLUDED.induced_error_count,
                    EXCLUDED.success_rate, EXCLUDED.break_fix_cycles, EXCLUDED.mean_time_to_fix_ms,
                    EXCLUDED.total_tokens, EXCLUDED.cost_usd,
                    EXCLUDED.tokens_per_successful_action, EXCLUDED.cost_per_successful_action)",
        )
        .bind(tenant)
        .bind(session)
        .bind(&r.agent_name)
        .bind(r.total_actions)
        .bind(r.induced_error_count)
        .bind(r.success_rate)
        .bind(r.break_fix_cycles)
        .bind(r.mean_time_to_fix_ms)
        .bind(r.total_tokens)
        .bind(r.cost_usd)
        .bind(r.tokens_per_successful_action)
        .bind(r.cost_per_successful_action)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Stores the session's report; an identical report leaves the row (and
/// its `generated_at`) untouched.
pub async fn upsert_report(
    conn: &mut PgConnection,
    tenant: &str,
    session: Uuid,
    report: &Value,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO session_reports (session_id, tenant_id, report) VALUES ($1, $2, $3)
         ON CONFLICT (session_id) DO UPDATE SET report = EXCLUDED.report,
             tenant_id = EXCLUDED.tenant_id, generated_at = now()
         WHERE (session_reports.report, session_reports.tenant_id)
               IS DISTINCT FROM (EXCLUDED.report, EXCLUDED.tenant_id)",
    )
    .bind(session)
    .bind(tenant)
    .bind(report)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
