//! Push of insight transitions: the append-only transition log, webhook
//! endpoints and their deliveries (migrations/20261129004100_push.sql).
//!
//! Writers: the agent's recorder ([`record_transitions`]) and delivery
//! worker ([`claim_due`], [`finish_delivery`]); the API registers
//! endpoints (a control-plane write; the ingest path still never touches
//! Postgres) and reads the log for its event stream.

use chrono::{DateTime, Utc};
use serde::Serialize;
use serde_json::Value;
use sqlx::{PgPool, Postgres, Transaction};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::wire::insight::InsightRecord;

/// Serialises the recorder's transactions so that transition ids are
/// committed in increasing order: a reader that has seen id N never sees a
/// smaller id appear later, so `id > last` is an exact resume point for
/// streams. Transitions are few (insights, not events), so the lock costs
/// nothing measurable.
const RECORDER_LOCK: i64 = 0x6163_6869_7075_7368; // "achipush"

/// One transition, as streamed and delivered.
#[derive(Debug, Clone, PartialEq, Serialize, sqlx::FromRow, ToSchema)]
pub struct TransitionRow {
    /// Position in the log; the stream's event id.
    pub id: i64,
    #[serde(skip)]
    pub tenant_id: String,
    pub insight_id: Uuid,
    pub session_id: Uuid,
    #[serde(rename = "type")]
    pub insight_type: String,
    /// raised, escalated or resolved.
    pub transition: String,
    /// open or resolved, after the transition.
    pub status: String,
    /// info, warning or critical.
    pub severity: String,
    pub dedup_key: String,
    pub title: String,
    pub detail: String,
    #[schema(value_type = Object)]
    pub evidence: Value,
    pub raised_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
    pub resolved_at: Option<DateTime<Utc>>,
    pub decided_at: DateTime<Utc>,
}

const TRANSITION_COLUMNS: &str = "id, tenant_id, insight_id, session_id, type AS insight_type, \
     transition, status, severity, dedup_key, title, detail, evidence, raised_at, last_seen_at, \
     resolved_at, decided_at";

/// Appends the transitions not recorded yet and creates their deliveries
/// to the tenant's matching endpoints. Returns the new transitions'
/// names (for metrics); a re-delivered record adds nothing.
pub async fn record_transitions(
    tx: &mut Transaction<'_, Postgres>,
    records: &[InsightRecord],
) -> Result<Vec<String>, sqlx::Error> {
    if records.is_empty() {
        return Ok(Vec::new());
    }
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(RECORDER_LOCK)
        .execute(&mut **tx)
        .await?;
    let col = |f: fn(&InsightRecord) -> String| records.iter().map(f).collect::<Vec<_>>();
    let ids: Vec<Uuid> = records.iter().map(|r| r.id).collect();
    let sessions: Vec<Uuid> = records.iter().map(|r| r.session_id.as_uuid()).collect();
    let evidence: Vec<Value> = records.iter().map(|r| r.evidence.clone()).collect();
    let time = |f: fn(&InsightRecord) -> DateTime<Utc>| records.iter().map(f).collect::<Vec<_>>();
    let resolved: Vec<Option<DateTime<Utc>>> = records.iter().map(|r| r.resolved_at).collect();
    let new: Vec<(i64, String)> = sqlx::query_as(
        "INSERT INTO insight_transitions (tenant_id, insight_id, session_id, type, transition,
             status, severity, dedup_key, title, detail, evidence, raised_at, last_seen_at,
             resolved_at, decided_at)
         SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::uuid[], $4::text[], $5::text[],
             $6::text[], $7::text[], $8::text[], $9::text[], $10::text[], $11::jsonb[],
             $12::timestamptz[], $13::timestamptz[], $14::timestamptz[], $15::timestamptz[])
             AS u(tenant_id, insight_id, session_id, type, transition, status, severity, dedup_key,
                  title, detail, evidence, raised_at, last_seen_at, resolved_at, decided_at)
         -- Not for a session deleted on request (a record still in flight).
         WHERE NOT EXISTS (SELECT 1 FROM deleted_sessions d WHERE d.id = u.session_id)
         ON CONFLICT (insight_id, transition, decided_at) DO NOTHING
         RETURNING id, transition",
    )
    .bind(col(|r| r.tenant.to_string()))
    .bind(&ids)
    .bind(&sessions)
    .bind(col(|r| r.insight_type.clone()))
    .bind(col(|r| r.transition.as_str().to_owned()))
    .bind(col(|r| r.status.clone()))
    .bind(col(|r| r.severity.clone()))
    .bind(col(|r| r.dedup_key.clone()))
    .bind(col(|r| r.title.clone()))
    .bind(col(|r| r.detail.clone()))
    .bind(&evidence)
    .bind(time(|r| r.raised_at))
    .bind(time(|r| r.last_seen_at))
    .bind(&resolved)
    .bind(time(|r| r.decided_at))
    .fetch_all(&mut **tx)
    .await?;
    if new.is_empty() {
        return Ok(Vec::new());
    }
    let new_ids: Vec<i64> = new.iter().map(|n| n.0).collect();
    sqlx::query(
        "INSERT INTO webhook_deliveries (id, endpoint_id, tenant_id, transition_id)
         SELECT gen_random_uuid(), e.id, t.tenant_id, t.id
         FROM insight_transitions t
         JOIN webhook_endpoints e ON e.tenant_id = t.tenant_id
         WHERE t.id = ANY($1)
           AND (e.severities IS NULL OR t.severity = ANY(e.severities))
           AND (e.types IS NULL OR t.type = ANY(e.types))
           AND (e.transitions IS NULL OR t.transition = ANY(e.transitions))
         ON CONFLICT (endpoint_id, transition_id) DO NOTHING",
    )
    .bind(&new_ids)
    .execute(&mut **tx)
    .await?;
    Ok(new.into_iter().map(|n| n.1).collect())
}

/// Transitions after `after` (by id), oldest first: of one tenant, or of
/// all (the API's stream hub); with `since`, only those decided since.
pub async fn transitions_after(
    pool: &PgPool,
    tenant: Option<&str>,
    after: i64,
    since: Option<DateTime<Utc>>,
    limit: i64,
) -> Result<Vec<TransitionRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {TRANSITION_COLUMNS} FROM insight_transitions
         WHERE id > $1 AND ($2::text IS NULL OR tenant_id = $2)
           AND ($3::timestamptz IS NULL OR decided_at >= $3)
         ORDER BY id LIMIT $4"
    ))
    .bind(after)
    .bind(tenant)
    .bind(since)
    .bind(limit)
    .fetch_all(pool)
    .await
}

/// The newest transition id (0 when there is none).
pub async fn last_transition_id(pool: &PgPool) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM insight_transitions")
        .fetch_one(pool)
        .await
}

/// A registered webhook endpoint (never with its secret).
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct EndpointRow {
    pub id: Uuid,
    pub url: String,
    pub description: Option<String>,
    /// Only these severities (absent: all).
    pub severities: Option<Vec<String>>,
    pub types: Option<Vec<String>>,
    pub transitions: Option<Vec<String>>,
    pub created_at: DateTime<Utc>,
}

/// What registering an endpoint stores.
#[derive(Debug, Clone)]
pub struct NewEndpoint {
    pub url: String,
    pub secret: String,
    pub description: Option<String>,
    pub severities: Option<Vec<String>>,
    pub types: Option<Vec<String>>,
    pub transitions: Option<Vec<String>>,
}

const ENDPOINT_COLUMNS: &str = "id, url, description, severities, types, transitions, created_at";

/// Registers an endpoint unless the tenant already has `max`; `None` then.
pub async fn create_endpoint(
    pool: &PgPool,
    tenant: &str,
    e: &NewEndpoint,
    max: i64,
) -> Result<Option<EndpointRow>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Serialise registrations of one tenant, so the limit holds.
    sqlx::query("SELECT pg_advisory_xact_lock(hashtext('webhooks:' || $1))")
        .bind(tenant)
        .execute(&mut *tx)
        .await?;
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM webhook_endpoints WHERE tenant_id = $1")
        .bind(tenant)
        .fetch_one(&mut *tx)
        .await?;
    if n >= max {
        return Ok(None);
    }
    let row = sqlx::query_as(&format!(
        "INSERT INTO webhook_endpoints (id, tenant_id, url, secret, description, severities,
             types, transitions)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING {ENDPOINT_COLUMNS}"
    ))
    .bind(Uuid::now_v7())
    .bind(tenant)
    .bind(&e.url)
    .bind(&e.secret)
    .bind(&e.description)
    .bind(&e.severities)
    .bind(&e.types)
    .bind(&e.transitions)
    .fetch_one(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Some(row))
}

pub async fn list_endpoints(pool: &PgPool, tenant: &str) -> Result<Vec<EndpointRow>, sqlx::Error> {
    sqlx::query_as(&format!(
        "SELECT {ENDPOINT_COLUMNS} FROM webhook_endpoints WHERE tenant_id = $1 ORDER BY created_at, id"
    ))
    .bind(tenant)
    .fetch_all(pool)
    .await
}

/// Removes an endpoint and its deliveries; `false` if it is not the tenant's.
pub async fn delete_endpoint(pool: &PgPool, tenant: &str, id: Uuid) -> Result<bool, sqlx::Error> {
    let r = sqlx::query("DELETE FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2")
        .bind(id)
        .bind(tenant)
        .execute(pool)
        .await?;
    Ok(r.rows_affected() > 0)
}

/// One delivery as the tenant sees it.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct DeliveryRow {
    /// The `Achilles-Delivery` id.
    pub id: Uuid,
    pub transition_id: i64,
    /// pending, delivered or dead.
    pub status: String,
    pub attempts: i32,
    pub next_attempt_at: DateTime<Utc>,
    pub last_status: Option<i32>,
    pub last_error: Option<String>,
    pub created_at: DateTime<Utc>,
    pub delivered_at: Option<DateTime<Utc>>,
}

/// An endpoint's deliveries, newest first; `None` if the endpoint is not
/// the tenant's.
pub async fn endpoint_deliveries(
    pool: &PgPool,
    tenant: &str,
    endpoint: Uuid,
    limit: i64,
) -> Result<Option<Vec<DeliveryRow>>, sqlx::Error> {
    let owned: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM webhook_endpoints WHERE id = $1 AND tenant_id = $2)",
    )
    .bind(endpoint)
    .bind(tenant)
    .fetch_one(pool)
    .await?;
    if !owned {
        return Ok(None);
    }
    sqlx::query_as(
        "SELECT id, transition_id, status, attempts, next_attempt_at, last_status, last_error,
                created_at, delivered_at
         FROM webhook_deliveries WHERE endpoint_id = $1 AND tenant_id = $2
         ORDER BY created_at DESC, transition_id DESC LIMIT $3",
    )
    .bind(endpoint)
    .bind(tenant)
    .bind(limit)
    .fetch_all(pool)
    .await
    .map(Some)
}

/// A delivery claimed by a worker, with what it needs to send it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct DueDelivery {
    pub delivery_id: Uuid,
    pub attempts: i32,
    pub url: String,
    pub secret: String,
    #[sqlx(flatten)]
    pub transition: TransitionRow,
}

/// Claims up to `limit` due deliveries for `lease_ms`: they are not due
/// again until the lease ends, so a worker that dies mid-delivery only
/// delays them (and the delivery may then arrive twice: at least once).
pub async fn claim_due(
    pool: &PgPool,
    limit: i64,
    lease_ms: i64,
) -> Result<Vec<DueDelivery>, sqlx::Error> {
    sqlx::query_as(
        "WITH due AS (
             SELECT id FROM webhook_deliveries
             WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at LIMIT $1
             FOR UPDATE SKIP LOCKED
         ), claimed AS (
             UPDATE webhook_deliveries d
             SET next_attempt_at = now() + $2 * interval '1 millisecond'
             FROM due WHERE d.id = due.id
             RETURNING d.id, d.attempts, d.endpoint_id, d.transition_id
         )
         SELECT c.id AS delivery_id, c.attempts, e.url, e.secret,
                t.id, t.tenant_id, t.insight_id, t.session_id, t.type AS insight_type,
                t.transition, t.status, t.severity, t.dedup_key, t.title, t.detail, t.evidence,
                t.raised_at, t.last_seen_at, t.resolved_at, t.decided_at
         FROM claimed c
         JOIN webhook_endpoints e ON e.id = c.endpoint_id
         JOIN insight_transitions t ON t.id = c.transition_id
         ORDER BY t.id",
    )
    .bind(limit)
    .bind(lease_ms)
    .fetch_all(pool)
    .await
}

/// How an attempt ended.
#[derive(Debug, Clone, PartialEq)]
pub enum Attempt {
    Delivered {
        status: i32,
    },
    /// Failed; retry after `retry_in_ms`, or give up when `None`.
    Failed {
        status: Option<i32>,
        error: String,
        retry_in_ms: Option<i64>,
    },
}

pub async fn finish_delivery(
    pool: &PgPool,
    id: Uuid,
    attempt: &Attempt,
) -> Result<(), sqlx::Error> {
    let q = match attempt {
        Attempt::Delivered { status } => sqlx::query(
            "UPDATE webhook_deliveries SET status = 'delivered', attempts = attempts + 1,
                 last_status = $2, last_error = NULL, delivered_at = now()
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(*status),
        Attempt::Failed {
            status,
            error,
            retry_in_ms,
        } => sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, last_status = $2,
                 last_error = $3,
                 status = CASE WHEN $4::bigint IS NULL THEN 'dead' ELSE 'pending' END,
                 next_attempt_at = CASE WHEN $4::bigint IS NULL THEN next_attempt_at
                                        ELSE now() + $4 * interval '1 millisecond' END
             WHERE id = $1 AND status = 'pending'",
        )
        .bind(id)
        .bind(*status)
        .bind(error)
        .bind(*retry_in_ms),
    };
    q.execute(pool).await?;
    Ok(())
}
