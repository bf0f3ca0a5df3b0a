//! What the pipeline did with a run's events: landed rate and freshness.
//!
//! * **Landed**: every event row carries `ingested_at` (API acceptance, API
//!   clock) and `landed_at` (the raw sink's transaction, database clock; same
//!   machine, same clock). Their difference is exact per event. Since
//!   `landed_at` is the transaction's *start*, it under-states visibility by
//!   the sink's transaction time; the sink's own histogram
//!   (`achilles_freshness_seconds{stage="landed"}`, observed after commit)
//!   is reported beside it as a bucket-resolution cross-check.
//! * **Derived**: when the stream processor answers on its metrics address,
//!   `sessions.event_count` of the run's sessions is polled every
//!   `poll_ms`. Events of a session are processed in Kafka order, which is
//!   `ingested_at` order for one session's sequential batches, so the k-th
//!   event (by `ingested_at`) is derived once a poll sees `event_count >= k`;
//!   its delay is that poll's `statement_timestamp()` minus `ingested_at`,
//!   an upper bound off by at most one poll interval. Without a processor
//!   the figure is `null` with the reason, never a guess.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::PgPool;
use uuid::Uuid;

use achilles_core::config::Settings;
use achilles_core::db;

use super::prom::{self, BucketQuantiles, Buckets};
use super::stats::{new_histogram, round3, Quantiles};
use crate::client::CliError;

const METRIC: &str = "achilles_freshness_seconds";

pub struct LandingArgs {
    pub sink_metrics: String,
    pub processor_metrics: String,
    pub drain_timeout: Duration,
    /// Poll `sessions.event_count` for derived freshness (if a processor runs).
    pub derived: bool,
    /// Wait (within the drain timeout) for the processor to apply the run.
    pub wait_processor: bool,
    pub poll: Duration,
}

#[derive(Debug, Serialize)]
pub struct LandingReport {
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    /// Events the API acknowledged in the run.
    pub expected_events: u64,
    /// Of those, rows found in `events` when measuring.
    pub landed_events: u64,
    pub landed_in_window: u64,
    /// Rows with `landed_at` inside the run's window, per second of it.
    pub landed_events_per_s: f64,
    /// How long after the run's end the last event landed (`None`: not all
    /// landed within the drain timeout).
    pub drained_after_s: Option<f64>,
    pub freshness_landed_ms: Option<Quantiles>,
    /// The raw sink's histogram over the same run (bucket upper bounds).
    pub freshness_landed_metric_ms: Option<BucketQuantiles>,
    pub processor_running: bool,
    pub freshness_derived_ms: Option<Quantiles>,
    pub freshness_derived_metric_ms: Option<BucketQuantiles>,
    /// How long after the run's end the processor had applied every landed
    /// event of it (`None`: no processor, or not within the drain timeout).
    pub derived_caught_up_after_s: Option<f64>,
    /// The run's events over the time from its start until the processor
    /// had applied them all: the processor's sustained rate when it lags.
    pub derived_events_per_s: Option<f64>,
    /// Why `freshness_derived_ms` is null, or caveats about it.
    pub derived_note: Option<String>,
    pub poll_interval_ms: Option<u64>,
}

/// (event_count, when seen) per session, only when the count grew.
type Observations = HashMap<Uuid, Vec<(i64, DateTime<Utc>)>>;
type SessionList = Arc<dyn Fn() -> Vec<Uuid> + Send + Sync>;

/// Set up before the run, finished after it.
pub struct Watch {
    args: LandingArgs,
    pool: PgPool,
    sink_before: Option<Buckets>,
    proc_before: Option<Buckets>,
    processor: bool,
    poller: Option<(tokio::task::JoinHandle<Observations>, Arc<AtomicBool>)>,
}

async fn poll_loop(
    pool: PgPool,
    sessions: SessionList,
    every: Duration,
    stop: Arc<AtomicBool>,
) -> Observations {
    let mut seen: Observations = HashMap::new();
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        let ids = sessions();
        // statement_timestamp(): the snapshot this SELECT reads was taken
        // then, so rows it sees were visible at that instant.
        let rows: Result<Vec<(Uuid, i64, DateTime<Utc>)>, _> = sqlx::query_as(
            "SELECT id, event_count, statement_timestamp() FROM sessions WHERE id = ANY($1) AND event_count > 0",
        )
        .bind(&ids)
        .fetch_all(&pool)
        .await;
        for (id, count, at) in rows.into_iter().flatten() {
            let obs = seen.entry(id).or_default();
            if obs.last().is_none_or(|(c, _)| count > *c) {
                obs.push((count, at));
            }
        }
    }
    seen
}

impl Watch {
    pub async fn begin(args: LandingArgs, sessions: SessionList) -> Result<Self, CliError> {
        let settings = Settings::load().map_err(|e| CliError::Input(e.to_string()))?;
        let pool =
            db::connect_lazy(&settings.database).map_err(|e| CliError::Input(e.to_string()))?;
        if !db::reachable(&pool).await {
            return Err(CliError::Other(
                "--landing needs Postgres (DATABASE_URL), which does not answer".into(),
            ));
        }
        let label = |s: &str| format!("stage=\"{s}\"");
        let sink_before = prom::scrape(&args.sink_metrics, METRIC, &label("landed")).await;
        let processor = prom::listening(&args.processor_metrics).await;
        let proc_before = if processor {
            prom::scrape(&args.processor_metrics, METRIC, &label("derived")).await
        } else {
            None
        };
        let poller = (processor && args.derived).then(|| {
            let stop = Arc::new(AtomicBool::new(false));
            let task = tokio::spawn(poll_loop(pool.clone(), sessions, args.poll, stop.clone()));
            (task, stop)
        });
        Ok(Self {
            args,
            pool,
            sink_before,
            proc_before,
            processor,
            poller,
        })
    }

    async fn count(&self, sql: &str, ids: &[Uuid]) -> i64 {
        sqlx::query_scalar::<_, Option<i64>>(sql)
            .bind(ids)
            .fetch_one(&self.pool)
            .await
            .ok()
            .flatten()
            .unwrap_or(0)
    }

    /// Waits for the run's events to land (and be derived), then measures
    /// over the run's window `start..end`.
    pub async fn finish(
        mut self,
        start: DateTime<Utc>,
        end: DateTime<Utc>,
        ids: &[Uuid],
        expected: u64,
    ) -> Result<LandingReport, CliError> {
        let deadline = Instant::now() + self.args.drain_timeout;
        // Watch the sink's own count of landed events (its freshness
        // histogram) first, and count rows in Postgres only once it says
        // they are there: counting the run's rows every half second cost
        // Postgres 0.5 s per poll on a large run, competing with the very
        // pipeline being measured.
        if let Some(before) = &self.sink_before {
            let label = "stage=\"landed\"";
            while Instant::now() < deadline {
                let now = prom::scrape(&self.args.sink_metrics, METRIC, label).await;
                if now.is_some_and(|n| n.total() - before.total() >= expected as f64) {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
        let events_sql = "SELECT count(*) FROM events WHERE session_id = ANY($1)";
        let mut landed = 0;
        while Instant::now() < deadline {
            landed = self.count(events_sql, ids).await;
            if landed as u64 >= expected {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        // With a processor running, wait for it too (polled or not): a
        // backlog left behind would distort the next measurement.
        let mut caught_up = None;
        if self.processor && self.args.wait_processor {
            let derived_sql = "SELECT sum(event_count)::bigint FROM sessions WHERE id = ANY($1)";
            while Instant::now() < deadline {
                if self.count(derived_sql, ids).await >= landed {
                    caught_up = Some(Utc::now());
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        let mut derived_note = None;
        let observed = match self.poller.take() {
            Some((task, stop)) => {
                stop.store(true, Ordering::Relaxed);
                // A panicked poller leaves no observations: reported below.
                Some(task.await.unwrap_or_default())
            }
            None => {
                derived_note = Some(if self.processor {
                    "derived freshness not polled for this run (--derived off)".to_owned()
                } else {
                    format!(
                        "achilles-processor is not running (nothing listens on {}): no derived rows to time",
                        self.args.processor_metrics
                    )
                });
                None
            }
        };
        let measured_at = Utc::now();

        let (in_window, last_landed): (Option<i64>, Option<DateTime<Utc>>) = sqlx::query_as(
            "SELECT count(*) FILTER (WHERE landed_at >= $2 AND landed_at < $3), max(landed_at)
             FROM events WHERE session_id = ANY($1)",
        )
        .bind(ids)
        .bind(start)
        .bind(end)
        .fetch_one(&self.pool)
        .await
        .map_err(|e| CliError::Other(format!("cannot measure landing: {e}")))?;

        let mut landed_h = new_histogram();
        let mut derived_h = new_histogram();
        let mut not_derived = 0u64;
        let by_session = if observed.is_some() {
            " ORDER BY session_id, ingested_at"
        } else {
            ""
        };
        let sql = format!(
            "SELECT session_id, ingested_at, landed_at FROM events WHERE session_id = ANY($1){by_session}"
        );
        let mut rows = sqlx::query_as::<_, (Uuid, DateTime<Utc>, DateTime<Utc>)>(&sql)
            .bind(ids)
            .fetch(&self.pool);
        let (mut current, mut k, mut next_obs) = (None, 0i64, 0usize);
        let us = |d: chrono::Duration| d.num_microseconds().unwrap_or(i64::MAX).max(1) as u64;
        while let Some((session, ingested, landed_at)) = rows
            .try_next()
            .await
            .map_err(|e| CliError::Other(format!("cannot read landed events: {e}")))?
        {
            landed_h.saturating_record(us(landed_at - ingested));
            let Some(obs) = &observed else { continue };
            if current != Some(session) {
                (current, k, next_obs) = (Some(session), 0, 0);
            }
            k += 1;
            let seen = obs.get(&session).map_or(&[][..], Vec::as_slice);
            while next_obs < seen.len() && seen[next_obs].0 < k {
                next_obs += 1;
            }
            match seen.get(next_obs) {
                Some((_, at)) => derived_h.saturating_record(us(*at - ingested)),
                None => {
                    // Never seen derived: count it at the end of watching,
                    // a lower bound, rather than leave it out.
                    not_derived += 1;
                    derived_h.saturating_record(us(measured_at - ingested));
                }
            }
        }
        drop(rows);

        let label = |s: &str| format!("stage=\"{s}\"");
        let metric_since = |before: &Option<Buckets>, after: Option<Buckets>| {
            after.and_then(|a| a.since(&before.clone().unwrap_or_default()).quantiles())
        };
        let sink_after = prom::scrape(&self.args.sink_metrics, METRIC, &label("landed")).await;
        let proc_after = if self.processor {
            prom::scrape(&self.args.processor_metrics, METRIC, &label("derived")).await
        } else {
            None
        };
        let mut freshness_derived_ms = None;
        if observed.is_some() {
            if derived_h.is_empty() {
                derived_note = Some("no event of the run landed, so none could be derived".into());
            } else if not_derived == derived_h.len() {
                derived_note = Some(if self.args.wait_processor {
                    format!(
                        "the processor runs but had applied none of the run's events {:.0} s after it ended (drain timeout)",
                        (measured_at - end).num_seconds()
                    )
                } else {
                    format!(
                        "the processor was behind on earlier events (not waited for) and had applied none of this run's {:.0} s after it ended",
                        (measured_at - end).num_seconds()
                    )
                });
            } else {
                if not_derived > 0 {
                    derived_note = Some(format!(
                        "{not_derived} events were not derived within the drain timeout; counted with their delay until then (a lower bound)"
                    ));
                }
                freshness_derived_ms = Quantiles::from_micros(&derived_h);
            }
        }
        let window = (end - start).num_microseconds().unwrap_or(1).max(1) as f64 / 1e6;
        let in_window = in_window.unwrap_or(0) as u64;
        Ok(LandingReport {
            window_start: start,
            window_end: end,
            expected_events: expected,
            landed_events: landed_h.len(),
            landed_in_window: in_window,
            landed_events_per_s: round3(in_window as f64 / window),
            drained_after_s: (landed_h.len() >= expected)
                .then(|| last_landed.map(|l| round3((l - end).num_milliseconds() as f64 / 1e3)))
                .flatten(),
            freshness_landed_ms: Quantiles::from_micros(&landed_h),
            freshness_landed_metric_ms: metric_since(&self.sink_before, sink_after),
            processor_running: self.processor,
            freshness_derived_ms,
            freshness_derived_metric_ms: metric_since(&self.proc_before, proc_after),
            derived_caught_up_after_s: caught_up
                .map(|t| round3((t - end).num_milliseconds() as f64 / 1e3)),
            derived_events_per_s: caught_up.map(|t| {
                round3(landed_h.len() as f64 * 1e3 / (t - start).num_milliseconds().max(1) as f64)
            }),
            derived_note,
            poll_interval_ms: observed
                .is_some()
                .then_some(self.args.poll.as_millis() as u64),
        })
    }
}

impl LandingReport {
    pub fn print_text(&self) {
        let q = |q: &Option<Quantiles>| {
            q.as_ref().map_or_else(
                || "n/a".to_owned(),
                |q| format!("p50 {} ms, p95 {} ms, p99 {} ms", q.p50, q.p95, q.p99),
            )
        };
        eprintln!(
            "  landed: {}/{} events, {:.0} events/s within the run, last one {} after it",
            self.landed_events,
            self.expected_events,
            self.landed_events_per_s,
            self.drained_after_s.map_or_else(
                || "not within the timeout".to_owned(),
                |s| format!("{s:.1} s")
            )
        );
        eprintln!("  freshness landed: {}", q(&self.freshness_landed_ms));
        eprintln!("  freshness derived: {}", q(&self.freshness_derived_ms));
        if let Some(n) = &self.derived_note {
            eprintln!("    ({n})");
        }
    }
}
