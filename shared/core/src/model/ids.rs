//! Identifier newtypes. Parsing is validation: a `TenantId` or `SessionId`
//! that exists is well-formed, so nothing downstream re-checks it.

use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A tenant: the owner of sessions and events, taken from the caller's
/// credential and never from a request body.
///
/// Lower-case ASCII letters, digits, `-` and `_`, 1 to 63 characters, starting
/// with a letter or digit. Kept this narrow because tenant ids end up in
/// metrics-free places such as log fields and SQL filters, and a narrow
/// alphabet can never need escaping.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct TenantId(String);

impl TenantId {
    pub fn parse(raw: &str) -> Result<Self, String> {
        let ok_len = (1..=63).contains(&raw.len());
        let mut chars = raw.chars();
        let ok_first = chars
            .next()
            .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
        let ok_rest =
            chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
        if ok_len && ok_first && ok_rest {
            Ok(Self(raw.to_owned()))
        } else {
            Err(format!(
                "tenant id {raw:?} must be 1-63 characters of a-z, 0-9, '-' or '_', starting with a letter or digit"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for TenantId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(d)?;
        Self::parse(&raw).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for TenantId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

macro_rules! uuid_id {
    ($(#[$doc:meta])* $name:ident, $what:literal) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Uuid);

        impl $name {
            /// Parses the hyphenated UUID form only: the braced, URN and
            /// simple forms are rejected so one id has one spelling in logs,
            /// Kafka keys and SQL.
            pub fn parse(raw: &str) -> Result<Self, String> {
                if raw.len() != 36 {
                    return Err(format!(
                        "{} {raw:?} is not a hyphenated UUID (8-4-4-4-12 hex digits)",
                        $what
                    ));
                }
                Uuid::try_parse(raw)
                    .map(Self)
                    .map_err(|_| format!("{} {raw:?} is not a valid UUID", $what))
            }

            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub fn as_uuid(&self) -> Uuid {
                self.0
            }

            /// A fresh, time-ordered (v7) id: sorts by creation time, which
            /// keeps B-tree inserts local.
            pub fn new_v7() -> Self {
                Self(Uuid::now_v7())
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                Self::parse(s)
            }
        }
    };
}

uuid_id!(
    /// A session: one run of one coding agent, from start to end.
    SessionId,
    "session id"
);
uuid_id!(
    /// An event inside a session. Clients may choose it; when they do not,
    /// it is derived from the event hash so that a retried event keeps its id.
    EventId,
    "event id"
);

impl EventId {
    /// Derives an id from an event's hash and time: the event time in
    /// milliseconds in the first 48 bits (as in UUIDv7), then 80 bits of
    /// the hash, as a version-8 (custom) UUID. Deterministic, so a client
    /// that retries an event without an id gets the same id back; ordered
    /// by time, so the `events` primary key grows at its right edge
    /// instead of taking inserts on random pages.
    pub fn from_hash(hash: &crate::hash::EventHash, at: chrono::DateTime<chrono::Utc>) -> Self {
        let mut buf = [0u8; 16];
        let ms = at.timestamp_millis().max(0).to_be_bytes();
        buf[..6].copy_from_slice(&ms[2..]);
        buf[6..].copy_from_slice(&hash.as_bytes()[..10]);
        Self(uuid::Builder::from_custom_bytes(buf).into_uuid())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tenant_accepts_narrow_alphabet() {
        assert_eq!(TenantId::parse("acme-01_x").unwrap().as_str(), "acme-01_x");
    }

    #[test]
    fn tenant_rejects_upper_case_empty_long_and_leading_dash() {
        for bad in ["Acme", "", "-acme", "a b", &"a".repeat(64)] {
            assert!(TenantId::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn session_id_requires_hyphenated_uuid() {
        let ok = "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f";
        assert_eq!(SessionId::parse(ok).unwrap().to_string(), ok);
        let err = SessionId::parse("0190b3a27c1e7a519d7e2f1b8c7d6e5f").unwrap_err();
        assert!(err.contains("hyphenated"), "{err}");
        assert!(SessionId::parse("0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6ezz").is_err());
    }

    #[test]
    fn event_id_from_hash_is_deterministic_and_versioned() {
        let h = crate::hash::EventHash::from_bytes([7u8; 32]);
        let t = chrono::DateTime::from_timestamp_millis(1_795_000_000_123).unwrap();
        let a = EventId::from_hash(&h, t);
        assert_eq!(a, EventId::from_hash(&h, t));
        assert_eq!(a.as_uuid().get_version_num(), 8);
        // Later events sort after earlier ones, whatever their hashes.
        let other = crate::hash::EventHash::from_bytes([0u8; 32]);
        let later = EventId::from_hash(&other, t + chrono::Duration::milliseconds(1));
        assert!(later.as_uuid() > a.as_uuid());
    }
}
