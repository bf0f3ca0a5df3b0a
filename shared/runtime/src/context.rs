//! The consumer context: what librdkafka's callbacks tell the loop.
//!
//! Two things cross from librdkafka's callbacks to the consumer loop:
//! rebalances (a partition assigned or revoked invalidates the loop's
//! cached positions and session state for it, and an assigned partition
//! must have its stored position checked before anything is applied) and
//! statistics (each partition's high watermark, from which the lag metric
//! is computed against the position the loop actually stored, not the
//! offset last committed to Kafka, which is only a hint).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use rdkafka::client::ClientContext;
use rdkafka::consumer::{ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;

use achilles_core::metrics;

/// A partition assigned to or revoked from this consumer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Change {
    /// The partition was assigned (topic, partition).
    Assigned(String, i32),
    /// The partition was revoked (topic, partition).
    Revoked(String, i32),
}

/// State shared between the callbacks and the loop.
#[derive(Default)]
pub struct Shared {
    changes: Mutex<Vec<Change>>,
    /// Next record to apply, per (topic, partition), as stored.
    positions: Mutex<HashMap<(String, i32), i64>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain data: a panic elsewhere cannot leave it half-written.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Shared {
    /// Rebalance changes since the last call, in order.
    pub fn take_changes(&self) -> Vec<Change> {
        std::mem::take(&mut *lock(&self.changes))
    }

    /// Records the next offset to read of a partition, for the lag metric.
    pub fn set_position(&self, topic: &str, partition: i32, next: i64) {
        lock(&self.positions).insert((topic.to_owned(), partition), next);
    }

    /// Forgets a revoked partition's position.
    pub fn forget_position(&self, topic: &str, partition: i32) {
        lock(&self.positions).remove(&(topic.to_owned(), partition));
    }

    fn position(&self, topic: &str, partition: i32) -> Option<i64> {
        lock(&self.positions)
            .get(&(topic.to_owned(), partition))
            .copied()
    }
}

/// Named after the loop it serves (`landing`, `gate`, ...), which is the
/// `consumer` label of every consumer metric.
pub struct ConsumerCtx {
    /// The consumer's metric label.
    pub name: &'static str,
    /// State shared with the rebalance callbacks.
    pub shared: Arc<Shared>,
}

impl ConsumerCtx {
    /// A context for the consumer named `name`.
    pub fn new(name: &'static str) -> Self {
        Self {
            name,
            shared: Arc::default(),
        }
    }
}

impl ClientContext for ConsumerCtx {
    /// librdkafka's statistics carry each partition's high watermark; using
    /// them costs no extra broker round trip.
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.hi_offset < 0 {
                    continue;
                }
                let lag = match self.shared.position(topic, *partition) {
                    // A position beyond the log means the topic was
                    // recreated; the loop resets it on the next record.
                    Some(next) => (p.hi_offset - next).max(0),
                    None if p.consumer_lag >= 0 => p.consumer_lag,
                    None => continue,
                };
                metrics::CONSUMER_LAG
                    .with_label_values(&[self.name, topic, &partition.to_string()])
                    .set(lag);
            }
        }
    }
}

impl ConsumerContext for ConsumerCtx {
    fn pre_rebalance(&self, _: &rdkafka::consumer::BaseConsumer<Self>, r: &Rebalance<'_>) {
        let kind = match r {
            Rebalance::Assign(_) => "assign",
            Rebalance::Revoke(_) => "revoke",
            Rebalance::Error(_) => "error",
        };
        metrics::REBALANCES
            .with_label_values(&[self.name, kind])
            .inc();
        let mut changes = lock(&self.shared.changes);
        match r {
            Rebalance::Assign(tpl) => {
                for e in tpl.elements() {
                    changes.push(Change::Assigned(e.topic().to_owned(), e.partition()));
                }
            }
            Rebalance::Revoke(tpl) => {
                for e in tpl.elements() {
                    changes.push(Change::Revoked(e.topic().to_owned(), e.partition()));
                    self.shared.forget_position(e.topic(), e.partition());
                    // A revoked partition's lag is another instance's to
                    // report now; a frozen series would keep alerts firing.
                    let _ = metrics::CONSUMER_LAG.remove_label_values(&[
                        self.name,
                        e.topic(),
                        &e.partition().to_string(),
                    ]);
                }
            }
            Rebalance::Error(_) => {}
        }
        tracing::info!(consumer = self.name, kind, "rebalance");
    }
}
