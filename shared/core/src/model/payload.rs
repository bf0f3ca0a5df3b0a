//! Kind-specific event payloads.
//!
//! Each kind has its own struct with `deny_unknown_fields`: a misspelt field
//! (`exitcode` for `exit_code`) is an error the producer hears about, not data
//! that silently vanishes. Extra facts belong in the event's `attributes`.
//!
//! Orchestration platforms map onto these kinds without loss: a *run* is a
//! session, a *step* is an `agent_action` (with `status` and `duration_ms`),
//! LLM and tool invocations are `llm_call` / `tool_call`, and nesting is kept
//! through the event's `parent_id`; anything else (run ids, attempts, queue
//! names) travels in `attributes`.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{EventKind, Limits};
use crate::error::{codes, Checker, ValidationError};

/// Outcome of an LLM call, tool call or agent step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CallStatus {
    Ok,
    Error,
    Timeout,
    Cancelled,
}

impl CallStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Error => "error",
            Self::Timeout => "timeout",
            Self::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(Value::String(s.to_owned())).ok()
    }

    pub fn is_failure(self) -> bool {
        matches!(self, Self::Error | Self::Timeout)
    }
}

/// The agent changed a file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FileEdit {
    pub path: String,
    #[serde(default)]
    pub lines_added: u32,
    #[serde(default)]
    pub lines_removed: u32,
    /// `create`, `modify`, `delete` or `rename`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operation: Option<String>,
}

/// A shell command ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Command {
    pub command: String,
    /// Absent while the command is still running or when it was killed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_code: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Tail of stderr/stdout; what error clustering reads for failures.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// A test suite ran.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestRun {
    pub framework: String,
    pub passed: u32,
    pub failed: u32,
    #[serde(default)]
    pub skipped: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
}

/// An error surfaced (compiler, runtime, linter, agent framework).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ErrorEvent {
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_type: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stack_trace: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
}

/// One LLM request, with its token and cost accounting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LlmCall {
    pub provider: String,
    pub model: String,
    #[serde(default)]
    pub input_tokens: u64,
    #[serde(default)]
    pub output_tokens: u64,
    /// US dollars; absent when the producer cannot price the call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    pub status: CallStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// One tool invocation by the agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ToolCall {
    pub tool: String,
    pub status: CallStatus,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// Any other agent step (plan, reflect, orchestration step, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AgentAction {
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<CallStatus>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// A message from the human to the agent. The text is optional so privacy-
/// conscious producers can send only the fact that a message happened.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UserMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// The kind-specific part of an event.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
#[serde(tag = "kind", content = "data", rename_all = "snake_case")]
pub enum Payload {
    FileEdit(FileEdit),
    Command(Command),
    TestRun(TestRun),
    Error(ErrorEvent),
    LlmCall(LlmCall),
    ToolCall(ToolCall),
    AgentAction(AgentAction),
    UserMessage(UserMessage),
}

/// The most one LLM call may cost, in US dollars: far above any real call,
/// and small enough that a session's sum stays finite and exact to the cent.
pub const MAX_COST_USD: f64 = 1_000_000.0;

const FILE_OPS: &[&str] = &["create", "modify", "delete", "rename"];

impl Payload {
    /// Parses `data` according to `kind`. Errors name fields as `data.x`.
    pub fn parse(kind: EventKind, data: Value) -> Result<Self, Vec<ValidationError>> {
        fn de<T: serde::de::DeserializeOwned>(data: Value) -> Result<T, Vec<ValidationError>> {
            serde_path_to_error::deserialize(data).map_err(|e| {
                let path = e.path().to_string();
                let field = if path == "." {
                    "data".to_owned()
                } else {
                    format!("data.{path}")
                };
                vec![ValidationError::new(
                    field,
                    codes::INVALID_DATA,
                    e.into_inner().to_string(),
                )]
            })
        }
        Ok(match kind {
            EventKind::FileEdit => Self::FileEdit(de(data)?),
            EventKind::Command => Self::Command(de(data)?),
            EventKind::TestRun => Self::TestRun(de(data)?),
            EventKind::Error => Self::Error(de(data)?),
            EventKind::LlmCall => Self::LlmCall(de(data)?),
            EventKind::ToolCall => Self::ToolCall(de(data)?),
            EventKind::AgentAction => Self::AgentAction(de(data)?),
            EventKind::UserMessage => Self::UserMessage(de(data)?),
        })
    }

    pub fn kind(&self) -> EventKind {
        match self {
            Self::FileEdit(_) => EventKind::FileEdit,
            Self::Command(_) => EventKind::Command,
            Self::TestRun(_) => EventKind::TestRun,
            Self::Error(_) => EventKind::Error,
            Self::LlmCall(_) => EventKind::LlmCall,
            Self::ToolCall(_) => EventKind::ToolCall,
            Self::AgentAction(_) => EventKind::AgentAction,
            Self::UserMessage(_) => EventKind::UserMessage,
        }
    }

    /// The kind-specific fields alone, as stored in `events.data` and
    /// hashed: the same object `serde_json` would make of the struct
    /// (absent optionals omitted), built field by field so that no error
    /// path exists at all on the way from a validated event to Kafka.
    pub fn data(&self) -> Value {
        let s = |v: &str| Some(Value::from(v));
        let os = |v: &Option<String>| v.as_deref().map(Value::from);
        let status = |v: CallStatus| Some(Value::from(v.as_str()));
        let fields: Vec<(&str, Option<Value>)> = match self {
            Self::FileEdit(p) => vec![
                ("path", s(&p.path)),
                ("lines_added", Some(p.lines_added.into())),
                ("lines_removed", Some(p.lines_removed.into())),
                ("operation", os(&p.operation)),
            ],
            Self::Command(p) => vec![
                ("command", s(&p.command)),
                ("exit_code", p.exit_code.map(Value::from)),
                ("duration_ms", p.duration_ms.map(Value::from)),
                ("output", os(&p.output)),
            ],
            Self::TestRun(p) => vec![
                ("framework", s(&p.framework)),
                ("passed", Some(p.passed.into())),
                ("failed", Some(p.failed.into())),
                ("skipped", Some(p.skipped.into())),
                ("duration_ms", p.duration_ms.map(Value::from)),
                ("output", os(&p.output)),
            ],
            Self::Error(p) => vec![
                ("message", s(&p.message)),
                ("error_type", os(&p.error_type)),
                ("stack_trace", os(&p.stack_trace)),
                ("file", os(&p.file)),
                ("line", p.line.map(Value::from)),
            ],
            Self::LlmCall(p) => vec![
                ("provider", s(&p.provider)),
                ("model", s(&p.model)),
                ("input_tokens", Some(p.input_tokens.into())),
                ("output_tokens", Some(p.output_tokens.into())),
                // `From<f64>` gives null for NaN and infinities, exactly
                // like serde_json; validation admits finite amounts only.
                ("cost_usd", p.cost_usd.map(Value::from)),
                ("latency_ms", p.latency_ms.map(Value::from)),
                ("status", status(p.status)),
                ("error", os(&p.error)),
            ],
            Self::ToolCall(p) => vec![
                ("tool", s(&p.tool)),
                ("status", status(p.status)),
                ("duration_ms", p.duration_ms.map(Value::from)),
                ("error", os(&p.error)),
            ],
            Self::AgentAction(p) => vec![
                ("action", s(&p.action)),
                ("status", p.status.and_then(status)),
                ("duration_ms", p.duration_ms.map(Value::from)),
                ("detail", os(&p.detail)),
            ],
            Self::UserMessage(p) => vec![("text", os(&p.text))],
        };
        Value::Object(
            fields
                .into_iter()
                .filter_map(|(k, v)| Some((k.to_owned(), v?)))
                .collect(),
        )
    }

    /// Did this event record something going wrong? Used for error density,
    /// correlations and the `events.is_failure` column.
    pub fn is_failure(&self) -> bool {
        match self {
            Self::Error(_) => true,
            Self::Command(c) => c.exit_code.is_some_and(|code| code != 0),
            Self::TestRun(t) => t.failed > 0,
            Self::LlmCall(c) => c.status.is_failure(),
            Self::ToolCall(c) => c.status.is_failure(),
            Self::AgentAction(a) => a.status.is_some_and(CallStatus::is_failure),
            Self::FileEdit(_) | Self::UserMessage(_) => false,
        }
    }

    /// The file the event is about, if it names one.
    pub fn file_path(&self) -> Option<&str> {
        match self {
            Self::FileEdit(f) => Some(&f.path),
            Self::Error(e) => e.file.as_deref(),
            _ => None,
        }
    }

    /// The free-text fields secret scrubbing reads, each with its byte
    /// limit (the one [`Payload::check`] applies). Short names (tool,
    /// provider, model, framework, action, error type, operation) are not
    /// free text and are left out.
    pub(crate) fn texts_mut(&mut self, l: &Limits) -> Vec<(&mut String, usize)> {
        fn opt(v: &mut Option<String>, max: usize) -> Option<(&mut String, usize)> {
            v.as_mut().map(|s| (s, max))
        }
        match self {
            Self::FileEdit(p) => vec![(&mut p.path, l.max_path_bytes)],
            Self::Command(p) => std::iter::once((&mut p.command, l.max_path_bytes))
                .chain(opt(&mut p.output, l.max_stack_trace_bytes))
                .collect(),
            Self::TestRun(p) => opt(&mut p.output, l.max_stack_trace_bytes)
                .into_iter()
                .collect(),
            Self::Error(p) => std::iter::once((&mut p.message, l.max_message_bytes))
                .chain(opt(&mut p.stack_trace, l.max_stack_trace_bytes))
                .chain(opt(&mut p.file, l.max_path_bytes))
                .collect(),
            Self::LlmCall(p) => opt(&mut p.error, l.max_message_bytes).into_iter().collect(),
            Self::ToolCall(p) => opt(&mut p.error, l.max_message_bytes).into_iter().collect(),
            Self::AgentAction(p) => opt(&mut p.detail, l.max_message_bytes)
                .into_iter()
                .collect(),
            Self::UserMessage(p) => opt(&mut p.text, l.max_stack_trace_bytes)
                .into_iter()
                .collect(),
        }
    }

    pub(crate) fn check(&self, c: &mut Checker, l: &Limits) {
        match self {
            Self::FileEdit(p) => {
                c.text("data.path", &p.path, l.max_path_bytes);
                if let Some(op) = &p.operation {
                    if !FILE_OPS.contains(&op.as_str()) {
                        c.push(
                            "data.operation",
                            codes::INVALID_VALUE,
                            format!("{op:?} is not one of {}", FILE_OPS.join(", ")),
                        );
                    }
                }
            }
            Self::Command(p) => {
                c.text("data.command", &p.command, l.max_path_bytes);
                c.count("data.duration_ms", p.duration_ms);
                c.opt_text("data.output", p.output.as_deref(), l.max_stack_trace_bytes);
            }
            Self::TestRun(p) => {
                c.text("data.framework", &p.framework, l.max_name_bytes);
                c.count("data.duration_ms", p.duration_ms);
                c.opt_text("data.output", p.output.as_deref(), l.max_stack_trace_bytes);
            }
            Self::Error(p) => {
                c.text("data.message", &p.message, l.max_message_bytes);
                c.opt_text("data.error_type", p.error_type.as_deref(), l.max_name_bytes);
                c.opt_text(
                    "data.stack_trace",
                    p.stack_trace.as_deref(),
                    l.max_stack_trace_bytes,
                );
                c.opt_text("data.file", p.file.as_deref(), l.max_path_bytes);
            }
            Self::LlmCall(p) => {
                c.text("data.provider", &p.provider, l.max_name_bytes);
                c.count("data.input_tokens", Some(p.input_tokens));
                c.count("data.output_tokens", Some(p.output_tokens));
                c.count("data.latency_ms", p.latency_ms);
                c.text("data.model", &p.model, l.max_name_bytes);
                c.opt_text("data.error", p.error.as_deref(), l.max_message_bytes);
                if let Some(cost) = p.cost_usd {
                    if !cost.is_finite() || !(0.0..=MAX_COST_USD).contains(&cost) {
                        c.push(
                            "data.cost_usd",
                            codes::INVALID_VALUE,
                            format!(
                                "{cost} is not an amount between 0 and {MAX_COST_USD} US dollars"
                            ),
                        );
                    }
                }
            }
            Self::ToolCall(p) => {
                c.text("data.tool", &p.tool, l.max_name_bytes);
                c.count("data.duration_ms", p.duration_ms);
                c.opt_text("data.error", p.error.as_deref(), l.max_message_bytes);
            }
            Self::AgentAction(p) => {
                c.text("data.action", &p.action, l.max_name_bytes);
                c.count("data.duration_ms", p.duration_ms);
                c.opt_text("data.detail", p.detail.as_deref(), l.max_message_bytes);
            }
            Self::UserMessage(p) => {
                c.opt_text("data.text", p.text.as_deref(), l.max_stack_trace_bytes);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `data()` builds the object by hand; it must equal what serde makes
    /// of the struct, since both the hash and `events.data` depend on it.
    #[test]
    fn data_matches_serde_for_every_kind() {
        let full = [
            (
                EventKind::FileEdit,
                json!({"path": "a.rs", "lines_added": 3, "lines_removed": 1, "operation": "modify"}),
            ),
            (EventKind::FileEdit, json!({"path": "a.rs"})),
            (
                EventKind::Command,
                json!({"command": "ls", "exit_code": -1, "duration_ms": 9007199254740991u64, "output": "x"}),
            ),
            (EventKind::Command, json!({"command": "ls"})),
            (
                EventKind::TestRun,
                json!({"framework": "pytest", "passed": 1, "failed": 2, "skipped": 3, "duration_ms": 4, "output": "o"}),
            ),
            (
                EventKind::Error,
                json!({"message": "m", "error_type": "E", "stack_trace": "s", "file": "f", "line": 7}),
            ),
            (
                EventKind::LlmCall,
                json!({"provider": "p", "model": "m", "input_tokens": 1, "output_tokens": 2, "cost_usd": 0.125, "latency_ms": 3, "status": "timeout", "error": "e"}),
            ),
            (
                EventKind::LlmCall,
                json!({"provider": "p", "model": "m", "status": "ok"}),
            ),
            (
                EventKind::ToolCall,
                json!({"tool": "t", "status": "cancelled", "duration_ms": 1, "error": "e"}),
            ),
            (
                EventKind::AgentAction,
                json!({"action": "a", "status": "error", "duration_ms": 1, "detail": "d"}),
            ),
            (EventKind::AgentAction, json!({"action": "a"})),
            (EventKind::UserMessage, json!({"text": "hi"})),
        ];
        for (kind, data) in full {
            let p = Payload::parse(kind, data).unwrap();
            let via_serde = match &p {
                Payload::FileEdit(x) => serde_json::to_value(x),
                Payload::Command(x) => serde_json::to_value(x),
                Payload::TestRun(x) => serde_json::to_value(x),
                Payload::Error(x) => serde_json::to_value(x),
                Payload::LlmCall(x) => serde_json::to_value(x),
                Payload::ToolCall(x) => serde_json::to_value(x),
                Payload::AgentAction(x) => serde_json::to_value(x),
                Payload::UserMessage(x) => serde_json::to_value(x),
            }
            .unwrap();
            assert_eq!(p.data(), via_serde, "{kind:?}");
        }
    }

    #[test]
    fn numbers_beyond_the_safe_range_are_refused_by_name() {
        let l = Limits::default();
        let p = Payload::parse(
            EventKind::Command,
            json!({"command": "sleep", "duration_ms": 9223372036854775808u64}),
        )
        .unwrap();
        let mut c = Checker::new();
        p.check(&mut c, &l);
        let errs = c.into_errors();
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].field, "data.duration_ms");
        assert_eq!(errs[0].code, codes::OUT_OF_RANGE);
        let p = Payload::parse(
            EventKind::LlmCall,
            json!({"provider": "p", "model": "m", "status": "ok", "cost_usd": 1e308,
                   "input_tokens": 18446744073709551615u64}),
        )
        .unwrap();
        let mut c = Checker::new();
        p.check(&mut c, &l);
        let fields: Vec<_> = c.into_errors().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["data.input_tokens", "data.cost_usd"]);
    }

    #[test]
    fn unknown_field_is_named() {
        let err = Payload::parse(EventKind::Command, json!({"command": "ls", "exitcode": 1}))
            .unwrap_err();
        assert_eq!(err[0].field, "data.exitcode");
        assert!(
            err[0].message.contains("unknown field `exitcode`"),
            "{}",
            err[0].message
        );
    }

    #[test]
    fn wrong_type_is_named() {
        let err = Payload::parse(
            EventKind::TestRun,
            json!({"framework": "pytest", "passed": -1, "failed": 0}),
        )
        .unwrap_err();
        assert_eq!(err[0].field, "data.passed");
    }

    #[test]
    fn missing_field_is_reported() {
        let err = Payload::parse(EventKind::Error, json!({})).unwrap_err();
        assert!(err[0].message.contains("missing field `message`"));
    }

    #[test]
    fn failure_rules() {
        let cmd = |code| {
            Payload::Command(Command {
                command: "cargo test".into(),
                exit_code: code,
                duration_ms: None,
                output: None,
            })
        };
        assert!(cmd(Some(101)).is_failure());
        assert!(!cmd(Some(0)).is_failure());
        assert!(!cmd(None).is_failure(), "a running command has not failed");
        let p = Payload::parse(
            EventKind::TestRun,
            json!({"framework": "pytest", "passed": 3, "failed": 1}),
        )
        .unwrap();
        assert!(p.is_failure());
    }

    #[test]
    fn negative_cost_and_bad_operation_are_rejected() {
        let p = Payload::parse(
            EventKind::LlmCall,
            json!({"provider": "openai", "model": "gpt", "cost_usd": -1.0, "status": "ok"}),
        )
        .unwrap();
        let mut c = Checker::new();
        p.check(&mut c, &Limits::default());
        let p = Payload::parse(
            EventKind::FileEdit,
            json!({"path": "a.rs", "operation": "smash"}),
        )
        .unwrap();
        p.check(&mut c, &Limits::default());
        let fields: Vec<_> = c.into_errors().into_iter().map(|e| e.field).collect();
        assert_eq!(fields, vec!["data.cost_usd", "data.operation"]);
    }

    #[test]
    fn data_omits_absent_options() {
        let p = Payload::parse(EventKind::UserMessage, json!({})).unwrap();
        assert_eq!(p.data(), json!({}));
    }
}
