//! The raw sink: the consumers that move records from Kafka to Postgres.
//!
//! Two loops run in one process, each its own consumer group:
//! * **landing** ([`landing`]) reads the canonical events topic and writes
//!   `sessions` and `events`, idempotently, in one transaction per batch;
//! * **gate** ([`gate`]) reads the intake topic that direct-to-Kafka
//!   producers write, authenticates and validates each record, and
//!   republishes it to the events topic (or dead-letters it).
//!
//! Landing is a stage of the runtime's exactly-once step
//! ([`achilles_runtime::ExactlyOnce`]): its positions commit with the rows.
//! The gate is an at-least-once [`achilles_runtime::ConsumerLoop`]: what it
//! republishes twice after a crash is deduplicated downstream by the hash.

pub mod copy;
pub mod db;
pub mod gate;
pub mod landing;
pub mod retention;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use achilles_core::auth::KeyStore;
use achilles_core::config::Settings;
use achilles_core::publisher::Publisher;
use achilles_core::quota::Quotas;
use achilles_core::topics::{Topic, Topics};
use achilles_core::{db as core_db, kafka};

use achilles_runtime::settings::subscribed_consumer;
use achilles_runtime::{
    ops, ConsumerLoop, DeadLetterSink, ExactlyOnce, LoopSettings, Shutdown, StepSettings,
};

pub use achilles_runtime::StepReport;

pub struct RawSink {
    pub landing: ExactlyOnce<landing::Landing>,
    pub gate: ConsumerLoop<gate::Gate>,
    producer: rdkafka::producer::FutureProducer,
    dead_letter_topic: String,
    wake: Arc<Notify>,
    ops_listener: TcpListener,
    ops_addr: SocketAddr,
    pool: sqlx::PgPool,
    retention: achilles_core::config::RetentionSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    #[error("invalid API keys: {0}")]
    Keys(#[from] achilles_core::auth::KeyConfigError),
    #[error("cannot bind the ops listener: {0}")]
    Bind(#[from] std::io::Error),
    #[error("{0}")]
    Config(#[from] achilles_core::config::ConfigError),
    #[error("quotas: {0}")]
    Quotas(#[from] achilles_core::quota::QuotaConfigError),
    #[error("scrub settings: {0}")]
    Scrub(#[from] achilles_core::scrub::ScrubError),
}

impl RawSink {
    /// Connects, creates topics if configured, subscribes both loops.
    pub async fn build(s: Settings) -> Result<Self, StartupError> {
        achilles_core::metrics::init_series(&[landing::NAME, gate::NAME]);
        s.check()?;
        achilles_core::spend::configure(&s.spend);
        let topics = Topics::new(s.kafka.topic_prefix.clone());
        if s.kafka.create_topics {
            kafka::ensure_topics(&s.kafka, &topics).await?;
        }
        let pool = core_db::connect_lazy(&s.database)?;
        let producer = kafka::producer(&s.kafka)?;
        let events = topics.name(Topic::Events);
        let dead_letter_topic = topics.name(Topic::DeadLetter);
        let wake = Arc::new(Notify::new());

        let landing_consumer = subscribed_consumer(
            &s.kafka,
            &s.consumer,
            &s.sink.group_id,
            landing::NAME,
            &[&events],
        )?;
        let landing = ExactlyOnce::new(
            landing::Landing,
            landing_consumer,
            pool.clone(),
            s.sink.group_id.clone(),
            events,
            dead_letter_topic.clone(),
            StepSettings::from_settings(&s.consumer),
            wake.clone(),
        );

        let gate_consumer = subscribed_consumer(
            &s.kafka,
            &s.consumer,
            &s.sink.gate_group_id,
            gate::NAME,
            &[&topics.name(Topic::Intake)],
        )?;
        let keys = KeyStore::from_settings(&s.auth)?;
        let quotas = Quotas::new(&s.quotas, keys.tenants())?;
        let gate = gate::Gate {
            quotas,
            keys,
            publisher: Publisher::new(producer.clone(), &topics),
            dead_letters: DeadLetterSink::new(
                producer.clone(),
                &topics,
                gate::NAME,
                s.sink.gate_group_id.clone(),
            ),
            limits: s.validation.clone(),
            scrubber: s.scrub.compile()?,
        };
        let gate_dead_letters = gate.dead_letters.clone();

        let (ops_listener, ops_addr) = ops::bind(&s.sink.metrics_listen).await?;
        Ok(Self {
            landing,
            gate: ConsumerLoop::new(
                gate_consumer,
                gate,
                gate_dead_letters,
                LoopSettings::from_settings(&s.consumer),
            ),
            producer,
            dead_letter_topic,
            wake,
            ops_listener,
            ops_addr,
            pool,
            retention: s.retention.clone(),
        })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// Runs both loops, the outbox publisher (landing's dead letters), the
    /// retention task and the ops server until `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, driver) = Shutdown::new(shutdown);
        let (_, _, _, _, _, ops) = tokio::join!(
            driver,
            retention::run(self.pool.clone(), self.retention, stop.wait()),
            self.landing.run_until(stop.wait()),
            self.gate.run(stop.wait()),
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
