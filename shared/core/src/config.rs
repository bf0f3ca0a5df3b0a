//! Layered configuration.
//!
//! Precedence, lowest to highest (later layers win, key by key):
//! 1. built-in defaults (the `Default` impls below; safe for local use);
//! 2. a TOML file: `$ACHILLES_CONFIG` if set, else `achilles.toml` in the
//!    working directory if it exists;
//! 3. environment variables `ACHILLES_<SECTION>__<KEY>` (double underscore
//!    between section and key), e.g. `ACHILLES_KAFKA__BROKERS`;
//! 4. the conventional shortcuts `DATABASE_URL`, `ACHILLES_DEV_API_KEY` and
//!    `ACHILLES_LOG_FORMAT`, which win over everything else.
//!
//! The OpenTelemetry variables `OTEL_EXPORTER_OTLP_ENDPOINT` and
//! `OTEL_SERVICE_NAME` are fallbacks below layer 2: they set
//! `log.otlp_endpoint` and `log.service_name` unless the file or an
//! `ACHILLES_LOG__*` variable does (`ACHILLES_LOG__OTLP_ENDPOINT=""` turns
//! export off again). Trace export is off by default.
//!
//! Secrets (`database.url`, API keys) are `SecretString`s: their `Debug`
//! output is redacted, so logging the whole config is safe.

use std::collections::BTreeMap;
use std::path::PathBuf;

use figment::providers::{Env, Format, Toml};
use figment::Figment;
use secrecy::SecretString;
use serde::Deserialize;

use crate::model::Limits;
pub use crate::quota::{QuotaSettings, TenantQuota};

#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct Settings {
    pub database: DatabaseSettings,
    pub kafka: KafkaSettings,
    pub api: ApiSettings,
    pub auth: AuthSettings,
    pub consumer: ConsumerSettings,
    pub sink: SinkSettings,
    pub processor: ProcessorSettings,
    pub agent: AgentSettings,
    pub push: PushSettings,
    pub spend: SpendSettings,
    pub validation: Limits,
    pub quotas: QuotaSettings,
    pub log: LogSettings,
    pub cluster: ClusterSettings,
    pub scrub: ScrubSettings,
    pub session: SessionSettings,
    pub retention: RetentionSettings,
}

/// `[cluster]`: error clustering. Operator-defined masking rules, run after
/// the built-in masker by the stream processor and `achilles cluster`:
///
/// ```toml
/// [[cluster.rules]]
/// name = "order-codes"          # named in errors
/// pattern = '\bORD-[A-Z]+\b'    # `regex` crate syntax, matched on the template
/// tenants = ["acme"]            # optional; omitted or empty: every tenant
/// ```
///
/// Patterns are compiled and validated when a service starts
/// ([`ClusterSettings::compile`]); see `achilles_cluster::RuleSet`.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClusterSettings {
    pub rules: Vec<MaskRuleSettings>,
}

/// One `[[cluster.rules]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaskRuleSettings {
    pub name: String,
    pub pattern: String,
    #[serde(default)]
    pub tenants: Vec<String>,
}

impl ClusterSettings {
    /// Compiles the rules; an invalid one is an error naming it.
    pub fn compile(&self) -> Result<achilles_cluster::RuleSet, achilles_cluster::RuleError> {
        let specs: Vec<achilles_cluster::RuleSpec> = self
            .rules
            .iter()
            .map(|r| achilles_cluster::RuleSpec {
                name: r.name.clone(),
                pattern: r.pattern.clone(),
                tenants: r.tenants.clone(),
            })
            .collect();
        achilles_cluster::RuleSet::compile(&specs)
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSettings {
    pub url: SecretString,
    pub max_connections: u32,
    pub acquire_timeout_ms: u64,
}

impl Default for DatabaseSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/achilles"),
            max_connections: 10,
            acquire_timeout_ms: 3_000,
        }
    }
}

#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaSettings {
    /// Comma-separated bootstrap servers.
    pub brokers: String,
    /// Prepended to every topic name (see `topics::Topics`).
    pub topic_prefix: String,
    /// Partitions for topics the services create; consumers of one group
    /// can never usefully outnumber it.
    pub partitions: i32,
    pub replication_factor: i32,
    /// `min.insync.replicas` of the topics the services create: with
    /// `acks=all`, how many replicas must have a record before it counts as
    /// acknowledged. At most `replication_factor`.
    pub min_insync_replicas: i32,
    /// `retention.ms` of the topics the services create (default 7 days;
    /// -1 keeps records forever). Consumers must never lag further behind.
    pub topic_retention_ms: i64,
    /// Create missing topics at start-up. Off where topics are managed
    /// elsewhere (e.g. by an operator or Terraform).
    pub create_topics: bool,
    /// How long a produce may wait for the broker before the API answers
    /// 503. Bounds the request latency when the broker is down.
    pub message_timeout_ms: u64,
    /// librdkafka's local queue; when full the API answers 503 at once.
    pub queue_max_messages: u64,
    pub linger_ms: u64,
    pub session_timeout_ms: u64,
    /// Passed verbatim to librdkafka (e.g. `security.protocol`,
    /// `sasl.mechanisms`), so TLS/SASL need no code change. It is the
    /// only route for `sasl.password` and private keys, so its values are
    /// redacted in `Debug` output (only the keys are shown).
    pub extra: BTreeMap<String, String>,
}

impl std::fmt::Debug for KafkaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let extra: BTreeMap<&str, &str> = self
            .extra
            .keys()
            .map(|k| (k.as_str(), "[REDACTED]"))
            .collect();
        f.debug_struct("KafkaSettings")
            .field("brokers", &self.brokers)
            .field("topic_prefix", &self.topic_prefix)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("min_insync_replicas", &self.min_insync_replicas)
            .field("topic_retention_ms", &self.topic_retention_ms)
            .field("create_topics", &self.create_topics)
            .field("message_timeout_ms", &self.message_timeout_ms)
            .field("queue_max_messages", &self.queue_max_messages)
            .field("linger_ms", &self.linger_ms)
            .field("session_timeout_ms", &self.session_timeout_ms)
            .field("extra", &extra)
            .finish()
    }
}

impl Default for KafkaSettings {
    fn default() -> Self {
        Self {
            brokers: "127.0.0.1:9092".into(),
            topic_prefix: String::new(),
            partitions: 8,
            replication_factor: 1,
            min_insync_replicas: 1,
            topic_retention_ms: 7 * 24 * 3600 * 1000,
            create_topics: true,
            message_timeout_ms: 5_000,
            queue_max_messages: 200_000,
            linger_ms: 5,
            session_timeout_ms: 6_000,
            extra: BTreeMap::new(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ApiSettings {
    pub listen: String,
    /// Larger bodies get 413 before they are parsed.
    pub max_body_bytes: usize,
    /// Larger batches get 413.
    pub max_batch_events: usize,
    pub request_timeout_ms: u64,
    /// Sent in `Retry-After` with every 503.
    pub retry_after_secs: u64,
    pub page_size_default: i64,
    pub page_size_max: i64,
    /// How many recently accepted event hashes the API remembers to answer
    /// `duplicate` to a retried request (0: never). About 80 bytes each.
    pub recent_hashes: usize,
    /// `/readyz` answers from a check at most this old, so probes (it is
    /// unauthenticated) never cost a broker round trip each.
    pub ready_cache_ms: u64,
}

impl Default for ApiSettings {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:8080".into(),
            max_body_bytes: 4 * 1024 * 1024,
            max_batch_events: 1_000,
            request_timeout_ms: 15_000,
            retry_after_secs: 2,
            page_size_default: 100,
            page_size_max: 1_000,
            // Fits one hash-set allocation (2^19 buckets at 7/8 load), about
            // 17 MiB per generation.
            recent_hashes: 450_000,
            ready_cache_ms: 1_000,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSettings {
    /// `tenant=key` pairs separated by commas.
    pub keys: SecretString,
    /// A key for the `dev_tenant`, for local use. Empty (the default)
    /// disables it: it works only where it is set explicitly (`make up`,
    /// the demo, tests, the compose and Helm examples set [`DEV_API_KEY`]).
    pub dev_api_key: SecretString,
    pub dev_tenant: String,
}

impl Default for AuthSettings {
    fn default() -> Self {
        Self {
            keys: SecretString::from(""),
            dev_api_key: SecretString::from(""),
            dev_tenant: "dev".into(),
        }
    }
}

/// The documented development key (16 characters, the minimum for any
/// key). Off unless `auth.dev_api_key` / `ACHILLES_DEV_API_KEY` is set.
pub const DEV_API_KEY: &str = "achilles-dev-key";

/// How every consumer loop batches, retries, stops and keeps state
/// (`shared/runtime`); one section for all of them, since it is one
/// mechanism.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConsumerSettings {
    /// At most this many records per batch (one transaction).
    pub batch_max_records: usize,
    /// After the first record of a batch, wait this long for more. 0 (the
    /// default) takes whatever has already arrived and never waits: under
    /// load batches fill by themselves while the previous one commits.
    pub batch_linger_ms: u64,
    /// Back-off after a retryable failure (database or broker down),
    /// doubling up to 5 s.
    pub retry_backoff_ms: u64,
    /// How long a graceful shutdown may keep retrying the batch in hand
    /// before it gives up (nothing is committed for it; it is replayed).
    pub shutdown_deadline_ms: u64,
    /// librdkafka `fetch.wait.max.ms`: how long the broker may hold a fetch
    /// that found nothing. Brokers that do not answer a waiting fetch as
    /// soon as data arrives (Tansu) add up to this much latency.
    pub fetch_wait_max_ms: u64,
    /// Sessions whose state a consumer keeps in memory; beyond this the
    /// least recently used are dropped (they are reloaded from Postgres).
    pub state_cache_sessions: usize,
    /// Session states are written to Postgres (with the partitions'
    /// checkpoint offsets) at most this often, not with every batch; a
    /// consumer taking a partition over re-applies the records since.
    pub checkpoint_interval_ms: u64,
    /// ... or as soon as this many sessions changed since the last one
    /// (changed sessions stay in memory until written).
    pub checkpoint_max_dirty: usize,
    /// Duplicate detection: hashes of a session's events within this much
    /// event time of its newest event are remembered ...
    pub dedup_window_ms: i64,
    /// ... up to this many per session.
    pub dedup_max_per_session: usize,
    /// Where to resume when a stored position no longer fits the topic
    /// (recreated, truncated, or expired before it was read): `earliest`
    /// (the log start, the default) or `latest` (skip to the end).
    pub on_stale_position: StalePositionPolicy,
    /// `false`: batch transactions commit with `synchronous_commit = off`.
    /// Safe because positions commit in the same transaction: a crash of
    /// Postgres loses the last few batches *and* their positions, which
    /// are then applied again.
    pub synchronous_commit: bool,
}

/// What a consumer does with a stored position the topic cannot honour.
#[derive(Clone, Copy, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum StalePositionPolicy {
    Earliest,
    Latest,
}

impl Default for ConsumerSettings {
    fn default() -> Self {
        Self {
            batch_max_records: 2_000,
            batch_linger_ms: 0,
            retry_backoff_ms: 500,
            shutdown_deadline_ms: 10_000,
            fetch_wait_max_ms: 100,
            state_cache_sessions: 20_000,
            checkpoint_interval_ms: 5_000,
            checkpoint_max_dirty: 5_000,
            dedup_window_ms: 5 * 60 * 1000,
            dedup_max_per_session: 4096,
            on_stale_position: StalePositionPolicy::Earliest,
            synchronous_commit: false,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkSettings {
    /// Consumer group of landing (events topic -> Postgres).
    pub group_id: String,
    /// Consumer group of the intake gate (intake topic -> events topic).
    pub gate_group_id: String,
    /// Serves `/metrics` and `/healthz` for the consumer process.
    pub metrics_listen: String,
}

impl Default for SinkSettings {
    fn default() -> Self {
        Self {
            group_id: "achilles-raw-sink".into(),
            gate_group_id: "achilles-intake-gate".into(),
            metrics_listen: "127.0.0.1:9101".into(),
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ProcessorSettings {
    pub group_id: String,
    /// Serves `/metrics`, `/healthz` and `/readyz`.
    pub metrics_listen: String,
    /// A failure is attributed to the latest edit of a file it names at
    /// most this long before it (event time); docs/processing.md.
    pub correlation_window_ms: i64,
    /// A failure fixed later than this after it happened is not counted
    /// as a break/fix cycle.
    pub fix_window_ms: i64,
    /// Events older than the session's newest event by more than this are
    /// "too late": counted (summary, metric) but not correlated.
    pub allowed_lateness_ms: i64,
}

impl Default for ProcessorSettings {
    fn default() -> Self {
        Self {
            group_id: "achilles-processor".into(),
            metrics_listen: "127.0.0.1:9102".into(),
            correlation_window_ms: 60 * 60 * 1000,
            fix_window_ms: 60 * 60 * 1000,
            allowed_lateness_ms: 60 * 1000,
        }
    }
}

/// The monitoring agent (`achilles-agent`); formulas and checks are
/// documented in docs/agent.md.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSettings {
    /// Deep mode's consumer group (session-ended topic).
    pub group_id: String,
    /// Light mode's consumer group (events topic); its positions live in
    /// `consumer_offsets`, committed with the insights.
    pub light_group_id: String,
    /// Serves `/metrics`, `/healthz` and `/readyz`.
    pub metrics_listen: String,
    /// How long deep mode waits for the raw sink (and light mode) to have
    /// every event a session-ended record announces; after that it judges
    /// what is there and marks the report incomplete.
    pub deep_max_wait_ms: u64,
    /// Clusters and files listed in a session report.
    pub report_top_n: usize,
    /// Thresholds of the light-mode checks.
    pub checks: CheckSettings,
    /// OpenAI-compatible base URL (e.g. `http://127.0.0.1:11434/v1`) for an
    /// optional narrative in session reports. Off when unset.
    pub llm_endpoint: Option<String>,
    pub llm_model: Option<String>,
    pub llm_api_key: Option<SecretString>,
    pub llm_timeout_ms: u64,
}

impl Default for AgentSettings {
    fn default() -> Self {
        Self {
            group_id: "achilles-agent".into(),
            light_group_id: "achilles-agent-light".into(),
            metrics_listen: "127.0.0.1:9103".into(),
            deep_max_wait_ms: 30_000,
            report_top_n: 5,
            checks: CheckSettings::default(),
            llm_endpoint: None,
            llm_model: None,
            llm_api_key: None,
            llm_timeout_ms: 20_000,
        }
    }
}

/// When each light-mode check raises and resolves (docs/agent.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CheckSettings {
    /// high_error_density: failing share of the last `error_density_window`
    /// events at which it is raised ...
    pub error_density_threshold: f64,
    /// ... once the window holds at least this many events ...
    pub error_density_min_events: usize,
    pub error_density_window: usize,
    /// ... and below which an open one resolves (hysteresis, no flapping).
    pub error_density_clear: f64,
    /// Density at which it becomes critical.
    pub error_density_critical: f64,
    /// agent_churn: break/fix cycles on one file within the window.
    pub churn_min_cycles: usize,
    pub churn_window_ms: i64,
    /// command_loop: failures of the same command since it last succeeded,
    /// within the window.
    pub loop_min_repeats: usize,
    pub loop_window_ms: i64,
    /// stalled_session: agent actions since the last successful command or
    /// test run (with at least one failed one among them).
    pub stalled_min_actions: usize,
    /// runaway_cost: session totals (critical at twice the limit).
    pub max_session_tokens: i64,
    pub max_session_cost_usd: f64,
}

impl Default for CheckSettings {
    fn default() -> Self {
        Self {
            error_density_threshold: 0.5,
            error_density_min_events: 10,
            error_density_window: 20,
            error_density_clear: 0.3,
            error_density_critical: 0.8,
            churn_min_cycles: 3,
            churn_window_ms: 30 * 60 * 1000,
            loop_min_repeats: 3,
            loop_window_ms: 10 * 60 * 1000,
            stalled_min_actions: 30,
            max_session_tokens: 2_000_000,
            max_session_cost_usd: 10.0,
        }
    }
}

/// Live push of insight transitions: the API's Server-Sent Events stream
/// and the agent's webhook deliveries (docs/push.md).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PushSettings {
    /// Consumer group of the agent's recorder on the insights topic.
    pub group_id: String,
    /// How often the API looks for new transitions to stream.
    pub stream_poll_ms: u64,
    /// Events queued per stream connection ...
    pub stream_buffer: usize,
    /// ... and how long that queue may stay full (the client not reading)
    /// before the connection is dropped; the client resumes with
    /// `Last-Event-ID`.
    pub stream_stall_ms: u64,
    /// Comment lines sent to idle streams, so proxies keep them open.
    pub stream_heartbeat_ms: u64,
    /// Concurrent streams per API process; more get 503.
    pub stream_max_connections: usize,
    /// Failed attempts after which a delivery is dead-lettered.
    pub webhook_max_attempts: u32,
    /// First retry delay; doubled per attempt up to `webhook_backoff_max_ms`.
    pub webhook_backoff_ms: u64,
    pub webhook_backoff_max_ms: u64,
    /// Time limit of one delivery attempt (connect, send, response).
    pub webhook_timeout_ms: u64,
    /// How often the delivery worker looks for due deliveries when idle.
    pub webhook_poll_ms: u64,
    /// Deliveries claimed per round.
    pub webhook_batch: i64,
    pub webhook_max_endpoints_per_tenant: i64,
    /// Deliver to loopback, private, link-local and metadata addresses too.
    /// Off: such destinations are refused (SSRF), at registration and at
    /// every delivery.
    pub webhook_allow_private: bool,
    /// Address ranges allowed even though private (e.g. `10.1.2.0/24` for
    /// an internal receiver), comma-separated CIDRs.
    pub webhook_allowed_cidrs: String,
}

impl Default for PushSettings {
    fn default() -> Self {
        Self {
            group_id: "achilles-agent-push".into(),
            stream_poll_ms: 500,
            stream_buffer: 256,
            stream_stall_ms: 10_000,
            stream_heartbeat_ms: 15_000,
            stream_max_connections: 1_000,
            webhook_max_attempts: 8,
            webhook_backoff_ms: 1_000,
            webhook_backoff_max_ms: 3_600_000,
            webhook_timeout_ms: 10_000,
            webhook_poll_ms: 1_000,
            webhook_batch: 32,
            webhook_max_endpoints_per_tenant: 20,
            webhook_allow_private: false,
            webhook_allowed_cidrs: String::new(),
        }
    }
}

/// Label bounds of the spend counters (`achilles_llm_tokens_total`,
/// `achilles_llm_cost_usd_total`): the first N distinct values a process
/// sees get their own label, later ones are counted as `other`.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SpendSettings {
    pub max_tenants: usize,
    pub max_providers: usize,
    pub max_models: usize,
}

impl Default for SpendSettings {
    fn default() -> Self {
        Self {
            max_tenants: 100,
            max_providers: 10,
            max_models: 30,
        }
    }
}

#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSettings {
    /// `json` (default) or `pretty`.
    pub format: String,
    /// An `EnvFilter` directive; `RUST_LOG` wins when set.
    pub filter: String,
    /// OTLP/HTTP base URL of a trace collector, e.g.
    /// `http://otel-collector:4318` (spans go to `<url>/v1/traces`, as
    /// protobuf). Unset or empty: no export (the default).
    pub otlp_endpoint: Option<String>,
    /// `service.name` of exported spans; unset: the binary's name
    /// (`achilles-api`, `achilles-raw-sink`, ...).
    pub service_name: Option<String>,
}

impl Default for LogSettings {
    fn default() -> Self {
        Self {
            format: "json".into(),
            filter: "info".into(),
            otlp_endpoint: None,
            service_name: None,
        }
    }
}

/// `[scrub]`: secret scrubbing before events are hashed and published, in
/// the API and the intake gate (docs/scrubbing.md). Operator rules take
/// the shape of `[[cluster.rules]]`; a `secret` capture group, if the
/// pattern has one, is all that is replaced:
///
/// ```toml
/// [scrub]
/// enabled = true                # default
/// email = false                 # default: e-mail addresses are kept
/// [[scrub.rules]]
/// name = "acme-ticket-key"      # in the marker: [REDACTED:acme-ticket-key]
/// pattern = 'ACME-[0-9a-f]{32}' # `regex` crate syntax
/// tenants = ["acme"]            # optional; omitted or empty: every tenant
/// ```
///
/// Env: `ACHILLES_SCRUB__ENABLED`, `ACHILLES_SCRUB__EMAIL`. Compiled when
/// the API and the raw sink start ([`ScrubSettings::compile`]); an
/// invalid rule stops them with an error naming it.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScrubSettings {
    pub enabled: bool,
    pub email: bool,
    pub rules: Vec<MaskRuleSettings>,
}

impl Default for ScrubSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            email: false,
            rules: Vec::new(),
        }
    }
}

impl ScrubSettings {
    /// Compiles the built-in and operator rules; an invalid one is an
    /// error naming it.
    pub fn compile(&self) -> Result<crate::scrub::Scrubber, crate::scrub::ScrubError> {
        let custom: Vec<crate::scrub::CustomRule> = self
            .rules
            .iter()
            .map(|r| crate::scrub::CustomRule {
                name: r.name.clone(),
                pattern: r.pattern.clone(),
                tenants: r.tenants.clone(),
            })
            .collect();
        crate::scrub::Scrubber::new(
            crate::scrub::Options {
                enabled: self.enabled,
                email: self.email,
            },
            &custom,
        )
    }
}

/// `[session]`: the session lifecycle. A session with no record for
/// `idle_timeout_ms` is ended with status `timed_out` by the processor's
/// reaper, which looks every `reaper_interval_ms` (docs/processing.md,
/// "Idle sessions"). `idle_timeout_ms = 0` turns the reaper off.
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SessionSettings {
    pub idle_timeout_ms: u64,
    pub reaper_interval_ms: u64,
}

impl Default for SessionSettings {
    fn default() -> Self {
        Self {
            idle_timeout_ms: 30 * 60 * 1000,
            reaper_interval_ms: 30_000,
        }
    }
}

/// `[retention]`: how long stored rows are kept (docs/operations.md,
/// "Retention"). Retention works by session: a session idle (no start,
/// event or end) for `events_days` loses its events and its consumers'
/// state; idle for `derived_days`, the session row and every row derived
/// from it go. One raw-sink instance prunes at a time (advisory lock).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionSettings {
    /// Off: nothing is ever pruned.
    pub enabled: bool,
    pub events_days: u32,
    /// At least `events_days`.
    pub derived_days: u32,
    /// Seconds between pruning passes.
    pub interval_secs: u64,
    /// Rows per delete statement (each its own short transaction).
    pub batch_rows: i64,
    /// Sessions picked per step.
    pub batch_sessions: i64,
}

impl Default for RetentionSettings {
    fn default() -> Self {
        Self {
            enabled: true,
            events_days: 30,
            derived_days: 90,
            interval_secs: 3600,
            batch_rows: 5_000,
            batch_sessions: 100,
        }
    }
}

#[derive(Debug, thiserror::Error)]
#[error("invalid configuration: {0}")]
pub struct ConfigError(String);

impl Settings {
    /// Loads all layers as documented at the top of this module, then
    /// [`check`](Self::check)s the result.
    pub fn load() -> Result<Self, ConfigError> {
        let file = std::env::var_os("ACHILLES_CONFIG")
            .map(PathBuf::from)
            .or_else(|| Some(PathBuf::from("achilles.toml")).filter(|p| p.exists()));
        let s: Self = Self::figment(file)
            .extract()
            .map_err(|e| ConfigError(e.to_string()))?;
        s.check()?;
        Ok(s)
    }

    /// Refuses settings that type-check but would break at run time:
    /// validation limits downstream cannot hold, impossible replication.
    /// Services call it again when built from settings made in code.
    pub fn check(&self) -> Result<(), ConfigError> {
        self.validation.check().map_err(ConfigError)?;
        let k = &self.kafka;
        if k.min_insync_replicas < 1 || k.min_insync_replicas > k.replication_factor {
            return Err(ConfigError(format!(
                "kafka.min_insync_replicas ({}) must be between 1 and kafka.replication_factor ({})",
                k.min_insync_replicas, k.replication_factor
            )));
        }
        let r = &self.retention;
        if r.events_days == 0 || r.derived_days < r.events_days {
            return Err(ConfigError(format!(
                "retention.events_days ({}) must be at least 1 and retention.derived_days ({}) at least as large",
                r.events_days, r.derived_days
            )));
        }
        if r.batch_rows < 1 || r.batch_sessions < 1 || r.interval_secs == 0 {
            return Err(ConfigError(
                "retention.batch_rows, batch_sessions and interval_secs must be positive".into(),
            ));
        }
        Ok(())
    }

    pub fn figment(file: Option<PathBuf>) -> Figment {
        // Lowest layer: the standard OpenTelemetry variables, as fallbacks.
        let mut f = Figment::new().merge(
            Env::raw()
                .only(&["OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_SERVICE_NAME"])
                .map(|k| match k.as_str() {
                    "OTEL_SERVICE_NAME" | "otel_service_name" => "log.service_name".into(),
                    _ => "log.otlp_endpoint".into(),
                }),
        );
        if let Some(path) = file {
            f = f.merge(Toml::file_exact(path));
        }
        f.merge(Env::prefixed("ACHILLES_").split("__").filter(|k| {
            // Only `SECTION__KEY` variables (figment may show them split, as
            // `section.key`); single-underscore ones such as ACHILLES_API_URL
            // belong to layer 4 or to the CLI.
            let k = k.as_str();
            k.contains("__") || k.contains('.') || !k.contains('_')
        }))
        .merge(
            Env::raw()
                .only(&[
                    "DATABASE_URL",
                    "ACHILLES_DEV_API_KEY",
                    "ACHILLES_LOG_FORMAT",
                ])
                .map(|k| match k.as_str() {
                    "DATABASE_URL" | "database_url" => "database.url".into(),
                    "ACHILLES_DEV_API_KEY" | "achilles_dev_api_key" => "auth.dev_api_key".into(),
                    _ => "log.format".into(),
                }),
        )
    }
}

#[cfg(test)]
// figment's `Jail` closures return its large error type by design.
#[allow(clippy::result_large_err)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;

    #[test]
    fn precedence_defaults_file_env_shortcuts() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "a.toml",
                "[kafka]\nbrokers = \"file:9092\"\npartitions = 3\n[api]\nlisten = \"0.0.0.0:1\"\n",
            )?;
            jail.set_env("ACHILLES_KAFKA__BROKERS", "env:9092");
            jail.set_env("ACHILLES_SINK__METRICS_LISTEN", "127.0.0.1:0");
            jail.set_env("ACHILLES_API_URL", "http://ignored");
            jail.set_env("DATABASE_URL", "postgres://x@y/z");
            jail.set_env("ACHILLES_DEV_API_KEY", "sekrit");
            let s: Settings = Settings::figment(Some("a.toml".into())).extract()?;
            assert_eq!(s.kafka.brokers, "env:9092", "env beats file");
            assert_eq!(s.kafka.partitions, 3, "file beats default");
            assert_eq!(s.api.listen, "0.0.0.0:1");
            assert_eq!(
                s.sink.metrics_listen, "127.0.0.1:0",
                "keys with underscores"
            );
            assert_eq!(s.api.max_batch_events, 1_000, "default kept");
            assert_eq!(s.database.url.expose_secret(), "postgres://x@y/z");
            assert_eq!(s.auth.dev_api_key.expose_secret(), "sekrit");
            Ok(())
        });
    }

    #[test]
    fn agent_checks_nest_and_the_llm_is_off_by_default() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("ACHILLES_AGENT__CHECKS__LOOP_MIN_REPEATS", "5");
            jail.set_env("ACHILLES_AGENT__LLM_API_KEY", "sk-secret-value");
            let s: Settings = Settings::figment(None).extract()?;
            assert_eq!(s.agent.checks.loop_min_repeats, 5);
            assert_eq!(s.agent.checks.churn_min_cycles, 3, "default kept");
            assert_eq!(s.agent.group_id, "achilles-agent");
            assert!(s.agent.llm_endpoint.is_none());
            assert!(!format!("{s:?}").contains("sk-secret-value"));
            Ok(())
        });
        assert!(Settings::default().agent.llm_api_key.is_none());
    }

    #[test]
    #[allow(clippy::result_large_err)] // figment::Jail's closure type
    fn otlp_export_is_off_by_default_and_otel_env_is_a_fallback() {
        figment::Jail::expect_with(|jail| {
            let s: Settings = Settings::figment(None).extract()?;
            assert!(s.log.otlp_endpoint.is_none(), "off by default");
            assert!(s.log.service_name.is_none());
            jail.set_env("OTEL_EXPORTER_OTLP_ENDPOINT", "http://otel:4318");
            jail.set_env("OTEL_SERVICE_NAME", "achilles-eu");
            let s: Settings = Settings::figment(None).extract()?;
            assert_eq!(s.log.otlp_endpoint.as_deref(), Some("http://otel:4318"));
            assert_eq!(s.log.service_name.as_deref(), Some("achilles-eu"));
            jail.create_file("c.toml", "[log]\notlp_endpoint = \"http://file:4318\"\n")?;
            let s: Settings = Settings::figment(Some("c.toml".into())).extract()?;
            assert_eq!(s.log.otlp_endpoint.as_deref(), Some("http://file:4318"));
            jail.set_env("ACHILLES_LOG__OTLP_ENDPOINT", "http://env:4318");
            let s: Settings = Settings::figment(Some("c.toml".into())).extract()?;
            assert_eq!(s.log.otlp_endpoint.as_deref(), Some("http://env:4318"));
            Ok(())
        });
    }

    #[test]
    fn secrets_are_redacted_in_debug_output() {
        let mut s = Settings::default();
        s.auth.dev_api_key = SecretString::from(DEV_API_KEY);
        s.kafka
            .extra
            .insert("sasl.password".into(), "hunter2-sasl-secret".into());
        s.kafka
            .extra
            .insert("ssl.key.password".into(), "tls-key-secret".into());
        let text = format!("{s:?}");
        assert!(!text.contains(DEV_API_KEY), "{text}");
        assert!(!text.contains("postgres://"), "{text}");
        assert!(!text.contains("hunter2-sasl-secret"), "{text}");
        assert!(!text.contains("tls-key-secret"), "{text}");
        assert!(text.contains("sasl.password"), "keys stay visible: {text}");
    }

    #[test]
    fn the_dev_key_is_off_unless_set() {
        assert!(Settings::default()
            .auth
            .dev_api_key
            .expose_secret()
            .is_empty());
    }

    #[test]
    fn check_refuses_unsafe_limits_and_impossible_replication() {
        assert!(Settings::default().check().is_ok());
        let mut s = Settings::default();
        s.validation.max_name_bytes = 10_000;
        assert!(s
            .check()
            .unwrap_err()
            .to_string()
            .contains("max_name_bytes"));
        let mut s = Settings::default();
        s.kafka.min_insync_replicas = 2;
        assert!(s.check().unwrap_err().to_string().contains("min_insync"));
        figment::Jail::expect_with(|jail| {
            jail.set_env("ACHILLES_VALIDATION__MAX_AGE_SECS", i64::MAX.to_string());
            assert!(Settings::load().is_err(), "load checks");
            Ok(())
        });
    }

    #[test]
    fn cluster_rules_load_from_the_file_and_bad_ones_name_themselves() {
        figment::Jail::expect_with(|jail| {
            let s: Settings = Settings::figment(None).extract()?;
            assert!(s.cluster.rules.is_empty(), "no rules by default");
            jail.create_file(
                "r.toml",
                "[[cluster.rules]]\nname = \"codes\"\npattern = 'ORD-[A-Z]+'\n\n\
                 [[cluster.rules]]\nname = \"acme\"\npattern = 'node-[a-z]+'\ntenants = [\"acme\"]\n",
            )?;
            let s: Settings = Settings::figment(Some("r.toml".into())).extract()?;
            let rules = s.cluster.compile().expect("valid rules");
            assert_eq!(
                rules.template_of("acme", "ORD-AB on node-x").text(),
                "<*> on <*>"
            );
            assert_eq!(
                rules.template_of("b", "ORD-AB on node-x").text(),
                "<*> on node-x"
            );
            jail.create_file(
                "bad.toml",
                "[[cluster.rules]]\nname = \"broken-rule\"\npattern = '[a-'\n",
            )?;
            let s: Settings = Settings::figment(Some("bad.toml".into())).extract()?;
            let err = s.cluster.compile().expect_err("invalid pattern");
            assert!(err.to_string().contains("broken-rule"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn scrub_rules_load_from_file_and_env_and_bad_ones_name_themselves() {
        figment::Jail::expect_with(|jail| {
            let s: Settings = Settings::figment(None).extract()?;
            assert!(s.scrub.enabled && !s.scrub.email && s.scrub.rules.is_empty());
            jail.create_file(
                "s.toml",
                "[scrub]\nemail = true\n[[scrub.rules]]\nname = \"acme-key\"\n\
                 pattern = 'ACME-[0-9]{6}'\ntenants = [\"acme\"]\n",
            )?;
            let s: Settings = Settings::figment(Some("s.toml".into())).extract()?;
            let scrub = s.scrub.compile().expect("valid rules");
            let mut tally = crate::scrub::Tally::default();
            let text = "key ACME-123456 for a@b.io";
            assert_eq!(
                scrub.scrub_str("acme", text, &mut tally).as_deref(),
                Some("key [REDACTED:acme-key] for [REDACTED:email]")
            );
            assert_eq!(
                scrub.scrub_str("other", text, &mut tally).as_deref(),
                Some("key ACME-123456 for [REDACTED:email]")
            );
            jail.set_env("ACHILLES_SCRUB__ENABLED", "false");
            let s: Settings = Settings::figment(Some("s.toml".into())).extract()?;
            let scrub = s.scrub.compile().expect("valid rules");
            assert!(!scrub.is_enabled());
            assert_eq!(scrub.scrub_str("acme", text, &mut tally), None);
            jail.create_file(
                "bad.toml",
                "[[scrub.rules]]\nname = \"broken-rule\"\npattern = '(ghp_'\n",
            )?;
            let s: Settings = Settings::figment(Some("bad.toml".into())).extract()?;
            let err = s.scrub.compile().expect_err("invalid pattern");
            assert!(err.to_string().contains("broken-rule"), "{err}");
            Ok(())
        });
    }

    #[test]
    fn the_idle_timeout_defaults_to_30_minutes_and_reads_its_variable() {
        figment::Jail::expect_with(|jail| {
            let s: Settings = Settings::figment(None).extract()?;
            assert_eq!(s.session.idle_timeout_ms, 1_800_000);
            assert_eq!(s.session.reaper_interval_ms, 30_000);
            jail.set_env("ACHILLES_SESSION__IDLE_TIMEOUT_MS", "1500");
            let s: Settings = Settings::figment(None).extract()?;
            assert_eq!(s.session.idle_timeout_ms, 1500);
            Ok(())
        });
    }

    #[test]
    fn unknown_keys_in_a_section_are_errors() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("b.toml", "[kafka]\nbrokerz = \"x\"\n")?;
            let err = Settings::figment(Some("b.toml".into()))
                .extract::<Settings>()
                .unwrap_err();
            assert!(err.to_string().contains("brokerz"), "{err}");
            Ok(())
        });
    }
}
