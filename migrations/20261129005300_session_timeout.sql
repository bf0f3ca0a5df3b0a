-- Idle sessions end (issue 14): a session with no record for
-- session.idle_timeout_ms is ended by the pipeline with status 'timed_out'
-- (a session_end record the processor's reaper publishes; docs/processing.md).
-- The reaper scans active sessions only, through sessions_active_idx.

ALTER TABLE sessions DROP CONSTRAINT IF EXISTS sessions_status_check;
ALTER TABLE sessions ADD CONSTRAINT sessions_status_check
    CHECK (status IN ('active', 'completed', 'failed', 'aborted', 'timed_out'));

COMMENT ON COLUMN sessions.status IS 'active until a session_end record sets completed, failed or aborted; timed_out when the pipeline ended it after session.idle_timeout_ms without a record (a producer''s own end later replaces it).';
COMMENT ON COLUMN session_overview.status IS 'active, completed, failed, aborted or timed_out.';
