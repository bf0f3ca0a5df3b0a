//! Event rows: idempotent bulk insert for the raw sink, paginated reads for
//! the API.

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::{Event, SessionId, TenantId};

/// An event as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct EventRow {
    pub id: Uuid,
    pub event_hash: String,
    pub session_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub ingested_at: DateTime<Utc>,
    pub landed_at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub parent_id: Option<Uuid>,
    pub is_failure: bool,
    pub file_path: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
}

/// What happened to each event of a bulk insert.
#[derive(Debug, Default)]
pub struct InsertOutcome {
    pub inserted: usize,
    /// Already stored with the same hash: a replay or a retried request.
    pub duplicates: usize,
    /// Indexes (into the input) whose id is taken by a *different* event.
    /// They were not stored and must be dead-lettered, not dropped.
    pub id_conflicts: Vec<usize>,
    /// Indexes of every event not stored (duplicates and id conflicts), in
    /// order; the others were inserted by this call.
    pub skipped: Vec<usize>,
}

/// Inserts events, skipping those already stored. One statement for the
/// whole batch: per-event round trips would cap throughput at a few
/// thousand events per second.
pub async fn insert_events(
    tx: &mut Transaction<'_, Postgres>,
    events: &[(&Event, DateTime<Utc>)],
) -> Result<InsertOutcome, sqlx::Error> {
    if events.is_empty() {
        return Ok(InsertOutcome::default());
    }
    let n = events.len();
    let mut ids = Vec::with_capacity(n);
    let mut hashes = Vec::with_capacity(n);
    let mut tenants = Vec::with_capacity(n);
    let mut sessions = Vec::with_capacity(n);
    let mut occurred = Vec::with_capacity(n);
    let mut ingested = Vec::with_capacity(n);
    let mut kinds = Vec::with_capacity(n);
    let mut actors = Vec::with_capacity(n);
    let mut parents: Vec<Option<Uuid>> = Vec::with_capacity(n);
    let mut failures = Vec::with_capacity(n);
    let mut paths: Vec<Option<&str>> = Vec::with_capacity(n);
    let mut data = Vec::with_capacity(n);
    let mut attrs = Vec::with_capacity(n);
    for (e, ingested_at) in events {
        ids.push(e.id.as_uuid());
        hashes.push(e.hash.to_hex());
        tenants.push(e.tenant.as_str());
        sessions.push(e.session_id.as_uuid());
        occurred.push(e.occurred_at);
        ingested.push(*ingested_at);
        kinds.push(e.kind().as_str());
        actors.push(e.actor.as_str());
        parents.push(e.parent_id.map(|p| p.as_uuid()));
        failures.push(e.payload.is_failure());
        paths.push(e.payload.file_path());
        data.push(e.payload.data());
        attrs.push(serde_json::Value::Object(e.attributes.clone()));
    }
    let inserted: Vec<String> = sqlx::query_scalar(
        "INSERT INTO events (id, event_hash, tenant_id, session_id, occurred_at, ingested_at,
                             kind, actor, parent_id, is_failure, file_path, data, attributes)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::uuid[], $5::timestamptz[],
                              $6::timestamptz[], $7::text[], $8::text[], $9::uuid[], $10::bool[],
                              $11::text[], $12::jsonb[], $13::jsonb[])
         ON CONFLICT DO NOTHING
         RETURNING event_hash",
    )
    .bind(&ids)
    .bind(&hashes)
    .bind(&tenants)
    .bind(&sessions)
    .bind(&occurred)
    .bind(&ingested)
    .bind(&kinds)
    .bind(&actors)
    .bind(&parents)
    .bind(&failures)
    .bind(&paths)
    .bind(&data)
    .bind(&attrs)
    .fetch_all(&mut **tx)
    .await?;

    let mut outcome = InsertOutcome {
        inserted: inserted.len(),
        ..Default::default()
    };
    if inserted.len() == n {
        return Ok(outcome);
    }
    // Something was skipped: tell true duplicates (hash already stored)
    // from id conflicts (id taken by a different event).
    let inserted: HashSet<String> = inserted.into_iter().collect();
    let skipped: Vec<usize> = (0..n).filter(|i| !inserted.contains(&hashes[*i])).collect();
    outcome.skipped.clone_from(&skipped);
    let skipped_hashes: Vec<&str> = skipped.iter().map(|i| hashes[*i].as_str()).collect();
    let stored: HashSet<String> =
        sqlx::query_scalar(
            "SELECT e.event_hash FROM UNNEST($1::text[]) AS h(hash) JOIN events e ON e.event_hash = h.hash",
        )
        .bind(&skipped_hashes)
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect();
    for i in skipped {
        if stored.contains(&hashes[i]) {
            outcome.duplicates += 1;
        } else {
            outcome.id_conflicts.push(i);
        }
    }
    Ok(outcome)
}

/// Keyset position: events strictly after (occurred_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub occurred_at: DateTime<Utc>,
    pub id: Uuid,
}

impl EventCursor {
    /// Opaque text form: `<micros>_<uuid>`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.occurred_at.timestamp_micros(), self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (us, id) = s.split_once('_')?;
        Some(Self {
            occurred_at: DateTime::from_timestamp_micros(us.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// One page of a session's events in event-time order. Keyset pagination
/// keeps every page an index range scan, however deep the client pages.
#[tracing::instrument(skip(pool), err)]
pub async fn list_events(
    pool: &PgPool,
    tenant: &TenantId,
    session: SessionId,
    after: Option<EventCursor>,
    limit: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    let (t, id) = after.map_or((None, None), |c| (Some(c.occurred_at), Some(c.id)));
    sqlx::query_as(
        "SELECT id, event_hash, session_id, occurred_at, ingested_at, landed_at, kind, actor,
                parent_id, is_failure, file_path, data, attributes
         FROM events
         WHERE session_id = $1 AND tenant_id = $2
           AND ($3::timestamptz IS NULL OR (occurred_at, id) > ($3, $4))
         ORDER BY occurred_at, id
         LIMIT $5",
    )
    .bind(session.as_uuid())
    .bind(tenant.as_str())
    .bind(t)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = EventCursor {
            occurred_at: DateTime::from_timestamp_micros(1_763_726_400_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(EventCursor::decode(&c.encode()), Some(c));
        assert_eq!(EventCursor::decode("nope"), None);
        assert_eq!(EventCursor::decode("12_notauuid"), None);
    }
}
