//! Kafka positions stored in Postgres, and why they cannot go stale.
//!
//! An exactly-once consumer stores, per partition, the next offset to apply
//! and the CRC-32 of the last record it applied (`consumer_offsets`), in the
//! same transaction as its effects. A stored position is only meaningful
//! for the topic it was taken on. When the topic is recreated or truncated
//! (a local broker restarted with memory storage, a topic deleted and made
//! again, an offset reset in production) a stale position would make the
//! consumer skip every new record below it, silently. So when a partition
//! is assigned, before anything is applied from it, its stored position is
//! checked against the partition as it is now:
//!
//! | what the check finds                                  | meaning                          | action |
//! |--------------------------------------------------------|----------------------------------|--------|
//! | no position (or 0)                                     | first time                       | start where Kafka delivers |
//! | `s` below the log start                                | records expired before read      | reset to the log start, error, metric |
//! | the record at `s-1` has another CRC than we stored     | recreated and refilled past `s`  | reset (policy), error, metric |
//! | `s` beyond the high watermark, no committed offset     | recreated or truncated           | reset (policy), error, metric |
//! | asked for `s`, the broker answers from before it       | the log is shorter than `s`      | reset (policy), error, metric |
//! | otherwise                                              | the same log                     | resume at `s` |
//!
//! Two broker quirks shape this: Tansu under-reports the high watermark
//! (the last batch's first offset + 1) and answers a fetch beyond its log
//! with nothing rather than "out of range". So the CRC is read back only
//! from below the high watermark (where the record certainly is), and "past
//! the watermark" is trusted only together with the group's committed
//! offset, which Kafka removes with a deleted topic and Tansu forgets with
//! its data.
//!
//! The policy (`consumer.on_stale_position`) is `earliest` by default: apply
//! the whole new log (derived rows are idempotent, so nothing is counted
//! twice that was applied before). Every reset is an error-level log line,
//! `achilles_consumer_position_resets_total` and the
//! `AchillesConsumerPositionReset` alert.
//!
//! Seeking is only possible once a partition is actively fetched, so the
//! check runs when its first records arrive; those records are dropped and
//! the partition is re-read from the right place.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError;
use rdkafka::message::OwnedMessage;
use rdkafka::{Message, Offset};
use sqlx::{PgConnection, PgPool};

use achilles_core::config::StalePositionPolicy;
use achilles_core::metrics;

use crate::context::ConsumerCtx;
use crate::error::StepError;

/// A stored position.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stored {
    /// The next offset to read.
    pub next: i64,
    /// CRC-32 of the last applied record, when stored.
    pub checksum: Option<i64>,
    /// Where re-applying to state starts (the checkpoint), `<= next`.
    pub replay_from: i64,
}

/// CRC-32 of a record's value, the identity checked at assignment.
pub fn checksum(m: &OwnedMessage) -> i64 {
    i64::from(crc32fast::hash(m.payload().unwrap_or_default()))
}

/// A partition's stored position and the offset its sessions' state rows
/// are current as of (the checkpoint, at or before the position).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Locked {
    /// The next offset to read.
    pub next: i64,
    /// Offset the sessions' checkpointed state is current as of.
    pub checkpoint: i64,
}

/// Locks the stored positions of `partitions` for this transaction and
/// returns them (0 for a partition never seen). The lock serialises two
/// instances that briefly process the same partition during a rebalance:
/// the second sees the first's position and skips what it already applied.
pub async fn lock(
    conn: &mut PgConnection,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, Locked>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset, checkpoint_offset)
         SELECT $1, $2, p, 0, 0 FROM UNNEST($3::int[]) AS p
         ON CONFLICT DO NOTHING",
    )
    .bind(group)
    .bind(topic)
    .bind(partitions)
    .execute(&mut *conn)
    .await?;
    let rows: Vec<(i32, i64, Option<i64>)> = sqlx::query_as(
        "SELECT partition, next_offset, checkpoint_offset FROM consumer_offsets
         WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3)
         ORDER BY partition
         FOR UPDATE",
    )
    .bind(group)
    .bind(topic)
    .bind(partitions)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(p, next, cp)| {
            let checkpoint = cp.unwrap_or(next).min(next);
            (p, Locked { next, checkpoint })
        })
        .collect())
}

/// Marks the sessions' state rows current as of these offsets (written in
/// the same transaction as the states themselves).
pub async fn save_checkpoints(
    conn: &mut PgConnection,
    group: &str,
    topic: &str,
    at: &[(i32, i64)],
) -> Result<(), sqlx::Error> {
    if at.is_empty() {
        return Ok(());
    }
    let parts: Vec<i32> = at.iter().map(|n| n.0).collect();
    let offs: Vec<i64> = at.iter().map(|n| n.1).collect();
    sqlx::query(
        "UPDATE consumer_offsets c SET checkpoint_offset = LEAST(t.o, c.next_offset)
         FROM UNNEST($3::int[], $4::bigint[]) AS t(p, o)
         WHERE c.consumer_group = $1 AND c.topic = $2 AND c.partition = t.p",
    )
    .bind(group)
    .bind(topic)
    .bind(&parts)
    .bind(&offs)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Stores the positions after a batch: (partition, next offset, checksum
/// of the record at next - 1). Never backwards: a batch of nothing but
/// replayed records must not move a position below what it covered.
pub async fn save(
    conn: &mut PgConnection,
    group: &str,
    topic: &str,
    next: &[(i32, i64, i64)],
) -> Result<(), sqlx::Error> {
    let parts: Vec<i32> = next.iter().map(|n| n.0).collect();
    let offs: Vec<i64> = next.iter().map(|n| n.1).collect();
    let sums: Vec<i64> = next.iter().map(|n| n.2).collect();
    sqlx::query(
        "UPDATE consumer_offsets c
         SET next_offset = GREATEST(c.next_offset, t.o),
             last_checksum = CASE WHEN t.o >= c.next_offset THEN t.s ELSE c.last_checksum END,
             updated_at = now()
         FROM UNNEST($3::int[], $4::bigint[], $5::bigint[]) AS t(p, o, s)
         WHERE c.consumer_group = $1 AND c.topic = $2 AND c.partition = t.p",
    )
    .bind(group)
    .bind(topic)
    .bind(&parts)
    .bind(&offs)
    .bind(&sums)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

async fn load(
    pool: &PgPool,
    group: &str,
    topic: &str,
    partition: i32,
) -> Result<Option<Stored>, sqlx::Error> {
    let row: Option<(i64, Option<i64>, Option<i64>)> = sqlx::query_as(
        "SELECT next_offset, last_checksum, checkpoint_offset FROM consumer_offsets
         WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
    )
    .bind(group)
    .bind(topic)
    .bind(partition)
    .fetch_optional(pool)
    .await?;
    Ok(row.map(|(next, checksum, cp)| Stored {
        next,
        checksum,
        replay_from: cp.unwrap_or(next).min(next),
    }))
}

async fn reset(
    pool: &PgPool,
    group: &str,
    topic: &str,
    partition: i32,
    to: i64,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE consumer_offsets SET next_offset = $4, last_checksum = NULL,
                checkpoint_offset = NULL, updated_at = now()
         WHERE consumer_group = $1 AND topic = $2 AND partition = $3",
    )
    .bind(group)
    .bind(topic)
    .bind(partition)
    .bind(to)
    .execute(pool)
    .await?;
    Ok(())
}

/// What the check of one partition needs next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pending {
    /// Not checked yet.
    Unchecked,
    /// Waiting for the record at this offset, which must have this CRC;
    /// then reading resumes at the third (the state checkpoint).
    Expect(i64, i64, i64),
    /// Sought to this offset; the next records must not start before it.
    Resumed(i64),
}

/// Why a stored position was reset.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stale {
    /// The stored position lies beyond the end of the log.
    AheadOfLog,
    /// The record before the stored position is not the one applied there.
    ChecksumMismatch,
    /// The stored position lies before the log start (truncated).
    BehindLogStart,
}

impl Stale {
    fn as_str(self) -> &'static str {
        match self {
            Self::AheadOfLog => "ahead_of_log",
            Self::ChecksumMismatch => "checksum_mismatch",
            Self::BehindLogStart => "behind_log_start",
        }
    }
}

/// The assignment check of one consumer's partitions of one topic.
pub struct Guard {
    group: String,
    topic: String,
    policy: StalePositionPolicy,
    pending: HashMap<i32, Pending>,
}

/// The decision for one partition's records in a batch.
enum Verdict {
    /// Apply them (the transaction still skips those below the position).
    Keep,
    /// Drop them; the partition was re-positioned (or is being checked).
    Drop,
}

impl Guard {
    /// A guard for `group` on `topic` applying `policy` to stale positions.
    pub fn new(group: String, topic: String, policy: StalePositionPolicy) -> Self {
        Self {
            group,
            topic,
            policy,
            pending: HashMap::new(),
        }
    }

    /// A partition was assigned: check it before applying from it.
    pub fn assigned(&mut self, partition: i32) {
        self.pending.insert(partition, Pending::Unchecked);
    }

    /// Forgets a revoked partition.
    pub fn revoked(&mut self, partition: i32) {
        self.pending.remove(&partition);
    }

    /// The partitions of `batch` whose records must be dropped: they are
    /// being checked, or were re-positioned and are read again from the
    /// right offset.
    pub async fn admit(
        &mut self,
        consumer: &StreamConsumer<ConsumerCtx>,
        pool: &PgPool,
        batch: &[OwnedMessage],
    ) -> Result<HashSet<i32>, StepError> {
        let mut drop = HashSet::new();
        if self.pending.is_empty() {
            return Ok(drop);
        }
        let partitions: BTreeSet<i32> = batch
            .iter()
            .filter(|m| m.topic() == self.topic && self.pending.contains_key(&m.partition()))
            .map(Message::partition)
            .collect();
        let topic = self.topic.clone();
        for p in partitions {
            let records: Vec<&OwnedMessage> = batch
                .iter()
                .filter(|x| x.partition() == p && x.topic() == topic)
                .collect();
            if matches!(
                self.check(consumer, pool, p, &records).await?,
                Verdict::Drop
            ) {
                drop.insert(p);
            }
        }
        Ok(drop)
    }

    /// Decides on the records of partition `p` (in offset order).
    async fn check(
        &mut self,
        consumer: &StreamConsumer<ConsumerCtx>,
        pool: &PgPool,
        p: i32,
        records: &[&OwnedMessage],
    ) -> Result<Verdict, StepError> {
        let Some(first) = records.first() else {
            return Ok(Verdict::Keep);
        };
        match self.pending.get(&p).copied().unwrap_or(Pending::Unchecked) {
            Pending::Expect(at, crc, replay_from) => {
                let Some(m) = records.iter().find(|m| m.offset() == at) else {
                    self.seek(consumer, p, at)?;
                    return Ok(Verdict::Drop);
                };
                if checksum(m) == crc {
                    return self.resume(consumer, p, replay_from, records);
                }
                let (low, _) = self.watermarks(consumer, p);
                self.stale(consumer, pool, p, Stale::ChecksumMismatch, at + 1, low)
                    .await
            }
            Pending::Resumed(at) if first.offset() < at => {
                // We asked for `at` and the broker answered from further
                // back: `at` was out of range (the log is shorter than our
                // position), so the consumer was reset to the log start.
                self.stale(consumer, pool, p, Stale::AheadOfLog, at, first.offset())
                    .await
            }
            Pending::Resumed(_) => {
                self.pending.remove(&p);
                Ok(Verdict::Keep)
            }
            Pending::Unchecked => self.first_check(consumer, pool, p, records).await,
        }
    }

    /// The first look at a newly assigned partition.
    async fn first_check(
        &mut self,
        consumer: &StreamConsumer<ConsumerCtx>,
        pool: &PgPool,
        p: i32,
        records: &[&OwnedMessage],
    ) -> Result<Verdict, StepError> {
        let Some(stored) = load(pool, &self.group, &self.topic, p).await? else {
            self.pending.remove(&p);
            return Ok(Verdict::Keep);
        };
        let s = stored.next;
        if s <= 0 {
            self.pending.remove(&p);
            return Ok(Verdict::Keep);
        }
        let (low, high) = self.watermarks(consumer, p);
        if s < low {
            return self
                .stale(consumer, pool, p, Stale::BehindLogStart, s, low)
                .await;
        }
        // The record we applied last is certainly in the log (brokers may
        // under-report the high watermark, never over-report it): read it
        // again and compare.
        if let Some(crc) = stored.checksum.filter(|_| s - 1 < high && s > low) {
            let replay_from = stored.replay_from.max(low);
            self.pending
                .insert(p, Pending::Expect(s - 1, crc, replay_from));
            return Box::pin(self.check(consumer, pool, p, records)).await;
        }
        // Beyond the high watermark. On Kafka that means beyond the log; a
        // broker that under-reports it (Tansu reports the last batch's
        // first offset + 1) may still hold it. The group's committed offset
        // tells them apart: it is removed with the topic's data.
        if s > high && self.committed(consumer, p).is_none() {
            return self
                .stale(consumer, pool, p, Stale::AheadOfLog, s, low)
                .await;
        }
        self.resume(consumer, p, stored.replay_from.max(low), records)
    }

    /// Continues at `s` (the state checkpoint: records from there to the
    /// position are re-applied to state only); if the broker cannot serve
    /// it, the next records come from further back and [`Self::check`]
    /// notices.
    fn resume(
        &mut self,
        consumer: &StreamConsumer<ConsumerCtx>,
        p: i32,
        s: i64,
        records: &[&OwnedMessage],
    ) -> Result<Verdict, StepError> {
        let first = records.first().map_or(s, |m| m.offset());
        if first == s {
            self.pending.remove(&p);
            return Ok(Verdict::Keep);
        }
        tracing::info!(
            consumer = consumer.context().name,
            partition = p,
            from = first,
            to = s,
            "resuming at the stored position"
        );
        self.seek(consumer, p, s)?;
        self.pending.insert(p, Pending::Resumed(s));
        Ok(Verdict::Drop)
    }

    /// The group's committed offset of `p` in Kafka, if there is one.
    fn committed(&self, consumer: &StreamConsumer<ConsumerCtx>, p: i32) -> Option<i64> {
        let mut tpl = rdkafka::TopicPartitionList::new();
        tpl.add_partition(&self.topic, p);
        let got = consumer
            .committed_offsets(tpl, Duration::from_secs(5))
            .ok()?;
        let offset = got.find_partition(&self.topic, p)?.offset();
        match offset {
            Offset::Offset(o) if o >= 0 => Some(o),
            _ => None,
        }
    }

    async fn stale(
        &mut self,
        consumer: &StreamConsumer<ConsumerCtx>,
        pool: &PgPool,
        p: i32,
        why: Stale,
        stored: i64,
        low: i64,
    ) -> Result<Verdict, StepError> {
        let name = consumer.context().name;
        let to = match (why, self.policy) {
            (Stale::BehindLogStart, _) | (_, StalePositionPolicy::Earliest) => low,
            (_, StalePositionPolicy::Latest) => self.watermarks(consumer, p).1,
        };
        tracing::error!(
            consumer = name,
            topic = %self.topic,
            partition = p,
            stored,
            resume_at = to,
            reason = why.as_str(),
            "stored position does not fit the topic (recreated, truncated or expired); resetting it"
        );
        metrics::POSITION_RESETS
            .with_label_values(&[name, why.as_str()])
            .inc();
        reset(pool, &self.group, &self.topic, p, to).await?;
        consumer.context().shared.set_position(&self.topic, p, to);
        // Until the seek succeeded the partition stays unchecked: a retry
        // finds the reset position and seeks again.
        self.pending.insert(p, Pending::Unchecked);
        self.seek(consumer, p, to)?;
        self.pending.insert(p, Pending::Resumed(to));
        Ok(Verdict::Drop)
    }

    fn watermarks(&self, consumer: &StreamConsumer<ConsumerCtx>, p: i32) -> (i64, i64) {
        // One round trip, only when a partition is assigned.
        match consumer.fetch_watermarks(&self.topic, p, Duration::from_secs(5)) {
            Ok(w) => w,
            Err(e) => {
                tracing::warn!(consumer = consumer.context().name, partition = p, error = %e,
                    "cannot read watermarks; assuming the log is unchanged");
                (0, i64::MAX)
            }
        }
    }

    /// Re-positions the partition. On failure the batch is retried (its
    /// records were taken from the stream, so they must not be dropped
    /// without a successful seek).
    fn seek(
        &self,
        consumer: &StreamConsumer<ConsumerCtx>,
        p: i32,
        to: i64,
    ) -> Result<(), KafkaError> {
        consumer.seek(&self.topic, p, Offset::Offset(to), Duration::from_secs(5))
    }
}
