//! What the targets share: a fixed clock and context, and the round-trip
//! invariant. The window is the widest `Limits::check` allows, so the
//! fuzzer can reach valid timestamps far from the fixed "now".

#![allow(dead_code)] // each target uses its own part

use achilles_core::model::submission::{
    from_json, Context, EventSubmission, SessionEndSubmission, SessionStartSubmission,
};
use achilles_core::model::{Limits, TenantId, MAX_WINDOW_SECS};
use achilles_core::wire::intake::decode_intake;
use achilles_core::wire::{decode_envelope, encode_envelope, Envelope, Record};
use chrono::{DateTime, TimeZone, Utc};
use serde_json::Value;

pub fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

pub fn limits() -> Limits {
    Limits {
        max_age_secs: MAX_WINDOW_SECS,
        max_future_secs: MAX_WINDOW_SECS,
        ..Limits::default()
    }
}

pub fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// Every record `doc` validates into, read as each kind of submission.
pub fn validate_all(doc: &Value) -> Vec<Record> {
    let (t, l) = (tenant(), limits());
    let ctx = Context {
        tenant: &t,
        now: now(),
        limits: &l,
        scrub: None,
    };
    let mut out = Vec::new();
    if let Ok(s) = from_json::<EventSubmission>(doc.clone()) {
        if let Ok(e) = s.validate(ctx, None) {
            out.push(Record::Event(e));
        }
    }
    if let Ok(s) = from_json::<SessionStartSubmission>(doc.clone()) {
        if let Ok(r) = s.validate(ctx) {
            out.push(Record::SessionStart(r));
        }
    }
    if let Ok(s) = from_json::<SessionEndSubmission>(doc.clone()) {
        if let Ok(r) = s.validate(ctx) {
            out.push(Record::SessionEnd(r));
        }
    }
    out
}

/// Whatever validation accepted must encode, decode to the same record
/// (the same hash included), re-encode to the same bytes, and read the
/// same through the intake gate.
pub fn assert_round_trip(record: Record) {
    let env = Envelope {
        ingested_at: now(),
        record,
    };
    let bytes = encode_envelope(&env).expect("a valid record encodes");
    let back = decode_envelope(&bytes, &limits()).expect("an encoded record decodes");
    assert_eq!(back, env, "decode(encode(x)) == x");
    assert_eq!(
        encode_envelope(&back).expect("re-encodes"),
        bytes,
        "encoding is deterministic"
    );
    let via_intake = decode_intake(&bytes, &tenant(), now(), &limits()).expect("the gate reads it");
    assert_eq!(via_intake, env.record, "the gate reads the same record");
}
