//! Publishes the transactional outbox: Kafka records (session-ended
//! notices, dead letters, insight transitions) committed together with the
//! rows they concern.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, published, and deleted
//! in the same transaction only once the broker acknowledged them, so a
//! crash or broker outage re-publishes rather than loses, and several
//! instances (of one service or of several sharing the table) never publish
//! a row twice while it is claimed. Consumers of these topics are idempotent.
//!
//! A record the broker refuses for good (too large, an invalid topic) would
//! block every record behind it: it is moved to the dead-letter topic
//! instead, with the reason. Retryable failures are counted on the row
//! (`attempts`, `last_error`) and retried.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio::sync::{watch, Notify};

use achilles_core::db::outbox::{self, OutboxRecord};
use achilles_core::metrics;
use achilles_core::wire::dead_letter::DeadLetter;

/// Why an outbox flush failed; the flush is tried again (records the broker
/// refuses for good were parked on the dead-letter topic already).
#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    /// Postgres failed.
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    /// Records the broker did not acknowledge (retryable).
    #[error("kafka: {0}")]
    Kafka(String),
}

/// Errors after which the same record will never be accepted.
fn is_permanent(e: &KafkaError) -> bool {
    matches!(
        e.rdkafka_error_code(),
        Some(
            RDKafkaErrorCode::MessageSizeTooLarge
                | RDKafkaErrorCode::InvalidMessageSize
                | RDKafkaErrorCode::InvalidMessage
                | RDKafkaErrorCode::InvalidRecord
                | RDKafkaErrorCode::InvalidTopic
                | RDKafkaErrorCode::TopicAuthorizationFailed
                | RDKafkaErrorCode::MessageBatchTooLarge
        )
    )
}

fn record<'a>(r: &'a OutboxRecord) -> FutureRecord<'a, str, [u8]> {
    let mut headers = OwnedHeaders::new();
    for (k, v) in &r.headers {
        headers = headers.insert(Header {
            key: k,
            value: Some(v),
        });
    }
    FutureRecord::to(&r.topic)
        .key(r.key.as_str())
        .payload(r.payload.as_slice())
        .headers(headers)
}

/// Publishes one chunk of pending records; returns how many were done
/// (published, or parked on the dead-letter topic because the broker
/// refuses them for good). A retryable failure leaves its record for the
/// next round and is returned as the error.
pub async fn flush_once(
    pool: &PgPool,
    producer: &FutureProducer,
    dead_letter_topic: &str,
) -> Result<usize, OutboxError> {
    let mut tx = pool.begin().await?;
    let records = outbox::outbox_claim(&mut tx, 500).await?;
    if records.is_empty() {
        return Ok(0);
    }
    let mut pending = Vec::with_capacity(records.len());
    for r in &records {
        pending.push(producer.send_result(record(r)));
    }
    let mut done = Vec::with_capacity(records.len());
    let mut failed: Vec<(i64, String)> = Vec::new();
    for (r, sent) in records.iter().zip(pending) {
        let outcome = match sent {
            Ok(delivery) => match delivery.await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err((e, _))) => Err(e),
                Err(_) => Err(KafkaError::Canceled),
            },
            Err((e, _)) => Err(e),
        };
        match outcome {
            Ok(()) => done.push(r.id),
            Err(e) if is_permanent(&e) && r.topic != dead_letter_topic => {
                metrics::OUTBOX_FAILURES
                    .with_label_values(&["permanent"])
                    .inc();
                match park(producer, r, dead_letter_topic, &e).await {
                    Ok(()) => done.push(r.id),
                    Err(e2) => failed.push((r.id, format!("{e}; parking it failed: {e2}"))),
                }
            }
            Err(e) => {
                metrics::OUTBOX_FAILURES
                    .with_label_values(&["retryable"])
                    .inc();
                failed.push((r.id, e.to_string()));
            }
        }
    }
    outbox::outbox_delete(&mut tx, &done).await?;
    outbox::outbox_failed(&mut tx, &failed).await?;
    tx.commit().await?;
    match failed.first() {
        Some((id, e)) => Err(OutboxError::Kafka(format!(
            "{} of {} records not published (first: #{id}: {e})",
            failed.len(),
            records.len()
        ))),
        None => Ok(done.len()),
    }
}

/// Moves a record the broker refuses for good to the dead-letter topic
/// (cut to fit, see `DeadLetter`), so it does not block the others.
async fn park(
    producer: &FutureProducer,
    r: &OutboxRecord,
    dead_letter_topic: &str,
    why: &KafkaError,
) -> Result<(), String> {
    let dl = DeadLetter {
        source_topic: &r.topic,
        source_partition: -1,
        source_offset: r.id,
        consumer_group: "outbox",
        reason_code: "publish_refused",
        reason: format!("the broker refused the record for good: {why}"),
        failed_at: Utc::now(),
        key: Some(r.key.as_bytes()),
        payload: &r.payload,
    };
    let value = dl.encode().map_err(|e| e.to_string())?;
    let mut headers = OwnedHeaders::new();
    for (k, v) in dl.headers() {
        headers = headers.insert(Header {
            key: k,
            value: Some(&v),
        });
    }
    let rec = FutureRecord::to(dead_letter_topic)
        .key(r.key.as_str())
        .payload(value.as_slice())
        .headers(headers);
    tracing::warn!(topic = %r.topic, id = r.id, error = %why, "outbox record refused by the broker; dead-lettering it");
    match producer.send(rec, Duration::from_secs(10)).await {
        Ok(_) => {
            metrics::DEAD_LETTERED
                .with_label_values(&["outbox", "publish_refused"])
                .inc();
            Ok(())
        }
        Err((e, _)) => Err(e.to_string()),
    }
}

/// Drains the outbox whenever woken (after a batch announced something)
/// and every second, until `stop` turns true; then one last drain.
pub async fn run(
    pool: PgPool,
    producer: FutureProducer,
    dead_letter_topic: String,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        loop {
            match flush_once(&pool, &producer, &dead_letter_topic).await {
                Ok(0) => break,
                Ok(_) => continue,
                Err(e) => {
                    tracing::warn!(error = %e, "outbox flush failed; will retry");
                    break;
                }
            }
        }
        let stopping = *stop.borrow();
        if stopping {
            break;
        }
        tokio::select! {
            _ = wake.notified() => {}
            _ = tokio::time::sleep(Duration::from_secs(1)) => {}
            _ = stop.changed() => {}
        }
    }
}
