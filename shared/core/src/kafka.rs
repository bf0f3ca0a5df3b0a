//! Broker-agnostic construction of Kafka clients.
//!
//! Nothing here is specific to one broker: the same settings drive Tansu in
//! development and Apache Kafka in production. Anything broker-specific
//! (TLS, SASL) goes through `kafka.extra` verbatim.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{ConsumerContext, StreamConsumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::FutureProducer;
use rdkafka::ClientConfig;

use crate::config::KafkaSettings;
use crate::topics::Topics;

fn base(k: &KafkaSettings) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (key, value) in &k.extra {
        c.set(key, value);
    }
    c
}

/// An idempotent, `acks=all` producer. Idempotence makes librdkafka's own
/// retries safe (no duplicates, no reordering within a partition); the
/// bounded `message.timeout.ms` is what turns a dead broker into a prompt
/// 503 instead of a hanging request.
pub fn producer(k: &KafkaSettings) -> Result<FutureProducer, KafkaError> {
    base(k)
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("compression.type", "lz4")
        .set("linger.ms", k.linger_ms.to_string())
        .set("message.timeout.ms", k.message_timeout_ms.to_string())
        .set(
            "queue.buffering.max.messages",
            k.queue_max_messages.to_string(),
        )
        .set("partitioner", "murmur2_random")
        .create()
}

/// A consumer with auto-commit off: offsets are committed by our code only
/// after the effects of a record are durable in Postgres.
pub fn consumer<C: ConsumerContext + 'static>(
    k: &KafkaSettings,
    group_id: &str,
    context: C,
) -> Result<StreamConsumer<C>, KafkaError> {
    base(k)
        .set("group.id", group_id)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", k.session_timeout_ms.to_string())
        .set(
            "heartbeat.interval.ms",
            (k.session_timeout_ms / 3).max(100).to_string(),
        )
        .set("enable.partition.eof", "false")
        .create_with_context(context)
}

/// A consumer for tools that read a topic from its start without joining
/// a group's offsets (a fresh group id, nothing committed).
pub fn reader(k: &KafkaSettings) -> Result<rdkafka::consumer::BaseConsumer, KafkaError> {
    base(k)
        .set(
            "group.id",
            format!("achilles-reader-{}", uuid::Uuid::new_v4()),
        )
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
}

/// Creates every topic of the deployment that does not exist yet.
#[tracing::instrument(skip(k), fields(brokers = %k.brokers))]
pub async fn ensure_topics(k: &KafkaSettings, topics: &Topics) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = base(k).create()?;
    let names = topics.all_names();
    let min_isr = k.min_insync_replicas.to_string();
    let retention = k.topic_retention_ms.to_string();
    let new = new_topics(k, &names, &min_isr, &retention);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    for result in admin.create_topics(&new, &opts).await? {
        match result {
            Ok(name) => tracing::info!(topic = %name, "created topic"),
            Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::AdminOp(code))
                    .inspect_err(|_| tracing::error!(topic = %name, ?code, "cannot create topic"))
            }
        }
    }
    Ok(())
}

/// The topics to create, with `min.insync.replicas` from the settings
/// (together with the producer's `acks=all` it decides how many copies of a
/// record exist before the API answers 202) and `retention.ms` (how long
/// the broker keeps records: its disk, and memory for an in-memory broker).
fn new_topics<'a>(
    k: &KafkaSettings,
    names: &'a [String],
    min_isr: &'a str,
    retention: &'a str,
) -> Vec<NewTopic<'a>> {
    names
        .iter()
        .map(|n| {
            NewTopic::new(
                n,
                k.partitions,
                TopicReplication::Fixed(k.replication_factor),
            )
            .set("min.insync.replicas", min_isr)
            .set("retention.ms", retention)
        })
        .collect()
}

/// Is at least one broker answering metadata requests? Used by readiness
/// probes; runs the blocking librdkafka call off the async threads.
pub async fn broker_reachable(producer: &FutureProducer, timeout: Duration) -> bool {
    let client = producer.clone();
    tokio::task::spawn_blocking(move || {
        use rdkafka::producer::Producer;
        client.client().fetch_metadata(None, timeout).is_ok()
    })
    .await
    .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn created_topics_carry_min_insync_replicas_and_retention_from_config() {
        let k = KafkaSettings {
            replication_factor: 3,
            min_insync_replicas: 2,
            topic_retention_ms: 3_600_000,
            ..KafkaSettings::default()
        };
        let names = Topics::new(String::new()).all_names();
        let min_isr = k.min_insync_replicas.to_string();
        let retention = k.topic_retention_ms.to_string();
        let topics = new_topics(&k, &names, &min_isr, &retention);
        assert_eq!(topics.len(), names.len());
        for t in topics {
            assert_eq!(
                t.config,
                vec![("min.insync.replicas", "2"), ("retention.ms", "3600000")],
                "{}",
                t.name
            );
        }
    }
}
