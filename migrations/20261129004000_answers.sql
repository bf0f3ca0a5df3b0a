-- Cross-session answers: which agents and models do well, which errors keep
-- coming back. The API's GET /v1/sessions, /v1/clusters and
-- /v1/agents/leaderboard read exactly these views and functions, so an
-- analyst's SQL and the API give the same numbers.
--
-- Induced errors count only correlations with confidence >= 0.5: a failure
-- that names the file the agent edited shortly before (docs/processing.md).
-- any_failure pairs (confidence at most 0.3) and weak, late same-file pairs
-- are candidates, not verdicts.

CREATE INDEX sessions_tenant_recent_idx
    ON sessions (tenant_id, (coalesce(started_at, created_at)) DESC, id DESC);

CREATE VIEW induced_errors AS
SELECT c.tenant_id,
       c.session_id,
       c.effect_event_id,
       min(c.effect_at)  AS effect_at,
       max(c.confidence) AS confidence,
       min(c.fixed_at)   AS fixed_at
FROM event_correlations c
WHERE c.confidence >= 0.5
GROUP BY c.tenant_id, c.session_id, c.effect_event_id;
COMMENT ON VIEW induced_errors IS 'One row per failure attributed to an agent edit: the failure (effect) of at least one correlation with confidence >= 0.5.';
COMMENT ON COLUMN induced_errors.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN induced_errors.session_id IS 'The session.';
COMMENT ON COLUMN induced_errors.effect_event_id IS 'The failing event.';
COMMENT ON COLUMN induced_errors.effect_at IS 'Event time of the failure.';
COMMENT ON COLUMN induced_errors.confidence IS 'Highest confidence among its correlations (>= 0.5).';
COMMENT ON COLUMN induced_errors.fixed_at IS 'Earliest fix of one of its correlations (break/fix cycle closed); NULL while unfixed.';

CREATE VIEW session_overview AS
SELECT s.tenant_id,
       s.id AS session_id,
       s.agent_name,
       s.agent_model,
       s.source,
       s.status,
       coalesce(s.started_at, s.created_at) AS started_at,
       s.ended_at,
       s.event_count,
       s.error_count,
       s.error_density,
       s.duration_ms,
       s.input_tokens,
       s.output_tokens,
       s.cost_usd,
       p.total_actions,
       p.success_rate,
       (SELECT count(*) FROM induced_errors i
         WHERE i.session_id = s.id AND i.tenant_id = s.tenant_id) AS induced_errors
FROM sessions s
LEFT JOIN LATERAL (
    SELECT sum(total_actions)::bigint AS total_actions,
           sum(success_rate * total_actions) / nullif(sum(total_actions), 0) AS success_rate
    FROM agent_performance ap
    WHERE ap.session_id = s.id AND ap.tenant_id = s.tenant_id
) p ON true;
COMMENT ON VIEW session_overview IS 'Every session with its summary and, once judged, its verdict: what GET /v1/sessions lists.';
COMMENT ON COLUMN session_overview.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN session_overview.session_id IS 'The session.';
COMMENT ON COLUMN session_overview.agent_name IS 'Agent product (claude-code, ...); NULL for a placeholder.';
COMMENT ON COLUMN session_overview.agent_model IS 'Model the agent ran on, if reported.';
COMMENT ON COLUMN session_overview.source IS 'cli, ide, sdk or other.';
COMMENT ON COLUMN session_overview.status IS 'active, completed, failed or aborted.';
COMMENT ON COLUMN session_overview.started_at IS 'Start time (the row''s creation time if no start was ever reported).';
COMMENT ON COLUMN session_overview.ended_at IS 'End time; NULL while active.';
COMMENT ON COLUMN session_overview.event_count IS 'Distinct events.';
COMMENT ON COLUMN session_overview.error_count IS 'Failing events.';
COMMENT ON COLUMN session_overview.error_density IS 'error_count / event_count.';
COMMENT ON COLUMN session_overview.duration_ms IS 'Session duration in milliseconds.';
COMMENT ON COLUMN session_overview.input_tokens IS 'Sum of llm_call input tokens.';
COMMENT ON COLUMN session_overview.output_tokens IS 'Sum of llm_call output tokens.';
COMMENT ON COLUMN session_overview.cost_usd IS 'Sum of llm_call cost in US dollars.';
COMMENT ON COLUMN session_overview.total_actions IS 'Agent actions (verdict); NULL until the session was judged.';
COMMENT ON COLUMN session_overview.success_rate IS 'Share of agent actions that neither failed nor induced an error (verdict, docs/agent.md); NULL until judged.';
COMMENT ON COLUMN session_overview.induced_errors IS 'Failures attributed to agent edits with confidence >= 0.5 (induced_errors).';

CREATE VIEW agent_session_scores AS
SELECT p.tenant_id,
       p.session_id,
       p.agent_name,
       s.agent_model,
       s.status,
       coalesce(s.started_at, s.created_at) AS started_at,
       s.ended_at,
       p.total_actions,
       round(coalesce(p.success_rate, 0) * p.total_actions)::bigint AS successful_actions,
       coalesce(i.induced_errors, 0) AS induced_errors,
       coalesce(i.fixed, 0) AS fixed_induced_errors,
       coalesce(i.fix_ms_sum, 0) AS time_to_fix_ms_sum,
       p.total_tokens,
       p.cost_usd
FROM agent_performance p
JOIN sessions s ON s.id = p.session_id AND s.tenant_id = p.tenant_id
LEFT JOIN LATERAL (
    SELECT count(*) AS induced_errors,
           count(ie.fixed_at) AS fixed,
           sum(extract(epoch FROM ie.fixed_at - ie.effect_at) * 1000)::float8 AS fix_ms_sum
    FROM induced_errors ie
    WHERE ie.session_id = p.session_id AND ie.tenant_id = p.tenant_id
) i ON true;
COMMENT ON VIEW agent_session_scores IS 'One row per judged session and agent: the additive quantities the leaderboard sums (so any time window or grouping can be computed from it).';
COMMENT ON COLUMN agent_session_scores.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN agent_session_scores.session_id IS 'The judged session.';
COMMENT ON COLUMN agent_session_scores.agent_name IS 'The agent judged.';
COMMENT ON COLUMN agent_session_scores.agent_model IS 'The session''s model, if reported.';
COMMENT ON COLUMN agent_session_scores.status IS 'The session''s final status.';
COMMENT ON COLUMN agent_session_scores.started_at IS 'Session start; the leaderboard''s time windows filter on it.';
COMMENT ON COLUMN agent_session_scores.ended_at IS 'Session end.';
COMMENT ON COLUMN agent_session_scores.total_actions IS 'Agent actions (agent_performance.total_actions).';
COMMENT ON COLUMN agent_session_scores.successful_actions IS 'round(success_rate * total_actions).';
COMMENT ON COLUMN agent_session_scores.induced_errors IS 'Failures attributed to the session''s edits with confidence >= 0.5.';
COMMENT ON COLUMN agent_session_scores.fixed_induced_errors IS 'Those of them fixed later (break/fix cycle closed).';
COMMENT ON COLUMN agent_session_scores.time_to_fix_ms_sum IS 'Sum over fixed induced errors of (fix time - failure time), in milliseconds.';
COMMENT ON COLUMN agent_session_scores.total_tokens IS 'Input plus output tokens of the session''s llm_call events.';
COMMENT ON COLUMN agent_session_scores.cost_usd IS 'Cost of the session''s llm_call events.';

-- The leaderboard of any time window [since, until) of session starts. A
-- plain SQL function, so the planner inlines it and a tenant filter on
-- the result reaches the underlying tables.
CREATE FUNCTION agent_leaderboard_between(since timestamptz, until timestamptz)
RETURNS TABLE (
    tenant_id text,
    agent_name text,
    agent_model text,
    sessions bigint,
    actions bigint,
    success_rate float8,
    induced_errors bigint,
    induced_errors_per_100_actions float8,
    fixed_induced_errors bigint,
    mean_time_to_fix_ms float8,
    tokens bigint,
    cost_usd float8,
    tokens_per_successful_action float8,
    cost_per_successful_action float8
)
LANGUAGE sql STABLE AS $$
    SELECT tenant_id, agent_name, coalesce(agent_model, 'unknown'),
           count(*),
           sum(total_actions)::bigint,
           sum(successful_actions)::float8 / nullif(sum(total_actions), 0),
           sum(induced_errors)::bigint,
           100.0 * sum(induced_errors) / nullif(sum(total_actions), 0),
           sum(fixed_induced_errors)::bigint,
           sum(time_to_fix_ms_sum) / nullif(sum(fixed_induced_errors), 0),
           sum(total_tokens)::bigint,
           sum(cost_usd)::float8,
           sum(total_tokens)::float8 / nullif(sum(successful_actions), 0),
           sum(cost_usd)::float8 / nullif(sum(successful_actions), 0)
    FROM agent_session_scores
    WHERE started_at >= since AND started_at < until
    GROUP BY tenant_id, agent_name, coalesce(agent_model, 'unknown')
$$;
COMMENT ON FUNCTION agent_leaderboard_between(timestamptz, timestamptz) IS 'Per tenant, agent and model, over judged sessions started in [since, until): sessions, success rate (successful / all actions), induced errors per 100 actions (confidence >= 0.5), mean time to fix, tokens and cost per successful action. GET /v1/agents/leaderboard.';

CREATE VIEW agent_leaderboard AS
SELECT * FROM agent_leaderboard_between('-infinity', 'infinity');
COMMENT ON VIEW agent_leaderboard IS 'agent_leaderboard_between over all time: per tenant, agent and model.';
COMMENT ON COLUMN agent_leaderboard.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN agent_leaderboard.agent_name IS 'The agent.';
COMMENT ON COLUMN agent_leaderboard.agent_model IS 'The model (unknown when sessions did not report one).';
COMMENT ON COLUMN agent_leaderboard.sessions IS 'Judged sessions.';
COMMENT ON COLUMN agent_leaderboard.actions IS 'Agent actions in them.';
COMMENT ON COLUMN agent_leaderboard.success_rate IS 'Successful actions / actions.';
COMMENT ON COLUMN agent_leaderboard.induced_errors IS 'Failures attributed to agent edits with confidence >= 0.5.';
COMMENT ON COLUMN agent_leaderboard.induced_errors_per_100_actions IS '100 * induced_errors / actions.';
COMMENT ON COLUMN agent_leaderboard.fixed_induced_errors IS 'Induced errors later fixed.';
COMMENT ON COLUMN agent_leaderboard.mean_time_to_fix_ms IS 'Mean time from an induced error to its fix, in milliseconds.';
COMMENT ON COLUMN agent_leaderboard.tokens IS 'Input plus output tokens.';
COMMENT ON COLUMN agent_leaderboard.cost_usd IS 'LLM cost in US dollars.';
COMMENT ON COLUMN agent_leaderboard.tokens_per_successful_action IS 'tokens / successful actions.';
COMMENT ON COLUMN agent_leaderboard.cost_per_successful_action IS 'cost_usd / successful actions.';

-- Recurring clusters of a window [since, until), compared with the window of
-- the same length before it. Occurrences are kept per (cluster, session),
-- so a session counts in a window when its occurrences of the cluster
-- overlap it, with all of its occurrences.
CREATE FUNCTION recurring_clusters_between(since timestamptz, until timestamptz)
RETURNS TABLE (
    tenant_id text,
    cluster_id text,
    template text,
    sessions bigint,
    occurrences bigint,
    previous_sessions bigint,
    previous_occurrences bigint,
    trend text,
    first_seen timestamptz,
    last_seen timestamptz,
    total_sessions bigint,
    total_occurrences bigint,
    sample_messages jsonb
)
LANGUAGE sql STABLE AS $$
    WITH w AS (
        SELECT cs.tenant_id, cs.cluster_id,
               count(*) FILTER (WHERE cs.first_seen < until AND cs.last_seen >= since) AS sessions,
               coalesce(sum(cs.occurrence_count)
                   FILTER (WHERE cs.first_seen < until AND cs.last_seen >= since), 0) AS occurrences,
               count(*) FILTER (WHERE cs.first_seen < since
                                  AND cs.last_seen >= since - (until - since)) AS previous_sessions,
               coalesce(sum(cs.occurrence_count)
                   FILTER (WHERE cs.first_seen < since
                             AND cs.last_seen >= since - (until - since)), 0) AS previous_occurrences
        FROM error_cluster_sessions cs
        WHERE cs.last_seen >= since - (until - since) AND cs.first_seen < until
        GROUP BY cs.tenant_id, cs.cluster_id
    )
    SELECT w.tenant_id, w.cluster_id, c.template, w.sessions, w.occurrences::bigint,
           w.previous_sessions, w.previous_occurrences::bigint,
           CASE
               WHEN c.first_seen >= since THEN 'new'
               WHEN w.sessions > 1.25 * w.previous_sessions THEN 'rising'
               WHEN w.sessions < 0.8 * w.previous_sessions THEN 'falling'
               ELSE 'steady'
           END,
           c.first_seen, c.last_seen, c.session_count, c.occurrence_count, c.sample_messages
    FROM w
    JOIN error_clusters c ON c.tenant_id = w.tenant_id AND c.id = w.cluster_id
    WHERE w.sessions > 0
$$;
COMMENT ON FUNCTION recurring_clusters_between(timestamptz, timestamptz) IS 'Error clusters with occurrences in [since, until): sessions and occurrences there and in the window of the same length before, and the trend (new: first seen in the window; rising: over 1.25x the sessions of the previous window; falling: under 0.8x; else steady). GET /v1/clusters.';

CREATE VIEW recurring_clusters_7d AS
SELECT * FROM recurring_clusters_between(now() - interval '7 days', now());
COMMENT ON VIEW recurring_clusters_7d IS 'recurring_clusters_between over the last 7 days against the 7 days before: which errors keep coming back, and whether more often.';
COMMENT ON COLUMN recurring_clusters_7d.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN recurring_clusters_7d.cluster_id IS 'The cluster (error_clusters.id).';
COMMENT ON COLUMN recurring_clusters_7d.template IS 'The clusters pattern, variable parts masked as <*>.';
COMMENT ON COLUMN recurring_clusters_7d.sessions IS 'Sessions with occurrences in the window.';
COMMENT ON COLUMN recurring_clusters_7d.occurrences IS 'Occurrences in those sessions.';
COMMENT ON COLUMN recurring_clusters_7d.previous_sessions IS 'Sessions with occurrences in the window before.';
COMMENT ON COLUMN recurring_clusters_7d.previous_occurrences IS 'Occurrences in those sessions.';
COMMENT ON COLUMN recurring_clusters_7d.trend IS 'new, rising, falling or steady (see recurring_clusters_between).';
COMMENT ON COLUMN recurring_clusters_7d.first_seen IS 'First occurrence ever.';
COMMENT ON COLUMN recurring_clusters_7d.last_seen IS 'Latest occurrence.';
COMMENT ON COLUMN recurring_clusters_7d.total_sessions IS 'Sessions with occurrences, all time.';
COMMENT ON COLUMN recurring_clusters_7d.total_occurrences IS 'Occurrences, all time.';
COMMENT ON COLUMN recurring_clusters_7d.sample_messages IS 'A few original messages.';
