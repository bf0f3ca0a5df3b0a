//! The stream processor's pure logic: per-session state and what each
//! record changes. No I/O here, so every rule is unit-tested directly.
//!
//! **Order independence.** Every derived fact is defined on event time so
//! that it does not depend on arrival order: a correlation is any pair
//! (agent `file_edit` E, failure F) with `0 <= F.t - E.t <= window`; a fix
//! (`any_failure` pairs, where F does not name E's file, only within the
//! shorter unnamed window); a fix is the *earliest* qualifying success. Whichever of E and F arrives
//! second creates the pair, and a late success can only move a fix
//! earlier. So out-of-order delivery within the allowed lateness, replays
//! after a crash, and a session moving between instances all converge on
//! the same rows. Events later than the allowed lateness are still counted
//! in the summary (counts commute) but are not correlated, and are counted
//! in `achilles_late_events_total{disposition="too_late"}`.

mod failure;
mod state;
mod summary;

pub use failure::{failure_info, names, FailureInfo, Naming};
pub use state::{Correlation, Effects, Fix, Lateness, MatchKind, Occurrence, SessionState};
pub use summary::Summary;

/// Event-time parameters, in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub window_us: i64,
    /// Window for `any_failure` pairs (the failure does not name the file).
    pub unnamed_window_us: i64,
    pub fix_window_us: i64,
    pub lateness_us: i64,
}

impl EngineConfig {
    pub fn from_settings(s: &achilles_core::config::ProcessorSettings) -> Self {
        Self {
            window_us: s.correlation_window_ms * 1000,
            unnamed_window_us: s.unnamed_window_ms.min(s.correlation_window_ms) * 1000,
            fix_window_us: s.fix_window_ms * 1000,
            lateness_us: s.allowed_lateness_ms * 1000,
        }
    }
}
