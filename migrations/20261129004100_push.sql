-- Live push of insights (docs/push.md). The agent's recorder consumes the
-- insights topic and appends each transition once to insight_transitions,
-- creating a delivery per matching webhook endpoint in the same
-- transaction; the API streams the table (Server-Sent Events, the id is the
-- stream's event id) and the agent's delivery worker posts the deliveries.

CREATE TABLE insight_transitions (
    id            bigserial PRIMARY KEY,
    tenant_id     text NOT NULL,
    insight_id    uuid NOT NULL,
    session_id    uuid NOT NULL,
    type          text NOT NULL,
    transition    text NOT NULL CHECK (transition IN ('raised', 'escalated', 'resolved')),
    status        text NOT NULL,
    severity      text NOT NULL,
    dedup_key     text NOT NULL,
    title         text NOT NULL,
    detail        text NOT NULL DEFAULT '',
    evidence      jsonb NOT NULL DEFAULT '{}'::jsonb,
    raised_at     timestamptz NOT NULL,
    last_seen_at  timestamptz NOT NULL,
    resolved_at   timestamptz,
    decided_at    timestamptz NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now(),
    UNIQUE (insight_id, transition, decided_at)
);
CREATE INDEX insight_transitions_tenant_idx ON insight_transitions (tenant_id, id);
COMMENT ON TABLE insight_transitions IS 'Append-only log of insight transitions (raised, escalated, resolved), one row per transition however often the insights topic delivers it; streamed by GET /v1/insights/stream and delivered to webhooks.';
COMMENT ON COLUMN insight_transitions.id IS 'Position in the log: the Server-Sent Events id a client resumes from (Last-Event-ID). Rows are committed in id order.';
COMMENT ON COLUMN insight_transitions.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN insight_transitions.insight_id IS 'The insight (insights.id).';
COMMENT ON COLUMN insight_transitions.session_id IS 'The session the insight is about.';
COMMENT ON COLUMN insight_transitions.type IS 'Insight type: high_error_density, agent_churn, command_loop, stalled_session, runaway_cost, ...';
COMMENT ON COLUMN insight_transitions.transition IS 'raised (first, or again after resolving), escalated (higher severity) or resolved.';
COMMENT ON COLUMN insight_transitions.status IS 'The insight''s status after the transition: open or resolved.';
COMMENT ON COLUMN insight_transitions.severity IS 'info, warning or critical, after the transition.';
COMMENT ON COLUMN insight_transitions.dedup_key IS 'What makes two raisings the same insight.';
COMMENT ON COLUMN insight_transitions.title IS 'One-line summary.';
COMMENT ON COLUMN insight_transitions.detail IS 'Longer explanation.';
COMMENT ON COLUMN insight_transitions.evidence IS 'Event ids and counts supporting the insight.';
COMMENT ON COLUMN insight_transitions.raised_at IS 'Event time it was (last) raised.';
COMMENT ON COLUMN insight_transitions.last_seen_at IS 'Event time the condition was last observed.';
COMMENT ON COLUMN insight_transitions.resolved_at IS 'Event time it cleared; NULL while open.';
COMMENT ON COLUMN insight_transitions.decided_at IS 'Event time of the decision; with insight_id and transition, what makes a transition unique.';
COMMENT ON COLUMN insight_transitions.recorded_at IS 'When the recorder stored it (database clock).';

CREATE TABLE webhook_endpoints (
    id           uuid PRIMARY KEY,
    tenant_id    text NOT NULL,
    url          text NOT NULL,
    secret       text NOT NULL,
    description  text,
    severities   text[],
    types        text[],
    transitions  text[],
    created_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX webhook_endpoints_tenant_idx ON webhook_endpoints (tenant_id);
COMMENT ON TABLE webhook_endpoints IS 'Webhook destinations registered by tenants (POST /v1/webhooks): insight transitions matching the filters are posted there, signed.';
COMMENT ON COLUMN webhook_endpoints.id IS 'Endpoint UUID.';
COMMENT ON COLUMN webhook_endpoints.tenant_id IS 'Owning tenant; only its transitions are delivered.';
COMMENT ON COLUMN webhook_endpoints.url IS 'Destination (http or https); its addresses are checked against the SSRF policy at registration and at every delivery.';
COMMENT ON COLUMN webhook_endpoints.secret IS 'HMAC-SHA256 key of the Achilles-Signature header; shown once at registration.';
COMMENT ON COLUMN webhook_endpoints.description IS 'Free text for humans.';
COMMENT ON COLUMN webhook_endpoints.severities IS 'Only these severities (NULL: all).';
COMMENT ON COLUMN webhook_endpoints.types IS 'Only these insight types (NULL: all).';
COMMENT ON COLUMN webhook_endpoints.transitions IS 'Only these transitions (NULL: all).';
COMMENT ON COLUMN webhook_endpoints.created_at IS 'When it was registered.';

CREATE TABLE webhook_deliveries (
    id               uuid PRIMARY KEY,
    endpoint_id      uuid NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    tenant_id        text NOT NULL,
    transition_id    bigint NOT NULL REFERENCES insight_transitions (id),
    status           text NOT NULL DEFAULT 'pending' CHECK (status IN ('pending', 'delivered', 'dead')),
    attempts         integer NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz NOT NULL DEFAULT now(),
    last_status      integer,
    last_error       text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    UNIQUE (endpoint_id, transition_id)
);
CREATE INDEX webhook_deliveries_due_idx ON webhook_deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX webhook_deliveries_endpoint_idx ON webhook_deliveries (endpoint_id, created_at DESC);
ALTER TABLE webhook_deliveries SET (fillfactor = 80);
COMMENT ON TABLE webhook_deliveries IS 'One delivery of one transition to one endpoint: retried with exponential backoff until delivered or dead (after push.webhook_max_attempts).';
COMMENT ON COLUMN webhook_deliveries.id IS 'Delivery id, sent as Achilles-Delivery: the same on every retry, so receivers can drop duplicates (delivery is at least once).';
COMMENT ON COLUMN webhook_deliveries.endpoint_id IS 'The endpoint.';
COMMENT ON COLUMN webhook_deliveries.tenant_id IS 'Owning tenant.';
COMMENT ON COLUMN webhook_deliveries.transition_id IS 'The transition delivered (insight_transitions.id).';
COMMENT ON COLUMN webhook_deliveries.status IS 'pending (due at next_attempt_at), delivered (a 2xx answer) or dead (gave up).';
COMMENT ON COLUMN webhook_deliveries.attempts IS 'Attempts made so far.';
COMMENT ON COLUMN webhook_deliveries.next_attempt_at IS 'When the next attempt is due; while an attempt runs, the end of its lease.';
COMMENT ON COLUMN webhook_deliveries.last_status IS 'HTTP status of the last attempt (NULL: no answer).';
COMMENT ON COLUMN webhook_deliveries.last_error IS 'Why the last attempt failed (status, timeout, refused destination, ...).';
COMMENT ON COLUMN webhook_deliveries.created_at IS 'When the transition was recorded for this endpoint.';
COMMENT ON COLUMN webhook_deliveries.delivered_at IS 'When a 2xx answer arrived.';
