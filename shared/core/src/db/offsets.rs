//! Kafka positions stored in Postgres, for consumers whose effects and
//! offsets must commit atomically (the stream processor).

use std::collections::HashMap;

use sqlx::{Postgres, Transaction};

/// Locks the stored positions of `partitions` for this transaction and
/// returns them (0 for a partition never seen). The lock serialises two
/// instances that briefly process the same partition during a rebalance:
/// the second sees the first's position and skips what it already applied.
pub async fn lock_offsets(
    tx: &mut Transaction<'_, Postgres>,
    group: &str,
    topic: &str,
    partitions: &[i32],
) -> Result<HashMap<i32, i64>, sqlx::Error> {
    sqlx::query(
        "INSERT INTO consumer_offsets (consumer_group, topic, partition, next_offset)
         SELECT $1, $2, p, 0 FROM UNNEST($3::int[]) AS p
         ON CONFLICT DO NOTHING",
    )
    .bind(group)
    .bind(topic)
    .bind(partitions)
    .execute(&mut **tx)
    .await?;
    let rows: Vec<(i32, i64)> = sqlx::query_as(
        "SELECT partition, next_offset FROM consumer_offsets
         WHERE consumer_group = $1 AND topic = $2 AND partition = ANY($3)
         ORDER BY partition
         FOR UPDATE",
    )
    .bind(group)
    .bind(topic)
    .bind(partitions)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows.into_iter().collect())
}

/// Advances stored positions (never backwards).
pub async fn save_offsets(
    tx: &mut Transaction<'_, Postgres>,
    group: &str,
    topic: &str,
    next: &[(i32, i64)],
) -> Result<(), sqlx::Error> {
    let parts: Vec<i32> = next.iter().map(|n| n.0).collect();
    let offs: Vec<i64> = next.iter().map(|n| n.1).collect();
    sqlx::query(
        "UPDATE consumer_offsets c SET next_offset = GREATEST(c.next_offset, t.o), updated_at = now()
         FROM UNNEST($3::int[], $4::bigint[]) AS t(p, o)
         WHERE c.consumer_group = $1 AND c.topic = $2 AND c.partition = t.p",
    )
    .bind(group)
    .bind(topic)
    .bind(&parts)
    .bind(&offs)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
