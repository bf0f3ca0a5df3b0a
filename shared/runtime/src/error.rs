//! What can go wrong in a consumer, and what happens next.
//!
//! Every error a loop sees implements [`Classify`]: `Retry` means "the
//! world is not ready" (Postgres or the broker unreachable, another
//! consumer behind) and the same batch is tried again after a back-off;
//! `DeadLetter` means "this record can never succeed" and the loops isolate
//! the record and park it on the dead-letter topic with the reason, so the
//! records behind it carry on.

use achilles_core::error::{Classify, Disposition};
use achilles_core::publisher::PublishError;
use achilles_core::wire::codec::EncodeError;

/// Is this database error about the data (it will fail the same way
/// forever) rather than about the connection?
///
/// SQLSTATE classes 22 (data exception: a value out of range, an index row
/// too large, invalid text) and 23 (integrity constraint violation) are the
/// data's fault; 54 (program limit exceeded, e.g. a row or index entry over
/// the size limit) too. Everything else (connection loss, shutdown,
/// serialization failures, deadlocks, lock timeouts) is transient.
pub fn is_data_error(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(d) => d
            .code()
            .is_some_and(|c| c.starts_with("22") || c.starts_with("23") || c.starts_with("54")),
        _ => false,
    }
}

/// An error of an at-least-once handler ([`crate::BatchHandler`]).
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Postgres failed (retryable unless the error is about the data).
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    /// The broker did not take a record in time (retryable).
    #[error("publishing: {0}")]
    Publish(#[from] PublishError),
    /// The Kafka client failed (retryable).
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The batch depends on work another consumer has not finished yet
    /// (e.g. the raw sink has not landed every event of an ended session):
    /// retry later, like any transient failure.
    #[error("not ready: {0}")]
    NotReady(String),
    /// A record of ours could not be encoded (a bug, not bad input).
    #[error(transparent)]
    Encode(#[from] EncodeError),
}

impl Classify for HandlerError {
    fn disposition(&self) -> Disposition {
        match self {
            Self::Database(e) if is_data_error(e) => Disposition::DeadLetter,
            Self::Encode(_) => Disposition::DeadLetter,
            Self::Publish(e) => e.disposition(),
            _ => Disposition::Retry,
        }
    }

    fn reason_code(&self) -> &'static str {
        match self {
            Self::Database(e) if is_data_error(e) => "database_rejected",
            Self::Database(_) => "database_unavailable",
            Self::Publish(e) => e.reason_code(),
            Self::Kafka(_) => "kafka_error",
            Self::NotReady(_) => "not_ready",
            Self::Encode(_) => "unencodable",
        }
    }
}

/// An error of the exactly-once step ([`crate::exactly_once`]).
#[derive(Debug, thiserror::Error)]
pub enum StepError {
    /// Postgres failed (retryable unless the error is about the data).
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    /// The Kafka client failed (retryable).
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// A record could not be encoded (dead-lettered).
    #[error(transparent)]
    Encode(#[from] EncodeError),
    /// Another instance wrote these partitions since this one did: their
    /// state in memory is stale, they are re-read from their checkpoint.
    #[error("partitions {0:?} were written by another instance meanwhile")]
    Moved(Vec<i32>),
}

impl Classify for StepError {
    fn disposition(&self) -> Disposition {
        match self {
            Self::Database(e) if is_data_error(e) => Disposition::DeadLetter,
            Self::Encode(_) => Disposition::DeadLetter,
            _ => Disposition::Retry,
        }
    }

    fn reason_code(&self) -> &'static str {
        match self {
            Self::Database(e) if is_data_error(e) => "database_rejected",
            Self::Database(_) => "database_unavailable",
            Self::Kafka(_) => "kafka_error",
            Self::Encode(_) => "unencodable",
            Self::Moved(_) => "partition_moved",
        }
    }
}
