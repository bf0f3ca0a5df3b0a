//! The monitoring agent: judges sessions and warns while they run.
//!
//! Two consumer loops in one process, each its own consumer group:
//! * **deep** ([`deep`]) on the session-ended topic: when the processor has
//!   folded in a session's end, writes one `agent_performance` row per
//!   agent and a readable `session_reports` document;
//! * **light** ([`light`]) on the events topic: folds every event into the
//!   session's rolling state, runs the checks of the evaluation graph
//!   ([`graph`], [`checks`]) and raises, updates and resolves deduplicated
//!   `insights`, announcing each transition on the insights topic through
//!   the transactional outbox (`achilles_runtime::outbox`).
//!
//! A third loop, [`push`], records every insight transition for the API's
//! live stream and delivers it to the tenant's webhooks (docs/push.md).
//!
//! An optional LLM narrative ([`narrative`]) is added to reports when
//! `agent.llm_endpoint` is set. Formulas and thresholds: docs/agent.md.

pub mod checks;
pub mod db;
pub mod deep;
pub mod graph;
pub mod light;
pub mod narrative;
pub mod observe;
pub mod push;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::Notify;

use achilles_core::config::Settings;
use achilles_core::topics::{Topic, Topics};
use achilles_core::{db as core_db, kafka};
use achilles_runtime::settings::subscribed_consumer;
use achilles_runtime::{
    ops, ConsumerLoop, DeadLetterSink, ExactlyOnce, LoopSettings, Shutdown, StepSettings,
};

pub struct AgentService {
    pub deep: ConsumerLoop<deep::DeepHandler>,
    pub light: ExactlyOnce<light::LightHandler>,
    pub push: ConsumerLoop<push::recorder::RecorderHandler>,
    pub delivery: push::delivery::DeliveryWorker,
    producer: rdkafka::producer::FutureProducer,
    dead_letter_topic: String,
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
    #[error("{0}")]
    Config(String),
}

impl AgentService {
    /// Connects, creates topics if configured, subscribes both loops.
    pub async fn build(s: Settings) -> Result<Self, StartupError> {
        achilles_core::metrics::init_series(&[light::NAME, deep::NAME, push::recorder::NAME]);
        // Every insight series exists at zero, so the first raise shows in rate().
        for node in checks::registry(&s.agent.checks) {
            for severity in ["info", "warning", "critical"] {
                achilles_core::metrics::INSIGHTS_RAISED
                    .with_label_values(&[node.insight_type(), severity]);
            }
        }
        let topics = Topics::new(s.kafka.topic_prefix.clone());
        if s.kafka.create_topics {
            kafka::ensure_topics(&s.kafka, &topics).await?;
        }
        let pool = core_db::connect_lazy(&s.database)?;
        let a = &s.agent;
        let producer = kafka::producer(&s.kafka)?;
        let dead_letter_topic = topics.name(Topic::DeadLetter);

        let deep_consumer = subscribed_consumer(
            &s.kafka,
            &s.consumer,
            &a.group_id,
            deep::NAME,
            &[&topics.name(Topic::SessionEnded)],
        )?;
        let deep_dead_letters =
            DeadLetterSink::new(producer.clone(), &topics, deep::NAME, a.group_id.clone());
        let deep = deep::DeepHandler {
            pool: pool.clone(),
            dead_letters: deep_dead_letters.clone(),
            max_wait: Duration::from_millis(a.deep_max_wait_ms),
            top_n: a.report_top_n,
            narrator: narrative::Narrator::from_settings(a),
            first_seen: Mutex::new(HashMap::new()),
        };

        let events = topics.name(Topic::Events);
        let light_consumer = subscribed_consumer(
            &s.kafka,
            &s.consumer,
            &a.light_group_id,
            light::NAME,
            &[&events],
        )?;
        let wake = Arc::new(Notify::new());
        let light = light::LightHandler {
            graph: graph::Graph::from_settings(&a.checks),
            topics: topics.clone(),
        };

        // Insight transitions for the live stream and webhooks: recording is
        // idempotent (one row per transition), so the at-least-once loop.
        let push_consumer = subscribed_consumer(
            &s.kafka,
            &s.consumer,
            &s.push.group_id,
            push::recorder::NAME,
            &[&topics.name(Topic::Insights)],
        )?;
        let delivery_wake = Arc::new(Notify::new());
        let push_dead_letters = DeadLetterSink::new(
            producer.clone(),
            &topics,
            push::recorder::NAME,
            s.push.group_id.clone(),
        );
        let recorder = push::recorder::RecorderHandler {
            pool: pool.clone(),
            dead_letters: push_dead_letters.clone(),
            wake: delivery_wake.clone(),
        };
        let delivery = push::delivery::DeliveryWorker {
            pool: pool.clone(),
            policy: achilles_core::webhook::AddressPolicy::from_settings(&s.push)
                .map_err(StartupError::Config)?,
            settings: s.push.clone(),
            wake: delivery_wake,
        };

        let (ops_listener, ops_addr) = ops::bind(&a.metrics_listen).await?;
        Ok(Self {
            deep: ConsumerLoop::new(
                deep_consumer,
                deep,
                deep_dead_letters,
                LoopSettings::from_settings(&s.consumer),
            ),
            light: ExactlyOnce::new(
                light,
                light_consumer,
                pool.clone(),
                a.light_group_id.clone(),
                events,
                dead_letter_topic.clone(),
                StepSettings::from_settings(&s.consumer),
                wake.clone(),
            ),
            push: ConsumerLoop::new(
                push_consumer,
                recorder,
                push_dead_letters,
                LoopSettings::from_settings(&s.consumer),
            ),
            delivery,
            producer,
            dead_letter_topic,
            wake,
            ops_listener,
            ops_addr,
            pool,
        })
    }

    pub fn ops_addr(&self) -> SocketAddr {
        self.ops_addr
    }

    /// Runs both loops, the outbox publisher and the ops server until
    /// `shutdown` resolves.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let (stop, driver) = Shutdown::new(shutdown);
        let (_, _, _, _, _, _, ops) = tokio::join!(
            driver,
            self.deep.run(stop.wait()),
            self.light.run_until(stop.wait()),
            self.push.run(stop.wait()),
            self.delivery.run(stop.receiver()),
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
