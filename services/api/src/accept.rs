//! Accepting validated events, the same way for every ingest route
//! (`POST /v1/events/batch`, `POST /v1/logs`, `POST /v1/traces`): drop
//! duplicates (earlier in the request, or accepted recently by this
//! process), publish the rest together with the request's session records,
//! wait for the broker, then remember what it acknowledged.
//!
//! Duplicates are best-effort by design (see `recent.rs`): whatever slips
//! through is dropped by the sink's and the processor's dedup on the hash.

use std::collections::HashSet;

use chrono::{DateTime, Utc};

use achilles_core::metrics;
use achilles_core::model::Event;
use achilles_core::wire::{Envelope, Record};

use crate::error::ApiError;
use crate::state::AppState;

/// Session records published with a request's events: starts before them,
/// ends after them, so one session's records stay in order on its partition.
#[derive(Default)]
pub(crate) struct SessionRecords {
    pub starts: Vec<Record>,
    pub ends: Vec<Record>,
}

/// Publishes `events` (and `sessions`) and answers, per event in order,
/// whether it was a duplicate. `Err` (a 503) means the request may be
/// retried as is; nothing is remembered then.
pub(crate) async fn accept(
    state: &AppState,
    now: DateTime<Utc>,
    events: Vec<Event>,
    sessions: SessionRecords,
) -> Result<Vec<bool>, ApiError> {
    let recent = state
        .recent()
        .seen(&events.iter().map(|e| &e.hash).collect::<Vec<_>>());
    let mut seen = HashSet::with_capacity(events.len());
    let mut duplicate = Vec::with_capacity(events.len());
    let envelope = |record| Envelope {
        ingested_at: now,
        record,
    };
    let mut to_publish: Vec<Envelope> = sessions.starts.into_iter().map(envelope).collect();
    for (ev, recent) in events.into_iter().zip(recent) {
        let dup = recent || !seen.insert(*ev.hash.as_bytes());
        duplicate.push(dup);
        if !dup {
            to_publish.push(envelope(Record::Event(ev)));
        }
    }
    to_publish.extend(sessions.ends.into_iter().map(envelope));
    if !to_publish.is_empty() {
        state
            .publisher()
            .publish(&to_publish, None)
            .await
            .inspect_err(|e| {
                metrics::BACKPRESSURE.with_label_values(&[e.cause()]).inc();
            })?;
        // Only what Kafka acknowledged: a 503'd request retried must be
        // accepted again, not answered `duplicate`.
        state
            .recent()
            .remember(to_publish.iter().filter_map(|env| match &env.record {
                Record::Event(e) => Some(&e.hash),
                _ => None,
            }));
    }
    let dups = duplicate.iter().filter(|d| **d).count();
    metrics::INGEST_EVENTS
        .with_label_values(&["accepted"])
        .inc_by((duplicate.len() - dups) as u64);
    metrics::INGEST_EVENTS
        .with_label_values(&["duplicate"])
        .inc_by(dups as u64);
    Ok(duplicate)
}
