//! Deleting sessions (on request, `DELETE /v1/sessions/{id}`) and pruning
//! by age (retention, run by the raw sink): the one place that knows every
//! table a session's rows live in.
//!
//! **Deletion against consumers.** The exactly-once consumers
//! (shared/runtime) cache per-session state in memory and write it back at
//! their next checkpoint; they also remember which sessions exist. A
//! deletion therefore (1) commits a tombstone in `deleted_sessions`, which
//! consumers check in every transaction: records of a tombstoned session
//! are dropped and its cached state is forgotten, never written back;
//! (2) deletes the session's events in short batches; (3) deletes the rest
//! in one transaction holding [`DELETION_LOCK`] exclusively, which every
//! consumer transaction holds *shared*: the deletion waits for the batches
//! in flight and the next ones wait for it (milliseconds: the events are
//! gone by then). A failure midway leaves the tombstone and the session
//! row, so the request can simply be repeated. Retention deletes sessions under the same lock but
//! without tombstones (a record still arriving for a session idle for
//! `derived_days` starts it again).
//!
//! **Aggregates.** `error_templates` and `error_clusters` count
//! occurrences and sessions over many sessions: a deleted session's share
//! is subtracted (its per-session rows say exactly how much). The
//! templates and clusters themselves stay (they are what later errors are
//! matched against), including their sample messages.
//!
//! **No long locks.** Events are deleted at most `batch_rows` per
//! statement, each statement its own transaction, so no lock is held for
//! longer than one small batch (figures in docs/operations.md).

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

/// Advisory lock key: held shared by every consumer transaction of the
/// runtime, exclusively by a deletion ("achilles-del" as ASCII).
pub const DELETION_LOCK: i64 = 0x6163_6869_6c2d_6465;
/// Advisory lock key: held by the one instance that runs a retention pass
/// ("achilles-ret").
pub const RETENTION_LOCK: i64 = 0x6163_6869_6c2d_7265;

/// Events per statement when deleting one session on request.
const DELETE_BATCH_ROWS: i64 = 5_000;

/// Rows removed per table, for the audit log line and the pass report.
pub type RowCounts = BTreeMap<&'static str, u64>;

/// Takes the shared side of [`DELETION_LOCK`] for the rest of the
/// transaction (consumers, at the start of each transaction).
pub async fn hold_deletion_guard(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock_shared($1)")
        .bind(DELETION_LOCK)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Of `ids`, those deleted on request (tombstoned).
pub async fn tombstoned(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid,)> = sqlx::query_as("SELECT id FROM deleted_sessions WHERE id = ANY($1)")
        .bind(ids)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Of `ids`, those with no `sessions` row (deleted on request or pruned
/// by retention).
pub async fn gone(conn: &mut PgConnection, ids: &[Uuid]) -> Result<Vec<Uuid>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<(Uuid,)> = sqlx::query_as(
        "SELECT u.id FROM UNNEST($1::uuid[]) AS u(id)
         WHERE NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = u.id)",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows.into_iter().map(|r| r.0).collect())
}

/// Deletes one session of `tenant` and every row derived from it, leaving
/// a tombstone. `None` if the tenant has no such session (another
/// tenant's session is indistinguishable from a missing one).
pub async fn delete_session(
    pool: &PgPool,
    tenant: &str,
    id: Uuid,
) -> Result<Option<RowCounts>, sqlx::Error> {
    // Checked before the lock, so probing ids never stalls the pipeline.
    let owner: Option<(String,)> = sqlx::query_as("SELECT tenant_id FROM sessions WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await?;
    if owner.as_ref().map(|o| o.0.as_str()) != Some(tenant) {
        return Ok(None);
    }
    // 1. The tombstone, committed first: from here on the consumers drop
    //    the session's records.
    sqlx::query(
        "INSERT INTO deleted_sessions (id, tenant_id) VALUES ($1, $2)
         ON CONFLICT (id) DO UPDATE SET deleted_at = now()",
    )
    .bind(id)
    .bind(tenant)
    .execute(pool)
    .await?;
    // 2. The events, in short batches, while the pipeline runs on.
    let batched = delete_events_batched(pool, &[id], DELETE_BATCH_ROWS).await?;
    // 3. Everything else in one transaction under the deletion lock: the
    //    consumers' transactions in flight finish first, the next ones see
    //    no trace of the session.
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(DELETION_LOCK)
        .execute(&mut *tx)
        .await?;
    let mut counts = delete_rows(&mut tx, &[id]).await?;
    tx.commit().await?;
    *counts.entry("events").or_default() += batched;
    Ok(Some(counts))
}

/// Deletes the rows of `ids` from every table that holds rows of a
/// session, the aggregates' shares first. The caller holds
/// [`DELETION_LOCK`] exclusively.
async fn delete_rows(conn: &mut PgConnection, ids: &[Uuid]) -> Result<RowCounts, sqlx::Error> {
    let mut counts = RowCounts::new();
    // The aggregates lose the sessions' shares.
    sqlx::query(
        "UPDATE error_templates t SET occurrence_count = greatest(t.occurrence_count - d.n, 0)
         FROM (SELECT tenant_id, template_id, sum(occurrence_count) AS n
               FROM error_template_sessions WHERE session_id = ANY($1)
               GROUP BY tenant_id, template_id) d
         WHERE t.tenant_id = d.tenant_id AND t.template_id = d.template_id",
    )
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE error_clusters c SET occurrence_count = greatest(c.occurrence_count - d.n, 0),
             session_count = greatest(c.session_count - d.s, 0), updated_at = now()
         FROM (SELECT tenant_id, cluster_id, sum(occurrence_count) AS n, count(*) AS s
               FROM error_cluster_sessions WHERE session_id = ANY($1)
               GROUP BY tenant_id, cluster_id) d
         WHERE c.tenant_id = d.tenant_id AND c.id = d.cluster_id",
    )
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    // Children before the rows they reference.
    const STEPS: &[(&str, &str)] = &[
        (
            "error_cluster_sessions",
            "DELETE FROM error_cluster_sessions WHERE session_id = ANY($1)",
        ),
        (
            "error_template_sessions",
            "DELETE FROM error_template_sessions WHERE session_id = ANY($1)",
        ),
        (
            "event_correlations",
            "DELETE FROM event_correlations WHERE session_id = ANY($1)",
        ),
        (
            "webhook_deliveries",
            "DELETE FROM webhook_deliveries WHERE transition_id IN
                 (SELECT id FROM insight_transitions WHERE session_id = ANY($1))",
        ),
        (
            "insight_transitions",
            "DELETE FROM insight_transitions WHERE session_id = ANY($1)",
        ),
        (
            "insights",
            "DELETE FROM insights WHERE session_id = ANY($1)",
        ),
        (
            "agent_performance",
            "DELETE FROM agent_performance WHERE session_id = ANY($1)",
        ),
        (
            "session_reports",
            "DELETE FROM session_reports WHERE session_id = ANY($1)",
        ),
        (
            "consumer_state",
            "DELETE FROM consumer_state WHERE session_id = ANY($1)",
        ),
        // Records not yet published (session-ended, insights: keyed by
        // the session id).
        (
            "outbox",
            "DELETE FROM outbox WHERE key = ANY($1::uuid[]::text[])",
        ),
    ];
    for (table, sql) in STEPS {
        let n = sqlx::query(sql)
            .bind(ids)
            .execute(&mut *conn)
            .await?
            .rows_affected();
        counts.insert(table, n);
    }
    // Mostly deleted in batches before (delete_events_batched): what is
    // left arrived meanwhile. One session per statement, so the index is
    // always used while the deletion lock is held.
    let mut events = 0;
    for id in ids {
        events += sqlx::query("DELETE FROM events WHERE session_id = $1")
            .bind(id)
            .execute(&mut *conn)
            .await?
            .rows_affected();
    }
    counts.insert("events", events);
    let n = sqlx::query("DELETE FROM sessions WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    counts.insert("sessions", n);
    Ok(counts)
}

/// Deletes the events of `ids`, at most `batch_rows` per statement, each
/// statement its own transaction. Session by session: an equality on
/// `session_id` always takes the index, where `= ANY(list)` may be planned
/// as a scan of the whole table.
async fn delete_events_batched(
    pool: &PgPool,
    ids: &[Uuid],
    batch_rows: i64,
) -> Result<u64, sqlx::Error> {
    let mut events = 0;
    for id in ids {
        loop {
            let n = sqlx::query(
                "DELETE FROM events WHERE ctid = ANY(ARRAY(
                     SELECT ctid FROM events WHERE session_id = $1 LIMIT $2))",
            )
            .bind(id)
            .bind(batch_rows)
            .execute(pool)
            .await?
            .rows_affected();
            events += n;
            // A short batch was the last: asking again would only walk the
            // index entries just deleted.
            if n < batch_rows.unsigned_abs() {
                break;
            }
        }
    }
    Ok(events)
}

/// What one retention pass may remove.
#[derive(Debug, Clone, Copy)]
pub struct Cutoffs {
    /// Sessions idle since before this lose their events and state.
    pub events: DateTime<Utc>,
    /// Sessions idle since before this go entirely.
    pub derived: DateTime<Utc>,
    /// Rows per statement.
    pub batch_rows: i64,
    /// Sessions per statement when picking candidates.
    pub batch_sessions: i64,
}

/// The last sign of life of a session (SQL, over `sessions s`).
const IDLE_SINCE: &str = "greatest(s.created_at, s.started_at, s.ended_at, s.last_event_at)";

/// Removes the events (and consumer state) of up to `batch_sessions`
/// sessions idle since before `cut.events`, `batch_rows` events per
/// statement. Returns rows removed per table; empty when nothing was due.
pub async fn prune_events_step(pool: &PgPool, cut: &Cutoffs) -> Result<RowCounts, sqlx::Error> {
    let ids: Vec<(Uuid,)> = sqlx::query_as(&format!(
        "SELECT s.id FROM sessions s
         WHERE s.created_at < $1 AND s.events_pruned_at IS NULL AND {IDLE_SINCE} < $1
         ORDER BY s.created_at LIMIT $2"
    ))
    .bind(cut.events)
    .bind(cut.batch_sessions)
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = ids.into_iter().map(|r| r.0).collect();
    let mut counts = RowCounts::new();
    if ids.is_empty() {
        return Ok(counts);
    }
    let events = delete_events_batched(pool, &ids, cut.batch_rows).await?;
    counts.insert("events", events);
    // State and the mark together, under the deletion lock (a consumer
    // may be about to checkpoint these sessions).
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(DELETION_LOCK)
        .execute(&mut *tx)
        .await?;
    let n = sqlx::query("DELETE FROM consumer_state WHERE session_id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    counts.insert("consumer_state", n);
    let n = sqlx::query("UPDATE sessions SET events_pruned_at = now() WHERE id = ANY($1)")
        .bind(&ids)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    counts.insert("sessions (events pruned)", n);
    tx.commit().await?;
    Ok(counts)
}

/// Deletes up to `batch_sessions` sessions idle since before
/// `cut.derived` with every row derived from them (their events first, in
/// batches, when the events cutoff has not removed them yet).
pub async fn prune_sessions_step(pool: &PgPool, cut: &Cutoffs) -> Result<RowCounts, sqlx::Error> {
    let ids: Vec<(Uuid,)> = sqlx::query_as(&format!(
        "SELECT s.id FROM sessions s WHERE s.created_at < $1 AND {IDLE_SINCE} < $1
         ORDER BY s.created_at LIMIT $2"
    ))
    .bind(cut.derived)
    .bind(cut.batch_sessions)
    .fetch_all(pool)
    .await?;
    let ids: Vec<Uuid> = ids.into_iter().map(|r| r.0).collect();
    if ids.is_empty() {
        return Ok(RowCounts::new());
    }
    let events = delete_events_batched(pool, &ids, cut.batch_rows).await?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(DELETION_LOCK)
        .execute(&mut *tx)
        .await?;
    // Re-checked under the lock: a session that came back to life since
    // the pick stays.
    let still: Vec<(Uuid,)> = sqlx::query_as(&format!(
        "SELECT s.id FROM sessions s WHERE s.id = ANY($1) AND {IDLE_SINCE} < $2"
    ))
    .bind(&ids)
    .bind(cut.derived)
    .fetch_all(&mut *tx)
    .await?;
    let still: Vec<Uuid> = still.into_iter().map(|r| r.0).collect();
    let mut counts = delete_rows(&mut tx, &still).await?;
    tx.commit().await?;
    *counts.entry("events").or_default() += events;
    Ok(counts)
}

/// Prunes the tables that are not per session: insight transitions of
/// sessions still kept (and their deliveries) and tombstones, both after
/// `cut.derived`. Returns rows removed per table; empty when nothing was
/// due.
pub async fn prune_logs_step(pool: &PgPool, cut: &Cutoffs) -> Result<RowCounts, sqlx::Error> {
    let mut counts = RowCounts::new();
    let n = sqlx::query(
        "DELETE FROM webhook_deliveries WHERE id = ANY(ARRAY(
             SELECT d.id FROM webhook_deliveries d
             JOIN insight_transitions t ON t.id = d.transition_id
             WHERE t.recorded_at < $1 LIMIT $2))",
    )
    .bind(cut.derived)
    .bind(cut.batch_rows)
    .execute(pool)
    .await?
    .rows_affected();
    if n > 0 {
        counts.insert("webhook_deliveries", n);
    }
    let n = sqlx::query(
        "DELETE FROM insight_transitions WHERE id = ANY(ARRAY(
             SELECT t.id FROM insight_transitions t WHERE t.recorded_at < $1
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries d WHERE d.transition_id = t.id)
             ORDER BY t.id LIMIT $2))",
    )
    .bind(cut.derived)
    .bind(cut.batch_rows)
    .execute(pool)
    .await?
    .rows_affected();
    if n > 0 {
        counts.insert("insight_transitions", n);
    }
    let n = sqlx::query(
        "DELETE FROM deleted_sessions WHERE id = ANY(ARRAY(
             SELECT id FROM deleted_sessions WHERE deleted_at < $1 LIMIT $2))",
    )
    .bind(cut.derived)
    .bind(cut.batch_rows)
    .execute(pool)
    .await?
    .rows_affected();
    if n > 0 {
        counts.insert("deleted_sessions", n);
    }
    Ok(counts)
}

const DAY_SECS: i64 = 86_400;

/// One retention pass now, as `[retention]` says, if no other instance is
/// running one (`None`: [`RETENTION_LOCK`] is held elsewhere). Returns the
/// rows removed per table (also counted in
/// `achilles_retention_deleted_rows_total`).
pub async fn run_pass(
    pool: &PgPool,
    r: &crate::config::RetentionSettings,
) -> Result<Option<RowCounts>, sqlx::Error> {
    let mut lock = pool.acquire().await?;
    let (held,): (bool,) = sqlx::query_as("SELECT pg_try_advisory_lock($1)")
        .bind(RETENTION_LOCK)
        .fetch_one(&mut *lock)
        .await?;
    if !held {
        return Ok(None);
    }
    let result = pass(pool, r).await;
    let unlocked = sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(RETENTION_LOCK)
        .execute(&mut *lock)
        .await;
    if unlocked.is_err() {
        // A connection that may still hold the lock is not given back.
        drop(lock.detach());
    }
    result.map(Some)
}

async fn pass(
    pool: &PgPool,
    r: &crate::config::RetentionSettings,
) -> Result<RowCounts, sqlx::Error> {
    let now = Utc::now();
    let cut = Cutoffs {
        events: now - chrono::Duration::seconds(i64::from(r.events_days) * DAY_SECS),
        derived: now - chrono::Duration::seconds(i64::from(r.derived_days) * DAY_SECS),
        batch_rows: r.batch_rows,
        batch_sessions: r.batch_sessions,
    };
    let mut total = RowCounts::new();
    let mut add = |counts: RowCounts| {
        let any = !counts.is_empty();
        for (table, n) in counts {
            crate::metrics::RETENTION_DELETED
                .with_label_values(&[table])
                .inc_by(n);
            *total.entry(table).or_default() += n;
        }
        any
    };
    // Whole sessions first (their events need not be pruned separately).
    while add(prune_sessions_step(pool, &cut).await?) {}
    while add(prune_events_step(pool, &cut).await?) {}
    while add(prune_logs_step(pool, &cut).await?) {}
    Ok(total)
}
