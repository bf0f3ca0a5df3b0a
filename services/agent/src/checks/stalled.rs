//! `stalled_session`: lots of activity, no progress.
//!
//! Counts agent actions since the last success (command exit 0 or passing
//! test run), or since the session began. Raised at `stalled_min_actions`
//! (30) such actions when at least one command or test run among them
//! failed, i.e. the agent tried to verify its work and it does not work
//! yet (a session that never runs a build or test cannot be judged this
//! way and stays quiet). Critical at twice the threshold. Resolved by the
//! next success. One per session (key `session`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use achilles_core::config::CheckSettings;

use super::{scaled, Check, EvalCtx, Finding};
use crate::observe::Observed;

pub struct Stalled {
    min_actions: usize,
}

impl Stalled {
    pub fn new(c: &CheckSettings) -> Self {
        Self {
            min_actions: c.stalled_min_actions,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    actions: u64,
    failed_checks: u64,
    /// Event time of the first action of the streak.
    since: Option<i64>,
    recent_actions: VecDeque<Uuid>,
}

impl Check for Stalled {
    const TYPE: &'static str = "stalled_session";
    type State = State;

    fn observe(&self, st: &mut State, ev: &Observed, _now: i64) {
        if ev.success {
            *st = State::default();
            return;
        }
        if ev.is_action {
            st.actions += 1;
            st.since = Some(st.since.map_or(ev.t, |s| s.min(ev.t)));
            st.recent_actions.push_back(ev.id);
            if st.recent_actions.len() > 10 {
                st.recent_actions.pop_front();
            }
        }
        if ev.verification && ev.failure {
            st.failed_checks += 1;
        }
    }

    fn evaluate(&self, st: &State, _ctx: &EvalCtx<'_>) -> Vec<Finding> {
        if self.min_actions == 0 || st.actions < self.min_actions as u64 || st.failed_checks == 0 {
            return Vec::new();
        }
        let since = st
            .since
            .and_then(chrono::DateTime::from_timestamp_micros)
            .map(|t| t.to_rfc3339());
        vec![Finding {
            dedup_key: "session".into(),
            severity: scaled(st.actions as f64, self.min_actions as f64),
            title: format!(
                "Stalled: {} agent actions since the last successful build or test",
                st.actions
            ),
            detail: format!(
                "The agent acted {} times and ran {} failing builds or tests without one succeeding.",
                st.actions, st.failed_checks
            ),
            evidence: json!({
                "actions_since_success": st.actions,
                "failed_checks": st.failed_checks,
                "since": since,
                "recent_action_event_ids": st.recent_actions.iter().map(Uuid::to_string).collect::<Vec<_>>(),
            }),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{command, edit, run};

    fn check() -> Stalled {
        Stalled::new(&CheckSettings::default())
    }

    #[test]
    fn thirty_actions_after_a_failed_build_without_success() {
        let c = check();
        let mut evs = vec![command(0, "cargo build", 101)];
        evs.extend((1..29).map(|i| edit(i, "src/a.rs")));
        assert!(run(&c, &evs).1.is_empty(), "29 actions");
        evs.push(edit(30, "src/b.rs"));
        let (_, found) = run(&c, &evs);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].evidence["actions_since_success"], 30);
        evs.push(command(31, "cargo build", 0));
        assert!(run(&c, &evs).1.is_empty(), "a success resolves it");
    }

    #[test]
    fn never_verifying_is_not_judged() {
        let c = check();
        let evs: Vec<_> = (0..100).map(|i| edit(i, "src/a.rs")).collect();
        assert!(run(&c, &evs).1.is_empty());
    }
}
