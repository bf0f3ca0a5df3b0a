-- Rows that the pipeline updates in place on every batch leave room on
-- their page, so the update can be a heap-only tuple (HOT) update: no new
-- index entries and far less WAL. None of the updated columns is indexed
-- (fixes, summary counters, state, cluster counts), which HOT also needs.
-- Only pages written from now on use the new setting.
ALTER TABLE event_correlations SET (fillfactor = 80);
ALTER TABLE sessions SET (fillfactor = 70);
ALTER TABLE processor_sessions SET (fillfactor = 70);
ALTER TABLE agent_sessions SET (fillfactor = 70);
ALTER TABLE error_cluster_sessions SET (fillfactor = 80);
ALTER TABLE error_clusters SET (fillfactor = 80);
ALTER TABLE error_templates SET (fillfactor = 80);
ALTER TABLE error_template_sessions SET (fillfactor = 80);
