//! The intake gate: the quality gate for producers that write straight to
//! Kafka.
//!
//! Each intake record is authenticated by its `x-api-key` header (the
//! tenant comes from the key, as on the HTTP API), decoded and validated by
//! the same core functions as an HTTP body (secrets scrubbed, see
//! `achilles_core::scrub`), then republished to the events
//! topic as a canonical envelope. Anything else goes to the dead-letter
//! topic with the reason. The batch's offsets are committed only after the
//! broker acknowledged both the republished and the dead-lettered records.
//! A republished record carries its intake record's trace context, so the
//! producer's trace continues into landing and processing.
//!
//! The gate applies each tenant's events quota (`[quotas]`, the same
//! buckets as the API's `/v1/events/batch`), but where the API answers 429
//! the gate *waits*: an over-quota producer's records are republished as
//! its tokens come back, never dropped. Each tenant's records of a batch
//! wait on their own, so tenants within quota are republished at once even
//! when another tenant in the same batch is over. A batch waits at most
//! about `batch_max_records / events_per_sec` seconds; keep that well below
//! the consumer's `max.poll.interval.ms` (300 s).

use std::collections::BTreeMap;

use chrono::Utc;
use opentelemetry::trace::SpanContext;
use rdkafka::message::{Headers, Message, OwnedMessage};

use achilles_core::auth::KeyStore;
use achilles_core::error::Classify;
use achilles_core::metrics;
use achilles_core::model::submission::Context;
use achilles_core::model::{Limits, TenantId};
use achilles_core::publisher::{Encoded, Publisher};
use achilles_core::quota::{Kind, Quotas};
use achilles_core::scrub::Scrubber;
use achilles_core::telemetry;
use achilles_core::wire::intake::decode_intake_in;
use achilles_core::wire::{headers, Envelope};

use achilles_runtime::{BatchHandler, DeadLetterSink, HandlerError, Rejected};

pub const NAME: &str = "gate";

pub struct Gate {
    pub keys: KeyStore,
    pub publisher: Publisher,
    pub dead_letters: DeadLetterSink,
    pub limits: Limits,
    pub quotas: Quotas,
    /// `[scrub]`: secrets are scrubbed here, before the canonical record is
    /// hashed and republished, as on the HTTP API.
    pub scrubber: Scrubber,
}

/// One tenant's valid records of a batch, in their original order.
#[derive(Default)]
struct TenantRecords {
    records: Vec<Encoded>,
    contexts: Vec<Option<SpanContext>>,
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
        let mut accepted: BTreeMap<&TenantId, TenantRecords> = BTreeMap::new();
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
            let ctx = Context {
                tenant,
                now,
                limits: &self.limits,
                scrub: Some(&self.scrubber),
            };
            let decoded = decode_intake_in(m.payload().unwrap_or_default(), ctx)
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
                    let group = accepted.entry(tenant).or_default();
                    group.records.push(encoded);
                    group.contexts.push(telemetry::kafka_context(m));
                }
                Err((reason_code, reason)) => rejected.push(Rejected {
                    message: m,
                    reason_code,
                    reason,
                }),
            }
        }
        // Every tenant's records wait for that tenant's tokens on their
        // own, then go out; each record keeps its own trace (one without a
        // context gets this batch's).
        let published = accepted.into_iter().map(|(tenant, group)| async move {
            let n = u32::try_from(group.records.len()).unwrap_or(u32::MAX);
            self.quotas.take(tenant, Kind::Events, n).await;
            self.publisher
                .publish_each(&group.records, &group.contexts)
                .await
        });
        for result in futures::future::join_all(published).await {
            result?;
        }
        if !rejected.is_empty() {
            self.dead_letters.send(&rejected).await?;
        }
        Ok(())
    }
}
