//! `achilles dlq list | show | replay`: the dead-letter topic
//! (`achilles.deadletter.v1`, after `kafka.topic_prefix`) read straight
//! from the broker (`ACHILLES_KAFKA__BROKERS`), without committing any
//! position.
//!
//! **What replay republishes, and why only that.** A dead letter keeps the
//! source record's key and payload but not its headers, so an intake record
//! parked by the gate has lost the `x-api-key` that decided its tenant.
//! Replay therefore takes only records parked *from the intake topic*
//! (producer submissions), whole (not cut at 512 KiB), with the chosen
//! reason code (default `unauthenticated`: a producer with a missing or
//! rotated key), and republishes them to the intake topic with the CLI's
//! own API key (`ACHILLES_API_KEY`): the gate authenticates and validates
//! them again like any submission, as that key's tenant, and parks them
//! again if they still fail. Records parked from the events topic are never
//! replayed: they were valid envelopes refused for reasons republishing
//! does not change, and writing to the events topic would skip validation.
//! Replaying twice is harmless: events are deduplicated by their hash.

use std::time::Duration;

use clap::Subcommand;
use indicatif::{ProgressBar, ProgressStyle};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders, OwnedMessage};
use rdkafka::producer::FutureRecord;
use rdkafka::{Offset, TopicPartitionList};

use achilles_core::config::Settings;
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::dead_letter::decode_dead_letter;
use achilles_core::wire::headers;

use crate::client::CliError;

const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Subcommand)]
pub enum DlqCommand {
    /// Dead letters, oldest first: offset, time, reason code, reason, tenant.
    List {
        /// Only this reason code (e.g. unauthenticated, invalid_field).
        #[arg(long)]
        reason: Option<String>,
        /// At most this many (the newest ones).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// One dead letter in full: headers, fields and the payload.
    Show {
        /// PARTITION:OFFSET as `list` prints it.
        at: String,
    },
    /// Republish parked intake submissions through the gate's validation,
    /// with this CLI's API key (see the module docs for what is replayed).
    Replay {
        /// Reason code of the records to replay.
        #[arg(long, default_value = "unauthenticated")]
        reason: String,
        /// Print what would be replayed, send nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

/// One dead letter as read from the topic.
struct Parked {
    partition: i32,
    offset: i64,
    message: OwnedMessage,
}

impl Parked {
    fn header(&self, name: &str) -> Option<String> {
        let h = self.message.headers()?;
        h.iter()
            .find(|h| h.key == name)
            .and_then(|h| h.value)
            .map(|v| String::from_utf8_lossy(v).into_owned())
    }
}

fn settings() -> Result<Settings, CliError> {
    Settings::load().map_err(|e| CliError::Input(e.to_string()))
}

/// Every record of `topic` up to its end now (blocking; run off the
/// async threads).
fn read_all(s: &Settings, topic: &str) -> Result<Vec<Parked>, CliError> {
    let unreachable = |e: rdkafka::error::KafkaError| {
        CliError::Other(format!("cannot read {topic} at {}: {e}", s.kafka.brokers))
    };
    let c: BaseConsumer = achilles_core::kafka::reader(&s.kafka).map_err(unreachable)?;
    let md = c
        .fetch_metadata(Some(topic), TIMEOUT)
        .map_err(unreachable)?;
    let partitions: Vec<i32> = md
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    let mut list = TopicPartitionList::new();
    let mut ends = std::collections::BTreeMap::new();
    for p in partitions {
        let (low, high) = c.fetch_watermarks(topic, p, TIMEOUT).map_err(unreachable)?;
        if high > low {
            list.add_partition_offset(topic, p, Offset::Offset(low))
                .map_err(unreachable)?;
            ends.insert(p, high);
        }
    }
    let mut out = Vec::new();
    if ends.is_empty() {
        return Ok(out);
    }
    c.assign(&list).map_err(unreachable)?;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !ends.is_empty() && std::time::Instant::now() < deadline {
        let Some(r) = c.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = r.map_err(unreachable)?;
        let (p, o) = (m.partition(), m.offset());
        if ends.get(&p).is_some_and(|end| o + 1 >= *end) {
            ends.remove(&p);
        }
        out.push(Parked {
            partition: p,
            offset: o,
            message: m.detach(),
        });
    }
    out.sort_by_key(|r| (r.message.timestamp().to_millis(), r.partition, r.offset));
    Ok(out)
}

async fn read_dead_letters(s: &Settings) -> Result<(Topics, Vec<Parked>), CliError> {
    let topics = Topics::new(s.kafka.topic_prefix.clone());
    let topic = topics.name(Topic::DeadLetter);
    let s2 = s.clone();
    let records = tokio::task::spawn_blocking(move || read_all(&s2, &topic))
        .await
        .map_err(|e| CliError::Other(e.to_string()))??;
    Ok((topics, records))
}

/// The tenant of a parked envelope (records from the events topic carry
/// one; intake submissions are attributed by their lost API key).
fn tenant_of(payload: &[u8]) -> String {
    achilles_core::wire::decode_trusted(payload)
        .map(|env| env.record.tenant().as_str().to_owned())
        .unwrap_or_else(|_| "-".into())
}

fn one_line(s: &str, max: usize) -> String {
    let s = s.replace(['\n', '\r', '\t'], " ");
    if s.chars().count() <= max {
        return s;
    }
    let cut: String = s.chars().take(max.saturating_sub(1)).collect();
    format!("{cut}…")
}

pub async fn run(cmd: DlqCommand, api_key: &str) -> Result<(), CliError> {
    let s = settings()?;
    match cmd {
        DlqCommand::List { reason, limit } => {
            let (_, records) = read_dead_letters(&s).await?;
            let rows: Vec<&Parked> = records
                .iter()
                .filter(|r| {
                    reason.as_deref().is_none_or(|want| {
                        r.header(headers::DLQ_REASON_CODE).as_deref() == Some(want)
                    })
                })
                .collect();
            let skip = rows.len().saturating_sub(limit);
            let mut table = crate::table::Table::new(&[
                "AT",
                "TIME",
                "REASON CODE",
                "REASON",
                "TENANT",
                "SOURCE",
            ]);
            for r in rows.iter().skip(skip) {
                let dl = decode_dead_letter(r.message.payload().unwrap_or_default()).ok();
                let time = dl
                    .as_ref()
                    .and_then(|d| chrono::DateTime::from_timestamp_micros(d.failed_at_us))
                    .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
                    .unwrap_or_else(|| "-".into());
                table.row(vec![
                    format!("{}:{}", r.partition, r.offset),
                    time,
                    r.header(headers::DLQ_REASON_CODE)
                        .unwrap_or_else(|| "-".into()),
                    one_line(&r.header(headers::DLQ_REASON).unwrap_or_default(), 60),
                    dl.as_ref()
                        .map(|d| tenant_of(&d.payload))
                        .unwrap_or_else(|| "-".into()),
                    r.header(headers::DLQ_SOURCE_TOPIC)
                        .unwrap_or_else(|| "-".into()),
                ]);
            }
            print!("{}", table.render());
            eprintln!("{} of {} dead letters", rows.len() - skip, records.len());
        }
        DlqCommand::Show { at } => {
            let (p, o) = at
                .split_once(':')
                .and_then(|(p, o)| Some((p.parse::<i32>().ok()?, o.parse::<i64>().ok()?)))
                .ok_or_else(|| CliError::Input(format!("{at:?} is not PARTITION:OFFSET")))?;
            let (_, records) = read_dead_letters(&s).await?;
            let r = records
                .iter()
                .find(|r| r.partition == p && r.offset == o)
                .ok_or_else(|| CliError::Input(format!("no dead letter at {at}")))?;
            if let Some(h) = r.message.headers() {
                for h in h.iter() {
                    println!(
                        "{}: {}",
                        h.key,
                        String::from_utf8_lossy(h.value.unwrap_or_default())
                    );
                }
            }
            let dl = decode_dead_letter(r.message.payload().unwrap_or_default())
                .map_err(|e| CliError::Other(format!("not a dead-letter record: {e}")))?;
            println!("consumer group: {}", dl.consumer_group);
            println!(
                "source: {} partition {} offset {}",
                dl.source_topic, dl.source_partition, dl.source_offset
            );
            println!("reason: {} ({})", dl.reason, dl.reason_code);
            if let Some(k) = &dl.key {
                println!("key: {}", String::from_utf8_lossy(k));
            }
            println!("tenant: {}", tenant_of(&dl.payload));
            println!("payload ({} bytes):", dl.payload.len());
            println!("{}", pretty(&dl.payload));
        }
        DlqCommand::Replay { reason, dry_run } => {
            let (topics, records) = read_dead_letters(&s).await?;
            let intake = topics.name(Topic::Intake);
            let mut chosen = Vec::new();
            let mut cut = 0;
            for r in &records {
                if r.header(headers::DLQ_REASON_CODE).as_deref() != Some(reason.as_str())
                    || r.header(headers::DLQ_SOURCE_TOPIC).as_deref() != Some(intake.as_str())
                {
                    continue;
                }
                if r.header(headers::DLQ_PAYLOAD_BYTES).is_some() {
                    cut += 1;
                    continue;
                }
                let Ok(dl) = decode_dead_letter(r.message.payload().unwrap_or_default()) else {
                    continue;
                };
                chosen.push((r.partition, r.offset, dl));
            }
            if cut > 0 {
                eprintln!("{cut} record(s) not replayed: their payload was cut when parked");
            }
            if dry_run {
                for (p, o, dl) in &chosen {
                    println!("{p}:{o} {} bytes", dl.payload.len());
                }
                eprintln!("{} record(s) would be replayed to {intake}", chosen.len());
                return Ok(());
            }
            let producer = achilles_core::kafka::producer(&s.kafka)
                .map_err(|e| CliError::Other(format!("cannot create a producer: {e}")))?;
            let bar = ProgressBar::new(chosen.len() as u64).with_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} replayed {msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
            for (_, _, dl) in &chosen {
                let hdrs = OwnedHeaders::new().insert(Header {
                    key: headers::API_KEY,
                    value: Some(api_key),
                });
                let mut rec = FutureRecord::to(&intake).payload(&dl.payload).headers(hdrs);
                if let Some(k) = &dl.key {
                    rec = rec.key(k);
                }
                producer
                    .send(rec, TIMEOUT)
                    .await
                    .map_err(|(e, _)| CliError::Other(format!("publish failed: {e}")))?;
                bar.inc(1);
            }
            bar.finish();
            eprintln!(
                "{} record(s) republished to {intake}; the gate validates them again (failures are parked again)",
                chosen.len()
            );
        }
    }
    Ok(())
}

/// JSON pretty-printed, a parked envelope decoded, anything else as text.
fn pretty(payload: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(payload) {
        return serde_json::to_string_pretty(&v).unwrap_or_default();
    }
    if let Ok(env) = achilles_core::wire::decode_trusted(payload) {
        return format!("{:#?}", env.record);
    }
    String::from_utf8_lossy(payload).into_owned()
}
