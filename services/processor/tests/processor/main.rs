//! Integration tests of the stream processor against a real broker and
//! Postgres: known answers for a scripted session, order independence,
//! duplicates, crash recovery under SIGKILL and scale-out to two instances;
//! the consumer runtime's guarantees are in [`runtime`].

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
mod runtime;

use std::time::Duration;

use achilles_core::config::Settings;
use achilles_core::model::submission::{
    from_json, Context, EventSubmission, SessionEndSubmission, SessionStartSubmission,
};
use achilles_core::model::{Limits, TenantId};
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::session_ended::SessionEnded;
use achilles_core::wire::{encode_envelope, headers, Envelope, Record};
use achilles_processor::ProcessorService;
use achilles_test_support::{
    eventually, read_topic, settings, shared_brokers, spawn_service, unique_prefix, KillOnDrop,
    PrivateBroker, TestDb,
};
use chrono::{DateTime, Duration as Span, Utc};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use tokio::sync::oneshot;

struct World {
    db: TestDb,
    settings: Settings,
    topics: Topics,
    producer: FutureProducer,
    stops: Vec<(
        oneshot::Sender<()>,
        tokio::task::JoinHandle<std::io::Result<()>>,
    )>,
}

async fn world() -> World {
    world_on(&shared_brokers()).await
}

async fn world_on(brokers: &str) -> World {
    let db = TestDb::fresh().await;
    let mut s = settings(&db, brokers, &unique_prefix());
    s.processor.group_id = format!("{}processor", s.kafka.topic_prefix);
    s.processor.metrics_listen = "127.0.0.1:0".into();
    s.consumer.batch_max_records = 200;
    let topics = Topics::new(s.kafka.topic_prefix.clone());
    achilles_core::kafka::ensure_topics(&s.kafka, &topics)
        .await
        .expect("topics");
    let producer = achilles_core::kafka::producer(&s.kafka).expect("producer");
    World {
        db,
        settings: s,
        topics,
        producer,
        stops: Vec::new(),
    }
}

impl World {
    async fn start_processor(&mut self) {
        let svc = ProcessorService::build(self.settings.clone())
            .await
            .expect("processor builds");
        let (tx, rx) = oneshot::channel::<()>();
        let task = tokio::spawn(svc.run_until(async move {
            let _ = rx.await;
        }));
        self.stops.push((tx, task));
    }

    /// Stops the in-process processors and waits until they have.
    async fn stop_processors(&mut self) {
        for (tx, task) in self.stops.drain(..) {
            let _ = tx.send(());
            let _ = task.await;
        }
    }

    async fn publish(&self, envs: &[Envelope]) {
        self.publish_to(envs, None).await;
    }

    /// Publishes to one partition, or by key when `partition` is `None`.
    async fn publish_to(&self, envs: &[Envelope], partition: Option<i32>) {
        let name = self.topics.name(Topic::Events);
        let payloads: Vec<(String, Vec<u8>)> = envs
            .iter()
            .map(|e| {
                (
                    e.record.session_id().to_string(),
                    encode_envelope(e).unwrap(),
                )
            })
            .collect();
        let sends: Vec<_> = payloads
            .iter()
            .map(|(k, p)| {
                let mut r = FutureRecord::to(&name).key(k).payload(p);
                if let Some(n) = partition {
                    r = r.partition(n);
                }
                self.producer.send(r, Duration::from_secs(30))
            })
            .collect();
        for r in futures::future::join_all(sends).await {
            r.expect("produce");
        }
    }

    async fn count(&self, sql: &str) -> i64 {
        self.db.count(sql).await
    }

    async fn wait_final(&self, sessions: i64) {
        eventually(
            Duration::from_secs(90),
            &format!("{sessions} sessions final"),
            || async {
                (self
                    .count("SELECT count(*) FROM sessions WHERE summary_final")
                    .await
                    == sessions)
                    .then_some(())
            },
        )
        .await;
    }

    /// Every derived row, in a canonical order, for comparing runs.
    async fn snapshot(&self) -> Value {
        let q = |sql: &'static str| async move {
            sqlx::query_scalar::<_, Option<Value>>(sql)
                .fetch_one(&self.db.pool)
                .await
                .unwrap()
                .unwrap_or(json!([]))
        };
        json!({
            "correlations": q("SELECT jsonb_agg(jsonb_build_array(cause_event_id, effect_event_id, match_kind, file_path, gap_ms, confidence, fixed_by_event_id, fixed_at) ORDER BY cause_event_id, effect_event_id) FROM event_correlations").await,
            "clusters": q("SELECT jsonb_agg(jsonb_build_array(id, template, occurrence_count, session_count, first_seen, last_seen) ORDER BY id) FROM error_clusters").await,
            "cluster_sessions": q("SELECT jsonb_agg(jsonb_build_array(cluster_id, session_id, occurrence_count) ORDER BY cluster_id, session_id) FROM error_cluster_sessions").await,
            "summaries": q("SELECT jsonb_agg(jsonb_build_array(id, event_count, error_count, error_density, agent_activity_score, duration_ms, input_tokens, output_tokens, cost_usd, summary_final) ORDER BY id) FROM sessions").await,
        })
    }
}

/// The scripts' time origin: an hour ago (recent enough for validation's
/// time window), fixed once per process, so events built a few
/// milliseconds apart still sit exactly the scripted seconds apart.
fn t0() -> DateTime<Utc> {
    static T0: std::sync::LazyLock<DateTime<Utc>> = std::sync::LazyLock::new(|| {
        achilles_core::model::truncate_to_micros(Utc::now() - Span::hours(1))
    });
    *T0
}

struct Script {
    tenant: TenantId,
    limits: Limits,
    now: DateTime<Utc>,
}

impl Script {
    fn new() -> Self {
        Self {
            tenant: TenantId::parse("acme").unwrap(),
            limits: Limits::default(),
            now: Utc::now(),
        }
    }
    fn ctx(&self) -> Context<'_> {
        Context {
            tenant: &self.tenant,
            now: self.now,
            limits: &self.limits,
            scrub: None,
        }
    }
    fn start(&self, sid: &str) -> Envelope {
        let s: SessionStartSubmission = from_json(
            json!({"id": sid, "agent_name": "claude-code", "started_at": t0().to_rfc3339()}),
        )
        .unwrap();
        Envelope {
            ingested_at: self.now,
            record: Record::SessionStart(s.validate(self.ctx()).unwrap()),
        }
    }
    fn end(&self, sid: &str, secs: i64) -> Envelope {
        let s: SessionEndSubmission = from_json(
            json!({"session_id": sid, "ended_at": (t0() + Span::seconds(secs)).to_rfc3339()}),
        )
        .unwrap();
        Envelope {
            ingested_at: self.now,
            record: Record::SessionEnd(s.validate(self.ctx()).unwrap()),
        }
    }
    fn event(&self, sid: &str, secs: i64, kind: &str, data: Value) -> Envelope {
        let at = (t0() + Span::seconds(secs)).to_rfc3339();
        let e: EventSubmission =
            from_json(json!({"session_id": sid, "occurred_at": at, "kind": kind, "data": data}))
                .unwrap();
        Envelope {
            ingested_at: self.now,
            record: Record::Event(e.validate(self.ctx(), None).unwrap()),
        }
    }
}

/// The scripted session of the engine tests, through the whole service.
fn scripted(sc: &Script, sid: &str) -> Vec<Envelope> {
    vec![
        sc.start(sid),
        sc.event(sid, 0, "file_edit", json!({"path": "src/a.rs", "lines_added": 5})),
        sc.event(sid, 10, "error", json!({"message": "mismatched types: expected `u32`, found `i64`", "file": "src/a.rs", "line": 88})),
        sc.event(sid, 20, "file_edit", json!({"path": "src/b.rs"})),
        sc.event(sid, 30, "command", json!({"command": "cargo build", "exit_code": 101, "output": "error[E0308]: mismatched types\n --> src/c.rs:1:1"})),
        sc.event(sid, 35, "llm_call", json!({"provider": "anthropic", "model": "claude", "input_tokens": 1000, "output_tokens": 200, "cost_usd": 0.01, "status": "ok"})),
        sc.event(sid, 40, "file_edit", json!({"path": "src/a.rs"})),
        sc.event(sid, 50, "command", json!({"command": "cargo build", "exit_code": 0})),
        sc.end(sid, 60),
    ]
}

#[tokio::test]
async fn scripted_session_yields_known_rows_and_a_session_ended_record() {
    let mut w = world().await;
    let sc = Script::new();
    let sid = "0190b3a2-7c1e-7a51-9d7e-000000000001";
    w.publish(&scripted(&sc, sid)).await;
    w.start_processor().await;
    w.wait_final(1).await;

    let rows: Vec<(String, String, i64, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT c.file_path, c.match_kind, c.gap_ms, c.fixed_by_event_id FROM event_correlations c ORDER BY c.cause_at, c.effect_at, c.file_path",
    )
    .fetch_all(&w.db.pool)
    .await
    .unwrap();
    let shape: Vec<(&str, &str, i64, bool)> = rows
        .iter()
        .map(|r| (r.0.as_str(), r.1.as_str(), r.2, r.3.is_some()))
        .collect();
    // Edit a.rs → error in a.rs, fixed by the passing build after the next
    // edit. The failing build names c.rs, which nobody edited: no row.
    assert_eq!(shape, vec![("src/a.rs", "error_location", 10_000, true)]);
    let (events, errors, density, final_, tokens, cost): (i64, i64, f64, bool, i64, f64) = sqlx::query_as(
        "SELECT event_count, error_count, error_density, summary_final, input_tokens + output_tokens, cost_usd FROM sessions",
    )
    .fetch_one(&w.db.pool)
    .await
    .unwrap();
    assert_eq!((events, errors, final_, tokens), (7, 2, true, 1200));
    assert!((density - 2.0 / 7.0).abs() < 1e-9);
    assert!((cost - 0.01).abs() < 1e-9);
    // Two failures, two templates; the build error's telling line is clustered.
    let templates: Vec<String> =
        sqlx::query_scalar("SELECT template FROM error_clusters ORDER BY template")
            .fetch_all(&w.db.pool)
            .await
            .unwrap();
    assert_eq!(templates.len(), 2, "{templates:?}");
    assert!(
        templates.contains(&"error[E0308]: mismatched types".to_owned()),
        "{templates:?}"
    );

    let ended = read_topic(
        &w.settings.kafka.brokers,
        &w.topics.name(Topic::SessionEnded),
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(ended.len(), 1);
    let rec = SessionEnded::decode(&ended[0].payload).unwrap();
    assert_eq!(
        (rec.session_id.to_string(), rec.event_count, rec.error_count),
        (sid.to_owned(), 7, 2)
    );
}

#[tokio::test]
async fn out_of_order_late_and_duplicate_events_converge() {
    let sc = Script::new();
    let sid = "0190b3a2-7c1e-7a51-9d7e-000000000002";
    let in_order = scripted(&sc, sid);
    // Same records, shuffled within the allowed lateness (60 s), with two
    // duplicates; the end stays last so both runs finalise once.
    let mut shuffled: Vec<Envelope> = in_order[..in_order.len() - 1]
        .iter()
        .rev()
        .cloned()
        .collect();
    shuffled.push(in_order[3].clone());
    shuffled.push(in_order[2].clone());
    shuffled.push(in_order[in_order.len() - 1].clone());

    let mut a = world().await;
    a.publish(&in_order).await;
    a.start_processor().await;
    a.wait_final(1).await;
    let mut b = world().await;
    b.publish(&shuffled).await;
    b.start_processor().await;
    b.wait_final(1).await;
    assert_eq!(a.snapshot().await, b.snapshot().await);

    // Far too late (beyond the allowed lateness): counted, not correlated.
    let late = sc.event(
        sid,
        -600,
        "error",
        json!({"message": "ancient failure", "file": "src/a.rs"}),
    );
    b.publish(&[late]).await;
    eventually(Duration::from_secs(30), "late event counted", || async {
        (b.count("SELECT event_count FROM sessions").await == 8).then_some(())
    })
    .await;
    assert_eq!(b.count("SELECT count(*) FROM event_correlations").await, 1);
}

/// Deterministic pseudo-random sessions: edits, failures, fixes.
fn workload(sc: &Script, sessions: usize, per_session: usize) -> Vec<Envelope> {
    let mut out = Vec::new();
    let mut x: u64 = 42;
    let mut next = move |n: u64| {
        x = x
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (x >> 33) % n
    };
    for s in 0..sessions {
        let sid = format!("0190b3a2-7c1e-7a51-9d7e-{:012}", 1000 + s);
        out.push(sc.start(&sid));
        for i in 0..per_session {
            let t = (i * 3) as i64;
            let file = format!("src/m{}.rs", next(4));
            out.push(match next(6) {
                0 | 1 => sc.event(&sid, t, "file_edit", json!({"path": file, "lines_added": next(40)})),
                2 if next(2) == 0 => sc.event(&sid, t, "error", json!({"message": format!("cannot find value `v{}` in this scope", next(9)), "file": file, "line": next(300)})),
                // Word-valued variants only the merge stage groups together.
                2 => sc.event(&sid, t, "error", json!({"message": format!("unresolved import of crate {}", ["serde", "tokio", "axum", "regex", "rand"][next(5) as usize]), "file": file})),
                3 => sc.event(&sid, t, "command", json!({"command": "cargo test", "exit_code": if next(2) == 0 { 0 } else { 101 }, "output": format!("test t{} ... FAILED", next(50))})),
                4 => sc.event(&sid, t, "llm_call", json!({"provider": "anthropic", "model": "claude", "input_tokens": next(5000), "output_tokens": next(800), "cost_usd": 0.001 * next(30) as f64, "status": "ok"})),
                _ => sc.event(&sid, t, "test_run", json!({"framework": "pytest", "passed": next(20) + 1, "failed": next(2)})),
            });
        }
        out.push(sc.end(&sid, (per_session * 3) as i64));
    }
    out
}

fn spawn_binary(s: &Settings) -> KillOnDrop {
    spawn_binary_with(s, &[])
}

fn spawn_binary_with(s: &Settings, extra: &[(&str, &str)]) -> KillOnDrop {
    let mut env = vec![
        (
            "ACHILLES_PROCESSOR__GROUP_ID",
            s.processor.group_id.as_str(),
        ),
        ("ACHILLES_PROCESSOR__METRICS_LISTEN", "127.0.0.1:0"),
        ("ACHILLES_CONSUMER__BATCH_MAX_RECORDS", "50"),
        ("ACHILLES_CONSUMER__CHECKPOINT_INTERVAL_MS", "100"),
    ];
    env.extend_from_slice(extra);
    spawn_service(env!("CARGO_BIN_EXE_achilles-processor"), s, &env)
}

#[tokio::test]
async fn sigkill_mid_stream_gives_the_same_rows_as_an_uninterrupted_run() {
    let sc = Script::new();
    let envs = workload(&sc, 20, 150);

    let mut reference = world().await;
    reference.publish(&envs).await;
    reference.start_processor().await;
    reference.wait_final(20).await;
    let expected = reference.snapshot().await;
    assert!(
        expected["correlations"].as_array().unwrap().len() > 50,
        "the workload produces correlations"
    );
    let (templates, clusters) = (
        reference
            .count("SELECT count(*) FROM error_templates")
            .await,
        reference.count("SELECT count(*) FROM error_clusters").await,
    );
    assert!(
        templates > clusters,
        "similar templates were merged ({templates} templates, {clusters} clusters)"
    );

    let crashed = world().await;
    crashed.publish(&envs).await;
    let mut child = spawn_binary(&crashed.settings);
    eventually(
        Duration::from_secs(60),
        "some progress before the kill",
        || async { (crashed.count("SELECT coalesce(sum(applied), 0)::bigint FROM consumer_state WHERE consumer = 'processor'").await > 0).then_some(()) },
    )
    .await;
    child.kill(); // SIGKILL
    let seen = crashed.count("SELECT coalesce(sum(applied), 0)::bigint FROM consumer_state WHERE consumer = 'processor'").await;
    assert!(
        seen < 3000,
        "killed mid-stream ({seen} of 3000 events applied)"
    );
    let mut child = spawn_binary(&crashed.settings);
    crashed.wait_final(20).await;
    child.kill();
    let got = crashed.snapshot().await;
    if got != expected {
        std::fs::write("/tmp/snap_got.json", got.to_string()).ok();
        std::fs::write("/tmp/snap_want.json", expected.to_string()).ok();
    }
    assert_eq!(got, expected);
}

#[tokio::test]
async fn losing_one_of_two_instances_moves_its_work_without_loss_or_duplicates() {
    let sc = Script::new();
    let envs = workload(&sc, 24, 120);
    let mut reference = world().await;
    reference.publish(&envs).await;
    reference.start_processor().await;
    reference.wait_final(24).await;

    let w = world().await;
    w.publish(&envs).await;
    let mut a = spawn_binary(&w.settings);
    let mut b = spawn_binary(&w.settings);
    eventually(
        Duration::from_secs(60),
        "both instances make progress",
        || async { (w.count("SELECT coalesce(sum(applied), 0)::bigint FROM consumer_state WHERE consumer = 'processor'").await > 200).then_some(()) },
    )
    .await;
    a.kill(); // SIGKILL one instance
              // The survivor takes over the dead instance's partitions (after the
              // group's session timeout) and their sessions' state from Postgres.
    w.wait_final(24).await;
    b.kill();
    assert_eq!(w.snapshot().await, reference.snapshot().await);
}

#[tokio::test]
async fn two_instances_in_one_group_give_the_same_rows_as_one() {
    let sc = Script::new();
    let envs = workload(&sc, 16, 60);
    let mut one = world().await;
    one.publish(&envs).await;
    one.start_processor().await;
    one.wait_final(16).await;

    let mut two = world().await;
    two.publish(&envs).await;
    two.start_processor().await;
    two.start_processor().await;
    two.wait_final(16).await;
    assert_eq!(one.snapshot().await, two.snapshot().await);
}

/// Labelled sessions (achilles-eval: real compiler, test and runtime
/// output) through the whole service: the `event_correlations` rows that
/// count (confidence >= 0.5) meet the attribution targets.
#[tokio::test]
async fn labelled_sessions_are_attributed_within_the_targets_end_to_end() {
    let mut w = world().await;
    let sc = Script::new();
    let sessions = achilles_eval::generate(77, 8);
    let t0 = achilles_core::model::truncate_to_micros(Utc::now() - Span::hours(6));
    let mut envs = Vec::new();
    for s in &sessions {
        let start: SessionStartSubmission =
            from_json(s.start_submission(&t0.to_rfc3339())).unwrap();
        envs.push(Envelope {
            ingested_at: sc.now,
            record: Record::SessionStart(start.validate(sc.ctx()).unwrap()),
        });
        for (i, e) in s.events.iter().enumerate() {
            let at = (t0 + Span::milliseconds(e.offset_ms)).to_rfc3339();
            let sub: EventSubmission = from_json(s.submission(i, &at)).unwrap();
            envs.push(Envelope {
                ingested_at: sc.now,
                record: Record::Event(sub.validate(sc.ctx(), None).unwrap()),
            });
        }
        let end: SessionEndSubmission = from_json(json!({"session_id": s.id.to_string(),
            "ended_at": (t0 + Span::milliseconds(s.duration_ms() + 1000)).to_rfc3339()}))
        .unwrap();
        envs.push(Envelope {
            ingested_at: sc.now,
            record: Record::SessionEnd(end.validate(sc.ctx()).unwrap()),
        });
    }
    w.publish(&envs).await;
    w.start_processor().await;
    w.wait_final(sessions.len() as i64).await;
    let rows: Vec<(uuid::Uuid, uuid::Uuid, uuid::Uuid, f64, Option<uuid::Uuid>)> = sqlx::query_as(
        "SELECT session_id, cause_event_id, effect_event_id, confidence, fixed_by_event_id FROM event_correlations",
    )
    .fetch_all(&w.db.pool)
    .await
    .unwrap();
    let mut predicted: std::collections::HashMap<uuid::Uuid, Vec<achilles_eval::Predicted>> =
        Default::default();
    for (sid, cause, effect, confidence, fixed_by) in rows {
        predicted
            .entry(sid)
            .or_default()
            .push(achilles_eval::Predicted {
                cause,
                effect,
                confidence,
                fixed_by,
            });
    }
    let r = achilles_eval::score(&sessions, &predicted);
    let report = r.render();
    assert!(r.true_pairs >= 15, "{report}");
    assert!(r.precision >= 0.95, "{report}");
    assert!(r.recall >= 0.95, "{report}");
    assert!(r.break_fix_accuracy >= 0.90, "{report}");
    assert!(r.induced_mae <= 0.3, "{report}");
}

#[tokio::test]
async fn poison_records_are_dead_lettered_and_processing_continues() {
    let mut w = world().await;
    let name = w.topics.name(Topic::Events);
    w.producer
        .send(
            FutureRecord::to(&name)
                .key("k")
                .payload(&b"\xC3\x01\x00\x00\x00\x00\x00\x00\x00\x00xx"[..]),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    let sc = Script::new();
    w.publish(&scripted(&sc, "0190b3a2-7c1e-7a51-9d7e-000000000003"))
        .await;
    w.start_processor().await;
    w.wait_final(1).await;
    let dlq = read_topic(
        &w.settings.kafka.brokers,
        &w.topics.name(Topic::DeadLetter),
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        dlq[0].header(headers::DLQ_REASON_CODE),
        Some("unknown_schema")
    );
}

/// The event clock: a session whose last event is older than the timeout
/// by its tenant's newest event time is ended (`timed_out`) without
/// waiting the timeout in real time; the session that set the clock stays
/// open. The timeout end is folded in like any end (final summary, a
/// session-ended record with the applied events). No raw sink runs here,
/// so the rows stay `active` and only the processor's rows are checked.
#[tokio::test]
async fn the_event_clock_ends_a_session_left_behind_by_its_tenant() {
    let mut w = world().await;
    w.settings.session.idle_timeout_ms = 60_000;
    w.settings.session.reaper_interval_ms = 200;
    let sc = Script::new();
    let old = "0190b3a2-7c1e-7a51-9d7e-0000000000a1";
    let live = "0190b3a2-7c1e-7a51-9d7e-0000000000a2";
    w.publish(&[
        sc.start(old),
        sc.event(old, 0, "file_edit", json!({"path": "src/a.rs"})),
        sc.event(
            old,
            50,
            "command",
            json!({"command": "cargo build", "exit_code": 0}),
        ),
        sc.start(live),
        // An hour after the other's last event: an hour past the timeout.
        sc.event(live, 3590, "file_edit", json!({"path": "src/b.rs"})),
    ])
    .await;
    w.start_processor().await;
    eventually(Duration::from_secs(60), "the old session final", || async {
        (w.count(&format!(
            "SELECT count(*) FROM sessions WHERE id = '{old}' AND summary_final AND event_count = 2"
        ))
        .await
            == 1)
            .then_some(())
    })
    .await;
    let ended = read_topic(
        &w.settings.kafka.brokers,
        &w.topics.name(Topic::SessionEnded),
        2,
        Duration::from_secs(5),
    )
    .await;
    let recs: Vec<SessionEnded> = ended
        .iter()
        .map(|r| SessionEnded::decode(&r.payload).unwrap())
        .collect();
    assert_eq!(recs.len(), 1, "only the old session ended");
    let rec = &recs[0];
    assert_eq!(rec.session_id.to_string(), old);
    assert_eq!(rec.status.as_str(), "timed_out");
    assert_eq!(rec.event_count, 2);
    // Ended at its last event, not at the reaper's clock.
    let last: DateTime<Utc> = sqlx::query_scalar(&format!(
        "SELECT last_event_at FROM sessions WHERE id = '{old}'"
    ))
    .fetch_one(&w.db.pool)
    .await
    .unwrap();
    assert_eq!(rec.ended_at, last);
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM sessions WHERE id = '{live}' AND NOT summary_final"
        ))
        .await,
        1,
        "the live session stays open"
    );
}
