-- One exactly-once consumer step for every consumer (shared/runtime).
--
-- Every consumer that writes Postgres (landing, the stream processor, the
-- agent's light mode) commits its effects, its per-session state and its
-- Kafka positions in one transaction per batch. That alone gives
-- exactly-once application, so the per-event "seen" tables go: a record
-- published twice is caught by the consumer's in-memory memory of the
-- session's recent hashes (checkpointed with the state) and, for landing,
-- by the events table's unique key.

-- 1. One state table for all consumers, replacing processor_sessions and
--    agent_sessions (rows carried over, so an upgrade continues sessions).
CREATE TABLE consumer_state (
    consumer     text NOT NULL,
    session_id   uuid NOT NULL,
    tenant_id    text NOT NULL,
    applied      bigint NOT NULL DEFAULT 0,
    recent       bytea NOT NULL DEFAULT ''::bytea,
    state        jsonb NOT NULL,
    updated_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (consumer, session_id)
) WITH (fillfactor = 70);
COMMENT ON TABLE consumer_state IS 'Per-session state of each exactly-once consumer (processor: edits, failures, open correlations, summary counters; agent: check states and open insights), checkpointed in the same transaction as the consumer''s positions. Internal, not an analyst interface.';
COMMENT ON COLUMN consumer_state.consumer IS 'The consumer: processor or agent.';
COMMENT ON COLUMN consumer_state.session_id IS 'The session.';
COMMENT ON COLUMN consumer_state.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN consumer_state.applied IS 'Distinct events this consumer has applied for the session; deep mode waits for the agent''s count to reach the session''s event count.';
COMMENT ON COLUMN consumer_state.recent IS 'Hashes (first 8 bytes each) of the session''s most recent events, so a record published twice is applied once.';
COMMENT ON COLUMN consumer_state.state IS 'Serialized consumer state (JSON).';
COMMENT ON COLUMN consumer_state.updated_at IS 'When it was last written.';

INSERT INTO consumer_state (consumer, session_id, tenant_id, applied, state, updated_at)
SELECT 'processor', session_id, tenant_id,
       coalesce((state -> 'counters' ->> 'events')::bigint, 0), state, updated_at
FROM processor_sessions;
INSERT INTO consumer_state (consumer, session_id, tenant_id, applied, state, updated_at)
SELECT 'agent', session_id, tenant_id, event_count, state, updated_at
FROM agent_sessions;

DROP TABLE processor_sessions;
DROP TABLE agent_sessions;
DROP TABLE processor_seen;
DROP TABLE agent_seen;

-- 2. Positions that cannot go stale: the checksum of the last record applied
--    lets a consumer tell, at assignment, that the topic it reads is no
--    longer the one its position was taken on (recreated, truncated, a
--    broker that forgot its data).
ALTER TABLE consumer_offsets ADD COLUMN last_checksum bigint;
COMMENT ON COLUMN consumer_offsets.last_checksum IS 'CRC-32 of the value of the record at next_offset - 1 (the last one applied); NULL when unknown. Checked against the topic when a partition is assigned.';

-- 3. The outbox: a record the broker refuses for good (too large, unknown
--    topic) must not block the ones behind it.
ALTER TABLE outbox ADD COLUMN attempts integer NOT NULL DEFAULT 0;
ALTER TABLE outbox ADD COLUMN last_error text;
COMMENT ON COLUMN outbox.attempts IS 'Failed publication attempts so far.';
COMMENT ON COLUMN outbox.last_error IS 'Why the last attempt failed.';

-- 4. Leaner events. The dedup key is (session_id, event_hash): the hash
--    covers the session, so this is as unique as the hash alone, and a
--    batch's inserts land on the index pages of its active sessions instead
--    of random pages of a global hash index. The tenant/time and failure
--    indexes served no query; the foreign key made every insert probe and
--    share-lock the session row that the processor updates; the regex check
--    re-checked what only our code writes.
ALTER TABLE events DROP CONSTRAINT events_event_hash_key;
ALTER TABLE events DROP CONSTRAINT events_event_hash_check;
ALTER TABLE events DROP CONSTRAINT events_session_id_fkey;
DROP INDEX events_tenant_time_idx;
DROP INDEX events_session_failures_idx;
ALTER TABLE events ADD CONSTRAINT events_session_hash_key UNIQUE (session_id, event_hash);
COMMENT ON COLUMN events.event_hash IS 'Canonical SHA-256 of the event''s semantic content, hex (docs/event-hash.md); unique per session, the dedup key.';
COMMENT ON COLUMN events.session_id IS 'The session the event belongs to (sessions.id; the raw sink writes both in one transaction).';
