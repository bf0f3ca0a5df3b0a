-- Retention and deletion (docs/operations.md, "Retention" and "Deleting a
-- session").
--
-- 1. Tombstones. DELETE /v1/sessions/{id} removes a session and everything
--    derived from it, and leaves its id here: the consumers (shared/runtime)
--    drop records of a tombstoned session instead of re-creating it from
--    records still in flight, and skip writing back state they cached
--    before the deletion. Tombstones are pruned with the derived rows
--    (retention.derived_days).
CREATE TABLE deleted_sessions (
    id          uuid PRIMARY KEY,
    tenant_id   text NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX deleted_sessions_time_idx ON deleted_sessions (deleted_at);
COMMENT ON TABLE deleted_sessions IS 'Sessions deleted on request (DELETE /v1/sessions/{id}): their rows are gone and consumers drop any record still arriving for them. Pruned after retention.derived_days.';
COMMENT ON COLUMN deleted_sessions.id IS 'The deleted session''s id.';
COMMENT ON COLUMN deleted_sessions.tenant_id IS 'Its tenant.';
COMMENT ON COLUMN deleted_sessions.deleted_at IS 'When it was deleted.';

-- 2. Retention works by session: a session whose last activity is older
--    than retention.events_days loses its events (and its consumers'
--    checkpointed state); older than retention.derived_days, the session row
--    and every derived row go. Candidates are found through created_at
--    (never updated, so this index leaves the frequent HOT updates of
--    session rows alone); events_pruned_at marks sessions whose events are
--    gone so a pass does not visit them again.
ALTER TABLE sessions ADD COLUMN events_pruned_at timestamptz;
COMMENT ON COLUMN sessions.events_pruned_at IS 'When retention removed the session''s events (retention.events_days); NULL while they are kept.';
CREATE INDEX sessions_created_idx ON sessions (created_at);
