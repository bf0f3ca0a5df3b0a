//! Event rows as the API reads them: paginated by event time. (Writing
//! them is the raw sink's, in its own crate.)

use chrono::{DateTime, Utc};
use serde::Serialize;
use sqlx::PgPool;
use utoipa::ToSchema;
use uuid::Uuid;

use crate::model::{SessionId, TenantId};

/// An event as stored.
#[derive(Debug, Clone, Serialize, sqlx::FromRow, ToSchema)]
pub struct EventRow {
    pub id: Uuid,
    pub event_hash: String,
    pub session_id: Uuid,
    pub occurred_at: DateTime<Utc>,
    pub ingested_at: DateTime<Utc>,
    pub landed_at: DateTime<Utc>,
    pub kind: String,
    pub actor: String,
    pub parent_id: Option<Uuid>,
    pub is_failure: bool,
    pub file_path: Option<String>,
    #[schema(value_type = Object)]
    pub data: serde_json::Value,
    #[schema(value_type = Object)]
    pub attributes: serde_json::Value,
}

/// Keyset position: events strictly after (occurred_at, id).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EventCursor {
    pub occurred_at: DateTime<Utc>,
    pub id: Uuid,
}

impl EventCursor {
    /// Opaque text form: `<micros>_<uuid>`.
    pub fn encode(&self) -> String {
        format!("{}_{}", self.occurred_at.timestamp_micros(), self.id)
    }

    pub fn decode(s: &str) -> Option<Self> {
        let (us, id) = s.split_once('_')?;
        Some(Self {
            occurred_at: DateTime::from_timestamp_micros(us.parse().ok()?)?,
            id: Uuid::try_parse(id).ok()?,
        })
    }
}

/// One page of a session's events in event-time order. Keyset pagination
/// keeps every page an index range scan, however deep the client pages.
#[tracing::instrument(skip(pool), err)]
pub async fn list_events(
    pool: &PgPool,
    tenant: &TenantId,
    session: SessionId,
    after: Option<EventCursor>,
    limit: i64,
) -> Result<Vec<EventRow>, sqlx::Error> {
    let (t, id) = after.map_or((None, None), |c| (Some(c.occurred_at), Some(c.id)));
    sqlx::query_as(
        "SELECT id, event_hash, session_id, occurred_at, ingested_at, landed_at, kind, actor,
                parent_id, is_failure, file_path, data, attributes
         FROM events
         WHERE session_id = $1 AND tenant_id = $2
           AND ($3::timestamptz IS NULL OR (occurred_at, id) > ($3, $4))
         ORDER BY occurred_at, id
         LIMIT $5",
    )
    .bind(session.as_uuid())
    .bind(tenant.as_str())
    .bind(t)
    .bind(id)
    .bind(limit)
    .fetch_all(pool)
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cursor_round_trip_and_garbage() {
        let c = EventCursor {
            occurred_at: DateTime::from_timestamp_micros(1_763_726_400_123_456).unwrap(),
            id: Uuid::now_v7(),
        };
        assert_eq!(EventCursor::decode(&c.encode()), Some(c));
        assert_eq!(EventCursor::decode("nope"), None);
        assert_eq!(EventCursor::decode("12_notauuid"), None);
    }
}
