//! Postgres goes away for 30 s in the middle of a stream (issue 11): the
//! API does not need it and keeps answering 202 (Kafka has every event),
//! reads answer 503 with `Retry-After`, every consumer retries instead of
//! skipping or crashing, and once Postgres is back each event is landed
//! and derived exactly once and each session judged once.

use std::time::Instant;

use achilles_core::metrics;

use super::*;

const SESSIONS: usize = 6;
const PER_SESSION: i64 = 30;
const OUTAGE: Duration = Duration::from_secs(30);

fn sid(i: usize) -> String {
    format!("0190b3a2-7c1e-7a51-9d7e-0000000c{i:04x}")
}

/// Events `from..to` of session `i`: edits, a failing build naming the
/// edited file, a passing build.
async fn send_part(st: &Stack, i: usize, from: i64, to: i64) {
    let sid = sid(i);
    let events: Vec<(i64, &str, Value)> = (from..to)
        .map(|k| match k % 3 {
            0 => (k, "file_edit", json!({"path": format!("src/m{}.rs", k % 5)})),
            1 => (
                k,
                "command",
                json!({"command": "cargo build", "exit_code": 101,
                       "output": format!("error[E0425]: cannot find value `v{k}`\n --> src/m{}.rs:{k}:5", (k - 1) % 5)}),
            ),
            _ => (k, "command", json!({"command": "cargo build", "exit_code": 0})),
        })
        .collect();
    st.send(&sid, &events).await;
}

fn retries(consumer: &str) -> f64 {
    let label = format!("consumer=\"{consumer}\"");
    metrics::render()
        .lines()
        .filter(|l| l.starts_with("achilles_consumer_retries_total{") && l.contains(&label))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

#[tokio::test]
async fn thirty_seconds_without_postgres_lose_and_duplicate_nothing() {
    let st = spawn_stack().await;
    let half = PER_SESSION / 2;
    for i in 0..SESSIONS {
        st.start(&sid(i)).await;
        send_part(&st, i, 0, half).await;
    }
    // The first halves are derived before the outage starts.
    for i in 0..SESSIONS {
        st.wait_applied(&sid(i), half).await;
    }

    st.db.cut().await;
    let cut_at = Instant::now();
    // The write path needs only Kafka: the second halves and the ends are
    // accepted (`post` asserts 202) while Postgres is away.
    for i in 0..SESSIONS {
        send_part(&st, i, half, PER_SESSION).await;
        st.end(&sid(i), PER_SESSION + 1).await;
    }
    // Reads need Postgres: 503 with Retry-After, not a hang or a 500.
    let resp = st
        .http
        .get(format!("{}/v1/sessions/{}", st.base, sid(0)))
        .header("x-api-key", ACME)
        .send()
        .await
        .expect("read during the outage");
    assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        resp.headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some(st.settings.api.retry_after_secs.to_string().as_str())
    );
    // Every consumer of the events topic runs into the outage and retries.
    eventually(
        OUTAGE,
        "landing, processor and light mode retrying",
        || async {
            (retries("landing") > 0.0 && retries("processor") > 0.0 && retries("agent") > 0.0)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(OUTAGE.saturating_sub(cut_at.elapsed())).await;
    st.db.restore().await;

    for i in 0..SESSIONS {
        st.wait_judged(&sid(i)).await;
    }
    let expected = PER_SESSION; // start and end are the session row, not events
    let total = st.db.count("SELECT count(*) FROM events").await;
    assert_eq!(total, expected * SESSIONS as i64, "every event landed once");
    for i in 0..SESSIONS {
        let sid = sid(i);
        let derived = st
            .db
            .count(&format!(
                "SELECT event_count FROM sessions WHERE id = '{sid}' AND summary_final AND status = 'completed'"
            ))
            .await;
        assert_eq!(derived, expected, "{sid}: every event derived once");
        let judged = st
            .db
            .count(&format!(
                "SELECT count(*) FROM agent_performance WHERE session_id = '{sid}'"
            ))
            .await;
        assert_eq!(judged, 1, "{sid}: one verdict");
        // Ten failing builds, each naming the file edited just before it:
        // ten induced errors, counted once each.
        let induced = st
            .db
            .count(&format!(
                "SELECT induced_error_count FROM agent_performance WHERE session_id = '{sid}'"
            ))
            .await;
        assert_eq!(induced, PER_SESSION / 3, "{sid}: induced errors");
    }
    // Cluster occurrences are increments, so a batch applied twice would
    // show here: one per failing event.
    let failures = st
        .db
        .count("SELECT count(*) FROM events WHERE is_failure")
        .await;
    let occurrences = st
        .db
        .count("SELECT coalesce(sum(occurrence_count), 0)::bigint FROM error_clusters")
        .await;
    assert_eq!(failures, PER_SESSION / 3 * SESSIONS as i64);
    assert_eq!(occurrences, failures, "each failure clustered once");
}
