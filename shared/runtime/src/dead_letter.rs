//! Parking records that can never be processed, with the reason.
//!
//! The dead-letter record keeps the source record's key (the session id)
//! and trace context (`traceparent`), and the warning logged for it names
//! both, so a parked record can be followed back to its request.

use chrono::Utc;
use rdkafka::message::{Header, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::{FutureProducer, FutureRecord};

use achilles_core::db::outbox::NewOutboxRecord;
use achilles_core::metrics;
use achilles_core::publisher::PublishError;
use achilles_core::telemetry;
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::codec::EncodeError;
use achilles_core::wire::dead_letter::DeadLetter;

/// A record to park, with its reason.
pub struct Rejected<'a> {
    /// The record refused.
    pub message: &'a OwnedMessage,
    /// Stable machine-readable reason (a header of the dead letter).
    pub reason_code: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

/// Publishes refused records to the dead-letter topic, with their reason in headers.
#[derive(Clone)]
pub struct DeadLetterSink {
    producer: FutureProducer,
    topic: String,
    consumer: &'static str,
    group: String,
}

impl DeadLetterSink {
    /// A sink publishing with `producer` to the dead-letter topic of `topics`.
    pub fn new(
        producer: FutureProducer,
        topics: &Topics,
        consumer: &'static str,
        group: String,
    ) -> Self {
        Self {
            producer,
            topic: topics.name(Topic::DeadLetter),
            consumer,
            group,
        }
    }

    /// Publishes every rejected record and waits for the acks, so the
    /// caller can commit offsets knowing nothing was dropped.
    pub async fn send(&self, rejected: &[Rejected<'_>]) -> Result<(), PublishError> {
        let now = Utc::now();
        let mut pending = Vec::with_capacity(rejected.len());
        for r in rejected {
            let m = r.message;
            let dl = DeadLetter {
                source_topic: m.topic(),
                source_partition: m.partition(),
                source_offset: m.offset(),
                consumer_group: &self.group,
                reason_code: r.reason_code,
                reason: r.reason.clone(),
                failed_at: now,
                key: m.key(),
                payload: m.payload().unwrap_or_default(),
            };
            let value = dl.encode()?;
            let mut headers = OwnedHeaders::new();
            for (k, v) in dl.headers() {
                headers = headers.insert(Header {
                    key: k,
                    value: Some(&v),
                });
            }
            let trace = telemetry::kafka_context(m);
            if let Some(sc) = &trace {
                headers = telemetry::insert_kafka_headers(headers, sc);
            }
            let mut rec = FutureRecord::to(&self.topic)
                .payload(&value)
                .headers(headers);
            if let Some(k) = m.key() {
                rec = rec.key(k);
            }
            tracing::warn!(
                consumer = self.consumer,
                reason_code = r.reason_code,
                reason = %r.reason,
                session_id = telemetry::record_session_id(m),
                trace_id = trace.as_ref().map(|sc| telemetry::trace_id_hex(sc.trace_id())),
                partition = m.partition(),
                offset = m.offset(),
                "dead-lettering record"
            );
            match self.producer.send_result(rec) {
                Ok(delivery) => pending.push(delivery),
                Err((e, _)) => return Err(PublishError::Unavailable(e.to_string())),
            }
        }
        for result in futures::future::join_all(pending).await {
            match result {
                Ok(Ok(_)) => {}
                Ok(Err((e, _))) => return Err(PublishError::Unavailable(e.to_string())),
                Err(_) => return Err(PublishError::Kafka("delivery cancelled".into())),
            }
        }
        // Counted once acknowledged, so a retried batch is not counted twice.
        for r in rejected {
            metrics::DEAD_LETTERED
                .with_label_values(&[self.consumer, r.reason_code])
                .inc();
        }
        Ok(())
    }
}

/// The dead-letter record for `m` as an outbox row, for consumers that
/// park records in the same transaction as their other effects (so a
/// record is parked exactly when its position moves past it). Logs the
/// warning the sink logs; the caller counts it once committed.
pub fn outbox_dead_letter(
    m: &OwnedMessage,
    consumer: &'static str,
    group: &str,
    topic: &str,
    reason_code: &'static str,
    reason: &str,
) -> Result<NewOutboxRecord, EncodeError> {
    let trace = telemetry::kafka_context(m);
    tracing::warn!(
        consumer,
        reason_code,
        reason,
        session_id = telemetry::record_session_id(m),
        trace_id = trace
            .as_ref()
            .map(|sc| telemetry::trace_id_hex(sc.trace_id())),
        partition = m.partition(),
        offset = m.offset(),
        "dead-lettering record"
    );
    let dl = DeadLetter {
        source_topic: m.topic(),
        source_partition: m.partition(),
        source_offset: m.offset(),
        consumer_group: group,
        reason_code,
        reason: reason.to_owned(),
        failed_at: Utc::now(),
        key: m.key(),
        payload: m.payload().unwrap_or_default(),
    };
    let mut headers: Vec<(String, String)> = dl
        .headers()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect();
    if let Some(sc) = &trace {
        headers.extend(
            telemetry::header_values(sc)
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v)),
        );
    }
    Ok(NewOutboxRecord {
        topic: topic.to_owned(),
        key: m
            .key()
            .map(|k| String::from_utf8_lossy(k).into_owned())
            .unwrap_or_default(),
        payload: dl.encode()?,
        headers,
    })
}
