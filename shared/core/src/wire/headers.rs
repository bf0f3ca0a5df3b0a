//! Kafka header names, in one place so producers and consumers agree.

/// `application/vnd.achilles.envelope.v1+avro` or `application/json`.
pub const CONTENT_TYPE: &str = "content-type";
/// W3C trace context, carried from the HTTP request into every consumer.
pub const TRACEPARENT: &str = "traceparent";
/// Vendor trace state that travels with `traceparent` (only when non-empty).
pub const TRACESTATE: &str = "tracestate";
/// API key of a direct-to-Kafka producer (intake topic only).
pub const API_KEY: &str = "x-api-key";
/// Dead-letter headers.
pub const DLQ_REASON_CODE: &str = "achilles-dlq-reason-code";
pub const DLQ_REASON: &str = "achilles-dlq-reason";
pub const DLQ_SOURCE_TOPIC: &str = "achilles-dlq-source-topic";
pub const DLQ_SOURCE_PARTITION: &str = "achilles-dlq-source-partition";
pub const DLQ_SOURCE_OFFSET: &str = "achilles-dlq-source-offset";
/// Present when the parked payload was cut to fit the producer's limit:
/// the original payload's length in bytes.
pub const DLQ_PAYLOAD_BYTES: &str = "achilles-dlq-payload-bytes";

pub const ENVELOPE_CONTENT_TYPE: &str = "application/vnd.achilles.envelope.v1+avro";
