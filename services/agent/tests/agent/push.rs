//! Live push end to end: an insight raised by light mode reaches the API's
//! event stream and signed webhooks at real local receivers; a failing
//! receiver gets retries with the same delivery id, a dead one is given up
//! on, a filtered one gets nothing, and a re-delivered insight record is
//! recorded once.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use achilles_test_support::sse::SseReader;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode as AxStatus};
use axum::routing::post;
use axum::Router;

use super::*;

#[derive(Clone, Default)]
struct Received {
    calls: Arc<Mutex<Vec<(String, HeaderMap, Bytes)>>>,
    /// Answer 500 to this many calls of /flaky first.
    flaky: Arc<AtomicUsize>,
}

impl Received {
    fn of(&self, path: &str) -> Vec<(HeaderMap, Bytes)> {
        self.calls
            .lock()
            .unwrap()
            .iter()
            .filter(|(p, _, _)| p == path)
            .map(|(_, h, b)| (h.clone(), b.clone()))
            .collect()
    }
}

/// A webhook receiver on 127.0.0.1: `/flaky` fails its first calls,
/// `/down` always answers 503, anything else 200.
async fn receiver(flaky: usize) -> (String, Received) {
    async fn hook(
        State(r): State<Received>,
        Path(path): Path<String>,
        headers: HeaderMap,
        body: Bytes,
    ) -> AxStatus {
        r.calls.lock().unwrap().push((path.clone(), headers, body));
        match path.as_str() {
            "down" => AxStatus::SERVICE_UNAVAILABLE,
            "flaky"
                if r.flaky
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_ok() =>
            {
                AxStatus::INTERNAL_SERVER_ERROR
            }
            _ => AxStatus::OK,
        }
    }
    let r = Received {
        flaky: Arc::new(AtomicUsize::new(flaky)),
        ..Default::default()
    };
    let app = Router::new()
        .route("/{path}", post(hook))
        .with_state(r.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (format!("http://{addr}"), r)
}

impl Stack {
    async fn register(&self, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}/v1/webhooks", self.base))
            .bearer_auth(ACME)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::CREATED);
        resp.json().await.unwrap()
    }

    async fn stream(&self, key: &str, last: Option<&str>) -> SseReader {
        let mut req = self
            .http
            .get(format!("{}/v1/insights/stream", self.base))
            .header("x-api-key", key);
        if let Some(l) = last {
            req = req.header("last-event-id", l);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        SseReader::new(resp)
    }

    async fn deliveries(&self, hook: &Value) -> Vec<Value> {
        let id = hook["id"].as_str().unwrap();
        let (status, v) = self
            .get(ACME, &format!("/v1/webhooks/{id}/deliveries"))
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["deliveries"].as_array().cloned().unwrap_or_default()
    }

    /// An error storm (20 failures in a row): one critical
    /// high_error_density insight.
    async fn storm(&self, sid: &str) {
        let errors: Vec<_> = (0..20)
            .map(|n| {
                (
                    n,
                    "error",
                    json!({"message": format!("connection refused ({n})")}),
                )
            })
            .collect();
        self.send(sid, &errors).await;
    }

    async fn calm(&self, sid: &str) {
        let ok: Vec<_> = (20..45)
            .map(|t| {
                (
                    t,
                    "command",
                    json!({"command": "curl -f localhost", "exit_code": 0}),
                )
            })
            .collect();
        self.send(sid, &ok).await;
    }
}

fn header<'a>(h: &'a HeaderMap, name: &str) -> &'a str {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
}

#[tokio::test]
async fn insight_transitions_reach_the_stream_and_signed_webhooks_at_least_once() {
    let st = spawn_stack_with(|s| {
        // The receivers listen on loopback, which production refuses.
        s.push.webhook_allowed_cidrs = "127.0.0.1/32".into();
        s.push.webhook_backoff_ms = 100;
        s.push.webhook_backoff_max_ms = 400;
        s.push.webhook_max_attempts = 3;
        s.push.webhook_poll_ms = 100;
        s.push.stream_poll_ms = 100;
        s.push.stream_heartbeat_ms = 300;
    })
    .await;
    let (base, received) = receiver(1).await;
    let all = st.register(json!({"url": format!("{base}/flaky")})).await;
    let info_only = st
        .register(json!({"url": format!("{base}/quiet"), "severities": ["info"]}))
        .await;
    let down = st.register(json!({"url": format!("{base}/down")})).await;
    let mut live = st.stream(ACME, None).await;
    let mut other = st.stream(GLOBEX, None).await;

    let sid = "0190b3a2-7c1e-7a51-9d7e-00000000e001";
    st.start(sid).await;
    st.storm(sid).await;

    // The stream announces it...
    let raised = live
        .next(WAIT)
        .await
        .expect("a raised insight on the stream");
    assert_eq!(raised.event.as_deref(), Some("raised"));
    let insight: Value = serde_json::from_str(&raised.data).unwrap();
    assert_eq!(
        (insight["type"].as_str(), insight["severity"].as_str()),
        (Some("high_error_density"), Some("critical"))
    );
    assert_eq!(insight["session_id"], sid);

    // ... and the webhook gets it, signed, after one failed attempt, with
    // the same delivery id both times.
    let calls = eventually(WAIT, "two attempts at /flaky", || async {
        let c = received.of("flaky");
        (c.len() >= 2).then_some(c)
    })
    .await;
    assert_eq!(
        calls.len(),
        2,
        "delivered on the second attempt, then not again"
    );
    let (h, body) = &calls[1];
    assert_eq!(
        header(h, "achilles-delivery"),
        header(&calls[0].0, "achilles-delivery")
    );
    assert_eq!(header(h, "achilles-event"), "insight.raised");
    let ts: i64 = header(h, "achilles-timestamp").parse().unwrap();
    assert!((Utc::now().timestamp() - ts).abs() < 300);
    let secret = all["secret"].as_str().unwrap();
    assert!(
        achilles_core::webhook::verify(secret, ts, body, header(h, "achilles-signature")),
        "the signature verifies with the endpoint's secret"
    );
    assert!(!achilles_core::webhook::verify(
        down["secret"].as_str().unwrap(),
        ts,
        body,
        header(h, "achilles-signature")
    ));
    let payload: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(payload["event"], "insight.raised");
    assert_eq!(payload["delivery_id"], header(h, "achilles-delivery"));
    assert_eq!(payload["event_id"].to_string(), raised.id.clone().unwrap());
    assert_eq!(payload["insight"]["id"], insight["id"]);
    assert_eq!(payload["attempt"], 2);
    let d = st.deliveries(&all).await;
    assert_eq!(
        (
            d[0]["status"].as_str(),
            d[0]["attempts"].as_i64(),
            d[0]["last_status"].as_i64()
        ),
        (Some("delivered"), Some(2), Some(200))
    );

    // The endpoint that never answers 2xx is given up on after 3 attempts.
    let dead = eventually(WAIT, "the delivery to /down dead", || async {
        let d = st.deliveries(&down).await;
        (d.first()?["status"] == "dead").then_some(d)
    })
    .await;
    assert_eq!(
        (
            dead[0]["attempts"].as_i64(),
            dead[0]["last_status"].as_i64()
        ),
        (Some(3), Some(503))
    );
    assert_eq!(received.of("down").len(), 3);
    assert!(
        st.deliveries(&info_only).await.is_empty(),
        "filtered out: not info"
    );

    // A re-delivered insight record is recorded once; the resolve that
    // follows it on the same partition shows when it was consumed.
    let published = st.published(sid, 1).await;
    let dup = published[0].encode().unwrap();
    st.producer
        .send(
            FutureRecord::to(&st.topics.name(Topic::Insights))
                .key(sid)
                .payload(&dup),
            Duration::from_secs(5),
        )
        .await
        .expect("republished");
    st.calm(sid).await;
    let resolved = live
        .next(WAIT)
        .await
        .expect("a resolved insight on the stream");
    assert_eq!(resolved.event.as_deref(), Some("resolved"));
    eventually(WAIT, "the resolve delivered", || async {
        (received.of("flaky").len() == 3).then_some(())
    })
    .await;
    let n = st
        .db
        .count(&format!(
            "SELECT count(*) FROM insight_transitions WHERE session_id = '{sid}'"
        ))
        .await;
    assert_eq!(n, 2, "raised and resolved, each once");
    assert_eq!(
        header(&received.of("flaky")[2].0, "achilles-event"),
        "insight.resolved"
    );

    // Resuming after the raise gives the resolve; the other tenant saw nothing.
    let mut resumed = st.stream(ACME, raised.id.as_deref()).await;
    let again = resumed.next(WAIT).await.expect("resumed");
    assert_eq!(again.id, resolved.id);
    assert!(other.drain(Duration::from_secs(1)).await.is_empty());
    assert!(other.comments > 0, "heartbeats only");
}
