//! Decoding the events topic without validating it a second time.
//!
//! Only the API and the intake gate write the events topic, and both
//! validate, hash and encode every record with this crate before they do.
//! Re-running validation and the hash in each consumer cost about a third
//! of every consumer's CPU (bench/README.md) and bought nothing: Kafka's
//! record-batch CRC already guards the bytes in transit. So consumers
//! decode straight into domain values and trust the hash the producer
//! wrote; what the types themselves demand (ids, enums, timestamps and
//! integers in range) is still checked, and anything malformed is a
//! [`DecodeError`], dead-lettered like any other. [`super::decode_envelope`]
//! (full validation) remains for records from outside: the intake topic.

use serde_json::{Map, Value};

use super::codec::{decode_rec, DecodeError};
use super::records::{EnvelopeRec, EventRec};
use super::{from_micros, Envelope, Record};
use crate::hash::EventHash;
use crate::model::{
    Actor, AgentAction, CallStatus, Command, ErrorEvent, Event, EventId, EventKind, FileEdit,
    LlmCall, Payload, SessionEnd, SessionId, SessionSource, SessionStart, SessionStatus, TenantId,
    TestRun, ToolCall, UserMessage,
};

fn shape(msg: impl Into<String>) -> DecodeError {
    DecodeError::Shape(msg.into())
}

fn time(field: &str, us: i64) -> Result<chrono::DateTime<chrono::Utc>, DecodeError> {
    from_micros(us).ok_or_else(|| shape(format!("{field}: {us} µs is out of range")))
}

fn object(field: &str, json: &str) -> Result<Map<String, Value>, DecodeError> {
    match serde_json::from_str(json) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(_) => Err(shape(format!("{field} is not a JSON object"))),
        Err(e) => Err(DecodeError::Json(format!("{field}: {e}"))),
    }
}

fn int<T: TryFrom<i64>>(field: &str, v: i64) -> Result<T, DecodeError> {
    T::try_from(v).map_err(|_| shape(format!("{field}: {v} is out of range")))
}

fn opt_int<T: TryFrom<i64>>(field: &str, v: Option<i64>) -> Result<Option<T>, DecodeError> {
    v.map(|v| int(field, v)).transpose()
}

fn status(field: &str, s: &str) -> Result<CallStatus, DecodeError> {
    CallStatus::parse(s).ok_or_else(|| shape(format!("{field}: unknown status {s:?}")))
}

/// Decodes a record of the events topic, trusting its content.
pub fn decode_trusted(bytes: &[u8]) -> Result<Envelope, DecodeError> {
    let rec: EnvelopeRec = decode_rec(bytes)?;
    let tenant = TenantId::parse(&rec.tenant).map_err(|m| shape(format!("tenant: {m}")))?;
    let session_id =
        SessionId::parse(&rec.session_id).map_err(|m| shape(format!("session_id: {m}")))?;
    let ingested_at = time("ingested_at_us", rec.ingested_at_us)?;
    let record = match (rec.session_start, rec.event, rec.session_end) {
        (Some(s), None, None) => Record::SessionStart(SessionStart {
            tenant,
            session_id,
            agent_name: s.agent_name,
            agent_model: s.agent_model,
            source: SessionSource::parse(&s.source)
                .ok_or_else(|| shape(format!("unknown source {:?}", s.source)))?,
            started_at: time("started_at_us", s.started_at_us)?,
            metadata: object("metadata_json", &s.metadata_json)?,
        }),
        (None, Some(e), None) => Record::Event(event(tenant, session_id, e)?),
        (None, None, Some(e)) => Record::SessionEnd(SessionEnd {
            tenant,
            session_id,
            ended_at: time("ended_at_us", e.ended_at_us)?,
            status: SessionStatus::parse(&e.status)
                .ok_or_else(|| shape(format!("unknown status {:?}", e.status)))?,
        }),
        _ => {
            return Err(shape(
                "exactly one of session_start, event, session_end must be set",
            ))
        }
    };
    Ok(Envelope {
        ingested_at,
        record,
    })
}

fn event(tenant: TenantId, session_id: SessionId, e: EventRec) -> Result<Event, DecodeError> {
    let kind = EventKind::parse(&e.kind).ok_or_else(|| shape(format!("kind {:?}", e.kind)))?;
    let id = EventId::parse(&e.id).map_err(|m| shape(format!("id: {m}")))?;
    let parent_id = e
        .parent_id
        .as_deref()
        .map(EventId::parse)
        .transpose()
        .map_err(|m| shape(format!("parent_id: {m}")))?;
    let hash = EventHash::parse_hex(&e.event_hash).map_err(|m| shape(format!("hash: {m}")))?;
    let actor = Actor::parse(&e.actor).ok_or_else(|| shape(format!("actor {:?}", e.actor)))?;
    let attributes = object("attributes_json", &e.attributes_json)?;
    let occurred_at = time("occurred_at_us", e.occurred_at_us)?;
    let payload = payload(kind, e)?;
    Ok(Event {
        id,
        tenant,
        session_id,
        occurred_at,
        actor,
        parent_id,
        payload,
        attributes,
        hash,
    })
}

fn payload(kind: EventKind, e: EventRec) -> Result<Payload, DecodeError> {
    let missing = || {
        shape(format!(
            "event of kind {} has no such branch",
            kind.as_str()
        ))
    };
    Ok(match kind {
        EventKind::FileEdit => {
            let p = e.file_edit.ok_or_else(missing)?;
            Payload::FileEdit(FileEdit {
                path: p.path,
                lines_added: int("lines_added", p.lines_added)?,
                lines_removed: int("lines_removed", p.lines_removed)?,
                operation: p.operation,
            })
        }
        EventKind::Command => {
            let p = e.command.ok_or_else(missing)?;
            Payload::Command(Command {
                command: p.command,
                exit_code: p.exit_code,
                duration_ms: opt_int("duration_ms", p.duration_ms)?,
                output: p.output,
            })
        }
        EventKind::TestRun => {
            let p = e.test_run.ok_or_else(missing)?;
            Payload::TestRun(TestRun {
                framework: p.framework,
                passed: int("passed", p.passed)?,
                failed: int("failed", p.failed)?,
                skipped: int("skipped", p.skipped)?,
                duration_ms: opt_int("duration_ms", p.duration_ms)?,
                output: p.output,
            })
        }
        EventKind::Error => {
            let p = e.error.ok_or_else(missing)?;
            Payload::Error(ErrorEvent {
                message: p.message,
                error_type: p.error_type,
                stack_trace: p.stack_trace,
                file: p.file,
                line: opt_int("line", p.line)?,
            })
        }
        EventKind::LlmCall => {
            let p = e.llm_call.ok_or_else(missing)?;
            Payload::LlmCall(LlmCall {
                provider: p.provider,
                model: p.model,
                input_tokens: int("input_tokens", p.input_tokens)?,
                output_tokens: int("output_tokens", p.output_tokens)?,
                cost_usd: p.cost_usd,
                latency_ms: opt_int("latency_ms", p.latency_ms)?,
                status: status("status", &p.status)?,
                error: p.error,
            })
        }
        EventKind::ToolCall => {
            let p = e.tool_call.ok_or_else(missing)?;
            Payload::ToolCall(ToolCall {
                tool: p.tool,
                status: status("status", &p.status)?,
                duration_ms: opt_int("duration_ms", p.duration_ms)?,
                error: p.error,
            })
        }
        EventKind::AgentAction => {
            let p = e.agent_action.ok_or_else(missing)?;
            Payload::AgentAction(AgentAction {
                action: p.action,
                status: p
                    .status
                    .as_deref()
                    .map(|s| status("status", s))
                    .transpose()?,
                duration_ms: opt_int("duration_ms", p.duration_ms)?,
                detail: p.detail,
            })
        }
        EventKind::UserMessage => {
            let p = e.user_message.ok_or_else(missing)?;
            Payload::UserMessage(UserMessage { text: p.text })
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::codec::tests::sample_envelopes;
    use crate::wire::codec::{decode_envelope, encode_envelope};

    /// Trusting decode must give exactly what validating decode gives for
    /// everything our encoders write.
    #[test]
    fn trusted_decode_equals_validating_decode() {
        for env in sample_envelopes() {
            let bytes = encode_envelope(&env).unwrap();
            let trusted = decode_trusted(&bytes).unwrap();
            let checked = decode_envelope(&bytes, &crate::model::Limits::default()).unwrap();
            assert_eq!(trusted, checked);
            assert_eq!(trusted, env);
        }
    }

    #[test]
    fn malformed_records_are_decode_errors() {
        assert!(matches!(
            decode_trusted(b"not avro"),
            Err(DecodeError::UnknownEncoding)
        ));
    }
}
