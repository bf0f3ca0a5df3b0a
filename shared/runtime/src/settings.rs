//! One way to build a consumer from `[kafka]` and `[consumer]`, for every
//! loop of every service.

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;

use achilles_core::config::{ConsumerSettings, KafkaSettings};
use achilles_core::kafka;

use crate::context::ConsumerCtx;

/// A consumer in `group`, named `name` (the `consumer` metric label),
/// subscribed to `topics`.
///
/// Statistics every 5 s feed the lag metric; `fetch.wait.max.ms` bounds how
/// long an empty fetch is held by the broker (see
/// `consumer.fetch_wait_max_ms`). Explicit `kafka.extra` values win.
pub fn subscribed_consumer(
    k: &KafkaSettings,
    c: &ConsumerSettings,
    group: &str,
    name: &'static str,
    topics: &[&str],
) -> Result<StreamConsumer<ConsumerCtx>, KafkaError> {
    let mut k = k.clone();
    k.extra
        .entry("statistics.interval.ms".into())
        .or_insert_with(|| "5000".into());
    k.extra
        .entry("fetch.wait.max.ms".into())
        .or_insert_with(|| c.fetch_wait_max_ms.to_string());
    let consumer = kafka::consumer(&k, group, ConsumerCtx::new(name))?;
    consumer.subscribe(topics)?;
    Ok(consumer)
}
