//! Read load: `GET /v1/sessions/{id}` and `GET /v1/sessions/{id}/events`.
//!
//! A handful of sessions are seeded first (through the API, then waited for
//! until they landed), so the reads hit real rows: a session with its
//! summary and a full first page of events (the default page size, 100).
//! Requests alternate between the two endpoints; each has its own latency
//! histogram in the report.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use reqwest::header::AUTHORIZATION;
use uuid::Uuid;

use super::ingest::{transport_kind, Ingest, Shape};
use super::stats::{Outcome, Recorder};
use crate::client::CliError;

/// Events per seeded session: two batches, so the first page (100) is full.
const SEED_EVENTS: usize = 200;

pub struct Reader {
    http: reqwest::Client,
    base: String,
    auth: String,
    sessions: Vec<Uuid>,
    /// Alternates the endpoints across all requests (a closed-loop worker's
    /// sequence numbers would otherwise always pick the same one).
    next: AtomicU64,
    pub rec: Recorder,
}

/// Creates `n` sessions of [`SEED_EVENTS`] events each and waits (up to
/// `timeout`) until every one of them can be read back in full.
pub async fn seed(
    base: &str,
    key: &str,
    n: usize,
    seed: u64,
    timeout: Duration,
) -> Result<Vec<Uuid>, CliError> {
    let shape = Shape {
        slots: n,
        batch_size: 100,
        // Never reached: each seeded session keeps all its events.
        session_events: SEED_EVENTS as u64 * 10,
        event_gap_ms: 2_000,
        seed,
    };
    let ingest = Arc::new(Ingest::new(base, key, shape, true));
    ingest.start_all().await?;
    for round in 0..(SEED_EVENTS / 100) as u64 {
        for slot in 0..n as u64 {
            ingest
                .clone()
                .send_batch(round * n as u64 + slot, Instant::now())
                .await;
        }
    }
    let p = ingest.rec.progress();
    if p.failed > 0 || p.events < (n * SEED_EVENTS) as u64 {
        return Err(CliError::Other(format!(
            "seeding the read benchmark failed: {} of {} events acknowledged",
            p.events,
            n * SEED_EVENTS
        )));
    }
    let sessions = ingest.sessions();
    let reader = Reader::new(base, key, sessions.clone());
    let deadline = Instant::now() + timeout;
    for id in &sessions {
        loop {
            if reader.page_len(*id).await == Some(100) {
                break;
            }
            if Instant::now() > deadline {
                return Err(CliError::Other(format!(
                    "seeded session {id} did not land within {timeout:?}: is achilles-raw-sink running?"
                )));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    Ok(sessions)
}

impl Reader {
    pub fn new(base: &str, key: &str, sessions: Vec<Uuid>) -> Self {
        Self {
            http: super::ingest::http_client(256),
            base: base.trim_end_matches('/').to_owned(),
            auth: format!("Bearer {key}"),
            sessions,
            next: AtomicU64::new(0),
            rec: Recorder::new(),
        }
    }

    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .header(AUTHORIZATION, &self.auth)
    }

    /// Number of events on the first page, if the session is readable.
    async fn page_len(&self, id: Uuid) -> Option<usize> {
        let r = self
            .get(&format!("/v1/sessions/{id}/events"))
            .send()
            .await
            .ok()?;
        if !r.status().is_success() {
            return None;
        }
        let v: serde_json::Value = r.json().await.ok()?;
        v["events"].as_array().map(Vec::len)
    }

    /// One read: every other one reads a session, the others its events.
    pub async fn read(self: Arc<Self>, _seq: u64, from: Instant) {
        let k = self.next.fetch_add(1, Ordering::Relaxed);
        let id = self.sessions[((k / 2) % self.sessions.len() as u64) as usize];
        let (label, path) = if k & 1 == 0 {
            ("session", format!("/v1/sessions/{id}"))
        } else {
            ("events", format!("/v1/sessions/{id}/events?limit=100"))
        };
        let outcome = match self.get(&path).send().await {
            // The whole body is read: a client needs all of it.
            Ok(r) if r.status().is_success() => match r.bytes().await {
                Ok(_) => Outcome::Ok {
                    events: 0,
                    rejected: 0,
                },
                Err(e) => Outcome::Transport(transport_kind(&e)),
            },
            Ok(r) => {
                let code = r.status().as_u16();
                let _ = r.bytes().await;
                Outcome::Status(code)
            }
            Err(e) => Outcome::Transport(transport_kind(&e)),
        };
        self.rec.record(label, from.elapsed(), outcome);
    }
}
