//! Ingest load: realistic sessions sent to `POST /v1/events/batch`.
//!
//! The run owns a fixed number of session *slots* (one per closed-loop
//! worker, or `--concurrency` of them in open loop). A slot's batches go to
//! its current session; after `--session-events` events the session is
//! ended and the slot moves on to a fresh one, so the pipeline sees the
//! start → events → end lifecycle of real sessions. Session starts and ends
//! are sent beside the measured requests and never enter the latency
//! figures; their failures are counted separately.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde::Deserialize;
use uuid::Uuid;

use super::gen::SessionGen;
use super::stats::{Outcome, Recorder};
use crate::client::CliError;

/// The counts of a `202` answer; the per-event results are skipped.
#[derive(Deserialize)]
struct Ack {
    accepted: u64,
    duplicates: u64,
    rejected: u64,
}

struct Slot {
    gen: SessionGen,
    session: Uuid,
    sent: u64,
}

pub struct Ingest {
    http: reqwest::Client,
    base: String,
    auth: String,
    batch_size: usize,
    session_events: u64,
    /// Closed loop: pause briefly after a 503 instead of hammering a
    /// server that asked for a break. Open loop keeps to its schedule.
    backoff_on_503: bool,
    slots: Vec<Mutex<Slot>>,
    /// Every session used, for the Postgres measurements afterwards.
    sessions: Mutex<Vec<Uuid>>,
    pub rec: Recorder,
    body_bytes: AtomicU64,
    events_built: AtomicU64,
}

pub fn http_client(max_conns: usize) -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(max_conns)
        .tcp_nodelay(true)
        .timeout(Duration::from_secs(30))
        .build()
        // No TLS, no proxy settings: building cannot fail.
        .expect("HTTP client builds")
}

pub fn transport_kind(e: &reqwest::Error) -> &'static str {
    if e.is_timeout() {
        "timeout"
    } else if e.is_connect() {
        "connect"
    } else {
        "other"
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Slots hold plain data; a panic elsewhere cannot corrupt them.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the generated traffic looks like.
pub struct Shape {
    /// Session slots (closed loop: one per worker).
    pub slots: usize,
    pub batch_size: usize,
    /// Events per session before it is ended and replaced.
    pub session_events: u64,
    /// Event time between a session's events.
    pub event_gap_ms: u64,
    pub seed: u64,
}

impl Ingest {
    pub fn new(base: &str, key: &str, shape: Shape, backoff_on_503: bool) -> Self {
        let Shape {
            slots,
            batch_size,
            session_events,
            event_gap_ms,
            seed,
        } = shape;
        let slots: Vec<_> = (0..slots as u64)
            .map(|i| {
                Mutex::new(Slot {
                    gen: SessionGen::new(
                        seed.wrapping_mul(1_000_003).wrapping_add(i),
                        event_gap_ms,
                        session_events,
                    ),
                    session: Uuid::now_v7(),
                    sent: 0,
                })
            })
            .collect();
        let sessions = slots.iter().map(|s| lock(s).session).collect();
        Self {
            http: http_client(slots.len() + 8),
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {key}"),
            batch_size,
            session_events,
            backoff_on_503,
            slots,
            sessions: Mutex::new(sessions),
            rec: Recorder::new(),
            body_bytes: AtomicU64::new(0),
            events_built: AtomicU64::new(0),
        }
    }

    pub fn sessions(&self) -> Vec<Uuid> {
        lock(&self.sessions).clone()
    }

    /// Mean size of one event in the bodies sent so far.
    pub fn event_bytes_avg(&self) -> Option<f64> {
        let n = self.events_built.load(Ordering::Relaxed);
        (n > 0).then(|| (self.body_bytes.load(Ordering::Relaxed) as f64 / n as f64).round())
    }

    async fn post(&self, path: &str, body: String) -> Result<reqwest::Response, reqwest::Error> {
        self.http
            .post(format!("{}{path}", self.base))
            .header(AUTHORIZATION, &self.auth)
            .header(CONTENT_TYPE, "application/json")
            .body(body)
            .send()
            .await
    }

    /// A session start or end, outside the measured requests.
    async fn lifecycle(&self, path: &str, body: String, label: &str) -> Result<(), String> {
        match self.post(path, body).await {
            Ok(r) if r.status().is_success() => Ok(()),
            Ok(r) => {
                let status = r.status();
                self.rec.side_error(&format!("{label}_{}", status.as_u16()));
                Err(format!(
                    "{path} answered {status}: {}",
                    r.text().await.unwrap_or_default()
                ))
            }
            Err(e) => {
                self.rec
                    .side_error(&format!("{label}_{}", transport_kind(&e)));
                Err(format!("{path}: {e}"))
            }
        }
    }

    /// Starts every slot's first session before the clock starts. The
    /// first failure aborts the run: nothing useful can be measured.
    pub async fn start_all(&self) -> Result<(), CliError> {
        for slot in &self.slots {
            let body = {
                let mut s = lock(slot);
                let id = s.session;
                s.gen.start_body(id)
            };
            self.lifecycle("/v1/sessions/start", body, "session_start")
                .await
                .map_err(|e| {
                    CliError::Other(format!(
                        "cannot start a session at {}: {e}\n  is the API running? `make up` starts it",
                        self.base
                    ))
                })?;
        }
        Ok(())
    }

    /// Ends every slot's current session after the run.
    pub async fn end_all(&self) {
        let ids: Vec<Uuid> = self.slots.iter().map(|s| lock(s).session).collect();
        let mut tasks = Vec::new();
        for chunk in ids.chunks(32) {
            for id in chunk {
                let body = format!(r#"{{"session_id":"{id}","status":"completed"}}"#);
                tasks.push(self.lifecycle("/v1/sessions/end", body, "session_end"));
            }
            // A few at a time: ending is not what is being measured.
            for r in futures::future::join_all(tasks.drain(..)).await {
                if let Err(e) = r {
                    eprintln!("warning: {e}");
                }
            }
        }
    }

    /// Sends one batch for slot `seq % slots`; latency counts from `from`.
    pub async fn send_batch(self: Arc<Self>, seq: u64, from: Instant) {
        let slot = &self.slots[(seq % self.slots.len() as u64) as usize];
        let (body, rotation) = {
            let mut s = lock(slot);
            let session = s.session;
            let body = s.gen.batch_body(session, self.batch_size);
            s.sent += self.batch_size as u64;
            let rotation = (s.sent >= self.session_events).then(|| {
                let next = Uuid::now_v7();
                s.session = next;
                s.sent = 0;
                (session, next, s.gen.start_body(next))
            });
            (body, rotation)
        };
        self.body_bytes
            .fetch_add(body.len() as u64, Ordering::Relaxed);
        self.events_built
            .fetch_add(self.batch_size as u64, Ordering::Relaxed);
        let outcome = match self.post("/v1/events/batch", body).await {
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(b) => match serde_json::from_slice::<Ack>(&b) {
                    Ok(a) => Outcome::Ok {
                        events: a.accepted + a.duplicates,
                        rejected: a.rejected,
                    },
                    Err(_) => Outcome::Transport("bad_body"),
                },
                Err(e) => Outcome::Transport(transport_kind(&e)),
            },
            Ok(r) => {
                let code = r.status().as_u16();
                // Read the body so the connection goes back to the pool.
                let _ = r.bytes().await;
                Outcome::Status(code)
            }
            Err(e) => Outcome::Transport(transport_kind(&e)),
        };
        let busy = matches!(outcome, Outcome::Status(503));
        self.rec.record("batch", from.elapsed(), outcome);
        if let Some((old, next, start)) = rotation {
            lock(&self.sessions).push(next);
            let me = self.clone();
            tokio::spawn(async move {
                let end = format!(r#"{{"session_id":"{old}","status":"completed"}}"#);
                let _ = me.lifecycle("/v1/sessions/end", end, "session_end").await;
                let _ = me
                    .lifecycle("/v1/sessions/start", start, "session_start")
                    .await;
            });
        }
        if busy && self.backoff_on_503 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}
