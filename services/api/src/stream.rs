//! The live insight stream behind `GET /v1/insights/stream`.
//!
//! One poller per API process reads new rows of `insight_transitions`
//! (every `push.stream_poll_ms`, only while someone listens) and fans them
//! out on a broadcast channel; each connection filters them for its tenant
//! and filters. A connection first catches up from Postgres (after its
//! `Last-Event-ID`, or since `since`), then follows the broadcast, skipping
//! what it already sent. Transition ids are committed in order (the
//! recorder serialises its inserts), so "after id N" misses nothing.
//!
//! **Slow clients are dropped, not buffered.** Each connection has its own
//! bounded queue (`push.stream_buffer` events). When it stays full for
//! `push.stream_stall_ms` (the client stopped reading), or the connection
//! fell a whole broadcast buffer behind the others, the stream ends and
//! the client resumes with `Last-Event-ID`. Memory per connection is
//! bounded, and one stuck reader never holds back the others or the poller.

use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::response::sse::Event;
use futures::Stream;
use sqlx::PgPool;
use tokio::sync::{broadcast, mpsc, OwnedSemaphorePermit, Semaphore};

use achilles_core::config::PushSettings;
use achilles_core::db::push::{self, TransitionRow};
use achilles_core::metrics;

/// Transitions the broadcast holds for connections that are behind.
const BROADCAST_CAPACITY: usize = 4096;
/// Rows per catch-up or poll query.
const PAGE: i64 = 500;

pub struct StreamHub {
    tx: broadcast::Sender<Arc<TransitionRow>>,
    permits: Arc<Semaphore>,
    /// Whether the poller runs; it stops when nobody listens.
    running: Arc<Mutex<bool>>,
    settings: PushSettings,
}

/// Which transitions a connection wants.
#[derive(Debug, Clone, Default)]
pub struct StreamFilter {
    pub severity: Option<String>,
    pub insight_type: Option<String>,
    pub session: Option<uuid::Uuid>,
    pub status: Option<String>,
}

impl StreamFilter {
    fn matches(&self, t: &TransitionRow) -> bool {
        self.severity.as_ref().is_none_or(|s| *s == t.severity)
            && self
                .insight_type
                .as_ref()
                .is_none_or(|s| *s == t.insight_type)
            && self.session.is_none_or(|s| s == t.session_id)
            && self.status.as_ref().is_none_or(|s| *s == t.status)
    }
}

/// Where a connection starts.
#[derive(Debug, Clone, Copy)]
pub enum Start {
    /// After this transition id (`Last-Event-ID`).
    After(i64),
    /// Transitions decided since then, then live.
    Since(chrono::DateTime<chrono::Utc>),
    /// Live only.
    Now,
}

impl StreamHub {
    pub fn new(settings: &PushSettings) -> Self {
        Self {
            tx: broadcast::channel(BROADCAST_CAPACITY).0,
            permits: Arc::new(Semaphore::new(settings.stream_max_connections)),
            running: Arc::new(Mutex::new(false)),
            settings: settings.clone(),
        }
    }

    pub fn heartbeat(&self) -> Duration {
        Duration::from_millis(self.settings.stream_heartbeat_ms)
    }

    /// A connection slot, or `None` when `push.stream_max_connections`
    /// streams are open.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }

    fn subscribe(&self, pool: &PgPool) -> broadcast::Receiver<Arc<TransitionRow>> {
        let mut running = self.running.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        if !*running {
            *running = true;
            tokio::spawn(poll(
                self.tx.clone(),
                pool.clone(),
                Duration::from_millis(self.settings.stream_poll_ms),
                self.running.clone(),
            ));
        }
        rx
    }

    /// Opens a stream of `tenant`'s transitions.
    pub fn open(
        self: &Arc<Self>,
        pool: &PgPool,
        permit: OwnedSemaphorePermit,
        tenant: String,
        filter: StreamFilter,
        start: Start,
    ) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
        let rx = self.subscribe(pool);
        let (tx, mut out) = mpsc::channel(self.settings.stream_buffer.max(1));
        let conn = Connection {
            pool: pool.clone(),
            tenant,
            filter,
            start,
            stall: Duration::from_millis(self.settings.stream_stall_ms),
        };
        tokio::spawn(forward(conn, rx, tx, permit));
        futures::stream::poll_fn(move |cx| out.poll_recv(cx).map(|o| o.map(Ok)))
    }
}

/// Clears the poller's flag if nobody listens; `true` then (stop polling).
/// Under the same lock as [`StreamHub::subscribe`], so a subscriber either
/// sees the poller running or starts a new one.
fn stop_if_unused(running: &Mutex<bool>, tx: &broadcast::Sender<Arc<TransitionRow>>) -> bool {
    let mut running = running.lock().unwrap_or_else(|p| p.into_inner());
    if tx.receiver_count() == 0 {
        *running = false;
        return true;
    }
    false
}

async fn poll(
    tx: broadcast::Sender<Arc<TransitionRow>>,
    pool: PgPool,
    every: Duration,
    running: Arc<Mutex<bool>>,
) {
    let mut cursor = loop {
        match push::last_transition_id(&pool).await {
            Ok(id) => break id,
            Err(e) => {
                tracing::warn!(error = %e, "insight stream: cannot read the log; retrying");
                if stop_if_unused(&running, &tx) {
                    return;
                }
                tokio::time::sleep(every).await;
            }
        }
    };
    loop {
        if stop_if_unused(&running, &tx) {
            return;
        }
        match push::transitions_after(&pool, None, cursor, None, PAGE).await {
            Ok(rows) => {
                let full = rows.len() as i64 == PAGE;
                for r in rows {
                    cursor = r.id;
                    let _ = tx.send(Arc::new(r));
                }
                if full {
                    continue;
                }
            }
            Err(e) => tracing::warn!(error = %e, "insight stream: poll failed; retrying"),
        }
        tokio::time::sleep(every).await;
    }
}

fn event(t: &TransitionRow) -> Event {
    Event::default()
        .id(t.id.to_string())
        .event(t.transition.clone())
        .data(serde_json::to_string(t).unwrap_or_default())
}

/// What one connection asked for.
struct Connection {
    pool: PgPool,
    tenant: String,
    filter: StreamFilter,
    start: Start,
    stall: Duration,
}

/// Feeds one connection: catch-up from Postgres, then the broadcast.
/// Ends when the client leaves, falls behind, or the log cannot be read.
async fn forward(
    conn: Connection,
    mut live: broadcast::Receiver<Arc<TransitionRow>>,
    out: mpsc::Sender<Event>,
    _permit: OwnedSemaphorePermit,
) {
    metrics::STREAM_CLIENTS.inc();
    let Connection {
        pool,
        tenant,
        filter,
        start,
        stall,
    } = conn;
    let slow = || {
        metrics::STREAM_DISCONNECTS
            .with_label_values(&["slow"])
            .inc();
    };
    // Waits for room in the connection's queue, at most `stall`.
    let send = |t: Arc<TransitionRow>| {
        let out = out.clone();
        let wanted = filter.matches(&t);
        async move {
            if !wanted {
                return Ok(());
            }
            out.send_timeout(event(&t), stall).await.map_err(|e| {
                if matches!(e, mpsc::error::SendTimeoutError::Timeout(_)) {
                    slow();
                }
            })
        }
    };
    let (mut last, since) = match start {
        Start::After(id) => (Some(id), None),
        Start::Since(t) => (Some(0), Some(t)),
        Start::Now => (None, None),
    };
    'run: {
        while let Some(after) = last {
            match push::transitions_after(&pool, Some(&tenant), after, since, PAGE).await {
                Ok(rows) => {
                    let done = (rows.len() as i64) < PAGE;
                    for r in rows.iter() {
                        if send(Arc::new(r.clone())).await.is_err() {
                            break 'run;
                        }
                        last = Some(r.id);
                    }
                    if done {
                        break;
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "insight stream: catch-up failed; closing");
                    break 'run;
                }
            }
        }
        loop {
            tokio::select! {
                _ = out.closed() => break,
                r = live.recv() => match r {
                    Ok(t) => {
                        if t.tenant_id != tenant || last.is_some_and(|l| t.id <= l) {
                            continue;
                        }
                        let id = t.id;
                        if send(t).await.is_err() {
                            break;
                        }
                        last = Some(id);
                    }
                    Err(broadcast::error::RecvError::Lagged(_)) => {
                        slow();
                        break;
                    }
                    Err(broadcast::error::RecvError::Closed) => break,
                },
            }
        }
    }
    metrics::STREAM_CLIENTS.dec();
}
