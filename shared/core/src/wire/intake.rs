//! Decoding what direct-to-Kafka producers write to the intake topic.
//!
//! Two encodings are accepted, told apart by the first bytes:
//! * Avro single-object encoded `Envelope` (`C3 01 ...`), the same schema as
//!   the events topic; its `tenant` and `ingested_at_us` are ignored;
//! * UTF-8 JSON with exactly one of `session_start`, `event`, `session_end`,
//!   in the shapes of the HTTP API (`schemas/intake.v1.schema.json`).
//!
//! Either way the content goes through the same validation as an HTTP body;
//! the tenant comes from the record's API key header, resolved by the caller.

use chrono::{DateTime, Utc};
use serde_json::Value;

use super::codec::{decode_rec, rec_to_record, DecodeError};
use super::Record;
use crate::model::submission::{
    from_json, Context, EventSubmission, SessionEndSubmission, SessionStartSubmission,
};
use crate::model::{Limits, TenantId};

/// Decodes and validates one intake record for `tenant` at time `now`,
/// without secret scrubbing (see [`decode_intake_in`]).
pub fn decode_intake(
    bytes: &[u8],
    tenant: &TenantId,
    now: DateTime<Utc>,
    limits: &Limits,
) -> Result<Record, DecodeError> {
    decode_intake_in(
        bytes,
        Context {
            tenant,
            now,
            limits,
            scrub: None,
        },
    )
}

/// Decodes and validates one intake record under `ctx`: the gate's entry,
/// whose context carries the process's scrubber.
pub fn decode_intake_in(bytes: &[u8], ctx: Context<'_>) -> Result<Record, DecodeError> {
    if bytes.first() == Some(&0xC3) {
        let rec = decode_rec(bytes)?;
        return rec_to_record(rec, ctx);
    }
    let doc: Value = serde_json::from_slice(bytes).map_err(|e| DecodeError::Json(e.to_string()))?;
    let Value::Object(map) = doc else {
        return Err(DecodeError::UnknownEncoding);
    };
    let mut entries = map.into_iter();
    let (Some((key, body)), None) = (entries.next(), entries.next()) else {
        return Err(DecodeError::Shape(
            "an intake record has exactly one of session_start, event, session_end".into(),
        ));
    };
    Ok(match key.as_str() {
        "session_start" => {
            Record::SessionStart(from_json::<SessionStartSubmission>(body)?.validate(ctx)?)
        }
        "event" => Record::Event(from_json::<EventSubmission>(body)?.validate(ctx, None)?),
        "session_end" => {
            Record::SessionEnd(from_json::<SessionEndSubmission>(body)?.validate(ctx)?)
        }
        other => {
            return Err(DecodeError::Shape(format!(
                "unknown intake record type {other:?}; expected session_start, event or session_end"
            )))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Classify;
    use crate::wire::{codec::encode_envelope, Envelope};
    use serde_json::json;

    fn tenant() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    const SID: &str = "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f";

    #[test]
    fn json_event_is_validated_with_the_header_tenant() {
        let now = Utc::now();
        let body = json!({"event": {"session_id": SID, "occurred_at": now.to_rfc3339(),
            "kind": "command", "data": {"command": "make", "exit_code": 2}}});
        let rec = decode_intake(
            body.to_string().as_bytes(),
            &tenant(),
            now,
            &Limits::default(),
        )
        .unwrap();
        assert_eq!(rec.tenant(), &tenant());
        assert_eq!(rec.type_name(), "event");
    }

    #[test]
    fn invalid_json_event_reports_the_field() {
        let body = json!({"event": {"session_id": SID, "kind": "command", "data": {}}});
        let err = decode_intake(
            body.to_string().as_bytes(),
            &tenant(),
            Utc::now(),
            &Limits::default(),
        )
        .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("occurred_at") && text.contains("missing field `command`"),
            "{text}"
        );
        assert_eq!(err.reason_code(), "missing_field");
    }

    #[test]
    fn garbage_and_wrong_shapes() {
        let l = Limits::default();
        let e = decode_intake(b"\x00\x01", &tenant(), Utc::now(), &l).unwrap_err();
        assert_eq!(e.reason_code(), "invalid_json");
        let e = decode_intake(b"[1]", &tenant(), Utc::now(), &l).unwrap_err();
        assert_eq!(e.reason_code(), "unknown_encoding");
        let e = decode_intake(br#"{"evnt": {}}"#, &tenant(), Utc::now(), &l).unwrap_err();
        assert!(e.to_string().contains("evnt"));
        let e = decode_intake(
            b"\xC3\x01\x00\x00\x00\x00\x00\x00\x00\x00\x02",
            &tenant(),
            Utc::now(),
            &l,
        )
        .unwrap_err();
        assert_eq!(e.reason_code(), "unknown_schema");
    }

    #[test]
    fn avro_envelope_takes_the_header_tenant() {
        let now = Utc::now();
        let other = TenantId::parse("someone-else").unwrap();
        let sub: SessionEndSubmission = from_json(json!({"session_id": SID})).unwrap();
        let ctx = Context {
            tenant: &other,
            now,
            limits: &Limits::default(),
            scrub: None,
        };
        let env = Envelope {
            ingested_at: now,
            record: Record::SessionEnd(sub.validate(ctx).unwrap()),
        };
        let bytes = encode_envelope(&env).unwrap();
        let rec = decode_intake(&bytes, &tenant(), now, &Limits::default()).unwrap();
        assert_eq!(rec.tenant(), &tenant(), "the credential's tenant wins");
    }
}
