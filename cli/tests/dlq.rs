//! `achilles dlq` against a real broker (the shared one of
//! `ACHILLES_TEST_BROKERS`, under a topic prefix of its own): dead letters
//! as the gate and landing park them are listed, filtered by reason and
//! shown; replay republishes only the intake submission parked for the
//! chosen reason, to the intake topic with the CLI's API key.

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
use std::process::Command;
use std::time::Duration;

use achilles_core::config::KafkaSettings;
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::dead_letter::DeadLetter;
use achilles_test_support::{read_topic, shared_brokers, unique_prefix};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::FutureRecord;

const KEY: &str = "acme-key-0123456789";

async fn park(k: &KafkaSettings, topics: &Topics, source: Topic, code: &str, payload: &[u8]) {
    let producer = achilles_core::kafka::producer(k).unwrap();
    let source_topic = topics.name(source);
    let dl = DeadLetter {
        source_topic: &source_topic,
        source_partition: 0,
        source_offset: 7,
        consumer_group: "achilles-intake-gate",
        reason_code: code,
        reason: format!("parked for {code}"),
        failed_at: chrono::Utc::now(),
        key: Some(b"0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f"),
        payload,
    };
    let value = dl.encode().unwrap();
    let mut headers = OwnedHeaders::new();
    for (k, v) in dl.headers() {
        headers = headers.insert(Header {
            key: k,
            value: Some(&v),
        });
    }
    let topic = topics.name(Topic::DeadLetter);
    producer
        .send(
            FutureRecord::to(&topic)
                .payload(&value)
                .key("0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f")
                .headers(headers),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
}

async fn achilles(k: &KafkaSettings, args: &[&str]) -> (String, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_achilles"));
    cmd.args(args)
        .env("ACHILLES_KAFKA__BROKERS", &k.brokers)
        .env("ACHILLES_KAFKA__TOPIC_PREFIX", &k.topic_prefix)
        .env("ACHILLES_API_KEY", KEY);
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("achilles runs"))
        .await
        .unwrap();
    let (o, e) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert!(out.status.success(), "{args:?}: {o}\n{e}");
    (o, e)
}

#[tokio::test(flavor = "multi_thread")]
async fn dead_letters_are_listed_shown_and_fixable_ones_replayed() {
    let k = KafkaSettings {
        brokers: shared_brokers(),
        topic_prefix: unique_prefix(),
        partitions: 2,
        ..KafkaSettings::default()
    };
    let topics = Topics::new(k.topic_prefix.clone());
    achilles_core::kafka::ensure_topics(&k, &topics)
        .await
        .unwrap();
    let submission = br#"{"type":"event","session_id":"0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f","event":{"kind":"command","data":{"command":"ls"}}}"#;
    park(&k, &topics, Topic::Intake, "unauthenticated", submission).await;
    park(
        &k,
        &topics,
        Topic::Intake,
        "invalid_field",
        b"{\"type\":\"nope\"}",
    )
    .await;
    park(&k, &topics, Topic::Events, "state_undecodable", b"\x00\x01").await;

    let (out, err) = achilles(&k, &["dlq", "list"]).await;
    assert!(err.contains("3 of 3 dead letters"), "{err}");
    for code in ["unauthenticated", "invalid_field", "state_undecodable"] {
        assert!(out.contains(code), "{out}");
    }
    let (out, _) = achilles(&k, &["dlq", "list", "--reason", "unauthenticated"]).await;
    let rows: Vec<&str> = out.lines().skip(1).collect();
    assert_eq!(rows.len(), 1, "{out}");
    let at = rows[0].split_whitespace().next().unwrap().to_owned();

    let (out, _) = achilles(&k, &["dlq", "show", &at]).await;
    assert!(
        out.contains("achilles-dlq-reason-code: unauthenticated"),
        "{out}"
    );
    assert!(
        out.contains("\"command\": \"ls\""),
        "payload pretty-printed: {out}"
    );
    assert!(out.contains(&topics.name(Topic::Intake)), "{out}");

    let (out, err) = achilles(&k, &["dlq", "replay", "--dry-run"]).await;
    assert!(
        out.contains(&at) && err.contains("1 record(s) would be replayed"),
        "{out}{err}"
    );
    let (_, err) = achilles(&k, &["dlq", "replay"]).await;
    assert!(err.contains("1 record(s) republished"), "{err}");
    let replayed = read_topic(
        &k.brokers,
        &topics.name(Topic::Intake),
        2,
        Duration::from_secs(15),
    )
    .await;
    assert_eq!(replayed.len(), 1, "only the unauthenticated submission");
    assert_eq!(replayed[0].payload, submission.to_vec());
    assert_eq!(replayed[0].header("x-api-key"), Some(KEY));
}
