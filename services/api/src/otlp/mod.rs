//! OpenTelemetry ingest: `POST /v1/logs` and `POST /v1/traces`, so coding
//! agents that export OTLP (Claude Code's `claude_code.*` events and tool
//! spans, GenAI semantic-convention spans of agent frameworks) need no
//! adapter. Authentication is the API key, sent by the exporter as a header
//! (`OTEL_EXPORTER_OTLP_HEADERS="x-api-key=..."`).
//!
//! A request is decoded ([`decode`]), flattened into records with their
//! sessions and ids ([`records`]), mapped onto event kinds ([`mapping`],
//! [`tools`]) and then handled exactly like `POST /v1/events/batch`: the
//! same validation and hashing per event, the same duplicate handling and
//! Kafka publish ([`crate::accept`]). Sessions start implicitly with their
//! first record ([`memory`]) and end with a `session.end` event or by the
//! idle rule. Records that fail validation are reported the OTLP way, as a
//! partial success with the number rejected and why (never a retryable
//! error, which would make the exporter resend them forever). The mapping
//! table is docs/otlp.md.

pub mod attrs;
pub mod decode;
pub mod mapping;
pub mod memory;
pub mod records;
pub mod tools;

use std::collections::HashMap;

use axum::extract::rejection::BytesRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::{DateTime, SecondsFormat, Utc};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsPartialSuccess, ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTracePartialSuccess, ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use serde_json::{json, Map, Value};

use achilles_core::metrics;
use achilles_core::model::submission::{
    Context, EventSubmission, SessionEndSubmission, SessionStartSubmission,
};
use achilles_core::model::{Event, Payload, SessionId, TenantId};
use achilles_core::wire::Record;

use crate::accept::{accept, SessionRecords};
use crate::auth::Tenant;
use crate::error::ApiError;
use crate::routes::count_rejections;
use crate::state::AppState;
use decode::{BodyError, Encoding};
use mapping::{Mapped, Signal};
use records::Flat;

/// Reasons quoted in a partial success's message; the count covers all.
const QUOTED_REASONS: usize = 5;

/// Receives OTLP log records (Claude Code's events, any OTel log).
#[utoipa::path(post, path = "/v1/logs", tag = "otlp",
    request_body(content = Vec<u8>, description = "ExportLogsServiceRequest (OTLP/HTTP): application/x-protobuf or application/json, optionally gzip", content_type = "application/x-protobuf"),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "ExportLogsServiceResponse; `partial_success` counts and explains rejected records"),
        (status = 400, description = "Not an OTLP logs message", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = crate::error::ErrorBody),
        (status = 413, description = "Body (or inflated body) over api.max_body_bytes, or more records than api.max_batch_events", body = crate::error::ErrorBody),
        (status = 415, description = "Content type other than protobuf or JSON, or an encoding other than gzip", body = crate::error::ErrorBody),
        (status = 503, description = "Kafka unavailable; the exporter retries", body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(tenant = %tenant))]
pub async fn export_logs(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let (enc, req) = read::<ExportLogsServiceRequest>(&state, "/v1/logs", &headers, body)?;
        let flats = records::logs(&req, &tenant, Utc::now());
        let (rejected, message) = ingest(&state, &tenant, Signal::Logs, flats).await?;
        let resp = ExportLogsServiceResponse {
            partial_success: (rejected > 0).then_some(ExportLogsPartialSuccess {
                rejected_log_records: rejected,
                error_message: message,
            }),
        };
        Ok::<_, Failure>(decode::respond(enc, &resp))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// Receives OTLP spans (Claude Code's tool and request spans, GenAI spans).
#[utoipa::path(post, path = "/v1/traces", tag = "otlp",
    request_body(content = Vec<u8>, description = "ExportTraceServiceRequest (OTLP/HTTP): application/x-protobuf or application/json, optionally gzip", content_type = "application/x-protobuf"),
    security(("api_key" = []), ("bearer" = [])),
    responses(
        (status = 200, description = "ExportTraceServiceResponse; `partial_success` counts and explains rejected spans"),
        (status = 400, description = "Not an OTLP traces message", body = crate::error::ErrorBody),
        (status = 401, description = "Missing or unknown API key", body = crate::error::ErrorBody),
        (status = 413, description = "Body (or inflated body) over api.max_body_bytes, or more spans than api.max_batch_events", body = crate::error::ErrorBody),
        (status = 415, description = "Content type other than protobuf or JSON, or an encoding other than gzip", body = crate::error::ErrorBody),
        (status = 503, description = "Kafka unavailable; the exporter retries", body = crate::error::ErrorBody),
    ))]
#[tracing::instrument(skip_all, fields(tenant = %tenant))]
pub async fn export_traces(
    State(state): State<AppState>,
    Tenant(tenant): Tenant,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let run = async {
        let (enc, req) = read::<ExportTraceServiceRequest>(&state, "/v1/traces", &headers, body)?;
        let flats = records::spans(&req, &tenant, Utc::now());
        let (rejected, message) = ingest(&state, &tenant, Signal::Traces, flats).await?;
        let resp = ExportTraceServiceResponse {
            partial_success: (rejected > 0).then_some(ExportTracePartialSuccess {
                rejected_spans: rejected,
                error_message: message,
            }),
        };
        Ok::<_, Failure>(decode::respond(enc, &resp))
    };
    run.await.unwrap_or_else(IntoResponse::into_response)
}

/// A request that fails as a whole.
enum Failure {
    Body(BodyError),
    Api(ApiError),
}

impl From<BodyError> for Failure {
    fn from(e: BodyError) -> Self {
        Self::Body(e)
    }
}

impl From<ApiError> for Failure {
    fn from(e: ApiError) -> Self {
        Self::Api(e)
    }
}

impl IntoResponse for Failure {
    fn into_response(self) -> Response {
        match self {
            Self::Body(e) => e.into_response(),
            Self::Api(e) => e.into_response(),
        }
    }
}

fn read<T>(
    state: &AppState,
    route: &str,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(Encoding, T), Failure>
where
    T: prost::Message + Default + serde::de::DeserializeOwned,
{
    let limit = state.settings().api.max_body_bytes;
    let body = body.map_err(|e| {
        if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
            BodyError::TooLarge(format!("the body exceeds the {limit}-byte limit"))
        } else {
            BodyError::Invalid(e.body_text())
        }
    })?;
    let enc = decode::encoding(headers)?;
    metrics::HTTP_BODY_BYTES
        .with_label_values(&[route])
        .observe(body.len() as f64);
    let body = decode::inflate(headers, body, limit)?;
    Ok((enc, decode::decode(enc, &body)?))
}

/// What a session's implicit start needs, from its first records.
struct SessionSeen {
    id: SessionId,
    first_at: DateTime<Utc>,
    resource: Map<String, Value>,
    model: Option<String>,
}

/// Maps, validates and accepts the records; returns how many were
/// rejected and why.
async fn ingest(
    state: &AppState,
    tenant: &TenantId,
    signal: Signal,
    flats: Vec<Flat>,
) -> Result<(i64, String), ApiError> {
    let max = state.settings().api.max_batch_events;
    if flats.len() > max {
        return Err(ApiError::PayloadTooLarge(format!(
            "the request has {} records; the limit is {max}",
            flats.len()
        )));
    }
    // The tenant's events quota, one token per record, as on
    // /v1/events/batch (429 with Retry-After when over it).
    let n = u32::try_from(flats.len()).unwrap_or(u32::MAX);
    state
        .quotas()
        .try_take(tenant, achilles_core::quota::Kind::Events, n)?;
    let now = Utc::now();
    let limits = &state.settings().validation;
    let ctx = Context {
        tenant,
        now,
        limits,
        scrub: Some(state.scrubber()),
    };
    let label = signal.as_str();
    let mut reasons = Vec::new();
    let mut rejected = 0i64;
    let mut events: Vec<(Event, Option<String>)> = Vec::new();
    let mut ends = Vec::new();
    let mut sessions: Vec<SessionSeen> = Vec::new();
    for (index, flat) in flats.into_iter().enumerate() {
        let what = format!("record {index} ({})", flat.source.name);
        let Some(raw) = flat.session.as_deref() else {
            rejected += 1;
            metrics::OTLP_RECORDS
                .with_label_values(&[label, "rejected"])
                .inc();
            reasons.push(format!(
                "{what}: no session (set session.id or gen_ai.conversation.id, or send spans with a trace id)"
            ));
            continue;
        };
        let sid = records::session_id(tenant, raw);
        let mut subs: Vec<(EventSubmission, Option<String>)> = Vec::new();
        match mapping::map(&flat.source, limits) {
            Mapped::End { status, at } => {
                let end = SessionEndSubmission {
                    session_id: Some(sid.to_string()),
                    ended_at: Some(at.to_rfc3339_opts(SecondsFormat::Micros, true)),
                    status: Some(status),
                };
                match end.validate(ctx) {
                    Ok(e) => {
                        metrics::OTLP_RECORDS
                            .with_label_values(&[label, "session_end"])
                            .inc();
                        note_session(&mut sessions, sid, &flat, None);
                        ends.push(Record::SessionEnd(e));
                    }
                    Err(errs) => {
                        rejected += 1;
                        metrics::OTLP_RECORDS
                            .with_label_values(&[label, "rejected"])
                            .inc();
                        reasons.push(format!("{what}: {}", describe(&errs)));
                    }
                }
                continue;
            }
            Mapped::Event { submission, twin } => subs.push((submission, twin)),
        }
        subs.extend(
            mapping::exceptions(&flat.source, &flat.exceptions, limits)
                .into_iter()
                .map(|s| (s, None)),
        );
        for (n, (mut sub, twin)) in subs.into_iter().enumerate() {
            sub.session_id = Some(sid.to_string());
            match sub.validate(ctx, None) {
                Ok(ev) => {
                    let model = match &ev.payload {
                        Payload::LlmCall(c) => Some(c.model.clone()),
                        _ => None,
                    };
                    note_session(&mut sessions, sid, &flat, model);
                    events.push((ev, twin));
                }
                Err(errs) => {
                    count_rejections(&errs);
                    // The record counts as rejected when its own event is;
                    // a bad exception event of a span is only reported.
                    if n == 0 {
                        rejected += 1;
                        metrics::OTLP_RECORDS
                            .with_label_values(&[label, "rejected"])
                            .inc();
                    }
                    reasons.push(format!("{what}: {}", describe(&errs)));
                }
            }
        }
    }

    // The second description of a call Claude Code sent as log and span.
    let calls: Vec<(SessionId, &str)> = events
        .iter()
        .filter_map(|(e, t)| Some((e.session_id, t.as_deref()?)))
        .collect();
    let seen = state.otlp().twins_seen(tenant, &calls);
    let twin_count = seen.iter().filter(|s| **s).count();
    metrics::OTLP_RECORDS
        .with_label_values(&[label, "twin"])
        .inc_by(twin_count as u64);
    let mut seen = seen.into_iter();
    let events: Vec<(Event, Option<String>)> = events
        .into_iter()
        .filter(|(_, t)| t.is_none() || !seen.next().unwrap_or(false))
        .collect();
    let starts = session_starts(state, tenant, ctx, &sessions);

    let (events, twins): (Vec<Event>, Vec<Option<String>>) = events.into_iter().unzip();
    let kinds: Vec<&'static str> = events.iter().map(|e| e.kind().as_str()).collect();
    let sids: Vec<SessionId> = events.iter().map(|e| e.session_id).collect();
    let started: Vec<SessionId> = starts
        .iter()
        .filter_map(|r| match r {
            Record::SessionStart(s) => Some(s.session_id),
            _ => None,
        })
        .collect();
    let duplicate = accept(state, now, events, SessionRecords { starts, ends }).await?;

    state.otlp().remember_started(tenant, &started);
    let published: Vec<(SessionId, &str)> = sids
        .iter()
        .zip(&twins)
        .zip(&duplicate)
        .filter(|(_, dup)| !**dup)
        .filter_map(|((s, t), _)| Some((*s, t.as_deref()?)))
        .collect();
    state.otlp().remember_twins(tenant, &published);
    for k in kinds {
        metrics::OTLP_RECORDS.with_label_values(&[label, k]).inc();
    }
    let message = if reasons.is_empty() {
        String::new()
    } else {
        let more = reasons.len().saturating_sub(QUOTED_REASONS);
        let mut m = format!(
            "{rejected} rejected: {}",
            reasons[..reasons.len().min(QUOTED_REASONS)].join("; ")
        );
        if more > 0 {
            m.push_str(&format!("; and {more} more"));
        }
        m
    };
    Ok((rejected, message))
}

fn describe(errs: &achilles_core::ValidationErrors) -> String {
    errs.0
        .iter()
        .map(|e| format!("{} {} ({})", e.field, e.message, e.code))
        .collect::<Vec<_>>()
        .join(", ")
}

fn note_session(
    sessions: &mut Vec<SessionSeen>,
    id: SessionId,
    flat: &Flat,
    model: Option<String>,
) {
    match sessions.iter_mut().find(|s| s.id == id) {
        Some(s) => {
            s.first_at = s.first_at.min(flat.source.at);
            if s.model.is_none() {
                s.model = model;
            }
        }
        None => sessions.push(SessionSeen {
            id,
            first_at: flat.source.at,
            resource: flat.resource.clone(),
            model,
        }),
    }
}

/// Start records for the sessions this process has not started yet: the
/// agent is the resource's `service.name`, the model the first LLM call's,
/// the metadata the resource attributes.
fn session_starts(
    state: &AppState,
    tenant: &TenantId,
    ctx: Context<'_>,
    sessions: &[SessionSeen],
) -> Vec<Record> {
    let ids: Vec<SessionId> = sessions.iter().map(|s| s.id).collect();
    let started = state.otlp().started(tenant, &ids);
    let mut by_id: HashMap<SessionId, Record> = HashMap::new();
    for (s, started) in sessions.iter().zip(started) {
        if started {
            continue;
        }
        let service = attrs::str_of(&s.resource, &["service.name"])
            .filter(|n| !n.starts_with("unknown_service"));
        let source = attrs::str_of(&s.resource, &["achilles.source"])
            .filter(|x| ["cli", "ide", "sdk", "other"].contains(&x.as_str()))
            .unwrap_or_else(|| {
                if service.as_deref() == Some("claude-code") {
                    "cli"
                } else {
                    "sdk"
                }
                .into()
            });
        let (agent_name, _) = attrs::fit(
            service.as_deref().unwrap_or("otlp"),
            ctx.limits.max_name_bytes,
        );
        let start = |metadata: Map<String, Value>| SessionStartSubmission {
            id: Some(s.id.to_string()),
            agent_name: Some(agent_name.clone()),
            agent_model: s.model.clone(),
            source: Some(source.clone()),
            started_at: Some(s.first_at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            metadata: Some(Value::Object(metadata)),
        };
        // Resource attributes too large for metadata: keep the service's.
        let small: Map<String, Value> = s
            .resource
            .iter()
            .filter(|(k, _)| k.starts_with("service."))
            .map(|(k, v)| (k.clone(), v.clone()))
            .chain([("otel.resource_dropped".to_owned(), json!(true))])
            .collect();
        match start(s.resource.clone())
            .validate(ctx)
            .or_else(|_| start(small).validate(ctx))
        {
            Ok(st) => {
                by_id.insert(s.id, Record::SessionStart(st));
            }
            Err(errs) => {
                tracing::warn!(session = %s.id, errors = %describe(&errs),
                    "implicit session start is invalid; the session stays a placeholder");
            }
        }
    }
    ids.iter().filter_map(|id| by_id.remove(id)).collect()
}
