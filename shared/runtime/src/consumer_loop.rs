//! The at-least-once consumer loop, for consumers whose effects are
//! idempotent on their own and need no positions in Postgres: the intake
//! gate (republishing is deduplicated downstream by the event hash), deep
//! mode (recomputes and upserts), webhook fan-out.
//!
//! One *step*: gather a batch ([`crate::fetch`]), hand it to the handler,
//! and commit the batch's offsets to Kafka only once the handler returned
//! `Ok`, i.e. once its effects are durable. What happens on an error is
//! decided by its [`Disposition`]:
//! * `Retry` — back off and hand over the *same* batch again; offsets never
//!   move past a record whose effects are not durable;
//! * `DeadLetter` — the batch holds a record that can never succeed: it is
//!   retried one record at a time, and the record that still fails is
//!   parked on the dead-letter topic with the error as its reason.
//!
//! On shutdown the batch in hand is retried until `shutdown_deadline`; if
//! it still fails, nothing is committed for it and it is replayed after
//! the restart. Offsets are only ever committed for completed batches.

use std::future::Future;
use std::time::{Duration, Instant};

use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;
use tracing::Instrument;

use achilles_core::error::{Classify, Disposition};
use achilles_core::metrics;

use crate::context::ConsumerCtx;
use crate::dead_letter::{DeadLetterSink, Rejected};
use crate::error::HandlerError;
use crate::fetch::{next_batch, next_offsets, BatchShape};
use crate::trace::BatchTrace;

/// Processes one batch. Must be idempotent: a crash between its effects
/// and the offset commit replays the batch.
pub trait BatchHandler: Send + Sync {
    /// Handles `batch`: `Ok` when its effects are durable, else an error whose disposition the loop acts on.
    fn handle(
        &self,
        batch: &[OwnedMessage],
    ) -> impl Future<Output = Result<(), HandlerError>> + Send;
}

/// How a loop batches, retries and stops.
#[derive(Clone, Copy, Debug)]
pub struct LoopSettings {
    /// How records are gathered into batches.
    pub shape: BatchShape,
    /// First back-off after a retryable failure (doubling up to 5 s).
    pub retry_backoff: Duration,
    /// How long a stop request may keep retrying the batch in hand.
    pub shutdown_deadline: Duration,
}

impl LoopSettings {
    /// The loop settings of `[consumer]`.
    pub fn from_settings(c: &achilles_core::config::ConsumerSettings) -> Self {
        Self {
            shape: BatchShape {
                max_records: c.batch_max_records.max(1),
                linger: Duration::from_millis(c.batch_linger_ms),
            },
            retry_backoff: Duration::from_millis(c.retry_backoff_ms.max(1)),
            shutdown_deadline: Duration::from_millis(c.shutdown_deadline_ms),
        }
    }
}

/// An at-least-once consumer loop: fetch a batch, hand it to `H`, commit the offsets once it is handled.
pub struct ConsumerLoop<H> {
    name: &'static str,
    consumer: StreamConsumer<ConsumerCtx>,
    handler: H,
    dead_letters: DeadLetterSink,
    settings: LoopSettings,
}

/// What one step did, for tests and logs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Records taken from Kafka.
    pub records: usize,
    /// Attempts the batch took (1 without retries).
    pub attempts: usize,
}

/// Retries with exponential back-off (capped at 5 s) until `attempt`
/// succeeds, fails permanently, or shutdown was requested and the deadline
/// has passed (then `None`: nothing may be committed).
pub(crate) async fn with_retries<T, E, F, Fut>(
    name: &'static str,
    settings: &LoopSettings,
    stop: &watch::Receiver<bool>,
    mut attempt: F,
) -> Option<(Result<T, E>, usize)>
where
    E: Classify + std::fmt::Display,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let mut attempts = 0;
    let mut backoff = settings.retry_backoff;
    let mut stop_seen: Option<Instant> = None;
    loop {
        attempts += 1;
        let e = match attempt().await {
            Ok(v) => return Some((Ok(v), attempts)),
            Err(e) if e.disposition() == Disposition::DeadLetter => {
                return Some((Err(e), attempts))
            }
            Err(e) => e,
        };
        metrics::RETRIES
            .with_label_values(&[name, e.reason_code()])
            .inc();
        tracing::warn!(consumer = name, error = %e, attempts, "batch failed; retrying");
        if *stop.borrow() {
            let since = *stop_seen.get_or_insert_with(Instant::now);
            if since.elapsed() >= settings.shutdown_deadline {
                tracing::warn!(
                    consumer = name,
                    "shutdown deadline passed; the batch is not committed and will be replayed"
                );
                return None;
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(Duration::from_secs(5));
    }
}

impl<H: BatchHandler> ConsumerLoop<H> {
    /// A loop of `handler` over `consumer`.
    pub fn new(
        consumer: StreamConsumer<ConsumerCtx>,
        handler: H,
        dead_letters: DeadLetterSink,
        settings: LoopSettings,
    ) -> Self {
        Self {
            name: consumer.context().name,
            consumer,
            handler,
            dead_letters,
            settings,
        }
    }

    /// The Kafka consumer (for tests and metrics).
    pub fn consumer(&self) -> &StreamConsumer<ConsumerCtx> {
        &self.consumer
    }

    /// The batch handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// Handles `batch` until it succeeded or its poison was parked.
    /// `None`: shut down before that; nothing may be committed.
    async fn process(&self, batch: &[OwnedMessage], stop: &watch::Receiver<bool>) -> Option<usize> {
        let (result, attempts) = with_retries(self.name, &self.settings, stop, || {
            self.handler.handle(batch)
        })
        .await?;
        let Err(e) = result else {
            return Some(attempts);
        };
        if batch.len() > 1 {
            // Find the record(s) that can never succeed, one at a time.
            tracing::warn!(consumer = self.name, error = %e, "batch failed permanently; isolating the record");
            for one in batch {
                Box::pin(self.process(std::slice::from_ref(one), stop)).await?;
            }
            return Some(attempts);
        }
        let rejected = Rejected {
            message: &batch[0],
            reason_code: e.reason_code(),
            reason: e.to_string(),
        };
        let parked = with_retries(self.name, &self.settings, stop, || {
            self.dead_letters.send(std::slice::from_ref(&rejected))
        })
        .await?;
        match parked.0 {
            Ok(()) => Some(attempts),
            // The dead-letter sink truncates what it parks, so a permanent
            // failure here means the topic itself is refused: stop rather
            // than drop the record.
            Err(e) => {
                tracing::error!(consumer = self.name, error = %e, "cannot dead-letter a record");
                None
            }
        }
    }

    fn commit(&self, batch: &[OwnedMessage], mode: CommitMode) -> Result<(), HandlerError> {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next) in next_offsets(batch) {
            tpl.add_partition_offset(&topic, partition, Offset::Offset(next))?;
        }
        self.consumer.commit(&tpl, mode)?;
        Ok(())
    }

    /// One step: a batch, processed and committed. Exposed so tests can
    /// drive the loop deterministically.
    pub async fn step(&self, stop: &mut watch::Receiver<bool>) -> Result<StepReport, HandlerError> {
        let batch = next_batch(&self.consumer, self.settings.shape, stop).await;
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
            return Ok(StepReport::default());
        };
        // Async commit: a lost commit only replays an idempotent batch, and
        // not waiting keeps the loop's latency off the broker round trip.
        // On shutdown the last one is made synchronous.
        let mode = if *stop.borrow() {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        trace.span.in_scope(|| self.commit(&batch, mode))?;
        Ok(StepReport {
            records: batch.len(),
            attempts,
        })
    }

    /// Runs steps until `shutdown` resolves; the batch in hand is finished
    /// (within the deadline) and committed synchronously.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let (tx, mut rx) = watch::channel(false);
        let steps = async {
            while !*rx.borrow() {
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
        tracing::info!(consumer = self.name, "stopped");
    }
}
