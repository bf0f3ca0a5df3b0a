//! `DELETE /v1/sessions/{id}`: a session landed through the API, with a
//! row in every table the processor and the agent would write inserted
//! directly, is removed from every table that holds a session's rows
//! (found from the schema, so a table added later is checked too), another
//! session keeps all of its rows, another tenant gets 404, and a record
//! arriving after the deletion is dropped, not landed.

use super::*;

async fn exec(app: &TestApp, sql: &str) {
    sqlx::raw_sql(sql)
        .execute(&app.db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// One row of every derived table for session `s` (tenant acme), with
/// occurrence counts of 3 in the shared template and cluster.
async fn seed(app: &TestApp, s: &str) {
    let u = || uuid::Uuid::new_v4();
    exec(app, &format!(
        "INSERT INTO error_template_sessions (tenant_id, template_id, session_id, occurrence_count, first_seen, last_seen)
         VALUES ('acme', 't1', '{s}', 3, now(), now());
         UPDATE error_templates SET occurrence_count = occurrence_count + 3 WHERE template_id = 't1';
         INSERT INTO error_cluster_sessions (tenant_id, cluster_id, session_id, occurrence_count, first_seen, last_seen)
         VALUES ('acme', 'c1', '{s}', 3, now(), now());
         UPDATE error_clusters SET occurrence_count = occurrence_count + 3, session_count = session_count + 1 WHERE id = 'c1';
         INSERT INTO event_correlations (tenant_id, session_id, cause_event_id, effect_event_id, match_kind, gap_ms, confidence)
         VALUES ('acme', '{s}', '{}', '{}', 'any_failure', 10, 0.5);
         INSERT INTO agent_performance (tenant_id, session_id, agent_name, total_actions, induced_error_count)
         VALUES ('acme', '{s}', 'claude-code', 10, 1);
         INSERT INTO session_reports (session_id, tenant_id, report) VALUES ('{s}', 'acme', '{{}}');
         INSERT INTO insights (id, tenant_id, session_id, type, severity, dedup_key, title, raised_at, last_seen_at)
         VALUES ('{}', 'acme', '{s}', 'command_loop', 'warning', 'k', 'loop', now(), now());
         INSERT INTO insight_transitions (tenant_id, insight_id, session_id, type, transition, status, severity,
             dedup_key, title, raised_at, last_seen_at, decided_at)
         VALUES ('acme', '{}', '{s}', 'command_loop', 'raised', 'open', 'warning', 'k', 'loop', now(), now(), now());
         INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, transition_id)
         SELECT '{}', 'a0000000-0000-0000-0000-000000000001', 'acme', max(id) FROM insight_transitions;
         INSERT INTO consumer_state (consumer, session_id, tenant_id, state) VALUES ('processor', '{s}', 'acme', '{{}}');
         INSERT INTO outbox (topic, key, payload) VALUES ('x.session-ended', '{s}', '\\x00');",
        u(), u(), u(), u(), u()
    ))
    .await;
}

/// Rows of session `s` in every base table with a `session_id` column, in
/// `sessions` and in `outbox` (keyed by the session id).
async fn rows_of(app: &TestApp, s: &str) -> Vec<(String, i64)> {
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT c.table_name::text FROM information_schema.columns c
         JOIN information_schema.tables t ON t.table_schema = c.table_schema AND t.table_name = c.table_name
         WHERE c.table_schema = current_schema() AND c.column_name = 'session_id'
           AND t.table_type = 'BASE TABLE' ORDER BY 1",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    let mut out = Vec::new();
    for (t,) in tables {
        let n = app
            .db
            .count(&format!(
                "SELECT count(*) FROM {t} WHERE session_id = '{s}'"
            ))
            .await;
        out.push((t, n));
    }
    out.push((
        "sessions".into(),
        app.db
            .count(&format!("SELECT count(*) FROM sessions WHERE id = '{s}'"))
            .await,
    ));
    out.push((
        "outbox".into(),
        app.db
            .count(&format!("SELECT count(*) FROM outbox WHERE key = '{s}'"))
            .await,
    ));
    out.push((
        "webhook_deliveries".into(),
        app.db
            .count(&format!(
                "SELECT count(*) FROM webhook_deliveries d JOIN insight_transitions t
                 ON t.id = d.transition_id WHERE t.session_id = '{s}'"
            ))
            .await,
    ));
    out
}

async fn delete(app: &TestApp, key: &str, id: &str) -> (StatusCode, Value) {
    let resp = app
        .http
        .delete(format!("{}/v1/sessions/{id}", app.base))
        .header("x-api-key", key)
        .send()
        .await
        .expect("request");
    let status = resp.status();
    (status, resp.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn deleting_a_session_removes_its_rows_from_every_table_and_nothing_else() {
    let app = spawn_app().await;
    let (s1, s2) = (
        app.start_session(ACME_KEY).await,
        app.start_session(ACME_KEY).await,
    );
    for s in [&s1, &s2] {
        let (status, body, _) = app
            .post(
                Some(ACME_KEY),
                "/v1/events/batch",
                &json!({"session_id": s, "events": sample_events()}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    }
    app.wait_landed(&s1, 5).await;
    app.wait_landed(&s2, 5).await;
    exec(&app,
        "INSERT INTO error_templates (tenant_id, template_id, template, cluster_id, cluster_template,
             first_seen, last_seen, occurrence_count, sample_message)
         VALUES ('acme', 't1', 'boom <*>', 'c1', 'boom <*>', now(), now(), 0, 'boom 1');
         INSERT INTO error_clusters (tenant_id, id, template, first_seen, last_seen)
         VALUES ('acme', 'c1', 'boom <*>', now(), now());
         INSERT INTO webhook_endpoints (id, tenant_id, url, secret)
         VALUES ('a0000000-0000-0000-0000-000000000001', 'acme', 'http://example.test/', 's');",
    )
    .await;
    seed(&app, &s1).await;
    seed(&app, &s2).await;
    let before = rows_of(&app, &s1).await;
    for (t, n) in &before {
        assert!(*n > 0, "the test seeds {t} for the session: {before:?}");
    }
    let other_before = rows_of(&app, &s2).await;

    // Another tenant, a malformed and an unknown id: nothing happens.
    assert_eq!(delete(&app, GLOBEX_KEY, &s1).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        delete(&app, ACME_KEY, "nope").await.0,
        StatusCode::BAD_REQUEST
    );
    let unknown = uuid::Uuid::now_v7().to_string();
    assert_eq!(
        delete(&app, ACME_KEY, &unknown).await.0,
        StatusCode::NOT_FOUND
    );
    assert_eq!(rows_of(&app, &s1).await, before);

    let (status, body) = delete(&app, ACME_KEY, &s1).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["deleted"]["events"], 5, "{body}");
    assert_eq!(body["deleted"]["sessions"], 1, "{body}");
    for (t, n) in rows_of(&app, &s1).await {
        assert_eq!(n, 0, "{t} still has rows of the deleted session");
    }
    assert_eq!(
        rows_of(&app, &s2).await,
        other_before,
        "the other session is untouched"
    );
    // The aggregates lose exactly the deleted session's share.
    let counts: (i64, i64, i64) = sqlx::query_as(
        "SELECT c.occurrence_count, c.session_count, t.occurrence_count
         FROM error_clusters c, error_templates t WHERE c.id = 'c1' AND t.template_id = 't1'",
    )
    .fetch_one(&app.db.pool)
    .await
    .unwrap();
    assert_eq!(counts, (3, 1, 3));
    assert_eq!(delete(&app, ACME_KEY, &s1).await.0, StatusCode::NOT_FOUND);
    assert_eq!(
        app.get(ACME_KEY, &format!("/v1/sessions/{s1}")).await.0,
        StatusCode::NOT_FOUND
    );

    // A record still arriving for the deleted session is dropped by the
    // consumers (tombstone), not landed into a re-created session.
    let (status, _, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/events/batch",
            &json!({"session_id": s1, "events": sample_events()}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    eventually(
        Duration::from_secs(30),
        "the late records dropped",
        || async {
            let dropped = achilles_core::metrics::SKIPPED
                .with_label_values(&["landing", "deleted"])
                .get();
            (dropped >= 5).then_some(())
        },
    )
    .await;
    for (t, n) in rows_of(&app, &s1).await {
        assert_eq!(
            n, 0,
            "{t} has rows of the deleted session after a late record"
        );
    }
}
