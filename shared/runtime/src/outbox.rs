//! Publishes the transactional outbox: Kafka records (session-ended
//! notices, dead letters, insight transitions) committed together with the
//! rows they concern.
//!
//! Rows are claimed with `FOR UPDATE SKIP LOCKED`, published, and deleted
//! in the same transaction only once the broker acknowledged them, so a
//! crash or broker outage re-publishes rather than loses, and several
//! instances (of one service or of several sharing the table) never publish
//! a row twice while it is claimed. Consumers of these topics are idempotent.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use sqlx::PgPool;
use tokio::sync::{watch, Notify};

use achilles_core::db::outbox;

#[derive(Debug, thiserror::Error)]
pub enum OutboxError {
    #[error("postgres: {0}")]
    Db(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(String),
}

/// Publishes one chunk of pending records; returns how many.
pub async fn flush_once(pool: &PgPool, producer: &FutureProducer) -> Result<usize, OutboxError> {
    let mut tx = pool.begin().await?;
    let records = outbox::outbox_claim(&mut tx, 500).await?;
    if records.is_empty() {
        return Ok(0);
    }
    let mut pending = Vec::with_capacity(records.len());
    for r in &records {
        let mut headers = OwnedHeaders::new();
        for (k, v) in &r.headers {
            headers = headers.insert(Header {
                key: k,
                value: Some(v),
            });
        }
        let rec = FutureRecord::to(&r.topic)
            .key(&r.key)
            .payload(&r.payload)
            .headers(headers);
        match producer.send_result(rec) {
            Ok(d) => pending.push(d),
            Err((e, _)) => return Err(OutboxError::Kafka(e.to_string())),
        }
    }
    // Wait for every acknowledgement before deleting anything.
    for d in pending {
        match d.await {
            Ok(Ok(_)) => {}
            Ok(Err((e, _))) => return Err(OutboxError::Kafka(e.to_string())),
            Err(_) => return Err(OutboxError::Kafka("delivery cancelled".into())),
        }
    }
    let ids: Vec<i64> = records.iter().map(|r| r.id).collect();
    outbox::outbox_delete(&mut tx, &ids).await?;
    tx.commit().await?;
    Ok(records.len())
}

/// Drains the outbox whenever woken (after a batch announced something)
/// and every second, until `stop` turns true; then one last drain.
pub async fn run(
    pool: PgPool,
    producer: FutureProducer,
    wake: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        loop {
            match flush_once(&pool, &producer).await {
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
