//! `achilles load`: the load generator behind `make bench`.
//!
//! Three modes:
//! * **ingest** (default): realistic coding-agent sessions (see [`gen`]) to
//!   `POST /v1/events/batch`, `--batch-size` events per request (default
//!   100), either as fast as possible with `--concurrency` requests in
//!   flight (closed loop) or at a fixed `--rate` events/s / `--request-rate`
//!   requests/s (open loop: latency counted from the scheduled send time, so
//!   coordinated omission cannot hide queueing; see [`schedule`]).
//!   `--landing` then measures in Postgres how fast the run's events landed
//!   and how fresh they were (see [`landing`]).
//! * **read** (`--read`): `GET /v1/sessions/{id}` and `.../events` on seeded
//!   sessions, open loop at `--request-rate` (or closed loop without it).
//! * **broker** (`--broker-limit`): the same records straight to Kafka with
//!   the services' producer settings, for the raw broker limit (see [`broker`]).
//!
//! Reports events/s acknowledged, latency p50/p95/p99 (HdrHistogram) and
//! errors by status, as text on stderr or as JSON on stdout (`--json`).

mod broker;
mod gen;
mod ingest;
mod landing;
mod prom;
mod read;
mod schedule;
mod stats;

use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::CliError;
use schedule::LoopResult;
use stats::{Recorder, Report};

#[derive(Args)]
pub struct LoadArgs {
    /// Requests in flight: closed-loop workers, or the open loop's upper
    /// bound on outstanding requests (and its number of session slots).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Events per `POST /v1/events/batch` (the API takes up to 1000).
    #[arg(long, default_value_t = 100)]
    pub batch_size: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 30.0)]
    pub duration: f64,
    /// Open loop at this many events/s (requests of --batch-size events).
    #[arg(long, conflicts_with = "request_rate")]
    pub rate: Option<f64>,
    /// Open loop at this many requests/s (ingest or read).
    #[arg(long)]
    pub request_rate: Option<f64>,
    /// Events per session before it is ended and a new one started.
    #[arg(long, default_value_t = 1_000)]
    pub session_events: u64,
    /// Event time between a session's events (jittered 0.2x-1.8x); sessions
    /// are back-dated so their last event is about now (see `gen`).
    #[arg(long, default_value_t = 2_000)]
    pub event_gap_ms: u64,
    /// Read endpoints instead of ingest.
    #[arg(long, conflicts_with = "broker_limit")]
    pub read: bool,
    /// Sessions seeded for --read (200 events each).
    #[arg(long, default_value_t = 20)]
    pub read_sessions: usize,
    /// Produce straight to Kafka (ACHILLES_KAFKA__BROKERS) instead of HTTP.
    #[arg(long)]
    pub broker_limit: bool,
    /// Bench-only topic for --broker-limit (after kafka.topic_prefix).
    #[arg(long, default_value = "achilles.bench.v1")]
    pub bench_topic: String,
    /// --broker-limit: records in flight.
    #[arg(long, default_value_t = 100_000)]
    pub broker_window: usize,
    /// --broker-limit: consumer groups reading the bench topic meanwhile
    /// (3: as many as read the events topic while the API writes it).
    #[arg(long, default_value_t = 3)]
    pub broker_readers: usize,
    /// --broker-limit: leave the bench topic (it is deleted by default).
    #[arg(long)]
    pub keep_topic: bool,
    /// After an ingest run, measure landing and freshness in Postgres
    /// (DATABASE_URL); waits up to --drain-timeout for the events to land.
    #[arg(long)]
    pub landing: bool,
    /// Seconds to wait after the run for its events to land (and be
    /// derived), or for --read's seeded sessions to become readable.
    #[arg(long, default_value_t = 180.0)]
    pub drain_timeout: f64,
    /// Before an ingest run, wait up to this many seconds for the raw sink
    /// and the processor to report zero consumer lag (0: do not wait).
    #[arg(long, default_value_t = 0.0)]
    pub settle_timeout: f64,
    /// Neither settle on nor drain for the processor (when it is known to be
    /// far behind, waiting for it would only stretch the run).
    #[arg(long)]
    pub skip_processor_wait: bool,
    /// With --landing: time derived rows (`sessions.event_count`) when the
    /// processor listens on --processor-metrics: `auto` or `off`.
    #[arg(long, default_value = "auto", value_parser = ["auto", "off"])]
    pub derived: String,
    /// Milliseconds between polls of `sessions.event_count`.
    #[arg(long, default_value_t = 20)]
    pub poll_ms: u64,
    /// The raw sink's metrics (lag, landed freshness histogram).
    #[arg(long, default_value = "http://127.0.0.1:9101/metrics")]
    pub sink_metrics: String,
    /// The processor's metrics; nothing listening there = no processor.
    #[arg(long, default_value = "http://127.0.0.1:9102/metrics")]
    pub processor_metrics: String,
    /// Print the report as JSON on stdout.
    #[arg(long)]
    pub json: bool,
    /// Seed of the event generator (runs are reproducible).
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
}

/// A bar over the run's duration (in ms); drawn on stderr, hidden when
/// stderr is not a terminal.
pub(crate) fn progress_bar(duration: Duration) -> ProgressBar {
    let bar = ProgressBar::new(duration.as_millis() as u64);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Runs `work` while a ticker keeps the progress bar current.
async fn with_progress<Fut>(
    duration: Duration,
    rec: &Recorder,
    events: bool,
    work: Fut,
) -> LoopResult
where
    Fut: std::future::Future<Output = LoopResult>,
{
    let bar = progress_bar(duration);
    let start = Instant::now();
    let work = std::pin::pin!(work);
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let mut work = work;
    let result = loop {
        tokio::select! {
            r = &mut work => break r,
            _ = tick.tick() => {
                let p = rec.progress();
                let secs = start.elapsed().as_secs_f64().max(1e-3);
                bar.set_position(start.elapsed().as_millis() as u64);
                bar.set_message(if events {
                    format!("{} events acked ({:.0}/s), {} failed requests", p.events, p.events as f64 / secs, p.failed)
                } else {
                    format!("{} requests ok ({:.0}/s), {} failed", p.ok, p.ok as f64 / secs, p.failed)
                });
            }
        }
    };
    bar.finish_and_clear();
    result
}

/// Open loop at `rate` requests/s, or closed loop with `concurrency` workers.
async fn drive<F, Fut>(
    a: &LoadArgs,
    rate: Option<f64>,
    rec: &Recorder,
    events: bool,
    job: Arc<F>,
) -> LoopResult
where
    F: Fn(u64, Instant) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let duration = Duration::from_secs_f64(a.duration);
    match rate {
        Some(r) => {
            with_progress(
                duration,
                rec,
                events,
                schedule::open_loop(r, duration, a.concurrency, job),
            )
            .await
        }
        None => {
            with_progress(
                duration,
                rec,
                events,
                schedule::closed_loop(a.concurrency, duration, job),
            )
            .await
        }
    }
}

pub async fn run(api_url: &str, api_key: &str, a: LoadArgs) -> Result<(), CliError> {
    if a.concurrency == 0 || !(1..=1_000).contains(&a.batch_size) || a.duration <= 0.0 {
        return Err(CliError::Input(
            "--concurrency must be > 0, --batch-size 1..=1000, --duration > 0".into(),
        ));
    }
    if let Some(r) = a.rate.or(a.request_rate).filter(|r| *r <= 0.0) {
        return Err(CliError::Input(format!("a rate must be positive, not {r}")));
    }
    let mut report = Report {
        concurrency: a.concurrency,
        ..Report::default()
    };
    if a.broker_limit {
        report.mode = "broker";
        report.schedule = "closed";
        let args = broker::BrokerArgs {
            topic: a.bench_topic.clone(),
            duration: Duration::from_secs_f64(a.duration),
            window: a.broker_window.max(1),
            keep_topic: a.keep_topic,
            seed: a.seed,
            readers: a.broker_readers,
        };
        broker::run(args, &mut report).await?;
    } else if a.read {
        report.mode = "read";
        report.schedule = if a.request_rate.is_some() {
            "open"
        } else {
            "closed"
        };
        report.target_requests_per_s = a.request_rate;
        let timeout = Duration::from_secs_f64(a.drain_timeout);
        let sessions =
            read::seed(api_url, api_key, a.read_sessions.max(1), a.seed, timeout).await?;
        report.sessions = sessions.len();
        let reader = Arc::new(read::Reader::new(api_url, api_key, sessions));
        let r = reader.clone();
        let job = Arc::new(move |seq: u64, at: Instant| r.clone().read(seq, at));
        let result = drive(&a, a.request_rate, &reader.rec, false, job).await;
        reader.rec.fill(&mut report, result.elapsed);
        report.requests_missed = result.missed;
    } else {
        run_ingest(api_url, api_key, &a, &mut report).await?;
    }
    if a.json {
        let text = serde_json::to_string_pretty(&report)
            .map_err(|e| CliError::Other(format!("cannot serialise the report: {e}")))?;
        println!("{text}");
    } else {
        report.print_text();
    }
    Ok(())
}

async fn run_ingest(
    api_url: &str,
    api_key: &str,
    a: &LoadArgs,
    report: &mut Report,
) -> Result<(), CliError> {
    let rate = a.rate.map(|r| r / a.batch_size as f64).or(a.request_rate);
    report.mode = "ingest";
    report.schedule = if rate.is_some() { "open" } else { "closed" };
    report.batch_size = Some(a.batch_size);
    report.target_requests_per_s = rate;
    report.target_events_per_s = rate.map(|r| r * a.batch_size as f64);
    let shape = ingest::Shape {
        slots: a.concurrency,
        batch_size: a.batch_size,
        session_events: a.session_events.max(a.batch_size as u64),
        event_gap_ms: a.event_gap_ms,
        seed: a.seed,
    };
    let ingest = Arc::new(ingest::Ingest::new(api_url, api_key, shape, rate.is_none()));
    if a.settle_timeout > 0.0 {
        let mut urls = vec![a.sink_metrics.as_str()];
        if !a.skip_processor_wait {
            urls.push(a.processor_metrics.as_str());
        }
        match prom::settle(&urls, Duration::from_secs_f64(a.settle_timeout)).await {
            Ok(waited) if waited > Duration::from_secs(1) => report.notes.push(format!(
                "waited {:.0} s for the consumers' lag to reach 0 before starting",
                waited.as_secs_f64()
            )),
            Ok(_) => {}
            Err(busy) => report.notes.push(format!(
                "started on a busy pipeline: after {} s still {busy}",
                a.settle_timeout
            )),
        }
    }
    let watch = if a.landing {
        let i = ingest.clone();
        let args = landing::LandingArgs {
            sink_metrics: a.sink_metrics.clone(),
            processor_metrics: a.processor_metrics.clone(),
            drain_timeout: Duration::from_secs_f64(a.drain_timeout),
            derived: a.derived == "auto",
            wait_processor: !a.skip_processor_wait,
            poll: Duration::from_millis(a.poll_ms.max(1)),
        };
        Some(landing::Watch::begin(args, Arc::new(move || i.sessions())).await?)
    } else {
        None
    };
    ingest.start_all().await?;
    let started = chrono::Utc::now();
    let i = ingest.clone();
    let job = Arc::new(move |seq: u64, at: Instant| i.clone().send_batch(seq, at));
    let result = drive(a, rate, &ingest.rec, true, job).await;
    let ended = chrono::Utc::now();
    ingest.end_all().await;
    ingest.rec.fill(report, result.elapsed);
    report.requests_missed = result.missed;
    report.event_bytes_avg = ingest.event_bytes_avg();
    let sessions = ingest.sessions();
    report.sessions = sessions.len();
    if let Some(w) = watch {
        eprintln!(
            "waiting up to {:.0} s for {} events to land...",
            a.drain_timeout, report.events_acknowledged
        );
        let l = w
            .finish(started, ended, &sessions, report.events_acknowledged)
            .await?;
        if l.landed_events < l.expected_events {
            report.notes.push(format!(
                "only {} of {} acknowledged events landed within {} s",
                l.landed_events, l.expected_events, a.drain_timeout
            ));
        }
        if l.processor_running && l.derived_caught_up_after_s.is_none() && !a.skip_processor_wait {
            report.notes.push(format!(
                "the processor had not applied all landed events within {} s: a backlog remains",
                a.drain_timeout
            ));
        }
        report.landing = Some(l);
    }
    Ok(())
}
