//! `high_error_density`: most of the session's recent events are failures.
//!
//! Over the last `error_density_window` events (default 20, by event
//! time): raised when the window holds at least `error_density_min_events`
//! (10) events and the failing share is at least
//! `error_density_threshold` (0.5); critical from `error_density_critical`
//! (0.8). An open insight holds until the share drops below
//! `error_density_clear` (0.3), so a storm hovering around the threshold
//! raises once instead of flapping. One per session (key `session`).

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use achilles_core::config::CheckSettings;

use super::{round3, Check, EvalCtx, Finding, Severity};
use crate::observe::Observed;

pub struct ErrorDensity {
    window: usize,
    min_events: usize,
    threshold: f64,
    clear: f64,
    critical: f64,
}

impl ErrorDensity {
    pub fn new(c: &CheckSettings) -> Self {
        Self {
            window: c.error_density_window.max(1),
            min_events: c.error_density_min_events,
            threshold: c.error_density_threshold,
            clear: c.error_density_clear.min(c.error_density_threshold),
            critical: c.error_density_critical,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// (event time, id, failed), oldest first.
    recent: VecDeque<(i64, Uuid, bool)>,
}

impl Check for ErrorDensity {
    const TYPE: &'static str = "high_error_density";
    type State = State;

    fn observe(&self, st: &mut State, ev: &Observed, _now: i64) {
        // Kept in event-time order, so a slightly late event lands where
        // it belongs; one older than the whole full window falls out.
        let at = st
            .recent
            .partition_point(|(t, id, _)| (*t, *id) <= (ev.t, ev.id));
        st.recent.insert(at, (ev.t, ev.id, ev.failure));
        while st.recent.len() > self.window {
            st.recent.pop_front();
        }
    }

    fn evaluate(&self, st: &State, ctx: &EvalCtx<'_>) -> Vec<Finding> {
        let n = st.recent.len();
        if self.min_events == 0 || n < self.min_events {
            return Vec::new();
        }
        let failures = st.recent.iter().filter(|r| r.2).count();
        let density = failures as f64 / n as f64;
        let bar = if ctx.is_open("session") {
            self.clear
        } else {
            self.threshold
        };
        if density < bar {
            return Vec::new();
        }
        let ids: Vec<String> = st
            .recent
            .iter()
            .rev()
            .filter(|r| r.2)
            .take(10)
            .map(|r| r.1.to_string())
            .collect();
        vec![Finding {
            dedup_key: "session".into(),
            severity: if density >= self.critical {
                Severity::Critical
            } else {
                Severity::Warning
            },
            title: format!("High error density: {failures} of the last {n} events failed"),
            detail: format!(
                "{:.0}% of the session's last {n} events are failures (raised at {:.0}%, resolved below {:.0}%).",
                density * 100.0,
                self.threshold * 100.0,
                self.clear * 100.0
            ),
            evidence: json!({
                "window_events": n,
                "failures": failures,
                "density": round3(density),
                "recent_failure_event_ids": ids,
            }),
        }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{command, error, run};

    fn check() -> ErrorDensity {
        ErrorDensity::new(&CheckSettings::default())
    }

    #[test]
    fn a_storm_is_found_once_enough_events_are_in_the_window() {
        let c = check();
        let few: Vec<_> = (0..9).map(|i| error(i, None, "boom")).collect();
        assert!(run(&c, &few).1.is_empty(), "fewer than 10 events");
        let storm: Vec<_> = (0..10).map(|i| error(i, None, "boom")).collect();
        let (_, found) = run(&c, &storm);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].dedup_key, "session");
        assert_eq!(found[0].severity, Severity::Critical);
        assert_eq!(found[0].evidence["failures"], 10);
    }

    #[test]
    fn healthy_sessions_are_quiet() {
        let c = check();
        let mut evs: Vec<_> = (0..30).map(|i| command(i, "ls", 0)).collect();
        evs.extend((30..34).map(|i| error(i, None, "boom")));
        assert!(run(&c, &evs).1.is_empty(), "4 of 20 failing");
    }

    #[test]
    fn hysteresis_holds_an_open_insight_until_below_the_clear_level() {
        let c = check();
        // Ten failures: raised.
        let mut evs: Vec<_> = (0..10).map(|i| error(i, None, "boom")).collect();
        assert_eq!(run(&c, &evs).1.len(), 1);
        // Fourteen successes push four failures out: 6 of 20 = 0.3, held.
        evs.extend((10..24).map(|i| command(i, "ls", 0)));
        assert_eq!(run(&c, &evs).1.len(), 1);
        // One more: 5 of 20 = 0.25, below 0.3: cleared.
        evs.push(command(24, "ls", 0));
        assert!(run(&c, &evs).1.is_empty());
        // Without the open insight, 0.3 would not have raised it.
        let fresh: Vec<_> = (0..14)
            .map(|i| command(i, "ls", 0))
            .chain((14..20).map(|i| error(i, None, "boom")))
            .collect();
        assert!(run(&c, &fresh).1.is_empty());
    }

    #[test]
    fn late_events_take_their_place_and_old_ones_fall_out() {
        let c = check();
        let mut st = State::default();
        for i in (0..25).rev() {
            let e = error(i, None, "boom");
            Check::observe(&c, &mut st, &e, 24 * crate::checks::test_support::SEC);
        }
        assert_eq!(st.recent.len(), 20);
        assert!(st
            .recent
            .iter()
            .zip(st.recent.iter().skip(1))
            .all(|(a, b)| a.0 <= b.0));
    }
}
