//! The two ways of generating load.
//!
//! * **Closed loop** ([`closed_loop`]): N workers, each sends its next
//!   request as soon as the previous one answered. Finds the maximum
//!   throughput; its latencies are *not* meaningful under overload, because
//!   a slow server also slows the generator down (coordinated omission).
//! * **Open loop** ([`open_loop`]): request `i` is due at `start + i/rate`,
//!   whatever happened before. Latency is measured from that scheduled time,
//!   so time a request spent waiting to be sent (because earlier ones were
//!   slow and all connections were busy) counts against the server, as it
//!   would for a real client that cannot wait. This is the figure to quote.
//!
//! Jobs receive a sequence number (unique within the run) and the instant
//! latency must be measured from; they record their own outcome.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::Semaphore;

/// How long an open-loop generator may lag behind its schedule before it
/// stops sending: beyond this the target rate is plainly not sustainable,
/// and the remaining requests are reported as missed.
const MAX_LAG: Duration = Duration::from_secs(5);

pub struct LoopResult {
    /// From the start until the last answer arrived.
    pub elapsed: Duration,
    /// Open loop: scheduled requests never sent (see [`MAX_LAG`]).
    pub missed: u64,
}

/// Runs `workers` sequential request loops until `duration` has passed.
/// Worker `w` gets sequence numbers `w, w + workers, w + 2*workers, ...`, so
/// `seq % workers` identifies the worker.
pub async fn closed_loop<F, Fut>(workers: usize, duration: Duration, job: Arc<F>) -> LoopResult
where
    F: Fn(u64, Instant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let start = Instant::now();
    let deadline = start + duration;
    let mut tasks = Vec::with_capacity(workers);
    for w in 0..workers as u64 {
        let job = job.clone();
        tasks.push(tokio::spawn(async move {
            let mut seq = w;
            while Instant::now() < deadline {
                job(seq, Instant::now()).await;
                seq += workers as u64;
            }
        }));
    }
    for t in tasks {
        // A panicked worker already printed its panic; the others' figures
        // are still worth reporting.
        let _ = t.await;
    }
    LoopResult {
        elapsed: start.elapsed(),
        missed: 0,
    }
}

/// Starts request `i` at `start + i/rate` for `duration`, with at most
/// `max_in_flight` requests outstanding.
pub async fn open_loop<F, Fut>(
    rate: f64,
    duration: Duration,
    max_in_flight: usize,
    job: Arc<F>,
) -> LoopResult
where
    F: Fn(u64, Instant) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let total = (duration.as_secs_f64() * rate).floor() as u64;
    let permits = Arc::new(Semaphore::new(max_in_flight));
    let start = Instant::now();
    let mut missed = 0;
    for i in 0..total {
        // Computed from the start each time, so rounding never drifts.
        let due = start + Duration::from_secs_f64(i as f64 / rate);
        tokio::time::sleep_until(due.into()).await;
        let give_up = due + MAX_LAG;
        let permit = tokio::select! {
            p = permits.clone().acquire_owned() => p,
            () = tokio::time::sleep_until(give_up.into()) => {
                missed = total - i;
                break;
            }
        };
        // The semaphore is never closed, so acquiring cannot fail.
        let Ok(permit) = permit else { break };
        let job = job.clone();
        tokio::spawn(async move {
            job(i, due).await;
            drop(permit);
        });
    }
    // Holding every permit means every request has finished.
    let _ = permits.acquire_many(max_in_flight as u32).await;
    LoopResult {
        elapsed: start.elapsed(),
        missed,
    }
}
