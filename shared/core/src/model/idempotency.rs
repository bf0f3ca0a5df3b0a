//! `Idempotency-Key`: one logical call, however often it is retried.
//!
//! A session start without an `id`, or a session end without `ended_at`,
//! used to get a fresh server-side value on every attempt, so a retry after
//! a lost response started a second (orphan) session or stamped a second,
//! different end. A client that sends the same `Idempotency-Key` on every
//! attempt gets values *derived from the key* instead:
//!
//! * the session id of a start: a version-8 UUID from
//!   `sha256("achilles-session-v1\n" || tenant || "\n" || key)`, so two
//!   tenants using the same key never share a session;
//! * `started_at` / `ended_at`: the time embedded in the key, which must be
//!   a UUIDv7 (its first 48 bits are the client's clock in milliseconds when
//!   it created the key, i.e. when it first tried).
//!
//! Values in the body win; the key only fills in what is absent. Every
//! attempt therefore publishes an identical record, which downstream
//! dedups. Deterministic, so it holds across API replicas and restarts with
//! no shared store.

use chrono::{DateTime, SecondsFormat, Utc};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use super::submission::{SessionEndSubmission, SessionStartSubmission};
use super::{SessionId, TenantId};

/// A validated key: a hyphenated UUIDv7.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IdempotencyKey {
    uuid: Uuid,
    time: DateTime<Utc>,
}

impl IdempotencyKey {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let bad = || {
            format!(
                "Idempotency-Key {raw:?} must be a hyphenated UUIDv7 created once per call \
                 (its timestamp becomes the start or end time)"
            )
        };
        if raw.len() != 36 {
            return Err(bad());
        }
        let uuid = Uuid::try_parse(raw).map_err(|_| bad())?;
        if uuid.get_version_num() != 7 {
            return Err(bad());
        }
        let (secs, nanos) = uuid.get_timestamp().ok_or_else(bad)?.to_unix();
        let time = i64::try_from(secs)
            .ok()
            .and_then(|s| DateTime::from_timestamp(s, nanos))
            .ok_or_else(bad)?;
        Ok(Self { uuid, time })
    }

    /// When the client created the key (millisecond precision).
    pub fn time(&self) -> DateTime<Utc> {
        self.time
    }

    /// The session id a start with this key gets when it names none.
    pub fn session_id(&self, tenant: &TenantId) -> SessionId {
        let mut h = Sha256::new();
        h.update(b"achilles-session-v1\n");
        h.update(tenant.as_str().as_bytes());
        h.update(b"\n");
        h.update(self.uuid.hyphenated().to_string().as_bytes());
        let digest = h.finalize();
        let mut buf = [0u8; 16];
        buf.copy_from_slice(&digest[..16]);
        SessionId::from_uuid(uuid::Builder::from_custom_bytes(buf).into_uuid())
    }

    fn rfc3339(&self) -> String {
        self.time.to_rfc3339_opts(SecondsFormat::Micros, true)
    }
}

impl SessionStartSubmission {
    /// Fills `id` and `started_at` from the key where the body left them out.
    pub fn fill_from_key(&mut self, key: &IdempotencyKey, tenant: &TenantId) {
        self.id
            .get_or_insert_with(|| key.session_id(tenant).to_string());
        self.started_at.get_or_insert_with(|| key.rfc3339());
    }
}

impl SessionEndSubmission {
    /// Fills `ended_at` from the key where the body left it out.
    pub fn fill_from_key(&mut self, key: &IdempotencyKey) {
        self.ended_at.get_or_insert_with(|| key.rfc3339());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_uuid_v7_keys_are_accepted() {
        let k = Uuid::now_v7().to_string();
        let key = IdempotencyKey::parse(&k).unwrap();
        assert!((Utc::now() - key.time()).num_seconds().abs() < 5);
        for bad in [
            Uuid::new_v4().to_string(),
            Uuid::now_v7().simple().to_string(),
            "retry-1".into(),
            String::new(),
        ] {
            assert!(IdempotencyKey::parse(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn derived_values_are_deterministic_per_tenant_and_body_values_win() {
        let key = IdempotencyKey::parse(&Uuid::now_v7().to_string()).unwrap();
        let (a, b) = (
            TenantId::parse("acme").unwrap(),
            TenantId::parse("globex").unwrap(),
        );
        assert_eq!(key.session_id(&a), key.session_id(&a));
        assert_ne!(key.session_id(&a), key.session_id(&b));

        let mut start = SessionStartSubmission::default();
        start.fill_from_key(&key, &a);
        assert_eq!(start.id, Some(key.session_id(&a).to_string()));
        assert_eq!(start.started_at, Some(key.rfc3339()));
        let mut chosen = SessionStartSubmission {
            id: Some("0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f".into()),
            ..SessionStartSubmission::default()
        };
        chosen.fill_from_key(&key, &a);
        assert_eq!(
            chosen.id.as_deref(),
            Some("0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f")
        );

        let mut end = SessionEndSubmission::default();
        end.fill_from_key(&key);
        assert_eq!(end.ended_at, Some(key.rfc3339()));
    }
}
