//! One exactly-once step for every consumer that writes Postgres.
//!
//! Landing (raw sink), the stream processor and the agent's light mode are
//! each a [`Stage`]: a state type, a pure `apply` of one record to its
//! session's state, and a `write` of a batch's effects. Everything else is
//! here, once:
//!
//! ```text
//! batch ─▶ check assigned partitions' positions (positions.rs)
//!       ─▶ BEGIN ─▶ lock positions ─▶ skip what they cover (replays)
//!       ─▶ decode once (trusted: validated upstream)
//!       ─▶ session ownership (placeholders in id order, tenant check)
//!       ─▶ states from memory, or Postgres on a miss (sessions.rs)
//!       ─▶ drop duplicates (recent hashes per session) ─▶ apply each record
//!       ─▶ stage.write ─▶ checkpoint states ─▶ outbox (dead letters, notices)
//!       ─▶ store positions + checksum ─▶ COMMIT ─▶ Kafka offsets (a hint)
//! ```
//!
//! **Why this is exactly once.** A record's effects, its session's new
//! state, any record it makes us publish (via the outbox) and the position
//! past it are written in one transaction. Either all of them are durable
//! or none is. The position row is locked at the start, so of two
//! instances that briefly hold the same partition during a rebalance, the
//! second waits, sees the first's position and skips what it applied. A
//! crash anywhere replays from the stored position (Kafka's committed
//! offset is only where fetching starts; records below the stored position
//! are skipped), and an in-memory state is trusted only while this
//! instance is the last writer of its partition: after a failed
//! transaction the touched sessions are dropped from memory, and when the
//! locked position differs from the one this instance last stored, the
//! partition's sessions are reloaded. Because positions commit with the
//! effects, the transaction may run with `synchronous_commit = off`
//! (`consumer.synchronous_commit`): losing the last commits in a Postgres
//! crash loses their positions too, and they are applied again.
//!
//! A record published twice (same event hash) is applied once while its
//! original is within the session's dedup window (see [`Recent`]); landing
//! also has the events table's unique key.
//!
//! **Errors.** Each error's disposition decides ([`StepError`]): `Retry`
//! rolls back, backs off and retries the same batch; `DeadLetter` (a value
//! Postgres refuses, say) splits the batch until the record is found, and
//! that record alone is parked on the dead-letter topic (through the
//! outbox, in the transaction that moves the position past it). Records
//! that cannot be decoded, belong to another tenant's session, or whose
//! session state cannot be read are parked the same way within the batch.
//! Shutdown never commits a position past unapplied work: a batch still
//! failing at the deadline is simply not committed, and is replayed.

use std::collections::{BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use sqlx::PgPool;
use tokio::sync::{watch, Notify};
use tracing::Instrument;
use uuid::Uuid;

use achilles_core::config::ConsumerSettings;
use achilles_core::error::{Classify, Disposition};
use achilles_core::metrics;
use achilles_core::model::TenantId;

use crate::consumer_loop::LoopSettings;
use crate::context::{Change, ConsumerCtx};
use crate::error::StepError;
use crate::fetch::{next_batch, next_offsets};
use crate::positions::Guard;
use crate::sessions::Cache;
use crate::stage::Stage;
use crate::trace::BatchTrace;

/// Knobs of the step, from `[consumer]`.
#[derive(Clone, Debug)]
pub struct StepSettings {
    pub loop_settings: LoopSettings,
    pub dedup_window_us: i64,
    pub dedup_max: usize,
    pub cache_sessions: usize,
    pub synchronous_commit: bool,
    pub on_stale: achilles_core::config::StalePositionPolicy,
}

impl StepSettings {
    pub fn from_settings(c: &ConsumerSettings) -> Self {
        Self {
            loop_settings: LoopSettings::from_settings(c),
            dedup_window_us: c.dedup_window_ms.saturating_mul(1000),
            dedup_max: c.dedup_max_per_session,
            cache_sessions: c.state_cache_sessions,
            synchronous_commit: c.synchronous_commit,
            on_stale: c.on_stale_position,
        }
    }
}

/// What one step did, for tests and logs.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct StepReport {
    /// Records taken from Kafka.
    pub records: usize,
    /// Records applied (not replays, duplicates or parked).
    pub applied: usize,
    pub parked: usize,
    pub attempts: usize,
}

/// The loop of one stage over one topic.
pub struct ExactlyOnce<S: Stage> {
    pub(crate) stage: S,
    pub(crate) consumer: StreamConsumer<ConsumerCtx>,
    pub(crate) pool: PgPool,
    pub(crate) group: String,
    pub(crate) topic: String,
    pub(crate) dead_letter_topic: String,
    pub(crate) settings: StepSettings,
    pub(crate) guard: Guard,
    pub(crate) cache: Cache<S::State>,
    pub(crate) owners: HashMap<Uuid, TenantId>,
    /// Positions this instance stored last, per partition.
    pub(crate) stored: HashMap<i32, i64>,
    pub(crate) outbox_wake: Arc<Notify>,
}

/// One batch's outcome inside [`ExactlyOnce::run`].
pub(crate) struct Applied {
    pub(crate) applied: usize,
    pub(crate) parked: Vec<&'static str>,
    pub(crate) freshness: Vec<DateTime<Utc>>,
    pub(crate) next: Vec<(i32, i64)>,
}

impl<S: Stage> ExactlyOnce<S> {
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        stage: S,
        consumer: StreamConsumer<ConsumerCtx>,
        pool: PgPool,
        group: String,
        topic: String,
        dead_letter_topic: String,
        settings: StepSettings,
        outbox_wake: Arc<Notify>,
    ) -> Self {
        Self {
            guard: Guard::new(group.clone(), topic.clone(), settings.on_stale),
            cache: Cache::new(settings.cache_sessions),
            stage,
            consumer,
            pool,
            group,
            topic,
            dead_letter_topic,
            settings,
            owners: HashMap::new(),
            stored: HashMap::new(),
            outbox_wake,
        }
    }

    pub fn stage(&self) -> &S {
        &self.stage
    }

    pub fn consumer(&self) -> &StreamConsumer<ConsumerCtx> {
        &self.consumer
    }

    /// Rebalances since the last step: forget what another instance may
    /// change, check what we were given.
    fn rebalanced(&mut self) {
        for change in self.consumer.context().shared.take_changes() {
            match change {
                Change::Assigned(t, p) if t == self.topic => {
                    self.cache.forget_partition(p);
                    self.stored.remove(&p);
                    self.guard.assigned(p);
                }
                Change::Revoked(t, p) if t == self.topic => {
                    self.cache.forget_partition(p);
                    self.stored.remove(&p);
                    self.guard.revoked(p);
                }
                _ => {}
            }
        }
    }

    /// One step: a batch, applied and committed. Exposed so tests can drive
    /// the loop deterministically.
    pub async fn step(
        &mut self,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<StepReport, StepError> {
        let batch = next_batch(&self.consumer, self.settings.loop_settings.shape, stop).await;
        if batch.is_empty() {
            return Ok(StepReport::default());
        }
        self.rebalanced();
        let records = batch.len();
        let Some(batch) = self.admit(batch, stop).await else {
            return Ok(StepReport {
                records,
                ..StepReport::default()
            });
        };
        if batch.is_empty() {
            return Ok(StepReport {
                records,
                ..StepReport::default()
            });
        }
        metrics::CONSUMED
            .with_label_values(&[S::NAME, "events"])
            .inc_by(batch.len() as u64);
        metrics::BATCH_SIZE
            .with_label_values(&[S::NAME])
            .observe(batch.len() as f64);
        let trace = BatchTrace::start(S::NAME, &batch);
        let span = trace.span.clone();
        let Some((applied, parked, attempts)) = self.process(&batch, stop).instrument(span).await
        else {
            return Ok(StepReport {
                records,
                ..StepReport::default()
            });
        };
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next) in next_offsets(&batch) {
            tpl.add_partition_offset(&topic, partition, Offset::Offset(next))?;
        }
        let mode = if *stop.borrow() {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        // Where fetching starts after a restart; the positions that count
        // are in Postgres.
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            tracing::debug!(consumer = S::NAME, error = %e, "kafka offset commit failed");
        }
        Ok(StepReport {
            records,
            applied,
            parked,
            attempts,
        })
    }

    /// Checks the positions of newly assigned partitions; drops the records
    /// of partitions that were re-positioned. The records were taken from
    /// the stream, so a failure is retried until it succeeds (or shutdown,
    /// when nothing is committed and the batch is fetched again later).
    async fn admit(
        &mut self,
        batch: Vec<OwnedMessage>,
        stop: &watch::Receiver<bool>,
    ) -> Option<Vec<OwnedMessage>> {
        let mut backoff = self.settings.loop_settings.retry_backoff;
        loop {
            match self.guard.admit(&self.consumer, &self.pool, &batch).await {
                Ok(drop) => {
                    return Some(
                        batch
                            .into_iter()
                            .filter(|m| !drop.contains(&m.partition()))
                            .collect(),
                    )
                }
                Err(e) => {
                    metrics::RETRIES
                        .with_label_values(&[S::NAME, e.reason_code()])
                        .inc();
                    tracing::warn!(consumer = S::NAME, error = %e, "cannot check positions; retrying");
                    if *stop.borrow() {
                        return None;
                    }
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    /// Applies `batch` (retrying, or isolating a permanent failure).
    /// `None`: asked to stop before it committed.
    async fn process(
        &mut self,
        batch: &[OwnedMessage],
        stop: &watch::Receiver<bool>,
    ) -> Option<(usize, usize, usize)> {
        let settings = self.settings.loop_settings;
        let mut attempts = 0;
        let mut backoff = settings.retry_backoff;
        let mut stop_seen: Option<Instant> = None;
        let err = loop {
            attempts += 1;
            match self.run(batch, None).await {
                Ok(a) => return Some((a.applied, a.parked.len(), attempts)),
                Err(e) if e.disposition() == Disposition::DeadLetter => break e,
                Err(e) => {
                    metrics::RETRIES
                        .with_label_values(&[S::NAME, e.reason_code()])
                        .inc();
                    tracing::warn!(consumer = S::NAME, error = %e, attempts, "batch failed; retrying");
                }
            }
            if *stop.borrow() {
                let since = *stop_seen.get_or_insert_with(Instant::now);
                if since.elapsed() >= settings.shutdown_deadline {
                    tracing::warn!(
                        consumer = S::NAME,
                        "shutdown deadline passed; the batch is not committed and will be replayed"
                    );
                    return None;
                }
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(5));
        };
        if batch.len() == 1 {
            // This record alone fails for good: park it, move on.
            let refusal = (err.reason_code(), err.to_string());
            loop {
                match self.run(batch, Some(&refusal)).await {
                    Ok(a) => return Some((a.applied, a.parked.len(), attempts)),
                    Err(e) => {
                        tracing::warn!(consumer = S::NAME, error = %e, "cannot park the record yet; retrying");
                        if *stop.borrow() {
                            return None;
                        }
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
        }
        tracing::warn!(consumer = S::NAME, error = %err, records = batch.len(),
            "batch refused for good; splitting it to find the record");
        let (a, b) = batch.split_at(batch.len() / 2);
        let first = Box::pin(self.process(a, stop)).await?;
        let second = Box::pin(self.process(b, stop)).await?;
        Some((first.0 + second.0, first.1 + second.1, attempts))
    }

    /// One transaction over `batch`. With `park`, every record of the batch
    /// (one) is parked with that reason instead of applied.
    async fn run(
        &mut self,
        batch: &[OwnedMessage],
        park: Option<&(&'static str, String)>,
    ) -> Result<Applied, StepError> {
        let started = Instant::now();
        let mut used: BTreeSet<Uuid> = BTreeSet::new();
        let result = self.run_tx(batch, park, &mut used).await;
        match &result {
            Ok(a) => {
                for (p, next) in &a.next {
                    self.stored.insert(*p, *next);
                    self.consumer
                        .context()
                        .shared
                        .set_position(&self.topic, *p, *next);
                }
                metrics::DB_WRITE
                    .with_label_values(&[S::NAME])
                    .observe(started.elapsed().as_secs_f64());
                let now = Utc::now();
                for t in &a.freshness {
                    metrics::FRESHNESS
                        .with_label_values(&[S::FRESHNESS])
                        .observe((now - *t).to_std().unwrap_or_default().as_secs_f64());
                }
                for code in &a.parked {
                    metrics::DEAD_LETTERED
                        .with_label_values(&[S::NAME, code])
                        .inc();
                }
                if !a.parked.is_empty() {
                    self.outbox_wake.notify_one();
                }
                self.cache.evict();
            }
            Err(_) => {
                // Whatever this attempt changed in memory is void.
                for id in &used {
                    self.cache.remove(id);
                    self.owners.remove(id);
                }
            }
        }
        metrics::CACHED_SESSIONS
            .with_label_values(&[S::NAME])
            .set(self.cache.len() as i64);
        result
    }
    /// Runs steps until `shutdown` resolves.
    pub async fn run_until(mut self, shutdown: impl Future<Output = ()> + Send) {
        let (tx, mut rx) = watch::channel(false);
        let backoff = self.settings.loop_settings.retry_backoff;
        let steps = async {
            while !*rx.borrow() {
                if let Err(e) = self.step(&mut rx).await {
                    tracing::warn!(consumer = S::NAME, error = %e, "step failed; retrying");
                    tokio::time::sleep(backoff).await;
                }
            }
        };
        let signal = async {
            shutdown.await;
            let _ = tx.send(true);
        };
        tokio::join!(steps, signal);
        tracing::info!(consumer = S::NAME, "stopped");
    }
}
