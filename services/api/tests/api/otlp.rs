//! OTLP ingest (`POST /v1/logs`, `POST /v1/traces`) with a real
//! OpenTelemetry SDK exporter: Claude Code-shaped events over protobuf,
//! GenAI spans over JSON with gzip, and the OTLP error and partial-success
//! contract with hand-built requests.

use std::time::{Duration, SystemTime};

use achilles_test_support::otlp::{Exporter, Wire};
use opentelemetry::logs::Severity;
use opentelemetry::trace::{Span, SpanKind, Status, TraceContextExt, Tracer};
use opentelemetry::{Context, KeyValue};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::common::v1::{any_value, AnyValue, KeyValue as PKeyValue};
use opentelemetry_proto::tonic::logs::v1::{LogRecord, ResourceLogs, ScopeLogs};
use prost::Message;

use super::*;

async fn json_of(app: &TestApp, sql: &str) -> Value {
    sqlx::query_scalar::<_, Value>(sql)
        .fetch_one(&app.db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

/// Landed events of a session as `{kind, actor, data, attributes, parent_id}`, in time order.
async fn landed(app: &TestApp, sid: &str) -> Vec<Value> {
    let v = json_of(
        app,
        &format!(
            "SELECT coalesce(json_agg(json_build_object('kind', kind, 'actor', actor, 'data', data,
                 'attributes', attributes, 'id', id, 'parent_id', parent_id, 'failure', is_failure)
                 ORDER BY occurred_at, id), '[]') FROM events WHERE session_id = '{sid}'"
        ),
    )
    .await;
    v.as_array().cloned().unwrap_or_default()
}

fn of_kind<'a>(events: &'a [Value], kind: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["kind"] == kind).collect()
}

fn ago(secs: u64) -> SystemTime {
    SystemTime::now() - Duration::from_secs(secs)
}

/// One Claude Code session, as its events exporter sends it.
fn claude_session(x: &Exporter, sid: &str, t0: SystemTime) {
    let ago = |secs: u64| t0 - Duration::from_secs(secs);
    x.claude_event(
        "user_prompt",
        sid,
        ago(60),
        &[
            ("prompt_length", "26"),
            ("prompt", "make the tests pass please"),
        ],
    );
    x.claude_event(
        "api_request",
        sid,
        ago(55),
        &[
            ("model", "claude-sonnet-4-5"),
            ("cost_usd", "0.0123"),
            ("duration_ms", "2100"),
            ("input_tokens", "1200"),
            ("output_tokens", "300"),
            ("cache_read_tokens", "4000"),
            ("request_id", "req_01"),
        ],
    );
    x.claude_event(
        "tool_result",
        sid,
        ago(50),
        &[
            ("tool_name", "Edit"),
            ("success", "true"),
            ("duration_ms", "35"),
            ("tool_parameters", r#"{"file_path":"src/lib.rs"}"#),
            ("tool_use_id", "toolu_01"),
        ],
    );
    x.claude_event(
        "tool_result",
        sid,
        ago(45),
        &[
            ("tool_name", "Bash"),
            ("success", "false"),
            ("duration_ms", "8200"),
            (
                "error",
                "Exit code 101\nerror[E0425]: cannot find value `x` in src/lib.rs",
            ),
            (
                "tool_parameters",
                r#"{"bash_command":"cargo","full_command":"cargo test"}"#,
            ),
        ],
    );
    x.claude_event(
        "api_error",
        sid,
        ago(40),
        &[
            ("model", "claude-sonnet-4-5"),
            ("error", "overloaded_error"),
            ("status_code", "529"),
            ("attempt", "1"),
        ],
    );
    x.claude_event(
        "tool_decision",
        sid,
        ago(39),
        &[
            ("tool_name", "Bash"),
            ("decision", "accept"),
            ("source", "user_temporary"),
        ],
    );
}

#[tokio::test]
async fn claude_code_events_over_otlp_protobuf_land_as_events_of_their_session() {
    let app = spawn_app().await;
    let sid = uuid::Uuid::new_v4().to_string();
    let wire = Wire {
        json: false,
        gzip: false,
        bearer: false,
    };
    let t0 = SystemTime::now();
    let x = Exporter::new(
        &app.base,
        ACME_KEY,
        wire,
        "claude-code",
        &[("service.version", "2.1.0")],
    );
    claude_session(&x, &sid, t0);
    x.flush().await;
    app.wait_landed(&sid, 6).await;

    let events = landed(&app, &sid).await;
    let llm = of_kind(&events, "llm_call");
    assert_eq!(llm.len(), 1);
    assert_eq!(
        llm[0]["data"],
        json!({"provider": "anthropic", "model": "claude-sonnet-4-5", "input_tokens": 1200,
               "output_tokens": 300, "cost_usd": 0.0123, "latency_ms": 2100, "status": "ok"})
    );
    assert_eq!(llm[0]["attributes"]["cache_read_tokens"], "4000");
    assert_eq!(
        of_kind(&events, "file_edit")[0]["data"]["path"],
        "src/lib.rs"
    );
    let cmd = of_kind(&events, "command");
    assert_eq!(
        (
            cmd[0]["data"]["exit_code"].as_i64(),
            cmd[0]["failure"].as_bool()
        ),
        (Some(101), Some(true))
    );
    assert_eq!(
        of_kind(&events, "error")[0]["data"]["message"],
        "overloaded_error"
    );
    let prompt = of_kind(&events, "user_message");
    assert_eq!(
        (
            prompt[0]["data"]["text"].as_str(),
            prompt[0]["actor"].as_str()
        ),
        (Some("make the tests pass please"), Some("human"))
    );
    assert_eq!(of_kind(&events, "agent_action")[0]["actor"], "human");

    // The session started implicitly, named after the exporting service.
    let session = eventually(Duration::from_secs(30), "session filled in", || async {
        let (_, s) = app.get(ACME_KEY, &format!("/v1/sessions/{sid}")).await;
        (s["placeholder"] == false).then_some(s)
    })
    .await;
    assert_eq!(session["agent_name"], "claude-code");
    assert_eq!(session["agent_model"], "claude-sonnet-4-5");
    assert_eq!(session["source"], "cli");
    assert_eq!(session["metadata"]["service.version"], "2.1.0");
    assert_eq!(session["status"], "active");

    // The exporter retrying the same records: nothing new lands. An
    // explicit end ends the session.
    claude_session(&x, &sid, t0);
    x.log(
        "session.end",
        SystemTime::now(),
        Severity::Info,
        &[("session.id", sid.as_str())],
    );
    x.flush().await;
    eventually(Duration::from_secs(30), "session ended", || async {
        let (_, s) = app.get(ACME_KEY, &format!("/v1/sessions/{sid}")).await;
        (s["status"] == "completed").then_some(())
    })
    .await;
    assert_eq!(
        app.events_landed(&sid).await,
        6,
        "re-sent records are duplicates"
    );

    // Spend is counted once per stored call (the sink runs in this process,
    // so the API's /metrics shows its counters).
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str, extra: &str| {
        metrics
            .lines()
            .find(|l| {
                l.starts_with(name)
                    && l.contains("tenant=\"acme\"")
                    && l.contains("model=\"claude-sonnet-4-5\"")
                    && l.contains(extra)
            })
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    assert_eq!(
        value("achilles_llm_cost_usd_total{", "provider=\"anthropic\""),
        Some(0.0123),
        "{metrics}"
    );
    assert_eq!(
        value("achilles_llm_tokens_total{", "direction=\"input\""),
        Some(1200.0)
    );
    assert_eq!(
        value("achilles_llm_tokens_total{", "direction=\"output\""),
        Some(300.0)
    );
}

#[tokio::test]
async fn genai_spans_over_otlp_json_and_gzip_keep_their_nesting() {
    let app = spawn_app().await;
    let wire = Wire {
        json: true,
        gzip: true,
        bearer: true,
    };
    let x = Exporter::new(&app.base, ACME_KEY, wire, "support-agent", &[]);
    let tracer = x.tracer();
    let conversation = format!("conv-{}", uuid::Uuid::new_v4().simple());
    let conv = || KeyValue::new("gen_ai.conversation.id", conversation.clone());
    let mut root = tracer
        .span_builder("invoke_agent fixer")
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", "invoke_agent"),
            KeyValue::new("gen_ai.agent.name", "fixer"),
            conv(),
        ])
        .start(&tracer);
    root.set_status(Status::Ok);
    let cx = Context::current_with_span(root);
    let mut chat = tracer
        .span_builder("chat gpt-4o")
        .with_kind(SpanKind::Client)
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", "chat"),
            KeyValue::new("gen_ai.provider.name", "openai"),
            KeyValue::new("gen_ai.request.model", "gpt-4o"),
            KeyValue::new("gen_ai.usage.input_tokens", 800),
            KeyValue::new("gen_ai.usage.output_tokens", 90),
            conv(),
        ])
        .start_with_context(&tracer, &cx);
    chat.end();
    let mut edit = tracer
        .span_builder("execute_tool edit_file")
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", "execute_tool"),
            KeyValue::new("gen_ai.tool.name", "edit_file"),
            KeyValue::new(
                "gen_ai.tool.call.arguments",
                r#"{"target_file":"app/models.py"}"#,
            ),
            conv(),
        ])
        .start_with_context(&tracer, &cx);
    edit.end();
    let mut shell = tracer
        .span_builder("execute_tool shell")
        .with_attributes([
            KeyValue::new("gen_ai.operation.name", "execute_tool"),
            KeyValue::new("gen_ai.tool.name", "shell"),
            KeyValue::new(
                "gen_ai.tool.call.arguments",
                r#"{"command":["pytest","-q"]}"#,
            ),
            KeyValue::new("error.type", "exit_status"),
            conv(),
        ])
        .start_with_context(&tracer, &cx);
    shell.add_event(
        "exception",
        vec![
            KeyValue::new("exception.type", "AssertionError"),
            KeyValue::new("exception.message", "assert 2 == 3 in app/models.py"),
        ],
    );
    shell.set_status(Status::error("pytest failed"));
    shell.end();
    cx.span().end();
    x.flush().await;

    // The session is derived from the conversation id, per tenant.
    let sid = eventually(
        Duration::from_secs(30),
        "the conversation's session",
        || async {
            let n = json_of(&app, "SELECT to_json(count(*)) FROM events").await;
            if n.as_i64() != Some(5) {
                return None;
            }
            json_of(&app, "SELECT to_json(min(session_id::text)) FROM events")
                .await
                .as_str()
                .map(str::to_owned)
        },
    )
    .await;
    let events = landed(&app, &sid).await;
    let kinds: Vec<&str> = events.iter().filter_map(|e| e["kind"].as_str()).collect();
    let mut sorted = kinds.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["agent_action", "command", "error", "file_edit", "llm_call"],
        "{events:#?}"
    );
    let root = of_kind(&events, "agent_action")[0];
    assert_eq!(root["data"]["action"], "invoke_agent fixer");
    for child in ["llm_call", "file_edit", "command"] {
        assert_eq!(
            of_kind(&events, child)[0]["parent_id"],
            root["id"],
            "{child} is a child of the agent step"
        );
    }
    let llm = &of_kind(&events, "llm_call")[0]["data"];
    assert_eq!(
        (llm["provider"].as_str(), llm["input_tokens"].as_i64()),
        (Some("openai"), Some(800))
    );
    assert_eq!(
        of_kind(&events, "file_edit")[0]["data"]["path"],
        "app/models.py"
    );
    let cmd = &of_kind(&events, "command")[0];
    assert_eq!(
        (cmd["data"]["command"].as_str(), cmd["failure"].as_bool()),
        (Some("pytest -q"), Some(true))
    );
    let err = &of_kind(&events, "error")[0];
    assert_eq!(err["data"]["error_type"], "AssertionError");
    assert_eq!(
        err["parent_id"], cmd["id"],
        "the exception belongs to its span"
    );
    let (_, s) = app.get(ACME_KEY, &format!("/v1/sessions/{sid}")).await;
    assert_eq!(
        (s["agent_name"].as_str(), s["source"].as_str()),
        (Some("support-agent"), Some("sdk"))
    );
}

fn kv(k: &str, v: &str) -> PKeyValue {
    PKeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(any_value::Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

fn record(at: SystemTime, attrs: Vec<PKeyValue>) -> LogRecord {
    let nanos = at
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    LogRecord {
        time_unix_nano: nanos,
        body: Some(AnyValue {
            value: Some(any_value::Value::StringValue(
                "claude_code.api_request".into(),
            )),
        }),
        attributes: attrs,
        ..Default::default()
    }
}

fn logs_request(records: Vec<LogRecord>) -> ExportLogsServiceRequest {
    ExportLogsServiceRequest {
        resource_logs: vec![ResourceLogs {
            scope_logs: vec![ScopeLogs {
                log_records: records,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
}

async fn post_raw(
    app: &TestApp,
    key: Option<&str>,
    path: &str,
    ct: &str,
    body: Vec<u8>,
) -> reqwest::Response {
    let mut req = app
        .http
        .post(format!("{}{path}", app.base))
        .header("content-type", ct)
        .body(body);
    if let Some(k) = key {
        req = req.header("x-api-key", k);
    }
    req.send().await.expect("request")
}

#[tokio::test]
async fn otlp_partial_success_errors_and_twins() {
    let app = spawn_app().await;
    let sid = uuid::Uuid::new_v4().to_string();
    let ok = record(
        ago(5),
        vec![
            kv("session.id", &sid),
            kv("model", "m"),
            kv("request_id", "req_7"),
            kv("cost_usd", "0.5"),
        ],
    );
    let no_session = record(ago(5), vec![kv("model", "m")]);
    let too_old = record(
        ago(30 * 86_400),
        vec![kv("session.id", &sid), kv("model", "m")],
    );
    let body = logs_request(vec![ok, no_session, too_old]).encode_to_vec();

    let resp = post_raw(
        &app,
        Some(ACME_KEY),
        "/v1/logs",
        "application/x-protobuf",
        body.clone(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "application/x-protobuf");
    let answer = ExportLogsServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.expect("partial success");
    assert_eq!(partial.rejected_log_records, 2);
    assert!(
        partial.error_message.contains("no session"),
        "{}",
        partial.error_message
    );
    assert!(
        partial.error_message.contains("timestamp_out_of_range"),
        "{}",
        partial.error_message
    );

    // JSON in, JSON out; nothing rejected, no partial success.
    let json_body = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64).to_string(),
        "body": {"stringValue": "claude_code.user_prompt"},
        "attributes": [{"key": "session.id", "value": {"stringValue": sid}},
                       {"key": "prompt_length", "value": {"intValue": "3"}}]}]}]}]});
    let resp = post_raw(
        &app,
        Some(ACME_KEY),
        "/v1/logs",
        "application/json",
        json_body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: Value = resp.json().await.unwrap();
    assert!(answer.get("partialSuccess").is_none(), "{answer}");

    // Claude Code's span for the same API request: a twin, not a second call.
    let span_body = json!({"resourceSpans": [{"scopeSpans": [{"spans": [{
        "traceId": "5b8efff798038103d269b633813fc60c", "spanId": "eee19b7ec3c1b174",
        "name": "claude_code.llm_request", "kind": 3,
        "startTimeUnixNano": (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64 - 2_000_000_000).to_string(),
        "endTimeUnixNano": (SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).unwrap().as_nanos() as u64).to_string(),
        "attributes": [{"key": "session.id", "value": {"stringValue": sid}},
                       {"key": "request_id", "value": {"stringValue": "req_7"}},
                       {"key": "model", "value": {"stringValue": "m"}}]}]}]}]});
    let resp = post_raw(
        &app,
        Some(ACME_KEY),
        "/v1/traces",
        "application/json",
        span_body.to_string().into_bytes(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::OK);
    app.wait_landed(&sid, 2).await;
    let calls = app
        .db
        .count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{sid}' AND kind = 'llm_call'"
        ))
        .await;
    assert_eq!(calls, 1, "the span described the logged request again");

    // The OTLP error contract.
    let resp = post_raw(
        &app,
        None,
        "/v1/logs",
        "application/x-protobuf",
        body.clone(),
    )
    .await;
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    let resp = post_raw(&app, Some(ACME_KEY), "/v1/logs", "text/plain", body).await;
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    let resp = post_raw(
        &app,
        Some(ACME_KEY),
        "/v1/logs",
        "application/x-protobuf",
        vec![0xff, 0xff, 0xff],
    )
    .await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let bomb = {
        use std::io::Write;
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        gz.write_all(&vec![0u8; app.settings.api.max_body_bytes + 1])
            .unwrap();
        gz.finish().unwrap()
    };
    let resp = app
        .http
        .post(format!("{}/v1/logs", app.base))
        .header("content-type", "application/x-protobuf")
        .header("content-encoding", "gzip")
        .header("x-api-key", ACME_KEY)
        .body(bomb)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);

    // Another tenant naming the same session id gets nothing of acme's.
    let globex = record(ago(1), vec![kv("session.id", &sid), kv("model", "m")]);
    let resp = post_raw(
        &app,
        Some(GLOBEX_KEY),
        "/v1/logs",
        "application/x-protobuf",
        logs_request(vec![globex]).encode_to_vec(),
    )
    .await;
    assert_eq!(
        resp.status(),
        StatusCode::OK,
        "accepted; the sink refuses the foreign session"
    );
    let (status, _) = app.get(GLOBEX_KEY, &format!("/v1/sessions/{sid}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
