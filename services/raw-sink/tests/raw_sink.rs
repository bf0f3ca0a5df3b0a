//! Integration tests of the raw sink against a real broker and Postgres:
//! direct-to-Kafka intake, dead-lettering, idempotent replays and crash
//! recovery of the real binary under SIGKILL.

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
use std::time::Duration;

use achilles_core::config::Settings;
use achilles_core::model::submission::{
    from_json, Context, EventSubmission, SessionStartSubmission,
};
use achilles_core::model::{Limits, TenantId};
use achilles_core::secrecy::SecretString;
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::dead_letter::decode_dead_letter;
use achilles_core::wire::{encode_envelope, headers, Envelope, Record};
use achilles_raw_sink::RawSink;
use achilles_test_support::{
    eventually, read_topic, settings, shared_brokers, spawn_service, unique_prefix, KillOnDrop,
    TestDb,
};
use chrono::Utc;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{json, Value};
use tokio::sync::oneshot;

const ACME_KEY: &str = "acme-key-0123456789";

struct TestSink {
    db: TestDb,
    settings: Settings,
    topics: Topics,
    producer: FutureProducer,
    _stop: Option<oneshot::Sender<()>>,
}

/// A fresh database and topic prefix; the sink runs in-process unless
/// `in_process` is false (the SIGKILL test runs the real binary).
async fn spawn_sink(in_process: bool) -> TestSink {
    spawn_sink_with(in_process, |_| {}).await
}

async fn spawn_sink_with(in_process: bool, tweak: impl FnOnce(&mut Settings)) -> TestSink {
    let db = TestDb::fresh().await;
    let mut s = settings(&db, &shared_brokers(), &unique_prefix());
    s.auth.keys = SecretString::from(format!("acme={ACME_KEY}"));
    s.consumer.batch_max_records = 200;
    tweak(&mut s);
    let topics = Topics::new(s.kafka.topic_prefix.clone());
    achilles_core::kafka::ensure_topics(&s.kafka, &topics)
        .await
        .expect("topics");
    let producer = achilles_core::kafka::producer(&s.kafka).expect("producer");
    let mut t = TestSink {
        db,
        settings: s,
        topics,
        producer,
        _stop: None,
    };
    if in_process {
        let sink = RawSink::build(t.settings.clone())
            .await
            .expect("sink builds");
        let (tx, rx) = oneshot::channel::<()>();
        tokio::spawn(sink.run_until(async move {
            let _ = rx.await;
        }));
        t._stop = Some(tx);
    }
    t
}

impl TestSink {
    async fn produce(&self, topic: Topic, key: &str, payload: &[u8], api_key: Option<&str>) {
        let mut h = OwnedHeaders::new();
        if let Some(k) = api_key {
            h = h.insert(Header {
                key: headers::API_KEY,
                value: Some(k),
            });
        }
        let name = self.topics.name(topic);
        let rec = FutureRecord::to(&name).key(key).payload(payload).headers(h);
        self.producer
            .send(rec, Duration::from_secs(10))
            .await
            .expect("produce");
    }

    async fn dead_letters(&self, want: usize) -> Vec<achilles_test_support::TopicRecord> {
        self.dead_letters_within(want, Duration::from_secs(30))
            .await
    }

    async fn dead_letters_within(
        &self,
        want: usize,
        wait: Duration,
    ) -> Vec<achilles_test_support::TopicRecord> {
        read_topic(
            &self.settings.kafka.brokers,
            &self.topics.name(Topic::DeadLetter),
            want,
            wait,
        )
        .await
    }

    async fn count(&self, sql: &str) -> i64 {
        self.db.count(sql).await
    }
}

fn acme() -> TenantId {
    TenantId::parse("acme").unwrap()
}

/// Canonical envelopes for one session: a start and `n` events.
fn session_envelopes(n: usize) -> (String, Vec<Envelope>) {
    let now = Utc::now();
    let limits = Limits::default();
    let tenant = acme();
    let ctx = Context {
        tenant: &tenant,
        now,
        limits: &limits,
        scrub: None,
    };
    let start: SessionStartSubmission =
        from_json(json!({"agent_name": "aider", "source": "sdk"})).unwrap();
    let start = start.validate(ctx).unwrap();
    let sid = start.session_id.to_string();
    let mut out = vec![Envelope {
        ingested_at: now,
        record: Record::SessionStart(start),
    }];
    for i in 0..n {
        let ev: EventSubmission = from_json(json!({
            "session_id": sid, "occurred_at": now.to_rfc3339(), "kind": "command",
            "data": {"command": format!("step {i}"), "exit_code": (i % 3) as i32}
        }))
        .unwrap();
        out.push(Envelope {
            ingested_at: now,
            record: Record::Event(ev.validate(ctx, None).unwrap()),
        });
    }
    (sid, out)
}

#[tokio::test]
async fn direct_intake_lands_valid_records_and_dead_letters_the_rest() {
    let t = spawn_sink(true).await;
    let sid = uuid::Uuid::now_v7().to_string();
    // First, a number no encoder can hold: it once made the gate panic and
    // crash-loop on this record, so nothing after it ever landed.
    let huge = json!({"event": {"session_id": sid, "occurred_at": Utc::now().to_rfc3339(),
        "kind": "command", "data": {"command": "sleep", "duration_ms": 9223372036854775808u64}}});
    t.produce(
        Topic::Intake,
        &sid,
        huge.to_string().as_bytes(),
        Some(ACME_KEY),
    )
    .await;
    let good = json!({"event": {"session_id": sid, "occurred_at": Utc::now().to_rfc3339(),
        "kind": "test_run", "data": {"framework": "pytest", "passed": 3, "failed": 1}}});
    t.produce(
        Topic::Intake,
        &sid,
        good.to_string().as_bytes(),
        Some(ACME_KEY),
    )
    .await;
    let bad =
        json!({"event": {"session_id": sid, "kind": "test_run", "data": {"framework": "pytest"}}});
    t.produce(
        Topic::Intake,
        &sid,
        bad.to_string().as_bytes(),
        Some(ACME_KEY),
    )
    .await;
    t.produce(Topic::Intake, &sid, good.to_string().as_bytes(), None)
        .await;
    t.produce(Topic::Intake, &sid, b"\x00garbage", Some(ACME_KEY))
        .await;

    let dlq = t.dead_letters(4).await;
    assert_eq!(dlq.len(), 4, "four records dead-lettered");
    let mut codes: Vec<&str> = dlq
        .iter()
        .map(|r| r.header(headers::DLQ_REASON_CODE).unwrap())
        .collect();
    codes.sort();
    assert_eq!(
        codes,
        vec![
            "invalid_json",
            "missing_field",
            "out_of_range",
            "unauthenticated"
        ]
    );
    let missing = dlq
        .iter()
        .find(|r| r.header(headers::DLQ_REASON_CODE) == Some("missing_field"))
        .unwrap();
    let reason = missing.header(headers::DLQ_REASON).unwrap();
    assert!(
        reason.contains("occurred_at") && reason.contains("passed"),
        "{reason}"
    );
    let rec = decode_dead_letter(&missing.payload).unwrap();
    assert_eq!(
        rec.payload,
        bad.to_string().as_bytes(),
        "the original bytes are kept"
    );
    assert_eq!(rec.source_topic, t.topics.name(Topic::Intake));

    eventually(
        Duration::from_secs(30),
        "the valid intake record lands",
        || async {
            (t.count(&format!(
                "SELECT count(*) FROM events WHERE session_id = '{sid}' AND tenant_id = 'acme'"
            ))
            .await
                == 1)
                .then_some(())
        },
    )
    .await;
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM sessions WHERE id = '{sid}' AND placeholder"
        ))
        .await,
        1
    );
}

#[tokio::test]
async fn poison_on_the_events_topic_is_parked_and_processing_continues() {
    let t = spawn_sink(true).await;
    let (sid, envs) = session_envelopes(3);
    t.produce(Topic::Events, &sid, b"not avro at all", None)
        .await;
    for e in &envs {
        t.produce(Topic::Events, &sid, &encode_envelope(e).unwrap(), None)
            .await;
    }
    eventually(
        Duration::from_secs(30),
        "valid records land after the poison",
        || async {
            (t.count(&format!(
                "SELECT count(*) FROM events WHERE session_id = '{sid}'"
            ))
            .await
                == 3)
                .then_some(())
        },
    )
    .await;
    let dlq = t.dead_letters(1).await;
    assert_eq!(
        dlq[0].header(headers::DLQ_REASON_CODE),
        Some("unknown_encoding")
    );
}

#[tokio::test]
async fn replaying_the_topic_creates_no_duplicates() {
    let t = spawn_sink(true).await;
    let (sid, envs) = session_envelopes(20);
    for _round in 0..3 {
        for e in &envs {
            t.produce(Topic::Events, &sid, &encode_envelope(e).unwrap(), None)
                .await;
        }
    }
    eventually(Duration::from_secs(30), "20 events", || async {
        (t.count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{sid}'"
        ))
        .await
            == 20)
            .then_some(())
    })
    .await;
    // Give the replays time to be processed, then check again.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{sid}'"
        ))
        .await,
        20
    );
    assert_eq!(t.count("SELECT count(*) FROM sessions").await, 1);
    let dlq = t.dead_letters_within(1, Duration::from_secs(8)).await;
    assert!(dlq.is_empty(), "duplicates are not errors");
}

/// A client that reuses an event id for different content: the first
/// lands, the second is dead-lettered with the reason, and the fast COPY
/// path falls back without losing the other events of the batch.
#[tokio::test]
async fn an_event_id_reused_for_other_content_is_parked() {
    let t = spawn_sink(true).await;
    let (sid, mut envs) = session_envelopes(0);
    let now = Utc::now();
    let tenant = acme();
    let limits = Limits::default();
    let ctx = Context {
        tenant: &tenant,
        now,
        limits: &limits,
        scrub: None,
    };
    let id = "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e99";
    for text in ["first", "second", "third"] {
        let own_id = if text == "third" { None } else { Some(id) };
        let ev: EventSubmission = from_json(json!({"id": own_id, "session_id": sid,
            "occurred_at": now.to_rfc3339(), "kind": "user_message", "data": {"text": text}}))
        .unwrap();
        envs.push(Envelope {
            ingested_at: now,
            record: Record::Event(ev.validate(ctx, None).unwrap()),
        });
    }
    for e in &envs {
        t.produce(Topic::Events, &sid, &encode_envelope(e).unwrap(), None)
            .await;
    }
    let dlq = t.dead_letters(1).await;
    assert_eq!(dlq.len(), 1);
    assert_eq!(
        dlq[0].header(headers::DLQ_REASON_CODE),
        Some("event_id_conflict")
    );
    eventually(Duration::from_secs(30), "the other two land", || async {
        let texts: Option<Value> = sqlx::query_scalar(
            "SELECT to_jsonb(array_agg(data->>'text' ORDER BY data->>'text')) FROM events
             WHERE session_id = $1::uuid",
        )
        .bind(&sid)
        .fetch_one(&t.db.pool)
        .await
        .ok()
        .flatten();
        (texts == Some(json!(["first", "third"]))).then_some(())
    })
    .await;
}

fn spawn_binary(s: &Settings) -> KillOnDrop {
    spawn_binary_with(s, &[])
}

fn spawn_binary_with(s: &Settings, extra: &[(&str, &str)]) -> KillOnDrop {
    let mut env = vec![
        ("ACHILLES_SINK__GROUP_ID", s.sink.group_id.as_str()),
        (
            "ACHILLES_SINK__GATE_GROUP_ID",
            s.sink.gate_group_id.as_str(),
        ),
        ("ACHILLES_SINK__METRICS_LISTEN", "127.0.0.1:0"),
        ("ACHILLES_CONSUMER__BATCH_MAX_RECORDS", "100"),
    ];
    env.extend_from_slice(extra);
    spawn_service(env!("CARGO_BIN_EXE_achilles-raw-sink"), s, &env)
}

/// SIGTERM while Postgres is failing: landing gives up on the batch in hand
/// at the shutdown deadline and stores no position past it (it used to
/// commit the consumer's fetch position on the way out, and a restart went
/// on from there). Restarted with Postgres back, every event lands, once.
#[tokio::test]
async fn sigterm_while_postgres_fails_loses_no_event() {
    const N: i64 = 2000;
    let t = spawn_sink(false).await;
    let (sid, envs) = session_envelopes(N as usize);
    let name = t.topics.name(Topic::Events);
    let publish = |part: &[Envelope]| {
        let sends: Vec<_> = part
            .iter()
            .map(|e| encode_envelope(e).unwrap())
            .map(|p| {
                let name = name.clone();
                let sid = sid.clone();
                let producer = t.producer.clone();
                async move {
                    producer
                        .send(
                            FutureRecord::to(&name).key(&sid).payload(&p),
                            Duration::from_secs(30),
                        )
                        .await
                        .map(|_| ())
                        .map_err(|(e, _)| e)
                }
            })
            .collect();
        futures::future::join_all(sends)
    };
    for r in publish(&envs[..envs.len() / 2]).await {
        r.expect("produce");
    }
    let fast = [
        ("ACHILLES_CONSUMER__SHUTDOWN_DEADLINE_MS", "1500"),
        ("ACHILLES_CONSUMER__RETRY_BACKOFF_MS", "100"),
    ];
    let mut child = spawn_binary_with(&t.settings, &fast);
    let landed = format!("SELECT count(*) FROM events WHERE session_id = '{sid}'");
    eventually(Duration::from_secs(60), "some events landed", || async {
        (t.count(&landed).await > 0).then_some(())
    })
    .await;
    t.db.cut().await;
    for r in publish(&envs[envs.len() / 2..]).await {
        r.expect("produce");
    }
    assert!(
        child.terminate(Duration::from_secs(30)),
        "the sink stops by itself within its shutdown deadline"
    );
    t.db.restore().await;
    let mut child = spawn_binary(&t.settings);
    eventually(Duration::from_secs(60), "every event landed", || async {
        (t.count(&landed).await == N).then_some(())
    })
    .await;
    child.kill();
    assert_eq!(
        t.count(&format!(
            "SELECT count(DISTINCT event_hash) FROM events WHERE session_id = '{sid}'"
        ))
        .await,
        N
    );
}

#[tokio::test]
async fn sigkill_mid_stream_then_restart_leaves_exactly_one_row_per_event() {
    const N: i64 = 4000;
    let t = spawn_sink(false).await;
    let (sid, envs) = session_envelopes(N as usize);
    // Produce everything first, then let the sink chew through it.
    let name = t.topics.name(Topic::Events);
    let payloads: Vec<Vec<u8>> = envs.iter().map(|e| encode_envelope(e).unwrap()).collect();
    let sends: Vec<_> = payloads
        .iter()
        .map(|p| {
            t.producer.send(
                FutureRecord::to(&name).key(&sid).payload(p),
                Duration::from_secs(30),
            )
        })
        .collect();
    for r in futures::future::join_all(sends).await {
        r.expect("produce");
    }

    let mut child = spawn_binary(&t.settings);
    let landed = eventually(
        Duration::from_secs(60),
        "some but not all events landed",
        || async {
            let n = t
                .count(&format!(
                    "SELECT count(*) FROM events WHERE session_id = '{sid}'"
                ))
                .await;
            (n > 0).then_some(n)
        },
    )
    .await;
    child.kill(); // SIGKILL on Unix.
    let after_kill = t
        .count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{sid}'"
        ))
        .await;
    assert!(
        after_kill < N,
        "the kill must land mid-stream (landed {landed}, then {after_kill} of {N})"
    );

    let mut child = spawn_binary(&t.settings);
    eventually(
        Duration::from_secs(120),
        "all events after restart",
        || async {
            (t.count(&format!(
                "SELECT count(*) FROM events WHERE session_id = '{sid}'"
            ))
            .await
                == N)
                .then_some(())
        },
    )
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    child.kill();
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{sid}'"
        ))
        .await,
        N
    );
    assert_eq!(
        t.count(&format!(
            "SELECT count(DISTINCT event_hash) FROM events WHERE session_id = '{sid}'"
        ))
        .await,
        N
    );
    let commands: Value =
        sqlx::query_scalar("SELECT to_jsonb(array_agg(DISTINCT data->>'command')) FROM events")
            .fetch_one(&t.db.pool)
            .await
            .unwrap();
    assert_eq!(
        commands.as_array().unwrap().len() as i64,
        N,
        "every distinct event is there"
    );
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

/// Every text at its validated maximum, and enough calls at the maximum
/// token count to overflow an i64 sum, go through the encoder, landing and
/// the events and sessions indexes: none of it is refused or wedges
/// anything. (The agent's tables: services/agent/tests.)
#[tokio::test]
async fn maximum_size_values_land_and_fit_every_index() {
    let t = spawn_sink(true).await;
    let l = Limits::default();
    let now = Utc::now();
    let tenant = acme();
    let ctx = Context {
        tenant: &tenant,
        now,
        limits: &l,
        scrub: None,
    };
    // Multi-byte characters: the limits are in bytes.
    let name = "é".repeat(l.max_name_bytes / 2);
    let mut metadata = serde_json::Map::new();
    metadata.insert(
        "k".into(),
        json!(incompressible(l.max_attributes_bytes - 10)),
    );
    let start: SessionStartSubmission = from_json(json!({"agent_name": name,
        "agent_model": name, "metadata": metadata}))
    .unwrap();
    let start = start.validate(ctx).unwrap();
    let sid = start.session_id;
    let path = incompressible(l.max_path_bytes);
    let max = achilles_core::error::MAX_SAFE_INTEGER;
    let mut data = vec![
        (
            "file_edit",
            json!({"path": path, "lines_added": u32::MAX, "lines_removed": u32::MAX}),
        ),
        (
            "error",
            json!({"message": incompressible(l.max_message_bytes),
            "stack_trace": incompressible(l.max_stack_trace_bytes), "file": path,
            "error_type": name, "line": u32::MAX}),
        ),
        (
            "command",
            json!({"command": incompressible(l.max_path_bytes), "exit_code": i32::MIN,
            "duration_ms": max, "output": incompressible(l.max_stack_trace_bytes)}),
        ),
    ];
    for _ in 0..1_100 {
        data.push((
            "llm_call",
            json!({"provider": name, "model": name, "status": "ok",
            "input_tokens": max, "output_tokens": max, "cost_usd": 1e6, "latency_ms": max}),
        ));
    }
    let mut envs = vec![Envelope {
        ingested_at: now,
        record: Record::SessionStart(start),
    }];
    for (i, (kind, data)) in data.into_iter().enumerate() {
        let ev: EventSubmission = from_json(json!({"occurred_at": now.to_rfc3339(),
            "kind": kind, "data": data, "attributes": {"i": i}}))
        .unwrap();
        let ev = ev.validate(ctx, Some(sid)).expect("valid at the maximum");
        envs.push(Envelope {
            ingested_at: now,
            record: Record::Event(ev),
        });
    }
    let n = envs.len() as i64 - 1;
    for e in &envs {
        let bytes = encode_envelope(e).expect("every valid record encodes");
        t.produce(Topic::Events, &sid.to_string(), &bytes, None)
            .await;
    }
    eventually(Duration::from_secs(60), "every event lands", || async {
        (t.count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{sid}'"
        ))
        .await
            == n)
            .then_some(())
    })
    .await;
    assert_eq!(
        t.count("SELECT count(*) FROM sessions WHERE octet_length(agent_name) = 256")
            .await,
        1
    );
}

/// The gate applies the events quota by waiting: a producer far over its
/// quota is slowed down to it, and every one of its records still lands.
#[tokio::test]
async fn an_over_quota_intake_producer_is_slowed_down_and_loses_nothing() {
    let t = spawn_sink_with(true, |s| {
        s.quotas.events_per_sec = 20;
        s.quotas.events_burst = 10;
    })
    .await;
    let sid = uuid::Uuid::now_v7().to_string();
    let started = std::time::Instant::now();
    for i in 0..80 {
        let ev = json!({"event": {"session_id": sid, "occurred_at": Utc::now().to_rfc3339(),
            "kind": "agent_action", "data": {"action": format!("step {i}")}}});
        t.produce(
            Topic::Intake,
            &sid,
            ev.to_string().as_bytes(),
            Some(ACME_KEY),
        )
        .await;
    }
    eventually(Duration::from_secs(60), "all 80 records land", || async {
        (t.count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{sid}'"
        ))
        .await
            == 80)
            .then_some(())
    })
    .await;
    let took = started.elapsed();
    // 10 at once, the other 70 at 20/s: at least 3.5 s.
    assert!(took >= Duration::from_millis(3_400), "{took:?}");
    let metrics = achilles_core::metrics::render();
    assert!(
        metrics.contains(
            r#"achilles_quota_decisions_total{kind="events",outcome="waited",tenant="acme"}"#
        ),
        "{metrics}"
    );
    assert!(
        t.dead_letters_within(1, Duration::from_secs(1))
            .await
            .is_empty(),
        "nothing dead-lettered"
    );
}

/// Secret scrubbing in the intake gate: credentials in JSON and Avro
/// intake records (every text field, attributes, session metadata) are
/// scrubbed before the canonical record is hashed and republished, so
/// neither the events topic nor Postgres ever holds them.
#[tokio::test]
async fn the_gate_scrubs_credentials_before_republishing() {
    const SECRETS: &[&str] = &[
        "ghp_R2D2c3po4Bb8Ee9Ff0Gg1Hh2Ii3Jj4Kk5Ll6M",
        "AKIAIOSFODNN7EXAMPLE",
        "xoxb-1234567890-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx",
        "sk-ant-api03-Xy7Zq9Wv3Ut5Sr1Qp8On6Ml4Kj2Ih0Gf9Ed7Cb5Aa3-ZyXwVuTsRqPo",
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
    ];
    let leaky = |i: usize| {
        format!(
            "{} at mysql://root:Pa55-{i}@db/x secret={i}zz",
            SECRETS[i % SECRETS.len()]
        )
    };
    let t = spawn_sink(true).await;
    let sid = uuid::Uuid::now_v7().to_string();
    let at = Utc::now().to_rfc3339();
    let json_records = [
        json!({"session_start": {"id": sid, "agent_name": "aider", "metadata": {"env": leaky(0)}}}),
        json!({"event": {"session_id": sid, "occurred_at": at, "kind": "command",
            "data": {"command": leaky(1), "exit_code": 1, "output": leaky(2)},
            "attributes": {"nested": {"list": [leaky(3)]}}}}),
        json!({"event": {"session_id": sid, "occurred_at": at, "kind": "error",
            "data": {"message": leaky(4), "stack_trace": leaky(5), "file": "src/a.rs"}}}),
        json!({"event": {"session_id": sid, "occurred_at": at, "kind": "user_message",
            "data": {"text": leaky(6)}}}),
    ];
    for r in &json_records {
        t.produce(
            Topic::Intake,
            &sid,
            r.to_string().as_bytes(),
            Some(ACME_KEY),
        )
        .await;
    }
    // The Avro form of the intake topic goes through the same validation.
    let limits = Limits::default();
    let tenant = acme();
    let ctx = Context {
        tenant: &tenant,
        now: Utc::now(),
        limits: &limits,
        scrub: None,
    };
    let raw: EventSubmission = from_json(json!({"session_id": sid, "occurred_at": at,
        "kind": "tool_call", "data": {"tool": "bash", "status": "error", "error": leaky(7)},
        "attributes": {"k": leaky(8)}}))
    .unwrap();
    let avro = encode_envelope(&Envelope {
        ingested_at: Utc::now(),
        record: Record::Event(raw.validate(ctx, None).unwrap()),
    })
    .unwrap();
    assert!(
        String::from_utf8_lossy(&avro).contains(SECRETS[2]),
        "the raw Avro record carries the token"
    );
    t.produce(Topic::Intake, &sid, &avro, Some(ACME_KEY)).await;

    let mut raw_pieces: Vec<String> = SECRETS.iter().map(|s| (*s).to_owned()).collect();
    for i in 0..9 {
        raw_pieces.push(format!("Pa55-{i}@"));
        raw_pieces.push(format!("{i}zz"));
    }
    let records = read_topic(
        &t.settings.kafka.brokers,
        &t.topics.name(Topic::Events),
        5,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(records.len(), 5, "the start and four events republished");
    for r in &records {
        let text = String::from_utf8_lossy(&r.payload);
        for piece in &raw_pieces {
            assert!(
                !text.contains(piece.as_str()),
                "{piece} reached Kafka: {text}"
            );
        }
        assert!(text.contains("[REDACTED:"), "{text}");
    }
    eventually(Duration::from_secs(30), "the four events land", || async {
        (t.count(&format!(
            "SELECT count(*) FROM events WHERE session_id = '{sid}'"
        ))
        .await
            == 4)
            .then_some(())
    })
    .await;
    for piece in &raw_pieces {
        let n = t
            .count(&format!(
                "SELECT (SELECT count(*) FROM events e WHERE e::text LIKE '%{piece}%')
                      + (SELECT count(*) FROM sessions s WHERE s::text LIKE '%{piece}%')"
            ))
            .await;
        assert_eq!(n, 0, "{piece} reached Postgres");
    }
    assert_eq!(
        t.count(&format!(
            "SELECT count(*) FROM sessions WHERE id = '{sid}'
               AND metadata->>'env' LIKE '%mysql://root:[REDACTED:url_password]@db/x%'"
        ))
        .await,
        1,
        "the session metadata is scrubbed and keeps user and host"
    );
}

/// A `timed_out` end (the processor's reaper) never replaces a producer's
/// end, whether they land in one batch or in two; a producer's end after
/// the timeout replaces it; an event after the timeout lands.
#[tokio::test]
async fn a_timeout_never_replaces_a_real_end_and_a_real_end_replaces_a_timeout() {
    use achilles_core::model::{SessionEnd, SessionId, SessionStatus};
    let t = spawn_sink(true).await;
    let now = achilles_core::model::truncate_to_micros(Utc::now());
    let end = |sid: &str, status: SessionStatus, secs: i64| Envelope {
        ingested_at: now,
        record: Record::SessionEnd(SessionEnd {
            tenant: acme(),
            session_id: SessionId::parse(sid).unwrap(),
            ended_at: now + chrono::Duration::seconds(secs),
            status,
        }),
    };
    let publish = |envs: Vec<Envelope>| async {
        for e in envs {
            let key = e.record.session_id().to_string();
            t.produce(Topic::Events, &key, &encode_envelope(&e).unwrap(), None)
                .await;
        }
    };
    let pool = t.db.pool.clone();
    let status_of = |sid: String| {
        let pool = pool.clone();
        async move {
            sqlx::query_as::<_, (String, chrono::DateTime<Utc>)>(&format!(
                "SELECT status, ended_at FROM sessions WHERE id = '{sid}'"
            ))
            .fetch_optional(&pool)
            .await
            .unwrap()
        }
    };
    let (a, mut a_envs) = session_envelopes(1);
    let (b, mut b_envs) = session_envelopes(1);
    let (c, mut c_envs) = session_envelopes(0);
    let (a_event, b_event) = (a_envs.pop().unwrap(), b_envs.pop().unwrap());
    // A ends completed; B and C time out.
    a_envs.push(end(&a, SessionStatus::Completed, 5));
    b_envs.push(end(&b, SessionStatus::TimedOut, 1));
    // C: the timeout right behind the real end, in one batch.
    c_envs.push(end(&c, SessionStatus::Aborted, 3));
    c_envs.push(end(&c, SessionStatus::TimedOut, 1));
    publish(a_envs.into_iter().chain(b_envs).chain(c_envs).collect()).await;
    for (sid, want) in [(&a, "completed"), (&b, "timed_out"), (&c, "aborted")] {
        eventually(
            Duration::from_secs(30),
            &format!("{sid} {want}"),
            || async {
                status_of(sid.clone())
                    .await
                    .filter(|(s, _)| s == want)
                    .map(|_| ())
            },
        )
        .await;
    }
    // Second batch: a late timeout for A, an event and then a real end for B.
    publish(vec![
        end(&a, SessionStatus::TimedOut, 1),
        a_event,
        b_event,
        end(&b, SessionStatus::Failed, 9),
    ])
    .await;
    eventually(Duration::from_secs(30), "both events landed", || async {
        (t.count(&format!(
            "SELECT count(*) FROM events WHERE session_id IN ('{a}', '{b}')"
        ))
        .await
            == 2)
            .then_some(())
    })
    .await;
    // A's event was keyed after its timeout: the timeout was applied (or
    // refused) by now.
    assert_eq!(
        status_of(a.clone()).await,
        Some(("completed".into(), now + chrono::Duration::seconds(5)))
    );
    eventually(Duration::from_secs(30), "B failed", || async {
        status_of(b.clone())
            .await
            .filter(|x| *x == ("failed".into(), now + chrono::Duration::seconds(9)))
    })
    .await;
    assert_eq!(
        status_of(c.clone()).await,
        Some(("aborted".into(), now + chrono::Duration::seconds(3)))
    );
}
