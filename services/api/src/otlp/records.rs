//! OTLP requests flattened into records: each log record and span with its
//! resource, its session, its time and its ids, ready for the mapping.
//!
//! **Sessions.** A record belongs to the session named by `session.id`
//! (Claude Code puts it on every event) on the record or its resource, else
//! by `gen_ai.conversation.id`, else by its trace (`trace:<id>`): one trace
//! of an agent framework is one run. A session id that is a UUID is used as
//! is, so `achilles session show <Claude Code's session id>` works; any
//! other id is turned into a UUID deterministically, per tenant.
//!
//! **Ids.** A span's event id is derived from the tenant, trace and span id,
//! and its parent's likewise, so nesting survives as `parent_id` and a span
//! exported twice keeps its id. Log records get the id of their event hash,
//! and the span they were logged in as parent.

use chrono::{DateTime, Utc};
use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::trace::v1::status::StatusCode;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use achilles_core::model::{SessionId, TenantId};

use super::attrs::{str_of, to_json, to_map};
use super::mapping::{Signal, Source};

/// One record with what the handler needs beside the mapping.
pub struct Flat {
    pub source: Source,
    /// The session as the producer named it (`None`: no session found).
    pub session: Option<String>,
    pub resource: Map<String, Value>,
    /// A span's `exception` events: time and attributes.
    pub exceptions: Vec<(DateTime<Utc>, Map<String, Value>)>,
}

const SESSION_KEYS: &[&str] = &["session.id", "gen_ai.conversation.id"];

fn time(nanos: u64) -> Option<DateTime<Utc>> {
    (nanos > 0).then(|| {
        DateTime::from_timestamp(
            (nanos / 1_000_000_000) as i64,
            (nanos % 1_000_000_000) as u32,
        )
    })?
}

fn session_of(
    attrs: &Map<String, Value>,
    resource: &Map<String, Value>,
    trace: &[u8],
) -> Option<String> {
    str_of(attrs, SESSION_KEYS)
        .or_else(|| str_of(resource, SESSION_KEYS))
        .or_else(|| (!trace.is_empty()).then(|| format!("trace:{}", hex::encode(trace))))
}

/// The session id for a producer's session name (see the module docs).
pub fn session_id(tenant: &TenantId, raw: &str) -> SessionId {
    SessionId::parse(raw).unwrap_or_else(|_| {
        SessionId::from_uuid(derived(&["achilles-otlp-session", tenant.as_str(), raw]))
    })
}

/// The event id of a span.
pub fn span_event_id(tenant: &TenantId, trace: &[u8], span: &[u8]) -> Option<String> {
    (!span.is_empty()).then(|| {
        derived(&[
            "achilles-otlp-span",
            tenant.as_str(),
            &hex::encode(trace),
            &hex::encode(span),
        ])
        .hyphenated()
        .to_string()
    })
}

/// A version-8 UUID from the SHA-256 of `parts` (newline-separated).
fn derived(parts: &[&str]) -> Uuid {
    let digest = Sha256::digest(parts.join("\n").as_bytes());
    let mut b = [0u8; 16];
    b.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(b).into_uuid()
}

/// Log records, in request order.
pub fn logs(req: &ExportLogsServiceRequest, tenant: &TenantId, now: DateTime<Utc>) -> Vec<Flat> {
    let mut out = Vec::new();
    for rl in &req.resource_logs {
        let resource = rl
            .resource
            .as_ref()
            .map(|r| to_map(&r.attributes))
            .unwrap_or_default();
        for sl in &rl.scope_logs {
            for r in &sl.log_records {
                let attrs = to_map(&r.attributes);
                let body = r.body.as_ref().map(to_json);
                let body_str = body.as_ref().and_then(Value::as_str).map(str::to_owned);
                // Claude Code names an event in its body
                // (`claude_code.api_request`) and in `event.name` (without
                // the prefix): the prefixed spelling wins.
                let candidates = [
                    Some(r.event_name.clone()).filter(|n| !n.is_empty()),
                    str_of(&attrs, &["event.name"]),
                    body_str.filter(|b| b.len() <= 128 && !b.contains(char::is_whitespace)),
                ];
                let name = candidates
                    .iter()
                    .flatten()
                    .find(|n| n.starts_with("claude_code."))
                    .or_else(|| candidates.iter().flatten().next())
                    .cloned()
                    .unwrap_or_default();
                let mut otel = Map::new();
                otel.insert("otel.name".into(), json!(name));
                otel.insert("otel.signal".into(), json!("logs"));
                if !r.severity_text.is_empty() {
                    otel.insert("otel.severity".into(), json!(r.severity_text));
                }
                if !r.trace_id.is_empty() {
                    otel.insert("otel.trace_id".into(), json!(hex::encode(&r.trace_id)));
                }
                if !r.span_id.is_empty() {
                    otel.insert("otel.span_id".into(), json!(hex::encode(&r.span_id)));
                }
                let session = session_of(&attrs, &resource, &r.trace_id);
                out.push(Flat {
                    source: Source {
                        signal: Signal::Logs,
                        name,
                        at: time(r.time_unix_nano)
                            .or_else(|| time(r.observed_time_unix_nano))
                            .unwrap_or(now),
                        attrs,
                        body,
                        severity: r.severity_number,
                        failed: None,
                        status_message: None,
                        duration_ms: None,
                        id: None,
                        parent_id: span_event_id(tenant, &r.trace_id, &r.span_id),
                        otel,
                    },
                    session,
                    resource: resource.clone(),
                    exceptions: Vec::new(),
                });
            }
        }
    }
    out
}

/// Spans, in request order. A span's event time is its end (when its
/// outcome was known), like a log event's.
pub fn spans(req: &ExportTraceServiceRequest, tenant: &TenantId, now: DateTime<Utc>) -> Vec<Flat> {
    let mut out = Vec::new();
    for rs in &req.resource_spans {
        let resource = rs
            .resource
            .as_ref()
            .map(|r| to_map(&r.attributes))
            .unwrap_or_default();
        for ss in &rs.scope_spans {
            for sp in &ss.spans {
                let attrs = to_map(&sp.attributes);
                let start = time(sp.start_time_unix_nano);
                let end = time(sp.end_time_unix_nano);
                let duration_ms = (sp.end_time_unix_nano >= sp.start_time_unix_nano
                    && sp.start_time_unix_nano > 0)
                    .then(|| (sp.end_time_unix_nano - sp.start_time_unix_nano) / 1_000_000);
                let (failed, status_message) = match &sp.status {
                    Some(st) if st.code == StatusCode::Error as i32 => (
                        Some(true),
                        Some(st.message.clone()).filter(|m| !m.is_empty()),
                    ),
                    Some(st) if st.code == StatusCode::Ok as i32 => (Some(false), None),
                    _ => (None, None),
                };
                let mut otel = Map::new();
                otel.insert("otel.name".into(), json!(sp.name));
                otel.insert("otel.signal".into(), json!("traces"));
                otel.insert("otel.trace_id".into(), json!(hex::encode(&sp.trace_id)));
                otel.insert("otel.span_id".into(), json!(hex::encode(&sp.span_id)));
                if let Some(m) = &status_message {
                    otel.insert("otel.status_message".into(), json!(m));
                }
                let other_events: Vec<&str> = sp
                    .events
                    .iter()
                    .filter(|e| e.name != "exception")
                    .map(|e| e.name.as_str())
                    .collect();
                if !other_events.is_empty() {
                    otel.insert("otel.span_events".into(), json!(other_events));
                }
                let exceptions = sp
                    .events
                    .iter()
                    .filter(|e| e.name == "exception")
                    .map(|e| {
                        (
                            time(e.time_unix_nano).or(end).unwrap_or(now),
                            to_map(&e.attributes),
                        )
                    })
                    .collect();
                let session = session_of(&attrs, &resource, &sp.trace_id);
                out.push(Flat {
                    source: Source {
                        signal: Signal::Traces,
                        name: sp.name.clone(),
                        at: end.or(start).unwrap_or(now),
                        attrs,
                        body: None,
                        severity: 0,
                        failed,
                        status_message,
                        duration_ms,
                        id: span_event_id(tenant, &sp.trace_id, &sp.span_id),
                        parent_id: span_event_id(tenant, &sp.trace_id, &sp.parent_span_id),
                        otel,
                    },
                    session,
                    resource: resource.clone(),
                    exceptions,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_sessions_are_kept_and_others_derived_per_tenant() {
        let acme = TenantId::parse("acme").unwrap();
        let globex = TenantId::parse("globex").unwrap();
        let raw = "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f";
        assert_eq!(session_id(&acme, raw).to_string(), raw);
        let a = session_id(&acme, "conv-17");
        assert_eq!(a, session_id(&acme, "conv-17"), "deterministic");
        assert_ne!(a, session_id(&globex, "conv-17"), "per tenant");
        assert_eq!(a.as_uuid().get_version_num(), 8);
    }

    #[test]
    fn span_ids_are_derived_and_absent_without_a_span() {
        let t = TenantId::parse("acme").unwrap();
        let a = span_event_id(&t, &[1; 16], &[2; 8]).unwrap();
        assert_eq!(Some(a.clone()), span_event_id(&t, &[1; 16], &[2; 8]));
        assert_ne!(Some(a), span_event_id(&t, &[1; 16], &[3; 8]));
        assert_eq!(span_event_id(&t, &[1; 16], &[]), None);
    }

    #[test]
    fn session_comes_from_the_record_then_the_resource_then_the_trace() {
        let m = |k: &str, v: &str| {
            let mut m = Map::new();
            m.insert(k.into(), json!(v));
            m
        };
        let none = Map::new();
        assert_eq!(
            session_of(&m("session.id", "a"), &m("session.id", "b"), &[]).as_deref(),
            Some("a")
        );
        assert_eq!(
            session_of(&none, &m("gen_ai.conversation.id", "c"), &[9]).as_deref(),
            Some("c")
        );
        assert_eq!(
            session_of(&none, &none, &[0xab]).as_deref(),
            Some("trace:ab")
        );
        assert_eq!(session_of(&none, &none, &[]), None);
    }
}
