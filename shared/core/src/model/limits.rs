//! Validation limits: how large and how old a submission may be.
//!
//! They are configuration (section `[validation]`) rather than constants so an
//! operator can tighten them, but the defaults are what the API documents.

use chrono::Duration;
use serde::{Deserialize, Serialize};

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
    pub fn max_age(&self) -> Duration {
        Duration::seconds(self.max_age_secs)
    }

    pub fn max_future(&self) -> Duration {
        Duration::seconds(self.max_future_secs)
    }
}
