//! Codec tests: every kind round-trips through Avro, tampering is caught,
//! and every schema stays compatible with its published versions.

use super::*;
use crate::model::submission::from_json;
use apache_avro::schema_compatibility::SchemaCompatibility;
use apache_avro::Schema;
use chrono::{DateTime, Utc};
use serde_json::json;
use std::path::PathBuf;

const SID: &str = "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f";

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

fn now() -> DateTime<Utc> {
    crate::model::truncate_to_micros(Utc::now())
}

fn event(v: Value) -> Event {
    let t = tenant();
    let limits = Limits::default();
    let ctx = Context {
        tenant: &t,
        now: now(),
        limits: &limits,
        scrub: None,
    };
    from_json::<EventSubmission>(v)
        .unwrap()
        .validate(ctx, None)
        .unwrap()
}

fn samples() -> Vec<Value> {
    let at = now().to_rfc3339();
    let base = |kind: &str, data: Value| json!({"session_id": SID, "occurred_at": at, "kind": kind, "data": data});
    vec![
        base(
            "file_edit",
            json!({"path": "src/a.rs", "lines_added": 4, "operation": "modify"}),
        ),
        base(
            "command",
            json!({"command": "cargo build", "exit_code": 101, "duration_ms": 1200, "output": "error[E0425]"}),
        ),
        base("command", json!({"command": "sleep 100"})),
        base(
            "test_run",
            json!({"framework": "cargo", "passed": 10, "failed": 2, "skipped": 1}),
        ),
        base(
            "error",
            json!({"message": "boom", "stack_trace": "at x", "file": "src/a.rs", "line": 3}),
        ),
        base(
            "llm_call",
            json!({"provider": "openai", "model": "gpt-5", "input_tokens": 10, "output_tokens": 5, "cost_usd": 0.25, "status": "ok"}),
        ),
        base(
            "tool_call",
            json!({"tool": "grep", "status": "error", "error": "no such file"}),
        ),
        base("agent_action", json!({"action": "plan", "status": "ok"})),
        base("user_message", json!({})),
        json!({"session_id": SID, "occurred_at": at, "kind": "user_message", "actor": "system",
               "parent_id": "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e50", "attributes": {"run_id": "r1", "n": [1, 2.5]}}),
    ]
}

/// One envelope of every record type and event kind, as the API makes them.
pub(crate) fn sample_envelopes() -> Vec<Envelope> {
    let t = tenant();
    let limits = Limits::default();
    let ctx = Context {
        tenant: &t,
        now: now(),
        limits: &limits,
        scrub: None,
    };
    let start: SessionStartSubmission = from_json(json!({"id": SID, "agent_name": "claude-code",
        "agent_model": "opus", "source": "ide", "metadata": {"repo": "x", "cwd": "/w"}}))
    .unwrap();
    let end: SessionEndSubmission =
        from_json(json!({"session_id": SID, "status": "failed"})).unwrap();
    let mut records = vec![
        Record::SessionStart(start.validate(ctx).unwrap()),
        Record::SessionEnd(end.validate(ctx).unwrap()),
    ];
    records.extend(samples().into_iter().map(|v| Record::Event(event(v))));
    records
        .into_iter()
        .map(|record| Envelope {
            ingested_at: now(),
            record,
        })
        .collect()
}

#[test]
fn every_kind_round_trips() {
    for v in samples() {
        let ev = event(v);
        let env = Envelope {
            ingested_at: now(),
            record: Record::Event(ev),
        };
        let bytes = encode_envelope(&env).unwrap();
        assert_eq!(&bytes[..2], &MAGIC);
        let back = decode_envelope(&bytes, &Limits::default()).unwrap();
        assert_eq!(back, env);
    }
}

#[test]
fn session_records_round_trip() {
    let t = tenant();
    let limits = Limits::default();
    let ctx = Context {
        tenant: &t,
        now: now(),
        limits: &limits,
        scrub: None,
    };
    let start: SessionStartSubmission = from_json(json!({
        "id": SID, "agent_name": "claude-code", "agent_model": "opus", "source": "ide",
        "metadata": {"repo": "achilles"}
    }))
    .unwrap();
    let end: SessionEndSubmission =
        from_json(json!({"session_id": SID, "status": "failed"})).unwrap();
    for record in [
        Record::SessionStart(start.validate(ctx).unwrap()),
        Record::SessionEnd(end.validate(ctx).unwrap()),
    ] {
        let env = Envelope {
            ingested_at: now(),
            record,
        };
        assert_eq!(
            decode_envelope(&encode_envelope(&env).unwrap(), &limits).unwrap(),
            env
        );
    }
}

#[test]
fn tampered_content_is_caught_by_the_hash() {
    let ev = event(samples().remove(0));
    let env = Envelope {
        ingested_at: now(),
        record: Record::Event(ev),
    };
    let mut rec = to_rec(&env).unwrap();
    rec.event
        .as_mut()
        .unwrap()
        .file_edit
        .as_mut()
        .unwrap()
        .lines_added = 999;
    let bytes = encode_avro(&rec, &ENVELOPE.schema, &ENVELOPE.fingerprint).unwrap();
    let err = decode_envelope(&bytes, &Limits::default()).unwrap_err();
    assert_eq!(err.reason_code(), "hash_mismatch");
}

#[test]
fn wrong_branch_and_invalid_content_are_rejected() {
    let ev = event(samples().remove(0));
    let env = Envelope {
        ingested_at: now(),
        record: Record::Event(ev),
    };
    let mut rec = to_rec(&env).unwrap();
    rec.event.as_mut().unwrap().kind = "command".into();
    let bytes = encode_avro(&rec, &ENVELOPE.schema, &ENVELOPE.fingerprint).unwrap();
    assert_eq!(
        decode_envelope(&bytes, &Limits::default())
            .unwrap_err()
            .reason_code(),
        "invalid_envelope"
    );

    let mut rec = to_rec(&env).unwrap();
    rec.tenant = "Not A Tenant".into();
    let bytes = encode_avro(&rec, &ENVELOPE.schema, &ENVELOPE.fingerprint).unwrap();
    assert_eq!(
        decode_envelope(&bytes, &Limits::default())
            .unwrap_err()
            .reason_code(),
        "invalid_id"
    );

    let bytes = encode_envelope(&env).unwrap();
    assert_eq!(
        decode_envelope(&bytes[..bytes.len() / 2], &Limits::default())
            .unwrap_err()
            .reason_code(),
        "invalid_avro"
    );
}

fn schemas_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../schemas")
}

#[test]
fn every_avsc_parses() {
    let mut n = 0;
    for dir in [schemas_dir(), schemas_dir().join("compat")] {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "avsc") {
                let text = std::fs::read_to_string(&path).unwrap();
                Schema::parse_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
                n += 1;
            }
        }
    }
    assert!(n >= 4, "expected the current and compat schemas, found {n}");
}

/// Each current schema must be able to read data written with every
/// published version (backward) and be readable by them (forward), so
/// producers and consumers can be upgraded in any order.
#[test]
fn current_schemas_are_fully_compatible_with_published_versions() {
    let compat = schemas_dir().join("compat");
    let mut checked = 0;
    for entry in std::fs::read_dir(&compat).unwrap() {
        let old_path = entry.unwrap().path();
        let name = old_path.file_name().unwrap().to_string_lossy().into_owned();
        // compat/NAME.vMAJOR.MINOR.avsc belongs to NAME.vMAJOR.avsc
        let (stem, _) = name.rsplit_once(".avsc").unwrap();
        let (major, _minor) = stem.rsplit_once('.').unwrap();
        let current = schemas_dir().join(format!("{major}.avsc"));
        let old = Schema::parse_str(&std::fs::read_to_string(&old_path).unwrap()).unwrap();
        let new = Schema::parse_str(&std::fs::read_to_string(&current).unwrap())
            .unwrap_or_else(|e| panic!("{} has no current schema: {e}", name));
        SchemaCompatibility::mutual_read(&old, &new).unwrap_or_else(|e| {
            panic!("{} is not compatible with {}: {e}", current.display(), name)
        });
        checked += 1;
    }
    assert!(checked >= 2);
}

#[test]
fn the_compatibility_check_does_catch_breaking_changes() {
    let old = Schema::parse_str(super::super::schemas::ENVELOPE_V1).unwrap();
    let broken = super::super::schemas::ENVELOPE_V1.replacen(
        r#"{"name": "tenant", "type": "string""#,
        r#"{"name": "tenant_id", "type": "string""#,
        1,
    );
    assert_ne!(broken, super::super::schemas::ENVELOPE_V1);
    let new = Schema::parse_str(&broken).unwrap();
    assert!(SchemaCompatibility::mutual_read(&old, &new).is_err());
}
