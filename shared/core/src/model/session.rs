//! Session lifecycle: validated start and end records.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{SessionId, TenantId};

/// Where the session's telemetry comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionSource {
    Cli,
    Ide,
    Sdk,
    Other,
}

impl SessionSource {
    pub const ALL: [SessionSource; 4] = [Self::Cli, Self::Ide, Self::Sdk, Self::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cli => "cli",
            Self::Ide => "ide",
            Self::Sdk => "sdk",
            Self::Other => "other",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }
}

/// Lifecycle state of a session. `active` until an end record arrives.
/// `timed_out` is set by the pipeline itself (the processor's reaper, after
/// `session.idle_timeout_ms` without a record), never by a producer; a
/// producer's own end later replaces it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    Active,
    Completed,
    Failed,
    Aborted,
    TimedOut,
}

impl SessionStatus {
    pub const ALL: [SessionStatus; 5] = [
        Self::Active,
        Self::Completed,
        Self::Failed,
        Self::Aborted,
        Self::TimedOut,
    ];
    /// The states a producer's end record may set.
    pub const FINAL: [SessionStatus; 3] = [Self::Completed, Self::Failed, Self::Aborted];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Completed => "completed",
            Self::Failed => "failed",
            Self::Aborted => "aborted",
            Self::TimedOut => "timed_out",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.as_str() == s)
    }

    /// Whether an end with this status may replace an end with `current`:
    /// a producer's own end always may, the pipeline's timeout only
    /// replaces another timeout (a timeout published while the real end
    /// was still on its way must not undo it).
    pub fn may_replace(self, current: Option<SessionStatus>) -> bool {
        self != Self::TimedOut
            || matches!(current, None | Some(Self::Active) | Some(Self::TimedOut))
    }
}

/// A validated session start.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionStart {
    pub tenant: TenantId,
    pub session_id: SessionId,
    pub agent_name: String,
    pub agent_model: Option<String>,
    pub source: SessionSource,
    pub started_at: DateTime<Utc>,
    pub metadata: Map<String, Value>,
}

/// A validated session end.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SessionEnd {
    pub tenant: TenantId,
    pub session_id: SessionId,
    pub ended_at: DateTime<Utc>,
    pub status: SessionStatus,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for s in SessionSource::ALL {
            assert_eq!(SessionSource::parse(s.as_str()), Some(s));
        }
        for s in SessionStatus::ALL {
            assert_eq!(SessionStatus::parse(s.as_str()), Some(s));
        }
        assert!(!SessionStatus::FINAL.contains(&SessionStatus::Active));
        assert!(!SessionStatus::FINAL.contains(&SessionStatus::TimedOut));
    }

    #[test]
    fn a_timeout_never_replaces_a_real_end() {
        use SessionStatus::*;
        assert!(TimedOut.may_replace(None));
        assert!(TimedOut.may_replace(Some(Active)));
        assert!(TimedOut.may_replace(Some(TimedOut)));
        for real in SessionStatus::FINAL {
            assert!(!TimedOut.may_replace(Some(real)), "{real:?}");
            assert!(real.may_replace(Some(TimedOut)));
            assert!(real.may_replace(Some(Completed)));
        }
    }
}
