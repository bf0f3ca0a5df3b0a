//! The recorder: a consumer of the insights topic that appends each
//! transition once to `insight_transitions` and queues its webhook
//! deliveries, in one transaction per batch.
//!
//! Idempotent by itself: a transition is unique by (insight, transition,
//! decision time), so a replayed batch inserts nothing and queues nothing,
//! and offsets need no storing in Postgres. Undecodable records are
//! dead-lettered, like everywhere else.

use std::sync::Arc;

use rdkafka::message::{Message, OwnedMessage};
use sqlx::PgPool;
use tokio::sync::Notify;

use achilles_core::db::push;
use achilles_core::error::Classify;
use achilles_core::metrics;
use achilles_core::wire::insight::InsightRecord;
use achilles_runtime::{BatchHandler, DeadLetterSink, HandlerError, Rejected};

/// The `consumer` label of this loop's metrics.
pub const NAME: &str = "agent_push";

pub struct RecorderHandler {
    pub pool: PgPool,
    pub dead_letters: DeadLetterSink,
    /// Wakes the delivery worker when deliveries were queued.
    pub wake: Arc<Notify>,
}

impl BatchHandler for RecorderHandler {
    async fn handle(&self, batch: &[OwnedMessage]) -> Result<(), HandlerError> {
        let mut records = Vec::with_capacity(batch.len());
        let mut rejected = Vec::new();
        for m in batch {
            metrics::CONSUMED
                .with_label_values(&[NAME, "insights"])
                .inc();
            match InsightRecord::decode(m.payload().unwrap_or_default()) {
                Ok(r) => records.push(r),
                Err(e) => rejected.push(Rejected {
                    message: m,
                    reason_code: e.reason_code(),
                    reason: e.to_string(),
                }),
            }
        }
        if !rejected.is_empty() {
            self.dead_letters.send(&rejected).await?;
        }
        let started = std::time::Instant::now();
        let mut tx = self.pool.begin().await?;
        let new = push::record_transitions(&mut tx, &records).await?;
        tx.commit().await?;
        metrics::DB_WRITE
            .with_label_values(&[NAME])
            .observe(started.elapsed().as_secs_f64());
        for t in &new {
            metrics::INSIGHT_TRANSITIONS.with_label_values(&[t]).inc();
        }
        if !new.is_empty() {
            self.wake.notify_one();
        }
        Ok(())
    }
}
