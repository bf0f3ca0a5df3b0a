//! OTLP records onto Achilles event kinds: the table of docs/otlp.md.
//!
//! One record becomes one event (a span's `exception` events add error
//! events of their own), built as an [`EventSubmission`] so it goes through
//! exactly the validation and hashing of `POST /v1/events/batch`. Nothing
//! is lost silently: what the kind's fields do not hold stays in the
//! event's attributes; text longer than a field's limit is cut and named in
//! `otel.truncated`; attributes beyond the attribute limits are dropped
//! largest first and named in `otel.dropped_attributes`.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Map, Value};

use achilles_core::model::submission::EventSubmission;
use achilles_core::model::Limits;

use super::attrs::{bool_of, f64_of, fit, object_of, str_of, u64_of};
use super::tools::{self, ToolKind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Logs,
    Traces,
}

impl Signal {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Logs => "logs",
            Self::Traces => "traces",
        }
    }
}

/// One log record or span, as the mapping sees it.
#[derive(Debug, Clone)]
pub struct Source {
    pub signal: Signal,
    /// The event name (`claude_code.api_request`, from `event.name`, the
    /// record's event name or its body) or the span name.
    pub name: String,
    pub at: DateTime<Utc>,
    pub attrs: Map<String, Value>,
    pub body: Option<Value>,
    /// OTLP severity number (logs); 17 and above is an error.
    pub severity: i32,
    /// Span status: `Some(true)` error, `Some(false)` ok, `None` unset.
    pub failed: Option<bool>,
    pub status_message: Option<String>,
    /// Span duration.
    pub duration_ms: Option<u64>,
    /// The event id derived from the span (spans only), and the parent
    /// span's (or, for a log record, the enclosing span's).
    pub id: Option<String>,
    pub parent_id: Option<String>,
    /// Attributes that identify the record in OTLP terms (`otel.*`).
    pub otel: Map<String, Value>,
}

/// What a record became.
#[derive(Debug)]
pub enum Mapped {
    Event {
        submission: EventSubmission,
        /// Claude Code describes one tool call or API request twice when
        /// both logs and traces are exported; this names the call so the
        /// second description can be recognised (see `memory.rs`).
        twin: Option<String>,
    },
    /// An explicit session end (`session.end` log event).
    End { status: String, at: DateTime<Utc> },
}

/// Event names of explicit session ends.
pub const END_EVENTS: &[&str] = &["session.end", "session_end", "achilles.session.end"];

/// The name without Claude Code's prefix, lower-case.
fn short(name: &str) -> String {
    name.strip_prefix("claude_code.")
        .unwrap_or(name)
        .to_ascii_lowercase()
}

fn is_claude_code(s: &Source) -> bool {
    s.name.starts_with("claude_code.")
        || str_of(&s.attrs, &["event.name"]).is_some_and(|n| n.starts_with("claude_code."))
}

/// Maps one record (and, for spans, its exception events via
/// [`exceptions`]).
pub fn map(s: &Source, limits: &Limits) -> Mapped {
    let name = short(&s.name);
    if s.signal == Signal::Logs && END_EVENTS.contains(&name.as_str()) {
        let status = str_of(&s.attrs, &["session.status", "status"])
            .map(|x| x.to_ascii_lowercase())
            .unwrap_or_else(|| "completed".into());
        return Mapped::End { status, at: s.at };
    }
    let mut b = Builder::new(s, limits);
    let op = str_of(&s.attrs, &["gen_ai.operation.name"]).map(|o| o.to_ascii_lowercase());
    let twin_id = |b: &Builder, keys: &[&str], what: &str| {
        is_claude_code(s)
            .then(|| str_of(&b.src.attrs, keys))
            .flatten()
            .map(|id| format!("{what}:{id}"))
    };
    let (kind, twin) = match (s.signal, name.as_str()) {
        (Signal::Logs, "user_prompt") => (b.user_message(), None),
        (Signal::Logs, "api_request") | (Signal::Traces, "llm_request") => {
            let t = twin_id(&b, &["request_id"], "request");
            (b.llm_call(), t)
        }
        (Signal::Logs, "api_error") => (b.api_error(), None),
        (Signal::Logs, "tool_result") | (Signal::Traces, "tool") => {
            let t = twin_id(&b, &["tool_use_id", "gen_ai.tool.call.id"], "tool");
            (b.tool(), t)
        }
        (Signal::Logs, "tool_decision") => (b.tool_decision(), None),
        (Signal::Traces, _) if op.as_deref() == Some("execute_tool") => (b.tool(), None),
        (Signal::Traces, _) if is_llm_span(s, op.as_deref()) => (b.llm_call(), None),
        (Signal::Traces, _) if matches!(op.as_deref(), Some("invoke_agent" | "create_agent")) => {
            (b.agent_step(op.as_deref().unwrap_or_default()), None)
        }
        (Signal::Traces, _) if s.attrs.contains_key("gen_ai.tool.name") => (b.tool(), None),
        _ if s.severity >= 17 || s.attrs.contains_key("exception.message") => (b.error(), None),
        _ => (b.other(), None),
    };
    Mapped::Event {
        submission: b.finish(kind),
        twin,
    }
}

fn is_llm_span(s: &Source, op: Option<&str>) -> bool {
    matches!(
        op,
        Some("chat" | "text_completion" | "generate_content" | "embeddings" | "completion")
    ) || (op.is_none()
        && (s.attrs.contains_key("gen_ai.request.model")
            || s.attrs.contains_key("gen_ai.usage.input_tokens")))
}

/// Builds one submission, remembering which attributes went into `data`
/// and which texts were cut.
struct Builder<'a> {
    src: &'a Source,
    limits: &'a Limits,
    data: Map<String, Value>,
    consumed: Vec<&'static str>,
    truncated: Vec<String>,
    /// `otel.*` notes about how the event was derived.
    notes: Map<String, Value>,
    actor: &'static str,
}

impl<'a> Builder<'a> {
    fn new(src: &'a Source, limits: &'a Limits) -> Self {
        Self {
            src,
            limits,
            data: Map::new(),
            consumed: Vec::new(),
            truncated: Vec::new(),
            notes: Map::new(),
            actor: "agent",
        }
    }

    /// Sets a text field, cut to `max` bytes.
    fn text(&mut self, field: &str, value: &str, max: usize) {
        let (v, cut) = fit(value, max);
        if cut {
            self.truncated.push(format!("data.{field}"));
        }
        self.data.insert(field.to_owned(), Value::String(v));
    }

    /// The first present of `keys`, marking it consumed.
    fn take_str(&mut self, keys: &[&'static str]) -> Option<String> {
        let k = keys
            .iter()
            .find(|k| str_of(&self.src.attrs, &[k]).is_some())?;
        self.consumed.push(k);
        str_of(&self.src.attrs, &[k])
    }

    fn take_u64(&mut self, keys: &[&'static str]) -> Option<u64> {
        let k = keys
            .iter()
            .find(|k| u64_of(&self.src.attrs, &[k]).is_some())?;
        self.consumed.push(k);
        u64_of(&self.src.attrs, &[k])
    }

    fn duration(&mut self) -> Option<u64> {
        self.take_u64(&["duration_ms"]).or(self.src.duration_ms)
    }

    /// Did it fail? Span status first, then `success`, then `error.type`.
    fn failed(&mut self) -> bool {
        if let Some(f) = self.src.failed {
            return f;
        }
        if let Some(ok) = bool_of(&self.src.attrs, &["success"]) {
            self.consumed.push("success");
            return !ok;
        }
        self.src.attrs.contains_key("error.type") || self.src.attrs.contains_key("error")
    }

    fn error_text(&mut self) -> Option<String> {
        self.take_str(&["error", "error.message"])
            .or_else(|| self.src.status_message.clone())
            .or_else(|| str_of(&self.src.attrs, &["error.type"]))
    }

    fn user_message(&mut self) -> &'static str {
        self.actor = "human";
        // Claude Code sends the prompt only with OTEL_LOG_USER_PROMPTS=1.
        if let Some(p) = self
            .take_str(&["prompt", "user_prompt"])
            .filter(|p| p != "<REDACTED>")
        {
            let max = self.limits.max_stack_trace_bytes;
            self.text("text", &p, max);
        }
        "user_message"
    }

    fn llm_call(&mut self) -> &'static str {
        let claude = is_claude_code(self.src);
        let provider = self
            .take_str(&["gen_ai.provider.name", "gen_ai.system"])
            .unwrap_or_else(|| if claude { "anthropic" } else { "unknown" }.into());
        let model = self
            .take_str(&["model", "gen_ai.response.model", "gen_ai.request.model"])
            .unwrap_or_else(|| "unknown".into());
        let name_max = self.limits.max_name_bytes;
        self.text("provider", &provider.to_ascii_lowercase(), name_max);
        self.text("model", &model, name_max);
        let tokens = [
            (
                "input_tokens",
                [
                    "input_tokens",
                    "gen_ai.usage.input_tokens",
                    "gen_ai.usage.prompt_tokens",
                ],
            ),
            (
                "output_tokens",
                [
                    "output_tokens",
                    "gen_ai.usage.output_tokens",
                    "gen_ai.usage.completion_tokens",
                ],
            ),
        ];
        for (field, keys) in tokens {
            if let Some(n) = self.take_u64(&keys) {
                self.data.insert(field.into(), n.into());
            }
        }
        if let Some(k) = ["cost_usd", "gen_ai.usage.cost"]
            .into_iter()
            .find(|k| f64_of(&self.src.attrs, &[k]).is_some_and(|c| c >= 0.0))
        {
            self.consumed.push(k);
            self.data
                .insert("cost_usd".into(), json!(f64_of(&self.src.attrs, &[k])));
        }
        if let Some(ms) = self.duration() {
            self.data.insert("latency_ms".into(), ms.into());
        }
        let failed = self.failed();
        self.data
            .insert("status".into(), json!(if failed { "error" } else { "ok" }));
        if failed {
            if let Some(e) = self.error_text() {
                let max = self.limits.max_message_bytes;
                self.text("error", &e, max);
            }
        }
        "llm_call"
    }

    fn api_error(&mut self) -> &'static str {
        let msg = self
            .take_str(&["error"])
            .or_else(|| str_of(&self.src.attrs, &["status_code"]).map(|c| format!("HTTP {c}")))
            .unwrap_or_else(|| "API error".into());
        let max = self.limits.max_message_bytes;
        self.text("message", &msg, max);
        self.data.insert("error_type".into(), json!("api_error"));
        "error"
    }

    /// The tool's input: attributes that carry it directly, then the JSON
    /// objects of `tool_parameters`, `tool_input` and
    /// `gen_ai.tool.call.arguments`.
    fn tool_args(&self) -> Map<String, Value> {
        let mut args = Map::new();
        for key in [
            "gen_ai.tool.call.arguments",
            "tool_input",
            "tool_parameters",
        ] {
            if let Some(o) = object_of(&self.src.attrs, key) {
                args.extend(o);
            }
        }
        for key in ["file_path", "command", "bash_command", "full_command"] {
            if let Some(v) = self.src.attrs.get(key) {
                args.insert(key.into(), v.clone());
            }
        }
        args
    }

    fn tool(&mut self) -> &'static str {
        // The name stays an attribute of edits and commands, which have no
        // field for it; a tool call holds it in `tool`.
        const NAME_KEYS: [&str; 2] = ["tool_name", "gen_ai.tool.name"];
        let tool = str_of(&self.src.attrs, &NAME_KEYS).unwrap_or_else(|| self.src.name.clone());
        let args = self.tool_args();
        let failed = self.failed();
        let duration = self.duration();
        let error = if failed { self.error_text() } else { None };
        match tools::classify(&tool, &args) {
            // A failed edit changed nothing: it stays a failed tool call.
            ToolKind::FileEdit { path, operation } if !failed => {
                let max = self.limits.max_path_bytes;
                self.text("path", &path, max);
                if let Some(op) = operation {
                    self.data.insert("operation".into(), json!(op));
                }
                self.consumed.push("file_path");
                "file_edit"
            }
            ToolKind::Shell { command } => {
                let max = self.limits.max_path_bytes;
                self.text("command", &command, max);
                let code = match tools::exit_code(&self.src.attrs, error.as_deref()) {
                    Some(c) => c,
                    None if !failed => 0,
                    None => {
                        // Failed without a code: 1, and the event says so.
                        self.notes
                            .insert("otel.exit_code_inferred".into(), json!(true));
                        1
                    }
                };
                self.data.insert("exit_code".into(), json!(code));
                if let Some(ms) = duration {
                    self.data.insert("duration_ms".into(), ms.into());
                }
                if let Some(e) = error {
                    let max = self.limits.max_stack_trace_bytes;
                    self.text("output", &e, max);
                }
                self.consumed.extend(["exit_code", "process.exit.code"]);
                "command"
            }
            _ => {
                let _ = self.take_str(&NAME_KEYS);
                let max = self.limits.max_name_bytes;
                self.text("tool", &tool, max);
                self.data
                    .insert("status".into(), json!(if failed { "error" } else { "ok" }));
                if let Some(ms) = duration {
                    self.data.insert("duration_ms".into(), ms.into());
                }
                if let Some(e) = error {
                    let max = self.limits.max_message_bytes;
                    self.text("error", &e, max);
                }
                "tool_call"
            }
        }
    }

    fn tool_decision(&mut self) -> &'static str {
        let source = str_of(&self.src.attrs, &["source", "decision_source"]).unwrap_or_default();
        // A person decided (user_*), or configuration and hooks did.
        self.actor = if source.starts_with("user") {
            "human"
        } else {
            "system"
        };
        let detail = format!(
            "{}: {} ({})",
            str_of(&self.src.attrs, &["tool_name"]).unwrap_or_default(),
            str_of(&self.src.attrs, &["decision"]).unwrap_or_default(),
            source
        );
        let max = self.limits.max_message_bytes;
        self.data.insert("action".into(), json!("tool_decision"));
        self.text("detail", &detail, max);
        "agent_action"
    }

    fn agent_step(&mut self, op: &str) -> &'static str {
        let agent = str_of(&self.src.attrs, &["gen_ai.agent.name"]);
        let action = agent.map_or_else(|| op.to_owned(), |a| format!("{op} {a}"));
        let max = self.limits.max_name_bytes;
        self.text("action", &action, max);
        self.step_status();
        "agent_action"
    }

    fn step_status(&mut self) {
        let failed = self.failed();
        self.data
            .insert("status".into(), json!(if failed { "error" } else { "ok" }));
        if let Some(ms) = self.duration() {
            self.data.insert("duration_ms".into(), ms.into());
        }
        if failed {
            if let Some(e) = self.error_text() {
                let max = self.limits.max_message_bytes;
                self.text("detail", &e, max);
            }
        }
    }

    fn error(&mut self) -> &'static str {
        let message = self
            .take_str(&["exception.message", "error", "error.message"])
            .or_else(|| body_text(self.src))
            .unwrap_or_else(|| self.src.name.clone());
        let max = self.limits.max_message_bytes;
        self.text("message", &message, max);
        if let Some(t) = self.take_str(&["exception.type", "error.type"]) {
            let max = self.limits.max_name_bytes;
            self.text("error_type", &t, max);
        }
        if let Some(st) = self.take_str(&["exception.stacktrace"]) {
            let max = self.limits.max_stack_trace_bytes;
            self.text("stack_trace", &st, max);
        }
        if let Some(f) = self.take_str(&["code.filepath", "code.file.path"]) {
            let max = self.limits.max_path_bytes;
            self.text("file", &f, max);
        }
        "error"
    }

    /// Anything else: an agent action of the system (not counted among the
    /// agent's actions), named after the record.
    fn other(&mut self) -> &'static str {
        self.actor = "system";
        let name = if self.src.name.is_empty() {
            "log".to_owned()
        } else {
            self.src.name.clone()
        };
        let max = self.limits.max_name_bytes;
        self.text("action", &name, max);
        if self.src.signal == Signal::Traces {
            self.step_status();
        } else if let Some(body) = body_text(self.src).filter(|b| *b != self.src.name) {
            let max = self.limits.max_message_bytes;
            self.text("detail", &body, max);
        }
        "agent_action"
    }

    /// The submission: data, and the attributes nothing else holds.
    fn finish(self, kind: &str) -> EventSubmission {
        let mut attributes: Map<String, Value> = self
            .src
            .attrs
            .iter()
            .filter(|(k, _)| !self.consumed.contains(&k.as_str()) && k.as_str() != "session.id")
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        attributes.extend(self.src.otel.clone());
        attributes.extend(self.notes);
        if !self.truncated.is_empty() {
            attributes.insert("otel.truncated".into(), json!(self.truncated));
        }
        fit_attributes(&mut attributes, self.limits);
        EventSubmission {
            id: self.src.id.clone(),
            session_id: None,
            occurred_at: Some(self.src.at.to_rfc3339_opts(SecondsFormat::Micros, true)),
            kind: Some(kind.to_owned()),
            actor: Some(self.actor.to_owned()),
            parent_id: self.src.parent_id.clone(),
            data: Some(Value::Object(self.data)),
            attributes: Some(Value::Object(attributes)),
        }
    }
}

fn body_text(s: &Source) -> Option<String> {
    match s.body.as_ref()? {
        Value::String(b) if !b.is_empty() => Some(b.clone()),
        Value::Null => None,
        other => Some(other.to_string()),
    }
}

/// Drops the largest attributes until the rest fits the attribute limits,
/// naming them in `otel.dropped_attributes`.
fn fit_attributes(attrs: &mut Map<String, Value>, limits: &Limits) {
    let size = |m: &Map<String, Value>| Value::Object(m.clone()).to_string().len();
    // Room for the list of dropped names itself.
    let budget_bytes = limits.max_attributes_bytes.saturating_sub(1024);
    let budget_keys = limits.max_attributes_keys.saturating_sub(1);
    if size(attrs) <= limits.max_attributes_bytes && attrs.len() <= limits.max_attributes_keys {
        return;
    }
    let mut dropped = Vec::new();
    while size(attrs) > budget_bytes || attrs.len() > budget_keys {
        let Some(largest) = attrs
            .iter()
            .max_by_key(|(k, v)| (v.to_string().len(), k.as_str() != "otel.name"))
            .map(|(k, _)| k.clone())
        else {
            break;
        };
        attrs.remove(&largest);
        dropped.push(largest);
    }
    attrs.insert("otel.dropped_attributes".into(), json!(dropped));
}

/// Error events for a span's `exception` events (OTel semantic
/// conventions: `exception.message`, `exception.type`,
/// `exception.stacktrace`), each a child of the span's event.
pub fn exceptions(
    span: &Source,
    events: &[(DateTime<Utc>, Map<String, Value>)],
    limits: &Limits,
) -> Vec<EventSubmission> {
    events
        .iter()
        .map(|(at, attrs)| {
            let s = Source {
                signal: Signal::Logs,
                name: "exception".into(),
                at: *at,
                attrs: attrs.clone(),
                body: None,
                severity: 17,
                failed: None,
                status_message: None,
                duration_ms: None,
                id: None,
                parent_id: span.id.clone(),
                otel: span
                    .otel
                    .iter()
                    .filter(|(k, _)| k.as_str() != "otel.name")
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .chain([("otel.name".to_owned(), json!("exception"))])
                    .collect(),
            };
            let mut b = Builder::new(&s, limits);
            let kind = b.error();
            b.finish(kind)
        })
        .collect()
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
