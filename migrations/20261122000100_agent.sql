-- Monitoring agent (achilles-agent). Light mode folds the events topic into
-- per-session rolling state and commits that state, the insights it decides
-- and its Kafka positions (consumer_offsets) in one transaction per batch,
-- like the stream processor. Deep mode upserts agent_performance and
-- session_reports, which is idempotent by itself. Formulas: docs/agent.md.

CREATE TABLE agent_sessions (
    session_id   uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    version      bigint NOT NULL,
    event_count  bigint NOT NULL DEFAULT 0,
    state        jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE agent_sessions IS 'Per-session rolling state of the monitoring agent''s light mode (recent events, per-check state, open insights), so any instance can continue a session after a rebalance or crash.';
COMMENT ON COLUMN agent_sessions.session_id IS 'The session.';
COMMENT ON COLUMN agent_sessions.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN agent_sessions.version IS 'Incremented on every write.';
COMMENT ON COLUMN agent_sessions.event_count IS 'Distinct events light mode has applied; deep mode waits for it to reach the session''s event count before judging, so the report lists every insight.';
COMMENT ON COLUMN agent_sessions.state IS 'Serialized state (JSON); internal to the agent, not an analyst interface.';
COMMENT ON COLUMN agent_sessions.updated_at IS 'When it was last written.';

CREATE TABLE agent_seen (
    event_hash  text PRIMARY KEY,
    session_id  uuid NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX agent_seen_session_idx ON agent_seen (session_id);
COMMENT ON TABLE agent_seen IS 'Event hashes light mode has applied: an event published twice (a retried request) is counted once.';
COMMENT ON COLUMN agent_seen.event_hash IS 'Canonical event hash (events.event_hash).';
COMMENT ON COLUMN agent_seen.session_id IS 'The event''s session.';
COMMENT ON COLUMN agent_seen.seen_at IS 'When it was applied.';

-- Session-scoped reads of the API.
CREATE INDEX insights_session_idx ON insights (session_id, raised_at DESC);

-- The precise definitions, now that the agent writes these tables.
COMMENT ON COLUMN agent_performance.total_actions IS 'Agent actions: events with actor = agent of kind file_edit, command, test_run, tool_call, llm_call or agent_action (errors and user messages are not actions).';
COMMENT ON COLUMN agent_performance.induced_error_count IS 'Distinct failing events with at least one same_file correlation (the failure names a file the agent edited shortly before); any_failure correlations are not counted.';
COMMENT ON COLUMN agent_performance.success_rate IS 'successful actions / total_actions, where an action is unsuccessful if it failed itself (failing command, test run, call or step) or is the cause of an induced error. NULL without actions.';
COMMENT ON COLUMN agent_performance.break_fix_cycles IS 'Induced errors that were later fixed (a same_file correlation with fixed_by_event_id set).';
COMMENT ON COLUMN agent_performance.mean_time_to_fix_ms IS 'Mean over fixed induced errors of (earliest fixed_at - effect time), in milliseconds. NULL when nothing was fixed.';
COMMENT ON COLUMN agent_performance.total_tokens IS 'Input plus output tokens of the session''s llm_call events.';
COMMENT ON COLUMN agent_performance.tokens_per_successful_action IS 'total_tokens / successful actions; NULL when there were none.';
COMMENT ON COLUMN agent_performance.cost_per_successful_action IS 'cost_usd / successful actions; NULL when there were none.';
COMMENT ON COLUMN agent_performance.computed_at IS 'When the row last changed; a re-delivered session-ended record that computes the same values leaves it untouched.';
COMMENT ON COLUMN session_reports.generated_at IS 'When the report last changed; regenerating an identical report leaves it untouched.';
COMMENT ON COLUMN insights.raised_at IS 'Event time at which it was (last) raised; raising it again after it was resolved moves it.';
COMMENT ON COLUMN insights.last_seen_at IS 'Event time at which the condition was last observed.';
COMMENT ON COLUMN insights.resolved_at IS 'Event time at which the condition cleared; NULL while open.';
