//! The retention task: every `retention.interval_secs`, one raw-sink
//! replica (whichever holds the Postgres advisory lock
//! [`RETENTION_LOCK`]; the others skip the pass) removes what
//! `[retention]` no longer keeps. The SQL, and why it holds no long
//! locks, is in [`achilles_core::db::retention`]; the bounds of every
//! table are listed in docs/operations.md ("Retention").

use std::time::Duration;

use chrono::Utc;
use sqlx::PgPool;

use achilles_core::config::RetentionSettings;
use achilles_core::db::retention::{self, Cutoffs, RowCounts, RETENTION_LOCK};
use achilles_core::metrics;

const DAY_SECS: i64 = 86_400;

/// One pass now. `None` when another instance holds the lock.
pub async fn run_pass(
    pool: &PgPool,
    r: &RetentionSettings,
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

async fn pass(pool: &PgPool, r: &RetentionSettings) -> Result<RowCounts, sqlx::Error> {
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
            metrics::RETENTION_DELETED
                .with_label_values(&[table])
                .inc_by(n);
            *total.entry(table).or_default() += n;
        }
        any
    };
    // Whole sessions first (their events need not be pruned separately).
    while add(retention::prune_sessions_step(pool, &cut).await?) {}
    while add(retention::prune_events_step(pool, &cut).await?) {}
    while add(retention::prune_logs_step(pool, &cut).await?) {}
    Ok(total)
}

/// Runs passes until `stop` resolves; the first one a minute after start.
pub async fn run(pool: PgPool, r: RetentionSettings, stop: impl std::future::Future<Output = ()>) {
    if !r.enabled {
        return;
    }
    tokio::pin!(stop);
    let mut wait = Duration::from_secs(60).min(Duration::from_secs(r.interval_secs));
    loop {
        tokio::select! {
            _ = &mut stop => return,
            _ = tokio::time::sleep(wait) => {}
        }
        wait = Duration::from_secs(r.interval_secs);
        let started = std::time::Instant::now();
        match run_pass(&pool, &r).await {
            Ok(Some(rows)) => {
                metrics::RETENTION_PASSES.with_label_values(&["done"]).inc();
                tracing::info!(
                    ?rows,
                    elapsed_ms = started.elapsed().as_millis() as u64,
                    "retention pass done"
                );
            }
            Ok(None) => {
                metrics::RETENTION_PASSES
                    .with_label_values(&["skipped"])
                    .inc();
                tracing::debug!("retention pass skipped: another instance holds the lock");
            }
            Err(e) => {
                metrics::RETENTION_PASSES
                    .with_label_values(&["failed"])
                    .inc();
                tracing::warn!(error = %e, "retention pass failed; retried at the next interval");
            }
        }
    }
}
