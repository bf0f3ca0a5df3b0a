//! The insight stream (`GET /v1/insights/stream`) over transitions written
//! straight into the log the agent's recorder fills, and webhook
//! registration. End-to-end delivery (agent recorder and worker) is tested
//! in the agent's tests.

use achilles_test_support::sse::SseReader;

use super::*;

/// Appends `n` transitions of `tenant` with `detail` of `detail_bytes`.
async fn transitions(
    app: &TestApp,
    tenant: &str,
    n: i64,
    severity: &str,
    transition: &str,
    detail_bytes: usize,
) {
    sqlx::query(
        "INSERT INTO insight_transitions (tenant_id, insight_id, session_id, type, transition,
             status, severity, dedup_key, title, detail, raised_at, last_seen_at, decided_at)
         SELECT $1, gen_random_uuid(), gen_random_uuid(), 'command_loop', $3,
                CASE WHEN $3 = 'resolved' THEN 'resolved' ELSE 'open' END, $4, 'k' || g,
                'title ' || g, repeat('x', $5), now(), now(), now() - interval '1 minute' + g * interval '1 ms'
         FROM generate_series(1, $2) AS g",
    )
    .bind(tenant)
    .bind(n)
    .bind(transition)
    .bind(severity)
    .bind(detail_bytes as i32)
    .execute(&app.db.pool)
    .await
    .expect("insert transitions");
}

async fn open(
    app: &TestApp,
    key: &str,
    query: &str,
    last_event_id: Option<&str>,
) -> reqwest::Response {
    let mut req = app
        .http
        .get(format!("{}/v1/insights/stream{query}", app.base))
        .header("x-api-key", key);
    if let Some(id) = last_event_id {
        req = req.header("last-event-id", id);
    }
    req.send().await.expect("stream request")
}

async fn reader(app: &TestApp, key: &str, query: &str, last: Option<&str>) -> SseReader {
    let resp = open(app, key, query, last).await;
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(resp.headers()["content-type"], "text/event-stream");
    SseReader::new(resp)
}

const QUIET: Duration = Duration::from_millis(1500);

fn fast(s: &mut Settings) {
    s.push.stream_poll_ms = 50;
    s.push.stream_heartbeat_ms = 200;
}

#[tokio::test]
async fn the_insight_stream_replays_resumes_filters_and_isolates_tenants() {
    let app = spawn_app_with(&shared_brokers(), false, fast).await;
    transitions(&app, "acme", 1, "warning", "raised", 10).await;
    transitions(&app, "acme", 1, "critical", "escalated", 10).await;
    transitions(&app, "acme", 1, "critical", "resolved", 10).await;
    transitions(&app, "globex", 1, "critical", "raised", 10).await;

    // Replay since an hour ago: acme's three, in order, nothing of globex.
    let mut s = reader(&app, ACME_KEY, "?since=1h", None).await;
    let got = s.drain(QUIET).await;
    let names: Vec<_> = got.iter().filter_map(|e| e.event.as_deref()).collect();
    assert_eq!(names, ["raised", "escalated", "resolved"], "{got:?}");
    let data: Value = serde_json::from_str(&got[0].data).unwrap();
    assert_eq!(
        (data["type"].as_str(), data["severity"].as_str()),
        (Some("command_loop"), Some("warning"))
    );
    assert!(data.get("tenant_id").is_none());
    assert!(s.comments > 0, "heartbeats while idle");

    // Resume after the first: the other two.
    let first = got[0].id.clone().unwrap();
    let mut r = reader(&app, ACME_KEY, "", Some(&first)).await;
    let resumed: Vec<_> = r.drain(QUIET).await.into_iter().map(|e| e.id).collect();
    assert_eq!(resumed, vec![got[1].id.clone(), got[2].id.clone()]);
    // ... also as a query parameter.
    let mut r = reader(
        &app,
        ACME_KEY,
        &format!("?after={}", got[1].id.as_deref().unwrap()),
        None,
    )
    .await;
    assert_eq!(r.drain(QUIET).await.len(), 1);

    // Filters like /v1/insights/recent.
    let mut f = reader(
        &app,
        ACME_KEY,
        "?since=1h&severity=critical&status=open",
        None,
    )
    .await;
    let filtered = f.drain(QUIET).await;
    assert_eq!(filtered.len(), 1, "{filtered:?}");
    assert_eq!(filtered[0].event.as_deref(), Some("escalated"));

    // Live: new transitions reach open streams, each tenant its own.
    let mut live = reader(&app, ACME_KEY, "", None).await;
    let mut other = reader(&app, GLOBEX_KEY, "", None).await;
    assert!(
        live.next(Duration::from_millis(300)).await.is_none(),
        "nothing new yet"
    );
    transitions(&app, "acme", 2, "info", "raised", 10).await;
    transitions(&app, "globex", 1, "info", "raised", 10).await;
    assert_eq!(live.drain(QUIET).await.len(), 2);
    assert_eq!(other.drain(QUIET).await.len(), 1);

    for (query, last) in [
        ("?severity=loud", None),
        ("?session=x", None),
        ("", Some("abc")),
    ] {
        let resp = open(&app, ACME_KEY, query, last).await;
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST, "{query} {last:?}");
    }
    let resp = app
        .http
        .get(format!("{}/v1/insights/stream", app.base))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_slow_stream_client_is_dropped_and_resumes_without_loss() {
    let app = spawn_app_with(&shared_brokers(), false, |s| {
        fast(s);
        s.push.stream_buffer = 4;
        s.push.stream_stall_ms = 300;
        s.push.stream_max_connections = 1;
    })
    .await;
    // 20 MB of events: more than socket buffers hold for a client that
    // does not read.
    let total = 5000;
    transitions(&app, "acme", total, "warning", "raised", 4096).await;
    let stalled = open(&app, ACME_KEY, "?since=1h", None).await;
    assert_eq!(stalled.status(), StatusCode::OK);
    let busy = open(&app, ACME_KEY, "", None).await;
    assert_eq!(
        busy.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "one stream allowed"
    );

    // The server drops the stalled client instead of buffering for it...
    eventually(
        Duration::from_secs(30),
        "the slow client dropped",
        || async {
            let m = app
                .http
                .get(format!("{}/metrics", app.base))
                .send()
                .await
                .ok()?
                .text()
                .await
                .ok()?;
            m.lines()
                .any(|l| {
                    l.starts_with("achilles_stream_disconnects_total{reason=\"slow\"}")
                        && !l.ends_with(" 0")
                })
                .then_some(())
        },
    )
    .await;
    let (status, _) = app.get(ACME_KEY, "/v1/insights/recent").await;
    assert_eq!(status, StatusCode::OK, "and keeps serving everyone else");

    // ... whose stream ends early; resuming from its last id loses nothing.
    let mut s = SseReader::new(stalled);
    let mut ids: Vec<i64> = Vec::new();
    while let Some(e) = s.next(Duration::from_secs(10)).await {
        ids.push(e.id.unwrap().parse().unwrap());
    }
    assert!(s.ended, "the dropped stream ends");
    assert!(
        (ids.len() as i64) < total,
        "dropped before the end: {}",
        ids.len()
    );
    while (ids.len() as i64) < total {
        let last = ids.last().map(i64::to_string);
        let mut r = reader(
            &app,
            ACME_KEY,
            if last.is_some() { "" } else { "?since=1h" },
            last.as_deref(),
        )
        .await;
        while let Some(e) = r.next(QUIET).await {
            ids.push(
                e.id.clone()
                    .unwrap_or_else(|| panic!("no id: {e:?}"))
                    .parse()
                    .unwrap(),
            );
        }
    }
    let mut sorted = ids.clone();
    sorted.dedup();
    assert_eq!(sorted.len() as i64, total, "every transition exactly once");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order");
}

#[tokio::test]
async fn webhook_registration_refuses_internal_destinations_and_isolates_tenants() {
    let app = spawn_app_with(&shared_brokers(), false, |s| {
        s.push.webhook_max_endpoints_per_tenant = 2;
    })
    .await;
    for (url, code) in [
        ("http://169.254.169.254/latest/meta-data", "invalid_url"),
        ("http://10.0.0.7/hook", "invalid_url"),
        ("http://localhost:9000/hook", "invalid_url"),
        ("http://[::1]/hook", "invalid_url"),
        ("ftp://example.com/hook", "invalid_url"),
        ("https://user:pw@example.com/hook", "invalid_url"),
    ] {
        let (status, body, _) = app
            .post(Some(ACME_KEY), "/v1/webhooks", &json!({"url": url}))
            .await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (StatusCode::BAD_REQUEST, Some(code)),
            "{url}: {body}"
        );
    }
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/webhooks",
            &json!({"url": "https://hooks.example.com/a", "severities": ["loud"]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let (status, created, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/webhooks",
            &json!({"url": "https://hooks.example.com/a", "description": "pager",
                    "severities": ["critical"], "transitions": ["raised", "escalated"]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    let (_, list) = app.get(ACME_KEY, "/v1/webhooks").await;
    assert_eq!(list["webhooks"][0]["severities"], json!(["critical"]));
    assert!(
        list["webhooks"][0].get("secret").is_none(),
        "the secret is shown once"
    );
    let (status, d) = app
        .get(ACME_KEY, &format!("/v1/webhooks/{id}/deliveries"))
        .await;
    assert_eq!(
        (status, d["deliveries"].clone()),
        (StatusCode::OK, json!([]))
    );

    // Another tenant can neither see nor remove it.
    let (_, list) = app.get(GLOBEX_KEY, "/v1/webhooks").await;
    assert_eq!(list["webhooks"], json!([]));
    let (status, _) = app
        .get(GLOBEX_KEY, &format!("/v1/webhooks/{id}/deliveries"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let del = |key: &'static str| {
        app.http
            .delete(format!("{}/v1/webhooks/{id}", app.base))
            .header("x-api-key", key)
            .send()
    };
    assert_eq!(
        del(GLOBEX_KEY).await.unwrap().status(),
        StatusCode::NOT_FOUND
    );

    // At most two per tenant.
    let (status, _, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/webhooks",
            &json!({"url": "https://hooks.example.com/b"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/webhooks",
            &json!({"url": "https://hooks.example.com/c"}),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (StatusCode::BAD_REQUEST, Some("too_many_webhooks"))
    );

    assert_eq!(
        del(ACME_KEY).await.unwrap().status(),
        StatusCode::NO_CONTENT
    );
    let (status, _) = app
        .get(ACME_KEY, &format!("/v1/webhooks/{id}/deliveries"))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
