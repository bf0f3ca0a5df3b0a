//! Every Prometheus metric of every service, defined in one place.
//!
//! Labels are low-cardinality by construction: routes are axum route
//! *templates*, reasons are the closed sets of validation and decode codes,
//! partitions are bounded by the topic's partition count. Never label with
//! a session or event id. Tenant labels exist in two places, each capped
//! so the series count has a fixed upper bound: the quota metrics
//! (`quotas.metric_tenants` names plus `other`) and the spend counters
//! (tenant, provider and model, capped per process by `[spend]`, see
//! [`crate::spend`]).
//!
//! Metrics live in one process-wide [`REGISTRY`]; each binary registers all
//! of them (unused ones simply stay at zero), so dashboards never see a
//! series appear out of nowhere.

use std::sync::LazyLock;

use prometheus::{
    CounterVec, Encoder, HistogramOpts, HistogramVec, IntCounterVec, IntGauge, IntGaugeVec, Opts,
    Registry, TextEncoder,
};

pub static REGISTRY: LazyLock<Registry> = LazyLock::new(|| {
    let r = Registry::new();
    register_all(&r);
    r
});

/// Latency buckets from 0.5 ms to 10 s: ingest acks sit at the low end,
/// freshness and slow queries at the high end.
const LATENCY_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];
const SIZE_BUCKETS: &[f64] = &[
    1.0, 5.0, 10.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
];
const BYTES_BUCKETS: &[f64] = &[
    256.0, 1024.0, 4096.0, 16384.0, 65536.0, 262144.0, 1048576.0, 4194304.0,
];

macro_rules! counter_vec {
    ($name:ident, $metric:literal, $help:literal, [$($l:literal),*]) => {
        pub static $name: LazyLock<IntCounterVec> = LazyLock::new(|| {
            // Names and labels are literals checked by the registry test.
            IntCounterVec::new(Opts::new($metric, $help), &[$($l),*]).expect("valid metric")
        });
    };
}
macro_rules! histogram_vec {
    ($name:ident, $metric:literal, $help:literal, $buckets:expr, [$($l:literal),*]) => {
        pub static $name: LazyLock<HistogramVec> = LazyLock::new(|| {
            HistogramVec::new(
                HistogramOpts::new($metric, $help).buckets($buckets.to_vec()),
                &[$($l),*],
            )
            .expect("valid metric")
        });
    };
}

// --- HTTP API --------------------------------------------------------------
counter_vec!(
    HTTP_REQUESTS,
    "achilles_http_requests_total",
    "HTTP requests by route template, method and status code.",
    ["route", "method", "status"]
);
histogram_vec!(
    HTTP_DURATION,
    "achilles_http_request_duration_seconds",
    "HTTP request latency by route template.",
    LATENCY_BUCKETS,
    ["route", "method"]
);
histogram_vec!(
    HTTP_BODY_BYTES,
    "achilles_http_request_body_bytes",
    "Size of ingest request bodies.",
    BYTES_BUCKETS,
    ["route"]
);
counter_vec!(
    INGEST_EVENTS,
    "achilles_ingest_events_total",
    "Submitted events by outcome: accepted, duplicate or rejected.",
    ["outcome"]
);
counter_vec!(
    INGEST_REJECTIONS,
    "achilles_ingest_rejections_total",
    "Rejected submissions by validation code.",
    ["reason"]
);
counter_vec!(
    BACKPRESSURE,
    "achilles_ingest_backpressure_total",
    "Requests answered 503 because Kafka could not take them, by cause.",
    ["cause"]
);
histogram_vec!(
    PRODUCE_LATENCY,
    "achilles_kafka_produce_ack_seconds",
    "Time from handing a record to the producer until the broker acknowledged it.",
    LATENCY_BUCKETS,
    ["topic"]
);
pub static PRODUCER_QUEUE: LazyLock<IntGauge> = LazyLock::new(|| {
    IntGauge::new(
        "achilles_kafka_producer_queue_messages",
        "Records waiting in the local producer queue.",
    )
    .expect("valid metric")
});

counter_vec!(
    READINESS_CHECKS,
    "achilles_readiness_checks_total",
    "Dependency checks actually run for /readyz (answers come from a cache refreshed at most every api.ready_cache_ms).",
    ["service"]
);

// --- Quotas ------------------------------------------------------------------
counter_vec!(
    QUOTA_DECISIONS,
    "achilles_quota_decisions_total",
    "Tokens asked of a tenant's bucket (requests or events): admitted at once, throttled (API: answered 429) or waited for (intake gate). Tenant label: the first quotas.metric_tenants tenants by name, the rest `other`.",
    ["tenant", "kind", "outcome"]
);
pub static QUOTA_WAIT: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        Opts::new(
            "achilles_quota_wait_seconds_total",
            "Time the intake gate waited for a tenant's event tokens (over-quota records wait, they are not dropped).",
        ),
        &["tenant", "kind"],
    )
    .expect("valid metric")
});

// --- Consumers ---------------------------------------------------------------
counter_vec!(
    CONSUMED,
    "achilles_consumer_records_total",
    "Records consumed, by consumer and logical topic.",
    ["consumer", "topic"]
);
histogram_vec!(
    BATCH_SIZE,
    "achilles_consumer_batch_records",
    "Records per processed batch.",
    SIZE_BUCKETS,
    ["consumer"]
);
pub static CONSUMER_LAG: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    IntGaugeVec::new(
        Opts::new(
            "achilles_consumer_lag_records",
            "High watermark minus the consumer's stored position (the next record it will apply), per partition.",
        ),
        &["consumer", "topic", "partition"],
    )
    .expect("valid metric")
});
histogram_vec!(
    DB_WRITE,
    "achilles_db_write_seconds",
    "Duration of one Postgres write transaction.",
    LATENCY_BUCKETS,
    ["consumer"]
);
counter_vec!(
    DEAD_LETTERED,
    "achilles_deadletter_records_total",
    "Records sent to the dead-letter topic, by consumer and reason code.",
    ["consumer", "reason"]
);
counter_vec!(
    REBALANCES,
    "achilles_consumer_rebalances_total",
    "Partition assignments and revocations.",
    ["consumer", "kind"]
);
counter_vec!(
    RETRIES,
    "achilles_consumer_retries_total",
    "Retryable failures (the batch is retried, never skipped), by cause.",
    ["consumer", "cause"]
);
histogram_vec!(
    FRESHNESS,
    "achilles_freshness_seconds",
    "Delay from ingest (API acceptance) until the row derived from it committed; stage = landed (raw sink), derived (processor), insight (agent).",
    LATENCY_BUCKETS,
    ["stage"]
);
counter_vec!(
    POSITION_RESETS,
    "achilles_consumer_position_resets_total",
    "Stored positions the topic could not honour, by reason: ahead_of_log (the topic was recreated or truncated), checksum_mismatch (a different record sits at the position: recreated), behind_log_start (records expired before they were read). Each is logged at error level and resumes by consumer.on_stale_position.",
    ["consumer", "reason"]
);
counter_vec!(
    SKIPPED,
    "achilles_consumer_skipped_records_total",
    "Records not applied: replayed (below the stored position), duplicate (same event hash as a recent event of the session) or deleted (the session was deleted on request).",
    ["consumer", "reason"]
);
counter_vec!(
    STATE_ERRORS,
    "achilles_consumer_state_errors_total",
    "Stored session states that could not be decoded; that session's records are dead-lettered (state_undecodable) instead of being applied to an empty state.",
    ["consumer"]
);
counter_vec!(
    CHECKPOINTS,
    "achilles_consumer_checkpoints_total",
    "State checkpoints written (every changed session's state and the partitions' checkpoint offsets).",
    ["consumer"]
);
pub static CACHED_SESSIONS: LazyLock<IntGaugeVec> = LazyLock::new(|| {
    IntGaugeVec::new(
        Opts::new(
            "achilles_consumer_cached_sessions",
            "Sessions whose state a consumer holds in memory.",
        ),
        &["consumer"],
    )
    .expect("valid metric")
});
counter_vec!(
    OUTBOX_FAILURES,
    "achilles_outbox_failures_total",
    "Outbox records the broker refused: retryable (kept and retried) or permanent (moved to the dead-letter topic).",
    ["kind"]
);
counter_vec!(
    LANDED,
    "achilles_landed_rows_total",
    "Rows written by the raw sink: inserted, or skipped as duplicates.",
    ["table", "outcome"]
);

// --- Domain ------------------------------------------------------------------
pub static ACTIVE_SESSIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    IntGauge::new(
        "achilles_active_sessions",
        "Sessions the stream processor holds state for (started, not yet ended).",
    )
    .expect("valid metric")
});
counter_vec!(
    SESSIONS_ENDED,
    "achilles_sessions_ended_total",
    "Sessions whose end the processor folded in, by final status.",
    ["status"]
);
counter_vec!(
    CLUSTERS_CREATED,
    "achilles_clusters_created_total",
    "Error clusters seen for the first time.",
    ["consumer"]
);
counter_vec!(
    CLUSTER_OCCURRENCES,
    "achilles_cluster_occurrences_total",
    "Failing events assigned to a cluster.",
    ["consumer"]
);
counter_vec!(
    CORRELATIONS,
    "achilles_correlations_total",
    "Induced-error correlations found, by match kind.",
    ["match_kind"]
);
counter_vec!(LATE_EVENTS, "achilles_late_events_total",
    "Events older than the session's watermark: within the allowed lateness (accepted) or beyond it (too_late, counted and not correlated).",
    ["disposition"]);
counter_vec!(
    ENGINE_TRUNCATED,
    "achilles_engine_state_truncated_total",
    "Entries dropped from a session's processor state because a per-session cap was reached, by what was dropped.",
    ["what"]
);
counter_vec!(
    INSIGHTS_RAISED,
    "achilles_insights_raised_total",
    "Insights raised by the monitoring agent, by type and severity.",
    ["type", "severity"]
);

// --- Spend (raw sink, once per stored llm_call) ----------------------------
counter_vec!(
    LLM_TOKENS,
    "achilles_llm_tokens_total",
    "LLM tokens of stored llm_call events, by tenant, provider, model and direction (input, output); labels capped by [spend].",
    ["tenant", "provider", "model", "direction"]
);
pub static LLM_COST: LazyLock<CounterVec> = LazyLock::new(|| {
    CounterVec::new(
        Opts::new(
            "achilles_llm_cost_usd_total",
            "US dollars of stored llm_call events, by tenant, provider and model; labels capped by [spend].",
        ),
        &["tenant", "provider", "model"],
    )
    .expect("valid metric")
});

// --- OTLP ingest and live push ------------------------------------------------
counter_vec!(
    OTLP_RECORDS,
    "achilles_otlp_records_total",
    "OTLP log records and spans received, by signal (logs, traces) and what they became: an event kind, session_end, twin (a span already received as a log event) or rejected.",
    ["signal", "kind"]
);
pub static STREAM_CLIENTS: LazyLock<IntGauge> = LazyLock::new(|| {
    IntGauge::new(
        "achilles_stream_clients",
        "Open GET /v1/insights/stream connections.",
    )
    .expect("valid metric")
});
counter_vec!(
    STREAM_DISCONNECTS,
    "achilles_stream_disconnects_total",
    "Insight streams ended by the server: slow (the client fell a buffer behind), full (too many streams).",
    ["reason"]
);
counter_vec!(
    INSIGHT_TRANSITIONS,
    "achilles_insight_transitions_total",
    "Insight transitions recorded for push (stream and webhooks), by transition.",
    ["transition"]
);
counter_vec!(
    WEBHOOK_DELIVERIES,
    "achilles_webhook_deliveries_total",
    "Webhook delivery attempts by outcome: delivered, failed (retried later), dead (gave up), refused (destination not allowed).",
    ["outcome"]
);
histogram_vec!(
    WEBHOOK_LATENCY,
    "achilles_webhook_delivery_seconds",
    "Duration of one webhook delivery attempt, by outcome.",
    LATENCY_BUCKETS,
    ["outcome"]
);

// --- Secret scrubbing (API and intake gate) -----------------------------------
counter_vec!(
    REDACTIONS,
    "achilles_redactions_total",
    "Secrets replaced by a [REDACTED:rule] marker before publishing, by built-in rule (operator rules: custom).",
    ["rule"]
);
// Session lifecycle (issue 14): idle timeouts and re-judging.
counter_vec!(
    SESSIONS_TIMED_OUT,
    "achilles_sessions_timed_out_total",
    "Timeout ends the processor's reaper published, by the clock that ran out (wall or event).",
    ["clock"]
);
counter_vec!(
    SESSION_REJUDGES,
    "achilles_session_rejudges_total",
    "Session-ended records published again for an ended session, by cause (late_event or request).",
    ["cause"]
);
// Retention and deletion (achilles_core::db::retention).
counter_vec!(
    RETENTION_DELETED,
    "achilles_retention_deleted_rows_total",
    "Rows removed by retention passes, by table.",
    ["table"]
);
counter_vec!(
    RETENTION_PASSES,
    "achilles_retention_passes_total",
    "Retention passes by outcome: done, skipped (another instance holds the lock), failed.",
    ["outcome"]
);

fn register_all(r: &Registry) {
    let collectors: Vec<Box<dyn prometheus::core::Collector>> = vec![
        Box::new(HTTP_REQUESTS.clone()),
        Box::new(HTTP_DURATION.clone()),
        Box::new(HTTP_BODY_BYTES.clone()),
        Box::new(INGEST_EVENTS.clone()),
        Box::new(INGEST_REJECTIONS.clone()),
        Box::new(BACKPRESSURE.clone()),
        Box::new(PRODUCE_LATENCY.clone()),
        Box::new(PRODUCER_QUEUE.clone()),
        Box::new(READINESS_CHECKS.clone()),
        Box::new(QUOTA_DECISIONS.clone()),
        Box::new(QUOTA_WAIT.clone()),
        Box::new(CONSUMED.clone()),
        Box::new(BATCH_SIZE.clone()),
        Box::new(CONSUMER_LAG.clone()),
        Box::new(DB_WRITE.clone()),
        Box::new(DEAD_LETTERED.clone()),
        Box::new(REBALANCES.clone()),
        Box::new(RETRIES.clone()),
        Box::new(FRESHNESS.clone()),
        Box::new(LANDED.clone()),
        Box::new(POSITION_RESETS.clone()),
        Box::new(SKIPPED.clone()),
        Box::new(STATE_ERRORS.clone()),
        Box::new(CACHED_SESSIONS.clone()),
        Box::new(CHECKPOINTS.clone()),
        Box::new(OUTBOX_FAILURES.clone()),
        Box::new(ACTIVE_SESSIONS.clone()),
        Box::new(SESSIONS_ENDED.clone()),
        Box::new(CLUSTERS_CREATED.clone()),
        Box::new(CLUSTER_OCCURRENCES.clone()),
        Box::new(CORRELATIONS.clone()),
        Box::new(LATE_EVENTS.clone()),
        Box::new(ENGINE_TRUNCATED.clone()),
        Box::new(INSIGHTS_RAISED.clone()),
        Box::new(LLM_TOKENS.clone()),
        Box::new(LLM_COST.clone()),
        Box::new(OTLP_RECORDS.clone()),
        Box::new(STREAM_CLIENTS.clone()),
        Box::new(STREAM_DISCONNECTS.clone()),
        Box::new(INSIGHT_TRANSITIONS.clone()),
        Box::new(WEBHOOK_DELIVERIES.clone()),
        Box::new(WEBHOOK_LATENCY.clone()),
        Box::new(REDACTIONS.clone()),
        Box::new(SESSIONS_TIMED_OUT.clone()),
        Box::new(SESSION_REJUDGES.clone()),
        Box::new(RETENTION_DELETED.clone()),
        Box::new(RETENTION_PASSES.clone()),
    ];
    for c in collectors {
        // Each metric is registered exactly once, here; a duplicate name is
        // a programming error caught by the test below.
        r.register(c).expect("metric names are unique");
    }
}

/// Creates the series every dashboard and alert expects at zero, so the
/// first real increment shows up in `rate()` instead of being mistaken for
/// the series' start. Labels here are the closed sets documented above.
pub fn init_series(consumers: &[&str]) {
    for outcome in ["accepted", "duplicate", "rejected"] {
        INGEST_EVENTS.with_label_values(&[outcome]);
    }
    for cause in ["queue_full", "broker_unavailable", "kafka_error"] {
        BACKPRESSURE.with_label_values(&[cause]);
    }
    for kind in ["retryable", "permanent"] {
        OUTBOX_FAILURES.with_label_values(&[kind]);
    }
    for outcome in ["done", "skipped", "failed"] {
        RETENTION_PASSES.with_label_values(&[outcome]);
    }
    // Every rule label, so a first redaction is an increase, not a new series.
    for (rule, _) in crate::scrub::BUILTIN
        .iter()
        .chain([&crate::scrub::EMAIL, &(crate::scrub::CUSTOM_LABEL, "")])
    {
        REDACTIONS.with_label_values(&[rule]);
    }
    for c in consumers {
        for reason in ["ahead_of_log", "checksum_mismatch", "behind_log_start"] {
            POSITION_RESETS.with_label_values(&[c, reason]);
        }
        for reason in ["replayed", "duplicate", "deleted"] {
            SKIPPED.with_label_values(&[c, reason]);
        }
        STATE_ERRORS.with_label_values(&[c]);
        CACHED_SESSIONS.with_label_values(&[c]);
        CHECKPOINTS.with_label_values(&[c]);
        CONSUMED.with_label_values(&[c, "events"]);
        BATCH_SIZE.with_label_values(&[c]);
        DB_WRITE.with_label_values(&[c]);
        CLUSTERS_CREATED.with_label_values(&[c]);
        CLUSTER_OCCURRENCES.with_label_values(&[c]);
    }
    for stage in ["landed", "derived", "insight"] {
        FRESHNESS.with_label_values(&[stage]);
    }
    for kind in ["error_location", "mention", "test_subject", "context"] {
        CORRELATIONS.with_label_values(&[kind]);
    }
    for (kind, outcome) in [
        ("requests", "throttled"),
        ("events", "throttled"),
        ("events", "waited"),
    ] {
        QUOTA_DECISIONS.with_label_values(&["other", kind, outcome]);
    }
    for what in [
        "edits",
        "failures",
        "checks",
        "open_correlations",
        "correlations_per_failure",
    ] {
        ENGINE_TRUNCATED.with_label_values(&[what]);
    }
    for d in ["accepted", "too_late"] {
        LATE_EVENTS.with_label_values(&[d]);
    }
    for (table, outcome) in [("events", "inserted"), ("events", "duplicate")] {
        LANDED.with_label_values(&[table, outcome]);
    }
    for reason in ["slow", "full"] {
        STREAM_DISCONNECTS.with_label_values(&[reason]);
    }
    for t in ["raised", "escalated", "resolved"] {
        INSIGHT_TRANSITIONS.with_label_values(&[t]);
    }
    for outcome in ["delivered", "failed", "dead", "refused"] {
        WEBHOOK_DELIVERIES.with_label_values(&[outcome]);
    }
    for clock in ["wall", "event"] {
        SESSIONS_TIMED_OUT.with_label_values(&[clock]);
    }
    for cause in ["late_event", "request"] {
        SESSION_REJUDGES.with_label_values(&[cause]);
    }
}

/// The Prometheus text exposition of every metric.
pub fn render() -> String {
    let mut buf = Vec::new();
    // Encoding into a Vec cannot fail for the text format.
    let _ = TextEncoder::new().encode(&REGISTRY.gather(), &mut buf);
    String::from_utf8(buf).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_metrics_register_and_render() {
        INGEST_EVENTS.with_label_values(&["accepted"]).inc();
        let text = render();
        assert!(text.contains("achilles_ingest_events_total{outcome=\"accepted\"}"));
        for name in REGISTRY.gather().iter().map(|m| m.name().to_owned()) {
            assert!(name.starts_with("achilles_"), "{name}");
        }
    }
}
