-- Error clustering in two levels. The processor records occurrences per
-- *template* (a message with its variable parts masked: a pure function of
-- the message, so every instance agrees). Similar templates are merged into
-- *clusters* by a deterministic function of the tenant's whole template set,
-- re-run whenever a new template appears; error_clusters and
-- error_cluster_sessions are maintained from these tables in the same
-- transaction, so merges never lose or double-count occurrences.

CREATE TABLE error_templates (
    tenant_id        text NOT NULL,
    template_id      text NOT NULL,
    template         text NOT NULL,
    cluster_id       text NOT NULL,
    cluster_template text NOT NULL,
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    occurrence_count bigint NOT NULL DEFAULT 0,
    sample_message   text NOT NULL,
    PRIMARY KEY (tenant_id, template_id)
);
CREATE INDEX error_templates_cluster_idx ON error_templates (tenant_id, cluster_id);
COMMENT ON TABLE error_templates IS 'Masked error templates and the cluster each currently belongs to; the source error_clusters is maintained from.';
COMMENT ON COLUMN error_templates.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN error_templates.template_id IS 'Hash of the template (16 hex digits).';
COMMENT ON COLUMN error_templates.template IS 'The message with variable parts masked as <*>.';
COMMENT ON COLUMN error_templates.cluster_id IS 'The cluster (error_clusters.id) this template is merged into.';
COMMENT ON COLUMN error_templates.cluster_template IS 'The merged cluster''s pattern.';
COMMENT ON COLUMN error_templates.first_seen IS 'Earliest occurrence (event time).';
COMMENT ON COLUMN error_templates.last_seen IS 'Latest occurrence (event time).';
COMMENT ON COLUMN error_templates.occurrence_count IS 'Occurrences of this exact template.';
COMMENT ON COLUMN error_templates.sample_message IS 'One original message with this template; also what re-merging reads.';

CREATE TABLE error_template_sessions (
    tenant_id        text NOT NULL,
    template_id      text NOT NULL,
    session_id       uuid NOT NULL REFERENCES sessions (id),
    occurrence_count bigint NOT NULL DEFAULT 0,
    first_seen       timestamptz NOT NULL,
    last_seen        timestamptz NOT NULL,
    PRIMARY KEY (tenant_id, template_id, session_id),
    FOREIGN KEY (tenant_id, template_id) REFERENCES error_templates (tenant_id, template_id)
);
CREATE INDEX error_template_sessions_session_idx ON error_template_sessions (session_id);
COMMENT ON TABLE error_template_sessions IS 'Occurrences of each template per session.';
COMMENT ON COLUMN error_template_sessions.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN error_template_sessions.template_id IS 'The template.';
COMMENT ON COLUMN error_template_sessions.session_id IS 'The session.';
COMMENT ON COLUMN error_template_sessions.occurrence_count IS 'Occurrences in this session.';
COMMENT ON COLUMN error_template_sessions.first_seen IS 'First occurrence in this session.';
COMMENT ON COLUMN error_template_sessions.last_seen IS 'Last occurrence in this session.';
