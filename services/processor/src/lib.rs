//! The stream processor: error clusters, induced-error correlations and
//! session summaries, applied exactly once.
//!
//! A consumer group over the events topic (keyed by session, so a session's
//! records stay on one partition and in order). Instances scale out by
//! splitting partitions; a session's state is checkpointed in Postgres
//! (`consumer_state`) with every batch, so whichever instance owns its
//! partition can continue it after a rebalance or a crash. The processor is
//! a [`achilles_runtime::Stage`] ([`handler`]); the exactly-once argument
//! is the runtime's. [`engine`] holds the rules, [`db`] the SQL. The
//! [`reaper`] ends idle sessions (`timed_out`) through the events topic.

pub mod clusters;
pub mod db;
pub mod engine;
pub mod evaluate;
pub mod handler;
pub mod reaper;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use achilles_core::config::Settings;
use achilles_core::topics::{Topic, Topics};
use achilles_core::{db as core_db, kafka};
use achilles_runtime::settings::subscribed_consumer;
use achilles_runtime::{ops, ExactlyOnce, Shutdown, StepSettings};

pub struct ProcessorService {
    pub consumer_loop: ExactlyOnce<handler::Processor>,
    producer: rdkafka::producer::FutureProducer,
    dead_letter_topic: String,
    wake: Arc<Notify>,
    ops_listener: TcpListener,
    ops_addr: SocketAddr,
    pool: sqlx::PgPool,
    reaper: Option<reaper::Reaper>,
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
        let pool = core_db::connect_lazy(&s.database)?;
        let p = &s.processor;
        let events = topics.name(Topic::Events);
        let consumer = subscribed_consumer(
            &s.kafka,
            &s.consumer,
            &p.group_id,
            handler::NAME,
            &[&events],
        )?;
        let wake = Arc::new(Notify::new());
        let dead_letter_topic = topics.name(Topic::DeadLetter);
        let stage = handler::Processor {
            engine: engine::EngineConfig::from_settings(p),
            topics: topics.clone(),
            mask_rules,
        };
        let (ops_listener, ops_addr) = ops::bind(&p.metrics_listen).await?;
        let producer = kafka::producer(&s.kafka)?;
        let reaper = reaper::Reaper::new(
            pool.clone(),
            achilles_core::publisher::Publisher::new(producer.clone(), &topics),
            &s.session,
        );
        Ok(Self {
            consumer_loop: ExactlyOnce::new(
                stage,
                consumer,
                pool.clone(),
                p.group_id.clone(),
                events,
                dead_letter_topic.clone(),
                StepSettings::from_settings(&s.consumer),
                wake.clone(),
            ),
            producer,
            dead_letter_topic,
            wake,
            ops_listener,
            ops_addr,
            pool,
            reaper,
        })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// Runs the consumer loop, the outbox publisher, the session reaper and
    /// the ops server until `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, driver) = Shutdown::new(shutdown);
        let reaper = async {
            if let Some(r) = self.reaper {
                r.run(stop.wait()).await;
            }
        };
        let (_, _, _, _, ops) = tokio::join!(
            reaper,
            driver,
            self.consumer_loop.run_until(stop.wait()),
            achilles_runtime::outbox::run(
                self.pool.clone(),
                self.producer,
                self.dead_letter_topic,
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
