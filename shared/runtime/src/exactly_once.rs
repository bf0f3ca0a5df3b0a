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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset, TopicPartitionList};
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::{PgConnection, PgPool};
use tokio::sync::{watch, Notify};
use tracing::Instrument;
use uuid::Uuid;

use achilles_core::config::ConsumerSettings;
use achilles_core::db::outbox::{self, NewOutboxRecord};
use achilles_core::error::{Classify, Disposition};
use achilles_core::metrics;
use achilles_core::model::TenantId;
use achilles_core::telemetry::{self, SpanContext};
use achilles_core::wire::codec::EncodeError;
use achilles_core::wire::{decode_trusted, Record};

use crate::consumer_loop::LoopSettings;
use crate::context::{Change, ConsumerCtx};
use crate::dead_letter::outbox_dead_letter;
use crate::error::StepError;
use crate::fetch::{next_batch, next_offsets};
use crate::positions::{self, checksum, Guard};
use crate::sessions::{Cache, Recent, Session};
use crate::store;
use crate::trace::BatchTrace;

/// A consumer of the events topic whose effects commit exactly once.
pub trait Stage: Send + Sync + 'static {
    /// Per-session state, checkpointed with the positions (`()` if none).
    type State: Send + Sync + 'static;
    /// What applying a batch produced, written by [`Stage::write`].
    type Batch: Default + Send;

    /// The `consumer` label of metrics and logs, and the key of this
    /// stage's rows in `consumer_state`.
    const NAME: &'static str;
    /// The `stage` label of `achilles_freshness_seconds` for its events.
    const FRESHNESS: &'static str;
    /// Whether state is kept and checkpointed; landing keeps none.
    const STATEFUL: bool = true;
    /// Records for another tenant's session are dead-lettered; a stage that
    /// reads the same topic as one that already does so may only skip them.
    const PARKS_FOREIGN: bool = true;

    /// The state of a session this stage has never seen.
    fn new_state(&self) -> Self::State;

    /// The checkpoint form of a state (JSON text; [`to_json`] for serde
    /// types).
    fn save_state(&self, state: &Self::State) -> Result<String, EncodeError>;

    /// A state from its checkpoint; an error is never papered over with an
    /// empty state (the session's records are parked instead).
    fn load_state(&self, text: &str) -> Result<Self::State, String>;

    /// Folds one record into its session and the batch's effects. Pure (no
    /// I/O); a record that can never be applied is refused with a reason
    /// and parked.
    fn apply(
        &self,
        session: &mut Session<Self::State>,
        input: Input,
        out: &mut Self::Batch,
    ) -> Result<(), Refused>;

    /// Writes the batch's effects in the batch's transaction; returns the
    /// records to publish through the outbox. `touched` is in id order.
    fn write<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        out: &'a mut Self::Batch,
        ctx: &'a WriteCtx<'a>,
        touched: &'a [&'a Session<Self::State>],
    ) -> impl Future<Output = Result<Vec<NewOutboxRecord>, StepError>> + Send + 'a;

    /// The `sessions` rows [`Stage::write`] will update: the runtime locks
    /// them in id order first, the one way session rows are locked (see
    /// store.rs for why that cannot deadlock).
    fn locks(&self, _out: &Self::Batch) -> Vec<Uuid> {
        Vec::new()
    }

    /// Called once the batch committed (metrics that must count once).
    fn committed(&self, _out: Self::Batch) {}

    /// A finished session (ended) is dropped from memory after its commit.
    fn finished(_state: &Self::State) -> bool {
        false
    }
}

/// [`Stage::save_state`] for a serde state.
pub fn to_json<T: Serialize>(state: &T) -> Result<String, EncodeError> {
    serde_json::to_string(state).map_err(|e| EncodeError(format!("session state: {e}")))
}

/// [`Stage::load_state`] for a serde state.
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// One decoded record handed to [`Stage::apply`].
pub struct Input {
    pub record: Record,
    pub ingested_at: DateTime<Utc>,
    /// The source record's trace context, if it carried one.
    pub trace: Option<SpanContext>,
    /// Its index in the batch, for [`WriteCtx::dead_letter`].
    pub source: usize,
}

/// Why a record cannot be applied.
#[derive(Debug)]
pub struct Refused {
    pub code: &'static str,
    pub reason: String,
}

/// What `write` may need of the batch beyond its effects.
pub struct WriteCtx<'a> {
    batch: &'a [OwnedMessage],
    group: &'a str,
    dead_letter_topic: &'a str,
    consumer: &'static str,
    parked: std::sync::Mutex<Vec<&'static str>>,
}

impl WriteCtx<'_> {
    /// Parks the batch's record `source` (refused by the database for a
    /// reason of its own, say) in this transaction.
    pub fn dead_letter(
        &self,
        source: usize,
        code: &'static str,
        reason: &str,
    ) -> Result<Option<NewOutboxRecord>, EncodeError> {
        let Some(m) = self.batch.get(source) else {
            return Ok(None);
        };
        self.parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(code);
        outbox_dead_letter(
            m,
            self.consumer,
            self.group,
            self.dead_letter_topic,
            code,
            reason,
        )
        .map(Some)
    }
}

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
    stage: S,
    consumer: StreamConsumer<ConsumerCtx>,
    pool: PgPool,
    group: String,
    topic: String,
    dead_letter_topic: String,
    settings: StepSettings,
    guard: Guard,
    cache: Cache<S::State>,
    owners: HashMap<Uuid, TenantId>,
    /// Positions this instance stored last, per partition.
    stored: HashMap<i32, i64>,
    outbox_wake: Arc<Notify>,
}

/// One batch's outcome inside [`ExactlyOnce::run`].
struct Applied {
    applied: usize,
    parked: Vec<&'static str>,
    freshness: Vec<DateTime<Utc>>,
    next: Vec<(i32, i64)>,
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

    async fn run_tx(
        &mut self,
        batch: &[OwnedMessage],
        park: Option<&(&'static str, String)>,
        used: &mut BTreeSet<Uuid>,
    ) -> Result<Applied, StepError> {
        let mut tx = self.pool.begin().await?;
        if !self.settings.synchronous_commit {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
        }

        // 1. Our positions, locked: skip what an earlier commit applied.
        let partitions: Vec<i32> = batch
            .iter()
            .map(Message::partition)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let positions = positions::lock(&mut tx, &self.group, &self.topic, &partitions).await?;
        for (p, pos) in &positions {
            if self.stored.get(p).is_some_and(|ours| ours != pos) {
                // Another instance wrote this partition meanwhile.
                self.cache.forget_partition(*p);
            }
        }
        let fresh: Vec<(usize, &OwnedMessage)> = batch
            .iter()
            .enumerate()
            .filter(|(_, m)| m.offset() >= positions.get(&m.partition()).copied().unwrap_or(0))
            .collect();
        let replayed = batch.len() - fresh.len();

        // 2. Decode once; undecodable records are parked.
        let mut dead: Vec<(usize, &'static str, String)> = Vec::new();
        let mut inputs: Vec<Input> = Vec::with_capacity(fresh.len());
        for (i, m) in &fresh {
            if let Some((code, reason)) = park {
                dead.push((*i, code, reason.clone()));
                continue;
            }
            match decode_trusted(m.payload().unwrap_or_default()) {
                Ok(env) => inputs.push(Input {
                    record: env.record,
                    ingested_at: env.ingested_at,
                    trace: telemetry::kafka_context(*m),
                    source: *i,
                }),
                Err(e) => dead.push((*i, e.reason_code(), e.to_string())),
            }
        }

        // 3. Session ownership: rows for new sessions, then the tenant check.
        let mut unknown: BTreeMap<Uuid, (&str, DateTime<Utc>)> = BTreeMap::new();
        for inp in &inputs {
            let sid = inp.record.session_id().as_uuid();
            if !self.owners.contains_key(&sid) {
                unknown
                    .entry(sid)
                    .or_insert((inp.record.tenant().as_str(), record_time(&inp.record)));
            }
        }
        let found = store::ensure_owned(&mut tx, &unknown).await?;
        for (sid, tenant) in found {
            if let Ok(t) = TenantId::parse(&tenant) {
                used.insert(sid);
                self.owners.insert(sid, t);
            }
        }
        let mut owned = Vec::with_capacity(inputs.len());
        for inp in inputs {
            let sid = inp.record.session_id().as_uuid();
            if self.owners.get(&sid) == Some(inp.record.tenant()) {
                owned.push(inp);
            } else if S::PARKS_FOREIGN {
                dead.push((
                    inp.source,
                    "session_tenant_mismatch",
                    format!("session {sid} belongs to another tenant"),
                ));
            } else {
                tracing::warn!(consumer = S::NAME, session = %sid, "skipping a record for another tenant's session");
            }
        }
        // 4. States: from memory, else from Postgres.
        let partition_of: HashMap<Uuid, i32> = owned
            .iter()
            .map(|i| (i.record.session_id().as_uuid(), batch[i.source].partition()))
            .collect();
        let broken = self.load(&mut tx, &partition_of, used).await?;
        let mut touched: BTreeSet<Uuid> = BTreeSet::new();
        let mut out = S::Batch::default();
        let mut applied = 0;
        let mut freshness = Vec::new();
        for inp in owned {
            let sid = inp.record.session_id().as_uuid();
            if broken.contains(&sid) {
                dead.push((
                    inp.source,
                    "state_undecodable",
                    format!("the stored state of session {sid} cannot be decoded"),
                ));
                continue;
            }
            used.insert(sid);
            let Some(session) = self.cache.get_mut(&sid) else {
                continue; // loaded above for every owned session
            };
            // 5. Duplicates, then apply.
            let event = match &inp.record {
                Record::Event(e) => Some((e.hash, e.occurred_at.timestamp_micros())),
                _ => None,
            };
            if let (true, Some((hash, _))) = (S::STATEFUL, &event) {
                if session.recent.contains(hash) {
                    metrics::SKIPPED
                        .with_label_values(&[S::NAME, "duplicate"])
                        .inc();
                    continue;
                }
            }
            let (source, ingested_at) = (inp.source, inp.ingested_at);
            if let Err(r) = self.stage.apply(session, inp, &mut out) {
                dead.push((source, r.code, r.reason));
                continue;
            }
            if let Some((hash, t)) = event {
                if S::STATEFUL {
                    let (window, max) = (self.settings.dedup_window_us, self.settings.dedup_max);
                    session.recent.add(&hash, t, window, max);
                }
                session.applied += 1;
                freshness.push(ingested_at);
            }
            applied += 1;
            touched.insert(sid);
        }

        // 6. The stage's writes, the checkpoint, the outbox, the positions.
        let mut locks = self.stage.locks(&out);
        locks.sort_unstable();
        locks.dedup();
        store::lock_sessions(&mut tx, &locks).await?;
        let ctx = WriteCtx {
            batch,
            group: &self.group,
            dead_letter_topic: &self.dead_letter_topic,
            consumer: S::NAME,
            parked: std::sync::Mutex::new(Vec::new()),
        };
        let sessions: Vec<&Session<S::State>> =
            touched.iter().filter_map(|id| self.cache.get(id)).collect();
        let mut records = self.stage.write(&mut tx, &mut out, &ctx, &sessions).await?;
        if S::STATEFUL {
            let mut rows = Vec::with_capacity(sessions.len());
            for s in &sessions {
                let state = self.stage.save_state(&s.state)?;
                rows.push((s.id, s.tenant.as_str(), s.applied, s.recent.encode(), state));
            }
            store::save_states(&mut tx, S::NAME, &rows).await?;
        }
        let mut parked = ctx.parked.into_inner().unwrap_or_else(|p| p.into_inner());
        for (i, code, reason) in &dead {
            let m = &batch[*i];
            records.push(outbox_dead_letter(
                m,
                S::NAME,
                &self.group,
                &self.dead_letter_topic,
                code,
                reason,
            )?);
            parked.push(code);
        }
        outbox::outbox_add(&mut tx, &records).await?;
        let mut next: BTreeMap<i32, (i64, i64)> = BTreeMap::new();
        for m in batch {
            let e = next.entry(m.partition()).or_insert((-1, 0));
            if m.offset() + 1 > e.0 {
                *e = (m.offset() + 1, checksum(m));
            }
        }
        let next: Vec<(i32, i64, i64)> = next.into_iter().map(|(p, (o, c))| (p, o, c)).collect();
        positions::save(&mut tx, &self.group, &self.topic, &next).await?;
        tx.commit().await?;

        // Committed: counts, notices, eviction of finished sessions.
        if replayed > 0 {
            metrics::SKIPPED
                .with_label_values(&[S::NAME, "replayed"])
                .inc_by(replayed as u64);
        }
        let finished: Vec<Uuid> = touched
            .iter()
            .filter(|id| self.cache.get(id).is_some_and(|s| S::finished(&s.state)))
            .copied()
            .collect();
        for id in finished {
            self.cache.remove(&id);
        }
        if !records.is_empty() {
            self.outbox_wake.notify_one();
        }
        self.stage.committed(out);
        Ok(Applied {
            applied,
            parked,
            freshness,
            // As stored: never behind the position this batch started at.
            next: next
                .into_iter()
                .map(|(p, o, _)| (p, o.max(positions.get(&p).copied().unwrap_or(0))))
                .collect(),
        })
    }

    /// Puts every session of `sids` in memory; returns those whose stored
    /// state cannot be decoded (their records are parked, never applied to
    /// an empty state).
    async fn load(
        &mut self,
        conn: &mut PgConnection,
        partition_of: &HashMap<Uuid, i32>,
        used: &mut BTreeSet<Uuid>,
    ) -> Result<BTreeSet<Uuid>, StepError> {
        let mut missing: Vec<Uuid> = partition_of
            .keys()
            .filter(|id| !self.cache.contains(id))
            .copied()
            .collect();
        missing.sort_unstable();
        let mut broken = BTreeSet::new();
        if missing.is_empty() {
            return Ok(broken);
        }
        let rows = if S::STATEFUL {
            store::load_states(conn, S::NAME, &missing).await?
        } else {
            Vec::new()
        };
        let mut rows: HashMap<Uuid, store::StateRow> = rows.into_iter().map(|r| (r.0, r)).collect();
        for id in missing {
            let Some(tenant) = self.owners.get(&id).cloned() else {
                continue;
            };
            used.insert(id);
            let partition = partition_of.get(&id).copied().unwrap_or(-1);
            let (state, applied, recent) = match rows.remove(&id) {
                None => (self.stage.new_state(), 0, Recent::default()),
                Some((_, _, applied, recent, text)) => {
                    match (self.stage.load_state(&text), Recent::decode(&recent)) {
                        (Ok(state), Some(recent)) => (state, applied, recent),
                        (state, _) => {
                            let error = state.err();
                            tracing::error!(consumer = S::NAME, session = %id, error,
                                "stored session state cannot be decoded; parking its records");
                            metrics::STATE_ERRORS.with_label_values(&[S::NAME]).inc();
                            broken.insert(id);
                            continue;
                        }
                    }
                }
            };
            self.cache
                .insert(Session::new(id, tenant, state, applied, recent, partition));
        }
        Ok(broken)
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

/// When a record says its session existed by (for placeholders).
fn record_time(r: &Record) -> DateTime<Utc> {
    match r {
        Record::SessionStart(s) => s.started_at,
        Record::Event(e) => e.occurred_at,
        Record::SessionEnd(e) => e.ended_at,
    }
}
