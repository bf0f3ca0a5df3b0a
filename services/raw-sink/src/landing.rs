//! Landing: canonical records from the events topic into `sessions` and
//! `events`, one Postgres transaction per batch.
//!
//! Idempotent by construction: events insert with `ON CONFLICT DO
//! NOTHING` on the event hash (and id), session starts only fill in
//! placeholders, session ends write the same values again. Replaying any
//! stretch of the topic therefore leaves the tables unchanged, which is
//! what lets the consumer loop commit offsets after the transaction.
//!
//! Records that can never land are dead-lettered, never dropped:
//! undecodable or invalid records, records for another tenant's session,
//! events whose id is taken by a different event, and (found by retrying
//! one record at a time) anything Postgres itself refuses.

use std::collections::{HashMap, HashSet};
use std::time::Instant;

use chrono::{DateTime, Utc};
use rdkafka::message::{Message, OwnedMessage};
use sqlx::PgPool;
use uuid::Uuid;

use achilles_core::db;
use achilles_core::error::{Classify, Disposition};
use achilles_core::metrics;
use achilles_core::model::Limits;
use achilles_core::wire::{decode_envelope, Envelope, Record};

use achilles_runtime::{BatchHandler, DeadLetterSink, HandlerError, Rejected};

pub const NAME: &str = "landing";

pub struct Lander {
    pub pool: PgPool,
    pub dead_letters: DeadLetterSink,
    pub limits: Limits,
}

/// Counts of one landed batch.
#[derive(Debug, Default)]
pub struct Landed {
    pub inserted: usize,
    pub duplicates: usize,
}

impl BatchHandler for Lander {
    async fn handle(&self, batch: &[OwnedMessage]) -> Result<(), HandlerError> {
        let mut rejected = Vec::new();
        let mut decoded = Vec::with_capacity(batch.len());
        for m in batch {
            metrics::CONSUMED.with_label_values(&[NAME, "events"]).inc();
            match decode_envelope(m.payload().unwrap_or_default(), &self.limits) {
                Ok(env) => decoded.push((m, env)),
                Err(e) => rejected.push(Rejected {
                    message: m,
                    reason_code: e.reason_code(),
                    reason: e.to_string(),
                }),
            }
        }
        match self.land(&decoded, &mut rejected).await {
            Ok(_) => {}
            Err(e) if e.disposition() == Disposition::DeadLetter && decoded.len() > 1 => {
                // Some record makes Postgres refuse the whole batch. Land
                // them one by one so only the culprit is parked.
                tracing::warn!(error = %e, "batch refused by postgres; isolating the record");
                for one in &decoded {
                    match self.land(std::slice::from_ref(one), &mut rejected).await {
                        Ok(_) => {}
                        Err(e) if e.disposition() == Disposition::DeadLetter => {
                            rejected.push(Rejected {
                                message: one.0,
                                reason_code: e.reason_code(),
                                reason: e.to_string(),
                            })
                        }
                        Err(e) => return Err(e),
                    }
                }
            }
            Err(e) if e.disposition() == Disposition::DeadLetter => {
                if let Some(one) = decoded.first() {
                    rejected.push(Rejected {
                        message: one.0,
                        reason_code: e.reason_code(),
                        reason: e.to_string(),
                    });
                }
            }
            Err(e) => return Err(e),
        }
        if !rejected.is_empty() {
            self.dead_letters.send(&rejected).await?;
        }
        Ok(())
    }
}

impl Lander {
    /// Writes decoded records in one transaction. Records refused for a
    /// reason of their own (tenant mismatch, id conflict) are added to
    /// `rejected`; an `Err` means nothing was written.
    #[tracing::instrument(skip_all, fields(records = records.len()))]
    pub async fn land<'m>(
        &self,
        records: &[(&'m OwnedMessage, Envelope)],
        rejected: &mut Vec<Rejected<'m>>,
    ) -> Result<Landed, HandlerError> {
        if records.is_empty() {
            return Ok(Landed::default());
        }
        let started = Instant::now();
        // Refusals are handed back only if the transaction commits, so a
        // failed attempt that is retried does not report them twice.
        let mut refused = Vec::new();
        let mut tx = self.pool.begin().await?;

        // 1. Create the session rows this batch needs: real ones from
        //    starts, placeholders for sessions seen only through events or
        //    ends. Neither touches a row owned by another tenant.
        let mut seen_start = HashSet::new();
        let starts: Vec<_> = records
            .iter()
            .filter_map(|(_, e)| match &e.record {
                Record::SessionStart(s) if seen_start.insert(s.session_id) => Some(s),
                _ => None,
            })
            .collect();
        db::upsert_session_starts(&mut tx, &starts).await?;
        let mut placeholders: HashMap<Uuid, (&str, DateTime<Utc>)> = HashMap::new();
        for (_, env) in records {
            let at = match &env.record {
                Record::Event(e) => e.occurred_at,
                Record::SessionEnd(e) => e.ended_at,
                Record::SessionStart(_) => continue,
            };
            let entry = placeholders
                .entry(env.record.session_id().as_uuid())
                .or_insert((env.record.tenant().as_str(), at));
            entry.1 = entry.1.min(at);
        }
        let placeholder_rows: Vec<_> = placeholders
            .iter()
            .map(|(id, (t, at))| (*id, *t, *at))
            .collect();
        db::ensure_placeholders(&mut tx, &placeholder_rows).await?;

        // 2. Every session now exists; records for a session owned by
        //    another tenant are refused.
        let ids: Vec<Uuid> = records
            .iter()
            .map(|(_, e)| e.record.session_id().as_uuid())
            .collect();
        let owners = db::session_owners(&mut tx, &ids).await?;
        let mut events = Vec::new();
        let mut event_msgs = Vec::new();
        let mut ends: HashMap<Uuid, &achilles_core::model::SessionEnd> = HashMap::new();
        for (m, env) in records {
            let sid = env.record.session_id().as_uuid();
            if owners.get(&sid).map(String::as_str) != Some(env.record.tenant().as_str()) {
                refused.push(Rejected {
                    message: m,
                    reason_code: "session_tenant_mismatch",
                    reason: format!("session {sid} belongs to another tenant"),
                });
                continue;
            }
            match &env.record {
                Record::Event(e) => {
                    events.push((e, env.ingested_at));
                    event_msgs.push(*m);
                }
                // The last end of a session in the batch wins, as it would
                // had the records landed one by one.
                Record::SessionEnd(e) => {
                    ends.insert(sid, e);
                }
                Record::SessionStart(_) => {}
            }
        }

        // 3. Events, then ends.
        let outcome = db::insert_events(&mut tx, &events).await?;
        for i in &outcome.id_conflicts {
            refused.push(Rejected {
                message: event_msgs[*i],
                reason_code: "event_id_conflict",
                reason: format!(
                    "event id {} is already used by a different event",
                    events[*i].0.id
                ),
            });
        }
        let ends: Vec<_> = ends.into_values().collect();
        db::apply_session_ends(&mut tx, &ends).await?;
        tx.commit().await?;
        rejected.extend(refused);

        let now = Utc::now();
        metrics::DB_WRITE
            .with_label_values(&[NAME])
            .observe(started.elapsed().as_secs_f64());
        metrics::LANDED
            .with_label_values(&["events", "inserted"])
            .inc_by(outcome.inserted as u64);
        metrics::LANDED
            .with_label_values(&["events", "duplicate"])
            .inc_by(outcome.duplicates as u64);
        let skipped: HashSet<usize> = outcome.skipped.iter().copied().collect();
        achilles_core::spend::count_stored(
            events
                .iter()
                .enumerate()
                .filter(|(i, _)| !skipped.contains(i))
                .map(|(_, (e, _))| *e),
        );
        let conflicts: HashSet<usize> = outcome.id_conflicts.iter().copied().collect();
        for (i, (_, ingested)) in events.iter().enumerate() {
            if !conflicts.contains(&i) {
                let delay = (now - *ingested).to_std().unwrap_or_default();
                metrics::FRESHNESS
                    .with_label_values(&["landed"])
                    .observe(delay.as_secs_f64());
            }
        }
        Ok(Landed {
            inserted: outcome.inserted,
            duplicates: outcome.duplicates,
        })
    }
}
