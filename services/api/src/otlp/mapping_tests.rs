//! The mapping table of docs/otlp.md, row by row.

use super::*;
use chrono::TimeZone;

fn attrs(v: Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => Map::new(),
    }
}

fn log(name: &str, a: Value) -> Source {
    Source {
        signal: Signal::Logs,
        name: name.into(),
        at: Utc.with_ymd_and_hms(2026, 11, 21, 10, 0, 0).unwrap(),
        attrs: attrs(a),
        body: Some(json!(name)),
        severity: 9,
        failed: None,
        status_message: None,
        duration_ms: None,
        id: None,
        parent_id: None,
        otel: attrs(json!({"otel.name": name})),
    }
}

fn span(name: &str, a: Value, failed: Option<bool>) -> Source {
    Source {
        signal: Signal::Traces,
        duration_ms: Some(1500),
        failed,
        id: Some("0190b3a2-7c1e-8a51-9d7e-2f1b8c7d6e5f".into()),
        body: None,
        ..log(name, a)
    }
}

fn event(s: &Source) -> (EventSubmission, Option<String>) {
    match map(s, &Limits::default()) {
        Mapped::Event { submission, twin } => (submission, twin),
        Mapped::End { .. } => panic!("{} mapped to a session end", s.name),
    }
}

fn kind_data(s: &Source) -> (String, Value, Value, String) {
    let (sub, _) = event(s);
    (
        sub.kind.unwrap(),
        sub.data.unwrap(),
        sub.attributes.unwrap(),
        sub.actor.unwrap(),
    )
}

#[test]
fn api_request_is_an_llm_call_with_tokens_cost_and_latency() {
    let s = log(
        "claude_code.api_request",
        json!({"session.id": "s", "model": "claude-sonnet-4-5", "cost_usd": "0.0123",
               "duration_ms": "2100", "input_tokens": "1200", "output_tokens": "300",
               "cache_read_tokens": "5000", "request_id": "req_1", "event.name": "api_request"}),
    );
    let (kind, data, attrs, actor) = kind_data(&s);
    assert_eq!(kind, "llm_call");
    assert_eq!(actor, "agent");
    assert_eq!(
        data,
        json!({"provider": "anthropic", "model": "claude-sonnet-4-5", "input_tokens": 1200,
               "output_tokens": 300, "cost_usd": 0.0123, "latency_ms": 2100, "status": "ok"})
    );
    // What data does not hold stays; what it holds is not repeated.
    assert_eq!(attrs["cache_read_tokens"], "5000");
    assert_eq!(attrs["otel.name"], "claude_code.api_request");
    assert!(attrs.get("cost_usd").is_none() && attrs.get("session.id").is_none());
    assert_eq!(event(&s).1.as_deref(), Some("request:req_1"));
}

#[test]
fn api_error_is_an_error() {
    let (kind, data, attrs, _) = kind_data(&log(
        "claude_code.api_error",
        json!({"error": "overloaded_error", "status_code": "529", "attempt": "2", "model": "m"}),
    ));
    assert_eq!(kind, "error");
    assert_eq!(
        data,
        json!({"message": "overloaded_error", "error_type": "api_error"})
    );
    assert_eq!(attrs["status_code"], "529");
}

#[test]
fn user_prompt_keeps_content_only_when_sent() {
    let (kind, data, attrs, actor) = kind_data(&log(
        "claude_code.user_prompt",
        json!({"prompt_length": "12", "prompt": "fix the test"}),
    ));
    assert_eq!((kind.as_str(), actor.as_str()), ("user_message", "human"));
    assert_eq!(data, json!({"text": "fix the test"}));
    assert_eq!(attrs["prompt_length"], "12");
    let (_, data, _, _) = kind_data(&log(
        "claude_code.user_prompt",
        json!({"prompt_length": "12"}),
    ));
    assert_eq!(data, json!({}));
}

#[test]
fn edit_tools_with_a_path_are_file_edits_unless_they_failed() {
    let ok = log(
        "claude_code.tool_result",
        json!({"tool_name": "Edit", "success": "true", "duration_ms": "40",
               "tool_parameters": "{\"file_path\": \"src/lib.rs\"}", "tool_use_id": "toolu_1"}),
    );
    let (kind, data, attrs, _) = kind_data(&ok);
    assert_eq!(kind, "file_edit");
    assert_eq!(data, json!({"path": "src/lib.rs", "operation": "modify"}));
    assert_eq!(attrs["tool_name"], "Edit");
    assert_eq!(event(&ok).1.as_deref(), Some("tool:toolu_1"));
    let failed = log(
        "claude_code.tool_result",
        json!({"tool_name": "Write", "success": "false", "error": "permission denied",
               "tool_input": "{\"file_path\": \"/etc/x\"}"}),
    );
    let (kind, data, _, _) = kind_data(&failed);
    assert_eq!(kind, "tool_call");
    assert_eq!(
        data,
        json!({"tool": "Write", "status": "error", "error": "permission denied"})
    );
}

#[test]
fn shell_tools_are_commands_with_their_exit_code() {
    let failing = log(
        "claude_code.tool_result",
        json!({"tool_name": "Bash", "success": "false", "duration_ms": "8200",
               "error": "Exit code 101\nerror[E0425]: cannot find value `x`",
               "tool_parameters": "{\"bash_command\": \"cargo\", \"full_command\": \"cargo test\"}"}),
    );
    let (kind, data, _, _) = kind_data(&failing);
    assert_eq!(kind, "command");
    assert_eq!(data["command"], "cargo test");
    assert_eq!(data["exit_code"], 101);
    assert_eq!(data["duration_ms"], 8200);
    assert!(data["output"].as_str().unwrap().contains("E0425"));
    // Failed, but no code anywhere: 1, and the event says it was inferred.
    let (_, data, attrs, _) = kind_data(&log(
        "claude_code.tool_result",
        json!({"tool_name": "Bash", "success": "false", "error": "killed",
               "tool_parameters": "{\"bash_command\": \"sleep 999\"}"}),
    ));
    assert_eq!(data["exit_code"], 1);
    assert_eq!(attrs["otel.exit_code_inferred"], true);
    let (_, data, _, _) = kind_data(&log(
        "claude_code.tool_result",
        json!({"tool_name": "Bash", "success": "true", "tool_parameters": "{\"bash_command\": \"ls\"}"}),
    ));
    assert_eq!(data["exit_code"], 0);
}

#[test]
fn other_tools_are_tool_calls() {
    let (kind, data, _, _) = kind_data(&log(
        "claude_code.tool_result",
        json!({"tool_name": "Read", "success": "true", "duration_ms": "3",
               "tool_parameters": "{\"file_path\": \"a.rs\"}"}),
    ));
    assert_eq!(kind, "tool_call");
    assert_eq!(
        data,
        json!({"tool": "Read", "status": "ok", "duration_ms": 3})
    );
}

#[test]
fn tool_decisions_are_actions_of_whoever_decided() {
    let (kind, data, _, actor) = kind_data(&log(
        "claude_code.tool_decision",
        json!({"tool_name": "Bash", "decision": "reject", "source": "user_reject"}),
    ));
    assert_eq!((kind.as_str(), actor.as_str()), ("agent_action", "human"));
    assert_eq!(data["detail"], "Bash: reject (user_reject)");
    let (_, _, _, actor) = kind_data(&log(
        "claude_code.tool_decision",
        json!({"tool_name": "Read", "decision": "accept", "source": "config"}),
    ));
    assert_eq!(actor, "system");
}

#[test]
fn session_end_events_end_the_session() {
    match map(
        &log("session.end", json!({"session.status": "failed"})),
        &Limits::default(),
    ) {
        Mapped::End { status, .. } => assert_eq!(status, "failed"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_logs_keep_everything_and_errors_by_severity_are_errors() {
    let (kind, data, attrs, actor) = kind_data(&log(
        "claude_code.mcp_server_connection",
        json!({"server": "github", "status": "connected"}),
    ));
    assert_eq!((kind.as_str(), actor.as_str()), ("agent_action", "system"));
    assert_eq!(data, json!({"action": "claude_code.mcp_server_connection"}));
    assert_eq!(attrs["server"], "github");
    let mut e = log("app.log", json!({"exception.type": "KeyError"}));
    e.severity = 17;
    e.body = Some(json!("boom: KeyError 'x'"));
    let (kind, data, _, _) = kind_data(&e);
    assert_eq!(kind, "error");
    assert_eq!(
        data,
        json!({"message": "boom: KeyError 'x'", "error_type": "KeyError"})
    );
}

#[test]
fn genai_chat_spans_are_llm_calls() {
    let s = span(
        "chat gpt-4o",
        json!({"gen_ai.operation.name": "chat", "gen_ai.provider.name": "openai",
               "gen_ai.request.model": "gpt-4o", "gen_ai.response.model": "gpt-4o-2024-08-06",
               "gen_ai.usage.input_tokens": 100, "gen_ai.usage.output_tokens": 20}),
        None,
    );
    let (kind, data, attrs, _) = kind_data(&s);
    assert_eq!(kind, "llm_call");
    assert_eq!(data["provider"], "openai");
    assert_eq!(data["model"], "gpt-4o-2024-08-06");
    assert_eq!(data["latency_ms"], 1500);
    assert_eq!(data["status"], "ok");
    assert_eq!(attrs["gen_ai.request.model"], "gpt-4o");
    let mut failed = s.clone();
    failed.failed = Some(true);
    failed.status_message = Some("rate limited".into());
    let (_, data, _, _) = kind_data(&failed);
    assert_eq!(
        (data["status"].as_str(), data["error"].as_str()),
        (Some("error"), Some("rate limited"))
    );
}

#[test]
fn genai_tool_spans_follow_the_tool_rules() {
    let s = span(
        "execute_tool apply_patch",
        json!({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "edit_file",
               "gen_ai.tool.call.arguments": "{\"target_file\": \"app.py\"}"}),
        Some(false),
    );
    let (kind, data, _, _) = kind_data(&s);
    assert_eq!(kind, "file_edit");
    assert_eq!(data["path"], "app.py");
    let s = span(
        "execute_tool shell",
        json!({"gen_ai.operation.name": "execute_tool", "gen_ai.tool.name": "shell",
               "gen_ai.tool.call.arguments": {"command": ["pytest", "-q"]}, "error.type": "exit_status"}),
        Some(true),
    );
    let (kind, data, _, _) = kind_data(&s);
    assert_eq!(kind, "command");
    assert_eq!(
        (data["command"].as_str(), data["exit_code"].as_i64()),
        (Some("pytest -q"), Some(1))
    );
    // Claude Code's own tool span, with its twin key.
    let s = span(
        "claude_code.tool",
        json!({"tool_name": "Write", "file_path": "b.rs", "tool_use_id": "toolu_9"}),
        None,
    );
    let (sub, twin) = event(&s);
    assert_eq!(sub.kind.as_deref(), Some("file_edit"));
    assert_eq!(twin.as_deref(), Some("tool:toolu_9"));
    assert_eq!(sub.id, s.id, "spans keep their derived id");
}

#[test]
fn agent_and_other_spans_are_actions() {
    let (kind, data, _, actor) = kind_data(&span(
        "invoke_agent planner",
        json!({"gen_ai.operation.name": "invoke_agent", "gen_ai.agent.name": "planner"}),
        Some(false),
    ));
    assert_eq!((kind.as_str(), actor.as_str()), ("agent_action", "agent"));
    assert_eq!(
        data,
        json!({"action": "invoke_agent planner", "status": "ok", "duration_ms": 1500})
    );
    let (kind, data, _, actor) = kind_data(&span("claude_code.interaction", json!({}), None));
    assert_eq!((kind.as_str(), actor.as_str()), ("agent_action", "system"));
    assert_eq!(data["action"], "claude_code.interaction");
}

#[test]
fn oversized_texts_are_cut_and_oversized_attributes_dropped_by_name() {
    let limits = Limits::default();
    let big = "x".repeat(limits.max_attributes_bytes);
    let s = log(
        "claude_code.user_prompt",
        json!({"prompt": "p".repeat(limits.max_stack_trace_bytes + 10), "blob": big, "small": 1}),
    );
    let (_, data, attrs, _) = kind_data(&s);
    assert_eq!(
        data["text"].as_str().unwrap().len(),
        limits.max_stack_trace_bytes
    );
    assert_eq!(attrs["otel.truncated"], json!(["data.text"]));
    assert_eq!(attrs["otel.dropped_attributes"], json!(["blob"]));
    assert_eq!(attrs["small"], 1);
}

#[test]
fn span_exceptions_become_child_error_events() {
    let s = span("db.query", json!({}), Some(true));
    let at = s.at;
    let errs = exceptions(
        &s,
        &[(
            at,
            attrs(
                json!({"exception.message": "connection reset", "exception.type": "IOError",
                         "exception.stacktrace": "at x"}),
            ),
        )],
        &Limits::default(),
    );
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].kind.as_deref(), Some("error"));
    assert_eq!(errs[0].parent_id, s.id);
    assert_eq!(
        errs[0].data,
        Some(
            json!({"message": "connection reset", "error_type": "IOError", "stack_trace": "at x"})
        )
    );
}
