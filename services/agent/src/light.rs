//! Light mode: one batch of the events topic, folded into each session's
//! rolling state and judged by the evaluation graph, exactly once.
//!
//! As in the stream processor, everything a batch changes commits in one
//! Postgres transaction: the sessions' states, the insights, the outbox
//! records announcing raised, escalated and resolved insights, *and* this
//! consumer's position (`consumer_offsets`, locked at the start). A replay
//! after a crash or a rebalance therefore changes nothing, and an insight
//! is published once per transition (at least once on the wire, since the
//! outbox re-publishes after a crash). Event hashes are marked in
//! `agent_seen`, so an event published twice is counted once.
//!
//! Undecodable records, and records for a session owned by another
//! tenant, are skipped with a warning: the raw sink and the processor
//! already dead-letter exactly those records from this topic, and a third
//! copy would tell an operator nothing new.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rdkafka::message::{Message, OwnedMessage};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use achilles_core::db::analysis::{self, InsightWrite};
use achilles_core::db::outbox::NewOutboxRecord;
use achilles_core::db::{self, offsets};
use achilles_core::metrics;
use achilles_core::model::{Limits, SessionId, TenantId};
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::insight::{InsightRecord, Transition};
use achilles_core::wire::{decode_envelope, Envelope, Record};
use achilles_runtime::{BatchHandler, HandlerError};

use crate::graph::{insight_id, Change, Decision, Graph, OpenInsight, Session};
use crate::observe::Observed;

/// The `consumer` label of this loop's metrics.
pub const NAME: &str = "agent";

pub struct LightHandler {
    pub pool: PgPool,
    pub graph: Graph,
    pub limits: Limits,
    pub group: String,
    pub topics: Topics,
    pub outbox_wake: Arc<Notify>,
}

fn ts(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

impl BatchHandler for LightHandler {
    async fn handle(&self, batch: &[OwnedMessage]) -> Result<(), HandlerError> {
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;

        // 1. Our position, locked: skip what an earlier commit applied.
        let topic = self.topics.name(Topic::Events);
        let partitions: Vec<i32> = batch
            .iter()
            .map(Message::partition)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let positions = offsets::lock_offsets(&mut tx, &self.group, &topic, &partitions).await?;
        let mut records: Vec<Envelope> = Vec::new();
        for m in batch
            .iter()
            .filter(|m| m.offset() >= positions.get(&m.partition()).copied().unwrap_or(0))
        {
            metrics::CONSUMED.with_label_values(&[NAME, "events"]).inc();
            match decode_envelope(m.payload().unwrap_or_default(), &self.limits) {
                Ok(env) => records.push(env),
                Err(e) => tracing::warn!(consumer = NAME, partition = m.partition(),
                    offset = m.offset(), error = %e, "skipping undecodable record"),
            }
        }

        // 2. Session rows exist (insights reference them) and belong to the
        //    record's tenant.
        let mut firsts: HashMap<Uuid, (&str, DateTime<Utc>)> = HashMap::new();
        for env in &records {
            let at = match &env.record {
                Record::SessionStart(s) => s.started_at,
                Record::Event(e) => e.occurred_at,
                Record::SessionEnd(e) => e.ended_at,
            };
            firsts
                .entry(env.record.session_id().as_uuid())
                .or_insert((env.record.tenant().as_str(), at));
        }
        let rows: Vec<_> = firsts.iter().map(|(id, (t, at))| (*id, *t, *at)).collect();
        db::ensure_placeholders(&mut tx, &rows).await?;
        let ids: Vec<Uuid> = firsts.keys().copied().collect();
        let owners = db::session_owners(&mut tx, &ids).await?;
        records.retain(|env| {
            let sid = env.record.session_id().as_uuid();
            let ok = owners.get(&sid).map(String::as_str) == Some(env.record.tenant().as_str());
            if !ok {
                tracing::warn!(consumer = NAME, session = %sid, "skipping a record for another tenant's session");
            }
            ok
        });

        // 3. Apply each event once, in partition order, and judge it.
        let hashes: Vec<(String, Uuid)> = records
            .iter()
            .filter_map(|env| match &env.record {
                Record::Event(e) => Some((e.hash.to_hex(), e.session_id.as_uuid())),
                _ => None,
            })
            .collect();
        let mut unseen = analysis::mark_agent_seen(&mut tx, &hashes).await?;
        let stored = analysis::load_agent_states(&mut tx, &ids).await?;
        let mut sessions: BTreeMap<Uuid, Session> = ids
            .iter()
            .map(|id| (*id, self.graph.load(stored.get(id))))
            .collect();
        // Last-seen times of the open insights as loaded: whatever moved is
        // written back once at the end of the batch.
        let loaded: HashSet<(Uuid, String, String, i64)> = sessions
            .iter()
            .flat_map(|(sid, s)| {
                s.open.iter().map(|o| {
                    (
                        *sid,
                        o.insight_type.clone(),
                        o.dedup_key.clone(),
                        o.last_seen_at,
                    )
                })
            })
            .collect();
        let mut touched: HashSet<Uuid> = HashSet::new();
        let mut decisions: Vec<(Uuid, String, Decision)> = Vec::new();
        let mut freshness = Vec::new();
        for env in &records {
            let sid = env.record.session_id().as_uuid();
            let Some(s) = sessions.get_mut(&sid) else {
                continue; // every id in `records` was loaded above
            };
            s.tenant = env.record.tenant().to_string();
            match &env.record {
                Record::SessionStart(_) => {}
                Record::SessionEnd(_) => s.ended = true,
                Record::Event(e) => {
                    // Removing makes a second copy in this batch a duplicate too.
                    if !unseen.remove(&e.hash.to_hex()) {
                        continue;
                    }
                    let found = self.graph.step(s, &Observed::from_event(e));
                    decisions.extend(found.into_iter().map(|d| (sid, s.tenant.clone(), d)));
                    freshness.push(env.ingested_at);
                }
            }
            touched.insert(sid);
        }

        // 4. Write the insights' final rows, the announcements, the states
        //    and our position, in this one transaction.
        let decided_at = Utc::now();
        let mut writes: HashMap<Uuid, InsightWrite> = HashMap::new();
        let mut announce: Vec<NewOutboxRecord> = Vec::new();
        let mut raised: Vec<(String, &'static str)> = Vec::new();
        for (sid, tenant, d) in &decisions {
            let w = to_write(*sid, tenant, &d.insight, d.resolved_at);
            let t = match d.change {
                Change::Raised => Transition::Raised,
                Change::Escalated => Transition::Escalated,
                Change::Resolved => Transition::Resolved,
            };
            if t == Transition::Raised {
                raised.push((w.insight_type.clone(), d.insight.severity.as_str()));
            }
            if let Some(r) = self.announcement(&w, t, decided_at) {
                announce.push(r);
            }
            writes.insert(w.id, w);
        }
        // Then the final state of every open insight that changed: it
        // supersedes the decisions' snapshots (a re-raise after a resolve
        // ends open, as it should).
        for sid in &touched {
            let Some(s) = sessions.get(sid) else { continue };
            for o in &s.open {
                let key = (
                    *sid,
                    o.insight_type.clone(),
                    o.dedup_key.clone(),
                    o.last_seen_at,
                );
                if !loaded.contains(&key) {
                    let w = to_write(*sid, &s.tenant, o, None);
                    writes.insert(w.id, w);
                }
            }
        }
        let writes: Vec<InsightWrite> = writes.into_values().collect();
        analysis::upsert_insights(&mut tx, &writes).await?;
        let saved: Vec<_> = touched
            .iter()
            .filter_map(|sid| sessions.get(sid).map(|s| (*sid, s)))
            .map(|(sid, s)| (sid, s.tenant.as_str(), s.events, self.graph.save(s)))
            .collect();
        analysis::save_agent_states(&mut tx, &saved).await?;
        db::outbox::outbox_add(&mut tx, &announce).await?;
        let mut next: HashMap<i32, i64> = HashMap::new();
        for m in batch {
            let e = next.entry(m.partition()).or_insert(0);
            *e = (*e).max(m.offset() + 1);
        }
        let next: Vec<(i32, i64)> = next.into_iter().collect();
        offsets::save_offsets(&mut tx, &self.group, &topic, &next).await?;
        tx.commit().await?;

        let now = Utc::now();
        metrics::DB_WRITE
            .with_label_values(&[NAME])
            .observe(started.elapsed().as_secs_f64());
        for (kind, severity) in &raised {
            metrics::INSIGHTS_RAISED
                .with_label_values(&[kind.as_str(), severity])
                .inc();
        }
        for t in freshness {
            metrics::FRESHNESS
                .with_label_values(&["insight"])
                .observe((now - t).to_std().unwrap_or_default().as_secs_f64());
        }
        if !announce.is_empty() {
            self.outbox_wake.notify_one();
        }
        Ok(())
    }
}

/// The row of an insight: open, or resolved at `resolved_at`.
fn to_write(sid: Uuid, tenant: &str, o: &OpenInsight, resolved_at: Option<i64>) -> InsightWrite {
    InsightWrite {
        id: insight_id(sid, &o.insight_type, &o.dedup_key),
        tenant: tenant.to_owned(),
        session_id: sid,
        insight_type: o.insight_type.clone(),
        dedup_key: o.dedup_key.clone(),
        severity: o.severity.as_str().to_owned(),
        status: if resolved_at.is_some() {
            "resolved"
        } else {
            "open"
        }
        .to_owned(),
        title: o.title.clone(),
        detail: o.detail.clone(),
        evidence: o.evidence.clone(),
        raised_at: ts(o.raised_at),
        last_seen_at: ts(o.last_seen_at),
        resolved_at: resolved_at.map(ts),
    }
}

impl LightHandler {
    fn announcement(
        &self,
        w: &InsightWrite,
        transition: Transition,
        decided_at: DateTime<Utc>,
    ) -> Option<NewOutboxRecord> {
        let record = InsightRecord {
            id: w.id,
            tenant: TenantId::parse(&w.tenant).ok()?,
            session_id: SessionId::from_uuid(w.session_id),
            insight_type: w.insight_type.clone(),
            dedup_key: w.dedup_key.clone(),
            transition,
            status: w.status.clone(),
            severity: w.severity.clone(),
            title: w.title.clone(),
            detail: w.detail.clone(),
            evidence: w.evidence.clone(),
            raised_at: w.raised_at,
            last_seen_at: w.last_seen_at,
            resolved_at: w.resolved_at,
            decided_at,
        };
        Some(NewOutboxRecord {
            topic: self.topics.name(Topic::Insights),
            key: w.session_id.to_string(),
            payload: record.encode().ok()?,
            headers: Vec::new(),
        })
    }
}
