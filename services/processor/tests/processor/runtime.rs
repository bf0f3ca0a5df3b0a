//! The consumer runtime's guarantees, shown through the processor against
//! a real broker and Postgres: positions that cannot go stale, a shutdown
//! that never commits what it did not apply, and poison that is parked
//! instead of wedging a partition.

use achilles_core::metrics;

use super::*;

const SID_LONG: &str = "0190b3a2-7c1e-7a51-9d7e-00000000a001";
const SID_SHORT: &str = "0190b3a2-7c1e-7a51-9d7e-00000000a002";
const SID_AGAIN: &str = "0190b3a2-7c1e-7a51-9d7e-00000000a003";

/// A session of `n` events (start and end around them).
fn session(sc: &Script, sid: &str, n: i64) -> Vec<Envelope> {
    let mut out = vec![sc.start(sid)];
    for i in 0..n {
        out.push(sc.event(
            sid,
            i,
            "command",
            json!({"command": format!("step {i}"), "exit_code": 0}),
        ));
    }
    out.push(sc.end(sid, n));
    out
}

async fn event_count(w: &World, sid: &str) -> i64 {
    w.count(&format!(
        "SELECT event_count FROM sessions WHERE id = '{sid}' AND summary_final"
    ))
    .await
}

async fn wait_events(w: &World, sid: &str, n: i64) {
    eventually(
        Duration::from_secs(60),
        &format!("{n} events of {sid} derived"),
        || async {
            let got: Option<i64> = sqlx::query_scalar(
                "SELECT event_count FROM sessions WHERE id = $1::uuid AND summary_final",
            )
            .bind(sid)
            .fetch_optional(&w.db.pool)
            .await
            .ok()
            .flatten();
            (got == Some(n)).then_some(())
        },
    )
    .await;
}

fn resets(reason: &str) -> u64 {
    metrics::POSITION_RESETS
        .with_label_values(&["processor", reason])
        .get()
}

/// `make down && make up` with the local broker, twice: the broker forgets
/// its topics while the processor's positions live on in Postgres. Before,
/// every new record below the stored position was skipped without a word.
/// Now the stale position is noticed (logged, counted) and the new log is
/// applied from its start, whether it is shorter than the old one (the
/// position lies beyond it) or longer (a different record sits where the
/// position says the last applied one was).
#[tokio::test]
async fn a_recreated_topic_is_detected_and_new_sessions_are_derived() {
    let mut broker = PrivateBroker::start();
    let mut w = world_on(&broker.brokers()).await;
    let sc = Script::new();
    w.publish_to(&session(&sc, SID_LONG, 40), Some(0)).await;
    w.start_processor().await;
    wait_events(&w, SID_LONG, 40).await;

    // Down and up: a shorter log than before.
    w.stop_processors().await;
    broker.restart();
    achilles_core::kafka::ensure_topics(&w.settings.kafka, &w.topics)
        .await
        .expect("topics");
    // As after `make up`, a new producer: the broker forgot the old one.
    w.producer = achilles_core::kafka::producer(&w.settings.kafka).expect("producer");
    w.start_processor().await;
    w.publish_to(&session(&sc, SID_SHORT, 5), Some(0)).await;
    wait_events(&w, SID_SHORT, 5).await;
    assert!(resets("ahead_of_log") >= 1, "the reset is counted");

    // Down and up again: now the new log grows past the stored position
    // before the processor comes back.
    w.stop_processors().await;
    broker.restart();
    achilles_core::kafka::ensure_topics(&w.settings.kafka, &w.topics)
        .await
        .expect("topics");
    // As after `make up`, a new producer: the broker forgot the old one.
    w.producer = achilles_core::kafka::producer(&w.settings.kafka).expect("producer");
    w.publish_to(&session(&sc, SID_AGAIN, 30), Some(0)).await;
    w.start_processor().await;
    wait_events(&w, SID_AGAIN, 30).await;
    assert!(
        resets("ahead_of_log") + resets("checksum_mismatch") >= 2,
        "the second reset is counted too"
    );
    assert_eq!(event_count(&w, SID_LONG).await, 40, "nothing applied twice");
    w.stop_processors().await;
}

/// SIGTERM while Postgres is failing: the processor gives up on the batch
/// in hand at the shutdown deadline without storing any position past it
/// (before, it committed the consumer's fetch position to Kafka, and a
/// restart fetched from there). Restarted with Postgres back, it applies
/// every event: the same rows as a run that was never interrupted.
#[tokio::test]
async fn sigterm_while_postgres_fails_loses_nothing() {
    let sc = Script::new();
    let envs = workload(&sc, 8, 60);
    let mut reference = world().await;
    reference.publish(&envs).await;
    reference.start_processor().await;
    reference.wait_final(8).await;

    let w = world().await;
    w.publish(&envs[..envs.len() / 2]).await;
    let fast = [
        ("ACHILLES_CONSUMER__SHUTDOWN_DEADLINE_MS", "1500"),
        ("ACHILLES_CONSUMER__RETRY_BACKOFF_MS", "100"),
    ];
    let mut child = spawn_binary_with(&w.settings, &fast);
    eventually(Duration::from_secs(60), "some progress", || async {
        (w.count("SELECT coalesce(sum(applied), 0)::bigint FROM consumer_state")
            .await
            > 0)
        .then_some(())
    })
    .await;
    w.db.cut().await;
    // Records keep arriving while Postgres is away.
    w.publish(&envs[envs.len() / 2..]).await;
    assert!(
        child.terminate(Duration::from_secs(30)),
        "the processor stops by itself within its shutdown deadline"
    );
    w.db.restore().await;
    let mut child = spawn_binary(&w.settings);
    w.wait_final(8).await;
    child.kill();
    assert_eq!(w.snapshot().await, reference.snapshot().await);
}

/// A record whose effects Postgres refuses for good (here a trigger plays
/// the part of, say, an index row over the size limit): the batch is split
/// until the record is found, it alone is parked on the dead-letter topic
/// with the reason, everything else is derived, and the lag returns to 0.
#[tokio::test]
async fn a_record_postgres_refuses_is_parked_and_the_rest_is_derived() {
    let mut w = world().await;
    for sql in [
        "CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
         BEGIN
           IF NEW.file_path = 'src/poison.rs' THEN
             RAISE EXCEPTION 'refused: %', NEW.file_path USING ERRCODE = '22023';
           END IF;
           RETURN NEW;
         END $$",
        "CREATE TRIGGER refuse_poison BEFORE INSERT ON event_correlations
         FOR EACH ROW EXECUTE FUNCTION refuse_poison()",
    ] {
        sqlx::query(sql).execute(&w.db.pool).await.expect("trigger");
    }
    let sc = Script::new();
    let sid = "0190b3a2-7c1e-7a51-9d7e-00000000b001";
    let mut envs = scripted(&sc, sid);
    let end = envs.pop().expect("an end");
    envs.push(sc.event(sid, 52, "file_edit", json!({"path": "src/poison.rs"})));
    envs.push(sc.event(
        sid,
        54,
        "error",
        json!({"message": "boom", "file": "src/poison.rs"}),
    ));
    envs.push(end);
    w.publish(&envs).await;
    w.start_processor().await;
    w.wait_final(1).await;
    let dlq = read_topic(
        &w.settings.kafka.brokers,
        &w.topics.name(Topic::DeadLetter),
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(dlq.len(), 1, "exactly the poison record is parked");
    assert_eq!(
        dlq[0].header(headers::DLQ_REASON_CODE),
        Some("database_rejected")
    );
    assert!(dlq[0]
        .header(headers::DLQ_REASON)
        .is_some_and(|r| r.contains("refused")));
    // Every other event was applied: the scripted session's 7 plus the edit.
    assert_eq!(event_count(&w, sid).await, 8);
    let lag_zero = || async {
        let text = metrics::render();
        let lags: Vec<&str> = text
            .lines()
            .filter(|l| l.starts_with("achilles_consumer_lag_records{consumer=\"processor\""))
            .collect();
        (!lags.is_empty() && lags.iter().all(|l| l.ends_with(" 0"))).then_some(())
    };
    eventually(Duration::from_secs(30), "processor lag back to 0", lag_zero).await;
    w.stop_processors().await;
}

/// An outbox record the broker refuses for good (larger than the producer
/// accepts) no longer blocks the records behind it: it is moved to the
/// dead-letter topic, cut to fit, with the reason.
#[tokio::test]
async fn an_outbox_record_the_broker_refuses_is_parked_and_the_rest_is_published() {
    let mut w = world().await;
    let topic = w.topics.name(Topic::SessionEnded);
    for (key, size) in [("too-big", 3 * 1024 * 1024), ("fine", 10)] {
        sqlx::query("INSERT INTO outbox (topic, key, payload) VALUES ($1, $2, $3)")
            .bind(&topic)
            .bind(key)
            .bind(vec![b'x'; size])
            .execute(&w.db.pool)
            .await
            .expect("outbox row");
    }
    w.start_processor().await;
    let published = read_topic(
        &w.settings.kafka.brokers,
        &topic,
        1,
        Duration::from_secs(30),
    )
    .await;
    assert_eq!(published.len(), 1);
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
        Some("publish_refused")
    );
    assert_eq!(
        dlq[0].header(headers::DLQ_PAYLOAD_BYTES),
        Some((3 * 1024 * 1024).to_string().as_str())
    );
    eventually(Duration::from_secs(30), "the outbox drained", || async {
        (w.count("SELECT count(*) FROM outbox").await == 0).then_some(())
    })
    .await;
    w.stop_processors().await;
}

/// A session deleted on request while the processor holds its state in
/// memory: its state is never written back, records still arriving for it
/// are dropped instead of re-creating it, and the session beside it on the
/// same partition is derived as usual.
#[tokio::test]
async fn a_deleted_session_is_neither_written_back_nor_recreated() {
    let mut w = world().await;
    let sc = Script::new();
    let (gone, kept) = (SID_LONG, SID_SHORT);
    let mut first = vec![sc.start(gone)];
    for i in 0..5 {
        first.push(sc.event(gone, i, "command", json!({"command": "ls", "exit_code": 1})));
    }
    w.publish_to(&first, Some(0)).await;
    w.start_processor().await;
    eventually(Duration::from_secs(60), "5 events derived", || async {
        (w.count(&format!(
            "SELECT coalesce((SELECT event_count FROM sessions WHERE id = '{gone}'), -1)"
        ))
        .await
            == 5)
            .then_some(())
    })
    .await;
    let removed = achilles_core::db::retention::delete_session(
        &w.db.pool,
        "acme",
        uuid::Uuid::parse_str(gone).unwrap(),
    )
    .await
    .unwrap()
    .expect("the session exists");
    assert_eq!(removed.get("sessions"), Some(&1));

    // More of the deleted session, then a whole other session, in order on
    // one partition: once the other one is final, the rest was handled.
    let mut rest = Vec::new();
    for i in 5..8 {
        rest.push(sc.event(gone, i, "command", json!({"command": "ls", "exit_code": 1})));
    }
    rest.push(sc.end(gone, 9));
    rest.extend(session(&sc, kept, 3));
    w.publish_to(&rest, Some(0)).await;
    wait_events(&w, kept, 3).await;
    w.stop_processors().await; // its final checkpoint

    for sql in [
        format!("SELECT count(*) FROM sessions WHERE id = '{gone}'"),
        format!("SELECT count(*) FROM consumer_state WHERE session_id = '{gone}'"),
        format!("SELECT count(*) FROM error_cluster_sessions WHERE session_id = '{gone}'"),
        format!("SELECT count(*) FROM outbox WHERE key = '{gone}'"),
    ] {
        assert_eq!(w.count(&sql).await, 0, "{sql}");
    }
    assert_eq!(
        w.count(&format!(
            "SELECT count(*) FROM consumer_state WHERE session_id = '{kept}'"
        ))
        .await,
        1
    );
    assert_eq!(
        metrics::SKIPPED
            .with_label_values(&["processor", "deleted"])
            .get(),
        4,
        "three events and the end of the deleted session"
    );
}
