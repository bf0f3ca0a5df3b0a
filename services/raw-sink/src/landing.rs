//! Landing: canonical records from the events topic into `sessions` and
//! `events`.
//!
//! A [`Stage`] of the runtime's exactly-once step (positions, ownership,
//! dead letters and the transaction are the runtime's), with no
//! per-session state: it collects a batch's starts, events and ends and
//! writes them in one transaction. Idempotent on its own as well: events
//! insert with `ON CONFLICT DO NOTHING` on (session, hash) and id, session
//! starts only fill in placeholders, ends write the same values again.
//! A `timed_out` end (the processor's reaper) lands like any end, except
//! that it never replaces a producer's own end; events after it land and
//! count as usual (the session stays `timed_out` until a real end).
//!
//! Records that can never land are dead-lettered, never dropped: besides
//! what the runtime parks (undecodable, another tenant's session, anything
//! Postgres refuses), an event whose id is taken by a different event.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use achilles_core::db::outbox::NewOutboxRecord;
use achilles_core::metrics;
use achilles_core::model::{Event, SessionEnd, SessionStart};
use achilles_core::wire::codec::EncodeError;
use achilles_core::wire::Record;
use achilles_runtime::{Input, Refused, Session, Stage, StepError, WriteCtx};

use crate::db;

pub const NAME: &str = "landing";

pub struct Landing;

/// One batch's records to land.
#[derive(Default)]
pub struct Batch {
    starts: HashMap<Uuid, SessionStart>,
    events: Vec<(Event, DateTime<Utc>, usize)>,
    /// The last end of a session in the batch wins, as it would had the
    /// records landed one by one.
    ends: HashMap<Uuid, SessionEnd>,
    inserted: usize,
    duplicates: usize,
    /// Indexes into `events` of those not stored (duplicates, id conflicts).
    skipped: HashSet<usize>,
}

impl Stage for Landing {
    type State = ();
    type Batch = Batch;
    const NAME: &'static str = NAME;
    const FRESHNESS: &'static str = "landed";
    const STATEFUL: bool = false;

    fn new_state(&self) {}

    fn snapshot(&self, _: &()) {}

    fn save_state(&self, _: &()) -> Result<String, EncodeError> {
        Ok("null".into())
    }

    fn load_state(&self, _: &str) -> Result<(), String> {
        Ok(())
    }

    fn apply(&self, _: &mut Session<()>, input: Input, out: &mut Batch) -> Result<(), Refused> {
        match input.record {
            Record::SessionStart(s) => {
                out.starts.entry(s.session_id.as_uuid()).or_insert(s);
            }
            Record::Event(e) => out.events.push((e, input.ingested_at, input.source)),
            Record::SessionEnd(e) => {
                // A timeout never replaces a producer's end (the same rule
                // as in SQL, for two ends in one batch).
                let sid = e.session_id.as_uuid();
                let current = out.ends.get(&sid).map(|c| c.status);
                if e.status.may_replace(current) {
                    out.ends.insert(sid, e);
                }
            }
        }
        Ok(())
    }

    async fn write<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        out: &'a mut Batch,
        ctx: &'a WriteCtx<'a>,
        _: &'a [&'a Session<()>],
    ) -> Result<Vec<NewOutboxRecord>, StepError> {
        let events: Vec<(&Event, DateTime<Utc>)> =
            out.events.iter().map(|(e, at, _)| (e, *at)).collect();
        let outcome = db::insert_events(conn, &events).await?;
        let mut parked = Vec::new();
        for i in &outcome.id_conflicts {
            let (e, _, source) = &out.events[*i];
            let reason = format!("event id {} is already used by a different event", e.id);
            parked.extend(ctx.dead_letter(*source, "event_id_conflict", &reason)?);
        }
        // Session rows last, locked in id order only from here to the
        // commit (the processor updates the same rows).
        let rows: Vec<Uuid> = out.starts.keys().chain(out.ends.keys()).copied().collect();
        ctx.lock_sessions(conn, &rows).await?;
        let starts: Vec<&SessionStart> = out.starts.values().collect();
        db::upsert_session_starts(conn, &starts).await?;
        let ends: Vec<&SessionEnd> = out.ends.values().collect();
        db::apply_session_ends(conn, &ends).await?;
        out.inserted = outcome.inserted;
        out.duplicates = outcome.duplicates;
        out.skipped = outcome.skipped.into_iter().collect();
        Ok(parked)
    }

    fn committed(&self, out: Batch) {
        metrics::LANDED
            .with_label_values(&["events", "inserted"])
            .inc_by(out.inserted as u64);
        metrics::LANDED
            .with_label_values(&["events", "duplicate"])
            .inc_by(out.duplicates as u64);
        // Tokens and cost, once per stored llm_call (a duplicate is not spend).
        achilles_core::spend::count_stored(
            out.events
                .iter()
                .enumerate()
                .filter(|(i, _)| !out.skipped.contains(i))
                .map(|(_, (e, _, _))| e),
        );
    }
}
