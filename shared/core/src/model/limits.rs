//! Validation limits: how large and how old a submission may be.
//!
//! They are configuration (section `[validation]`) rather than constants so an
//! operator can tighten them, but the defaults are what the API documents.

use chrono::Duration;
use serde::{Deserialize, Serialize};

use crate::db::MAX_INDEXED_NAME_BYTES;

/// The widest event-time window an operator may configure (ten years
/// either way): keeps every accepted time a four-digit-year RFC 3339
/// timestamp, which round-trips exactly through every encoding.
pub const MAX_WINDOW_SECS: i64 = 10 * 366 * 24 * 3600;

/// The largest record the limits may admit, with room below Kafka's
/// default `message.max.bytes` (1 MiB) for the envelope and headers.
pub const MAX_RECORD_BYTES: usize = 900 * 1024;

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Error messages and similar one-line texts.
    pub max_message_bytes: usize,
    /// Stack traces, command output and test output.
    pub max_stack_trace_bytes: usize,
    /// Short identifiers: tool, provider, model, framework, action names.
    pub max_name_bytes: usize,
    /// File paths and command lines.
    pub max_path_bytes: usize,
    /// `attributes` and session `metadata`, serialised as JSON.
    pub max_attributes_bytes: usize,
    pub max_attributes_keys: usize,
    /// How far in the past an event time may lie relative to ingest time.
    pub max_age_secs: i64,
    /// How far in the future (clock skew) an event time may lie.
    pub max_future_secs: i64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_message_bytes: 16 * 1024,
            max_stack_trace_bytes: 64 * 1024,
            max_name_bytes: 256,
            max_path_bytes: 4096,
            max_attributes_bytes: 16 * 1024,
            max_attributes_keys: 64,
            max_age_secs: 7 * 24 * 3600,
            max_future_secs: 300,
        }
    }
}

impl Limits {
    /// Saturates instead of panicking on values [`Limits::check`] refuses.
    pub fn max_age(&self) -> Duration {
        Duration::try_seconds(self.max_age_secs).unwrap_or(Duration::MAX)
    }

    pub fn max_future(&self) -> Duration {
        Duration::try_seconds(self.max_future_secs).unwrap_or(Duration::MAX)
    }

    /// The most bytes of text one record can carry under these limits: an
    /// error event with every text at its maximum (other kinds carry less).
    pub fn worst_record_bytes(&self) -> usize {
        self.max_message_bytes
            .saturating_add(self.max_stack_trace_bytes)
            .saturating_add(self.max_path_bytes)
            .saturating_add(self.max_name_bytes)
            .saturating_add(self.max_attributes_bytes)
    }

    /// Refuses limits under which an accepted value would break something
    /// downstream: a name too long for the index it lands in, a window so
    /// wide that times stop round-tripping (or overflow), a record too
    /// large for the broker.
    pub fn check(&self) -> Result<(), String> {
        if !(1..=MAX_INDEXED_NAME_BYTES).contains(&self.max_name_bytes) {
            return Err(format!(
                "validation.max_name_bytes must be between 1 and {MAX_INDEXED_NAME_BYTES} \
                 (names are part of Postgres indexes)"
            ));
        }
        for (key, v) in [
            ("max_age_secs", self.max_age_secs),
            ("max_future_secs", self.max_future_secs),
        ] {
            if !(0..=MAX_WINDOW_SECS).contains(&v) {
                return Err(format!(
                    "validation.{key} must be between 0 and {MAX_WINDOW_SECS}"
                ));
            }
        }
        if self.worst_record_bytes() > MAX_RECORD_BYTES {
            return Err(format!(
                "validation limits admit records of {} bytes of text; at most {MAX_RECORD_BYTES} \
                 fit a Kafka record (sum of max_message_bytes, max_stack_trace_bytes, \
                 max_path_bytes, max_name_bytes, max_attributes_bytes)",
                self.worst_record_bytes()
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_pass_and_unsafe_limits_are_refused() {
        assert_eq!(Limits::default().check(), Ok(()));
        let bad = [
            Limits {
                max_name_bytes: 4096,
                ..Limits::default()
            },
            Limits {
                max_age_secs: i64::MAX,
                ..Limits::default()
            },
            Limits {
                max_future_secs: -1,
                ..Limits::default()
            },
            Limits {
                max_stack_trace_bytes: 2 * 1024 * 1024,
                ..Limits::default()
            },
        ];
        for l in bad {
            assert!(l.check().is_err(), "{l:?}");
        }
    }
}
