//! Idle sessions end: the reaper.
//!
//! A session with no record for `session.idle_timeout_ms` is ended with
//! status `timed_out`. The reaper does not end it itself: it publishes a
//! `session_end` record to the events topic, keyed by the session like the
//! producer's own records, so everything downstream is the path every
//! ended session takes — landing sets the status, the processor folds the
//! end into the summary and publishes the session-ended notice, deep mode
//! judges it. Keyed by the session, the end also queues behind whatever of
//! the session is still in its partition, so the summary includes it.
//!
//! Two clocks run out (every `session.reaper_interval_ms`):
//! - **wall clock**: nothing was written to the session's row (its start,
//!   its end, or the processor's summary after each batch of its records)
//!   for the timeout. A silent partition still ends its sessions.
//! - **event clock**: the session's last event is older than the timeout by
//!   its tenant's event clock (the newest event time among the tenant's
//!   active sessions, never ahead of now), and nothing was written to the
//!   row for a tenth of the timeout (at least one reaper interval). This
//!   ends sessions of replayed or back-filled telemetry, whose event time
//!   runs faster than the wall clock, without waiting the timeout in real
//!   time; the required silence keeps a session that is still sending
//!   (whose producer clock lags its tenant's) from being ended by it.
//!
//! Idempotent: the end's `ended_at` is the session's last event time, the
//! same on every sweep, so an end published twice (a retry, two processor
//! instances one after the other) lands and applies once; an advisory lock
//! keeps instances from sweeping at the same time, and each instance skips
//! what it published within the last timeout. A timeout never replaces the
//! producer's own end ([`SessionStatus::may_replace`]), and a producer's
//! end after the timeout replaces it. An event after the timeout lands,
//! counts and makes the processor publish the notice again (re-judged).

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use chrono::Utc;
use sqlx::PgPool;
use uuid::Uuid;

use achilles_core::config::SessionSettings;
use achilles_core::metrics;
use achilles_core::model::{SessionEnd, SessionId, SessionStatus, TenantId};
use achilles_core::publisher::{PublishError, Publisher};
use achilles_core::wire::{Envelope, Record};

use crate::db::reaper as db;

/// Ends published per sweep at most; the rest wait for the next sweep.
const SWEEP_LIMIT: i64 = 1000;

#[derive(Debug, thiserror::Error)]
pub enum ReapError {
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    #[error("publishing the timeout ends: {0}")]
    Publish(#[from] PublishError),
}

pub struct Reaper {
    pool: PgPool,
    publisher: Publisher,
    idle: Duration,
    interval: Duration,
    /// What this instance published and when, skipped until it landed.
    published: HashMap<Uuid, Instant>,
}

impl Reaper {
    /// `None` when `session.idle_timeout_ms` is 0 (no timeout).
    pub fn new(pool: PgPool, publisher: Publisher, s: &SessionSettings) -> Option<Self> {
        (s.idle_timeout_ms > 0).then(|| Self {
            pool,
            publisher,
            idle: Duration::from_millis(s.idle_timeout_ms),
            interval: Duration::from_millis(s.reaper_interval_ms.max(10)),
            published: HashMap::new(),
        })
    }

    /// Sweeps every interval until `stop` resolves; a failed sweep is
    /// logged and tried again at the next.
    pub async fn run(mut self, stop: impl Future<Output = ()>) {
        tokio::pin!(stop);
        let mut tick = tokio::time::interval(self.interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = &mut stop => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.sweep().await {
                tracing::warn!(error = %e, "session reaper sweep failed; will retry");
            }
        }
    }

    /// One sweep: publishes a `timed_out` end for each idle session and
    /// returns how many.
    pub async fn sweep(&mut self) -> Result<usize, ReapError> {
        let idle = self.idle;
        self.published.retain(|_, at| at.elapsed() < idle);
        let skip: Vec<Uuid> = self.published.keys().copied().collect();
        let mut tx = self.pool.begin().await?;
        if !db::try_lock(&mut tx).await? {
            return Ok(0);
        }
        let grace = (self.idle / 10).max(self.interval);
        let found = db::idle_sessions(
            &mut tx,
            millis(self.idle),
            millis(grace),
            &skip,
            SWEEP_LIMIT,
        )
        .await?;
        let mut envelopes = Vec::with_capacity(found.len());
        let mut clocks = Vec::with_capacity(found.len());
        for s in &found {
            let Ok(tenant) = TenantId::parse(&s.tenant_id) else {
                tracing::warn!(session = %s.id, "not ending a session with an invalid tenant id");
                continue;
            };
            envelopes.push(Envelope {
                ingested_at: Utc::now(),
                record: Record::SessionEnd(SessionEnd {
                    tenant,
                    session_id: SessionId::from_uuid(s.id),
                    ended_at: s.ended_at,
                    status: SessionStatus::TimedOut,
                }),
            });
            clocks.push((s.id, if s.wall { "wall" } else { "event" }));
        }
        if envelopes.is_empty() {
            return Ok(0);
        }
        // The lock is held until every end is acknowledged.
        self.publisher.publish(&envelopes, None).await?;
        tx.commit().await?;
        let now = Instant::now();
        for (id, clock) in &clocks {
            self.published.insert(*id, now);
            metrics::SESSIONS_TIMED_OUT
                .with_label_values(&[clock])
                .inc();
        }
        tracing::info!(sessions = clocks.len(), "idle sessions ended (timed_out)");
        Ok(clocks.len())
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
