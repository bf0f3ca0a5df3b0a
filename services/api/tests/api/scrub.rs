//! Secret scrubbing on the HTTP path: real-shaped credentials in every
//! text field of every event kind, in attributes, in session metadata and
//! in an OTLP log record. None of them may reach the Kafka record or a
//! Postgres row; each is replaced by a marker naming its kind.

use std::time::SystemTime;

use achilles_core::topics::{Topic, Topics};

use super::*;

/// Made-up credentials in the documented formats, one per rule.
pub(crate) const SECRETS: &[(&str, &str)] = &[
    ("aws_access_key", "AKIAIOSFODNN7EXAMPLE"),
    ("gcp_api_key", "AIzaSyD-9tSrke72PouQMnMX-a7eZSW0jkFMBWY"),
    ("github_token", "ghp_R2D2c3po4Bb8Ee9Ff0Gg1Hh2Ii3Jj4Kk5Ll6M"),
    ("gitlab_token", "glpat-xY9zA1bC2dE3fG4hI5jK"),
    (
        "slack_token",
        "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
    ),
    ("stripe_key", "sk_live_4eC39HqLyjWDarjtT1zdp7dc"),
    (
        "openai_key",
        "sk-proj-Ab3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dE3fG5hJ7kL9mN1pQ3sT5vW7yZ9bC1",
    ),
    (
        "anthropic_key",
        "sk-ant-api03-Xy7Zq9Wv3Ut5Sr1Qp8On6Ml4Kj2Ih0Gf9Ed7Cb5Aa3-ZyXwVuTsRqPo",
    ),
    ("jwt", "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"),
];

/// A text with the `i`-th credential (and a password in a URL and an
/// assignment, which every field gets too).
pub(crate) fn leaky(i: usize) -> String {
    let (_, secret) = SECRETS[i % SECRETS.len()];
    format!("failed with {secret} (db postgres://app:Pa55word-{i}@db:5432, PASSWORD=hunter{i}x)")
}

/// Every raw piece a test posted: none may appear anywhere downstream.
pub(crate) fn raw_pieces() -> Vec<String> {
    let mut v: Vec<String> = SECRETS.iter().map(|(_, s)| (*s).to_owned()).collect();
    for i in 0..20 {
        v.push(format!("Pa55word-{i}@"));
        v.push(format!("hunter{i}x"));
    }
    v
}

#[tokio::test]
async fn credentials_in_every_field_never_reach_kafka_or_postgres() {
    let app = spawn_app().await;
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/sessions/start",
            &json!({"agent_name": "claude-code", "metadata": {"env": leaky(0), "argv": [leaky(1)]}}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    let sid = body["session_id"].as_str().unwrap().to_owned();
    let attrs =
        |i: usize| json!({"cwd": "/src", "env": {"TOKEN_LINE": leaky(i)}, "args": [leaky(i + 1)]});
    let events = json!([
        {"occurred_at": now(), "kind": "file_edit", "data": {"path": format!("notes/{}.txt", SECRETS[2].1)}, "attributes": attrs(0)},
        {"occurred_at": now(), "kind": "command", "data": {"command": format!("curl -H 'Authorization: Bearer {}' https://x", SECRETS[3].1), "exit_code": 1, "output": leaky(1)}, "attributes": attrs(1)},
        {"occurred_at": now(), "kind": "test_run", "data": {"framework": "pytest", "passed": 1, "failed": 1, "output": leaky(2)}, "attributes": attrs(2)},
        {"occurred_at": now(), "kind": "error", "data": {"message": leaky(3), "stack_trace": leaky(4), "file": format!("cfg/{}.env", SECRETS[0].1)}, "attributes": attrs(3)},
        {"occurred_at": now(), "kind": "llm_call", "data": {"provider": "openai", "model": "gpt", "status": "error", "error": leaky(5)}, "attributes": attrs(4)},
        {"occurred_at": now(), "kind": "tool_call", "data": {"tool": "bash", "status": "error", "error": leaky(6)}, "attributes": attrs(5)},
        {"occurred_at": now(), "kind": "agent_action", "data": {"action": "plan", "detail": leaky(7)}, "attributes": attrs(6)},
        {"occurred_at": now(), "kind": "user_message", "data": {"text": leaky(8)}, "attributes": attrs(7)},
    ]);
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": sid, "events": events}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["accepted"], 8, "{body}");
    // The same raw event again is a duplicate: the hash is of the
    // scrubbed event, and scrubbing is deterministic.
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": sid, "events": [events[7].clone()]}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["duplicates"], 1, "{body}");

    // OTLP goes through the same validation: a prompt with a key in it.
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let otlp_sid = uuid::Uuid::new_v4().to_string();
    let logs = json!({"resourceLogs": [{"scopeLogs": [{"logRecords": [{
        "timeUnixNano": nanos.to_string(),
        "body": {"stringValue": "claude_code.user_prompt"},
        "attributes": [{"key": "session.id", "value": {"stringValue": otlp_sid}},
                       {"key": "prompt", "value": {"stringValue": leaky(9)}},
                       {"key": "user.note", "value": {"stringValue": leaky(10)}}]}]}]}]});
    let resp = app
        .http
        .post(format!("{}/v1/logs", app.base))
        .header("content-type", "application/json")
        .header("x-api-key", ACME_KEY)
        .body(logs.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let answer: Value = resp.json().await.unwrap();
    assert!(answer.get("partialSuccess").is_none(), "{answer}");

    // Kafka: the session start, 8 events, the OTLP session start and event.
    let topics = Topics::new(app.settings.kafka.topic_prefix.clone());
    let records = read_topic(
        &app.settings.kafka.brokers,
        &topics.name(Topic::Events),
        11,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(records.len(), 11);
    let raw = raw_pieces();
    let limits = achilles_core::model::Limits::default();
    let mut markers = 0;
    for r in &records {
        let text = String::from_utf8_lossy(&r.payload);
        for piece in &raw {
            assert!(
                !text.contains(piece.as_str()),
                "{piece} reached Kafka: {text}"
            );
        }
        markers += text.matches("[REDACTED:").count();
        // Still a valid record for every consumer (limits hold).
        achilles_core::wire::decode_envelope(&r.payload, &limits).expect("decodes");
    }
    for (rule, _) in SECRETS {
        let all: String = records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect();
        assert!(
            all.contains(&format!("[REDACTED:{rule}]")),
            "no {rule} marker"
        );
    }
    assert!(markers >= 8 * 3, "{markers} markers");

    // Postgres: whole rows, every column.
    app.wait_landed(&sid, 8).await;
    app.wait_landed(&otlp_sid, 1).await;
    for piece in &raw {
        let escaped = piece.replace('\'', "''");
        let n = app
            .db
            .count(&format!(
                "SELECT (SELECT count(*) FROM events e WHERE e::text LIKE '%{escaped}%')
                      + (SELECT count(*) FROM sessions s WHERE s::text LIKE '%{escaped}%')"
            ))
            .await;
        assert_eq!(n, 0, "{piece} reached Postgres");
    }
    let kept = app
        .db
        .count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{sid}'
               AND data::text LIKE '%[REDACTED:%' AND attributes::text LIKE '%[REDACTED:%'"
        ))
        .await;
    assert_eq!(kept, 8, "every event kept a marker in data and attributes");
    let url_kept = app
        .db
        .count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{sid}'
               AND data::text LIKE '%postgres://app:[REDACTED:url_password]@db:5432%'"
        ))
        .await;
    assert!(url_kept >= 5, "user and host of a URL stay: {url_kept}");

    // The metric counts by rule.
    let metrics = app
        .http
        .get(format!("{}/metrics", app.base))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for rule in ["github_token", "url_password", "password_assignment"] {
        assert!(
            metrics.contains(&format!("achilles_redactions_total{{rule=\"{rule}\"}}")),
            "{rule} not counted"
        );
    }
}
