//! One transaction of the exactly-once step: the body of
//! [`ExactlyOnce::run`] (see [`crate::exactly_once`] for the argument).
//!
//! Records of a batch fall in three groups by the partition's stored
//! position `next` and state checkpoint `cp` (`cp <= next`):
//! * `offset >= next`: applied (state and effects) — the normal case;
//! * `cp <= offset < next`: re-applied to state only: their effects are
//!   committed already, but the sessions' state rows are older than them
//!   (this instance took the partition over since the last checkpoint);
//! * `offset < cp`: skipped.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use chrono::{DateTime, Utc};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use achilles_core::db::{outbox, retention};
use achilles_core::error::Classify;
use achilles_core::metrics;
use achilles_core::model::TenantId;
use achilles_core::telemetry;
use achilles_core::wire::{decode_trusted, Record};

use crate::dead_letter::outbox_dead_letter;
use crate::error::StepError;
use crate::exactly_once::{Applied, ExactlyOnce};
use crate::positions::{self, checksum, Locked};
use crate::sessions::{Recent, Session};
use crate::stage::{Input, Stage, WriteCtx};
use crate::store;

/// How a session looked before this transaction first changed it, so a
/// failed transaction leaves memory as it found it: a dirty session is put
/// back, a clean one is dropped (its stored state is current).
pub(crate) struct Undo<S> {
    before: Vec<(Uuid, Option<Session<S>>)>,
    seen: HashSet<Uuid>,
    /// Owners learnt in this transaction (their placeholder rows roll back
    /// with it).
    owners: Vec<Uuid>,
}

impl<S> Default for Undo<S> {
    fn default() -> Self {
        Self {
            before: Vec::new(),
            seen: HashSet::new(),
            owners: Vec::new(),
        }
    }
}

/// A record to apply: the decoded input, and whether it only rebuilds state.
struct Item {
    input: Input,
    replay: bool,
}

impl<S: Stage> ExactlyOnce<S> {
    pub(crate) async fn run_tx(
        &mut self,
        batch: &[OwnedMessage],
        park: Option<&(&'static str, String)>,
        undo: &mut Undo<S::State>,
    ) -> Result<Applied, StepError> {
        let mut tx = self.pool.begin().await?;
        if !self.settings.synchronous_commit {
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await?;
        }
        // A session deletion waits for this transaction, and this one for
        // a deletion in progress (achilles_core::db::retention).
        retention::hold_deletion_guard(&mut tx).await?;

        // 1. Our positions, locked; a partition another instance wrote
        //    since we last did must be re-read from its checkpoint first.
        let partitions: Vec<i32> = batch
            .iter()
            .map(Message::partition)
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let positions = positions::lock(&mut tx, &self.group, &self.topic, &partitions).await?;
        let moved: Vec<i32> = positions
            .iter()
            .filter(|(p, pos)| self.stored.get(p).is_some_and(|ours| *ours != pos.next))
            .map(|(p, _)| *p)
            .collect();
        if !moved.is_empty() {
            return Err(StepError::Moved(moved));
        }

        // 2. Decode once (what a position covers is skipped or only
        //    re-applied to state); undecodable records are parked.
        let (items, mut dead, replayed) = self.decode(batch, &positions, park);

        // 3. Session ownership, states, then apply in order.
        let items = self.owned(&mut tx, items, &mut dead, batch, undo).await?;
        let broken = self.load(&mut tx, &items, batch).await?;
        let mut out = S::Batch::default();
        let (applied, freshness, touched) =
            self.apply_all(items, &broken, &mut dead, &mut out, undo);

        // 4. Effects, the checkpoint when due, the outbox, the positions.
        let ctx = WriteCtx {
            batch,
            group: &self.group,
            dead_letter_topic: &self.dead_letter_topic,
            consumer: S::NAME,
            parked: std::sync::Mutex::new(Vec::new()),
        };
        let mut records = {
            let sessions: Vec<&Session<S::State>> =
                touched.iter().filter_map(|id| self.cache.get(id)).collect();
            self.stage.write(&mut tx, &mut out, &ctx, &sessions).await?
        };
        let mut parked = ctx.parked.into_inner().unwrap_or_else(|p| p.into_inner());
        for (i, code, reason) in &dead {
            records.push(outbox_dead_letter(
                &batch[*i],
                S::NAME,
                &self.group,
                &self.dead_letter_topic,
                code,
                reason,
            )?);
            parked.push(code);
        }
        outbox::outbox_add(&mut tx, &records).await?;
        let next = next_positions(batch, &positions);
        let raw: Vec<(i32, i64, i64)> = next.iter().map(|(p, n)| (*p, n.end, n.crc)).collect();
        positions::save(&mut tx, &self.group, &self.topic, &raw).await?;
        self.pending_positions = next.iter().map(|(p, n)| (*p, n.next)).collect();
        let checkpoint = if park.is_none() && self.checkpoint_due() {
            // Each partition's states reflect every record before the last
            // one this instance applied (or re-applied) to them: while a
            // takeover is still re-applying, that is short of the position.
            let mut at: BTreeMap<i32, i64> = self.state_at.clone().into_iter().collect();
            for (p, n) in &next {
                let e = at.entry(*p).or_insert(n.raw);
                *e = (*e).max(n.raw);
            }
            Some(self.write_checkpoint(&mut tx, &at).await?)
        } else {
            None
        };
        tx.commit().await?;

        // Committed.
        if replayed > 0 {
            metrics::SKIPPED
                .with_label_values(&[S::NAME, "replayed"])
                .inc_by(replayed as u64);
        }
        if let Some(moved) = checkpoint {
            self.checkpointed(moved);
        }
        if !records.is_empty() {
            self.outbox_wake.notify_one();
        }
        self.stage.committed(out);
        Ok(Applied {
            applied,
            parked,
            freshness,
            next: next.into_iter().map(|(p, n)| (p, n.next, n.raw)).collect(),
        })
    }

    /// Decodes what the positions do not cover; returns the items, the
    /// records to park and how many were skipped as replays.
    #[allow(clippy::type_complexity)]
    fn decode(
        &self,
        batch: &[OwnedMessage],
        positions: &HashMap<i32, Locked>,
        park: Option<&(&'static str, String)>,
    ) -> (Vec<Item>, Vec<(usize, &'static str, String)>, usize) {
        let mut items = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        let mut skipped = 0;
        for (i, m) in batch.iter().enumerate() {
            let pos = positions.get(&m.partition()).copied().unwrap_or(Locked {
                next: 0,
                checkpoint: 0,
            });
            let replay = m.offset() < pos.next;
            if m.offset() < pos.checkpoint || (replay && park.is_some()) {
                skipped += 1;
                continue;
            }
            if replay {
                skipped += 1;
            }
            if let Some((code, reason)) = park {
                dead.push((i, *code, reason.clone()));
                continue;
            }
            match decode_trusted(m.payload().unwrap_or_default()) {
                Ok(env) => items.push(Item {
                    input: Input {
                        record: env.record,
                        ingested_at: env.ingested_at,
                        trace: telemetry::kafka_context(m),
                        source: i,
                    },
                    replay,
                }),
                // Parked when first seen; a replay only rebuilds state.
                Err(_) if replay => {}
                Err(e) => dead.push((i, e.reason_code(), e.to_string())),
            }
        }
        (items, dead, skipped)
    }

    /// Rows for new sessions (in id order), then the tenant check: a record
    /// for another tenant's session is parked (or skipped).
    async fn owned(
        &mut self,
        conn: &mut PgConnection,
        items: Vec<Item>,
        dead: &mut Vec<(usize, &'static str, String)>,
        batch: &[OwnedMessage],
        undo: &mut Undo<S::State>,
    ) -> Result<Vec<Item>, StepError> {
        // Sessions deleted since they were seen: a tombstoned one (deleted
        // on request) is dropped with its records; one pruned by retention
        // is forgotten here and starts again as a new session.
        let sids: Vec<Uuid> = items
            .iter()
            .map(|it| it.input.record.session_id().as_uuid())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let deleted: HashSet<Uuid> = retention::tombstoned(conn, &sids)
            .await?
            .into_iter()
            .collect();
        let known: Vec<Uuid> = sids
            .iter()
            .filter(|id| self.owners.contains_key(id) && !deleted.contains(id))
            .copied()
            .collect();
        for id in deleted.iter().chain(&retention::gone(conn, &known).await?) {
            self.owners.remove(id);
            self.cache.remove(id);
        }
        let mut dropped = 0;
        let items: Vec<Item> = items
            .into_iter()
            .filter(|it| {
                let keep = !deleted.contains(&it.input.record.session_id().as_uuid());
                dropped += usize::from(!keep && !it.replay);
                keep
            })
            .collect();
        if dropped > 0 {
            metrics::SKIPPED
                .with_label_values(&[S::NAME, "deleted"])
                .inc_by(dropped as u64);
        }
        let mut unknown: BTreeMap<Uuid, (&str, DateTime<Utc>)> = BTreeMap::new();
        for it in &items {
            let r = &it.input.record;
            let sid = r.session_id().as_uuid();
            if !self.owners.contains_key(&sid) {
                unknown
                    .entry(sid)
                    .or_insert((r.tenant().as_str(), record_time(r)));
            }
        }
        for (sid, tenant) in store::ensure_owned(conn, &unknown).await? {
            if let Ok(t) = TenantId::parse(&tenant) {
                self.owners.insert(sid, t);
                undo.owners.push(sid);
            }
        }
        let mut owned = Vec::with_capacity(items.len());
        for it in items {
            let sid = it.input.record.session_id().as_uuid();
            if self.owners.get(&sid) == Some(it.input.record.tenant()) {
                owned.push(it);
            } else if it.replay {
                // Parked (or skipped) when first seen.
            } else if S::PARKS_FOREIGN {
                let reason = format!("session {sid} belongs to another tenant");
                dead.push((it.input.source, "session_tenant_mismatch", reason));
            } else {
                let partition = batch[it.input.source].partition();
                tracing::warn!(consumer = S::NAME, session = %sid, partition,
                    "skipping a record for another tenant's session");
            }
        }
        Ok(owned)
    }

    /// Folds every item into its session; returns (records applied, their
    /// ingest times for freshness, sessions whose effects this batch
    /// writes).
    fn apply_all(
        &mut self,
        items: Vec<Item>,
        broken: &BTreeSet<Uuid>,
        dead: &mut Vec<(usize, &'static str, String)>,
        out: &mut S::Batch,
        undo: &mut Undo<S::State>,
    ) -> (usize, Vec<DateTime<Utc>>, BTreeSet<Uuid>) {
        let mut applied = 0;
        let mut freshness = Vec::new();
        let mut touched = BTreeSet::new();
        // Effects of re-applied records are committed already: discarded.
        let mut discard = S::Batch::default();
        let (window, max) = (self.settings.dedup_window_us, self.settings.dedup_max);
        for it in items {
            let sid = it.input.record.session_id().as_uuid();
            if broken.contains(&sid) {
                if !it.replay {
                    let reason = format!("the stored state of session {sid} cannot be decoded");
                    dead.push((it.input.source, "state_undecodable", reason));
                }
                continue;
            }
            if undo.seen.insert(sid) {
                let before = self
                    .cache
                    .get(&sid)
                    .filter(|_| self.cache.is_dirty(&sid))
                    .map(|s| s.copy_with(self.stage.snapshot(&s.state)));
                undo.before.push((sid, before));
            }
            let Some(session) = self.cache.get_mut(&sid) else {
                continue; // loaded for every owned session
            };
            let event = match &it.input.record {
                Record::Event(e) => Some((e.hash, e.occurred_at.timestamp_micros())),
                _ => None,
            };
            if let (true, Some((hash, _))) = (S::STATEFUL, &event) {
                if session.recent.contains(hash) {
                    if !it.replay {
                        metrics::SKIPPED
                            .with_label_values(&[S::NAME, "duplicate"])
                            .inc();
                    }
                    continue;
                }
            }
            let (source, ingested_at, replay) = (it.input.source, it.input.ingested_at, it.replay);
            let target = if replay { &mut discard } else { &mut *out };
            if let Err(r) = self.stage.apply(session, it.input, target) {
                if !replay {
                    dead.push((source, r.code, r.reason));
                }
                continue;
            }
            if let Some((hash, t)) = event {
                if S::STATEFUL {
                    session.recent.add(&hash, t, window, max);
                }
                session.applied += 1;
                if !replay {
                    freshness.push(ingested_at);
                }
            }
            if S::STATEFUL {
                self.cache.mark_dirty(sid);
            }
            if !replay {
                applied += 1;
                touched.insert(sid);
            }
        }
        (applied, freshness, touched)
    }

    /// Puts every session of `items` in memory; returns those whose stored
    /// state cannot be decoded (their records are parked, never applied to
    /// an empty state).
    async fn load(
        &mut self,
        conn: &mut PgConnection,
        items: &[Item],
        batch: &[OwnedMessage],
    ) -> Result<BTreeSet<Uuid>, StepError> {
        let mut partition_of: BTreeMap<Uuid, i32> = BTreeMap::new();
        for it in items {
            let sid = it.input.record.session_id().as_uuid();
            if !self.cache.contains(&sid) {
                partition_of.insert(sid, batch[it.input.source].partition());
            }
        }
        let mut broken = BTreeSet::new();
        if partition_of.is_empty() {
            return Ok(broken);
        }
        let missing: Vec<Uuid> = partition_of.keys().copied().collect();
        let rows = if S::STATEFUL {
            store::load_states(conn, S::NAME, &missing).await?
        } else {
            Vec::new()
        };
        let mut rows: HashMap<Uuid, store::StateRow> = rows.into_iter().map(|r| (r.0, r)).collect();
        for (id, partition) in partition_of {
            let Some(tenant) = self.owners.get(&id).cloned() else {
                continue;
            };
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

    /// A checkpoint is due when the interval passed or too many sessions
    /// changed since the last one.
    fn checkpoint_due(&self) -> bool {
        S::STATEFUL
            && (self.last_checkpoint.elapsed() >= self.settings.checkpoint_interval
                || self.cache.dirty_count() >= self.settings.checkpoint_max_dirty)
    }

    /// Writes every changed session's state and the partitions'
    /// checkpoint offsets (`at`: the position each state reflects), for the
    /// partitions this instance is still the writer of (their positions,
    /// locked here, are where `at` says). Returns the others: another
    /// instance took them over, and what this one holds of them is stale.
    pub(crate) async fn write_checkpoint(
        &self,
        conn: &mut PgConnection,
        at: &BTreeMap<i32, i64>,
    ) -> Result<Vec<i32>, StepError> {
        // Idempotent when the batch's transaction holds it already.
        retention::hold_deletion_guard(conn).await?;
        let parts: Vec<i32> = at.keys().copied().collect();
        let locked = positions::lock(conn, &self.group, &self.topic, &parts).await?;
        // Still the writer: the position is where this instance left it.
        let moved: Vec<i32> = parts
            .iter()
            .filter(|p| locked.get(p).map(|l| l.next) != self.expected_position(**p))
            .copied()
            .collect();
        let mut rows = Vec::with_capacity(self.cache.dirty_count());
        for s in self.cache.dirty().filter(|s| !moved.contains(&s.partition)) {
            let state = self.stage.save_state(&s.state)?;
            rows.push((s.id, s.tenant.as_str(), s.applied, s.recent.encode(), state));
        }
        store::save_states(conn, S::NAME, &rows).await?;
        let at: Vec<(i32, i64)> = at
            .iter()
            .filter(|(p, _)| !moved.contains(p))
            .map(|(p, o)| (*p, *o))
            .collect();
        positions::save_checkpoints(conn, &self.group, &self.topic, &at).await?;
        Ok(moved)
    }

    /// The position this instance last stored for `p` (or is storing in the
    /// current transaction).
    fn expected_position(&self, p: i32) -> Option<i64> {
        self.pending_positions
            .get(&p)
            .or_else(|| self.stored.get(&p))
            .copied()
    }

    /// After a checkpoint committed: nothing is dirty, finished sessions
    /// may leave memory, and partitions another instance took over are
    /// forgotten (and checked again should they still be ours).
    pub(crate) fn checkpointed(&mut self, moved: Vec<i32>) {
        for p in moved {
            self.cache.forget_partition(p);
            self.stored.remove(&p);
            self.state_at.remove(&p);
            self.guard.assigned(p);
        }
        self.cache.mark_clean();
        self.last_checkpoint = std::time::Instant::now();
        let finished: Vec<Uuid> = self
            .cache
            .all()
            .filter(|s| S::finished(&s.state))
            .map(|s| s.id)
            .collect();
        for id in finished {
            self.cache.remove(&id);
        }
        metrics::CHECKPOINTS.with_label_values(&[S::NAME]).inc();
    }

    /// Undoes a failed transaction's changes to memory.
    pub(crate) fn undo(&mut self, undo: Undo<S::State>) {
        for id in undo.owners {
            self.owners.remove(&id);
        }
        for (id, before) in undo.before {
            match before {
                Some(s) => self.cache.restore(s),
                None => self.cache.remove(&id),
            }
        }
    }
}

/// Where a batch leaves a partition: the next record to apply (never
/// behind the stored position), the offset before which the states now
/// reflect every record (the batch's end, never behind the checkpoint) and
/// the checksum of the batch's last record.
struct Next {
    next: i64,
    /// The batch's last offset + 1, whose record `crc` is of.
    end: i64,
    raw: i64,
    crc: i64,
}

fn next_positions(batch: &[OwnedMessage], positions: &HashMap<i32, Locked>) -> Vec<(i32, Next)> {
    let mut last: BTreeMap<i32, &OwnedMessage> = BTreeMap::new();
    for m in batch {
        let e = last.entry(m.partition()).or_insert(m);
        if m.offset() > e.offset() {
            *e = m;
        }
    }
    last.into_iter()
        .map(|(p, m)| {
            let raw = m.offset() + 1;
            let (stored, cp) = positions.get(&p).map_or((0, 0), |l| (l.next, l.checkpoint));
            let n = Next {
                next: raw.max(stored),
                end: raw,
                // Records before the checkpoint are in the stored states.
                raw: raw.max(cp),
                crc: checksum(m),
            };
            (p, n)
        })
        .collect()
}

/// When a record says its session existed by (for placeholders).
fn record_time(r: &Record) -> DateTime<Utc> {
    match r {
        Record::SessionStart(s) => s.started_at,
        Record::Event(e) => e.occurred_at,
        Record::SessionEnd(e) => e.ended_at,
    }
}
