-- Stream processor state. Everything the processor writes, including these
-- tables and its Kafka offsets (consumer_offsets), commits in one
-- transaction per batch: that is its exactly-once guarantee.

CREATE TABLE processor_sessions (
    session_id  uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    version     bigint NOT NULL,
    state       jsonb NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE processor_sessions IS 'Per-session state of the stream processor (recent edits, failures, open correlations, summary counters), so any instance can take over a session after a rebalance or crash.';
COMMENT ON COLUMN processor_sessions.session_id IS 'The session.';
COMMENT ON COLUMN processor_sessions.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN processor_sessions.version IS 'Incremented on every write; an instance whose cached copy has another version reloads it.';
COMMENT ON COLUMN processor_sessions.state IS 'Serialized state (JSON); internal to the processor, not an analyst interface.';
COMMENT ON COLUMN processor_sessions.updated_at IS 'When it was last written.';

CREATE TABLE processor_seen (
    event_hash  text PRIMARY KEY,
    session_id  uuid NOT NULL,
    seen_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX processor_seen_session_idx ON processor_seen (session_id);
COMMENT ON TABLE processor_seen IS 'Event hashes the stream processor has applied: a record published twice (a retried request) is applied once.';
COMMENT ON COLUMN processor_seen.event_hash IS 'Canonical event hash (events.event_hash).';
COMMENT ON COLUMN processor_seen.session_id IS 'The event''s session.';
COMMENT ON COLUMN processor_seen.seen_at IS 'When it was applied.';

CREATE TABLE outbox (
    id          bigserial PRIMARY KEY,
    topic       text NOT NULL,
    key         text NOT NULL,
    payload     bytea NOT NULL,
    headers     jsonb NOT NULL DEFAULT '{}'::jsonb,
    created_at  timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE outbox IS 'Transactional outbox: Kafka records (session-ended) written with the rows they announce and published after commit, so they are never lost and never announce uncommitted rows.';
COMMENT ON COLUMN outbox.id IS 'Publication order.';
COMMENT ON COLUMN outbox.topic IS 'Physical topic name.';
COMMENT ON COLUMN outbox.key IS 'Record key.';
COMMENT ON COLUMN outbox.payload IS 'Record value (Avro single-object encoding).';
COMMENT ON COLUMN outbox.headers IS 'Record headers as a JSON object of strings (dead-letter reasons, content type).';
COMMENT ON COLUMN outbox.created_at IS 'When the owning transaction wrote it.';

-- Derived rows may be written before the raw sink lands the session's
-- start; both consumers create placeholder session rows, so the foreign keys
-- below stay valid in either order.
ALTER TABLE event_correlations ADD COLUMN cause_at timestamptz;
ALTER TABLE event_correlations ADD COLUMN effect_at timestamptz;
COMMENT ON COLUMN event_correlations.cause_at IS 'Event time of the cause (the file_edit).';
COMMENT ON COLUMN event_correlations.effect_at IS 'Event time of the effect (the failure).';
