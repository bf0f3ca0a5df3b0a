//! The raw sink: the consumers that move records from Kafka to Postgres.
//!
//! Two loops run in one process, each its own consumer group:
//! * **landing** ([`landing`]) reads the canonical events topic and writes
//!   `sessions` and `events`, idempotently, in one transaction per batch;
//! * **gate** ([`gate`]) reads the intake topic that direct-to-Kafka
//!   producers write, authenticates and validates each record, and
//!   republishes it to the events topic (or dead-letters it).
//!
//! Both are [`achilles_runtime::ConsumerLoop`]s: at-least-once, offsets
//! committed after effects are durable, graceful shutdown with a deadline.

pub mod gate;
pub mod landing;

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use rdkafka::consumer::Consumer;
use tokio::net::TcpListener;

use achilles_core::auth::KeyStore;
use achilles_core::config::Settings;
use achilles_core::publisher::Publisher;
use achilles_core::topics::{Topic, Topics};
use achilles_core::{db, kafka};

use achilles_runtime::{ops, ConsumerCtx, ConsumerLoop, DeadLetterSink, LoopSettings, Shutdown};

pub use achilles_runtime::StepReport;

pub struct RawSink {
    pub landing: ConsumerLoop<landing::Lander>,
    pub gate: ConsumerLoop<gate::Gate>,
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
    #[error("invalid API keys: {0}")]
    Keys(#[from] achilles_core::auth::KeyConfigError),
    #[error("cannot bind the ops listener: {0}")]
    Bind(#[from] std::io::Error),
}

impl RawSink {
    /// Connects, creates topics if configured, subscribes both loops.
    pub async fn build(s: Settings) -> Result<Self, StartupError> {
        achilles_core::metrics::init_series(&[landing::NAME, gate::NAME]);
        achilles_core::spend::configure(&s.spend);
        let topics = Topics::new(s.kafka.topic_prefix.clone());
        if s.kafka.create_topics {
            kafka::ensure_topics(&s.kafka, &topics).await?;
        }
        let pool = db::connect_lazy(&s.database)?;
        let producer = kafka::producer(&s.kafka)?;
        let loop_settings = || LoopSettings {
            max_records: s.sink.batch_max_records,
            linger: Duration::from_millis(s.sink.batch_linger_ms),
            retry_backoff: Duration::from_millis(s.sink.retry_backoff_ms),
            shutdown_deadline: Duration::from_millis(s.sink.shutdown_deadline_ms),
        };
        let mut kafka_settings = s.kafka.clone();
        kafka_settings
            .extra
            .entry("statistics.interval.ms".into())
            .or_insert_with(|| "5000".into());

        let landing_consumer = kafka::consumer(
            &kafka_settings,
            &s.sink.group_id,
            ConsumerCtx {
                name: landing::NAME,
            },
        )?;
        landing_consumer.subscribe(&[&topics.name(Topic::Events)])?;
        let lander = landing::Lander {
            pool: pool.clone(),
            dead_letters: DeadLetterSink::new(
                producer.clone(),
                &topics,
                landing::NAME,
                s.sink.group_id.clone(),
            ),
            limits: s.validation.clone(),
        };

        let gate_consumer = kafka::consumer(
            &kafka_settings,
            &s.sink.gate_group_id,
            ConsumerCtx { name: gate::NAME },
        )?;
        gate_consumer.subscribe(&[&topics.name(Topic::Intake)])?;
        let gate = gate::Gate {
            keys: KeyStore::from_settings(&s.auth)?,
            publisher: Publisher::new(producer.clone(), &topics),
            dead_letters: DeadLetterSink::new(
                producer,
                &topics,
                gate::NAME,
                s.sink.gate_group_id.clone(),
            ),
            limits: s.validation.clone(),
        };

        let (ops_listener, ops_addr) = ops::bind(&s.sink.metrics_listen).await?;
        Ok(Self {
            landing: ConsumerLoop::new(landing::NAME, landing_consumer, lander, loop_settings()),
            gate: ConsumerLoop::new(gate::NAME, gate_consumer, gate, loop_settings()),
            ops_listener,
            ops_addr,
            pool,
        })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// Runs both loops and the ops server until `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, driver) = Shutdown::new(shutdown);
        let (_, _, _, ops) = tokio::join!(
            driver,
            self.landing.run(stop.wait()),
            self.gate.run(stop.wait()),
            ops::serve(self.ops_listener, self.pool, stop.wait()),
        );
        ops
    }
}
