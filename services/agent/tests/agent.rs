//! Integration tests of the monitoring agent against a real broker and
//! Postgres, end to end from HTTP: the API, the raw sink, the stream
//! processor and the agent run in-process on a fresh database with a
//! unique topic prefix ([`spawn_stack`]).

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
use std::time::Duration;

use achilles_agent::AgentService;
use achilles_api::Application;
use achilles_core::config::Settings;
use achilles_core::secrecy::SecretString;
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::headers;
use achilles_core::wire::insight::{InsightRecord, Transition};
use achilles_core::wire::session_ended::SessionEnded;
use achilles_processor::ProcessorService;
use achilles_raw_sink::RawSink;
use achilles_test_support::{
    eventually, read_topic, settings, shared_brokers, unique_prefix, TestDb,
};
use chrono::{DateTime, Duration as Span, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::sync::oneshot;

#[path = "agent/lifecycle.rs"]
mod lifecycle;
#[path = "agent/otlp.rs"]
mod otlp;
#[path = "agent/outage.rs"]
mod outage;
#[path = "agent/push.rs"]
mod push;

const ACME: &str = "acme-key-0123456789";
const GLOBEX: &str = "globex-key-0123456789";
const WAIT: Duration = Duration::from_secs(90);

struct Stack {
    base: String,
    http: reqwest::Client,
    db: TestDb,
    settings: Settings,
    topics: Topics,
    producer: FutureProducer,
    t0: DateTime<Utc>,
    _stops: Vec<oneshot::Sender<()>>,
}

fn stop_signal() -> (
    oneshot::Sender<()>,
    impl std::future::Future<Output = ()> + Send,
) {
    let (tx, rx) = oneshot::channel::<()>();
    (tx, async move {
        let _ = rx.await;
    })
}

/// API, raw sink, processor and agent, in-process, on a fresh database and
/// unique topics and consumer groups.
async fn spawn_stack() -> Stack {
    spawn_stack_with(|_| {}).await
}

async fn spawn_stack_with(tweak: impl FnOnce(&mut Settings)) -> Stack {
    let db = TestDb::fresh().await;
    let prefix = unique_prefix();
    let mut s = settings(&db, &shared_brokers(), &prefix);
    s.auth.keys = SecretString::from(format!("acme={ACME},globex={GLOBEX}"));
    s.processor.group_id = format!("{prefix}processor");
    s.processor.metrics_listen = "127.0.0.1:0".into();
    s.agent.group_id = format!("{prefix}agent");
    s.agent.light_group_id = format!("{prefix}agent-light");
    s.agent.metrics_listen = "127.0.0.1:0".into();
    s.push.group_id = format!("{prefix}agent-push");
    tweak(&mut s);
    let topics = Topics::new(prefix.clone());
    achilles_core::kafka::ensure_topics(&s.kafka, &topics)
        .await
        .expect("topics");
    let mut stops = Vec::new();
    let app = Application::build(s.clone()).await.expect("api builds");
    let base = format!("http://{}", app.local_addr());
    let (tx, rx) = stop_signal();
    tokio::spawn(app.run_until(rx));
    stops.push(tx);
    let sink = RawSink::build(s.clone()).await.expect("sink builds");
    let (tx, rx) = stop_signal();
    tokio::spawn(sink.run_until(rx));
    stops.push(tx);
    let processor = ProcessorService::build(s.clone())
        .await
        .expect("processor builds");
    let (tx, rx) = stop_signal();
    tokio::spawn(processor.run_until(rx));
    stops.push(tx);
    let agent = AgentService::build(s.clone()).await.expect("agent builds");
    let (tx, rx) = stop_signal();
    tokio::spawn(agent.run_until(rx));
    stops.push(tx);
    Stack {
        base,
        http: reqwest::Client::new(),
        db,
        producer: achilles_core::kafka::producer(&s.kafka).expect("producer"),
        settings: s,
        topics,
        // Recent enough for validation's time window, whole seconds.
        t0: DateTime::from_timestamp((Utc::now() - Span::hours(1)).timestamp(), 0).unwrap(),
        _stops: stops,
    }
}

impl Stack {
    async fn post(&self, path: &str, body: &Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(ACME)
            .json(body)
            .send()
            .await
            .expect("request");
        let status = resp.status();
        let body: Value = resp.json().await.unwrap_or(Value::Null);
        assert_eq!(status, StatusCode::ACCEPTED, "{path}: {body}");
        body
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

    fn at(&self, secs: i64) -> String {
        (self.t0 + Span::seconds(secs)).to_rfc3339()
    }

    async fn start(&self, sid: &str) {
        self.post(
            "/v1/sessions/start",
            &json!({"id": sid, "agent_name": "claude-code", "source": "cli", "started_at": self.at(0)}),
        )
        .await;
    }

    /// Sends `(seconds after t0, kind, data)` events in one batch.
    async fn send(&self, sid: &str, events: &[(i64, &str, Value)]) {
        let events: Vec<Value> = events
            .iter()
            .map(|(t, kind, data)| json!({"occurred_at": self.at(*t), "kind": kind, "data": data}))
            .collect();
        let body = self
            .post(
                "/v1/events/batch",
                &json!({"session_id": sid, "events": events}),
            )
            .await;
        assert_eq!(body["accepted"], events.len(), "{body}");
    }

    async fn end(&self, sid: &str, secs: i64) {
        self.post(
            "/v1/sessions/end",
            &json!({"session_id": sid, "status": "completed", "ended_at": self.at(secs)}),
        )
        .await;
    }

    /// Waits until light mode applied `n` events of the session.
    async fn wait_applied(&self, sid: &str, n: i64) {
        let sql = format!("SELECT coalesce((SELECT applied FROM consumer_state WHERE consumer = 'agent' AND session_id = '{sid}'), 0)");
        eventually(WAIT, &format!("light mode applied {n} events"), || async {
            (self.db.count(&sql).await >= n).then_some(())
        })
        .await;
    }

    async fn wait_judged(&self, sid: &str) -> Value {
        eventually(WAIT, "agent_performance row", || async {
            let (status, v) = self
                .get(ACME, &format!("/v1/sessions/{sid}/agent-performance"))
                .await;
            (status == StatusCode::OK && v["agents"].as_array().is_some_and(|a| !a.is_empty()))
                .then_some(v)
        })
        .await
    }

    async fn insights(&self, sid: &str, kind: &str) -> Vec<Value> {
        let (status, v) = self
            .get(
                ACME,
                &format!("/v1/insights/recent?session={sid}&type={kind}"),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{v}");
        v["insights"].as_array().cloned().unwrap_or_default()
    }

    /// Insight transitions published for one session: reads until one
    /// more than `expected` arrived or 10 s passed, so extra records show.
    async fn published(&self, sid: &str, expected: usize) -> Vec<InsightRecord> {
        let name = self.topics.name(Topic::Insights);
        let records = read_topic(
            &self.settings.kafka.brokers,
            &name,
            expected + 1,
            Duration::from_secs(10),
        )
        .await;
        records
            .iter()
            .filter_map(|r| InsightRecord::decode(&r.payload).ok())
            .filter(|r| r.session_id.to_string() == sid)
            .collect()
    }

    /// The agent's rows of one session, every column, for comparisons.
    async fn snapshot(&self, sid: &str) -> Value {
        sqlx::query_scalar::<_, Value>(&format!(
            "SELECT jsonb_build_object(
                 'performance', (SELECT jsonb_agg(to_jsonb(p)) FROM agent_performance p WHERE session_id = '{sid}'),
                 'reports', (SELECT jsonb_agg(to_jsonb(r)) FROM session_reports r WHERE session_id = '{sid}'))"
        ))
        .fetch_one(&self.db.pool)
        .await
        .unwrap()
    }
}

/// The processor's scripted session: edit a.rs, error naming a.rs, edit
/// b.rs, a failing build (naming c.rs), an LLM call, edit a.rs again, a
/// passing build. Ground truth: 6 agent actions (3 edits, 2 builds, 1 LLM
/// call); one induced error (the a.rs error; the build failure names no
/// edited file); the first a.rs edit induced it, the failing build failed
/// itself, so 4 actions succeeded; one break/fix cycle, fixed 40 s after
/// the error by the passing build.
async fn scripted(st: &Stack, sid: &str) {
    st.start(sid).await;
    st.send(sid, &[
        (0, "file_edit", json!({"path": "src/a.rs", "lines_added": 5})),
        (10, "error", json!({"message": "mismatched types: expected `u32`, found `i64`", "file": "src/a.rs", "line": 88})),
        (20, "file_edit", json!({"path": "src/b.rs"})),
        (30, "command", json!({"command": "cargo build", "exit_code": 101, "output": "error[E0308]: mismatched types\n --> src/c.rs:1:1"})),
        (35, "llm_call", json!({"provider": "anthropic", "model": "claude", "input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.01, "status": "ok"})),
        (40, "file_edit", json!({"path": "src/a.rs"})),
        (50, "command", json!({"command": "cargo build", "exit_code": 0})),
    ])
    .await;
    st.end(sid, 60).await;
}

#[tokio::test]
async fn a_scripted_session_yields_the_known_verdict_and_report() {
    let st = spawn_stack().await;
    let sid = "0190b3a2-7c1e-7a51-9d7e-00000000a001";
    scripted(&st, sid).await;
    let perf = st.wait_judged(sid).await;
    let row = &perf["agents"][0];
    assert_eq!(perf["agents"].as_array().unwrap().len(), 1);
    assert_eq!(row["agent_name"], "claude-code");
    assert_eq!(row["total_actions"], 6);
    assert_eq!(row["induced_error_count"], 1);
    assert_eq!(row["success_rate"], json!(4.0 / 6.0));
    assert_eq!(row["break_fix_cycles"], 1);
    assert_eq!(row["mean_time_to_fix_ms"], 40_000.0);
    assert_eq!(row["total_tokens"], 1200);
    assert_eq!(row["cost_usd"], 0.01);
    assert_eq!(row["tokens_per_successful_action"], 300.0);
    assert_eq!(row["cost_per_successful_action"], 0.0025);

    let (status, summary) = st.get(ACME, &format!("/v1/sessions/{sid}/summary")).await;
    assert_eq!(status, StatusCode::OK, "{summary}");
    assert_eq!(summary["session"]["status"], "completed");
    assert_eq!(summary["performance"][0]["total_actions"], 6);
    assert_eq!(summary["open_insights"], json!([]), "nothing alarming");
    let report = &summary["report"];
    assert_eq!(report["completeness"]["complete"], true, "{report}");
    let h = &report["headline"];
    assert_eq!(
        (
            &h["events"],
            &h["failures"],
            &h["agent_actions"],
            &h["successful_actions"]
        ),
        (&json!(7), &json!(2), &json!(6), &json!(4))
    );
    assert_eq!(
        (
            &h["induced_errors"],
            &h["break_fix_cycles"],
            &h["unfixed_induced_errors"],
            &h["insights_raised"]
        ),
        (&json!(1), &json!(1), &json!(0), &json!(0))
    );
    assert_eq!(h["success_rate"], 0.6667);
    assert_eq!(
        report["worst_files"][0],
        json!({"path": "src/a.rs", "induced_errors": 1, "fixed": 1, "failures": 1, "agent_edits": 2})
    );
    assert_eq!(report["worst_files"].as_array().unwrap().len(), 1);
    assert_eq!(report["top_clusters"].as_array().unwrap().len(), 2);
    let text = report["summary"].as_str().unwrap();
    assert!(text.contains("4 succeeded (66.7%)"), "{text}");

    // The other read endpoints agree.
    let (_, errors) = st.get(ACME, &format!("/v1/sessions/{sid}/errors")).await;
    let clusters = errors["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2, "{errors}");
    assert!(clusters.iter().all(|c| c["occurrences"] == 1));
    let (_, corr) = st
        .get(ACME, &format!("/v1/sessions/{sid}/correlations?limit=2"))
        .await;
    assert_eq!(corr["total"], 1, "{corr}");
    assert_eq!(corr["correlations"].as_array().unwrap().len(), 1);
    assert_eq!(corr["correlations"][0]["match_kind"], "error_location");
    let cid = clusters[0]["cluster_id"].as_str().unwrap();
    let (status, cluster) = st.get(ACME, &format!("/v1/clusters/{cid}")).await;
    assert_eq!(status, StatusCode::OK, "{cluster}");
    assert_eq!(cluster["sessions"][0]["session_id"], sid);

    // Another tenant sees none of it: 404, like a missing session.
    for path in ["errors", "correlations", "agent-performance", "summary"] {
        let (status, body) = st.get(GLOBEX, &format!("/v1/sessions/{sid}/{path}")).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
        assert_eq!(body["error"]["code"], "not_found");
    }
    let (status, _) = st.get(GLOBEX, &format!("/v1/clusters/{cid}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = st.get(ACME, "/v1/clusters/no-such-cluster").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, body) = st.get(ACME, "/v1/insights/recent?severity=loud").await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (StatusCode::BAD_REQUEST, &json!("invalid_request"))
    );
    let (status, _) = st.get(ACME, "/v1/insights/recent?session=nope").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// A labelled session (achilles-eval: real compiler and test output, with
/// rows that are only candidates) through the whole stack: the verdict
/// and the report count exactly the claims (confidence >= 0.5) among the
/// correlation rows, and those are the session's true induced errors.
#[tokio::test]
async fn verdicts_count_only_the_claims_among_the_correlation_rows() {
    use achilles_processor::engine::EngineConfig;
    use achilles_processor::evaluate::{materialise, offline_t0, rows};
    let cfg = EngineConfig::from_settings(&Default::default());
    // A session whose rows include candidates, claims and fixes.
    let session = achilles_eval::generate(41, 24)
        .into_iter()
        .find(|s| {
            let (start, events) = materialise(s, offline_t0()).unwrap();
            let r = rows(&start, &events, &cfg);
            r.iter().any(|p| p.confidence < 0.5)
                && r.iter().filter(|p| p.confidence >= 0.5).count() >= 2
                && r.iter().any(|p| p.fixed_by.is_some())
                && s.metadata.get("cwd").is_some()
        })
        .expect("a session with claims, candidates and fixes");
    let st = spawn_stack().await;
    let sid = session.id.to_string();
    let t0 = DateTime::from_timestamp((Utc::now() - Span::hours(6)).timestamp(), 0).unwrap();
    st.post(
        "/v1/sessions/start",
        &session.start_submission(&t0.to_rfc3339()),
    )
    .await;
    let events: Vec<Value> = (0..session.events.len())
        .map(|i| {
            let at = t0 + Span::milliseconds(session.events[i].offset_ms);
            session.submission(i, &at.to_rfc3339())
        })
        .collect();
    let body = st
        .post(
            "/v1/events/batch",
            &json!({"session_id": sid, "events": events}),
        )
        .await;
    assert_eq!(body["accepted"], events.len(), "{body}");
    let end = t0 + Span::milliseconds(session.duration_ms() + 1_000);
    st.post(
        "/v1/sessions/end",
        &json!({"session_id": sid, "status": "completed", "ended_at": end.to_rfc3339()}),
    )
    .await;
    let perf = st.wait_judged(&sid).await;
    let row = &perf["agents"][0];
    let q = |cond: &str, what: &str| {
        format!("SELECT count(DISTINCT {what}) FROM event_correlations WHERE session_id = '{sid}' AND {cond}")
    };
    let claimed = st
        .db
        .count(&q("confidence >= 0.5", "effect_event_id"))
        .await;
    let inducing = st.db.count(&q("confidence >= 0.5", "cause_event_id")).await;
    let fixed = st
        .db
        .count(&q(
            "confidence >= 0.5 AND fixed_by_event_id IS NOT NULL",
            "effect_event_id",
        ))
        .await;
    let candidates = st.db.count(&q("confidence < 0.5", "effect_event_id")).await;
    assert!(candidates > 0, "the session has candidate rows");
    let truth: std::collections::BTreeSet<usize> = session.truth.iter().map(|p| p.effect).collect();
    assert_eq!(
        claimed,
        truth.len() as i64,
        "the claims are the true induced errors"
    );
    assert_eq!(row["induced_error_count"], claimed);
    assert_eq!(row["break_fix_cycles"], fixed);
    let (_, summary) = st.get(ACME, &format!("/v1/sessions/{sid}/summary")).await;
    let h = &summary["report"]["headline"];
    assert_eq!(h["induced_errors"], claimed, "{h}");
    assert_eq!(h["inducing_actions"], inducing, "{h}");
    assert_eq!(h["break_fix_cycles"], fixed, "{h}");
    assert_eq!(h["unfixed_induced_errors"], claimed - fixed, "{h}");
}

#[tokio::test]
async fn a_redelivered_session_ended_record_changes_nothing() {
    let st = spawn_stack().await;
    let (first, second) = (
        "0190b3a2-7c1e-7a51-9d7e-00000000b001",
        "0190b3a2-7c1e-7a51-9d7e-00000000b002",
    );
    scripted(&st, first).await;
    st.wait_judged(first).await;
    st.start(second).await;
    st.send(
        second,
        &[(1, "agent_action", json!({"action": "plan", "status": "ok"}))],
    )
    .await;
    st.end(second, 2).await;
    st.wait_judged(second).await;
    let before = st.snapshot(first).await;

    let ended = read_topic(
        &st.settings.kafka.brokers,
        &st.topics.name(Topic::SessionEnded),
        2,
        Duration::from_secs(30),
    )
    .await;
    let bytes_of = |sid: &str| {
        ended
            .iter()
            .find(|r| {
                SessionEnded::decode(&r.payload).is_ok_and(|e| e.session_id.to_string() == sid)
            })
            .map(|r| r.payload.clone())
            .expect("session-ended record")
    };
    let (a, b) = (bytes_of(first), bytes_of(second));
    // The second session's row is our witness: re-published after the
    // first's record with the same key (same partition, so in order), its
    // reappearance proves the first's re-delivery was handled.
    sqlx::query(&format!(
        "DELETE FROM agent_performance WHERE session_id = '{second}'"
    ))
    .execute(&st.db.pool)
    .await
    .unwrap();
    let name = st.topics.name(Topic::SessionEnded);
    for payload in [&a, &b] {
        st.producer
            .send(
                FutureRecord::to(&name).key(first).payload(payload),
                Duration::from_secs(10),
            )
            .await
            .expect("re-publish");
    }
    st.wait_judged(second).await;
    assert_eq!(
        st.snapshot(first).await,
        before,
        "same rows, same timestamps"
    );
    assert_eq!(
        st.db
            .count(&format!(
                "SELECT count(*) FROM agent_performance WHERE session_id = '{first}'"
            ))
            .await,
        1
    );
}

#[tokio::test]
async fn a_session_whose_events_never_all_land_is_judged_after_the_wait_as_incomplete() {
    let st = spawn_stack_with(|s| s.agent.deep_max_wait_ms = 3_000).await;
    let sid = "0190b3a2-7c1e-7a51-9d7e-00000000e001";
    st.start(sid).await;
    st.send(
        sid,
        &[(1, "command", json!({"command": "make", "exit_code": 0}))],
    )
    .await;
    st.end(sid, 2).await;
    st.wait_judged(sid).await;
    // A record announcing more events than will ever land.
    let ended = read_topic(
        &st.settings.kafka.brokers,
        &st.topics.name(Topic::SessionEnded),
        1,
        Duration::from_secs(30),
    )
    .await;
    let mut rec = SessionEnded::decode(&ended[0].payload).unwrap();
    rec.event_count = 5;
    let retries = || {
        achilles_core::metrics::RETRIES
            .with_label_values(&["agent_deep", "not_ready"])
            .get()
    };
    let before = retries();
    let name = st.topics.name(Topic::SessionEnded);
    st.producer
        .send(
            FutureRecord::to(&name)
                .key(sid)
                .payload(&rec.encode().unwrap()),
            Duration::from_secs(10),
        )
        .await
        .expect("publish");
    let report = eventually(WAIT, "an incomplete report", || async {
        let (_, v) = st.get(ACME, &format!("/v1/sessions/{sid}/summary")).await;
        (v["report"]["completeness"]["complete"] == false).then(|| v["report"].clone())
    })
    .await;
    assert_eq!(report["completeness"]["events_expected"], 5);
    assert_eq!(report["completeness"]["events_judged"], 1);
    assert!(report["summary"]
        .as_str()
        .unwrap()
        .contains("Incomplete: judged 1 of 5 events"));
    assert!(retries() > before, "it waited (retried) first");
}

#[tokio::test]
async fn an_error_storm_raises_one_insight_while_active_and_resolves_when_it_clears() {
    let st = spawn_stack().await;
    let sid = "0190b3a2-7c1e-7a51-9d7e-00000000c001";
    st.start(sid).await;
    for batch in 0..3 {
        let errors: Vec<_> = (0..10)
            .map(|i| {
                let n = batch * 10 + i;
                (
                    n,
                    "error",
                    json!({"message": format!("connection refused (attempt {n})")}),
                )
            })
            .collect();
        st.send(sid, &errors).await;
    }
    st.wait_applied(sid, 30).await;
    let found = st.insights(sid, "high_error_density").await;
    assert_eq!(found.len(), 1, "one insight, not one per event: {found:?}");
    let i = &found[0];
    assert_eq!(
        (&i["status"], &i["severity"]),
        (&json!("open"), &json!("critical"))
    );
    assert_eq!(i["evidence"]["failures"], 20);
    assert_eq!(i["evidence"]["window_events"], 20);
    assert_eq!(
        st.db.count("SELECT count(*) FROM insights").await,
        1,
        "and no other insight"
    );
    let (_, s) = st.get(ACME, &format!("/v1/sessions/{sid}")).await;
    assert_eq!(s["status"], "active");
    let published = st.published(sid, 1).await;
    assert_eq!(published.len(), 1, "{published:?}");
    assert_eq!(published[0].transition, Transition::Raised);
    assert_eq!(published[0].id.to_string(), i["id"].as_str().unwrap());

    // The storm passes: successes push the failures out of the window.
    let ok: Vec<_> = (30..50)
        .map(|t| {
            (
                t,
                "command",
                json!({"command": "curl -f localhost:8080", "exit_code": 0}),
            )
        })
        .collect();
    st.send(sid, &ok).await;
    st.wait_applied(sid, 50).await;
    let found = st.insights(sid, "high_error_density").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0]["status"], "resolved", "{found:?}");
    assert!(found[0]["resolved_at"].is_string());
    let published = st.published(sid, 2).await;
    let transitions: Vec<_> = published.iter().map(|r| r.transition).collect();
    assert_eq!(transitions, [Transition::Raised, Transition::Resolved]);
    // Other tenants see nothing.
    let (_, other) = st
        .get(GLOBEX, &format!("/v1/insights/recent?session={sid}"))
        .await;
    assert_eq!(other["insights"], json!([]));
}

#[tokio::test]
async fn the_same_failing_command_in_a_loop_raises_a_loop_insight() {
    let st = spawn_stack().await;
    let sid = "0190b3a2-7c1e-7a51-9d7e-00000000d001";
    st.start(sid).await;
    let fail = |t: i64| {
        (
            t,
            "command",
            json!({"command": "cargo  test", "exit_code": 101, "output": "test result: FAILED"}),
        )
    };
    st.send(sid, &[
        fail(0),
        (5, "file_edit", json!({"path": "src/lib.rs"})),
        fail(10),
        (15, "llm_call", json!({"provider": "anthropic", "model": "claude", "input_tokens": 10, "output_tokens": 5, "status": "ok"})),
        fail(20),
        fail(30),
    ])
    .await;
    st.wait_applied(sid, 6).await;
    let found = st.insights(sid, "command_loop").await;
    assert_eq!(found.len(), 1, "{found:?}");
    assert_eq!(found[0]["dedup_key"], "cargo test");
    assert_eq!(found[0]["status"], "open");
    assert_eq!(found[0]["evidence"]["repeats"], 4);
    assert_eq!(
        found[0]["evidence"]["event_ids"].as_array().unwrap().len(),
        4
    );

    st.send(
        sid,
        &[(
            40,
            "command",
            json!({"command": "cargo test", "exit_code": 0}),
        )],
    )
    .await;
    st.wait_applied(sid, 7).await;
    let found = st.insights(sid, "command_loop").await;
    assert_eq!(found[0]["status"], "resolved");
    let (_, recent) = st
        .get(ACME, "/v1/insights/recent?status=resolved&limit=1")
        .await;
    assert_eq!(recent["insights"][0]["type"], "command_loop");
}

/// A record whose insight Postgres refuses for good (a trigger plays the
/// part of, say, an index row over the size limit) is parked on the
/// dead-letter topic with the reason, and light mode goes on with the
/// session's other events instead of retrying forever.
#[tokio::test]
async fn a_record_whose_insight_postgres_refuses_is_parked_and_light_mode_goes_on() {
    let st = spawn_stack().await;
    for sql in [
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.dedup_key = 'make poison' THEN
             RAISE EXCEPTION 'refused: %', NEW.dedup_key USING ERRCODE = '22023';
           END IF;
           RETURN NEW;
         END $$",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON insights
         FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    ] {
        sqlx::query(sql)
            .execute(&st.db.pool)
            .await
            .expect("trigger");
    }
    let sid = "0190b3a2-7c1e-7a51-9d7e-00000000d0ff";
    st.start(sid).await;
    let fail = |t: i64| {
        (
            t,
            "command",
            json!({"command": "make poison", "exit_code": 2}),
        )
    };
    st.send(sid, &[fail(0), fail(10), fail(20)]).await;
    st.send(
        sid,
        &[
            (30, "file_edit", json!({"path": "src/lib.rs"})),
            (
                40,
                "command",
                json!({"command": "make poison", "exit_code": 0}),
            ),
        ],
    )
    .await;
    // The third failure (the one that raises the refused insight) is parked;
    // the other four events are applied.
    st.wait_applied(sid, 4).await;
    let dlq = read_topic(
        &st.settings.kafka.brokers,
        &st.topics.name(Topic::DeadLetter),
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(dlq.len(), 1, "exactly one record parked");
    assert_eq!(
        dlq[0].header(headers::DLQ_REASON_CODE),
        Some("database_rejected")
    );
    assert!(st.insights(sid, "command_loop").await.is_empty());
}

/// `n` bytes of text that does not compress (Postgres compresses long
/// index entries, so repetitive text would hide an oversized key).
fn incompressible(n: usize) -> String {
    let mut s = String::with_capacity(n + 32);
    while s.len() < n {
        s.push_str(&uuid::Uuid::new_v4().simple().to_string());
    }
    s.truncate(n);
    s
}

/// The agent's tables take what validation admits at its maximum: token
/// sums of many maximum-size calls saturate instead of failing deep mode's
/// query, an insight keyed by the longest path fits its unique index once
/// the key is bounded (the raw key is what used to be refused and wedge
/// light mode), and the longest admissible name fits the verdicts' key.
#[tokio::test]
async fn maximum_size_values_fit_the_agents_tables() {
    use achilles_agent::db::{action_stats, upsert_insights, InsightWrite};
    use achilles_core::db::{index_key, MAX_INDEXED_NAME_BYTES};

    let db = TestDb::fresh().await;
    let sid = uuid::Uuid::now_v7();
    let now = Utc::now();
    let max = achilles_core::error::MAX_SAFE_INTEGER as i64;
    sqlx::query("INSERT INTO sessions (id, tenant_id, agent_name) VALUES ($1, 'acme', 'x')")
        .bind(sid)
        .execute(&db.pool)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO events (id, event_hash, tenant_id, session_id, occurred_at, ingested_at,
                             kind, actor, is_failure, data)
         SELECT gen_random_uuid(), md5(i::text) || md5(i::text), 'acme', $1, $2, $2,
                'llm_call', 'agent', false,
                jsonb_build_object('provider', 'p', 'model', 'm', 'status', 'ok',
                                   'input_tokens', $3::bigint, 'output_tokens', $3::bigint,
                                   'cost_usd', 1e6)
         FROM generate_series(1, 1100) AS i",
    )
    .bind(sid)
    .bind(now)
    .bind(max)
    .execute(&db.pool)
    .await
    .unwrap();
    let stats = action_stats(&db.pool, sid).await.unwrap();
    assert_eq!(stats.tokens, i64::MAX);
    assert_eq!(stats.cost_usd, 1.1e9);

    let path = incompressible(4096);
    let insight = |key: &str| InsightWrite {
        id: uuid::Uuid::new_v4(),
        tenant: "acme".into(),
        session_id: sid,
        insight_type: "agent_churn".into(),
        dedup_key: key.into(),
        severity: "warning".into(),
        status: "open".into(),
        title: format!("Agent churn on {path}"),
        detail: path.clone(),
        evidence: json!({"file": path}),
        raised_at: now,
        last_seen_at: now,
        resolved_at: None,
    };
    let mut tx = db.pool.begin().await.unwrap();
    let raw = upsert_insights(&mut tx, &[insight(&path)]).await;
    assert!(raw.is_err(), "a raw 4 KiB key exceeds the B-tree row limit");
    drop(tx);
    let mut tx = db.pool.begin().await.unwrap();
    upsert_insights(&mut tx, &[insight(&index_key(&path))])
        .await
        .expect("a bounded key fits");
    tx.commit().await.unwrap();

    let longest = incompressible(MAX_INDEXED_NAME_BYTES);
    sqlx::query(
        "INSERT INTO agent_performance (tenant_id, session_id, agent_name, total_actions,
             induced_error_count) VALUES ('acme', $1, $2, 0, 0)",
    )
    .bind(sid)
    .bind(&longest)
    .execute(&db.pool)
    .await
    .expect("a maximum-length name fits the primary key");
}
