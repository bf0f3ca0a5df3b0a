//! The retention task: every `retention.interval_secs`, one raw-sink
//! replica (whichever holds the Postgres advisory lock; the others skip
//! the pass) removes what `[retention]` no longer keeps. The SQL, and why
//! it holds no long locks, is in [`achilles_core::db::retention`]; the
//! bounds of every table are listed in docs/operations.md ("Retention").
//! `achilles retention run` runs one pass by hand.

use std::time::Duration;

use sqlx::PgPool;

use achilles_core::config::RetentionSettings;
pub use achilles_core::db::retention::run_pass;
use achilles_core::metrics;

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
