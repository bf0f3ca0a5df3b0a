//! Avro single-object codec for the events topic, with validation on read.
//!
//! Decoding never trusts the bytes: a canonical record is turned back into
//! submissions and validated exactly like an HTTP body (with its ingest time
//! as "now"), and the event hash is recomputed and compared. A record that
//! was corrupted, hand-written or produced by a buggy client therefore
//! fails here with a reason, instead of poisoning a table.

use std::sync::LazyLock;

use apache_avro::types::Value as AvroValue;
use chrono::SecondsFormat;
use serde_json::Value;
use thiserror::Error;

use super::records::{EnvelopeRec, EventRec, SessionEndRec, SessionStartRec};
use super::schemas::{ENVELOPE, ENVELOPE_WRITERS};
use super::{from_micros, micros, Envelope, Record};
use crate::error::{codes, Classify, Disposition, ValidationErrors};
use crate::model::submission::{
    Context, EventSubmission, SessionEndSubmission, SessionStartSubmission,
};
use crate::model::{Event, EventKind, Limits, SessionId, TenantId};

const MAGIC: [u8; 2] = [0xC3, 0x01];

/// Why a record could not be decoded. All variants are permanent: the same
/// bytes will fail the same way, so they go to the dead-letter topic.
#[derive(Debug, Error)]
pub enum DecodeError {
    #[error("record is neither Avro single-object encoded (C3 01 ...) nor a JSON object")]
    UnknownEncoding,
    #[error("unknown Avro writer schema fingerprint {0}")]
    UnknownSchema(String),
    #[error("malformed Avro: {0}")]
    Avro(String),
    #[error("malformed JSON: {0}")]
    Json(String),
    #[error("malformed envelope: {0}")]
    Shape(String),
    #[error("invalid content: {0}")]
    Invalid(#[from] ValidationErrors),
}

impl Classify for DecodeError {
    fn disposition(&self) -> Disposition {
        Disposition::DeadLetter
    }
    fn reason_code(&self) -> &'static str {
        match self {
            Self::UnknownEncoding => "unknown_encoding",
            Self::UnknownSchema(_) => "unknown_schema",
            Self::Avro(_) => "invalid_avro",
            Self::Json(_) => codes::INVALID_JSON,
            Self::Shape(_) => "invalid_envelope",
            Self::Invalid(v) => v.primary_code(),
        }
    }
}

/// Why a record could not be encoded. Validation admits only values every
/// schema field can hold, so this is a bug in our code, never the
/// producer's: the API answers 500 for it and consumers dead-letter the
/// record, but nothing panics.
#[derive(Debug, Error)]
#[error("cannot encode record: {0}")]
pub struct EncodeError(pub String);

/// Encodes an envelope in Avro single-object encoding.
pub fn encode_envelope(env: &Envelope) -> Result<Vec<u8>, EncodeError> {
    let rec = to_rec(env)?;
    encode_avro(&rec, &ENVELOPE.schema, &ENVELOPE.fingerprint)
}

pub(crate) fn encode_avro<T: serde::Serialize>(
    rec: &T,
    schema: &apache_avro::Schema,
    fingerprint: &[u8; 8],
) -> Result<Vec<u8>, EncodeError> {
    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(fingerprint);
    // Serialise straight into bytes, guided by the schema. Going through
    // `to_value` + `resolve` + `to_avro_datum` builds and re-validates a
    // value tree and cost ~75 µs per event, the API's largest CPU cost.
    apache_avro::write_avro_datum_ref(schema, rec, &mut out)
        .map_err(|e| EncodeError(e.to_string()))?;
    Ok(out)
}

/// Our single-object header (magic + fingerprint), for the reader below.
struct Header(Vec<u8>);

impl apache_avro::headers::HeaderBuilder for Header {
    fn build_header(&self) -> Vec<u8> {
        self.0.clone()
    }
}

/// A reader of the current envelope schema with its names resolved once.
/// The schema is compiled in, so this cannot fail in practice; if it did,
/// every record would be reported undecodable rather than panicking on the
/// consumer's input path.
static CURRENT_READER: LazyLock<Result<apache_avro::GenericSingleObjectReader, String>> =
    LazyLock::new(|| {
        let header = Header([&MAGIC[..], &ENVELOPE.fingerprint[..]].concat());
        apache_avro::GenericSingleObjectReader::new_with_header_builder(
            ENVELOPE.schema.clone(),
            header,
        )
        .map_err(|e| e.to_string())
    });

/// Decodes the raw Avro of an envelope without validating its content.
pub(crate) fn decode_rec(bytes: &[u8]) -> Result<EnvelopeRec, DecodeError> {
    if bytes.len() < 10 || bytes[..2] != MAGIC {
        return Err(DecodeError::UnknownEncoding);
    }
    let mut fp = [0u8; 8];
    fp.copy_from_slice(&bytes[2..10]);
    let writer = ENVELOPE_WRITERS
        .get(&fp)
        .ok_or_else(|| DecodeError::UnknownSchema(hex::encode(fp)))?;
    let value: AvroValue;
    let mut body;
    if fp == ENVELOPE.fingerprint {
        // The current schema, already resolved: `from_avro_datum` resolves
        // the schema's names on every call, 8% of a consumer's CPU.
        body = bytes;
        let reader = CURRENT_READER
            .as_ref()
            .map_err(|e| DecodeError::Avro(format!("envelope reader: {e}")))?;
        value = reader
            .read_value(&mut body)
            .map_err(|e| DecodeError::Avro(e.to_string()))?;
    } else {
        // An older writer schema: resolve into the current one.
        body = &bytes[10..];
        value = apache_avro::from_avro_datum(writer, &mut body, Some(&ENVELOPE.schema))
            .map_err(|e| DecodeError::Avro(e.to_string()))?;
    }
    if !body.is_empty() {
        return Err(DecodeError::Avro(format!("{} trailing bytes", body.len())));
    }
    apache_avro::from_value(&value).map_err(|e| DecodeError::Avro(e.to_string()))
}

/// Decodes and validates a canonical envelope.
pub fn decode_envelope(bytes: &[u8], limits: &Limits) -> Result<Envelope, DecodeError> {
    let rec = decode_rec(bytes)?;
    let tenant = TenantId::parse(&rec.tenant)
        .map_err(|m| ValidationErrors::single("tenant", codes::INVALID_ID, m))?;
    let ingested_at = from_micros(rec.ingested_at_us)
        .ok_or_else(|| DecodeError::Shape("ingested_at_us out of range".into()))?;
    let ctx = Context {
        tenant: &tenant,
        now: ingested_at,
        limits,
        scrub: None,
    };
    let expected_hash = rec.event.as_ref().map(|e| e.event_hash.clone());
    let record = rec_to_record(rec, ctx)?;
    if let (Record::Event(ev), Some(expected)) = (&record, expected_hash) {
        if ev.hash.to_hex() != expected {
            return Err(ValidationErrors::single(
                "event.event_hash",
                codes::HASH_MISMATCH,
                format!("record says {expected}, content hashes to {}", ev.hash),
            )
            .into());
        }
    }
    Ok(Envelope {
        ingested_at,
        record,
    })
}

/// Validates the content of a decoded envelope under `ctx` (whose tenant
/// wins over the record's). Shared with the intake gate.
pub(crate) fn rec_to_record(rec: EnvelopeRec, ctx: Context<'_>) -> Result<Record, DecodeError> {
    let set = [
        rec.session_start.is_some(),
        rec.event.is_some(),
        rec.session_end.is_some(),
    ];
    if set.iter().filter(|b| **b).count() != 1 {
        return Err(DecodeError::Shape(
            "exactly one of session_start, event, session_end must be set".into(),
        ));
    }
    if let Some(s) = rec.session_start {
        let sub = SessionStartSubmission {
            id: Some(rec.session_id),
            agent_name: Some(s.agent_name),
            agent_model: s.agent_model,
            source: Some(s.source),
            started_at: Some(rfc3339(s.started_at_us)?),
            metadata: Some(parse_json_text(
                "session_start.metadata_json",
                &s.metadata_json,
            )?),
        };
        return Ok(Record::SessionStart(sub.validate(ctx)?));
    }
    if let Some(e) = rec.event {
        return Ok(Record::Event(event_from_rec(&rec.session_id, e, ctx)?));
    }
    // The count check above guarantees session_end is the one that is set.
    let end = rec
        .session_end
        .ok_or_else(|| DecodeError::Shape("no branch set".into()))?;
    let sub = SessionEndSubmission {
        session_id: Some(rec.session_id),
        ended_at: Some(rfc3339(end.ended_at_us)?),
        status: Some(end.status),
    };
    Ok(Record::SessionEnd(sub.validate(ctx)?))
}

fn event_from_rec(session_id: &str, e: EventRec, ctx: Context<'_>) -> Result<Event, DecodeError> {
    let kind = EventKind::parse(&e.kind);
    let branches: [(EventKind, Option<Value>); 8] = [
        (EventKind::FileEdit, e.file_edit.map(to_json)),
        (EventKind::Command, e.command.map(to_json)),
        (EventKind::TestRun, e.test_run.map(to_json)),
        (EventKind::Error, e.error.map(to_json)),
        (EventKind::LlmCall, e.llm_call.map(to_json)),
        (EventKind::ToolCall, e.tool_call.map(to_json)),
        (EventKind::AgentAction, e.agent_action.map(to_json)),
        (EventKind::UserMessage, e.user_message.map(to_json)),
    ];
    let mut data = None;
    for (k, v) in branches {
        match (v, Some(k) == kind) {
            (Some(v), true) => data = Some(v),
            (Some(_), false) => {
                return Err(DecodeError::Shape(format!(
                    "event of kind {:?} carries a {} branch",
                    e.kind,
                    k.as_str()
                )))
            }
            (None, _) => {}
        }
    }
    if kind.is_some() && data.is_none() {
        return Err(DecodeError::Shape(format!(
            "event of kind {:?} has no {0} branch",
            e.kind
        )));
    }
    let sub = EventSubmission {
        id: Some(e.id),
        session_id: Some(session_id.to_owned()),
        occurred_at: Some(rfc3339(e.occurred_at_us)?),
        kind: Some(e.kind),
        actor: Some(e.actor),
        parent_id: e.parent_id,
        data,
        attributes: Some(parse_json_text(
            "event.attributes_json",
            &e.attributes_json,
        )?),
    };
    Ok(sub.validate(ctx, None)?)
}

fn to_json<T: serde::Serialize>(branch: T) -> Value {
    // Plain structs of strings and numbers: serde_json has no error for
    // them (a non-finite float would become null and fail validation).
    let mut v = serde_json::to_value(branch).unwrap_or(Value::Null);
    // Absent optionals must look absent, as they do in HTTP bodies, so the
    // hash sees the same document either way.
    if let Value::Object(m) = &mut v {
        m.retain(|_, v| !v.is_null());
    }
    v
}

fn parse_json_text(field: &str, text: &str) -> Result<Value, DecodeError> {
    serde_json::from_str(text).map_err(|e| DecodeError::Json(format!("{field}: {e}")))
}

fn rfc3339(us: i64) -> Result<String, DecodeError> {
    from_micros(us)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
        .ok_or_else(|| DecodeError::Shape(format!("timestamp {us} µs is out of range")))
}

/// The transport shape of a domain envelope.
pub(crate) fn to_rec(env: &Envelope) -> Result<EnvelopeRec, EncodeError> {
    let r = &env.record;
    let mut rec = EnvelopeRec {
        tenant: r.tenant().to_string(),
        session_id: r.session_id().to_string(),
        ingested_at_us: micros(env.ingested_at),
        session_start: None,
        event: None,
        session_end: None,
    };
    match r {
        Record::SessionStart(s) => {
            rec.session_start = Some(SessionStartRec {
                agent_name: s.agent_name.clone(),
                agent_model: s.agent_model.clone(),
                source: s.source.as_str().to_owned(),
                started_at_us: micros(s.started_at),
                metadata_json: Value::Object(s.metadata.clone()).to_string(),
            })
        }
        Record::SessionEnd(s) => {
            rec.session_end = Some(SessionEndRec {
                ended_at_us: micros(s.ended_at),
                status: s.status.as_str().to_owned(),
            })
        }
        Record::Event(e) => rec.event = Some(event_to_rec(e)?),
    }
    Ok(rec)
}

fn event_to_rec(e: &Event) -> Result<EventRec, EncodeError> {
    let mut rec = EventRec {
        id: e.id.to_string(),
        event_hash: e.hash.to_hex(),
        occurred_at_us: micros(e.occurred_at),
        kind: e.kind().as_str().to_owned(),
        actor: e.actor.as_str().to_owned(),
        parent_id: e.parent_id.map(|p| p.to_string()),
        attributes_json: Value::Object(e.attributes.clone()).to_string(),
        file_edit: None,
        command: None,
        test_run: None,
        error: None,
        llm_call: None,
        tool_call: None,
        agent_action: None,
        user_message: None,
    };
    let data = e.payload.data();
    // The branch records use the payload's field names and `long` where
    // the payload has unsigned integers; validation keeps those below
    // 2^53, so every valid payload converts.
    fn conv<T: serde::de::DeserializeOwned>(data: Value) -> Result<Option<T>, EncodeError> {
        // Omitted optional fields become `None` (serde's rule for `Option`).
        serde_json::from_value(data)
            .map(Some)
            .map_err(|e| EncodeError(format!("event data does not fit its Avro branch: {e}")))
    }
    match e.kind() {
        EventKind::FileEdit => rec.file_edit = conv(data)?,
        EventKind::Command => rec.command = conv(data)?,
        EventKind::TestRun => rec.test_run = conv(data)?,
        EventKind::Error => rec.error = conv(data)?,
        EventKind::LlmCall => rec.llm_call = conv(data)?,
        EventKind::ToolCall => rec.tool_call = conv(data)?,
        EventKind::AgentAction => rec.agent_action = conv(data)?,
        EventKind::UserMessage => rec.user_message = conv(data)?,
    }
    Ok(rec)
}

/// Builds the key for a record: the session id, so one session's records
/// share a partition and stay in order.
pub fn key_for(session_id: &SessionId) -> String {
    session_id.to_string()
}

#[cfg(test)]
#[path = "codec_tests.rs"]
pub(crate) mod tests;
