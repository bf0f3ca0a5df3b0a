//! The insight record: one transition (raised, escalated, resolved) of an
//! insight of the monitoring agent, for alerting and webhooks. Avro
//! single-object encoding with `schemas/insight.v1.avsc`, like every other
//! Avro topic.

use std::sync::LazyLock;

use apache_avro::rabin::Rabin;
use apache_avro::Schema;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::codec::{encode_avro, DecodeError, EncodeError};
use crate::model::{SessionId, TenantId};

const INSIGHT_V1: &str = include_str!("../../../../schemas/insight.v1.avsc");

struct Known {
    schema: Schema,
    fingerprint: [u8; 8],
}

static INSIGHT: LazyLock<Known> = LazyLock::new(|| {
    // Compiled in and parsed by the round-trip test below, so a failure
    // here is a build defect, not a runtime state.
    let schema = Schema::parse_str(INSIGHT_V1).expect("embedded insight schema must parse");
    let fp = schema.fingerprint::<Rabin>();
    let mut fingerprint = [0u8; 8];
    fingerprint.copy_from_slice(&fp.bytes[..8]);
    Known {
        schema,
        fingerprint,
    }
});

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct InsightRec {
    id: String,
    tenant: String,
    session_id: String,
    insight_type: String,
    dedup_key: String,
    transition: String,
    status: String,
    severity: String,
    title: String,
    detail: String,
    evidence_json: String,
    raised_at_us: i64,
    last_seen_at_us: i64,
    resolved_at_us: Option<i64>,
    decided_at_us: i64,
}

/// What happened to the insight.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transition {
    /// First raised, or raised again after it had been resolved.
    Raised,
    /// Still open, with a higher severity than before.
    Escalated,
    /// The condition cleared.
    Resolved,
}

impl Transition {
    pub const ALL: [Transition; 3] = [Self::Raised, Self::Escalated, Self::Resolved];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Raised => "raised",
            Self::Escalated => "escalated",
            Self::Resolved => "resolved",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// One record of the insights topic.
#[derive(Clone, Debug, PartialEq)]
pub struct InsightRecord {
    pub id: Uuid,
    pub tenant: TenantId,
    pub session_id: SessionId,
    pub insight_type: String,
    pub dedup_key: String,
    pub transition: Transition,
    /// `open` or `resolved`, after the transition.
    pub status: String,
    /// `info`, `warning` or `critical`.
    pub severity: String,
    pub title: String,
    pub detail: String,
    pub evidence: serde_json::Value,
    pub raised_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub decided_at: DateTime<Utc>,
}

impl InsightRecord {
    pub fn encode(&self) -> Result<Vec<u8>, EncodeError> {
        let rec = InsightRec {
            id: self.id.to_string(),
            tenant: self.tenant.to_string(),
            session_id: self.session_id.to_string(),
            insight_type: self.insight_type.clone(),
            dedup_key: self.dedup_key.clone(),
            transition: self.transition.as_str().to_owned(),
            status: self.status.clone(),
            severity: self.severity.clone(),
            title: self.title.clone(),
            detail: self.detail.clone(),
            evidence_json: self.evidence.to_string(),
            raised_at_us: self.raised_at.timestamp_micros(),
            last_seen_at_us: self.last_seen_at.timestamp_micros(),
            resolved_at_us: self.resolved_at.map(|t| t.timestamp_micros()),
            decided_at_us: self.decided_at.timestamp_micros(),
        };
        encode_avro(&rec, &INSIGHT.schema, &INSIGHT.fingerprint)
    }

    pub fn decode(bytes: &[u8]) -> Result<Self, DecodeError> {
        if bytes.len() < 10 || bytes[..2] != [0xC3, 0x01] {
            return Err(DecodeError::UnknownEncoding);
        }
        if bytes[2..10] != INSIGHT.fingerprint {
            return Err(DecodeError::UnknownSchema(hex::encode(&bytes[2..10])));
        }
        let mut body = &bytes[10..];
        let v = apache_avro::from_avro_datum(&INSIGHT.schema, &mut body, None)
            .map_err(|e| DecodeError::Avro(e.to_string()))?;
        let r: InsightRec =
            apache_avro::from_value(&v).map_err(|e| DecodeError::Avro(e.to_string()))?;
        let bad = |what: &str| DecodeError::Shape(format!("insight: invalid {what}"));
        let at = |us: i64, what: &str| DateTime::from_timestamp_micros(us).ok_or_else(|| bad(what));
        Ok(Self {
            id: Uuid::try_parse(&r.id).map_err(|_| bad("id"))?,
            tenant: TenantId::parse(&r.tenant).map_err(|_| bad("tenant"))?,
            session_id: SessionId::parse(&r.session_id).map_err(|_| bad("session_id"))?,
            insight_type: r.insight_type,
            dedup_key: r.dedup_key,
            transition: Transition::parse(&r.transition).ok_or_else(|| bad("transition"))?,
            status: r.status,
            severity: r.severity,
            title: r.title,
            detail: r.detail,
            evidence: serde_json::from_str(&r.evidence_json).map_err(|_| bad("evidence_json"))?,
            raised_at: at(r.raised_at_us, "raised_at_us")?,
            last_seen_at: at(r.last_seen_at_us, "last_seen_at_us")?,
            resolved_at: r
                .resolved_at_us
                .map(|us| at(us, "resolved_at_us"))
                .transpose()?,
            decided_at: at(r.decided_at_us, "decided_at_us")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_open_and_resolved() {
        let now = crate::model::truncate_to_micros(Utc::now());
        let mut r = InsightRecord {
            id: Uuid::now_v7(),
            tenant: TenantId::parse("acme").unwrap(),
            session_id: SessionId::new_v7(),
            insight_type: "command_loop".into(),
            dedup_key: "cargo test".into(),
            transition: Transition::Raised,
            status: "open".into(),
            severity: "warning".into(),
            title: "`cargo test` failed 3 times".into(),
            detail: String::new(),
            evidence: serde_json::json!({"repeats": 3}),
            raised_at: now,
            last_seen_at: now,
            resolved_at: None,
            decided_at: now,
        };
        assert_eq!(InsightRecord::decode(&r.encode().unwrap()).unwrap(), r);
        r.transition = Transition::Resolved;
        r.status = "resolved".into();
        r.resolved_at = Some(now);
        assert_eq!(InsightRecord::decode(&r.encode().unwrap()).unwrap(), r);
        assert!(InsightRecord::decode(b"garbage").is_err());
    }
}
