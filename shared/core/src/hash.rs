//! The canonical event hash: SHA-256 over an event's *semantic* content.
//!
//! It is the dedup key of the whole pipeline (`events.event_hash`), so its
//! definition is frozen by the test vectors below; changing it would make
//! replays of old data look new. Definition (version 1):
//!
//! ```text
//! sha256( "achilles-event-v1\n" || canonical_json(doc) )
//! doc = { "actor", "attributes", "data", "kind", "occurred_at",
//!         "parent_id" (omitted when absent), "session_id", "tenant" }
//! ```
//!
//! * `occurred_at` is UTC with exactly six fractional digits:
//!   `2026-11-21T12:00:00.000000Z`.
//! * `data` holds the kind-specific fields, with absent optional fields
//!   omitted (so `{"exit_code": null}` and `{}` hash alike).
//! * Canonical JSON: object keys sorted by their UTF-8 bytes at every depth,
//!   no insignificant whitespace, strings escaped as `serde_json` escapes
//!   them, numbers as `serde_json` prints them (integers in decimal, floats
//!   in shortest round-trip form).
//!
//! Not included: the event id (a client retrying with a fresh id is still
//! the same event), ingest time and anything else the pipeline adds. The
//! tenant *is* included, so two tenants can never collide on a hash.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::model::{Actor, EventId, Payload, SessionId, TenantId};

const DOMAIN: &[u8] = b"achilles-event-v1\n";

/// A SHA-256 event hash; shown and stored as 64 lower-case hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EventHash([u8; 32]);

impl EventHash {
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    pub fn parse_hex(s: &str) -> Result<Self, String> {
        let mut out = [0u8; 32];
        if s.len() != 64 || s.bytes().any(|b| b.is_ascii_uppercase()) {
            return Err(format!("event hash {s:?} is not 64 lower-case hex digits"));
        }
        hex::decode_to_slice(s, &mut out)
            .map_err(|_| format!("event hash {s:?} is not 64 lower-case hex digits"))?;
        Ok(Self(out))
    }
}

impl fmt::Display for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for EventHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "EventHash({})", self.to_hex())
    }
}

impl Serialize for EventHash {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_hex())
    }
}

/// Computes the version-1 hash. Callers normally get it from
/// [`crate::model::Event::hash`]; this is public for the documentation's
/// sake and for producers that want to precompute it.
pub fn event_hash(
    tenant: &TenantId,
    session_id: &SessionId,
    occurred_at: DateTime<Utc>,
    actor: Actor,
    parent_id: Option<&EventId>,
    payload: &Payload,
    attributes: &Map<String, Value>,
) -> EventHash {
    let mut doc = Map::new();
    doc.insert("actor".into(), actor.as_str().into());
    doc.insert("attributes".into(), Value::Object(attributes.clone()));
    doc.insert("data".into(), payload.data());
    doc.insert("kind".into(), payload.kind().as_str().into());
    doc.insert(
        "occurred_at".into(),
        occurred_at
            .to_rfc3339_opts(SecondsFormat::Micros, true)
            .into(),
    );
    if let Some(p) = parent_id {
        doc.insert("parent_id".into(), p.to_string().into());
    }
    doc.insert("session_id".into(), session_id.to_string().into());
    doc.insert("tenant".into(), tenant.as_str().into());

    let mut text = String::with_capacity(256);
    write_canonical(&Value::Object(doc), &mut text);
    let mut h = Sha256::new();
    h.update(DOMAIN);
    h.update(text.as_bytes());
    EventHash(h.finalize().into())
}

/// Canonical JSON. Sorting is done here explicitly rather than relying on
/// `serde_json::Map` being a `BTreeMap`, because any crate in the build can
/// switch on serde_json's `preserve_order` feature and silently change it.
pub fn write_canonical(v: &Value, out: &mut String) {
    match v {
        Value::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort_unstable_by(|a, b| a.as_bytes().cmp(b.as_bytes()));
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                write_canonical(&m[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_canonical(item, out);
            }
            out.push(']');
        }
        scalar => out.push_str(&scalar.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::submission::{from_json, Context, EventSubmission};
    use crate::model::Limits;
    use chrono::TimeZone;
    use serde_json::json;

    fn hash_of(v: Value) -> String {
        let tenant = TenantId::parse("acme").unwrap();
        let limits = Limits::default();
        let ctx = Context {
            tenant: &tenant,
            now: Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap(),
            limits: &limits,
            scrub: None,
        };
        let sub: EventSubmission = from_json(v).unwrap();
        sub.validate(ctx, None).unwrap().hash.to_hex()
    }

    const SID: &str = "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f";

    /// Frozen test vectors (the first was cross-checked with Python:
    /// `hashlib.sha256(b"achilles-event-v1\n" + json.dumps(doc,
    /// sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode())`). If one of these changes, the dedup key changed:
    /// that is a breaking change needing a new hash version, not a test fix.
    #[test]
    fn test_vectors() {
        let file_edit = json!({
            "session_id": SID, "occurred_at": "2026-11-21T11:59:00.5Z", "kind": "file_edit",
            "data": {"path": "src/lib.rs", "lines_added": 3, "lines_removed": 1}
        });
        let error = json!({
            "session_id": SID, "occurred_at": "2026-11-21T11:59:01Z", "kind": "error",
            "data": {"message": "cannot find value `x` in this scope", "file": "src/lib.rs", "line": 7},
            "attributes": {"z": 1, "a": {"y": [1, 2], "b": "é"}}
        });
        let llm = json!({
            "session_id": SID, "occurred_at": "2026-11-21T11:59:02.000001Z", "kind": "llm_call",
            "data": {"provider": "anthropic", "model": "claude", "input_tokens": 1200,
                     "output_tokens": 300, "cost_usd": 0.0105, "status": "ok"}
        });
        assert_eq!(
            hash_of(file_edit),
            "c11770be8902c07d0a9c02c2e463939d88e98d22790f806966850cd6c272a463"
        );
        assert_eq!(
            hash_of(error),
            "e50f58fbd0091d46d04160f7920eb8c883003dc1c8f716793ec1796044773e68"
        );
        assert_eq!(
            hash_of(llm),
            "fa6fd1ad95514ec525acf806fb46df3673550a4ad676511a210ca040518394c7"
        );
    }

    #[test]
    fn id_and_key_order_and_explicit_nulls_do_not_change_the_hash() {
        let a = hash_of(json!({
            "session_id": SID, "occurred_at": "2026-11-21T11:59:00Z", "kind": "command",
            "data": {"command": "cargo test", "exit_code": 101},
            "attributes": {"b": 1, "a": 2}
        }));
        let b = hash_of(json!({
            "id": "0190b3a2-0000-7000-8000-000000000001",
            "attributes": {"a": 2, "b": 1},
            "data": {"exit_code": 101, "command": "cargo test", "output": null},
            "kind": "command", "occurred_at": "2026-11-21T12:59:00+01:00", "session_id": SID
        }));
        assert_eq!(a, b);
    }

    #[test]
    fn semantic_changes_change_the_hash() {
        let base = json!({
            "session_id": SID, "occurred_at": "2026-11-21T11:59:00Z", "kind": "command",
            "data": {"command": "cargo test", "exit_code": 101}
        });
        let h0 = hash_of(base.clone());
        let mut other = base.clone();
        other["data"]["exit_code"] = json!(0);
        assert_ne!(h0, hash_of(other));
        let mut other = base.clone();
        other["occurred_at"] = json!("2026-11-21T11:59:00.000001Z");
        assert_ne!(h0, hash_of(other));
        let mut other = base;
        other["actor"] = json!("human");
        assert_ne!(h0, hash_of(other));
    }

    #[test]
    fn canonical_json_sorts_nested_keys() {
        let mut s = String::new();
        write_canonical(&json!({"b": [{"d": 1, "c": 2}], "a": "\u{1}"}), &mut s);
        assert_eq!(s, r#"{"a":"\u0001","b":[{"c":2,"d":1}]}"#);
    }

    #[test]
    fn hex_round_trip_and_rejects_upper_case() {
        let h = EventHash::from_bytes([0xab; 32]);
        assert_eq!(EventHash::parse_hex(&h.to_hex()).unwrap(), h);
        assert!(EventHash::parse_hex(&h.to_hex().to_uppercase()).is_err());
        assert!(EventHash::parse_hex("ab").is_err());
    }
}
