//! The transactional outbox: Kafka records written in the same transaction
//! as the rows they announce, published after commit.

use sqlx::{PgPool, Postgres, Transaction};

pub struct OutboxRecord {
    pub id: i64,
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

/// A record to add: topic, key, value and headers.
pub struct NewOutboxRecord {
    pub topic: String,
    pub key: String,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

fn headers_json(h: &[(String, String)]) -> serde_json::Value {
    serde_json::Value::Object(
        h.iter()
            .map(|(k, v)| (k.clone(), v.clone().into()))
            .collect(),
    )
}

pub async fn outbox_add(
    tx: &mut Transaction<'_, Postgres>,
    records: &[NewOutboxRecord],
) -> Result<(), sqlx::Error> {
    if records.is_empty() {
        return Ok(());
    }
    let topics: Vec<&str> = records.iter().map(|r| r.topic.as_str()).collect();
    let keys: Vec<&str> = records.iter().map(|r| r.key.as_str()).collect();
    let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
    let headers: Vec<serde_json::Value> =
        records.iter().map(|r| headers_json(&r.headers)).collect();
    sqlx::query(
        "INSERT INTO outbox (topic, key, payload, headers)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::bytea[], $4::jsonb[])",
    )
    .bind(&topics)
    .bind(&keys)
    .bind(&payloads)
    .bind(&headers)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// Claims the oldest pending records for this transaction. `SKIP LOCKED`
/// lets several instances drain the outbox without publishing a record
/// twice; the caller deletes what it published and commits.
pub async fn outbox_claim(
    tx: &mut Transaction<'_, Postgres>,
    limit: i64,
) -> Result<Vec<OutboxRecord>, sqlx::Error> {
    let rows: Vec<(i64, String, String, Vec<u8>, serde_json::Value)> = sqlx::query_as(
        "SELECT id, topic, key, payload, headers FROM outbox ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED",
    )
    .bind(limit)
    .fetch_all(&mut **tx)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, topic, key, payload, h)| OutboxRecord {
            id,
            topic,
            key,
            payload,
            headers: h
                .as_object()
                .map(|m| {
                    m.iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect())
}

pub async fn outbox_delete(
    tx: &mut Transaction<'_, Postgres>,
    ids: &[i64],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM outbox WHERE id = ANY($1)")
        .bind(ids)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Records a failed attempt for each (id, error).
pub async fn outbox_failed(
    tx: &mut Transaction<'_, Postgres>,
    failed: &[(i64, String)],
) -> Result<(), sqlx::Error> {
    if failed.is_empty() {
        return Ok(());
    }
    let ids: Vec<i64> = failed.iter().map(|f| f.0).collect();
    let errors: Vec<&str> = failed.iter().map(|f| f.1.as_str()).collect();
    sqlx::query(
        "UPDATE outbox o SET attempts = o.attempts + 1, last_error = t.e
         FROM UNNEST($1::bigint[], $2::text[]) AS t(id, e) WHERE o.id = t.id",
    )
    .bind(&ids)
    .bind(&errors)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

pub async fn outbox_pending(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM outbox")
        .fetch_one(pool)
        .await
}
