//! What can go wrong while handling a batch, and whether to retry it.

use achilles_core::error::{Classify, Disposition};
use achilles_core::publisher::PublishError;

#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    #[error("postgres: {0}")]
    Database(#[from] sqlx::Error),
    #[error("publishing: {0}")]
    Publish(#[from] PublishError),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    /// The batch depends on work another consumer has not finished yet
    /// (e.g. the raw sink has not landed every event of an ended session):
    /// retry later, like any transient failure.
    #[error("not ready: {0}")]
    NotReady(String),
    /// A record of ours could not be encoded (a bug, not bad input).
    #[error(transparent)]
    Encode(#[from] achilles_core::wire::codec::EncodeError),
}

impl Classify for HandlerError {
    /// Connection trouble is transient; a database *data* error (SQLSTATE
    /// class 22, data exception, or 23, integrity violation) means some
    /// record in the batch can never be stored as it is.
    fn disposition(&self) -> Disposition {
        match self {
            Self::Database(sqlx::Error::Database(e))
                if e.code()
                    .is_some_and(|c| c.starts_with("22") || c.starts_with("23")) =>
            {
                Disposition::DeadLetter
            }
            Self::Encode(_) => Disposition::DeadLetter,
            Self::Publish(e) => e.disposition(),
            _ => Disposition::Retry,
        }
    }

    fn reason_code(&self) -> &'static str {
        match self {
            Self::Database(_) if self.disposition() == Disposition::DeadLetter => {
                "database_rejected"
            }
            Self::Database(_) => "database_unavailable",
            Self::Publish(e) => e.reason_code(),
            Self::Kafka(_) => "kafka_error",
            Self::NotReady(_) => "not_ready",
            Self::Encode(_) => "unencodable",
        }
    }
}
