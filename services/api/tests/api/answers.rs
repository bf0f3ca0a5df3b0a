//! Answers across sessions (`GET /v1/sessions`, `/v1/clusters`,
//! `/v1/agents/leaderboard`) over sessions landed through the API, with the
//! verdicts, correlations and clusters the processor and the agent would
//! write inserted directly, so every formula is checked against numbers
//! worked out by hand.

use super::*;

async fn exec(app: &TestApp, sql: &str) {
    sqlx::query(sql)
        .execute(&app.db.pool)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

async fn start(app: &TestApp, key: &str, agent: &str, model: &str, started: &str) -> String {
    let (status, body, _) = app
        .post(
            Some(key),
            "/v1/sessions/start",
            &json!({"agent_name": agent, "agent_model": model, "started_at": started}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    body["session_id"].as_str().unwrap().to_owned()
}

fn ago(hours: i64) -> String {
    (Utc::now() - chrono::Duration::hours(hours)).to_rfc3339()
}

#[tokio::test]
async fn sessions_clusters_and_leaderboard_across_sessions() {
    let app = spawn_app().await;
    let s1 = start(&app, ACME_KEY, "claude-code", "opus", &ago(5)).await;
    let s2 = start(&app, ACME_KEY, "claude-code", "opus", &ago(4)).await;
    let s3 = start(&app, ACME_KEY, "aider", "gpt-4o", &ago(3)).await;
    let g = start(&app, GLOBEX_KEY, "claude-code", "opus", &ago(2)).await;
    let (status, _, _) = app
        .post(
            Some(ACME_KEY),
            "/v1/sessions/end",
            &json!({"session_id": s2, "status": "failed"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    eventually(Duration::from_secs(30), "sessions landed", || async {
        let n = app
            .db
            .count("SELECT count(*) FROM sessions WHERE NOT placeholder")
            .await;
        let failed = app
            .db
            .count("SELECT count(*) FROM sessions WHERE status = 'failed'")
            .await;
        (n == 4 && failed == 1).then_some(())
    })
    .await;

    // Verdicts of the monitoring agent, correlations of the processor.
    exec(
        &app,
        &format!(
            "INSERT INTO agent_performance (tenant_id, session_id, agent_name, total_actions,
             induced_error_count, success_rate, total_tokens, cost_usd) VALUES
         ('acme', '{s1}', 'claude-code', 10, 1, 0.8, 1000, 0.5),
         ('acme', '{s2}', 'claude-code', 10, 1, 0.6, 3000, 1.5),
         ('acme', '{s3}', 'aider', 20, 0, 0.9, 2000, 1.0),
         ('globex', '{g}', 'claude-code', 50, 9, 0.1, 1, 1.0)"
        ),
    )
    .await;
    let (e1, e2, e3) = (
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
        uuid::Uuid::new_v4(),
    );
    let c = || uuid::Uuid::new_v4();
    exec(&app, &format!(
        "INSERT INTO event_correlations (tenant_id, session_id, cause_event_id, effect_event_id,
             match_kind, file_path, gap_ms, confidence, fixed_by_event_id, fixed_at, cause_at, effect_at) VALUES
         ('acme', '{s1}', '{}', '{e1}', 'same_file', 'a.rs', 1000, 0.8, '{}', now() - interval '59 minutes', now() - interval '61 minutes', now() - interval '60 minutes'),
         ('acme', '{s1}', '{}', '{e1}', 'any_failure', NULL, 2000, 0.3, NULL, NULL, now() - interval '62 minutes', now() - interval '60 minutes'),
         ('acme', '{s1}', '{}', '{e2}', 'same_file', 'b.rs', 280000, 0.4, NULL, NULL, now() - interval '50 minutes', now() - interval '45 minutes'),
         ('acme', '{s2}', '{}', '{e3}', 'same_file', 'c.rs', 1000, 0.6, NULL, NULL, now() - interval '31 minutes', now() - interval '30 minutes')",
        c(), c(), c(), c(), c())).await;
    // Clusters: c1 in s1 and s2 this week and in s3 the week before; c2 new.
    exec(&app,
        "INSERT INTO error_clusters (tenant_id, id, template, first_seen, last_seen, occurrence_count, session_count) VALUES
         ('acme', 'c1', 'cannot find value <*>', now() - interval '10 days', now() - interval '1 hour', 9, 3),
         ('acme', 'c2', 'connection refused <*>', now() - interval '2 hours', now() - interval '2 hours', 1, 1)",
    )
    .await;
    exec(
        &app,
        &format!(
            "INSERT INTO error_cluster_sessions (tenant_id, cluster_id, session_id, occurrence_count, first_seen, last_seen) VALUES
         ('acme', 'c1', '{s1}', 4, now() - interval '2 hours', now() - interval '1 hour'),
         ('acme', 'c1', '{s2}', 3, now() - interval '3 hours', now() - interval '3 hours'),
         ('acme', 'c1', '{s3}', 2, now() - interval '9 days', now() - interval '8 days'),
         ('acme', 'c2', '{s3}', 1, now() - interval '2 hours', now() - interval '2 hours')")).await;

    // The leaderboard, worked out by hand: claude-code/opus has 20 actions,
    // 8 + 6 successful, induced errors e1 and e3 (e2's 0.4 does not count),
    // e1 fixed after 60 s.
    let (status, lb) = app.get(ACME_KEY, "/v1/agents/leaderboard?since=1d").await;
    assert_eq!(status, StatusCode::OK, "{lb}");
    let agents = lb["agents"].as_array().unwrap();
    assert_eq!(agents.len(), 2, "{lb}");
    assert_eq!(
        (
            agents[0]["agent_name"].as_str(),
            agents[0]["success_rate"].as_f64()
        ),
        (Some("aider"), Some(0.9))
    );
    let cc = &agents[1];
    assert_eq!(
        (
            cc["agent_model"].as_str(),
            cc["sessions"].as_i64(),
            cc["actions"].as_i64()
        ),
        (Some("opus"), Some(2), Some(20))
    );
    assert!(
        (cc["success_rate"].as_f64().unwrap() - 0.7).abs() < 1e-9,
        "{cc}"
    );
    assert_eq!(cc["induced_errors"], 2);
    assert!((cc["induced_errors_per_100_actions"].as_f64().unwrap() - 10.0).abs() < 1e-9);
    assert_eq!(cc["fixed_induced_errors"], 1);
    assert!(
        (cc["mean_time_to_fix_ms"].as_f64().unwrap() - 60_000.0).abs() < 1.0,
        "{cc}"
    );
    assert!((cc["tokens_per_successful_action"].as_f64().unwrap() - 4000.0 / 14.0).abs() < 1e-9);
    assert!((cc["cost_per_successful_action"].as_f64().unwrap() - 2.0 / 14.0).abs() < 1e-9);
    // Sessions started before the window do not count.
    let (_, lb) = app.get(ACME_KEY, "/v1/agents/leaderboard?since=210m").await;
    assert_eq!(
        lb["agents"].as_array().unwrap().len(),
        1,
        "only s3 started within 3.5 h: {lb}"
    );

    // Sessions: filters, verdicts, keyset pages.
    let (status, page) = app.get(ACME_KEY, "/v1/sessions?agent=claude-code").await;
    assert_eq!(status, StatusCode::OK, "{page}");
    let ids: Vec<&str> = page["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["session_id"].as_str())
        .collect();
    assert_eq!(ids, [s2.as_str(), s1.as_str()], "newest first, acme only");
    let first = &page["sessions"][1];
    assert_eq!(
        (
            first["induced_errors"].as_i64(),
            first["success_rate"].as_f64()
        ),
        (Some(1), Some(0.8))
    );
    let (_, page) = app.get(ACME_KEY, "/v1/sessions?status=failed").await;
    assert_eq!(page["sessions"][0]["session_id"], s2.as_str());
    let (_, page) = app.get(ACME_KEY, "/v1/sessions?model=gpt-4o").await;
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1);
    let (_, page) = app
        .get(ACME_KEY, "/v1/sessions?since=270m&until=200m")
        .await;
    assert_eq!(page["sessions"][0]["session_id"], s2.as_str(), "{page}");
    let mut seen = Vec::new();
    let mut path = "/v1/sessions?limit=1".to_owned();
    loop {
        let (_, page) = app.get(ACME_KEY, &path).await;
        seen.extend(
            page["sessions"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| s["session_id"].as_str().unwrap().to_owned()),
        );
        match page["next_cursor"].as_str() {
            Some(c) => path = format!("/v1/sessions?limit=1&after={c}"),
            None => break,
        }
    }
    assert_eq!(seen, [s3.clone(), s2.clone(), s1.clone()]);

    // Clusters of the last 7 days against the 7 before.
    let (status, cl) = app.get(ACME_KEY, "/v1/clusters").await;
    assert_eq!(status, StatusCode::OK, "{cl}");
    let cs = cl["clusters"].as_array().unwrap();
    assert_eq!(cs.len(), 2, "{cl}");
    assert_eq!(
        (
            cs[0]["cluster_id"].as_str(),
            cs[0]["sessions"].as_i64(),
            cs[0]["occurrences"].as_i64()
        ),
        (Some("c1"), Some(2), Some(7))
    );
    assert_eq!(
        (cs[0]["previous_sessions"].as_i64(), cs[0]["trend"].as_str()),
        (Some(1), Some("rising"))
    );
    assert_eq!(
        (cs[1]["cluster_id"].as_str(), cs[1]["trend"].as_str()),
        (Some("c2"), Some("new"))
    );

    // The SQL views give the analyst the same numbers.
    let n = app.db.count("SELECT sessions FROM agent_leaderboard WHERE tenant_id = 'acme' AND agent_name = 'claude-code'").await;
    assert_eq!(n, 2);
    let n = app.db.count("SELECT sessions FROM recurring_clusters_7d WHERE tenant_id = 'acme' AND cluster_id = 'c1'").await;
    assert_eq!(n, 2);

    // Another tenant sees only its own; bad parameters are 400s.
    let (_, page) = app.get(GLOBEX_KEY, "/v1/sessions").await;
    assert_eq!(page["sessions"].as_array().unwrap().len(), 1);
    let (_, cl) = app.get(GLOBEX_KEY, "/v1/clusters").await;
    assert_eq!(cl["clusters"].as_array().unwrap().len(), 0);
    for bad in [
        "/v1/sessions?status=done",
        "/v1/sessions?since=yesterday",
        "/v1/sessions?after=x",
        "/v1/clusters?since=1d&until=2d",
        "/v1/agents/leaderboard?until=nonsense",
    ] {
        let (status, body) = app.get(ACME_KEY, bad).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
}

#[tokio::test]
async fn every_table_view_and_column_explains_itself() {
    let app = spawn_app_on(&shared_brokers(), false).await;
    let missing: Vec<String> = sqlx::query_scalar(
        "SELECT c.relname FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
         WHERE c.relkind IN ('r', 'v') AND c.relname <> '_sqlx_migrations'
           AND obj_description(c.oid, 'pg_class') IS NULL
         UNION ALL
         SELECT c.relname || '.' || a.attname FROM pg_class c
         JOIN pg_namespace n ON n.oid = c.relnamespace AND n.nspname = 'public'
         JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
         WHERE c.relkind IN ('r', 'v') AND c.relname <> '_sqlx_migrations'
           AND col_description(c.oid, a.attnum) IS NULL
         ORDER BY 1",
    )
    .fetch_all(&app.db.pool)
    .await
    .unwrap();
    assert!(missing.is_empty(), "without a COMMENT: {missing:?}");
}
