//! The stream processor: error clusters, induced-error correlations and
//! session summaries, applied exactly once.
//!
//! A consumer group over the events topic (keyed by session, so a session's
//! records stay on one partition and in order). Instances scale out by
//! splitting partitions; a session's state lives in Postgres
//! (`processor_sessions`), so whichever instance owns its partition can
//! continue it after a rebalance or a crash. See [`handler`] for the
//! exactly-once argument and [`engine`] for the rules.

pub mod clusters;
pub mod engine;
pub mod handler;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio::net::TcpListener;
use tokio::sync::Notify;

use achilles_core::config::Settings;
use achilles_core::topics::{Topic, Topics};
use achilles_core::{db, kafka};
use achilles_runtime::{ops, ConsumerCtx, ConsumerLoop, LoopSettings, Shutdown};

pub use achilles_runtime::StepReport;

pub struct ProcessorService {
    pub consumer_loop: ConsumerLoop<handler::Processor>,
    producer: rdkafka::producer::FutureProducer,
    wake: Arc<Notify>,
    ops_listener: TcpListener,
    ops_addr: SocketAddr,
    pool: sqlx::PgPool,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    #[error("cannot bind the ops listener: {0}")]
    Bind(#[from] std::io::Error),
    #[error("[cluster] configuration: {0}")]
    MaskRules(#[from] achilles_cluster::RuleError),
}

impl ProcessorService {
    pub async fn build(s: Settings) -> Result<Self, StartupError> {
        // Operator-defined masking rules: a bad pattern stops start-up here,
        // before any connection, with the rule's name.
        let mask_rules = Arc::new(s.cluster.compile()?);
        achilles_core::metrics::init_series(&[handler::NAME]);
        let topics = Topics::new(s.kafka.topic_prefix.clone());
        if s.kafka.create_topics {
            kafka::ensure_topics(&s.kafka, &topics).await?;
        }
        let pool = db::connect_lazy(&s.database)?;
        let p = &s.processor;
        let mut kafka_settings = s.kafka.clone();
        kafka_settings
            .extra
            .entry("statistics.interval.ms".into())
            .or_insert_with(|| "5000".into());
        let consumer = kafka::consumer(
            &kafka_settings,
            &p.group_id,
            ConsumerCtx {
                name: handler::NAME,
            },
        )?;
        consumer.subscribe(&[&topics.name(Topic::Events)])?;
        let wake = Arc::new(Notify::new());
        let handler = handler::Processor {
            pool: pool.clone(),
            engine: engine::EngineConfig::from_settings(p),
            limits: s.validation.clone(),
            group: p.group_id.clone(),
            topics: topics.clone(),
            outbox_wake: wake.clone(),
            mask_rules,
        };
        let settings = LoopSettings {
            max_records: p.batch_max_records,
            linger: Duration::from_millis(p.batch_linger_ms),
            retry_backoff: Duration::from_millis(p.retry_backoff_ms),
            shutdown_deadline: Duration::from_millis(p.shutdown_deadline_ms),
        };
        let (ops_listener, ops_addr) = ops::bind(&p.metrics_listen).await?;
        Ok(Self {
            consumer_loop: ConsumerLoop::new(handler::NAME, consumer, handler, settings),
            producer: kafka::producer(&s.kafka)?,
            wake,
            ops_listener,
            ops_addr,
            pool,
        })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// Runs the consumer loop, the outbox publisher and the ops server until
    /// `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, driver) = Shutdown::new(shutdown);
        let (_, _, _, ops) = tokio::join!(
            driver,
            self.consumer_loop.run(stop.wait()),
            achilles_runtime::outbox::run(
                self.pool.clone(),
                self.producer,
                self.wake,
                stop.receiver()
            ),
            ops::serve(self.ops_listener, self.pool, stop.wait()),
        );
        ops
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_bad_masking_rule_stops_start_up_with_its_name() {
        let mut s = Settings::default();
        s.cluster
            .rules
            .push(achilles_core::config::MaskRuleSettings {
                name: "order-codes".into(),
                pattern: "ORD-[A-Z".into(),
                tenants: Vec::new(),
            });
        // Fails before connecting to anything: no broker or database needed.
        let err = match ProcessorService::build(s).await {
            Ok(_) => panic!("a bad pattern must refuse to start"),
            Err(e) => e,
        };
        assert!(matches!(err, StartupError::MaskRules(_)), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("order-codes") && text.contains("invalid pattern"),
            "{text}"
        );
    }
}
