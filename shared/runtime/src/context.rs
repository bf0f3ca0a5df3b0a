//! The consumer context: rebalance and lag bookkeeping for metrics.

use rdkafka::client::ClientContext;
use rdkafka::consumer::{ConsumerContext, Rebalance};
use rdkafka::statistics::Statistics;

use achilles_core::metrics;

/// Named after the loop it serves (`landing`, `gate`), which is the
/// `consumer` label of every consumer metric.
pub struct ConsumerCtx {
    pub name: &'static str,
}

impl ClientContext for ConsumerCtx {
    /// librdkafka's statistics carry each partition's consumer lag; using
    /// them costs no extra broker round trip.
    fn stats(&self, stats: Statistics) {
        for (topic, t) in &stats.topics {
            for (partition, p) in &t.partitions {
                if *partition < 0 || p.consumer_lag < 0 {
                    continue;
                }
                metrics::CONSUMER_LAG
                    .with_label_values(&[self.name, topic, &partition.to_string()])
                    .set(p.consumer_lag);
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
        // A revoked partition's lag is another instance's to report now;
        // a frozen series here would keep lag alerts firing.
        if let Rebalance::Revoke(tpl) = r {
            for e in tpl.elements() {
                let _ = metrics::CONSUMER_LAG.remove_label_values(&[
                    self.name,
                    e.topic(),
                    &e.partition().to_string(),
                ]);
            }
        }
        tracing::info!(consumer = self.name, kind, "rebalance");
    }
}
