//! Deep mode: on each session-ended record, judge the session and write
//! one `agent_performance` row per agent and a `session_reports` document.
//!
//! The record says how many distinct events the processor applied. The raw
//! sink (which fills `events`) and light mode (whose insights the report
//! lists) may still be behind, so a batch whose sessions are not complete
//! yet is retried ([`HandlerError::NotReady`]) until they are, for at most
//! `agent.deep_max_wait_ms` after this process first saw the record; then
//! the session is judged as it is and the report says it is incomplete.
//!
//! Idempotent without stored offsets: everything is recomputed from the
//! tables and upserted, and a row whose values did not change is not
//! touched at all, so a re-delivered record changes nothing.

pub mod judge;
pub mod report;

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::message::{Message, OwnedMessage};
use serde_json::Value;
use sqlx::PgPool;
use uuid::Uuid;

use achilles_core::db::{self, analysis};
use achilles_core::error::Classify;
use achilles_core::metrics;
use achilles_core::wire::session_ended::SessionEnded;
use achilles_runtime::{BatchHandler, DeadLetterSink, HandlerError, Rejected};

use crate::narrative::Narrator;

/// The `consumer` label of this loop's metrics.
pub const NAME: &str = "agent_deep";

pub struct DeepHandler {
    pub pool: PgPool,
    pub dead_letters: DeadLetterSink,
    pub max_wait: Duration,
    pub top_n: usize,
    pub narrator: Option<Narrator>,
    /// When this process first saw each not-yet-judged session: the start
    /// of its bounded wait.
    pub first_seen: Mutex<HashMap<Uuid, Instant>>,
}

/// One session's results, ready to write.
struct Judged {
    tenant: String,
    session: Uuid,
    performance: crate::db::PerformanceWrite,
    report: Value,
}

impl BatchHandler for DeepHandler {
    async fn handle(&self, batch: &[OwnedMessage]) -> Result<(), HandlerError> {
        // 1. Decode; the newest record per session wins.
        let mut ended: BTreeMap<Uuid, SessionEnded> = BTreeMap::new();
        let mut rejected = Vec::new();
        for m in batch {
            metrics::CONSUMED
                .with_label_values(&[NAME, "session-ended"])
                .inc();
            match SessionEnded::decode(m.payload().unwrap_or_default()) {
                Ok(r) => {
                    ended.insert(r.session_id.as_uuid(), r);
                }
                Err(e) => rejected.push(Rejected {
                    message: m,
                    reason_code: e.reason_code(),
                    reason: e.to_string(),
                }),
            }
        }

        // Sessions deleted on request are not judged (nor waited for).
        let ids: Vec<Uuid> = ended.keys().copied().collect();
        let mut conn = self.pool.acquire().await?;
        for id in achilles_core::db::retention::tombstoned(&mut conn, &ids).await? {
            ended.remove(&id);
        }
        drop(conn);

        // 2. Wait (by retrying) until every event is landed and applied.
        let mut waiting = Vec::new();
        let mut landed_by: HashMap<Uuid, i64> = HashMap::new();
        for (sid, r) in &ended {
            let (landed, applied) = crate::db::session_progress(&self.pool, *sid).await?;
            landed_by.insert(*sid, landed);
            if landed >= r.event_count && applied >= r.event_count {
                continue;
            }
            // A map of start times cannot be left half-updated: a
            // poisoned lock is still usable.
            let first = *self
                .first_seen
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(*sid)
                .or_insert_with(Instant::now);
            if first.elapsed() < self.max_wait {
                waiting.push(format!(
                    "{sid}: {landed} landed, {applied} applied of {}",
                    r.event_count
                ));
            } else {
                tracing::warn!(consumer = NAME, session = %sid, landed, applied,
                    expected = r.event_count, "judging an incomplete session after the wait");
            }
        }
        if !waiting.is_empty() {
            return Err(HandlerError::NotReady(format!(
                "waiting for events of {}",
                waiting.join("; ")
            )));
        }

        // Parked only now, so waiting does not park them again on every retry.
        if !rejected.is_empty() {
            self.dead_letters.send(&rejected).await?;
        }

        // 3. Judge (reads, and the optional narrative, outside any
        //    transaction), then write everything at once.
        let mut results = Vec::new();
        for (sid, r) in &ended {
            let landed = landed_by.get(sid).copied().unwrap_or(0);
            if let Some(j) = self.judge(r, landed).await? {
                results.push(j);
            }
        }
        let mut tx = self.pool.begin().await?;
        for j in &results {
            crate::db::replace_performance(
                &mut tx,
                &j.tenant,
                j.session,
                std::slice::from_ref(&j.performance),
            )
            .await?;
            crate::db::upsert_report(&mut tx, &j.tenant, j.session, &j.report).await?;
        }
        tx.commit().await?;
        let mut seen = self.first_seen.lock().unwrap_or_else(|p| p.into_inner());
        for sid in ended.keys() {
            seen.remove(sid);
        }
        Ok(())
    }
}

impl DeepHandler {
    async fn judge(&self, r: &SessionEnded, landed: i64) -> Result<Option<Judged>, HandlerError> {
        let sid = r.session_id.as_uuid();
        let tenant = r.tenant.as_str();
        let Some(session) = db::get_session(&self.pool, &r.tenant, r.session_id).await? else {
            tracing::warn!(consumer = NAME, session = %sid, "session-ended for an unknown session; skipped");
            return Ok(None);
        };
        let stats = crate::db::action_stats(&self.pool, sid).await?;
        let correlations =
            analysis::session_correlations(&self.pool, tenant, sid, i64::MAX, 0).await?;
        let clusters =
            analysis::session_clusters(&self.pool, tenant, sid, self.top_n as i64).await?;
        let files = crate::db::file_activity(&self.pool, sid).await?;
        let insights = analysis::session_insights(&self.pool, tenant, sid, false).await?;
        let agent = session.agent_name.as_deref().unwrap_or("unknown");
        let verdict = judge::judge(agent, &stats, &correlations);
        let mut report = report::build(&report::Inputs {
            session: &session,
            events_expected: r.event_count,
            events_found: landed,
            stats: &stats,
            verdict: &verdict,
            clusters: &clusters,
            files: &files,
            insights: &insights,
            top_n: self.top_n,
        });
        if let Some(n) = &self.narrator {
            self.add_narrative(n, tenant, sid, &mut report).await?;
        }
        Ok(Some(Judged {
            tenant: tenant.to_owned(),
            session: sid,
            performance: verdict.row(),
            report,
        }))
    }

    /// Keeps the stored narrative when the deterministic report did not
    /// change; else asks the model. A model failure only leaves it out.
    async fn add_narrative(
        &self,
        n: &Narrator,
        tenant: &str,
        sid: Uuid,
        report: &mut Value,
    ) -> Result<(), HandlerError> {
        let stored = analysis::session_report(&self.pool, tenant, sid).await?;
        let previous = stored.and_then(|s| {
            let mut old = s.report;
            let narrative = old.as_object_mut()?.remove("narrative")?;
            (old == *report).then_some(narrative)
        });
        let narrative = match previous {
            Some(p) => Some(p),
            None => match n.narrate(report).await {
                Ok(text) => Some(serde_json::json!({"text": text, "model": n.model()})),
                Err(e) => {
                    tracing::warn!(consumer = NAME, session = %sid, error = %e, "no narrative");
                    None
                }
            },
        };
        if let (Some(obj), Some(text)) = (report.as_object_mut(), narrative) {
            obj.insert("narrative".into(), text);
        }
        Ok(())
    }
}
