//! What producers send, and the validation that turns it into domain values.
//!
//! Submissions are deliberately loose (`Option<String>` everywhere) so that a
//! wrong value produces *our* error message naming the field and the rule,
//! instead of a generic deserialiser message, and so that every problem in a
//! submission is reported at once. The same functions validate HTTP bodies,
//! records written straight to the intake topic, and canonical records read
//! back from Kafka: there is no second validator anywhere.

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Deserialize;
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{
    truncate_to_micros, Actor, Event, EventId, EventKind, Limits, Payload, SessionEnd, SessionId,
    SessionSource, SessionStart, SessionStatus, TenantId,
};
use crate::error::{codes, Checker, ValidationErrors};
use crate::scrub::{Scrubber, Tally};

/// Everything validation needs besides the submission itself. The tenant is
/// here, not in the submission, because it comes from the credential.
#[derive(Clone, Copy, Debug)]
pub struct Context<'a> {
    pub tenant: &'a TenantId,
    /// Ingest time: the reference for the accepted event-time window.
    pub now: DateTime<Utc>,
    pub limits: &'a Limits,
    /// Scrubs secrets out of what passed validation, before it is hashed
    /// (see [`crate::scrub`]). The producer-facing paths (API, intake gate)
    /// set it; decoding a canonical record does not: it was scrubbed by the
    /// process that published it.
    pub scrub: Option<&'a Scrubber>,
}

/// One event as a producer sends it.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct EventSubmission {
    /// Optional client-chosen UUID; derived from the event hash when absent.
    #[serde(default)]
    pub id: Option<String>,
    /// Required unless the batch names a `session_id` for all its events.
    #[serde(default)]
    pub session_id: Option<String>,
    /// RFC 3339 timestamp, e.g. `2026-11-21T10:00:00.123Z`.
    #[serde(default)]
    pub occurred_at: Option<String>,
    /// One of `file_edit`, `command`, `test_run`, `error`, `llm_call`,
    /// `tool_call`, `agent_action`, `user_message`.
    #[serde(default)]
    pub kind: Option<String>,
    /// `agent`, `human` or `system`; defaults to `human` for
    /// `user_message` and `agent` otherwise.
    #[serde(default)]
    pub actor: Option<String>,
    /// The enclosing event (an orchestration step around an LLM call).
    #[serde(default)]
    pub parent_id: Option<String>,
    /// Kind-specific fields; see the payload schemas.
    #[serde(default)]
    #[schema(value_type = Object)]
    pub data: Option<Value>,
    /// Free-form extra fields (a JSON object).
    #[serde(default)]
    #[schema(value_type = Object)]
    pub attributes: Option<Value>,
}

/// A session start as a producer sends it.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionStartSubmission {
    /// Optional client-chosen UUID; a new UUIDv7 when absent.
    #[serde(default)]
    pub id: Option<String>,
    #[serde(default)]
    pub agent_name: Option<String>,
    #[serde(default)]
    pub agent_model: Option<String>,
    /// `cli`, `ide`, `sdk` or `other` (default).
    #[serde(default)]
    pub source: Option<String>,
    /// RFC 3339; defaults to ingest time.
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    pub metadata: Option<Value>,
}

/// A session end as a producer sends it.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SessionEndSubmission {
    #[serde(default)]
    pub session_id: Option<String>,
    /// RFC 3339; defaults to ingest time.
    #[serde(default)]
    pub ended_at: Option<String>,
    /// `completed` (default), `failed` or `aborted`.
    #[serde(default)]
    pub status: Option<String>,
}

/// Parses any submission type from JSON, naming the offending field.
pub fn from_json<T: serde::de::DeserializeOwned>(value: Value) -> Result<T, ValidationErrors> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { String::new() } else { path };
        ValidationErrors::single(field, codes::INVALID_JSON, e.into_inner().to_string())
    })
}

impl EventSubmission {
    /// Validates into an [`Event`]. `default_session` is the batch-level
    /// session id, used when the event names none.
    pub fn validate(
        self,
        ctx: Context<'_>,
        default_session: Option<SessionId>,
    ) -> Result<Event, ValidationErrors> {
        let mut c = Checker::new();
        let id = opt_uuid(&mut c, "id", self.id.as_deref(), EventId::parse);
        let parent_id = opt_uuid(
            &mut c,
            "parent_id",
            self.parent_id.as_deref(),
            EventId::parse,
        );
        let session_id = match (self.session_id.as_deref(), default_session) {
            (Some(raw), _) => opt_uuid(&mut c, "session_id", Some(raw), SessionId::parse),
            (None, Some(s)) => Some(s),
            (None, None) => {
                c.push("session_id", codes::MISSING_FIELD, "is required");
                None
            }
        };
        let occurred_at = required_time(&mut c, "occurred_at", self.occurred_at.as_deref(), ctx);
        let kind = match self.kind.as_deref() {
            None => {
                c.push("kind", codes::MISSING_FIELD, "is required");
                None
            }
            Some(k) => EventKind::parse(k).or_else(|| {
                let known: Vec<_> = EventKind::ALL.iter().map(|k| k.as_str()).collect();
                c.push(
                    "kind",
                    codes::UNKNOWN_KIND,
                    format!(
                        "{k:?} is not a known kind; expected one of {}",
                        known.join(", ")
                    ),
                );
                None
            }),
        };
        let actor = match self.actor.as_deref() {
            None => Some(match kind {
                Some(EventKind::UserMessage) => Actor::Human,
                _ => Actor::Agent,
            }),
            Some(a) => Actor::parse(a).or_else(|| {
                c.push(
                    "actor",
                    codes::INVALID_VALUE,
                    format!("{a:?} is not one of agent, human, system"),
                );
                None
            }),
        };
        let payload = kind.and_then(|kind| {
            let data = self.data.unwrap_or(Value::Object(Map::new()));
            match Payload::parse(kind, data) {
                Ok(p) => {
                    p.check(&mut c, ctx.limits);
                    Some(p)
                }
                Err(errs) => {
                    c.extend(errs);
                    None
                }
            }
        });
        let attributes = json_object(&mut c, "attributes", self.attributes, ctx.limits);

        if !c.is_clean() {
            return Err(ValidationErrors(c.into_errors()));
        }
        // All `Option`s below are `Some` once the checker is clean: every
        // `None` path above pushed an error.
        match (session_id, occurred_at, actor, payload, attributes) {
            (
                Some(session_id),
                Some(occurred_at),
                Some(actor),
                Some(mut payload),
                Some(mut attrs),
            ) => {
                if let Some(scrub) = ctx.scrub {
                    let tenant = ctx.tenant.as_str();
                    let mut tally = Tally::default();
                    for (text, max) in payload.texts_mut(ctx.limits) {
                        scrub.scrub_field(tenant, text, max, &mut tally);
                    }
                    scrub.scrub_object(
                        tenant,
                        &mut attrs,
                        ctx.limits.max_attributes_bytes,
                        &mut tally,
                    );
                    tally.record();
                }
                Ok(Event::new_unchecked(
                    id,
                    ctx.tenant.clone(),
                    session_id,
                    occurred_at,
                    actor,
                    parent_id,
                    payload,
                    attrs,
                ))
            }
            _ => Err(ValidationErrors::single(
                "",
                codes::INVALID_DATA,
                "incomplete event",
            )),
        }
    }
}

impl SessionStartSubmission {
    pub fn validate(self, ctx: Context<'_>) -> Result<SessionStart, ValidationErrors> {
        let mut c = Checker::new();
        let session_id = match self.id.as_deref() {
            None => Some(SessionId::new_v7()),
            Some(raw) => opt_uuid(&mut c, "id", Some(raw), SessionId::parse),
        };
        match self.agent_name.as_deref() {
            None => c.push("agent_name", codes::MISSING_FIELD, "is required"),
            Some(name) => c.text("agent_name", name, ctx.limits.max_name_bytes),
        }
        c.opt_text(
            "agent_model",
            self.agent_model.as_deref(),
            ctx.limits.max_name_bytes,
        );
        let source = match self.source.as_deref() {
            None => Some(SessionSource::Other),
            Some(s) => SessionSource::parse(s).or_else(|| {
                c.push(
                    "source",
                    codes::INVALID_VALUE,
                    format!("{s:?} is not one of cli, ide, sdk, other"),
                );
                None
            }),
        };
        let started_at = optional_time(&mut c, "started_at", self.started_at.as_deref(), ctx);
        let metadata = json_object(&mut c, "metadata", self.metadata, ctx.limits);
        let agent_name = self.agent_name.unwrap_or_default();
        match (c.is_clean(), session_id, source, started_at, metadata) {
            (true, Some(session_id), Some(source), Some(started_at), Some(mut metadata)) => {
                if let Some(scrub) = ctx.scrub {
                    let mut tally = Tally::default();
                    scrub.scrub_object(
                        ctx.tenant.as_str(),
                        &mut metadata,
                        ctx.limits.max_attributes_bytes,
                        &mut tally,
                    );
                    tally.record();
                }
                Ok(SessionStart {
                    tenant: ctx.tenant.clone(),
                    session_id,
                    agent_name,
                    agent_model: self.agent_model,
                    source,
                    started_at,
                    metadata,
                })
            }
            _ => Err(ValidationErrors(c.into_errors())),
        }
    }
}

impl SessionEndSubmission {
    pub fn validate(self, ctx: Context<'_>) -> Result<SessionEnd, ValidationErrors> {
        let mut c = Checker::new();
        let session_id = match self.session_id.as_deref() {
            None => {
                c.push("session_id", codes::MISSING_FIELD, "is required");
                None
            }
            Some(raw) => opt_uuid(&mut c, "session_id", Some(raw), SessionId::parse),
        };
        let ended_at = optional_time(&mut c, "ended_at", self.ended_at.as_deref(), ctx);
        let status = match self.status.as_deref() {
            None => Some(SessionStatus::Completed),
            Some(s) => SessionStatus::parse(s)
                .filter(|s| SessionStatus::FINAL.contains(s))
                .or_else(|| {
                    c.push(
                        "status",
                        codes::INVALID_VALUE,
                        format!("{s:?} is not one of completed, failed, aborted"),
                    );
                    None
                }),
        };
        match (c.is_clean(), session_id, ended_at, status) {
            (true, Some(session_id), Some(ended_at), Some(status)) => Ok(SessionEnd {
                tenant: ctx.tenant.clone(),
                session_id,
                ended_at,
                status,
            }),
            _ => Err(ValidationErrors(c.into_errors())),
        }
    }
}

fn opt_uuid<T>(
    c: &mut Checker,
    field: &str,
    raw: Option<&str>,
    parse: fn(&str) -> Result<T, String>,
) -> Option<T> {
    let raw = raw?;
    parse(raw)
        .map_err(|msg| c.push(field, codes::INVALID_ID, msg))
        .ok()
}

fn required_time(
    c: &mut Checker,
    field: &str,
    raw: Option<&str>,
    ctx: Context<'_>,
) -> Option<DateTime<Utc>> {
    if raw.is_none() {
        c.push(
            field,
            codes::MISSING_FIELD,
            "is required (RFC 3339 timestamp)",
        );
        return None;
    }
    optional_time(c, field, raw, ctx)
}

/// Parses an RFC 3339 time and checks it lies within the accepted window
/// around ingest time; absent means "now".
fn optional_time(
    c: &mut Checker,
    field: &str,
    raw: Option<&str>,
    ctx: Context<'_>,
) -> Option<DateTime<Utc>> {
    let Some(raw) = raw else {
        return Some(truncate_to_micros(ctx.now));
    };
    let t = match DateTime::parse_from_rfc3339(raw) {
        // chrono represents second :60 as nanoseconds >= 1e9, which no
        // encoder downstream keeps: it would roll over to the next second
        // and change the event's hash after it was acknowledged.
        Ok(t) if t.nanosecond() >= 1_000_000_000 => {
            c.push(
                field,
                codes::INVALID_TIMESTAMP,
                format!("{raw:?} is a leap second (:60), which is not supported; use :59.999999"),
            );
            return None;
        }
        Ok(t) => truncate_to_micros(t.with_timezone(&Utc)),
        Err(e) => {
            c.push(
                field,
                codes::INVALID_TIMESTAMP,
                format!("{raw:?} is not an RFC 3339 timestamp ({e})"),
            );
            return None;
        }
    };
    // Checked: `now` may come from a record (its ingest time), and a
    // window edge beyond chrono's range means "no edge on that side".
    let earliest = ctx
        .now
        .checked_sub_signed(ctx.limits.max_age())
        .unwrap_or(DateTime::<Utc>::MIN_UTC);
    let latest = ctx
        .now
        .checked_add_signed(ctx.limits.max_future())
        .unwrap_or(DateTime::<Utc>::MAX_UTC);
    if !(1..=9999).contains(&t.year()) {
        c.push(
            field,
            codes::TIMESTAMP_OUT_OF_RANGE,
            format!("{raw} is outside the years 0001 to 9999 that RFC 3339 can write"),
        );
        return None;
    }
    if t < earliest || t > latest {
        c.push(
            field,
            codes::TIMESTAMP_OUT_OF_RANGE,
            format!(
                "{raw} is outside the accepted window {} .. {} (at most {} s old, {} s ahead of ingest time)",
                earliest.to_rfc3339(),
                latest.to_rfc3339(),
                ctx.limits.max_age_secs,
                ctx.limits.max_future_secs
            ),
        );
        return None;
    }
    Some(t)
}

/// An optional JSON object within the attribute limits; absent is `{}`.
fn json_object(
    c: &mut Checker,
    field: &str,
    value: Option<Value>,
    limits: &Limits,
) -> Option<Map<String, Value>> {
    let map = match value {
        None | Some(Value::Null) => return Some(Map::new()),
        Some(Value::Object(m)) => m,
        Some(other) => {
            c.push(
                field,
                codes::INVALID_DATA,
                format!("must be a JSON object, not {other}"),
            );
            return None;
        }
    };
    let before = c.len();
    if map.len() > limits.max_attributes_keys {
        c.push(
            field,
            codes::TOO_LARGE,
            format!(
                "has {} keys; the limit is {}",
                map.len(),
                limits.max_attributes_keys
            ),
        );
    }
    let text = Value::Object(map.clone()).to_string();
    c.opt_text(field, Some(&text), limits.max_attributes_bytes);
    // serde_json escapes NUL as \u0000, which Postgres jsonb rejects too.
    if text.contains("\\u0000") {
        c.push(
            field,
            codes::CONTAINS_NUL,
            "must not contain NUL characters",
        );
    }
    (c.len() == before).then_some(map)
}

#[cfg(test)]
#[path = "submission_tests.rs"]
mod tests;
