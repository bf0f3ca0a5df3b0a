//! One transaction of the exactly-once step: the body of
//! [`ExactlyOnce::run`] (see [`crate::exactly_once`] for the argument).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, Utc};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use achilles_core::db::outbox;
use achilles_core::error::Classify;
use achilles_core::metrics;
use achilles_core::model::TenantId;
use achilles_core::telemetry;
use achilles_core::wire::{decode_trusted, Record};

use crate::dead_letter::outbox_dead_letter;
use crate::error::StepError;
use crate::exactly_once::{Applied, ExactlyOnce};
use crate::positions::{self, checksum};
use crate::sessions::{Recent, Session};
use crate::stage::{Input, Stage, WriteCtx};
use crate::store;

impl<S: Stage> ExactlyOnce<S> {
    pub(crate) async fn run_tx(
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
}

/// When a record says its session existed by (for placeholders).
fn record_time(r: &Record) -> DateTime<Utc> {
    match r {
        Record::SessionStart(s) => s.started_at,
        Record::Event(e) => e.occurred_at,
        Record::SessionEnd(e) => e.ended_at,
    }
}
