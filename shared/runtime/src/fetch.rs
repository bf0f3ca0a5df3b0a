//! Collecting a batch from a consumer, shared by both loops.
//!
//! The loop waits for the first record (or for shutdown), then takes every
//! record librdkafka already has in its queue, up to the batch size, without
//! waiting: a fixed linger would add its whole length to the freshness of a
//! lone record, while under load the batch fills by itself during the
//! previous batch's commit. An optional linger (`consumer.batch_linger_ms`)
//! still waits for more after the queue ran dry.

use std::time::{Duration, Instant};

use futures::FutureExt;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::message::OwnedMessage;
use rdkafka::Message;
use tokio::sync::watch;

use crate::context::ConsumerCtx;

/// How a batch is gathered.
#[derive(Clone, Copy, Debug)]
pub struct BatchShape {
    /// At most this many records per batch.
    pub max_records: usize,
    /// Extra wait for more records once the queue ran dry (zero: none).
    pub linger: Duration,
}

/// Waits for the first record (or `stop`), then gathers what is ready.
/// Empty only when asked to stop.
pub async fn next_batch(
    consumer: &StreamConsumer<ConsumerCtx>,
    shape: BatchShape,
    stop: &mut watch::Receiver<bool>,
) -> Vec<OwnedMessage> {
    next_batch_until(consumer, shape, stop, None).await
}

/// [`next_batch`], giving up waiting for the first record at `until`
/// (empty then): the exactly-once loop checkpoints while idle.
pub async fn next_batch_until(
    consumer: &StreamConsumer<ConsumerCtx>,
    shape: BatchShape,
    stop: &mut watch::Receiver<bool>,
    until: Option<Instant>,
) -> Vec<OwnedMessage> {
    let name = consumer.context().name;
    let mut batch = Vec::new();
    // The first record: wait for it, or for shutdown.
    while batch.is_empty() {
        let idle = async {
            match until {
                Some(t) => tokio::time::sleep_until(t.into()).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            biased;
            _ = async { stop.wait_for(|s| *s).await.map(|_| ()) } => return batch,
            _ = idle => return batch,
            r = consumer.recv() => match r {
                Ok(m) => batch.push(m.detach()),
                Err(e) => {
                    // Transport errors are reported here, but librdkafka
                    // reconnects by itself; nothing was consumed.
                    tracing::warn!(consumer = name, error = %e, "consumer error");
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
    let deadline = Instant::now() + shape.linger;
    while batch.len() < shape.max_records {
        // Whatever is already queued comes without waiting.
        match consumer.recv().now_or_never() {
            Some(Ok(m)) => {
                batch.push(m.detach());
                continue;
            }
            Some(Err(e)) => {
                tracing::warn!(consumer = name, error = %e, "consumer error");
                break;
            }
            None => {}
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match tokio::time::timeout(left, consumer.recv()).await {
            Ok(Ok(m)) => batch.push(m.detach()),
            Ok(Err(e)) => {
                tracing::warn!(consumer = name, error = %e, "consumer error");
                break;
            }
            Err(_) => break,
        }
    }
    batch
}

/// The next offset to read per (topic, partition) after `batch`.
pub fn next_offsets(batch: &[OwnedMessage]) -> Vec<(String, i32, i64)> {
    let mut next: Vec<(String, i32, i64)> = Vec::new();
    for m in batch {
        match next
            .iter_mut()
            .find(|(t, p, _)| *p == m.partition() && t == m.topic())
        {
            Some(e) => e.2 = e.2.max(m.offset() + 1),
            None => next.push((m.topic().to_owned(), m.partition(), m.offset() + 1)),
        }
    }
    next
}
