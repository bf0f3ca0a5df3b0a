//! What a load run measures, and how it is reported.
//!
//! Latencies go into HdrHistograms (microsecond resolution, 3 significant
//! digits), so p99 of a million requests costs a few kilobytes and no
//! sorting. Everything is summarised into serialisable structs: `--json`
//! prints the [`Report`] as is, and the text output reads the same fields.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Latencies above this are clamped; a request that slow is a failure in
/// all but name, and the clamp keeps the histogram small.
const MAX_MICROS: u64 = 120_000_000;

pub fn new_histogram() -> Histogram<u64> {
    // Bounds are constants within hdrhistogram's documented range.
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("valid histogram bounds")
}

/// p50/p95/p99 of a distribution, in milliseconds.
#[derive(Clone, Debug, Serialize)]
pub struct Quantiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    pub count: u64,
}

impl Quantiles {
    /// `None` for an empty histogram: no figure is better than a zero.
    pub fn from_micros(h: &Histogram<u64>) -> Option<Self> {
        if h.is_empty() {
            return None;
        }
        let ms = |us: u64| round3(us as f64 / 1_000.0);
        Some(Self {
            p50: ms(h.value_at_quantile(0.50)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            max: ms(h.max()),
            mean: round3(h.mean() / 1_000.0),
            count: h.len(),
        })
    }
}

pub fn round3(x: f64) -> f64 {
    (x * 1_000.0).round() / 1_000.0
}

pub fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// How one request ended.
pub enum Outcome {
    /// A 2xx; `events` acknowledged by it (0 for reads).
    Ok { events: u64, rejected: u64 },
    /// Any other status.
    Status(u16),
    /// No HTTP answer: connection refused, reset, timeout.
    Transport(&'static str),
}

/// Counters shared by all request tasks of a run.
pub struct Recorder {
    inner: Mutex<Inner>,
}

struct Inner {
    /// One histogram per endpoint label (ingest has one, reads two).
    latency: BTreeMap<&'static str, Histogram<u64>>,
    ok: u64,
    failed: u64,
    events: u64,
    rejected: u64,
    errors: BTreeMap<String, u64>,
}

/// A snapshot for the progress bar.
pub struct Progress {
    pub ok: u64,
    pub failed: u64,
    pub events: u64,
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            inner: Mutex::new(Inner {
                latency: BTreeMap::new(),
                ok: 0,
                failed: 0,
                events: 0,
                rejected: 0,
                errors: BTreeMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panicking request task cannot leave the counters half-updated
        // in a way that matters for a report, so a poisoned lock is reused.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Records one request of `endpoint`. Only successful requests enter
    /// the latency histogram, so fast errors cannot flatter the figures.
    pub fn record(&self, endpoint: &'static str, latency: Duration, outcome: Outcome) {
        let mut g = self.lock();
        match outcome {
            Outcome::Ok { events, rejected } => {
                g.ok += 1;
                g.events += events;
                g.rejected += rejected;
                g.latency
                    .entry(endpoint)
                    .or_insert_with(new_histogram)
                    .saturating_record(micros(latency));
            }
            Outcome::Status(code) => {
                g.failed += 1;
                *g.errors.entry(code.to_string()).or_default() += 1;
            }
            Outcome::Transport(kind) => {
                g.failed += 1;
                *g.errors.entry(format!("transport_{kind}")).or_default() += 1;
            }
        }
    }

    /// Counts a failure outside the measured requests (session start/end).
    pub fn side_error(&self, what: &str) {
        *self.lock().errors.entry(what.to_owned()).or_default() += 1;
    }

    pub fn progress(&self) -> Progress {
        let g = self.lock();
        Progress {
            ok: g.ok,
            failed: g.failed,
            events: g.events,
        }
    }

    /// Fills the request-side fields of a report.
    pub fn fill(&self, r: &mut Report, elapsed: Duration) {
        let g = self.lock();
        let secs = elapsed.as_secs_f64().max(1e-9);
        r.duration_s = round3(secs);
        r.requests_ok = g.ok;
        r.requests_failed = g.failed;
        r.requests_per_s = round3(g.ok as f64 / secs);
        r.events_acknowledged = g.events;
        r.events_rejected = g.rejected;
        r.events_per_s = round3(g.events as f64 / secs);
        r.errors = g.errors.clone();
        let mut all = new_histogram();
        for (name, h) in &g.latency {
            // Same bounds everywhere, so adding cannot fail.
            let _ = all.add(h);
            if let Some(q) = Quantiles::from_micros(h) {
                r.endpoints.insert((*name).to_owned(), q);
            }
        }
        r.latency_ms = Quantiles::from_micros(&all);
    }
}

/// The result of one `achilles load` run; `--json` prints it.
#[derive(Debug, Default, Serialize)]
pub struct Report {
    /// `ingest`, `read` or `broker`.
    pub mode: &'static str,
    /// `closed` (N requests in flight, as fast as possible) or `open`
    /// (requests at scheduled times; latency counted from the schedule).
    pub schedule: &'static str,
    /// Open loop: the requested rate (events/s for ingest, requests/s for
    /// reads and for `--request-rate`).
    pub target_events_per_s: Option<f64>,
    pub target_requests_per_s: Option<f64>,
    pub concurrency: usize,
    pub batch_size: Option<usize>,
    /// From the start of the run until the last answer arrived.
    pub duration_s: f64,
    pub requests_ok: u64,
    pub requests_failed: u64,
    /// Open loop: requests never sent because the generator fell too far
    /// behind its schedule (the target rate was not sustainable).
    pub requests_missed: u64,
    pub requests_per_s: f64,
    /// Events in 2xx answers (`accepted` + `duplicates`), or records acked
    /// by the broker in broker mode.
    pub events_acknowledged: u64,
    pub events_rejected: u64,
    pub events_per_s: f64,
    /// Mean size of one event as sent (JSON), or of one Kafka record value
    /// (Avro envelope) in broker mode.
    pub event_bytes_avg: Option<f64>,
    /// All successful requests; open loop: measured from the scheduled time.
    pub latency_ms: Option<Quantiles>,
    /// The same per endpoint (reads: session, events).
    pub endpoints: BTreeMap<String, Quantiles>,
    /// Failures by HTTP status or `transport_*`, plus session start/end
    /// failures (`session_start_*`), which are not in `requests_failed`.
    pub errors: BTreeMap<String, u64>,
    pub sessions: usize,
    pub landing: Option<super::landing::LandingReport>,
    pub notes: Vec<String>,
}

impl Report {
    /// A human-readable summary on stderr (stdout is left for `--json`).
    pub fn print_text(&self) {
        let q = |q: &Option<Quantiles>| {
            q.as_ref().map_or_else(
                || "n/a".to_owned(),
                |q| {
                    format!(
                        "p50 {} ms, p95 {} ms, p99 {} ms, max {} ms",
                        q.p50, q.p95, q.p99, q.max
                    )
                },
            )
        };
        eprintln!(
            "{} ({} loop): {:.1} s, {} requests ok ({:.0}/s), {} failed, {} missed",
            self.mode,
            self.schedule,
            self.duration_s,
            self.requests_ok,
            self.requests_per_s,
            self.requests_failed,
            self.requests_missed
        );
        if self.mode != "read" {
            eprintln!(
                "  {} events acknowledged: {:.0} events/s (avg {:.0} B/event)",
                self.events_acknowledged,
                self.events_per_s,
                self.event_bytes_avg.unwrap_or(0.0)
            );
        }
        eprintln!("  latency: {}", q(&self.latency_ms));
        if self.endpoints.len() > 1 {
            for (name, e) in &self.endpoints {
                eprintln!("    {name}: {}", q(&Some(e.clone())));
            }
        }
        if !self.errors.is_empty() {
            eprintln!("  errors: {:?}", self.errors);
        }
        if let Some(l) = &self.landing {
            l.print_text();
        }
        for n in &self.notes {
            eprintln!("  note: {n}");
        }
    }
}
