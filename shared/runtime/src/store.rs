//! The runtime's own tables: checkpointed session state
//! (`consumer_state`) and session rows as far as ownership goes
//! (`sessions`: placeholders and the tenant check).
//!
//! **Locks on `sessions` rows.** The raw sink and the processor both write
//! rows of the same sessions (placeholders, starts and ends; summaries).
//! Taken in batch order, their row locks deadlocked under load. Every
//! transaction therefore touches session rows in two ordered phases and no
//! other way: first the placeholders of the batch's new sessions, inserted
//! in id order (here, early in the transaction); then, for a stage that
//! updates session rows, a lock of exactly those rows in id order
//! ([`crate::stage::WriteCtx::lock_sessions`], right before the updates).
//! Nothing in between locks session rows (events have no foreign key to
//! them; other tables' foreign keys take only key-share locks, which these
//! do not conflict with). A transaction waiting in phase one holds only rows
//! it inserted itself, of smaller ids; one waiting in phase two holds only
//! rows of smaller ids: no cycle can form.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// A stored state row: (session, tenant, events applied, recent hashes,
/// state as JSON text).
pub(crate) type StateRow = (Uuid, String, i64, Vec<u8>, String);

pub(crate) async fn load_states(
    conn: &mut PgConnection,
    consumer: &str,
    ids: &[Uuid],
) -> Result<Vec<StateRow>, sqlx::Error> {
    sqlx::query_as(
        "SELECT session_id, tenant_id, applied, recent, state::text FROM consumer_state
         WHERE consumer = $1 AND session_id = ANY($2)",
    )
    .bind(consumer)
    .bind(ids)
    .fetch_all(&mut *conn)
    .await
}

pub(crate) async fn save_states(
    conn: &mut PgConnection,
    consumer: &str,
    rows: &[(Uuid, &str, i64, Vec<u8>, String)],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.0).collect();
    let tenants: Vec<&str> = rows.iter().map(|r| r.1).collect();
    let applied: Vec<i64> = rows.iter().map(|r| r.2).collect();
    let recent: Vec<&[u8]> = rows.iter().map(|r| r.3.as_slice()).collect();
    let states: Vec<&str> = rows.iter().map(|r| r.4.as_str()).collect();
    sqlx::query(
        "INSERT INTO consumer_state (consumer, session_id, tenant_id, applied, recent, state)
         SELECT $1, id, t, n, r, s::jsonb
         FROM UNNEST($2::uuid[], $3::text[], $4::bigint[], $5::bytea[], $6::text[]) AS u(id, t, n, r, s)
         -- A session deleted since it was cached is not written back.
         WHERE EXISTS (SELECT 1 FROM sessions x WHERE x.id = u.id)
         ON CONFLICT (consumer, session_id) DO UPDATE SET tenant_id = EXCLUDED.tenant_id,
             applied = EXCLUDED.applied, recent = EXCLUDED.recent, state = EXCLUDED.state,
             updated_at = now()",
    )
    .bind(consumer)
    .bind(&ids)
    .bind(&tenants)
    .bind(&applied)
    .bind(&recent)
    .bind(&states)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Phase one: rows for sessions seen before their start (the start fills
/// them in later), inserted in id order; then the owners of `sessions`.
pub(crate) async fn ensure_owned(
    conn: &mut PgConnection,
    sessions: &BTreeMap<Uuid, (&str, DateTime<Utc>)>,
) -> Result<HashMap<Uuid, String>, sqlx::Error> {
    if sessions.is_empty() {
        return Ok(HashMap::new());
    }
    let ids: Vec<Uuid> = sessions.keys().copied().collect();
    let tenants: Vec<&str> = sessions.values().map(|v| v.0).collect();
    let started: Vec<DateTime<Utc>> = sessions.values().map(|v| v.1).collect();
    sqlx::query(
        "INSERT INTO sessions (id, tenant_id, started_at, placeholder)
         SELECT id, tenant_id, started_at, true
         FROM UNNEST($1::uuid[], $2::text[], $3::timestamptz[]) WITH ORDINALITY
              AS t(id, tenant_id, started_at, n)
         ORDER BY n
         ON CONFLICT (id) DO NOTHING",
    )
    .bind(&ids)
    .bind(&tenants)
    .bind(&started)
    .execute(&mut *conn)
    .await?;
    let rows: Vec<(Uuid, String)> =
        sqlx::query_as("SELECT id, tenant_id FROM sessions WHERE id = ANY($1)")
            .bind(&ids)
            .fetch_all(&mut *conn)
            .await?;
    Ok(rows.into_iter().collect())
}

/// Phase two: locks the rows of `ids` (sorted) for this transaction.
pub(crate) async fn lock_sessions(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<(), sqlx::Error> {
    if ids.is_empty() {
        return Ok(());
    }
    sqlx::query("SELECT 1 FROM sessions WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    Ok(())
}
