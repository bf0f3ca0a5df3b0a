//! `/readyz` from a cached check.
//!
//! The probe is unauthenticated, and a real check is a broker metadata
//! round trip plus a Postgres query: answering every call with a fresh one
//! would let anyone turn probe traffic into broker load. A check at most
//! `api.ready_cache_ms` old is reused; when it is older, the first caller
//! runs a new one while concurrent callers wait for its result (one round
//! trip however many probes arrive).

use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use achilles_core::{db, kafka, metrics};

use crate::state::AppState;

/// Reachability of the two dependencies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Readiness {
    pub postgres: bool,
    pub kafka: bool,
}

pub struct ReadyCache {
    ttl: Duration,
    last: Mutex<Option<(Instant, Readiness)>>,
}

impl ReadyCache {
    pub fn new(ttl: Duration) -> Self {
        Self {
            ttl,
            last: Mutex::new(None),
        }
    }

    /// The cached readiness, refreshed when older than the TTL.
    pub async fn get(&self, state: &AppState) -> Readiness {
        let mut last = self.last.lock().await;
        if let Some((at, r)) = *last {
            if at.elapsed() < self.ttl {
                return r;
            }
        }
        let (postgres, kafka) = tokio::join!(
            db::reachable(state.pool()),
            kafka::broker_reachable(state.publisher().producer(), Duration::from_secs(2)),
        );
        metrics::READINESS_CHECKS.with_label_values(&["api"]).inc();
        let r = Readiness { postgres, kafka };
        *last = Some((Instant::now(), r));
        r
    }
}
