//! The stream processor's pure logic: per-session state and what each
//! record changes. No I/O here, so every rule is unit-tested directly.
//!
//! **Order independence.** Every derived fact is defined on event time so
//! that it does not depend on arrival order: a failure's rows are a
//! function of the failure and the edits and checks before it (see
//! `attribution`), and a fix is the *earliest* qualifying passing check.
//! An event arriving late that changes a stored failure's answer
//! re-attributes it: new and changed rows are upserted, rows that no
//! longer hold are retracted, and a late check can only move a fix
//! earlier. So out-of-order delivery within the allowed lateness, replays
//! after a crash, and a session moving between instances all converge on
//! the same rows. Events later than the allowed lateness are still counted
//! in the summary (counts commute) but are not correlated, and are counted
//! in `achilles_late_events_total{disposition="too_late"}`.

mod attribution;
pub mod checks;
mod failure;
pub mod names;
pub mod paths;
mod state;
mod summary;

pub use attribution::{confidence, MatchKind, CLAIM};
pub use failure::{failure_info, FailureInfo};
pub use state::{Caps, Correlation, Effects, Fix, Lateness, Occurrence, SessionState, CWD_KEYS};
pub use summary::Summary;

/// Event-time parameters, in microseconds.
#[derive(Clone, Copy, Debug)]
pub struct EngineConfig {
    pub window_us: i64,
    pub fix_window_us: i64,
    pub lateness_us: i64,
}

impl EngineConfig {
    pub fn from_settings(s: &achilles_core::config::ProcessorSettings) -> Self {
        Self {
            window_us: s.correlation_window_ms * 1000,
            fix_window_us: s.fix_window_ms * 1000,
            lateness_us: s.allowed_lateness_ms * 1000,
        }
    }
}
