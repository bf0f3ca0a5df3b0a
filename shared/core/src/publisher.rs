//! Publishing canonical envelopes to the events topic and waiting for the
//! broker's acknowledgement of every one of them.
//!
//! "Accepted" in Achilles means "the broker has it": callers get `Ok` only
//! once every record of the call was acknowledged with `acks=all`. Any
//! failure is reported as retryable; records of a failed call that did get
//! through are harmless on retry because everything downstream dedups on
//! the event hash.
//!
//! Every record carries the W3C trace context (`traceparent`, and
//! `tracestate` when there is one) so its consumers join the producer's
//! trace.

use std::time::Instant;

use futures::future::join_all;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::util::Timeout;

use crate::error::{Classify, Disposition};
use crate::metrics;
use crate::telemetry::{self, SpanContext};
use crate::topics::{Topic, Topics};
use crate::wire::codec::{self, EncodeError};
use crate::wire::{headers, Envelope};

/// An envelope encoded for the events topic, ready to publish.
pub struct Encoded {
    pub key: String,
    pub payload: Vec<u8>,
}

impl Encoded {
    pub fn new(env: &Envelope) -> Result<Self, EncodeError> {
        Ok(Self {
            key: env.record.session_id().to_string(),
            payload: codec::encode_envelope(env)?,
        })
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The local producer queue is full: the broker is slower than intake.
    #[error("the producer queue is full")]
    QueueFull,
    /// The broker did not acknowledge within `message.timeout.ms`.
    #[error("the broker did not acknowledge in time: {0}")]
    Unavailable(String),
    #[error("kafka error: {0}")]
    Kafka(String),
    /// A record could not be encoded: a bug of ours, never retried.
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl PublishError {
    /// Low-cardinality label for the backpressure metric.
    pub fn cause(&self) -> &'static str {
        match self {
            Self::QueueFull => "queue_full",
            Self::Unavailable(_) => "broker_unavailable",
            Self::Kafka(_) => "kafka_error",
            Self::Encode(_) => "unencodable",
        }
    }
}

impl Classify for PublishError {
    fn disposition(&self) -> Disposition {
        match self {
            Self::Encode(_) => Disposition::DeadLetter,
            _ => Disposition::Retry,
        }
    }
    fn reason_code(&self) -> &'static str {
        self.cause()
    }
}

fn classify(e: KafkaError) -> PublishError {
    match e.rdkafka_error_code() {
        Some(RDKafkaErrorCode::QueueFull) => PublishError::QueueFull,
        Some(
            RDKafkaErrorCode::MessageTimedOut
            | RDKafkaErrorCode::AllBrokersDown
            | RDKafkaErrorCode::BrokerTransportFailure
            | RDKafkaErrorCode::RequestTimedOut,
        ) => PublishError::Unavailable(e.to_string()),
        _ => PublishError::Kafka(e.to_string()),
    }
}

#[derive(Clone)]
pub struct Publisher {
    producer: FutureProducer,
    topic: String,
}

impl Publisher {
    pub fn new(producer: FutureProducer, topics: &Topics) -> Self {
        Self {
            producer,
            topic: topics.name(Topic::Events),
        }
    }

    pub fn producer(&self) -> &FutureProducer {
        &self.producer
    }

    /// Publishes all envelopes (keyed by session) and waits for every ack.
    ///
    /// Each record's `traceparent` is `traceparent` when given and valid,
    /// otherwise the current trace context (this call's `publish` span, a
    /// child of the HTTP request span; a fresh trace when there is none),
    /// so the header is always present.
    #[tracing::instrument(skip_all, fields(records = envelopes.len(), otel.kind = "producer"), err)]
    pub async fn publish(
        &self,
        envelopes: &[Envelope],
        traceparent: Option<&str>,
    ) -> Result<(), PublishError> {
        let given = traceparent.and_then(telemetry::parse_traceparent);
        // Encode everything first: a record that cannot be encoded fails
        // the call before anything reaches the broker.
        let encoded = envelopes
            .iter()
            .map(Encoded::new)
            .collect::<Result<Vec<_>, _>>()?;
        self.send_all(&encoded, |_| given.as_ref()).await
    }

    /// Publishes records encoded beforehand (see [`Encoded`]), each with
    /// the trace context of its source record (`contexts[i]` for
    /// `records[i]`); where it is `None` the current context is used. The
    /// intake gate forwards each intake record's own context this way, and
    /// encodes first so that a record that cannot be encoded is
    /// dead-lettered alone.
    #[tracing::instrument(skip_all, fields(records = records.len(), otel.kind = "producer"), err)]
    pub async fn publish_each(
        &self,
        records: &[Encoded],
        contexts: &[Option<SpanContext>],
    ) -> Result<(), PublishError> {
        self.send_all(records, |i| contexts.get(i).and_then(Option::as_ref))
            .await
    }

    async fn send_all<'c>(
        &self,
        records: &[Encoded],
        context_of: impl Fn(usize) -> Option<&'c SpanContext>,
    ) -> Result<(), PublishError> {
        let started = Instant::now();
        let current = telemetry::header_values(&telemetry::current_context());
        let mut pending = Vec::with_capacity(records.len());
        let mut first_error = None;
        for (i, rec) in records.iter().enumerate() {
            let mut hdrs = OwnedHeaders::new_with_capacity(3).insert(Header {
                key: headers::CONTENT_TYPE,
                value: Some(headers::ENVELOPE_CONTENT_TYPE),
            });
            let own = context_of(i).map(telemetry::header_values);
            for (k, v) in own.as_ref().unwrap_or(&current) {
                hdrs = hdrs.insert(Header {
                    key: k,
                    value: Some(v.as_str()),
                });
            }
            let record = FutureRecord::to(&self.topic)
                .key(&rec.key)
                .payload(&rec.payload)
                .headers(hdrs);
            // `send_result` enqueues without waiting: a full queue fails
            // here at once rather than blocking the request.
            match self.producer.send_result(record) {
                Ok(delivery) => pending.push(delivery),
                Err((e, _)) => {
                    first_error = Some(classify(e));
                    break;
                }
            }
        }
        metrics::PRODUCER_QUEUE.set(i64::from(self.producer.in_flight_count()));
        // Wait for what was enqueued even after a failure, so nothing is
        // left dangling and the metric below stays honest.
        for result in join_all(pending).await {
            let outcome = match result {
                Ok(Ok(_)) => continue,
                Ok(Err((e, _))) => classify(e),
                // The producer was dropped mid-flight (shutdown).
                Err(_) => PublishError::Kafka("delivery cancelled".into()),
            };
            first_error.get_or_insert(outcome);
        }
        metrics::PRODUCE_LATENCY
            .with_label_values(&["events"])
            .observe(started.elapsed().as_secs_f64());
        match first_error {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Flushes outstanding records, for graceful shutdown.
    pub fn flush(&self, timeout: std::time::Duration) {
        let _ = self.producer.flush(Timeout::After(timeout));
    }
}
