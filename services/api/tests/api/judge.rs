//! `POST /v1/sessions/{id}/judge`: tenant-checked, refuses a session that
//! has not ended, and queues a session-ended record for deep mode carrying
//! the processor's event count (rows inserted directly, as the raw sink
//! and the processor would have written them).

use achilles_core::model::SessionStatus;
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::session_ended::SessionEnded;

use super::*;

async fn session_row(app: &TestApp, tenant: &str, status: &str, events: i64) -> String {
    let id = uuid::Uuid::now_v7();
    let ended = if status == "active" { "NULL" } else { "now()" };
    sqlx::query(&format!(
        "INSERT INTO sessions (id, tenant_id, agent_name, status, ended_at, event_count, error_count,
                               last_event_at, summary_final)
         VALUES ($1, $2, 'claude-code', $3, {ended}, $4, 2, now() - interval '1 minute', {})",
        status != "active"
    ))
    .bind(id)
    .bind(tenant)
    .bind(status)
    .bind(events)
    .execute(&app.db.pool)
    .await
    .expect("insert session");
    id.to_string()
}

async fn judge(app: &TestApp, key: &str, id: &str) -> (StatusCode, Value) {
    let (status, body, _) = app
        .post(Some(key), &format!("/v1/sessions/{id}/judge"), &json!({}))
        .await;
    (status, body)
}

#[tokio::test]
async fn judge_queues_one_record_per_request_for_an_ended_session_of_the_tenant() {
    let app = spawn_app_on(&shared_brokers(), false).await;
    let ended = session_row(&app, "acme", "timed_out", 7).await;
    let active = session_row(&app, "acme", "active", 3).await;
    let theirs = session_row(&app, "globex", "completed", 5).await;

    let (status, body) = judge(&app, ACME_KEY, &uuid::Uuid::now_v7().to_string()).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = judge(&app, ACME_KEY, &theirs).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another tenant's: {body}");
    assert_eq!(body["error"]["code"], "not_found");
    let (status, body) = judge(&app, ACME_KEY, &active).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(body["error"]["code"], "session_active");
    let (status, _, _) = app
        .post(None, &format!("/v1/sessions/{ended}/judge"), &json!({}))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, body) = judge(&app, ACME_KEY, "not-a-uuid").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    for _ in 0..2 {
        let (status, body) = judge(&app, ACME_KEY, &ended).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "queued");
        assert_eq!(body["session_status"], "timed_out");
        assert_eq!(body["event_count"], 7);
    }

    // Exactly the two requests' records, keyed by the session, with the
    // processor's counts (read until one more than expected could arrive).
    let topics = Topics::new(app.settings.kafka.topic_prefix.clone());
    let records = read_topic(
        &app.settings.kafka.brokers,
        &topics.name(Topic::SessionEnded),
        3,
        Duration::from_secs(8),
    )
    .await;
    assert_eq!(records.len(), 2, "one record per accepted request");
    for r in &records {
        assert_eq!(r.key.as_deref(), Some(ended.as_bytes()));
        let rec = SessionEnded::decode(&r.payload).expect("a session-ended record");
        assert_eq!(rec.session_id.to_string(), ended);
        assert_eq!(rec.tenant.as_str(), "acme");
        assert_eq!(rec.status, SessionStatus::TimedOut);
        assert_eq!((rec.event_count, rec.error_count), (7, 2));
    }
}

#[tokio::test]
async fn producers_cannot_end_a_session_as_timed_out() {
    let app = spawn_app_on(&shared_brokers(), false).await;
    let (status, body, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/sessions/end",
            &json!({"session_id": uuid::Uuid::now_v7().to_string(), "status": "timed_out"}),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body}");
    assert!(body.to_string().contains("status"), "{body}");
}
