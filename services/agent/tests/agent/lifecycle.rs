//! Session lifecycle end to end (a 2 s idle timeout): a silent session is
//! ended `timed_out` by the processor's reaper, summarised and judged like
//! any ended session; a late event lands, counts and re-judges it (one
//! verdict row, updated); `POST /v1/sessions/{id}/judge` re-runs deep
//! mode; the producer's own end later replaces the timeout.

use super::*;

const SID: &str = "0190b3a2-7c1e-7a51-9d7e-00000000c001";

async fn total_actions(st: &Stack) -> Value {
    let (status, v) = st
        .get(ACME, &format!("/v1/sessions/{SID}/agent-performance"))
        .await;
    assert_eq!(status, StatusCode::OK, "{v}");
    v["agents"][0]["total_actions"].clone()
}

async fn wait_row(st: &Stack, what: &str, sql: String) {
    eventually(WAIT, what, || async {
        (st.db.count(&sql).await == 1).then_some(())
    })
    .await;
}

#[tokio::test]
async fn an_idle_session_times_out_is_judged_and_a_late_event_judges_it_again() {
    let st = spawn_stack_with(|s| {
        s.session.idle_timeout_ms = 2_000;
        s.session.reaper_interval_ms = 200;
    })
    .await;
    st.start(SID).await;
    // The scripted session without its end.
    st.send(SID, &[
        (0, "file_edit", json!({"path": "src/a.rs", "lines_added": 5})),
        (10, "error", json!({"message": "mismatched types: expected `u32`, found `i64`", "file": "src/a.rs", "line": 88})),
        (20, "file_edit", json!({"path": "src/b.rs"})),
        (30, "command", json!({"command": "cargo build", "exit_code": 101, "output": "error[E0308]: mismatched types\n --> src/c.rs:1:1"})),
        (35, "llm_call", json!({"provider": "anthropic", "model": "claude", "input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.01, "status": "ok"})),
        (40, "file_edit", json!({"path": "src/a.rs"})),
        (50, "command", json!({"command": "cargo build", "exit_code": 0})),
    ])
    .await;

    // 1. Silent for the timeout: ended timed_out, final summary, judged.
    wait_row(
        &st,
        "the session timed out with a final summary",
        format!("SELECT count(*) FROM sessions WHERE id = '{SID}' AND status = 'timed_out' AND summary_final AND event_count = 7"),
    )
    .await;
    let perf = st.wait_judged(SID).await;
    assert_eq!(perf["agents"][0]["total_actions"], 6, "{perf}");
    let (_, summary) = st.get(ACME, &format!("/v1/sessions/{SID}/summary")).await;
    assert_eq!(summary["session"]["status"], "timed_out");
    assert_eq!(summary["report"]["headline"]["events"], 7, "{summary}");
    let ended_at = summary["session"]["ended_at"].clone();
    let ended = read_topic(
        &st.settings.kafka.brokers,
        &st.topics.name(Topic::SessionEnded),
        1,
        Duration::from_secs(30),
    )
    .await;
    let rec = SessionEnded::decode(&ended[0].payload).expect("session-ended");
    assert_eq!(rec.status.as_str(), "timed_out");
    assert_eq!(rec.event_count, 7);

    // 2. A late event: landed, counted, judged again (one row, updated);
    //    the session stays timed_out at the same end.
    st.send(SID, &[(70, "file_edit", json!({"path": "src/c.rs"}))])
        .await;
    eventually(WAIT, "the late edit counted in the verdict", || async {
        (total_actions(&st).await == 7).then_some(())
    })
    .await;
    let (_, summary) = st.get(ACME, &format!("/v1/sessions/{SID}/summary")).await;
    assert_eq!(summary["session"]["status"], "timed_out");
    assert_eq!(summary["session"]["event_count"], 8);
    assert_eq!(summary["session"]["ended_at"], ended_at);
    assert_eq!(summary["report"]["headline"]["events"], 8, "{summary}");
    let one = format!("SELECT count(*) FROM agent_performance WHERE session_id = '{SID}'");
    assert_eq!(st.db.count(&one).await, 1);
    assert_eq!(
        st.db
            .count(&format!(
                "SELECT count(*) FROM events WHERE session_id = '{SID}'"
            ))
            .await,
        8
    );

    // 3. The judge route re-runs deep mode: the deleted verdict comes back,
    //    once, with the same values.
    sqlx::query(&format!(
        "DELETE FROM agent_performance WHERE session_id = '{SID}'"
    ))
    .execute(&st.db.pool)
    .await
    .unwrap();
    for _ in 0..2 {
        let body = st
            .post(&format!("/v1/sessions/{SID}/judge"), &json!({}))
            .await;
        assert_eq!(body["session_status"], "timed_out", "{body}");
        assert_eq!(body["event_count"], 8, "{body}");
    }
    let perf = st.wait_judged(SID).await;
    assert_eq!(perf["agents"][0]["total_actions"], 7, "{perf}");
    assert_eq!(st.db.count(&one).await, 1);

    // 4. The producer's own end replaces the timeout.
    st.end(SID, 80).await;
    wait_row(
        &st,
        "the real end replaced the timeout",
        format!("SELECT count(*) FROM sessions WHERE id = '{SID}' AND status = 'completed'"),
    )
    .await;
    eventually(WAIT, "the report judged the completed session", || async {
        let (_, s) = st.get(ACME, &format!("/v1/sessions/{SID}/summary")).await;
        (s["report"]["session"]["status"] == "completed").then_some(())
    })
    .await;
    assert_eq!(st.db.count(&one).await, 1);
}
