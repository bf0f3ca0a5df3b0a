//! The `achilles` binary against a stand-in API (axum on 127.0.0.1:0) that
//! answers with the documented shapes: the answers commands print tables
//! a person reads, pass their filters on, and `insights --follow` resumes
//! a dropped stream with `Last-Event-ID`.

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;

#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<String>>>);

async fn fake_api() -> (String, Seen) {
    async fn answer(State(seen): State<Seen>, req: Request) -> Response {
        let auth = req
            .headers()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let last = req
            .headers()
            .get("last-event-id")
            .and_then(|v| v.to_str().ok())
            .map(|v| format!(" last-event-id={v}"))
            .unwrap_or_default();
        let uri = req.uri().to_string();
        seen.0
            .lock()
            .unwrap()
            .push(format!("{} {uri}{last}", req.method()));
        if auth != "Bearer test-key-0123456789" {
            return (
                StatusCode::UNAUTHORIZED,
                Json(json!({"error": {"code": "unauthorized", "message": "no"}})),
            )
                .into_response();
        }
        let path = req.uri().path();
        let body = match path {
            "/v1/sessions" => json!({"sessions": [
                {"session_id": "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f", "agent_name": "claude-code",
                 "agent_model": "claude-sonnet-4-5", "status": "completed", "started_at": "2026-11-21T10:00:00Z",
                 "duration_ms": 754000, "event_count": 120, "error_count": 9, "success_rate": 0.8125,
                 "induced_errors": 2, "input_tokens": 90000, "output_tokens": 10000, "cost_usd": 1.25}],
                 "next_cursor": "1763719200000000_0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f"}),
            "/v1/clusters" => {
                json!({"since": "2026-11-14T10:00:00Z", "until": "2026-11-21T10:00:00Z", "clusters": [
                {"cluster_id": "c1", "template": "cannot find value <*> in this scope", "sessions": 7, "occurrences": 31,
                 "previous_sessions": 2, "previous_occurrences": 4, "trend": "rising", "last_seen": "2026-11-21T09:00:00Z"}]})
            }
            "/v1/agents/leaderboard" => {
                json!({"since": "2026-10-22T10:00:00Z", "until": "2026-11-21T10:00:00Z", "agents": [
                {"agent_name": "aider", "agent_model": "gpt-4o", "sessions": 12, "actions": 400, "success_rate": 0.91,
                 "induced_errors_per_100_actions": 1.5, "mean_time_to_fix_ms": 95000.0,
                 "tokens_per_successful_action": 812.4, "cost_per_successful_action": 0.0123, "cost_usd": 4.48},
                {"agent_name": "claude-code", "agent_model": "claude-sonnet-4-5", "sessions": 30, "actions": 2100,
                 "success_rate": 0.83, "induced_errors_per_100_actions": 3.2, "mean_time_to_fix_ms": null,
                 "tokens_per_successful_action": null, "cost_per_successful_action": null, "cost_usd": 20.0}]})
            }
            "/v1/webhooks" if req.method() == "POST" => {
                json!({"id": "0190b3a2-0000-7000-8000-000000000001",
                 "url": "https://hooks.example.com/a", "severities": ["critical"], "secret": "whsec_abc"})
            }
            p if p.ends_with("/judge") && req.method() == "POST" => {
                return (
                    StatusCode::ACCEPTED,
                    Json(json!({"session_id": "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f", "status": "queued",
                     "session_status": "timed_out", "event_count": 42})),
                )
                    .into_response();
            }
            "/v1/insights/stream" => {
                let events = if last.is_empty() {
                    "id: 1\nevent: raised\ndata: {\"type\":\"command_loop\",\"severity\":\"warning\",\"title\":\"loop\"}\n\n: heartbeat\n\nid: 2\nevent: resolved\ndata: {\"type\":\"command_loop\",\"severity\":\"warning\",\"title\":\"loop\"}\n\n"
                } else {
                    "id: 3\nevent: raised\ndata: {\"type\":\"runaway_cost\",\"severity\":\"critical\",\"title\":\"cost\"}\n\n"
                };
                return ([("content-type", "text/event-stream")], events).into_response();
            }
            _ => return StatusCode::NOT_FOUND.into_response(),
        };
        Json(body).into_response()
    }
    let seen = Seen::default();
    let app = Router::new()
        .fallback(get(answer).post(answer))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

fn achilles(base: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_achilles"));
    cmd.args(args)
        .env("ACHILLES_API_URL", base)
        .env("ACHILLES_API_KEY", "test-key-0123456789");
    cmd
}

async fn run(base: &str, args: &[&str]) -> (String, String) {
    let mut cmd = achilles(base, args);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("achilles runs"))
        .await
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{args:?}: {stdout}\n{stderr}");
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread")]
async fn answers_print_tables_and_pass_their_filters() {
    let (base, seen) = fake_api().await;
    let (out, err) = run(
        &base,
        &[
            "sessions",
            "--agent",
            "claude-code",
            "--since",
            "7d",
            "--status",
            "completed",
        ],
    )
    .await;
    let lines: Vec<&str> = out.lines().collect();
    assert!(
        lines[0].starts_with("SESSION") && lines[0].contains("SUCCESS"),
        "{out}"
    );
    assert!(
        lines[1].contains("claude-code")
            && lines[1].contains("81.2%")
            && lines[1].contains("12.6m")
            && lines[1].contains("$1.2500"),
        "{out}"
    );
    assert_eq!(
        lines[0].find("AGENT"),
        lines[1].find("claude-code"),
        "columns align:\n{out}"
    );
    assert!(err.contains("more: --after 1763719200000000_"), "{err}");

    let (out, _) = run(&base, &["clusters", "--since", "7d"]).await;
    assert!(
        out.contains("rising") && out.contains("cannot find value <*> in this scope"),
        "{out}"
    );
    let (out, _) = run(&base, &["leaderboard"]).await;
    let rows: Vec<&str> = out
        .lines()
        .filter(|l| l.contains("aider") || l.contains("claude-code"))
        .collect();
    assert!(
        rows[0].contains("91.0%") && rows[0].contains("1.6m") && rows[0].contains("$0.0123"),
        "{out}"
    );
    assert!(
        rows[1].contains(" - "),
        "missing figures print as '-': {out}"
    );

    let (out, err) = run(
        &base,
        &[
            "webhooks",
            "add",
            "https://hooks.example.com/a",
            "--severity",
            "critical",
        ],
    )
    .await;
    assert!(
        out.contains("secret  whsec_abc") && out.contains("severities=critical"),
        "{out}"
    );
    assert!(err.contains("not shown again"));

    let seen = seen.0.lock().unwrap().clone();
    assert!(
        seen.iter().any(|r| r.starts_with("GET /v1/sessions?")
            && r.contains("agent=claude-code")
            && r.contains("since=7d")
            && r.contains("status=completed")),
        "{seen:?}"
    );
    assert!(seen.iter().any(|r| r == "POST /v1/webhooks"), "{seen:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn insights_follow_resumes_after_the_last_event() {
    let (base, seen) = fake_api().await;
    let mut child = achilles(&base, &["insights", "--follow"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("achilles runs");
    let stdout = child.stdout.take().unwrap();
    let lines = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .take(3)
            .map(Result::unwrap)
            .collect::<Vec<_>>()
    });
    let lines = tokio::time::timeout(Duration::from_secs(30), lines)
        .await
        .expect("three events")
        .unwrap();
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        lines[0].contains("raised") && lines[0].contains("command_loop"),
        "{lines:?}"
    );
    assert!(lines[1].contains("resolved"), "{lines:?}");
    assert!(
        lines[2].contains("runaway_cost") && lines[2].contains("critical"),
        "{lines:?}"
    );
    let seen = seen.0.lock().unwrap().clone();
    assert!(
        seen.iter().any(|r| r.ends_with("last-event-id=2")),
        "resumed after event 2: {seen:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn session_judge_posts_to_the_judge_route() {
    let (base, seen) = fake_api().await;
    let id = "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f";
    let (_, err) = run(&base, &["session", "judge", id]).await;
    assert!(
        err.contains("timed_out") && err.contains("42 events") && err.contains("queued"),
        "{err}"
    );
    let seen = seen.0.lock().unwrap().clone();
    assert!(
        seen.iter()
            .any(|r| r == &format!("POST /v1/sessions/{id}/judge")),
        "{seen:?}"
    );
}
