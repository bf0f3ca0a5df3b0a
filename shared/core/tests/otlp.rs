//! Trace export against a fake OTLP/HTTP collector (axum on 127.0.0.1:0
//! answering `POST /v1/traces`): spans go out when an endpoint is set, and
//! nothing does (while logs and trace ids work as before) when it is not.

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
use std::io;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use achilles_core::config::LogSettings;
use achilles_core::telemetry::{self, TelemetryGuard};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use serde_json::Value;
use tracing::field::Empty;

const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[derive(Clone, Default)]
struct Received(Arc<Mutex<Vec<(String, Bytes)>>>);

async fn collector() -> (String, Received) {
    async fn traces(
        State(seen): State<Received>,
        headers: HeaderMap,
        body: Bytes,
    ) -> (StatusCode, &'static [u8]) {
        let ct = headers
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        seen.0.lock().unwrap().push((ct, body));
        // An empty ExportTraceServiceResponse.
        (StatusCode::OK, b"")
    }
    let seen = Received::default();
    let app = Router::new()
        .route("/v1/traces", post(traces))
        .with_state(seen.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), seen)
}

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<u8>>>);

impl io::Write for Capture {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Capture {
    fn lines(&self) -> Vec<Value> {
        String::from_utf8(self.0.lock().unwrap().clone())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is JSON"))
            .collect()
    }
}

/// A request-like span continuing the caller's trace, with a log line and
/// the traceparent it would put on a Kafka record.
fn traced_work(dispatch: &tracing::Dispatch) -> String {
    tracing::dispatcher::with_default(dispatch, || {
        let span = tracing::info_span!("otlp-test-span", trace_id = Empty);
        telemetry::set_remote_parent(&span, telemetry::parse_traceparent(TP).as_ref());
        let _entered = span.enter();
        let child = tracing::info_span!("otlp-test-child");
        let _child = child.enter();
        tracing::info!("working");
        telemetry::current_traceparent()
    })
}

/// Dropping the guard flushes; it blocks, so not on a runtime thread.
async fn shut_down(guard: TelemetryGuard) {
    tokio::task::spawn_blocking(move || drop(guard))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spans_are_exported_when_an_endpoint_is_set() {
    let (url, seen) = collector().await;
    let logs = Capture::default();
    let writer = logs.clone();
    let log = LogSettings {
        otlp_endpoint: Some(url),
        ..LogSettings::default()
    };
    let (dispatch, guard) = telemetry::build(&log, "achilles-otlp-test", move || writer.clone());
    assert!(guard.exporting());

    let tp = traced_work(&dispatch);
    let sc = telemetry::parse_traceparent(&tp).expect("valid traceparent");
    assert_eq!(
        telemetry::trace_id_hex(sc.trace_id()),
        TRACE,
        "continues the caller's trace"
    );
    assert_ne!(telemetry::span_id_hex(sc.span_id()), "00f067aa0ba902b7");

    // The log line names the OpenTelemetry ids of the span it is in.
    let lines = logs.lines();
    let line = lines.iter().find(|l| l["message"] == "working").unwrap();
    assert_eq!(line["trace_id"], TRACE, "{line}");
    assert_eq!(
        line["span_id"],
        telemetry::span_id_hex(sc.span_id()),
        "{line}"
    );
    assert_eq!(line["span"], "otlp-test-child");

    shut_down(guard).await;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen.0.lock().unwrap().is_empty() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let received = seen.0.lock().unwrap().clone();
    assert!(!received.is_empty(), "the collector got no export request");
    let (ct, body) = &received[0];
    assert_eq!(ct, "application/x-protobuf");
    // Protobuf keeps strings and ids as raw bytes: both spans, the service
    // name and the caller's trace id are in the request.
    let has = |needle: &[u8]| body.windows(needle.len()).any(|w| w == needle);
    let all: Vec<u8> = received.iter().flat_map(|(_, b)| b.to_vec()).collect();
    let has_any = |needle: &[u8]| all.windows(needle.len()).any(|w| w == needle);
    assert!(has(b"achilles-otlp-test"), "service.name");
    assert!(
        has_any(b"otlp-test-span") && has_any(b"otlp-test-child"),
        "span names"
    );
    let trace_bytes: Vec<u8> = (0..16)
        .map(|i| u8::from_str_radix(&TRACE[2 * i..2 * i + 2], 16).unwrap())
        .collect();
    assert!(has_any(&trace_bytes), "trace id");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_is_exported_without_an_endpoint() {
    let (_url, seen) = collector().await;
    for endpoint in [None, Some(String::new()), Some("  ".to_owned())] {
        let logs = Capture::default();
        let writer = logs.clone();
        let log = LogSettings {
            otlp_endpoint: endpoint.clone(),
            ..LogSettings::default()
        };
        assert!(telemetry::traces_url(&log).is_none(), "{endpoint:?}");
        let (dispatch, guard) =
            telemetry::build(&log, "achilles-otlp-test", move || writer.clone());
        assert!(!guard.exporting(), "{endpoint:?}");

        // Startup and propagation are unaffected: the caller's trace still
        // goes on, and the log line carries its id.
        let tp = traced_work(&dispatch);
        let sc = telemetry::parse_traceparent(&tp).expect("valid traceparent");
        assert_eq!(telemetry::trace_id_hex(sc.trace_id()), TRACE);
        let lines = logs.lines();
        let line = lines.iter().find(|l| l["message"] == "working").unwrap();
        assert_eq!(line["trace_id"], TRACE, "{line}");
        assert_eq!(line["span_id"], telemetry::span_id_hex(sc.span_id()));
        shut_down(guard).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(seen.0.lock().unwrap().is_empty(), "nothing may be exported");
}

#[test]
fn the_endpoint_is_the_otlp_base_url() {
    let url = |e: &str| {
        telemetry::traces_url(&LogSettings {
            otlp_endpoint: Some(e.into()),
            ..LogSettings::default()
        })
    };
    assert_eq!(
        url("http://c:4318").as_deref(),
        Some("http://c:4318/v1/traces")
    );
    assert_eq!(
        url("http://c:4318/").as_deref(),
        Some("http://c:4318/v1/traces")
    );
    assert_eq!(
        url("http://c:4318/v1/traces").as_deref(),
        Some("http://c:4318/v1/traces")
    );
}
