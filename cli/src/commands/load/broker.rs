//! The raw broker limit: how fast a bare producer gets records acknowledged.
//!
//! Same producer as the services (`achilles_core::kafka::producer`:
//! idempotent, `acks=all`, lz4, the configured linger), same records (real
//! Avro envelopes of generated events, encoded by `achilles_core::wire`,
//! with the same key and content-type header as the API), but no HTTP, no
//! validation and no per-request waiting: up to `window` records are kept
//! in flight. The ratio of the API's throughput to this figure says how
//! much of the broker's capacity the ingest path leaves on the table.
//!
//! Records go to a bench-only topic (deleted afterwards, since Tansu keeps
//! everything in memory), so no consumer of the pipeline sees them. To
//! compare like with like, `readers` consumer groups read that topic while
//! it is written (as landing, the processor and light mode read the events
//! topic while the API writes it; the broker's cost grows with the groups
//! fetching), with the services' fetch settings; they only count records.

use std::time::{Duration, Instant};

use chrono::Utc;
use futures::stream::{FuturesUnordered, StreamExt};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureRecord, Producer};
use rdkafka::ClientConfig;

use achilles_core::config::{KafkaSettings, Settings};
use achilles_core::model::submission::{from_json, Context, EventSubmission};
use achilles_core::model::{SessionId, TenantId};
use achilles_core::wire::{encode_envelope, headers, Envelope, Record};

use super::gen::SessionGen;
use super::stats::{micros, new_histogram, round3, Quantiles, Report};
use crate::client::CliError;

/// Distinct records produced round-robin; enough to vary sizes and keys
/// across partitions like real traffic.
const POOL: usize = 4_096;
const POOL_SESSIONS: u64 = 64;

pub struct BrokerArgs {
    pub topic: String,
    pub duration: Duration,
    pub window: usize,
    pub keep_topic: bool,
    pub seed: u64,
    /// Consumer groups reading the bench topic during the run.
    pub readers: usize,
}

/// One consumer group reading `topic` until `stop`, counting records.
fn spawn_reader(
    s: &Settings,
    topic: &str,
    group: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<tokio::task::JoinHandle<u64>, CliError> {
    use rdkafka::consumer::Consumer;
    let mut k = s.kafka.clone();
    k.extra
        .entry("fetch.wait.max.ms".into())
        .or_insert_with(|| s.consumer.fetch_wait_max_ms.to_string());
    let consumer =
        achilles_core::kafka::consumer(&k, &group, rdkafka::consumer::DefaultConsumerContext)
            .map_err(|e| CliError::Other(format!("cannot create a reader: {e}")))?;
    consumer
        .subscribe(&[topic])
        .map_err(|e| CliError::Other(format!("cannot subscribe to {topic}: {e}")))?;
    let mut stop = stop;
    Ok(tokio::spawn(async move {
        let mut read = 0u64;
        loop {
            tokio::select! {
                m = consumer.recv() => if m.is_ok() { read += 1 },
                _ = stop.changed() => break,
            }
        }
        read
    }))
}

fn admin(k: &KafkaSettings) -> Result<AdminClient<DefaultClientContext>, CliError> {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &k.brokers);
    for (key, value) in &k.extra {
        c.set(key, value);
    }
    c.create()
        .map_err(|e| CliError::Other(format!("cannot create a Kafka admin client: {e}")))
}

/// Real envelopes, exactly as the API would publish them.
fn record_pool(seed: u64) -> Result<Vec<(String, Vec<u8>)>, CliError> {
    let tenant = TenantId::parse("dev").map_err(CliError::Other)?;
    let limits = achilles_core::model::Limits::default();
    let sessions: Vec<(SessionId, SessionGen)> = (0..POOL_SESSIONS)
        .map(|i| {
            let gen = SessionGen::new(seed ^ (i << 20), 2_000, (POOL as u64) / POOL_SESSIONS);
            (SessionId::new_v7(), gen)
        })
        .collect();
    let mut sessions = sessions;
    let mut pool = Vec::with_capacity(POOL);
    for i in 0..POOL {
        let (sid, gen) = &mut sessions[i % POOL_SESSIONS as usize];
        let mut json = String::new();
        gen.write_event(&mut json);
        let now = Utc::now();
        let ctx = Context {
            tenant: &tenant,
            now,
            limits: &limits,
            scrub: None,
        };
        let value: serde_json::Value = serde_json::from_str(&json)
            .map_err(|e| CliError::Other(format!("generated event is not JSON: {e}")))?;
        let event = from_json::<EventSubmission>(value)
            .and_then(|s| s.validate(ctx, Some(*sid)))
            .map_err(|e| CliError::Other(format!("generated event is invalid: {e:?}")))?;
        let env = Envelope {
            ingested_at: now,
            record: Record::Event(event),
        };
        let bytes = encode_envelope(&env)
            .map_err(|e| CliError::Other(format!("generated event does not encode: {e}")))?;
        pool.push((sid.to_string(), bytes));
    }
    Ok(pool)
}

pub async fn run(a: BrokerArgs, report: &mut Report) -> Result<(), CliError> {
    let settings = Settings::load().map_err(|e| CliError::Input(e.to_string()))?;
    let k = &settings.kafka;
    let topic = format!("{}{}", k.topic_prefix, a.topic);
    let admin = admin(k)?;
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let retention = k.topic_retention_ms.to_string();
    let new = NewTopic::new(
        &topic,
        k.partitions,
        TopicReplication::Fixed(k.replication_factor),
    )
    .set("retention.ms", &retention);
    for r in admin
        .create_topics([&new], &opts)
        .await
        .map_err(|e| CliError::Other(format!("cannot reach Kafka at {}: {e}", k.brokers)))?
    {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((_, code)) => {
                return Err(CliError::Other(format!(
                    "cannot create topic {topic}: {code}"
                )))
            }
        }
    }

    let (stop_readers, stop_rx) = tokio::sync::watch::channel(false);
    let mut readers = Vec::new();
    for i in 0..a.readers {
        let group = format!("{topic}.reader-{i}-{}", std::process::id());
        readers.push(spawn_reader(&settings, &topic, group, stop_rx.clone())?);
    }
    let pool = record_pool(a.seed)?;
    let producer = achilles_core::kafka::producer(k)
        .map_err(|e| CliError::Other(format!("cannot create a Kafka producer: {e}")))?;
    let hdrs = OwnedHeaders::new().insert(Header {
        key: headers::CONTENT_TYPE,
        value: Some(headers::ENVELOPE_CONTENT_TYPE),
    });
    let bar = super::progress_bar(a.duration);
    let mut pending = FuturesUnordered::new();
    let mut latency = new_histogram();
    let (mut acked, mut failed, mut bytes, mut sent) = (0u64, 0u64, 0u64, 0usize);
    let start = Instant::now();
    let deadline = start + a.duration;
    let mut last_tick = start;
    while Instant::now() < deadline {
        // Fill the window; a full local queue just means "wait for acks".
        while pending.len() < a.window {
            let (key, payload) = &pool[sent % pool.len()];
            let rec = FutureRecord::to(&topic)
                .key(key)
                .payload(payload)
                .headers(hdrs.clone());
            match producer.send_result(rec) {
                Ok(delivery) => {
                    let at = Instant::now();
                    pending.push(async move { (delivery.await, at) });
                    bytes += payload.len() as u64;
                    sent += 1;
                }
                Err((e, _)) if e.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) => break,
                Err((e, _)) => return Err(CliError::Other(format!("produce failed: {e}"))),
            }
        }
        match pending.next().await {
            Some((Ok(Ok(_)), at)) => {
                acked += 1;
                latency.saturating_record(micros(at.elapsed()));
            }
            Some(_) => failed += 1,
            None => {}
        }
        if last_tick.elapsed() > Duration::from_millis(250) {
            last_tick = Instant::now();
            bar.set_position(start.elapsed().as_millis() as u64);
            bar.set_message(format!(
                "{acked} records acked, {:.0}/s",
                acked as f64 / start.elapsed().as_secs_f64()
            ));
        }
    }
    // Everything sent before the deadline counts, over the time it took.
    while let Some((r, at)) = pending.next().await {
        match r {
            Ok(Ok(_)) => {
                acked += 1;
                latency.saturating_record(micros(at.elapsed()));
            }
            _ => failed += 1,
        }
    }
    let elapsed = start.elapsed().as_secs_f64();
    bar.finish_and_clear();
    let _ = producer.flush(Duration::from_secs(10));
    let _ = stop_readers.send(true);
    let mut read = Vec::new();
    for r in readers {
        read.push(r.await.unwrap_or(0));
    }
    if !a.keep_topic {
        if let Err(e) = admin.delete_topics(&[&topic], &opts).await {
            report
                .notes
                .push(format!("could not delete the bench topic {topic}: {e}"));
        }
    }

    report.duration_s = round3(elapsed);
    report.events_acknowledged = acked;
    report.events_per_s = round3(acked as f64 / elapsed);
    report.requests_failed = failed;
    report.event_bytes_avg = (sent > 0).then(|| (bytes as f64 / sent as f64).round());
    report.latency_ms = Quantiles::from_micros(&latency);
    report.concurrency = a.window;
    report.notes.push(format!(
        "raw producer to topic {topic}: acks=all, idempotent, lz4, linger {} ms, up to {} records in flight; latency_ms is produce-to-ack per record",
        k.linger_ms, a.window
    ));
    report.notes.push(format!(
        "{} consumer groups read the topic during the run (records read per group: {read:?})",
        a.readers
    ));
    Ok(())
}
