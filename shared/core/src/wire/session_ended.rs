//! The session-ended record: the processor's signal that a session's
//! derived rows are complete, consumed by the monitoring agent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::codec::{encode_avro, DecodeError, EncodeError};
use super::schemas::SESSION_ENDED;
use crate::model::{SessionId, SessionStatus, TenantId};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct SessionEndedRec {
    tenant: String,
    session_id: String,
    status: String,
    ended_at_us: i64,
    processed_at_us: i64,
    event_count: i64,
    error_count: i64,
}

#[derive(Clone, Debug, PartialEq)]
pub struct SessionEnded {
    pub tenant: TenantId,
    pub session_id: SessionId,
    pub status: SessionStatus,
    pub ended_at: DateTime<Utc>,
    pub processed_at: DateTime<Utc>,
    /// Distinct events the processor applied: a consumer reading the
    /// `events` table can wait until the raw sink has landed as many.
    pub event_count: i64,
    pub error_count: i64,
}

impl SessionEnded {
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let rec = SessionEndedRec {
            tenant: self.tenant.to_string(),
            session_id: self.session_id.to_string(),
            status: self.status.as_str().to_owned(),
            ended_at_us: self.ended_at.timestamp_micros(),
            processed_at_us: self.processed_at.timestamp_micros(),
            event_count: self.event_count,
            error_count: self.error_count,
        };
        encode_avro(&rec, &SESSION_ENDED.schema, &SESSION_ENDED.fingerprint)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < 10 || bytes[..2] != [0xC3, 0x01] {
            return Err(DecodeError::UnknownEncoding);
        }
        if bytes[2..10] != SESSION_ENDED.fingerprint {
            return Err(DecodeError::UnknownSchema(hex::encode(&bytes[2..10])));
        }
        let mut body = &bytes[10..];
        let v = apache_avro::from_avro_datum(&SESSION_ENDED.schema, &mut body, None)
            .map_err(|e| DecodeError::Avro(e.to_string()))?;
        let r: SessionEndedRec =
            apache_avro::from_value(&v).map_err(|e| DecodeError::Avro(e.to_string()))?;
        let bad = |what: &str| DecodeError::Shape(format!("session-ended: invalid {what}"));
        Ok(Self {
            tenant: TenantId::parse(&r.tenant).map_err(|_| bad("tenant"))?,
            session_id: SessionId::parse(&r.session_id).map_err(|_| bad("session_id"))?,
            status: SessionStatus::parse(&r.status).ok_or_else(|| bad("status"))?,
            ended_at: DateTime::from_timestamp_micros(r.ended_at_us)
                .ok_or_else(|| bad("ended_at_us"))?,
            processed_at: DateTime::from_timestamp_micros(r.processed_at_us)
                .ok_or_else(|| bad("processed_at_us"))?,
            event_count: r.event_count,
            error_count: r.error_count,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let now = crate::model::truncate_to_micros(Utc::now());
        let r = SessionEnded {
            tenant: TenantId::parse("acme").unwrap(),
            session_id: SessionId::new_v7(),
            status: SessionStatus::Failed,
            ended_at: now,
            processed_at: now,
            event_count: 12,
            error_count: 3,
        };
        assert_eq!(SessionEnded::decode(&r.encode().unwrap()).unwrap(), r);
        assert!(SessionEnded::decode(b"garbage").is_err());
    }
}
