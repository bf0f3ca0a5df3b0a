//! Property tests of the invariants the fuzz targets check (fuzz/, and
//! docs/testing.md), run with every `make test`:
//!
//! * whatever validation accepts encodes, decodes to the same record (the
//!   same hash) and re-encodes to the same bytes, and the intake gate reads
//!   the same record from those bytes;
//! * validation and intake decoding never panic, whatever the input, and
//!   give the same answer twice.

use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, TimeZone, Utc};
use proptest::prelude::*;
use serde_json::{json, Map, Value};

use crate::error::MAX_SAFE_INTEGER;
use crate::model::submission::{
    from_json, Context, EventSubmission, SessionEndSubmission, SessionStartSubmission,
};
use crate::model::{Limits, TenantId};
use crate::wire::intake::decode_intake;
use crate::wire::{decode_envelope, encode_envelope, Envelope, Record};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// Text as producers send it: any Unicode (no NUL), escapes, emoji.
fn text(max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-zA-Z0-9 ./_:-]{1,40}",
        "\\PC{1,40}",
        "[\"\\\\\n\t/é€𝄞]{1,20}",
    ]
    .prop_map(move |s: String| {
        let mut s = s.replace('\0', "");
        if s.trim().is_empty() {
            s.push('x');
        }
        let mut end = s.len().min(max);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s
    })
}

fn count() -> impl Strategy<Value = u64> {
    prop_oneof![Just(0), Just(MAX_SAFE_INTEGER), 0..=MAX_SAFE_INTEGER]
}

/// An RFC 3339 time inside the accepted window, in any offset and with 0-9
/// fractional digits.
fn time() -> impl Strategy<Value = String> {
    (
        -7 * 24 * 3600i64 + 1..290i64,
        0u32..1_000_000_000,
        -14 * 60i32..=14 * 60,
        0usize..=9,
    )
        .prop_map(|(secs, nanos, offset_min, digits)| {
            let t = now() + Duration::seconds(secs) + Duration::nanoseconds(i64::from(nanos));
            let tz = FixedOffset::east_opt(offset_min * 60).unwrap();
            let base = t.with_timezone(&tz).format("%Y-%m-%dT%H:%M:%S").to_string();
            let frac = format!("{nanos:09}");
            let frac = if digits == 0 {
                String::new()
            } else {
                format!(".{}", &frac[..digits])
            };
            let off = t.with_timezone(&tz).format("%:z").to_string();
            format!("{base}{frac}{off}")
        })
}

fn json_leaf() -> impl Strategy<Value = Value> {
    prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        text(30).prop_map(Value::from),
    ]
}

fn attributes() -> impl Strategy<Value = Value> {
    let value = json_leaf().prop_recursive(3, 16, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            prop::collection::btree_map(text(10), inner, 0..4)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    });
    prop::collection::btree_map(text(12), value, 0..6)
        .prop_map(|m| Value::Object(m.into_iter().collect::<Map<_, _>>()))
}

fn call_status() -> impl Strategy<Value = &'static str> {
    prop::sample::select(vec!["ok", "error", "timeout", "cancelled"])
}

/// `data` for a random kind, every field within its limits.
fn payload() -> impl Strategy<Value = (&'static str, Value)> {
    prop_oneof![
        (text(200), any::<u32>(), any::<u32>(), prop::option::of(prop::sample::select(vec!["create", "modify", "delete", "rename"])))
            .prop_map(|(p, a, r, op)| ("file_edit", json!({"path": p, "lines_added": a, "lines_removed": r, "operation": op}))),
        (text(200), prop::option::of(any::<i32>()), prop::option::of(count()), prop::option::of(text(200)))
            .prop_map(|(c, e, d, o)| ("command", json!({"command": c, "exit_code": e, "duration_ms": d, "output": o}))),
        (text(50), any::<u32>(), any::<u32>(), any::<u32>(), prop::option::of(count()))
            .prop_map(|(f, p, x, s, d)| ("test_run", json!({"framework": f, "passed": p, "failed": x, "skipped": s, "duration_ms": d}))),
        (text(200), prop::option::of(text(50)), prop::option::of(text(200)), prop::option::of(any::<u32>()))
            .prop_map(|(m, t, f, l)| ("error", json!({"message": m, "error_type": t, "file": f, "line": l}))),
        (text(50), count(), count(), prop::option::of(0.0f64..=1_000_000.0), call_status())
            .prop_map(|(m, i, o, c, s)| ("llm_call", json!({"provider": "p", "model": m, "input_tokens": i, "output_tokens": o, "cost_usd": c, "status": s}))),
        (text(50), call_status(), prop::option::of(count()))
            .prop_map(|(t, s, d)| ("tool_call", json!({"tool": t, "status": s, "duration_ms": d}))),
        (text(50), prop::option::of(call_status()), prop::option::of(text(100)))
            .prop_map(|(a, s, d)| ("agent_action", json!({"action": a, "status": s, "detail": d}))),
        prop::option::of(text(300)).prop_map(|t| ("user_message", json!({"text": t}))),
    ]
}

fn valid_event() -> impl Strategy<Value = Value> {
    (
        payload(),
        time(),
        prop::option::of(prop::sample::select(vec!["agent", "human", "system"])),
        attributes(),
        any::<bool>(),
    )
        .prop_map(|((kind, data), t, actor, attrs, with_ids)| {
            let mut e = json!({"session_id": "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f",
                "occurred_at": t, "kind": kind, "data": data, "attributes": attrs});
            if let Some(a) = actor {
                e["actor"] = json!(a);
            }
            if with_ids {
                e["id"] = json!(uuid::Uuid::new_v4().to_string());
                e["parent_id"] = json!(uuid::Uuid::now_v7().to_string());
            }
            e
        })
}

fn ctx_limits() -> Limits {
    Limits::default()
}

fn round_trip(record: Record) -> Result<(), TestCaseError> {
    let env = Envelope {
        ingested_at: now(),
        record,
    };
    let bytes = encode_envelope(&env).map_err(|e| TestCaseError::fail(e.to_string()))?;
    let back = decode_envelope(&bytes, &ctx_limits())
        .map_err(|e| TestCaseError::fail(format!("decode: {e}")))?;
    prop_assert_eq!(&back, &env);
    prop_assert_eq!(encode_envelope(&back).unwrap(), bytes.clone());
    let gate = decode_intake(&bytes, &tenant(), now(), &ctx_limits())
        .map_err(|e| TestCaseError::fail(format!("intake: {e}")))?;
    prop_assert_eq!(gate, env.record);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn valid_events_round_trip_with_the_same_hash(doc in valid_event()) {
        let t = tenant();
        let l = ctx_limits();
        let ctx = Context { tenant: &t, now: now(), limits: &l, scrub: None };
        let sub: EventSubmission = from_json(doc.clone()).unwrap();
        let ev = sub.validate(ctx, None);
        prop_assert!(ev.is_ok(), "{doc}: {ev:?}");
        let ev = ev.unwrap();
        // The hash is of the normalised time: the record's own text form.
        prop_assert_eq!(
            ev.occurred_at.to_rfc3339_opts(SecondsFormat::Micros, true).len(),
            27
        );
        round_trip(Record::Event(ev))?;
    }

    #[test]
    fn session_records_round_trip(
        name in text(256), model in prop::option::of(text(256)), meta in attributes(),
        t in time(), status in prop::sample::select(vec!["completed", "failed", "aborted"]),
    ) {
        let tn = tenant();
        let l = ctx_limits();
        let ctx = Context { tenant: &tn, now: now(), limits: &l, scrub: None };
        let start: SessionStartSubmission = from_json(json!({"agent_name": name,
            "agent_model": model, "started_at": t, "metadata": meta})).unwrap();
        let start = start.validate(ctx);
        prop_assert!(start.is_ok(), "{start:?}");
        round_trip(Record::SessionStart(start.unwrap()))?;
        let end: SessionEndSubmission = from_json(json!({"session_id":
            "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f", "ended_at": t, "status": status})).unwrap();
        round_trip(Record::SessionEnd(end.validate(ctx).unwrap()))?;
    }

    /// Any JSON at all: validation answers (never panics), the same way
    /// twice, and what it accepts round-trips.
    #[test]
    fn arbitrary_json_never_panics(doc in attributes(), kind in prop::sample::select(vec![
        "file_edit", "command", "test_run", "error", "llm_call", "tool_call", "agent_action",
        "user_message", "x"]), t in time()) {
        let tn = tenant();
        let l = ctx_limits();
        let ctx = Context { tenant: &tn, now: now(), limits: &l, scrub: None };
        let ev = json!({"session_id": "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f",
            "occurred_at": t, "kind": kind, "data": doc});
        let a = from_json::<EventSubmission>(ev.clone()).and_then(|s| s.validate(ctx, None));
        let b = from_json::<EventSubmission>(ev).and_then(|s| s.validate(ctx, None));
        prop_assert_eq!(&a, &b);
        if let Ok(e) = a {
            round_trip(Record::Event(e))?;
        }
        for d in [doc.clone(), json!({"event": doc.clone()}), json!({"session_start": doc})] {
            let _ = decode_intake(d.to_string().as_bytes(), &tn, now(), &l);
        }
    }

    /// Arbitrary bytes, with and without the Avro single-object header.
    #[test]
    fn arbitrary_bytes_never_panic_the_decoders(bytes in prop::collection::vec(any::<u8>(), 0..256), avro in any::<bool>()) {
        let mut data = Vec::new();
        if avro {
            data.extend_from_slice(&[0xC3, 0x01]);
            data.extend_from_slice(&crate::wire::schemas::ENVELOPE.fingerprint);
        }
        data.extend_from_slice(&bytes);
        let l = ctx_limits();
        let _ = decode_intake(&data, &tenant(), now(), &l);
        if let Ok(env) = decode_envelope(&data, &l) {
            let again = decode_envelope(&encode_envelope(&env).unwrap(), &l).unwrap();
            prop_assert_eq!(again, env);
        }
    }
}

/// Found by `session_records_round_trip`: without serde_json's
/// `float_roundtrip`, this number parsed back one ulp off after crossing
/// Kafka as text, so the consumer computed a different event hash and
/// dead-lettered an acknowledged event.
#[test]
fn a_float_that_once_changed_after_crossing_kafka() {
    let t = tenant();
    let l = ctx_limits();
    let ctx = Context {
        tenant: &t,
        now: now(),
        limits: &l,
        scrub: None,
    };
    let sub: EventSubmission = from_json(json!({
        "session_id": "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f", "occurred_at": now().to_rfc3339(),
        "kind": "user_message", "attributes": {"x": 3.770175887100013e58}
    }))
    .unwrap();
    let ev = sub.validate(ctx, None).unwrap();
    let env = Envelope {
        ingested_at: now(),
        record: Record::Event(ev),
    };
    let back = decode_envelope(&encode_envelope(&env).unwrap(), &l).unwrap();
    assert_eq!(back, env);
}
