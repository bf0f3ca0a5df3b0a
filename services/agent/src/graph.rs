//! The evaluation graph of light mode, in plain Rust:
//!
//! ```text
//!                        ┌─▶ error_density ─┐
//!  event ─▶ Observed ────┼─▶ churn ─────────┤
//!                        ├─▶ command_loop ──┼─▶ findings ─▶ reconcile ─▶ decisions
//!                        ├─▶ stalled ───────┤   per check    against the   raise, update,
//!                        └─▶ runaway_cost ──┘                open ones     escalate, resolve
//! ```
//!
//! Each event is folded into every check's state, every check is evaluated,
//! and [`reconcile`] compares the findings of each check with that check's
//! open insights: a new finding raises an insight, a finding for an open
//! one refreshes it in place (and escalates it if the severity went up),
//! and an open insight without a finding is resolved. Checks are independent of each
//! other, which is what keeps adding one a one-file change.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};
use uuid::Uuid;

use achilles_core::config::CheckSettings;

use crate::checks::{registry, AnyState, EvalCtx, Finding, Node, Severity};
use crate::observe::Observed;

/// An insight that is open in a session, as light mode remembers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct OpenInsight {
    pub insight_type: String,
    pub dedup_key: String,
    pub severity: Severity,
    pub title: String,
    pub detail: String,
    pub evidence: Value,
    /// Event times, microseconds.
    pub raised_at: i64,
    pub last_seen_at: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Raised,
    /// Still holds, with a higher severity. (Still holding at the same or a
    /// lower severity only refreshes the open insight in the session's
    /// state: evidence, title, last-seen time.)
    Escalated,
    Resolved,
}

/// What happened to one insight at one event.
#[derive(Clone, Debug, PartialEq)]
pub struct Decision {
    pub change: Change,
    pub insight: OpenInsight,
    /// Event time of the resolution, for [`Change::Resolved`].
    pub resolved_at: Option<i64>,
}

/// The stored form of a session's light-mode state (`consumer_state.state`).
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
struct Stored {
    tenant: String,
    events: i64,
    max_t: Option<i64>,
    ended: bool,
    open: Vec<OpenInsight>,
    checks: BTreeMap<String, Value>,
}

/// One session's state while a batch is applied.
pub struct Session {
    pub tenant: String,
    /// Distinct events applied.
    pub events: i64,
    /// Newest event time seen (microseconds): the checks' "now".
    pub max_t: Option<i64>,
    pub ended: bool,
    pub open: Vec<OpenInsight>,
    states: Vec<AnyState>,
}

pub struct Graph {
    nodes: Vec<Box<dyn Node>>,
}

impl Graph {
    pub fn new(nodes: Vec<Box<dyn Node>>) -> Self {
        Self { nodes }
    }

    pub fn from_settings(c: &CheckSettings) -> Self {
        Self::new(registry(c))
    }

    /// A new session's state.
    pub fn fresh(&self) -> Session {
        Session {
            tenant: String::new(),
            events: 0,
            max_t: None,
            ended: false,
            open: Vec::new(),
            states: self.nodes.iter().map(|n| n.fresh()).collect(),
        }
    }

    /// A copy of a session's state.
    pub fn copy(&self, s: &Session) -> Session {
        Session {
            tenant: s.tenant.clone(),
            events: s.events,
            max_t: s.max_t,
            ended: s.ended,
            open: s.open.clone(),
            states: self
                .nodes
                .iter()
                .zip(&s.states)
                .map(|(n, st)| n.copy(st))
                .collect(),
        }
    }

    /// A session's state from its stored JSON; unreadable is an error,
    /// never a silently empty state.
    pub fn load(&self, stored: &str) -> Result<Session, String> {
        let s: Stored = serde_json::from_str(stored).map_err(|e| e.to_string())?;
        self.restore(s)
    }

    fn restore(&self, s: Stored) -> Result<Session, String> {
        let states = self
            .nodes
            .iter()
            .map(|n| n.load(s.checks.get(n.insight_type())))
            .collect::<Result<_, _>>()?;
        Ok(Session {
            tenant: s.tenant,
            events: s.events,
            max_t: s.max_t,
            ended: s.ended,
            open: s.open,
            states,
        })
    }

    pub fn save(&self, s: &Session) -> String {
        let stored = Stored {
            tenant: s.tenant.clone(),
            events: s.events,
            max_t: s.max_t,
            ended: s.ended,
            open: s.open.clone(),
            checks: self
                .nodes
                .iter()
                .zip(&s.states)
                .map(|(n, st)| (n.insight_type().to_owned(), n.save(st)))
                .collect(),
        };
        // Strings, numbers and JSON values only: serde_json has no error for
        // them.
        serde_json::to_string(&stored).unwrap_or_default()
    }

    /// Folds one event into the session and returns what changed.
    pub fn step(&self, s: &mut Session, ev: &Observed) -> Vec<Decision> {
        s.events += 1;
        let now = s.max_t.map_or(ev.t, |m| m.max(ev.t));
        s.max_t = Some(now);
        let mut out = Vec::new();
        for (node, st) in self.nodes.iter().zip(s.states.iter_mut()) {
            node.observe(st, ev, now);
            let kind = node.insight_type();
            let open: BTreeSet<String> = s
                .open
                .iter()
                .filter(|o| o.insight_type == kind)
                .map(|o| o.dedup_key.clone())
                .collect();
            let findings = node.evaluate(st, &EvalCtx { now, open: &open });
            out.extend(reconcile(kind, findings, &mut s.open, now));
        }
        out
    }
}

/// Compares one check's findings with its open insights at event time `t`.
pub fn reconcile(
    kind: &str,
    findings: Vec<Finding>,
    open: &mut Vec<OpenInsight>,
    t: i64,
) -> Vec<Decision> {
    let mut out = Vec::new();
    let mut held: BTreeSet<String> = BTreeSet::new();
    for f in findings {
        if !held.insert(f.dedup_key.clone()) {
            continue; // a check reporting one key twice: the first wins
        }
        match open
            .iter_mut()
            .find(|o| o.insight_type == kind && o.dedup_key == f.dedup_key)
        {
            Some(o) => {
                let escalated = f.severity > o.severity;
                o.severity = f.severity;
                o.title = f.title;
                o.detail = f.detail;
                o.evidence = f.evidence;
                o.last_seen_at = t;
                // A plain refresh is not a decision: the caller writes the
                // open insights' final state once per batch. Emitting (and
                // cloning) one per event per open insight was a quarter of
                // light mode's CPU.
                if escalated {
                    out.push(Decision {
                        change: Change::Escalated,
                        insight: o.clone(),
                        resolved_at: None,
                    });
                }
            }
            None => {
                let o = OpenInsight {
                    insight_type: kind.to_owned(),
                    dedup_key: f.dedup_key,
                    severity: f.severity,
                    title: f.title,
                    detail: f.detail,
                    evidence: f.evidence,
                    raised_at: t,
                    last_seen_at: t,
                };
                open.push(o.clone());
                out.push(Decision {
                    change: Change::Raised,
                    insight: o,
                    resolved_at: None,
                });
            }
        }
    }
    let mut i = 0;
    while i < open.len() {
        if open[i].insight_type == kind && !held.contains(&open[i].dedup_key) {
            let o = open.remove(i);
            out.push(Decision {
                change: Change::Resolved,
                insight: o,
                resolved_at: Some(t),
            });
        } else {
            i += 1;
        }
    }
    out
}

/// The insight's id: a function of (session, type, key), so every
/// instance, replay and re-raise of one insight agrees on it (UUID
/// version 8, from SHA-256).
pub fn insight_id(session: Uuid, kind: &str, key: &str) -> Uuid {
    let mut h = Sha256::new();
    h.update(b"achilles-insight-v1\n");
    h.update(session.as_bytes());
    h.update(kind.as_bytes());
    h.update(b"\n");
    h.update(key.as_bytes());
    let digest = h.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
#[path = "graph_tests.rs"]
mod tests;
