//! Per-session state and the rules that update it.
//!
//! Attribution is a function of a failure and the edits and checks before
//! it ([`attribute`]); the state keeps what that function still needs and,
//! per stored failure, the rows it last emitted. An event that changes a
//! stored failure's answer (an edit or a passing check arriving late,
//! between an earlier edit and the failure) re-attributes it and emits the
//! difference: new or changed rows, and *retractions* of rows that no
//! longer hold. So the rows converge on the same set whatever the arrival
//! order within the allowed lateness.
//!
//! **Bounded.** Every list has a cap ([`Caps`]); past it the oldest
//! entries are dropped and `achilles_engine_state_truncated_total{what}`
//! counts them. The caps hold a session of thousands of edits and failures
//! per second in a few hundred KB, with work per event bounded by them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use achilles_core::metrics;
use achilles_core::model::{Actor, Event, Payload, SessionEnd, SessionStart};

use super::attribution::{
    attribute, name_matches, Claim, EditRef, Edits, FailureFacts, SuccessRef,
};
use super::checks::{self, Check};
use super::failure::failure_info;
use super::names;
use super::paths;
use super::summary::Counters;
use super::EngineConfig;

pub use super::attribution::MatchKind;

/// An induced-error row: `cause` (an agent edit) and `effect` (a failure).
/// `confidence >= 0.5` is a claim; below, a candidate.
#[derive(Clone, Debug, PartialEq)]
pub struct Correlation {
    pub cause: Uuid,
    pub effect: Uuid,
    pub match_kind: MatchKind,
    pub file_path: String,
    pub gap_ms: i64,
    pub confidence: f64,
    pub cause_at: i64,
    pub effect_at: i64,
}

/// A correlation closed by a later passing check.
#[derive(Clone, Debug, PartialEq)]
pub struct Fix {
    pub cause: Uuid,
    pub effect: Uuid,
    pub fixed_by: Uuid,
    pub fixed_at: i64,
}

/// A failing event's cluster assignment.
#[derive(Clone, Debug, PartialEq)]
pub struct Occurrence {
    pub message: String,
    pub t: i64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Lateness {
    OnTime,
    /// Older than the newest event, within the allowed lateness.
    Late,
    /// Beyond the allowed lateness: counted, not correlated.
    TooLate,
}

/// What applying one event produced.
#[derive(Debug)]
pub struct Effects {
    pub lateness: Lateness,
    /// New rows, or rows whose kind or confidence changed (upsert by
    /// (cause, effect)).
    pub correlations: Vec<Correlation>,
    /// Rows that no longer hold: delete (cause, effect).
    pub retracted: Vec<(Uuid, Uuid)>,
    pub fixes: Vec<Fix>,
    pub occurrence: Option<Occurrence>,
}

/// Per-session limits on what the state keeps.
pub struct Caps;

impl Caps {
    pub const EDITS: usize = 2_000;
    pub const FAILURES: usize = 500;
    pub const SUCCESSES: usize = 500;
    pub const OPEN: usize = 1_000;
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct FailureRef {
    #[serde(flatten)]
    facts: FailureFacts,
    /// The rows last emitted for it.
    #[serde(default)]
    claims: Vec<Claim>,
}

/// A correlation that a later passing check may still close (or close
/// earlier).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct OpenCorrelation {
    cause: Uuid,
    effect: Uuid,
    effect_t: i64,
    #[serde(default)]
    check: Option<(Check, String)>,
    /// The first edit (of any file) after the failure.
    #[serde(default)]
    repair_t: Option<i64>,
    fixed_at: Option<i64>,
    /// Breaks ties between checks at the same instant, so the chosen fix
    /// never depends on arrival order.
    #[serde(default)]
    fixed_by: Option<Uuid>,
}

/// Everything the processor remembers about one session. Serialised into
/// `consumer_state.state` with every batch that changes it; fields
/// added later default, so older states still load.
#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct SessionState {
    pub tenant: String,
    pub started_at: Option<i64>,
    pub ended_at: Option<i64>,
    pub end_status: Option<String>,
    /// Newest event time seen: the session's watermark is this minus the
    /// allowed lateness.
    pub max_t: Option<i64>,
    pub counters: Counters,
    /// The session's working directory, from the start's metadata.
    #[serde(default)]
    pub cwd: Option<String>,
    #[serde(default)]
    edits_by_file: Edits,
    /// Each edited file's path as the edits write it (rows show that).
    #[serde(default)]
    written: BTreeMap<String, String>,
    #[serde(default)]
    failures: Vec<FailureRef>,
    #[serde(default)]
    checks: Vec<SuccessRef>,
    #[serde(default)]
    open: Vec<OpenCorrelation>,
    /// The watermark at the last pruning: pruning walks the whole state,
    /// so it runs when the watermark moved a second on (or a cap is hit).
    #[serde(default)]
    pruned_at: i64,
}

/// Pruning runs when the watermark moved this far (or a cap is hit).
const PRUNE_EVERY_US: i64 = 1_000_000;

/// How soon after a failing check an error event counts as its diagnostic.
const SAME_RUN_US: i64 = 10_000_000;

/// Session start metadata keys naming the working directory, in order of
/// preference (absolute paths only).
pub const CWD_KEYS: &[&str] = &[
    "cwd",
    "working_directory",
    "workdir",
    "project_root",
    "repo_root",
    "workspace",
];

fn is_success(p: &Payload) -> bool {
    match p {
        Payload::Command(c) => c.exit_code == Some(0),
        Payload::TestRun(t) => t.failed == 0 && t.passed > 0,
        _ => false,
    }
}

/// The check a passing event is, if it is one.
fn passing_check(p: &Payload) -> Option<(Check, String)> {
    match p {
        Payload::Command(c) if c.exit_code == Some(0) => {
            checks::classify(&c.command).map(|k| (k, short(&c.command)))
        }
        Payload::TestRun(t) if is_success(p) => Some((Check::Test, short(&t.framework))),
        _ => None,
    }
}

/// Commands are kept for comparing runs only; long ones are cut.
fn short(s: &str) -> String {
    let mut end = s.len().min(256);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

fn truncated(what: &str, n: usize) {
    if n > 0 {
        metrics::ENGINE_TRUNCATED
            .with_label_values(&[what])
            .inc_by(n as u64);
    }
}

impl SessionState {
    pub fn apply_start(&mut self, s: &SessionStart) {
        self.tenant = s.tenant.to_string();
        self.started_at = Some(s.started_at.timestamp_micros());
        self.cwd = CWD_KEYS
            .iter()
            .filter_map(|k| s.metadata.get(*k)?.as_str())
            .find(|d| paths::is_absolute(&paths::normalise(d)))
            .map(paths::normalise);
    }

    pub fn apply_end(&mut self, e: &SessionEnd) {
        self.tenant = e.tenant.to_string();
        self.ended_at = Some(e.ended_at.timestamp_micros());
        self.end_status = Some(e.status.as_str().to_owned());
    }

    /// Applies one (deduplicated) event.
    pub fn apply_event(&mut self, ev: &Event, cfg: &EngineConfig) -> Effects {
        self.tenant = ev.tenant.to_string();
        let t = ev.occurred_at.timestamp_micros();
        // An event may say where it ran (`attributes.cwd`).
        let cwd = ev
            .attributes
            .get("cwd")
            .and_then(|v| v.as_str())
            .map(|d| paths::resolve(d, self.cwd.as_deref()))
            .or_else(|| self.cwd.clone());
        let info = failure_info(&ev.payload, cwd.as_deref());
        self.counters.add(ev, t);
        let occurrence = info.as_ref().map(|i| Occurrence {
            message: i.cluster_message.clone(),
            t,
        });
        let lateness = match self.max_t {
            Some(max) if t < max - cfg.lateness_us => Lateness::TooLate,
            Some(max) if t < max => Lateness::Late,
            _ => Lateness::OnTime,
        };
        let mut fx = Effects {
            lateness,
            correlations: Vec::new(),
            retracted: Vec::new(),
            fixes: Vec::new(),
            occurrence,
        };
        if lateness == Lateness::TooLate {
            return fx;
        }
        self.max_t = Some(self.max_t.map_or(t, |m| m.max(t)));
        let id = ev.id.as_uuid();
        match (&ev.payload, info) {
            // A system's edit (a formatter, a code generator) changes no
            // behaviour and is nobody's fault: it neither causes nor breaks
            // the chain.
            (Payload::FileEdit(_), _) if ev.actor == Actor::System => {}
            (Payload::FileEdit(edit), _) => {
                let path = paths::resolve(&edit.path, cwd.as_deref());
                let human = ev.actor != Actor::Agent;
                if !human {
                    self.written.insert(path.clone(), edit.path.clone());
                }
                self.add_edit(&path, EditRef { id, t, human });
                self.on_edit(&path, t, cfg, &mut fx);
            }
            (p, Some(i)) if !i.names.is_empty() => {
                let facts = FailureFacts {
                    id,
                    t,
                    names: i.names,
                    check: i.check.map(|(k, c)| (k, short(&c))),
                    environmental: i.environmental,
                    diagnostic: matches!(p, Payload::Error(_)),
                };
                let is_check = facts.check.is_some();
                self.failures.push(FailureRef {
                    facts,
                    claims: Vec::new(),
                });
                let last = self.failures.len() - 1;
                self.reattribute(last, cfg, &mut fx);
                if is_check {
                    // Diagnostics that arrived before their check.
                    let later: Vec<usize> = (0..self.failures.len())
                        .filter(|&k| {
                            let d = &self.failures[k].facts;
                            d.diagnostic && d.t >= t && d.t - t <= SAME_RUN_US
                        })
                        .collect();
                    for k in later {
                        self.reattribute(k, cfg, &mut fx);
                    }
                }
            }
            (p, None) => {
                if let Some((check, command)) = passing_check(p) {
                    let s = SuccessRef {
                        id,
                        t,
                        check,
                        command,
                    };
                    self.on_success(&s, cfg, &mut fx);
                    let at = self.checks.partition_point(|x| (x.t, x.id) < (t, id));
                    self.checks.insert(at, s);
                }
            }
            _ => {}
        }
        self.prune(cfg);
        fx
    }

    /// An error event reported just after a failing check (an agent
    /// runtime's diagnostic for it) is read as part of that check: it
    /// takes the check's kind and the files it names. The check is looked
    /// up whenever the diagnostic is attributed, so the order the two
    /// arrive in does not matter.
    fn with_run(&self, facts: &FailureFacts) -> FailureFacts {
        let mut out = facts.clone();
        if !facts.diagnostic {
            return out;
        }
        let run = self
            .failures
            .iter()
            .filter(|f| {
                f.facts.check.is_some()
                    && f.facts.t <= facts.t
                    && facts.t - f.facts.t <= SAME_RUN_US
            })
            .max_by_key(|f| (f.facts.t, f.facts.id));
        let Some(run) = run else { return out };
        out.check = run.facts.check.clone();
        out.environmental |= run.facts.environmental;
        for n in &run.facts.names {
            if out.names.len() < names::MAX_NAMES && !out.names.iter().any(|m| m.path == n.path) {
                out.names.push(n.clone());
            }
        }
        out
    }

    fn add_edit(&mut self, path: &str, e: EditRef) {
        let list = self.edits_by_file.entry(path.to_owned()).or_default();
        let at = list.partition_point(|x| (x.t, x.id) < (e.t, e.id));
        list.insert(at, e);
    }

    /// A new edit may change the answer for failures after it that name
    /// its file (or whose test it is the subject of), and may be the
    /// repair after an open correlation's failure.
    fn on_edit(&mut self, path: &str, t: i64, cfg: &EngineConfig, fx: &mut Effects) {
        let affected: Vec<usize> = (0..self.failures.len())
            .filter(|&i| {
                let f = &self.failures[i].facts;
                f.t >= t
                    && f.t - t <= cfg.window_us
                    && (f.diagnostic
                        || f.names.iter().any(|n| {
                            name_matches(n, path, &self.edits_by_file)
                                || paths::base_name(&n.path) == paths::base_name(path)
                                || paths::test_subject(&n.path).is_some()
                        }))
            })
            .collect();
        for i in affected {
            self.reattribute(i, cfg, fx);
        }
        for k in 0..self.open.len() {
            let c = &self.open[k];
            let earlier_repair = t > c.effect_t
                && t <= c.effect_t + cfg.fix_window_us
                && c.repair_t.is_none_or(|r| t < r);
            if earlier_repair {
                self.open[k].repair_t = Some(t);
                self.refresh_fix(k, cfg, fx);
            }
        }
    }

    /// A passing check may close open correlations, and may show that an
    /// earlier edit was already verified for failures after it.
    fn on_success(&mut self, s: &SuccessRef, cfg: &EngineConfig, fx: &mut Effects) {
        for c in &mut self.open {
            let qualifies = c.repair_t.is_some_and(|r| s.t > r)
                && s.t <= c.effect_t + cfg.fix_window_us
                && checks::covers(
                    (s.check, &s.command),
                    c.check.as_ref().map(|(k, cmd)| (*k, cmd.as_str())),
                );
            if qualifies
                && c.fixed_at
                    .zip(c.fixed_by)
                    .is_none_or(|cur| (s.t, s.id) < cur)
            {
                c.fixed_at = Some(s.t);
                c.fixed_by = Some(s.id);
                fx.fixes.push(Fix {
                    cause: c.cause,
                    effect: c.effect,
                    fixed_by: s.id,
                    fixed_at: s.t,
                });
            }
        }
        let affected: Vec<usize> = (0..self.failures.len())
            .filter(|&i| {
                let f = &self.failures[i];
                f.facts.t > s.t && f.claims.iter().any(|c| c.cause_t < s.t)
            })
            .collect();
        if !affected.is_empty() {
            // Re-attribution must see the new check.
            let at = self.checks.partition_point(|x| (x.t, x.id) < (s.t, s.id));
            self.checks.insert(at, s.clone());
            for i in affected {
                self.reattribute(i, cfg, fx);
            }
            self.checks.remove(at);
        }
    }

    /// Recomputes failure `i`'s rows and emits the difference.
    fn reattribute(&mut self, i: usize, cfg: &EngineConfig, fx: &mut Effects) {
        let f = &self.failures[i];
        let facts = self.with_run(&f.facts);
        let mut new = attribute(&facts, &self.edits_by_file, &self.checks, cfg);
        if new.len() >= super::attribution::MAX_PER_FAILURE {
            truncated("correlations_per_failure", 1);
        }
        new.sort_by_key(|c| c.cause);
        let (effect, effect_t) = (f.facts.id, f.facts.t);
        let check = facts.check.clone();
        let old = std::mem::take(&mut self.failures[i].claims);
        // A diagnostic's check may have arrived after it.
        for o in self.open.iter_mut().filter(|o| o.effect == effect) {
            o.check.clone_from(&check);
        }
        for o in &old {
            if !new.iter().any(|c| c.cause == o.cause) {
                fx.retracted.push((o.cause, effect));
                self.open
                    .retain(|x| !(x.cause == o.cause && x.effect == effect));
            }
        }
        for c in &new {
            let before = old.iter().find(|o| o.cause == c.cause);
            if before == Some(c) {
                continue;
            }
            fx.correlations.push(Correlation {
                cause: c.cause,
                effect,
                match_kind: c.kind,
                file_path: self.written.get(&c.path).unwrap_or(&c.path).clone(),
                gap_ms: (effect_t - c.cause_t) / 1000,
                confidence: c.confidence,
                cause_at: c.cause_t,
                effect_at: effect_t,
            });
            if before.is_none() {
                let repair_t = self.first_edit_after(effect_t, cfg);
                self.open.push(OpenCorrelation {
                    cause: c.cause,
                    effect,
                    effect_t,
                    check: check.clone(),
                    repair_t,
                    fixed_at: None,
                    fixed_by: None,
                });
                let k = self.open.len() - 1;
                self.refresh_fix(k, cfg, fx);
            }
        }
        self.failures[i].claims = new;
    }

    fn first_edit_after(&self, t: i64, cfg: &EngineConfig) -> Option<i64> {
        self.edits_by_file
            .values()
            .filter_map(|l| l.iter().find(|e| e.t > t).map(|e| e.t))
            .filter(|&e| e <= t + cfg.fix_window_us)
            .min()
    }

    /// The earliest passing check after the repair that covers the
    /// failure; emitted when it moves the fix earlier.
    fn refresh_fix(&mut self, k: usize, cfg: &EngineConfig, fx: &mut Effects) {
        let c = &self.open[k];
        let Some(r) = c.repair_t else { return };
        let best = self
            .checks
            .iter()
            .filter(|s| {
                s.t > r
                    && s.t <= c.effect_t + cfg.fix_window_us
                    && checks::covers(
                        (s.check, &s.command),
                        c.check.as_ref().map(|(k, cmd)| (*k, cmd.as_str())),
                    )
            })
            .map(|s| (s.t, s.id))
            .min();
        let Some((t, id)) = best else { return };
        if c.fixed_at.zip(c.fixed_by).is_none_or(|cur| (t, id) < cur) {
            let (cause, effect) = (c.cause, c.effect);
            fx.fixes.push(Fix {
                cause,
                effect,
                fixed_by: id,
                fixed_at: t,
            });
            self.open[k].fixed_at = Some(t);
            self.open[k].fixed_by = Some(id);
        }
    }

    /// Forgets what no on-time event can change any more, then enforces
    /// the caps. Any future event that is correlated has
    /// `t >= max - lateness` (`on`; `max` only grows). From the rules:
    /// - a failure is re-attributed only by an edit or check at or before
    ///   it: stored failures matter while `F.t >= on` (and a failing check
    ///   for `SAME_RUN` longer, for the diagnostics read with it);
    /// - a failure at `t >= on` reads edits and checks back to
    ///   `on - window`;
    /// - a correlation can get a fix only from a check `S.t >= on` with
    ///   `S.t <= F.t + fix_window`, and only an earlier one than its
    ///   current fix (ties by id): fixed before `on`, or too old, it is final.
    fn prune(&mut self, cfg: &EngineConfig) {
        let Some(max) = self.max_t else { return };
        let on = max - cfg.lateness_us;
        let over = self.failures.len() > Caps::FAILURES
            || self.checks.len() > Caps::SUCCESSES
            || self.open.len() > Caps::OPEN
            || self.edits_by_file.values().map(Vec::len).sum::<usize>() > Caps::EDITS;
        if on - self.pruned_at < PRUNE_EVERY_US && !over {
            return;
        }
        self.pruned_at = on;
        let horizon = on - cfg.window_us;
        self.edits_by_file.retain(|_, l| {
            l.retain(|e| e.t >= horizon);
            !l.is_empty()
        });
        let files = &self.edits_by_file;
        self.written.retain(|k, _| files.contains_key(k));
        self.checks.retain(|s| s.t >= horizon);
        // Kept a little longer: a diagnostic may still need its check.
        self.failures.retain(|f| f.facts.t >= on - SAME_RUN_US);
        self.open.retain(|c| {
            c.effect_t >= on - cfg.fix_window_us && c.fixed_at.is_none_or(|at| at >= on)
        });
        self.enforce_caps();
    }

    fn enforce_caps(&mut self) {
        let edits: usize = self.edits_by_file.values().map(Vec::len).sum();
        if edits > Caps::EDITS {
            // Drop the oldest tenth beyond the cap at once (amortised).
            let keep = Caps::EDITS * 9 / 10;
            let mut times: Vec<i64> = self
                .edits_by_file
                .values()
                .flat_map(|l| l.iter().map(|e| e.t))
                .collect();
            times.sort_unstable();
            let cut = times[edits - keep];
            let mut dropped = 0;
            self.edits_by_file.retain(|_, l| {
                let before = l.len();
                l.retain(|e| e.t >= cut);
                dropped += before - l.len();
                !l.is_empty()
            });
            truncated("edits", dropped);
            let files = &self.edits_by_file;
            self.written.retain(|k, _| files.contains_key(k));
        }
        truncated("failures", drop_oldest(&mut self.failures, Caps::FAILURES));
        truncated("checks", drop_oldest(&mut self.checks, Caps::SUCCESSES));
        truncated("open_correlations", drop_oldest(&mut self.open, Caps::OPEN));
    }

    pub fn is_ended(&self) -> bool {
        self.ended_at.is_some()
    }
}

/// Keeps the newest `cap` entries (entries are appended in arrival order,
/// close to time order); returns how many were dropped.
fn drop_oldest<T>(v: &mut Vec<T>, cap: usize) -> usize {
    if v.len() <= cap {
        return 0;
    }
    let n = v.len() - cap * 9 / 10;
    v.drain(..n);
    n
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
