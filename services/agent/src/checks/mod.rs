//! Light-mode checks: each one a small state machine over a session's
//! events that says which conditions hold *now*.
//!
//! A check owns its state (a serde type, stored in the session's JSON state
//! under the check's insight type), folds events into it with
//! [`Check::observe`] and reports the conditions that hold with
//! [`Check::evaluate`]. It never decides whether to raise, update or
//! resolve an insight: [`crate::graph`] does that for every check alike, by
//! comparing findings with the insights already open. So adding a check is
//! one new file here plus one line in [`registry`].

pub mod churn;
pub mod command_loop;
pub mod error_density;
pub mod runaway_cost;
pub mod stalled;

use std::any::Any;
use std::borrow::Cow;
use std::collections::BTreeSet;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use achilles_core::config::CheckSettings;
use achilles_core::db::index_key;

use crate::observe::Observed;

/// How urgent an insight is. Ordered: a higher severity is an escalation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    Info,
    Warning,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Info => "info",
            Self::Warning => "warning",
            Self::Critical => "critical",
        }
    }
}

/// A condition that holds now.
#[derive(Clone, Debug, PartialEq)]
pub struct Finding {
    /// What makes two findings of one check the same insight (a file, a
    /// command; `session` when there is one per session).
    pub dedup_key: String,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    /// Event ids and counts; keep it small (a few ids, not all of them).
    pub evidence: Value,
}

/// What a check may know when it evaluates.
pub struct EvalCtx<'a> {
    /// Event time of the session's newest event, in microseconds.
    pub now: i64,
    /// Dedup keys of this check's insights that are open, so a check can
    /// hold an open insight on a looser condition than it raises one
    /// (hysteresis against flapping).
    pub open: &'a BTreeSet<String>,
}

impl EvalCtx<'_> {
    /// `key` as the check knows it (a raw path or command); open keys are
    /// stored bounded, see [`achilles_core::db::index_key`].
    pub fn is_open(&self, key: &str) -> bool {
        self.open.contains(index_key(key).as_ref())
    }
}

/// One check. Implementations are pure: no I/O, no clock but event time.
pub trait Check: Send + Sync + 'static {
    /// The insight type it raises (`insights.type`), also the name of its
    /// slot in the stored session state.
    const TYPE: &'static str;
    type State: Clone + Default + Serialize + DeserializeOwned + Send + Sync + 'static;

    /// Folds one event into the state; `now` is the session's newest event
    /// time (for pruning what no longer matters).
    fn observe(&self, state: &mut Self::State, ev: &Observed, now: i64);

    /// The conditions that hold now.
    fn evaluate(&self, state: &Self::State, ctx: &EvalCtx<'_>) -> Vec<Finding>;
}

/// Boxed state of one check for one session.
pub type AnyState = Box<dyn Any + Send + Sync>;

/// The object-safe face of a [`Check`], so the graph can hold a list of
/// different checks. Implemented for every `Check`.
pub trait Node: Send + Sync {
    fn insight_type(&self) -> &'static str;
    /// Restores the state from its stored JSON; a missing slot (a check
    /// added since the state was written) starts afresh, an unreadable one
    /// is an error.
    fn load(&self, stored: Option<&Value>) -> Result<AnyState, String>;
    fn fresh(&self) -> AnyState;
    fn copy(&self, state: &AnyState) -> AnyState;
    fn save(&self, state: &AnyState) -> Value;
    fn observe(&self, state: &mut AnyState, ev: &Observed, now: i64);
    fn evaluate(&self, state: &AnyState, ctx: &EvalCtx<'_>) -> Vec<Finding>;
}

impl<C: Check> Node for C {
    fn insight_type(&self) -> &'static str {
        C::TYPE
    }

    fn fresh(&self) -> AnyState {
        Box::new(C::State::default())
    }

    fn copy(&self, state: &AnyState) -> AnyState {
        // The graph only ever holds states this check made.
        match state.downcast_ref::<C::State>() {
            Some(s) => Box::new(s.clone()),
            None => Box::new(C::State::default()),
        }
    }

    fn load(&self, stored: Option<&Value>) -> Result<AnyState, String> {
        let st: C::State = match stored {
            None => C::State::default(),
            Some(v) => C::State::deserialize(v).map_err(|e| format!("{}: {e}", C::TYPE))?,
        };
        Ok(Box::new(st))
    }

    fn save(&self, state: &AnyState) -> Value {
        // States are plain structs of numbers, strings and ids: they
        // always serialise.
        state
            .downcast_ref::<C::State>()
            .and_then(|s| serde_json::to_value(s).ok())
            .unwrap_or(Value::Null)
    }

    fn observe(&self, state: &mut AnyState, ev: &Observed, now: i64) {
        // The graph only ever hands a check the state it loaded itself.
        if let Some(s) = state.downcast_mut::<C::State>() {
            Check::observe(self, s, ev, now);
        }
    }

    fn evaluate(&self, state: &AnyState, ctx: &EvalCtx<'_>) -> Vec<Finding> {
        let mut found = state
            .downcast_ref::<C::State>()
            .map(|s| Check::evaluate(self, s, ctx))
            .unwrap_or_default();
        // Keys made of producer text (a file path, a command line) can be
        // kilobytes long; the insights index takes a bounded key.
        for f in &mut found {
            if let Cow::Owned(bounded) = index_key(&f.dedup_key) {
                f.dedup_key = bounded;
            }
        }
        found
    }
}

/// Every check, configured. Register a new check here.
pub fn registry(cfg: &CheckSettings) -> Vec<Box<dyn Node>> {
    vec![
        Box::new(error_density::ErrorDensity::new(cfg)),
        Box::new(churn::Churn::new(cfg)),
        Box::new(command_loop::CommandLoop::new(cfg)),
        Box::new(stalled::Stalled::new(cfg)),
        Box::new(runaway_cost::RunawayCost::new(cfg)),
    ]
}

/// Rounds to three decimals, for ratios shown to humans.
pub(crate) fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Severity for a count against a threshold: critical at twice it.
pub(crate) fn scaled(count: f64, threshold: f64) -> Severity {
    if count >= 2.0 * threshold {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

#[cfg(test)]
pub(crate) mod test_support {
    //! Building observed events for the checks' unit tests.
    use super::*;
    use achilles_core::model::EventKind;
    use uuid::Uuid;

    pub const SEC: i64 = 1_000_000;

    pub fn ev(t_secs: i64, kind: EventKind) -> Observed {
        Observed {
            id: Uuid::now_v7(),
            t: t_secs * SEC,
            kind,
            is_action: !matches!(kind, EventKind::Error | EventKind::UserMessage),
            failure: false,
            code_failure: false,
            success: false,
            verification: false,
            edited_file: None,
            failure_file: None,
            failure_text: String::new(),
            command: None,
            tokens: 0,
            cost_usd: 0.0,
        }
    }

    pub fn edit(t: i64, path: &str) -> Observed {
        Observed {
            edited_file: Some(path.into()),
            ..ev(t, EventKind::FileEdit)
        }
    }

    pub fn error(t: i64, file: Option<&str>, text: &str) -> Observed {
        Observed {
            failure: true,
            code_failure: true,
            failure_file: file.map(Into::into),
            failure_text: text.into(),
            ..ev(t, EventKind::Error)
        }
    }

    pub fn command(t: i64, cmd: &str, exit: i32) -> Observed {
        Observed {
            command: Some(cmd.into()),
            verification: true,
            success: exit == 0,
            failure: exit != 0,
            code_failure: exit != 0,
            failure_text: cmd.into(),
            ..ev(t, EventKind::Command)
        }
    }

    /// Folds `events` in and evaluates after each, the way the graph does,
    /// treating everything found so far as open.
    pub fn run<C: Check>(c: &C, events: &[Observed]) -> (C::State, Vec<Finding>) {
        let mut st = C::State::default();
        let mut open = BTreeSet::new();
        let mut last = Vec::new();
        for e in events {
            c.observe(&mut st, e, e.t);
            last = c.evaluate(
                &st,
                &EvalCtx {
                    now: e.t,
                    open: &open,
                },
            );
            open = last.iter().map(|f| f.dedup_key.clone()).collect();
        }
        (st, last)
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::*;
    use super::*;
    use achilles_core::db::MAX_INDEX_KEY_BYTES;

    /// A ~4 KiB path used to make the insights upsert exceed Postgres's
    /// B-tree row limit, which failed the batch forever.
    #[test]
    fn long_paths_and_commands_give_bounded_dedup_keys() {
        let cfg = CheckSettings::default();
        let path = format!("src/{}.rs", "deep/".repeat(800));
        let cmd = format!("cargo test {}", "-p crate ".repeat(400));
        let mut events = Vec::new();
        for i in 0..3 {
            let t = i * 10;
            events.extend([
                edit(t, &path),
                error(t + 1, Some(&path), "mismatched types"),
                edit(t + 2, &path),
                command(t + 3, "cargo build", 0),
            ]);
        }
        events.extend((0..3).map(|i| command(100 + i, &cmd, 1)));
        let mut found = Vec::new();
        for node in registry(&cfg) {
            let mut st = node.fresh();
            for e in &events {
                node.observe(&mut st, e, e.t);
            }
            let open = BTreeSet::new();
            let ctx = EvalCtx {
                now: events.last().map_or(0, |e| e.t),
                open: &open,
            };
            for f in node.evaluate(&st, &ctx) {
                found.push((node.insight_type(), f.dedup_key));
            }
        }
        let churn = found.iter().find(|(t, _)| *t == "agent_churn");
        let looping = found.iter().find(|(t, _)| *t == "command_loop");
        for (kind, key) in [churn, looping].into_iter().flatten() {
            assert!(key.len() <= MAX_INDEX_KEY_BYTES, "{kind}: {}", key.len());
        }
        assert!(churn.is_some() && looping.is_some(), "{found:?}");
        let open: BTreeSet<String> = [index_key(&path).into_owned()].into();
        let ctx = EvalCtx {
            now: 0,
            open: &open,
        };
        assert!(ctx.is_open(&path), "open keys are compared bounded");
    }
}
