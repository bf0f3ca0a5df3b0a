-- The "seen" tables of the processor and of the agent's light mode get one
-- row per event. Keyed by the hash alone, every batch inserted into random
-- pages of a large index (and a second index on session_id), which under
-- `make bench` cost as much WAL (mostly full-page images) as the events
-- table itself. The hash covers the session id, so (session_id, event_hash)
-- is just as unique, and a batch's inserts now land on the few index pages
-- of its active sessions. The separate session index becomes redundant.
ALTER TABLE processor_seen DROP CONSTRAINT processor_seen_pkey;
ALTER TABLE processor_seen ADD PRIMARY KEY (session_id, event_hash);
DROP INDEX processor_seen_session_idx;

ALTER TABLE agent_seen DROP CONSTRAINT agent_seen_pkey;
ALTER TABLE agent_seen ADD PRIMARY KEY (session_id, event_hash);
DROP INDEX agent_seen_session_idx;
