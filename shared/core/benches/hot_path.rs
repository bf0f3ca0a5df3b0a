//! Micro-benchmarks of the per-event hot path: what the API does for every
//! event it accepts (parse + validate + canonical hash) and what crosses
//! Kafka (Avro encode in the API, decode + re-validation in every consumer).
//!
//! Run with `cargo bench -p achilles-core` (or `--bench hot_path -- NAME`);
//! `bench/README.md` keeps the latest figures so regressions are visible.
//! The events are the realistic ones `achilles load` sends (300-800 B), and
//! one failed command whose output and attributes carry credentials, for
//! the cost of secret scrubbing (`*/scrub_only`, and
//! `*/parse_validate_scrub_hash` against `*/parse_validate_hash`; see
//! docs/scrubbing.md).

use std::hint::black_box;

use chrono::Utc;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use serde_json::Value;

use achilles_core::hash::event_hash;
use achilles_core::model::submission::{from_json, Context, EventSubmission};
use achilles_core::model::{Event, Limits, SessionId, TenantId};
use achilles_core::scrub::{Scrubber, Tally};
use achilles_core::wire::{decode_envelope, encode_envelope, Envelope, Record};

const SESSION: &str = "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f";

/// One small and one large event, in the shape agents send them.
fn samples() -> Vec<(&'static str, String)> {
    let at = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let attrs = r#""attributes":{"run_id":"r-1a2b3c4d","seq":42,"step":10,"host":"dev-laptop-07","cwd":"/home/dev/src/billing","agent_version":"1.4.2"}"#;
    vec![
        (
            "tool_call",
            format!(
                r#"{{"occurred_at":"{at}","kind":"tool_call","data":{{"tool":"read_file","status":"ok","duration_ms":12}},{attrs}}}"#
            ),
        ),
        (
            "command_failed",
            format!(
                r#"{{"occurred_at":"{at}","kind":"command","data":{{"command":"cargo build --release","exit_code":101,"duration_ms":8200,"output":"error[E0502]: cannot borrow `state` as mutable because it is also borrowed as immutable\n  --> services/api/src/state.rs:118:9\n   |\n118 |     let cfg = state.settings();\n   |               ----- immutable borrow occurs here\n119 |     state.reload()?;\n   |     ^^^^^^^^^^^^^^ mutable borrow occurs here\n\nerror: could not compile `achilles-api` (lib) due to 1 previous error"}},{attrs}}}"#
            ),
        ),
        (
            "command_with_secrets",
            format!(
                r#"{{"occurred_at":"{at}","kind":"command","data":{{"command":"git push https://deploy:ghp_R2D2c3po4Bb8Ee9Ff0Gg1Hh2Ii3Jj4Kk5Ll6M@github.com/acme/billing.git","exit_code":128,"duration_ms":900,"output":"remote: Invalid username or password.\nfatal: Authentication failed for 'https://github.com/acme/billing.git/'\nhint: export GITHUB_TOKEN=ghp_R2D2c3po4Bb8Ee9Ff0Gg1Hh2Ii3Jj4Kk5Ll6M or use DATABASE_URL=postgres://app:s3cr3t@db:5432/app"}},"attributes":{{"run_id":"r-1a2b3c4d","seq":42,"header":"Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U","cwd":"/home/dev/src/billing"}}}}"#
            ),
        ),
    ]
}

/// Scrubs every string of a JSON document (what validation scrubs: the
/// event's texts and attribute values), allocating only where it redacts.
fn scrub_strings(scrubber: &Scrubber, v: &Value, tally: &mut Tally) -> usize {
    match v {
        Value::String(s) => usize::from(scrubber.scrub_str("dev", s, tally).is_some()),
        Value::Array(a) => a.iter().map(|v| scrub_strings(scrubber, v, tally)).sum(),
        Value::Object(m) => m.values().map(|v| scrub_strings(scrubber, v, tally)).sum(),
        _ => 0,
    }
}

fn validate(json: &[u8], tenant: &TenantId, limits: &Limits, session: SessionId) -> Event {
    validate_with(json, tenant, limits, session, None)
}

fn validate_with(
    json: &[u8],
    tenant: &TenantId,
    limits: &Limits,
    session: SessionId,
    scrub: Option<&Scrubber>,
) -> Event {
    let value: Value = serde_json::from_slice(json).expect("sample is JSON");
    let ctx = Context {
        tenant,
        now: Utc::now(),
        limits,
        scrub,
    };
    from_json::<EventSubmission>(value)
        .and_then(|s| s.validate(ctx, Some(session)))
        .expect("sample is valid")
}

fn hot_path(c: &mut Criterion) {
    let tenant = TenantId::parse("dev").expect("valid tenant");
    let limits = Limits::default();
    let session = SessionId::parse(SESSION).expect("valid session id");

    for (name, json) in samples() {
        let bytes = json.as_bytes();
        let mut g = c.benchmark_group(name);
        g.throughput(Throughput::Bytes(bytes.len() as u64));

        // What the API does per event: JSON → submission → validated Event
        // (which computes the canonical SHA-256 hash).
        g.bench_function("parse_validate_hash", |b| {
            b.iter(|| validate(black_box(bytes), &tenant, &limits, session))
        });

        // The same with secret scrubbing, as the API and the gate run it.
        let scrubber = Scrubber::builtin();
        g.bench_function("parse_validate_scrub_hash", |b| {
            b.iter(|| validate_with(black_box(bytes), &tenant, &limits, session, Some(scrubber)))
        });
        // Scrubbing alone: every text and attribute value of the event.
        let doc: Value = serde_json::from_slice(bytes).expect("sample is JSON");
        let texts = Value::Array(vec![doc["data"].clone(), doc["attributes"].clone()]);
        g.bench_function("scrub_only", |b| {
            b.iter(|| scrub_strings(scrubber, black_box(&texts), &mut Tally::default()))
        });

        let event = validate(bytes, &tenant, &limits, session);
        g.bench_function("hash_only", |b| {
            b.iter(|| {
                event_hash(
                    black_box(&event.tenant),
                    &event.session_id,
                    event.occurred_at,
                    event.actor,
                    event.parent_id.as_ref(),
                    &event.payload,
                    &event.attributes,
                )
            })
        });

        let env = Envelope {
            ingested_at: Utc::now(),
            record: Record::Event(event),
        };
        g.bench_function("avro_encode", |b| {
            b.iter(|| encode_envelope(black_box(&env)).expect("encodes"))
        });

        // Consumers decode and re-validate (hash recomputed and compared).
        let encoded = encode_envelope(&env).expect("encodes");
        g.bench_function("avro_decode_validate", |b| {
            b.iter(|| decode_envelope(black_box(&encoded), &limits).expect("decodes"))
        });
        g.finish();
    }
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
