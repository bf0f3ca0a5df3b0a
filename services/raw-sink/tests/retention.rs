//! Retention passes against a real Postgres: sessions idle beyond
//! `derived_days` go with every derived row, sessions idle beyond
//! `events_days` keep their row and summaries but lose their events and
//! consumer state, recent sessions are untouched, deletes run in batches,
//! and a pass is skipped while another instance holds the lock.

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
use achilles_core::config::RetentionSettings;
use achilles_raw_sink::retention::run_pass;
use achilles_test_support::TestDb;
use uuid::Uuid;

/// A session of tenant acme created and last active `days` ago, with
/// `events` events, a correlation, an insight, a report and consumer state.
async fn session(db: &TestDb, days: i64, events: i64) -> Uuid {
    let id = Uuid::now_v7();
    sqlx::raw_sql(&format!(
        "INSERT INTO sessions (id, tenant_id, started_at, last_event_at, created_at)
         VALUES ('{id}', 'acme', now() - interval '{days} days', now() - interval '{days} days',
                 now() - interval '{days} days');
         INSERT INTO events (id, event_hash, tenant_id, session_id, occurred_at, ingested_at, kind, actor,
                             is_failure, data)
         SELECT gen_random_uuid(), md5(random()::text) || md5(random()::text), 'acme', '{id}',
                now() - interval '{days} days', now(), 'command', 'agent', false, '{{}}'
         FROM generate_series(1, {events});
         INSERT INTO event_correlations (tenant_id, session_id, cause_event_id, effect_event_id, match_kind,
                                         gap_ms, confidence)
         VALUES ('acme', '{id}', gen_random_uuid(), gen_random_uuid(), 'any_failure', 1, 0.5);
         INSERT INTO insights (id, tenant_id, session_id, type, severity, dedup_key, title, raised_at, last_seen_at)
         VALUES (gen_random_uuid(), 'acme', '{id}', 'command_loop', 'info', 'k', 't', now(), now());
         INSERT INTO session_reports (session_id, tenant_id, report) VALUES ('{id}', 'acme', '{{}}');
         INSERT INTO consumer_state (consumer, session_id, tenant_id, state)
         VALUES ('processor', '{id}', 'acme', '{{}}');"
    ))
    .execute(&db.pool)
    .await
    .expect("seed");
    id
}

async fn rows(db: &TestDb, id: Uuid) -> [i64; 5] {
    let q = |t: &str| {
        let col = if t == "sessions" { "id" } else { "session_id" };
        format!("SELECT count(*) FROM {t} WHERE {col} = '{id}'")
    };
    [
        db.count(&q("sessions")).await,
        db.count(&q("events")).await,
        db.count(&q("event_correlations")).await,
        db.count(&q("session_reports")).await,
        db.count(&q("consumer_state")).await,
    ]
}

#[tokio::test]
async fn a_pass_prunes_by_age_in_batches_and_only_one_instance_runs_it() {
    let db = TestDb::fresh().await;
    let old = session(&db, 120, 30).await;
    let idle = session(&db, 45, 30).await;
    let fresh = session(&db, 2, 30).await;
    let r = RetentionSettings {
        events_days: 30,
        derived_days: 90,
        batch_rows: 7,
        batch_sessions: 1,
        ..RetentionSettings::default()
    };

    // Another instance holds the lock: nothing happens.
    let mut other = db.pool.acquire().await.unwrap();
    sqlx::query("SELECT pg_advisory_lock($1)")
        .bind(achilles_core::db::retention::RETENTION_LOCK)
        .execute(&mut *other)
        .await
        .unwrap();
    assert!(run_pass(&db.pool, &r).await.unwrap().is_none());
    assert_eq!(rows(&db, old).await, [1, 30, 1, 1, 1]);
    sqlx::query("SELECT pg_advisory_unlock($1)")
        .bind(achilles_core::db::retention::RETENTION_LOCK)
        .execute(&mut *other)
        .await
        .unwrap();

    let removed = run_pass(&db.pool, &r).await.unwrap().expect("lock is free");
    assert_eq!(removed.get("events"), Some(&60), "{removed:?}");
    assert_eq!(removed.get("sessions"), Some(&1), "{removed:?}");
    assert_eq!(rows(&db, old).await, [0, 0, 0, 0, 0], "gone entirely");
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM insights WHERE session_id = '{old}'"
        ))
        .await,
        0
    );
    assert_eq!(
        rows(&db, idle).await,
        [1, 0, 1, 1, 0],
        "events and state gone"
    );
    assert_eq!(
        db.count(&format!(
            "SELECT count(*) FROM sessions WHERE id = '{idle}' AND events_pruned_at IS NOT NULL"
        ))
        .await,
        1
    );
    assert_eq!(rows(&db, fresh).await, [1, 30, 1, 1, 1], "untouched");

    // A second pass finds nothing more to do.
    let again = run_pass(&db.pool, &r).await.unwrap().expect("lock is free");
    assert!(again.values().all(|n| *n == 0), "{again:?}");
}
