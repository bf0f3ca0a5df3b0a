//! What crosses Kafka: typed records and their encodings.
//!
//! * [`Record`] is the domain view of one record on the events topic.
//! * [`codec`] encodes it as Avro single-object encoding (`C3 01`, the
//!   schema's CRC-64-AVRO fingerprint, then the datum) and decodes it again,
//!   resolving any known older writer schema, and *re-validating* the content
//!   with the same core validation the API uses.
//! * [`trusted`] decodes the events topic for consumers without validating
//!   again what the API or the intake gate validated before publishing.
//! * [`intake`] decodes what direct producers write (JSON or Avro).
//! * [`dead_letter`] builds dead-letter records and their headers.
//! * [`headers`] names every Kafka header the pipeline reads or writes.
//! * [`insight`] encodes the monitoring agent's insight transitions.

pub mod codec;
pub mod dead_letter;
pub mod headers;
pub mod insight;
pub mod intake;
pub mod records;
mod schemas;
pub mod session_ended;
pub mod trusted;

use chrono::{DateTime, Utc};

use crate::model::{Event, SessionEnd, SessionId, SessionStart, TenantId};

pub use codec::{decode_envelope, encode_envelope, DecodeError};
pub use trusted::decode_trusted;

/// One record on the events topic.
#[derive(Clone, Debug, PartialEq)]
pub enum Record {
    SessionStart(SessionStart),
    Event(Event),
    SessionEnd(SessionEnd),
}

impl Record {
    pub fn tenant(&self) -> &TenantId {
        match self {
            Self::SessionStart(s) => &s.tenant,
            Self::Event(e) => &e.tenant,
            Self::SessionEnd(s) => &s.tenant,
        }
    }

    pub fn session_id(&self) -> SessionId {
        match self {
            Self::SessionStart(s) => s.session_id,
            Self::Event(e) => e.session_id,
            Self::SessionEnd(s) => s.session_id,
        }
    }

    pub fn type_name(&self) -> &'static str {
        match self {
            Self::SessionStart(_) => "session_start",
            Self::Event(_) => "event",
            Self::SessionEnd(_) => "session_end",
        }
    }
}

/// A record with the pipeline's own metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// When the API (or the intake gate) accepted it: the start of the
    /// freshness clock.
    pub ingested_at: DateTime<Utc>,
    pub record: Record,
}

pub(crate) fn micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

pub(crate) fn from_micros(us: i64) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp_micros(us)
}

#[cfg(test)]
mod props;
