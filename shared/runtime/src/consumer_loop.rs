//! A batching consumer loop with at-least-once delivery and a graceful,
//! deadline-bounded shutdown.
//!
//! One *step* is: collect a batch (up to `batch_max_records`, or whatever
//! arrived within `batch_linger_ms` of its first record), hand it to the
//! handler, and commit the batch's offsets only once the handler returned
//! `Ok` — that is, once its effects are durable. A retryable failure
//! retries the *same* batch with back-off; the offsets never move past a
//! record whose effects are not durable. Handlers must be idempotent,
//! because a crash between their commit and ours replays the batch.
//!
//! Each batch runs in a `batch` span tied to the traces of its records
//! (see [`crate::trace`]).

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::Instrument;

use achilles_core::error::Classify;
use achilles_core::metrics;

use crate::context::ConsumerCtx;
use crate::error::HandlerError;
use crate::trace::BatchTrace;

/// Processes one batch; `Err` means "retry the same batch later".
pub trait BatchHandler: Send + Sync {
    fn handle(
        &self,
        batch: &[OwnedMessage],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

pub struct LoopSettings {
    pub max_records: usize,
    pub linger: Duration,
    pub retry_backoff: Duration,
    pub shutdown_deadline: Duration,
}

pub struct ConsumerLoop<H> {
    name: &'static str,
    consumer: StreamConsumer<ConsumerCtx>,
    handler: H,
    settings: LoopSettings,
}

/// What one step did, for tests and logs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    pub records: usize,
    pub attempts: usize,
}

impl<H: BatchHandler> ConsumerLoop<H> {
    pub fn new(
        name: &'static str,
        consumer: StreamConsumer<ConsumerCtx>,
        handler: H,
        settings: LoopSettings,
    ) -> Self {
        Self {
            name,
            consumer,
            handler,
            settings,
        }
    }

    pub fn consumer(&self) -> &StreamConsumer<ConsumerCtx> {
        &self.consumer
    }

    /// Waits for the first record (or `stop`), then gathers more until the
    /// batch is full or the linger time passed.
    async fn next_batch(&self, stop: &mut watch::Receiver<bool>) -> Vec<OwnedMessage> {
        let mut batch = Vec::new();
        let mut deadline: Option<Instant> = None;
        while batch.len() < self.settings.max_records {
            let wait = match deadline {
                Some(d) => d.saturating_duration_since(Instant::now()),
                None => Duration::from_secs(3600),
            };
            tokio::select! {
                biased;
                // Drop the watch guard at once: it must not live across awaits.
                _ = async { stop.wait_for(|s| *s).await.map(|_| ()) }, if deadline.is_none() => break,
                r = tokio::time::timeout(wait, self.consumer.recv()) => match r {
                    Err(_) => break, // linger elapsed
                    Ok(Ok(m)) => {
                        batch.push(m.detach());
                        deadline.get_or_insert_with(|| Instant::now() + self.settings.linger);
                    }
                    Ok(Err(e)) => {
                        // Transport errors are reported here but librdkafka
                        // reconnects by itself; nothing was consumed.
                        tracing::warn!(consumer = self.name, error = %e, "consumer error");
                        tokio::time::sleep(Duration::from_millis(200)).await;
                    }
                },
            }
        }
        batch
    }

    /// Runs the handler until it succeeds, backing off between retryable
    /// failures. Gives up only when asked to stop *and* the shutdown
    /// deadline has passed; the batch is then replayed after restart.
    async fn process(&self, batch: &[OwnedMessage], stop: &watch::Receiver<bool>) -> Option<usize> {
        let mut attempts = 0;
        let mut backoff = self.settings.retry_backoff;
        let mut stop_seen: Option<Instant> = None;
        loop {
            attempts += 1;
            match self.handler.handle(batch).await {
                Ok(()) => return Some(attempts),
                Err(e) => {
                    metrics::RETRIES
                        .with_label_values(&[self.name, e.reason_code()])
                        .inc();
                    tracing::warn!(consumer = self.name, error = %e, attempts, "batch failed; retrying");
                }
            }
            let stopping = *stop.borrow();
            if stopping {
                let since = *stop_seen.get_or_insert_with(Instant::now);
                if since.elapsed() >= self.settings.shutdown_deadline {
                    tracing::warn!(
                        consumer = self.name,
                        "shutdown deadline passed; batch will be replayed"
                    );
                    return None;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        }
    }

    fn commit(&self, batch: &[OwnedMessage], mode: CommitMode) -> Result<(), HandlerError> {
        let mut next: HashMap<(&str, i32), i64> = HashMap::new();
        for m in batch {
            let e = next.entry((m.topic(), m.partition())).or_insert(0);
            *e = (*e).max(m.offset() + 1);
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), offset) in next {
            tpl.add_partition_offset(topic, partition, Offset::Offset(offset))?;
        }
        self.consumer.commit(&tpl, mode)?;
        Ok(())
    }

    /// One step: a batch, processed and committed. Exposed so tests can
    /// drive the loop deterministically.
    pub async fn step(&self, stop: &mut watch::Receiver<bool>) -> Result<StepReport, HandlerError> {
        let batch = self.next_batch(stop).await;
        if batch.is_empty() {
            return Ok(StepReport::default());
        }
        metrics::BATCH_SIZE
            .with_label_values(&[self.name])
            .observe(batch.len() as f64);
        let trace = BatchTrace::start(self.name, &batch);
        let processed = self
            .process(&batch, stop)
            .instrument(trace.span.clone())
            .await;
        let Some(attempts) = processed else {
            return Ok(StepReport {
                records: 0,
                attempts: 0,
            });
        };
        // Async commit: a lost commit only replays an idempotent batch, and
        // not waiting keeps the loop's latency off the broker round trip.
        trace
            .span
            .in_scope(|| self.commit(&batch, CommitMode::Async))?;
        Ok(StepReport {
            records: batch.len(),
            attempts,
        })
    }

    /// Runs steps until `shutdown` resolves, then finishes the batch in
    /// hand (within the deadline) and commits synchronously.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let (tx, mut rx) = watch::channel(false);
        let steps = async {
            loop {
                let stopping = *rx.borrow();
                if stopping {
                    break;
                }
                if let Err(e) = self.step(&mut rx).await {
                    tracing::error!(consumer = self.name, error = %e, "step failed");
                    tokio::time::sleep(self.settings.retry_backoff).await;
                }
            }
        };
        let signal = async {
            shutdown.await;
            let _ = tx.send(true);
        };
        tokio::join!(steps, signal);
        // Flush our stored position: the async commits may still be queued.
        if let Ok(tpl) = self.consumer.position() {
            let _ = self.consumer.commit(&tpl, CommitMode::Sync);
        }
        tracing::info!(consumer = self.name, "stopped");
    }
}
