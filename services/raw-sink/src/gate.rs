//! The intake gate: the quality gate for producers that write straight to
//! Kafka.
//!
//! Each intake record is authenticated by its `x-api-key` header (the
//! tenant comes from the key, as on the HTTP API), decoded and validated by
//! the same core functions as an HTTP body, then republished to the events
//! topic as a canonical envelope. Anything else goes to the dead-letter
//! topic with the reason. The batch's offsets are committed only after the
//! broker acknowledged both the republished and the dead-lettered records.
//! A republished record carries its intake record's trace context, so the
//! producer's trace continues into landing and processing.

use chrono::Utc;
use rdkafka::message::{Headers, Message, OwnedMessage};

use achilles_core::auth::KeyStore;
use achilles_core::error::Classify;
use achilles_core::metrics;
use achilles_core::model::Limits;
use achilles_core::publisher::{Encoded, Publisher};
use achilles_core::telemetry;
use achilles_core::wire::intake::decode_intake;
use achilles_core::wire::{headers, Envelope};

use achilles_runtime::{BatchHandler, DeadLetterSink, HandlerError, Rejected};

pub const NAME: &str = "gate";

pub struct Gate {
    pub keys: KeyStore,
    pub publisher: Publisher,
    pub dead_letters: DeadLetterSink,
    pub limits: Limits,
}

fn header<'a>(m: &'a OwnedMessage, name: &str) -> Option<&'a str> {
    m.headers()?
        .iter()
        .find(|h| h.key.eq_ignore_ascii_case(name))
        .and_then(|h| std::str::from_utf8(h.value?).ok())
}

impl BatchHandler for Gate {
    async fn handle(&self, batch: &[OwnedMessage]) -> Result<(), HandlerError> {
        let now = Utc::now();
        let mut accepted = Vec::with_capacity(batch.len());
        let mut contexts = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        for m in batch {
            metrics::CONSUMED.with_label_values(&[NAME, "intake"]).inc();
            let Some(tenant) =
                header(m, headers::API_KEY).and_then(|k| self.keys.tenant_for(k.trim()))
            else {
                rejected.push(Rejected {
                    message: m,
                    reason_code: "unauthenticated",
                    reason: format!("missing or unknown `{}` header", headers::API_KEY),
                });
                continue;
            };
            let decoded = decode_intake(m.payload().unwrap_or_default(), tenant, now, &self.limits)
                .map_err(|e| (e.reason_code(), e.to_string()))
                .and_then(|record| {
                    let env = Envelope {
                        ingested_at: now,
                        record,
                    };
                    Encoded::new(&env).map_err(|e| ("unencodable", e.to_string()))
                });
            match decoded {
                Ok(encoded) => {
                    accepted.push(encoded);
                    contexts.push(telemetry::kafka_context(m));
                }
                Err((reason_code, reason)) => rejected.push(Rejected {
                    message: m,
                    reason_code,
                    reason,
                }),
            }
        }
        if !accepted.is_empty() {
            // Each record keeps its own trace; one without a context gets
            // this batch's.
            self.publisher.publish_each(&accepted, &contexts).await?;
        }
        if !rejected.is_empty() {
            self.dead_letters.send(&rejected).await?;
        }
        Ok(())
    }
}
