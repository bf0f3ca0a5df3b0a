//! The reaper's reads: active sessions that have been idle too long
//! (see [`crate::reaper`] for the rules). `sessions_active_idx` keeps the
//! scan to active sessions.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// An active session to end with status `timed_out`.
#[derive(Debug, sqlx::FromRow)]
pub struct Idle {
    pub id: Uuid,
    pub tenant_id: String,
    /// Its last event's time (else its start, else when the row was last
    /// written): the timeout end's `ended_at`, the same on every sweep, so a
    /// repeated end writes the same values.
    pub ended_at: DateTime<Utc>,
    /// Ended by the wall clock (else by the tenant's event clock).
    pub wall: bool,
}

/// Takes the reaper's lock for the caller's transaction; `false` when
/// another instance is sweeping right now.
pub async fn try_lock(conn: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_xact_lock(hashtext('achilles.session_reaper'))")
        .fetch_one(conn)
        .await
}

/// Active sessions idle for `idle_ms` by the wall clock (nothing written to
/// the row since), or by their tenant's event clock after at least
/// `grace_ms` of wall-clock silence; at most `limit`, leaving out `skip`.
pub async fn idle_sessions(
    conn: &mut PgConnection,
    idle_ms: i64,
    grace_ms: i64,
    skip: &[Uuid],
    limit: i64,
) -> Result<Vec<Idle>, sqlx::Error> {
    sqlx::query_as(
        "WITH clock AS (
             SELECT tenant_id, least(max(last_event_at), now()) AS event_now
             FROM sessions WHERE status = 'active' GROUP BY tenant_id
         )
         SELECT s.id, s.tenant_id,
                coalesce(s.last_event_at, s.started_at, s.updated_at) AS ended_at,
                s.updated_at < now() - $1 * interval '1 millisecond' AS wall
         FROM sessions s JOIN clock c ON c.tenant_id = s.tenant_id
         WHERE s.status = 'active' AND NOT s.id = ANY($3)
           AND (s.updated_at < now() - $1 * interval '1 millisecond'
                OR (s.updated_at < now() - $2 * interval '1 millisecond'
                    AND coalesce(s.last_event_at, s.started_at)
                        < c.event_now - $1 * interval '1 millisecond'))
         ORDER BY s.updated_at
         LIMIT $4",
    )
    .bind(idle_ms as f64)
    .bind(grace_ms as f64)
    .bind(skip)
    .bind(limit)
    .fetch_all(conn)
    .await
}
