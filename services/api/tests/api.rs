//! Integration tests of the API against a real broker and real Postgres.
//!
//! `spawn_app()` gives each test its own database, topic prefix and
//! consumer groups, an API on port 0 and (when asked) a raw sink, so the
//! whole HTTP → Kafka → Postgres path runs for real.

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
use std::time::Duration;

use achilles_api::Application;
use achilles_core::config::Settings;
use achilles_core::secrecy::SecretString;
use achilles_raw_sink::RawSink;
use achilles_test_support::{
    eventually, read_topic, settings, shared_brokers, unique_prefix, LossyProxy, PrivateBroker,
    TestDb,
};
use chrono::Utc;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

#[path = "api/answers.rs"]
mod answers;
#[path = "api/deletion.rs"]
mod deletion;
#[path = "api/judge.rs"]
mod judge;
#[path = "api/otlp.rs"]
mod otlp;
#[path = "api/push.rs"]
mod push;
#[path = "api/scrub.rs"]
mod scrub;

const ACME_KEY: &str = "acme-key-0123456789";
const GLOBEX_KEY: &str = "globex-key-0123456789";

struct TestApp {
    base: String,
    db: TestDb,
    http: reqwest::Client,
    settings: Settings,
    _stop: Vec<oneshot::Sender<()>>,
}

fn stop_signal() -> (
    oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send + 'static,
) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

async fn spawn_app_on(brokers: &str, with_sink: bool) -> TestApp {
    spawn_app_with(brokers, with_sink, |_| {}).await
}

async fn spawn_app_with(
    brokers: &str,
    with_sink: bool,
    tweak: impl FnOnce(&mut Settings),
) -> TestApp {
    let db = TestDb::fresh().await;
    let mut s = settings(&db, brokers, &unique_prefix());
    s.auth.keys = SecretString::from(format!("acme={ACME_KEY},globex={GLOBEX_KEY}"));
    s.api.max_batch_events = 50;
    s.api.max_body_bytes = 256 * 1024;
    tweak(&mut s);
    let app = Application::build(s.clone()).await.expect("api builds");
    let base = format!("http://{}", app.local_addr());
    let mut stops = Vec::new();
    let (tx, rx) = stop_signal();
    tokio::spawn(app.run_until(rx));
    stops.push(tx);
    let mut t = TestApp {
        base,
        db,
        http: reqwest::Client::new(),
        settings: s,
        _stop: stops,
    };
    if with_sink {
        t.start_sink().await;
    }
    t
}

async fn spawn_app() -> TestApp {
    spawn_app_on(&shared_brokers(), true).await
}

impl TestApp {
    async fn start_sink(&mut self) {
        let sink = RawSink::build(self.settings.clone())
            .await
            .expect("sink builds");
        let (tx, rx) = stop_signal();
        tokio::spawn(sink.run_until(rx));
        self._stop.push(tx);
    }

    async fn post(
        &self,
        key: Option<&str>,
        path: &str,
        body: &Value,
    ) -> (StatusCode, Value, reqwest::header::HeaderMap) {
        let mut req = self.http.post(format!("{}{path}", self.base)).json(body);
        if let Some(k) = key {
            req = req.bearer_auth(k);
        }
        let resp = req.send().await.expect("request");
        let (status, headers) = (resp.status(), resp.headers().clone());
        (status, resp.json().await.unwrap_or(Value::Null), headers)
    }

    async fn get(&self, key: &str, path: &str) -> (StatusCode, Value) {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header("x-api-key", key)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        (status, resp.json().await.unwrap_or(Value::Null))
    }

    async fn start_session(&self, key: &str) -> String {
        let (status, body, _) = self
            .post(
                Some(key),
                "/v1/sessions/start",
                &json!({"agent_name": "claude-code", "source": "cli"}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        body["session_id"].as_str().unwrap().to_owned()
    }

    async fn events_landed(&self, session: &str) -> i64 {
        self.db
            .count(&format!(
                "SELECT count(*) FROM events WHERE session_id = '{session}'"
            ))
            .await
    }

    async fn wait_landed(&self, session: &str, n: i64) {
        eventually(
            Duration::from_secs(30),
            &format!("{n} events of {session} in postgres"),
            || async { (self.events_landed(session).await == n).then_some(()) },
        )
        .await;
    }
}

fn now() -> String {
    Utc::now().to_rfc3339()
}

/// Yesterday at 23:59:60, inside the accepted window.
fn leap_second() -> String {
    let day = (Utc::now() - chrono::Duration::days(1)).date_naive();
    format!("{day}T23:59:60Z")
}

fn sample_events() -> Value {
    json!([
        {"occurred_at": now(), "kind": "file_edit", "data": {"path": "src/lib.rs", "lines_added": 12}},
        {"occurred_at": now(), "kind": "command", "data": {"command": "cargo test", "exit_code": 101, "output": "error[E0425]"}},
        {"occurred_at": now(), "kind": "error", "data": {"message": "cannot find value `x`", "file": "src/lib.rs", "line": 7}},
        {"occurred_at": now(), "kind": "llm_call", "data": {"provider": "anthropic", "model": "claude", "input_tokens": 900, "output_tokens": 120, "cost_usd": 0.004, "status": "ok"}},
        {"occurred_at": now(), "kind": "user_message", "data": {"text": "please fix the test"}},
    ])
}

#[tokio::test]
async fn end_to_end_http_kafka_postgres() {
    let app = spawn_app().await;
    let sid = app.start_session(ACME_KEY).await;
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": sid, "events": sample_events()}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], 5);
    let (status, _, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/sessions/end",
            &json!({"session_id": sid, "status": "completed"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);

    app.wait_landed(&sid, 5).await;
    let session = eventually(Duration::from_secs(30), "session ended", || async {
        let (_, s) = app.get(ACME_KEY, &format!("/v1/sessions/{sid}")).await;
        (s["status"] == "completed").then_some(s)
    })
    .await;
    assert_eq!(session["agent_name"], "claude-code");
    assert_eq!(session["tenant_id"], "acme");
    assert_eq!(session["placeholder"], false);

    // Stored rows carry what was sent, the hash and the derived columns.
    let failures = app
        .db
        .count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{sid}' AND is_failure"
        ))
        .await;
    assert_eq!(failures, 2, "failing command and error");
    let hashes = app
        .db
        .count(&format!(
            "SELECT count(DISTINCT event_hash) FROM events WHERE session_id = '{sid}'"
        ))
        .await;
    assert_eq!(hashes, 5);

    // Pagination walks every event exactly once, in event-time order.
    let mut seen = Vec::new();
    let mut path = format!("/v1/sessions/{sid}/events?limit=2");
    loop {
        let (status, page) = app.get(ACME_KEY, &path).await;
        assert_eq!(status, StatusCode::OK, "{page}");
        for e in page["events"].as_array().unwrap() {
            seen.push((
                e["occurred_at"].as_str().unwrap().to_owned(),
                e["kind"].as_str().unwrap().to_owned(),
            ));
        }
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/sessions/{sid}/events?limit=2&after={c}"),
            None => break,
        }
    }
    assert_eq!(seen.len(), 5);
    let mut sorted = seen.clone();
    sorted.sort();
    assert_eq!(seen, sorted, "events come back in event-time order");
}

#[tokio::test]
async fn the_same_batch_twice_lands_once() {
    let app = spawn_app().await;
    let sid = app.start_session(ACME_KEY).await;
    let batch = json!({"session_id": sid, "events": sample_events()});
    let (s1, b1, _) = app.post(Some(ACME_KEY), "/v1/events/batch", &batch).await;
    assert_eq!(
        (s1, b1["accepted"].as_u64()),
        (StatusCode::ACCEPTED, Some(5))
    );
    app.wait_landed(&sid, 5).await;
    let (s2, b2, _) = app.post(Some(ACME_KEY), "/v1/events/batch", &batch).await;
    assert_eq!(s2, StatusCode::ACCEPTED);
    assert_eq!(b2["duplicates"], 5, "{b2}");
    assert_eq!(b2["accepted"], 0);
    // Same ids and hashes both times.
    assert_eq!(
        b1["results"],
        b2["results"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| {
                let mut r = r.clone();
                r["status"] = json!("accepted");
                r
            })
            .collect::<Value>()
    );
    // Duplicates inside one batch are caught too.
    let ev = json!({"occurred_at": now(), "kind": "agent_action", "data": {"action": "plan"}});
    let (_, b3, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": sid, "events": [ev, ev]}),
        )
        .await;
    assert_eq!(
        (b3["accepted"].as_u64(), b3["duplicates"].as_u64()),
        (Some(1), Some(1))
    );
    app.wait_landed(&sid, 6).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(app.events_landed(&sid).await, 6, "nothing landed twice");
}

#[tokio::test]
async fn invalid_events_get_their_index_and_reason_and_never_land() {
    let app = spawn_app().await;
    let sid = app.start_session(ACME_KEY).await;
    let events = json!([
        {"occurred_at": now(), "kind": "file_edit", "data": {"path": "ok.rs"}},
        {"occurred_at": now(), "kind": "telepathy"},
        {"occurred_at": "2001-01-01T00:00:00Z", "kind": "user_message"},
        {"occurred_at": now(), "kind": "command", "data": {"command": "make", "exitcode": 2}},
        {"occurred_at": now(), "kind": "error", "data": {"message": "x".repeat(20_000)}},
        {"occurred_at": now(), "kind": "user_message", "session_id": "not-a-uuid"},
        // Beyond i64: once crashed the Avro encoder (and the connection).
        {"occurred_at": now(), "kind": "command", "data": {"command": "sleep", "duration_ms": 9223372036854775808u64}},
        // Second :60 used to be accepted and then change its hash when encoded.
        {"occurred_at": leap_second(), "kind": "user_message"},
    ]);
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": sid, "events": events}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(
        (body["accepted"].as_u64(), body["rejected"].as_u64()),
        (Some(1), Some(7))
    );
    let reasons: Vec<(u64, String, String)> = body["results"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["status"] == "rejected")
        .map(|r| {
            (
                r["index"].as_u64().unwrap(),
                r["errors"][0]["field"].as_str().unwrap().to_owned(),
                r["errors"][0]["code"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    assert_eq!(
        reasons,
        vec![
            (1, "kind".into(), "unknown_kind".into()),
            (2, "occurred_at".into(), "timestamp_out_of_range".into()),
            (3, "data.exitcode".into(), "invalid_data".into()),
            (4, "data.message".into(), "too_large".into()),
            (5, "session_id".into(), "invalid_id".into()),
            (6, "data.duration_ms".into(), "out_of_range".into()),
            (7, "occurred_at".into(), "invalid_timestamp".into()),
        ]
    );
    app.wait_landed(&sid, 1).await;

    // A batch with nothing valid is 422 with every reason.
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": sid, "events": [{"kind": "file_edit"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["code"], "all_rejected");
    assert_eq!(
        body["error"]["details"][0]["errors"][0]["field"],
        "occurred_at"
    );

    // Malformed bodies and invalid single submissions.
    let resp = app
        .http
        .post(format!("{}/v1/events/batch", app.base))
        .bearer_auth(ACME_KEY)
        .body("{nope")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        resp.json::<Value>().await.unwrap()["error"]["code"],
        "invalid_json"
    );
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/sessions/start",
            &json!({"source": "fax"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(body["error"]["details"][0]["field"], "agent_name");

    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        app.events_landed(&sid).await,
        1,
        "nothing invalid was written"
    );
}

#[tokio::test]
async fn size_limits_answer_413() {
    let app = spawn_app_on(&shared_brokers(), false).await;
    let many: Vec<Value> = (0..51).map(|_| json!({"kind": "user_message"})).collect();
    let (status, body, _) = app
        .post(Some(ACME_KEY), "/v1/events/batch", &json!({"events": many}))
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"]["code"], "payload_too_large");
    let big =
        json!({"events": [{"kind": "user_message", "data": {"text": "x".repeat(300 * 1024)}}]});
    let (status, body, _) = app.post(Some(ACME_KEY), "/v1/events/batch", &big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert!(body["error"]["message"].as_str().unwrap().contains("limit"));
}

#[tokio::test]
async fn authentication_and_tenant_isolation() {
    let app = spawn_app().await;
    for key in [None, Some("wrong-key-0123456789")] {
        let (status, body, headers) = app
            .post(key, "/v1/sessions/start", &json!({"agent_name": "x"}))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"]["code"], "unauthorized");
        assert_eq!(headers["www-authenticate"], "Bearer");
    }
    let sid = app.start_session(ACME_KEY).await;
    let (s, _, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": sid, "events": sample_events()}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    app.wait_landed(&sid, 5).await;

    let (status, _) = app.get(ACME_KEY, &format!("/v1/sessions/{sid}")).await;
    assert_eq!(status, StatusCode::OK);
    // Another tenant sees nothing, and cannot tell it exists.
    let (status, body) = app.get(GLOBEX_KEY, &format!("/v1/sessions/{sid}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (missing_status, missing_body) = app
        .get(
            GLOBEX_KEY,
            &format!("/v1/sessions/{}", uuid::Uuid::now_v7()),
        )
        .await;
    assert_eq!(
        (status, body),
        (missing_status, missing_body.clone()),
        "same answer as a missing session"
    );
    let (status, _) = app
        .get(GLOBEX_KEY, &format!("/v1/sessions/{sid}/events"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Globex writing into Acme's session does not attach events to it.
    let (s, _, _) = app.post(Some(GLOBEX_KEY), "/v1/events/batch", &json!({"session_id": sid, "events": [{"occurred_at": now(), "kind": "user_message", "data": {"text": "intruder"}}]})).await;
    assert_eq!(
        s,
        StatusCode::ACCEPTED,
        "accepted into Kafka, refused at landing"
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(app.events_landed(&sid).await, 5);
    assert_eq!(
        app.db
            .count("SELECT count(*) FROM events WHERE tenant_id = 'globex'")
            .await,
        0
    );
}

#[tokio::test]
async fn broker_down_gives_503_never_202_and_recovers() {
    let mut broker = PrivateBroker::start();
    let mut app = spawn_app_on(&broker.brokers(), false).await;
    let sid = uuid::Uuid::now_v7().to_string();
    let batch = |text: &str| json!({"session_id": sid, "events": [{"occurred_at": now(), "kind": "user_message", "data": {"text": text}}]});

    broker.stop();
    for i in 0..3 {
        let (status, body, headers) = app
            .post(
                Some(ACME_KEY),
                "/v1/events/batch",
                &batch(&format!("lost {i}")),
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"]["code"], "unavailable");
        assert!(headers.contains_key("retry-after"));
    }
    let (status, _) = app.get(ACME_KEY, "/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);

    broker.restart();
    // Tansu's memory storage comes back empty: recreate the topics, as an
    // operator (or the sink at start-up) would.
    let topics = achilles_core::topics::Topics::new(app.settings.kafka.topic_prefix.clone());
    achilles_core::kafka::ensure_topics(&app.settings.kafka, &topics)
        .await
        .unwrap();
    let body = eventually(
        Duration::from_secs(60),
        "202 after the broker is back",
        || async {
            let (status, body, _) = app
                .post(Some(ACME_KEY), "/v1/events/batch", &batch("kept"))
                .await;
            (status == StatusCode::ACCEPTED).then_some(body)
        },
    )
    .await;
    assert_eq!(body["accepted"], 1);
    app.start_sink().await;
    app.wait_landed(&sid, 1).await;
    let text = sqlx::query_scalar::<_, String>("SELECT data->>'text' FROM events")
        .fetch_one(&app.db.pool)
        .await
        .unwrap();
    assert_eq!(text, "kept", "only the acknowledged event exists");
}

#[tokio::test]
async fn probes_metrics_and_openapi() {
    let app = spawn_app_on(&shared_brokers(), false).await;
    let (status, body) = app.get(ACME_KEY, "/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, doc) = app.get(ACME_KEY, "/openapi.json").await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/v1/events/batch"]["post"].is_object());
    let _ = app.post(None, "/v1/sessions/start", &json!({})).await;
    let text = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        text.contains(
            r#"achilles_http_requests_total{method="POST",route="/v1/sessions/start",status="401"}"#
        ),
        "{text}"
    );
}

/// Log lines written to memory, to read what a consumer logged.
#[derive(Clone, Default)]
struct LogCapture(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for LogCapture {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8_lossy(&self.0.lock().unwrap())
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }
}

#[tokio::test]
async fn a_callers_trace_reaches_the_kafka_record_and_the_consumers_log() {
    use achilles_core::telemetry;
    use achilles_core::topics::{Topic, Topics};

    // The production subscriber (JSON, OTLP off) writing to memory. This
    // test runs on a current-thread runtime, so the API and the sink it
    // spawns run on this thread, under this subscriber.
    let logs = LogCapture::default();
    let writer = logs.clone();
    let log = achilles_core::config::LogSettings {
        filter: "warn,achilles_runtime=debug".into(),
        ..Default::default()
    };
    let (dispatch, _guard) = telemetry::build(&log, "achilles-api-test", move || writer.clone());
    let _default = tracing::dispatcher::set_default(&dispatch);

    let app = spawn_app().await;
    let sid = app.start_session(ACME_KEY).await;
    const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";
    const CALLER_SPAN: &str = "b7ad6b7169203331";
    let resp = app
        .http
        .post(format!("{}/v1/events/batch", app.base))
        .bearer_auth(ACME_KEY)
        .header("traceparent", format!("00-{TRACE}-{CALLER_SPAN}-01"))
        .json(&json!({"session_id": sid, "events": sample_events()}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    // 1. Every record carries a traceparent; the batch's carry the caller's
    //    trace, with the API's request span as their parent.
    let topics = Topics::new(app.settings.kafka.topic_prefix.clone());
    let records = read_topic(
        &app.settings.kafka.brokers,
        &topics.name(Topic::Events),
        6,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(records.len(), 6, "the start and five events");
    let mut traced = 0;
    for r in &records {
        let tp = r.header("traceparent").expect("always a traceparent");
        let sc = telemetry::parse_traceparent(tp).expect("a valid one");
        assert_eq!(r.key.as_deref(), Some(sid.as_bytes()));
        if telemetry::trace_id_hex(sc.trace_id()) == TRACE {
            assert_ne!(telemetry::span_id_hex(sc.span_id()), CALLER_SPAN, "{tp}");
            traced += 1;
        }
    }
    assert_eq!(traced, 5, "the five events, not the session start");

    // 2. The landing consumer logs each of them with that trace id and
    //    the session id.
    app.wait_landed(&sid, 5).await;
    let received = eventually(
        Duration::from_secs(10),
        "the landing consumer's log lines for the traced records",
        || async {
            let n = logs
                .lines()
                .iter()
                .filter(|l| {
                    l["message"] == "record received"
                        && l["consumer"] == "landing"
                        && l["trace_id"] == TRACE
                        && l["session_id"] == sid.as_str()
                })
                .count();
            (n >= 5).then_some(n)
        },
    )
    .await;
    assert_eq!(received, 5);
}

/// One tenant floods the API far beyond its quota: it gets 429s with
/// Retry-After and the limit in headers, while another tenant's requests
/// keep getting 202 at normal latency.
#[tokio::test]
async fn one_tenant_flooding_does_not_starve_another() {
    let app = spawn_app_with(&shared_brokers(), false, |s| {
        s.quotas.tenants.insert(
            "acme".into(),
            achilles_core::config::TenantQuota {
                requests_per_sec: Some(20),
                requests_burst: Some(20),
                ..Default::default()
            },
        );
    })
    .await;
    let sid = uuid::Uuid::now_v7().to_string();
    let batch =
        || json!({"session_id": sid, "events": [{"occurred_at": now(), "kind": "user_message"}]});
    // Warm up the producer (first publish fetches metadata).
    let (status, body, _) = app
        .post(Some(GLOBEX_KEY), "/v1/events/batch", &batch())
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");

    let flood = {
        let (http, base) = (app.http.clone(), app.base.clone());
        let body = batch();
        tokio::spawn(async move {
            let mut statuses = Vec::new();
            let mut throttled_headers = None;
            for _ in 0..10 {
                let reqs = (0..40).map(|_| {
                    http.post(format!("{base}/v1/events/batch"))
                        .bearer_auth(ACME_KEY)
                        .json(&body)
                        .send()
                });
                for r in futures::future::join_all(reqs).await {
                    let r = r.expect("request");
                    if r.status() == StatusCode::TOO_MANY_REQUESTS {
                        throttled_headers.get_or_insert(r.headers().clone());
                    }
                    statuses.push(r.status());
                }
            }
            (statuses, throttled_headers)
        })
    };
    let mut worst = Duration::ZERO;
    for _ in 0..20 {
        let started = std::time::Instant::now();
        let (status, body, _) = app
            .post(Some(GLOBEX_KEY), "/v1/events/batch", &batch())
            .await;
        worst = worst.max(started.elapsed());
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "the other tenant is served: {body}"
        );
    }
    let (statuses, headers) = flood.await.unwrap();
    let throttled = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert!(
        throttled >= 300,
        "{throttled} of 400 flood requests throttled"
    );
    assert!(
        statuses
            .iter()
            .all(|s| *s == StatusCode::ACCEPTED || *s == StatusCode::TOO_MANY_REQUESTS),
        "{statuses:?}"
    );
    assert!(
        worst < Duration::from_millis(1_000),
        "slowest request of the other tenant: {worst:?}"
    );
    let h = headers.expect("a 429");
    assert!(h["retry-after"].to_str().unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(h["ratelimit-limit"], "20");
    assert_eq!(h["ratelimit-remaining"], "0");
    assert_eq!(h["ratelimit-policy"], "20;w=1;burst=20;name=requests");
    let metrics = achilles_core::metrics::render();
    assert!(
        metrics.contains(
            r#"achilles_quota_decisions_total{kind="requests",outcome="throttled",tenant="acme"}"#
        ),
        "{metrics}"
    );
}

/// A batch of more events than the tenant's event bucket holds now is 429;
/// more than the bucket can ever hold is 413.
#[tokio::test]
async fn the_events_quota_counts_events_not_requests() {
    let app = spawn_app_with(&shared_brokers(), false, |s| {
        s.quotas.events_per_sec = 1;
        s.quotas.events_burst = 10;
    })
    .await;
    let sid = uuid::Uuid::now_v7().to_string();
    let events = |n: usize| -> Vec<Value> {
        (0..n).map(|i| json!({"occurred_at": now(), "kind": "agent_action", "data": {"action": format!("a{i}")}})).collect()
    };
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": sid, "events": events(8)}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let (status, body, headers) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": sid, "events": events(8)}),
        )
        .await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{body}");
    assert_eq!(body["error"]["code"], "rate_limited");
    assert_eq!(headers["ratelimit-policy"], "1;w=1;burst=10;name=events");
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": sid, "events": events(11)}),
        )
        .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
}

/// A start and an end whose responses are lost are retried with the same
/// Idempotency-Key: one session, one end time.
#[tokio::test]
async fn retried_start_and_end_after_a_lost_response_have_one_effect() {
    let app = spawn_app().await;
    let api: std::net::SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let proxy = LossyProxy::start(api).await;
    // A fresh connection per request, so each attempt meets the proxy.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let via_proxy = |path: &str, key: &str, body: &Value| {
        http.post(format!("http://{}{path}", proxy.addr))
            .bearer_auth(ACME_KEY)
            .header("idempotency-key", key)
            .json(body)
            .send()
    };
    let start_key = uuid::Uuid::now_v7().to_string();
    let start = json!({"agent_name": "claude-code", "source": "cli"});
    proxy.lose_next(1);
    assert!(
        via_proxy("/v1/sessions/start", &start_key, &start)
            .await
            .is_err(),
        "lost"
    );
    let resp = via_proxy("/v1/sessions/start", &start_key, &start)
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let sid = resp.json::<Value>().await.unwrap()["session_id"]
        .as_str()
        .unwrap()
        .to_owned();

    let end_key = uuid::Uuid::now_v7().to_string();
    let end = json!({"session_id": sid, "status": "completed"});
    proxy.lose_next(1);
    assert!(
        via_proxy("/v1/sessions/end", &end_key, &end).await.is_err(),
        "lost"
    );
    let resp = via_proxy("/v1/sessions/end", &end_key, &end).await.unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    assert_eq!(proxy.lost(), 2, "both first attempts reached the API");

    // Kafka got every attempt, all identical; Postgres has one session
    // with the end time the key carries.
    let topics = achilles_core::topics::Topics::new(app.settings.kafka.topic_prefix.clone());
    let records = read_topic(
        &app.settings.kafka.brokers,
        &topics.name(achilles_core::topics::Topic::Events),
        4,
        Duration::from_secs(30),
    )
    .await;
    let limits = achilles_core::model::Limits::default();
    let mut starts = Vec::new();
    let mut ends = Vec::new();
    for r in &records {
        match achilles_core::wire::decode_envelope(&r.payload, &limits)
            .unwrap()
            .record
        {
            achilles_core::wire::Record::SessionStart(s) => {
                starts.push((s.session_id.to_string(), s.started_at))
            }
            achilles_core::wire::Record::SessionEnd(e) => {
                ends.push((e.session_id.to_string(), e.ended_at))
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(starts.len(), 2);
    assert_eq!(starts[0], starts[1], "the retry published the same start");
    assert_eq!(starts[0].0, sid);
    assert_eq!(ends.len(), 2);
    assert_eq!(ends[0], ends[1], "the retry published the same end");
    let key_time = achilles_core::model::IdempotencyKey::parse(&end_key)
        .unwrap()
        .time();
    assert_eq!(ends[0].1, key_time);

    let session = eventually(Duration::from_secs(30), "the session ended", || async {
        let (_, s) = app.get(ACME_KEY, &format!("/v1/sessions/{sid}")).await;
        (s["status"] == "completed").then_some(s)
    })
    .await;
    let ended: chrono::DateTime<Utc> = session["ended_at"].as_str().unwrap().parse().unwrap();
    assert_eq!(ended, key_time);
    assert_eq!(
        app.db.count("SELECT count(*) FROM sessions").await,
        1,
        "one session"
    );

    // A key that is not a UUIDv7 is refused before anything is published.
    let (status, body, _) = {
        let resp = app
            .http
            .post(format!("{}/v1/sessions/start", app.base))
            .bearer_auth(ACME_KEY)
            .header("idempotency-key", "retry-1")
            .json(&start)
            .send()
            .await
            .unwrap();
        (resp.status(), resp.json::<Value>().await.unwrap(), ())
    };
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["error"]["code"], "invalid_idempotency_key");
}

/// `/readyz` is unauthenticated: many probes cost one dependency check per
/// cache period, not one each.
#[tokio::test]
async fn readyz_answers_from_a_cached_check() {
    let app = spawn_app_with(&shared_brokers(), false, |s| s.api.ready_cache_ms = 60_000).await;
    for _ in 0..30 {
        let (status, body) = app.get(ACME_KEY, "/readyz").await;
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    let metrics = achilles_core::metrics::render();
    assert!(
        metrics.contains("achilles_readiness_checks_total{service=\"api\"} 1\n"),
        "{metrics}"
    );
}

/// Every 503 tells the client to come back after `api.retry_after_secs`:
/// a read while Postgres is unreachable, and a request that timed out.
#[tokio::test]
async fn every_503_carries_the_configured_retry_after() {
    let app = spawn_app_with(&shared_brokers(), false, |s| {
        s.api.retry_after_secs = 7;
        s.database.url = SecretString::from("postgres://postgres@127.0.0.1:1/nowhere");
        s.database.acquire_timeout_ms = 500;
    })
    .await;
    let resp = app
        .http
        .get(format!("{}/v1/sessions/{}", app.base, uuid::Uuid::now_v7()))
        .bearer_auth(ACME_KEY)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "7");
    let resp = app
        .http
        .get(format!("{}/readyz", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(resp.headers()["retry-after"], "7");
}

/// The dev key is off unless configured; configured, it is a key like any.
#[tokio::test]
async fn the_dev_key_works_only_when_enabled() {
    let dev = achilles_core::config::DEV_API_KEY;
    let off = spawn_app_on(&shared_brokers(), false).await;
    let (status, _, _) = off
        .post(Some(dev), "/v1/sessions/start", &json!({"agent_name": "x"}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "off by default");
    let on = spawn_app_with(&shared_brokers(), false, |s| {
        s.auth.dev_api_key = SecretString::from(dev);
    })
    .await;
    let (status, body, _) = on
        .post(Some(dev), "/v1/sessions/start", &json!({"agent_name": "x"}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    // Too short a dev key is a start-up error, like any short key.
    let db = TestDb::fresh().await;
    let mut s = settings(&db, &shared_brokers(), &unique_prefix());
    s.auth.dev_api_key = SecretString::from("dev");
    assert!(Application::build(s).await.is_err());
}

/// Every text at its maximum size passes over HTTP and lands.
#[tokio::test]
async fn maximum_size_events_are_accepted_and_land() {
    let app = spawn_app_with(&shared_brokers(), true, |s| {
        s.api.max_body_bytes = 1024 * 1024
    })
    .await;
    let l = achilles_core::model::Limits::default();
    let sid = app.start_session(ACME_KEY).await;
    let text = |n: usize| "ü".repeat(n / 2);
    let mut attrs = serde_json::Map::new();
    attrs.insert("k".into(), json!(text(l.max_attributes_bytes - 10)));
    let max = achilles_core::error::MAX_SAFE_INTEGER;
    let events = json!([
        {"occurred_at": now(), "kind": "error", "attributes": attrs, "data": {
            "message": text(l.max_message_bytes), "stack_trace": text(l.max_stack_trace_bytes),
            "file": text(l.max_path_bytes), "error_type": text(l.max_name_bytes), "line": u32::MAX}},
        {"occurred_at": now(), "kind": "command", "data": {"command": text(l.max_path_bytes),
            "exit_code": i32::MIN, "duration_ms": max, "output": text(l.max_stack_trace_bytes)}},
        {"occurred_at": now(), "kind": "llm_call", "data": {"provider": text(l.max_name_bytes),
            "model": text(l.max_name_bytes), "status": "ok", "input_tokens": max,
            "output_tokens": max, "cost_usd": 1e6, "latency_ms": max}},
    ]);
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": sid, "events": events}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], 3, "{body}");
    app.wait_landed(&sid, 3).await;
}
