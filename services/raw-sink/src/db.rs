//! The raw sink's SQL: it owns `events` and the lifecycle columns of
//! `sessions`. Everything runs in the caller's transaction (the
//! exactly-once step of `achilles-runtime`, which also stores positions).

use std::collections::HashSet;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use achilles_core::model::{Event, SessionEnd, SessionStart};

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

/// Inserts events, skipping those already stored: `COPY` first
/// ([`crate::copy`]), and when a unique key refuses that, one
/// `INSERT ... ON CONFLICT DO NOTHING` for the whole batch (per-event round
/// trips would cap throughput at a few thousand events per second).
pub async fn insert_events(
    conn: &mut PgConnection,
    events: &[(&Event, DateTime<Utc>)],
) -> Result<InsertOutcome, sqlx::Error> {
    if events.is_empty() {
        return Ok(InsertOutcome::default());
    }
    if crate::copy::try_copy(conn, events).await? {
        return Ok(InsertOutcome {
            inserted: events.len(),
            ..InsertOutcome::default()
        });
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
    .fetch_all(&mut *conn)
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
    let skipped_sessions: Vec<Uuid> = skipped.iter().map(|i| sessions[*i]).collect();
    let stored: HashSet<String> = sqlx::query_scalar(
        "SELECT e.event_hash FROM UNNEST($1::uuid[], $2::text[]) AS h(sid, hash)
         JOIN events e ON e.session_id = h.sid AND e.event_hash = h.hash",
    )
    .bind(&skipped_sessions)
    .bind(&skipped_hashes)
    .fetch_all(&mut *conn)
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

/// Inserts started sessions; a start for an existing placeholder fills in
/// its agent fields. Re-delivered starts change nothing, and a start never
/// resets the status of a session that already ended.
pub async fn upsert_session_starts(
    conn: &mut PgConnection,
    starts: &[&SessionStart],
) -> Result<(), sqlx::Error> {
    if starts.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = starts.iter().map(|s| s.session_id.as_uuid()).collect();
    let tenants: Vec<&str> = starts.iter().map(|s| s.tenant.as_str()).collect();
    let names: Vec<&str> = starts.iter().map(|s| s.agent_name.as_str()).collect();
    let models: Vec<Option<&str>> = starts.iter().map(|s| s.agent_model.as_deref()).collect();
    let sources: Vec<&str> = starts.iter().map(|s| s.source.as_str()).collect();
    let started: Vec<DateTime<Utc>> = starts.iter().map(|s| s.started_at).collect();
    let metadata: Vec<serde_json::Value> = starts
        .iter()
        .map(|s| serde_json::Value::Object(s.metadata.clone()))
        .collect();
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, agent_name, agent_model, source, started_at, metadata)
         SELECT * FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                              $6::timestamptz[], $7::jsonb[])
         ON CONFLICT (id) DO UPDATE SET
             agent_name = EXCLUDED.agent_name, agent_model = EXCLUDED.agent_model,
             source = EXCLUDED.source, started_at = EXCLUDED.started_at,
             metadata = EXCLUDED.metadata, placeholder = false, updated_at = now()
         WHERE sessions.placeholder AND sessions.tenant_id = EXCLUDED.tenant_id",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&names)
    .bind(&models)
    .bind(&sources)
    .bind(&started)
    .bind(&metadata)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Marks sessions ended. Idempotent: a re-delivered end writes the same
/// values again. A `timed_out` end only ends an active (or timed-out)
/// session: published while the producer's own end was still on its way,
/// it must not undo that end ([`achilles_core::model::SessionStatus::may_replace`]).
pub async fn apply_session_ends(
    conn: &mut PgConnection,
    ends: &[&SessionEnd],
) -> Result<(), sqlx::Error> {
    if ends.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = ends.iter().map(|s| s.session_id.as_uuid()).collect();
    let tenants: Vec<&str> = ends.iter().map(|s| s.tenant.as_str()).collect();
    let ended: Vec<DateTime<Utc>> = ends.iter().map(|s| s.ended_at).collect();
    let status: Vec<&str> = ends.iter().map(|s| s.status.as_str()).collect();
    sqlx::query(
        "UPDATE sessions s SET status = t.status, ended_at = t.ended_at, updated_at = now()
         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[], $4::text[])
              AS t(id, tenant_id, ended_at, status)
         WHERE s.id = t.id AND s.tenant_id = t.tenant_id
           AND (t.status <> 'timed_out' OR s.status IN ('active', 'timed_out'))",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&ended)
    .bind(&status)
    .execute(&mut *conn)
    .await?;
    Ok(())
}
