-- Achilles schema, version 1.
-- Raw tables (sessions, events) are written only by the raw sink; derived
-- tables only by the stream processor and the monitoring agent. Every table
-- derived from a session carries a session_id column.

CREATE TABLE sessions (
    id                   uuid PRIMARY KEY,
    tenant_id            text NOT NULL,
    agent_name           text,
    agent_model          text,
    source               text NOT NULL DEFAULT 'other'
                         CHECK (source IN ('cli', 'ide', 'sdk', 'other')),
    status               text NOT NULL DEFAULT 'active'
                         CHECK (status IN ('active', 'completed', 'failed', 'aborted')),
    started_at           timestamptz,
    ended_at             timestamptz,
    metadata             jsonb NOT NULL DEFAULT '{}'::jsonb,
    placeholder          boolean NOT NULL DEFAULT false,
    event_count          bigint NOT NULL DEFAULT 0,
    agent_activity_score double precision,
    error_density        double precision,
    error_count          bigint NOT NULL DEFAULT 0,
    duration_ms          bigint,
    input_tokens         bigint NOT NULL DEFAULT 0,
    output_tokens        bigint NOT NULL DEFAULT 0,
    cost_usd             double precision NOT NULL DEFAULT 0,
    first_event_at       timestamptz,
    last_event_at        timestamptz,
    summary_final        boolean NOT NULL DEFAULT false,
    created_at           timestamptz NOT NULL DEFAULT now(),
    updated_at           timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX sessions_tenant_started_idx ON sessions (tenant_id, started_at DESC);
CREATE INDEX sessions_active_idx ON sessions (tenant_id, status) WHERE status = 'active';

COMMENT ON TABLE sessions IS 'One run of one coding agent. Written by the raw sink from session_start/session_end records; summary columns are filled by the stream processor.';
COMMENT ON COLUMN sessions.id IS 'Session UUID (client-chosen or UUIDv7 from the API); the Kafka key of all its records.';
COMMENT ON COLUMN sessions.tenant_id IS 'Owning tenant, from the producer''s API key. Every read filters on it.';
COMMENT ON COLUMN sessions.agent_name IS 'Agent product, e.g. claude-code, cursor, aider. NULL while the session is a placeholder.';
COMMENT ON COLUMN sessions.agent_model IS 'Model the agent ran on, if reported.';
COMMENT ON COLUMN sessions.source IS 'Where the telemetry came from: cli, ide, sdk or other.';
COMMENT ON COLUMN sessions.status IS 'active until a session_end record sets completed, failed or aborted.';
COMMENT ON COLUMN sessions.started_at IS 'Start time by the producer''s clock.';
COMMENT ON COLUMN sessions.ended_at IS 'End time by the producer''s clock; NULL while active.';
COMMENT ON COLUMN sessions.metadata IS 'Free-form JSON object supplied at session start (repo, branch, task, ...).';
COMMENT ON COLUMN sessions.placeholder IS 'true when events arrived before (or without) a session_start; the start record fills the row in later.';
COMMENT ON COLUMN sessions.event_count IS 'Summary: number of distinct events in the session (see docs/metrics.md for every summary formula).';
COMMENT ON COLUMN sessions.agent_activity_score IS 'Summary: agent actions per active minute, weighted by kind (formula in docs/metrics.md). NULL until computed.';
COMMENT ON COLUMN sessions.error_density IS 'Summary: failing events / all events, 0..1. NULL until computed.';
COMMENT ON COLUMN sessions.error_count IS 'Summary: number of failing events (errors, failing commands, failing test runs, failed calls).';
COMMENT ON COLUMN sessions.duration_ms IS 'Summary: last minus first event time (or end minus start when ended), in milliseconds.';
COMMENT ON COLUMN sessions.input_tokens IS 'Summary: sum of llm_call input tokens.';
COMMENT ON COLUMN sessions.output_tokens IS 'Summary: sum of llm_call output tokens.';
COMMENT ON COLUMN sessions.cost_usd IS 'Summary: sum of llm_call cost in US dollars.';
COMMENT ON COLUMN sessions.first_event_at IS 'Summary: earliest event time seen.';
COMMENT ON COLUMN sessions.last_event_at IS 'Summary: latest event time seen.';
COMMENT ON COLUMN sessions.summary_final IS 'true once the processor has folded in the session end; the summary no longer changes except for late events.';
COMMENT ON COLUMN sessions.created_at IS 'When the row was first written (database clock).';
COMMENT ON COLUMN sessions.updated_at IS 'When the row was last changed (database clock).';

CREATE TABLE events (
    id           uuid PRIMARY KEY,
    event_hash   text NOT NULL UNIQUE CHECK (event_hash ~ '^[0-9a-f]{64}$'),
    tenant_id    text NOT NULL,
    session_id   uuid NOT NULL REFERENCES sessions (id),
    occurred_at  timestamptz NOT NULL,
    ingested_at  timestamptz NOT NULL,
    landed_at    timestamptz NOT NULL DEFAULT now(),
    kind         text NOT NULL CHECK (kind IN ('file_edit', 'command', 'test_run', 'error',
                                              'llm_call', 'tool_call', 'agent_action', 'user_message')),
    actor        text NOT NULL CHECK (actor IN ('agent', 'human', 'system')),
    parent_id    uuid,
    is_failure   boolean NOT NULL,
    file_path    text,
    data         jsonb NOT NULL,
    attributes   jsonb NOT NULL DEFAULT '{}'::jsonb
);
CREATE INDEX events_session_time_idx ON events (session_id, occurred_at, id);
CREATE INDEX events_tenant_time_idx ON events (tenant_id, occurred_at DESC);
CREATE INDEX events_session_failures_idx ON events (session_id, occurred_at) WHERE is_failure;

COMMENT ON TABLE events IS 'Raw, validated events: one row per distinct event hash. Written only by the raw sink; never updated.';
COMMENT ON COLUMN events.id IS 'Event UUID: client-chosen, or derived from the event hash when the client sent none.';
COMMENT ON COLUMN events.event_hash IS 'Canonical SHA-256 of the event''s semantic content (docs/event-hash.md); the dedup key.';
COMMENT ON COLUMN events.tenant_id IS 'Owning tenant, from the producer''s API key.';
COMMENT ON COLUMN events.session_id IS 'The session the event belongs to.';
COMMENT ON COLUMN events.occurred_at IS 'Event time by the producer''s clock, microsecond precision.';
COMMENT ON COLUMN events.ingested_at IS 'When the API (or intake gate) accepted the event; start of the freshness clock.';
COMMENT ON COLUMN events.landed_at IS 'When the raw sink committed the row (database clock).';
COMMENT ON COLUMN events.kind IS 'file_edit, command, test_run, error, llm_call, tool_call, agent_action or user_message.';
COMMENT ON COLUMN events.actor IS 'Who caused it: agent, human or system.';
COMMENT ON COLUMN events.parent_id IS 'Enclosing event (e.g. the orchestration step around an llm_call), if any.';
COMMENT ON COLUMN events.is_failure IS 'true for errors, commands with a non-zero exit code, test runs with failures, and failed or timed-out calls.';
COMMENT ON COLUMN events.file_path IS 'File the event names (file_edit path, error file), promoted from data for indexing and joins.';
COMMENT ON COLUMN events.data IS 'Kind-specific fields as JSON, e.g. {"command": ..., "exit_code": ...}; schemas in the OpenAPI document.';
COMMENT ON COLUMN events.attributes IS 'Free-form extra fields supplied by the producer.';

-- Derived tables. Their writers arrive with the stream processor and the
-- monitoring agent; the shapes are fixed here so analysts can rely on them.

CREATE TABLE error_clusters (
    tenant_id         text NOT NULL,
    id                text NOT NULL,
    template          text NOT NULL,
    first_seen        timestamptz NOT NULL,
    last_seen         timestamptz NOT NULL,
    occurrence_count  bigint NOT NULL DEFAULT 0,
    session_count     bigint NOT NULL DEFAULT 0,
    sample_messages   jsonb NOT NULL DEFAULT '[]'::jsonb,
    updated_at        timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (tenant_id, id)
);
CREATE INDEX error_clusters_recent_idx ON error_clusters (tenant_id, last_seen DESC);
COMMENT ON TABLE error_clusters IS 'Recurring error templates across a tenant''s sessions, built by the stream processor.';
COMMENT ON COLUMN error_clusters.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN error_clusters.id IS 'Stable cluster id: deterministic hash of the template, the same on every processor instance.';
COMMENT ON COLUMN error_clusters.template IS 'Normalised message with variable parts masked as <*> (numbers, paths, ids, ...).';
COMMENT ON COLUMN error_clusters.first_seen IS 'Earliest event time of an occurrence.';
COMMENT ON COLUMN error_clusters.last_seen IS 'Latest event time of an occurrence.';
COMMENT ON COLUMN error_clusters.occurrence_count IS 'Number of failing events that fell into the cluster.';
COMMENT ON COLUMN error_clusters.session_count IS 'Number of distinct sessions with at least one occurrence.';
COMMENT ON COLUMN error_clusters.sample_messages IS 'A few original messages (JSON array of strings), for humans.';
COMMENT ON COLUMN error_clusters.updated_at IS 'When the row was last changed.';

CREATE TABLE error_cluster_sessions (
    tenant_id        text NOT NULL,
    cluster_id       text NOT NULL,
    session_id       uuid NOT NULL REFERENCES sessions (id),
    occurrence_count bigint NOT NULL DEFAULT 0,
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, cluster_id, session_id),
    FOREIGN KEY (tenant_id, cluster_id) REFERENCES error_clusters (tenant_id, id)
);
CREATE INDEX error_cluster_sessions_session_idx ON error_cluster_sessions (session_id);
COMMENT ON TABLE error_cluster_sessions IS 'Which sessions each error cluster appears in, with per-session counts.';
COMMENT ON COLUMN error_cluster_sessions.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN error_cluster_sessions.cluster_id IS 'The cluster (error_clusters.id).';
COMMENT ON COLUMN error_cluster_sessions.session_id IS 'The session.';
COMMENT ON COLUMN error_cluster_sessions.occurrence_count IS 'Occurrences of the cluster in this session.';
COMMENT ON COLUMN error_cluster_sessions.first_seen IS 'First occurrence in this session (event time).';
COMMENT ON COLUMN error_cluster_sessions.last_seen IS 'Last occurrence in this session (event time).';

CREATE TABLE event_correlations (
    tenant_id        text NOT NULL,
    session_id       uuid NOT NULL REFERENCES sessions (id),
    cause_event_id   uuid NOT NULL,
    effect_event_id  uuid NOT NULL,
    match_kind       text NOT NULL CHECK (match_kind IN ('same_file', 'any_failure')),
    file_path        text,
    gap_ms           bigint NOT NULL CHECK (gap_ms >= 0),
    confidence       double precision NOT NULL CHECK (confidence BETWEEN 0 AND 1),
    fixed_by_event_id uuid,
    fixed_at         timestamptz,
    created_at       timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cause_event_id, effect_event_id)
);
CREATE INDEX event_correlations_session_idx ON event_correlations (session_id);
COMMENT ON TABLE event_correlations IS 'Induced-error candidates: an agent file_edit (cause) followed within the window by a failure (effect).';
COMMENT ON COLUMN event_correlations.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN event_correlations.session_id IS 'The session both events belong to.';
COMMENT ON COLUMN event_correlations.cause_event_id IS 'The file_edit event suspected of causing the failure.';
COMMENT ON COLUMN event_correlations.effect_event_id IS 'The failing event (error, failing command or failing test run).';
COMMENT ON COLUMN event_correlations.match_kind IS 'same_file when the failure names the edited file, any_failure otherwise.';
COMMENT ON COLUMN event_correlations.file_path IS 'The edited file.';
COMMENT ON COLUMN event_correlations.gap_ms IS 'Event-time gap from cause to effect, in milliseconds.';
COMMENT ON COLUMN event_correlations.confidence IS 'How likely the edit caused the failure, 0..1 (formula in docs/metrics.md).';
COMMENT ON COLUMN event_correlations.fixed_by_event_id IS 'A later success on the same file that closed this break/fix cycle, if any.';
COMMENT ON COLUMN event_correlations.fixed_at IS 'Event time of that fix.';
COMMENT ON COLUMN event_correlations.created_at IS 'When the row was written.';

CREATE TABLE agent_performance (
    tenant_id                   text NOT NULL,
    session_id                  uuid NOT NULL REFERENCES sessions (id),
    agent_name                  text NOT NULL,
    total_actions               bigint NOT NULL,
    induced_error_count         bigint NOT NULL,
    success_rate                double precision,
    break_fix_cycles            bigint NOT NULL DEFAULT 0,
    mean_time_to_fix_ms         double precision,
    total_tokens                bigint NOT NULL DEFAULT 0,
    cost_usd                    double precision NOT NULL DEFAULT 0,
    tokens_per_successful_action double precision,
    cost_per_successful_action  double precision,
    computed_at                 timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (session_id, agent_name)
);
COMMENT ON TABLE agent_performance IS 'Per-session, per-agent verdict written by the monitoring agent when a session ends.';
COMMENT ON COLUMN agent_performance.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN agent_performance.session_id IS 'The session judged.';
COMMENT ON COLUMN agent_performance.agent_name IS 'The agent judged.';
COMMENT ON COLUMN agent_performance.total_actions IS 'Events with actor = agent.';
COMMENT ON COLUMN agent_performance.induced_error_count IS 'Distinct failures correlated with an agent edit.';
COMMENT ON COLUMN agent_performance.success_rate IS 'Share of agent actions that did not induce a failure (formula in docs/metrics.md).';
COMMENT ON COLUMN agent_performance.break_fix_cycles IS 'Induced failures later fixed on the same file.';
COMMENT ON COLUMN agent_performance.mean_time_to_fix_ms IS 'Mean time from an induced error to its fix.';
COMMENT ON COLUMN agent_performance.total_tokens IS 'Input plus output tokens of the session''s llm_call events.';
COMMENT ON COLUMN agent_performance.cost_usd IS 'Sum of llm_call cost.';
COMMENT ON COLUMN agent_performance.tokens_per_successful_action IS 'total_tokens / successful actions.';
COMMENT ON COLUMN agent_performance.cost_per_successful_action IS 'cost_usd / successful actions.';
COMMENT ON COLUMN agent_performance.computed_at IS 'When the row was (re)computed.';

CREATE TABLE session_reports (
    session_id   uuid PRIMARY KEY REFERENCES sessions (id),
    tenant_id    text NOT NULL,
    report       jsonb NOT NULL,
    generated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE session_reports IS 'Human-readable JSON report per ended session (headline numbers, top clusters, worst files, insights).';
COMMENT ON COLUMN session_reports.session_id IS 'The session reported on.';
COMMENT ON COLUMN session_reports.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN session_reports.report IS 'The report document.';
COMMENT ON COLUMN session_reports.generated_at IS 'When it was generated.';

CREATE TABLE insights (
    id            uuid PRIMARY KEY,
    tenant_id     text NOT NULL,
    session_id    uuid NOT NULL REFERENCES sessions (id),
    type          text NOT NULL,
    severity      text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
    status        text NOT NULL DEFAULT 'open' CHECK (status IN ('open', 'resolved')),
    dedup_key     text NOT NULL,
    title         text NOT NULL,
    detail        text,
    evidence      jsonb NOT NULL DEFAULT '{}'::jsonb,
    raised_at     timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    resolved_at   timestamptz,
    UNIQUE (session_id, type, dedup_key)
);
CREATE INDEX insights_recent_idx ON insights (tenant_id, raised_at DESC);
COMMENT ON TABLE insights IS 'Structured warnings raised by the monitoring agent, deduplicated per session, type and key.';
COMMENT ON COLUMN insights.id IS 'Insight UUID.';
COMMENT ON COLUMN insights.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN insights.session_id IS 'The session the insight is about.';
COMMENT ON COLUMN insights.type IS 'high_error_density, agent_churn, command_loop, stalled_session, runaway_cost, ...';
COMMENT ON COLUMN insights.severity IS 'info, warning or critical.';
COMMENT ON COLUMN insights.status IS 'open while the condition holds, resolved once it cleared.';
COMMENT ON COLUMN insights.dedup_key IS 'What makes two raisings the same insight (e.g. the file for churn).';
COMMENT ON COLUMN insights.title IS 'One-line summary for humans.';
COMMENT ON COLUMN insights.detail IS 'Longer explanation.';
COMMENT ON COLUMN insights.evidence IS 'Event ids and counts supporting the insight.';
COMMENT ON COLUMN insights.raised_at IS 'When it was first raised.';
COMMENT ON COLUMN insights.last_seen_at IS 'When the condition was last observed.';
COMMENT ON COLUMN insights.resolved_at IS 'When it was resolved, if it was.';

CREATE TABLE consumer_offsets (
    consumer_group text NOT NULL,
    topic          text NOT NULL,
    partition      integer NOT NULL,
    next_offset    bigint NOT NULL,
    updated_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer_group, topic, partition)
);
COMMENT ON TABLE consumer_offsets IS 'Kafka positions committed in the same transaction as the rows derived from them (exactly-once effect for stateful consumers).';
COMMENT ON COLUMN consumer_offsets.consumer_group IS 'Kafka consumer group.';
COMMENT ON COLUMN consumer_offsets.topic IS 'Physical topic name.';
COMMENT ON COLUMN consumer_offsets.partition IS 'Partition number.';
COMMENT ON COLUMN consumer_offsets.next_offset IS 'Offset of the next record to process.';
COMMENT ON COLUMN consumer_offsets.updated_at IS 'When it was last advanced.';
