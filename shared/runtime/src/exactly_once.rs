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

use std::collections::{BTreeMap, HashMap};
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
use crate::fetch::{next_batch_until, next_offsets};
use crate::positions::Guard;
use crate::sessions::Cache;
use crate::stage::Stage;
use crate::trace::BatchTrace;
use crate::transaction::Undo;

/// Knobs of the step, from `[consumer]`.
#[derive(Clone, Debug)]
pub struct StepSettings {
    /// Batching, back-off and shutdown deadline.
    pub loop_settings: LoopSettings,
    /// Event-time window of each session's remembered hashes (µs).
    pub dedup_window_us: i64,
    /// At most this many hashes remembered per session.
    pub dedup_max: usize,
    /// Session states kept in memory.
    pub cache_sessions: usize,
    /// Commit with `synchronous_commit = on`.
    pub synchronous_commit: bool,
    /// Where to resume when a stored position no longer fits the topic.
    pub on_stale: achilles_core::config::StalePositionPolicy,
    /// How often session states are checkpointed.
    pub checkpoint_interval: Duration,
    /// Checkpoint early once this many sessions changed.
    pub checkpoint_max_dirty: usize,
}

impl StepSettings {
    /// The step settings of `[consumer]`.
    pub fn from_settings(c: &ConsumerSettings) -> Self {
        Self {
            loop_settings: LoopSettings::from_settings(c),
            dedup_window_us: c.dedup_window_ms.saturating_mul(1000),
            dedup_max: c.dedup_max_per_session,
            cache_sessions: c.state_cache_sessions,
            synchronous_commit: c.synchronous_commit,
            on_stale: c.on_stale_position,
            checkpoint_interval: Duration::from_millis(c.checkpoint_interval_ms),
            checkpoint_max_dirty: c.checkpoint_max_dirty.max(1),
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
    /// Records refused for good and dead-lettered.
    pub parked: usize,
    /// Attempts the batch took (1 without retries).
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
    pub(crate) last_checkpoint: Instant,
    /// Per partition, the offset before which every record is reflected in
    /// the states in memory (short of the position while re-applying).
    pub(crate) state_at: HashMap<i32, i64>,
    /// The positions the transaction in flight stores.
    pub(crate) pending_positions: HashMap<i32, i64>,
}

/// How [`ExactlyOnce::process`] ended.
enum Processed {
    /// Committed: (applied, parked, attempts).
    Done(usize, usize, usize),
    /// Asked to stop first; nothing committed.
    Stopped,
    /// These partitions were written by another instance meanwhile.
    Moved(Vec<i32>),
}

/// One batch's outcome inside [`ExactlyOnce::run`].
pub(crate) struct Applied {
    pub(crate) applied: usize,
    pub(crate) parked: Vec<&'static str>,
    pub(crate) freshness: Vec<DateTime<Utc>>,
    /// (partition, stored position, offset through which states are
    /// current).
    pub(crate) next: Vec<(i32, i64, i64)>,
}

impl<S: Stage> ExactlyOnce<S> {
    /// A driver of `stage` over `consumer`, with its positions in `pool`.
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
            last_checkpoint: Instant::now(),
            state_at: HashMap::new(),
            pending_positions: HashMap::new(),
        }
    }

    /// The stage.
    pub fn stage(&self) -> &S {
        &self.stage
    }

    /// The Kafka consumer (for tests and metrics).
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
                    self.state_at.remove(&p);
                    self.guard.assigned(p);
                }
                Change::Revoked(t, p) if t == self.topic => {
                    self.cache.forget_partition(p);
                    self.stored.remove(&p);
                    self.state_at.remove(&p);
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
        // Waiting for records is cut short when changed sessions are due to
        // be written: an idle consumer still checkpoints.
        let due = (S::STATEFUL && self.cache.dirty_count() > 0)
            .then(|| self.last_checkpoint + self.settings.checkpoint_interval);
        let shape = self.settings.loop_settings.shape;
        let mut batch = next_batch_until(&self.consumer, shape, stop, due).await;
        if batch.is_empty() && !*stop.borrow() && due.is_some() {
            self.rebalanced();
            self.final_checkpoint().await;
        }
        let records = batch.len();
        let stopped = StepReport {
            records,
            ..StepReport::default()
        };
        loop {
            if batch.is_empty() {
                return Ok(stopped);
            }
            self.rebalanced();
            let Some(admitted) = self.admit(batch, stop).await else {
                return Ok(stopped);
            };
            if admitted.is_empty() {
                return Ok(stopped);
            }
            metrics::CONSUMED
                .with_label_values(&[S::NAME, "events"])
                .inc_by(admitted.len() as u64);
            metrics::BATCH_SIZE
                .with_label_values(&[S::NAME])
                .observe(admitted.len() as f64);
            let trace = BatchTrace::start(S::NAME, &admitted);
            let span = trace.span.clone();
            match self.process(&admitted, stop).instrument(span).await {
                Processed::Done(applied, parked, attempts) => {
                    self.commit_offsets(&admitted, stop)?;
                    return Ok(StepReport {
                        records,
                        applied,
                        parked,
                        attempts,
                    });
                }
                Processed::Stopped => return Ok(stopped),
                Processed::Moved(partitions) => {
                    // Re-read them from their checkpoint: the check drops
                    // this batch's records of them and seeks.
                    for p in partitions {
                        self.cache.forget_partition(p);
                        self.stored.remove(&p);
                        self.state_at.remove(&p);
                        self.guard.assigned(p);
                    }
                    batch = admitted;
                }
            }
        }
    }

    /// Where fetching resumes after a restart (Kafka's committed offsets);
    /// the positions that count are in Postgres.
    fn commit_offsets(
        &self,
        batch: &[OwnedMessage],
        stop: &watch::Receiver<bool>,
    ) -> Result<(), StepError> {
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, next) in next_offsets(batch) {
            tpl.add_partition_offset(&topic, partition, Offset::Offset(next))?;
        }
        let mode = if *stop.borrow() {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        if let Err(e) = self.consumer.commit(&tpl, mode) {
            tracing::debug!(consumer = S::NAME, error = %e, "kafka offset commit failed");
        }
        Ok(())
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
    async fn process(&mut self, batch: &[OwnedMessage], stop: &watch::Receiver<bool>) -> Processed {
        let settings = self.settings.loop_settings;
        let mut attempts = 0;
        let mut backoff = settings.retry_backoff;
        let mut stop_seen: Option<Instant> = None;
        let err = loop {
            attempts += 1;
            match self.run(batch, None).await {
                Ok(a) => return Processed::Done(a.applied, a.parked.len(), attempts),
                Err(StepError::Moved(partitions)) => return Processed::Moved(partitions),
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
                    return Processed::Stopped;
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
                    Ok(a) => return Processed::Done(a.applied, a.parked.len(), attempts),
                    Err(StepError::Moved(partitions)) => return Processed::Moved(partitions),
                    Err(e) => {
                        tracing::warn!(consumer = S::NAME, error = %e, "cannot park the record yet; retrying");
                        if *stop.borrow() {
                            return Processed::Stopped;
                        }
                        tokio::time::sleep(backoff).await;
                    }
                }
            }
        }
        tracing::warn!(consumer = S::NAME, error = %err, records = batch.len(),
            "batch refused for good; splitting it to find the record");
        let (a, b) = batch.split_at(batch.len() / 2);
        let first = match Box::pin(self.process(a, stop)).await {
            Processed::Done(x, y, _) => (x, y),
            other => return other,
        };
        match Box::pin(self.process(b, stop)).await {
            Processed::Done(x, y, _) => Processed::Done(first.0 + x, first.1 + y, attempts),
            other => other,
        }
    }

    /// One transaction over `batch`. With `park`, every record of the batch
    /// (one) is parked with that reason instead of applied. A failed one
    /// leaves memory as it was.
    async fn run(
        &mut self,
        batch: &[OwnedMessage],
        park: Option<&(&'static str, String)>,
    ) -> Result<Applied, StepError> {
        let started = Instant::now();
        let mut undo = Undo::default();
        let result = self.run_tx(batch, park, &mut undo).await;
        self.pending_positions.clear();
        match &result {
            Ok(a) => {
                for (p, next, raw) in &a.next {
                    self.stored.insert(*p, *next);
                    let at = self.state_at.entry(*p).or_insert(*raw);
                    *at = (*at).max(*raw);
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
            Err(_) => self.undo(undo),
        }
        metrics::CACHED_SESSIONS
            .with_label_values(&[S::NAME])
            .set(self.cache.len() as i64);
        result
    }

    /// Writes the changed sessions' states now (while idle, or on shutdown
    /// so a restart re-applies nothing). Best effort: if it fails, a
    /// restart re-applies from the last checkpoint.
    async fn final_checkpoint(&mut self) {
        if !S::STATEFUL || self.cache.dirty_count() == 0 {
            return;
        }
        let at: BTreeMap<i32, i64> = self.state_at.clone().into_iter().collect();
        let result = async {
            let mut tx = self.pool.begin().await?;
            let moved = self.write_checkpoint(&mut tx, &at).await?;
            tx.commit().await?;
            Ok::<_, StepError>(moved)
        }
        .await;
        match result {
            Ok(moved) => self.checkpointed(moved),
            Err(e) => tracing::warn!(consumer = S::NAME, error = %e, "final checkpoint failed"),
        }
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
        self.final_checkpoint().await;
        tracing::info!(consumer = S::NAME, "stopped");
    }
}
