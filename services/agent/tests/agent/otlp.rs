//! A Claude Code session exported over OTLP by a real OpenTelemetry SDK,
//! through the whole pipeline: the processor finds the induced error and
//! its fix, the agent judges the session, and the cross-session answers
//! show it.

use std::time::{Duration as StdDuration, SystemTime};

use achilles_test_support::otlp::{Exporter, Wire};
use opentelemetry::logs::Severity;

use super::*;

#[tokio::test]
async fn a_claude_code_session_over_otlp_gets_correlations_a_verdict_and_a_leaderboard_row() {
    let st = spawn_stack().await;
    let sid = uuid::Uuid::new_v4().to_string();
    let t0 = SystemTime::now() - StdDuration::from_secs(600);
    let at = |s: u64| t0 + StdDuration::from_secs(s);
    let wire = Wire {
        json: false,
        gzip: true,
        bearer: false,
    };
    let x = Exporter::new(&st.base, ACME, wire, "claude-code", &[]);
    x.claude_event("user_prompt", &sid, at(0), &[("prompt_length", "14")]);
    x.claude_event(
        "api_request",
        &sid,
        at(1),
        &[
            ("model", "claude-sonnet-4-5"),
            ("cost_usd", "0.02"),
            ("input_tokens", "1500"),
            ("output_tokens", "500"),
            ("duration_ms", "3000"),
        ],
    );
    let edit = |s: u64| {
        x.claude_event(
            "tool_result",
            &sid,
            at(s),
            &[
                ("tool_name", "Edit"),
                ("success", "true"),
                ("tool_parameters", r#"{"file_path":"src/lib.rs"}"#),
            ],
        )
    };
    edit(5);
    x.claude_event(
        "tool_result",
        &sid,
        at(10),
        &[
            ("tool_name", "Bash"),
            ("success", "false"),
            (
                "error",
                "Exit code 101\nerror[E0425]: cannot find value `x` in this scope\n --> src/lib.rs:7:5",
            ),
            ("tool_parameters", r#"{"bash_command":"cargo","full_command":"cargo test"}"#),
        ],
    );
    edit(20);
    x.claude_event(
        "tool_result",
        &sid,
        at(30),
        &[
            ("tool_name", "Bash"),
            ("success", "true"),
            (
                "tool_parameters",
                r#"{"bash_command":"cargo","full_command":"cargo test"}"#,
            ),
        ],
    );
    x.log(
        "session.end",
        at(40),
        Severity::Info,
        &[("session.id", sid.as_str())],
    );
    x.flush().await;

    // The failing test run names the edited file: an induced error, fixed
    // 20 s later by the passing run after the second edit.
    let perf = st.wait_judged(&sid).await;
    let row = &perf["agents"][0];
    assert_eq!(row["agent_name"], "claude-code");
    assert_eq!(
        row["total_actions"], 5,
        "2 edits, 2 commands, 1 LLM call: {row}"
    );
    assert_eq!(row["induced_error_count"], 1);
    assert_eq!(row["break_fix_cycles"], 1);
    assert_eq!(row["mean_time_to_fix_ms"], 20_000.0);
    assert_eq!(
        row["success_rate"], 0.6,
        "the failing run and the inducing edit"
    );
    assert_eq!(row["total_tokens"], 2000);
    let (_, corr) = st
        .get(ACME, &format!("/v1/sessions/{sid}/correlations"))
        .await;
    // The claims (confidence >= 0.5): the edit of src/lib.rs the failure names.
    let same_file: Vec<_> = corr["correlations"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["confidence"].as_f64().is_some_and(|x| x >= 0.5))
        .collect();
    assert_eq!(same_file.len(), 1, "{corr}");
    assert_eq!(same_file[0]["file_path"], "src/lib.rs");
    assert!(same_file[0]["confidence"].as_f64().unwrap() >= 0.5);
    assert!(same_file[0]["fixed_at"].is_string());

    // The summary names the induced error, its cause and its fix.
    let (_, summary) = st.get(ACME, &format!("/v1/sessions/{sid}/summary")).await;
    let induced = summary["induced_errors"].as_array().unwrap();
    assert_eq!(induced.len(), 1, "{summary}");
    assert_eq!(
        (
            induced[0]["effect_kind"].as_str(),
            induced[0]["effect_summary"].as_str()
        ),
        (Some("command"), Some("cargo test (exit 101)"))
    );
    assert_eq!(induced[0]["file_path"], "src/lib.rs");
    assert_eq!(induced[0]["time_to_fix_ms"], 20_000.0);

    // The answers across sessions count it.
    let (status, lb) = st.get(ACME, "/v1/agents/leaderboard?since=1d").await;
    assert_eq!(status, StatusCode::OK, "{lb}");
    let a = &lb["agents"][0];
    assert_eq!(
        (
            a["agent_name"].as_str(),
            a["agent_model"].as_str(),
            a["sessions"].as_i64()
        ),
        (Some("claude-code"), Some("claude-sonnet-4-5"), Some(1))
    );
    assert_eq!(a["induced_errors"], 1);
    assert_eq!(a["induced_errors_per_100_actions"], 20.0);
    assert_eq!(a["mean_time_to_fix_ms"], 20_000.0);
    assert_eq!(a["cost_per_successful_action"], 0.02 / 3.0);
    let (_, sessions) = st.get(ACME, "/v1/sessions?agent=claude-code").await;
    assert_eq!(sessions["sessions"][0]["session_id"], sid.as_str());
    assert_eq!(sessions["sessions"][0]["status"], "completed");
    let (_, clusters) = st.get(ACME, "/v1/clusters?since=1d").await;
    assert_eq!(
        clusters["clusters"].as_array().unwrap().len(),
        1,
        "{clusters}"
    );
}
