//! Per-session state and the rules that update it.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use achilles_core::model::{Actor, Event, Payload, SessionEnd, SessionStart};

use super::failure::{failure_info, names, FailureInfo, Naming};
use super::summary::Counters;
use super::EngineConfig;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MatchKind {
    SameFile,
    AnyFailure,
}

impl MatchKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::SameFile => "same_file",
            Self::AnyFailure => "any_failure",
        }
    }
}

/// An induced-error candidate.
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

/// A correlation closed by a later success on the same file.
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
    pub correlations: Vec<Correlation>,
    pub fixes: Vec<Fix>,
    pub occurrence: Option<Occurrence>,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct EditRef {
    id: Uuid,
    path: String,
    t: i64,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct FailureRef {
    id: Uuid,
    t: i64,
    file: Option<String>,
    text: String,
}

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct SuccessRef {
    id: Uuid,
    t: i64,
}

/// A correlation that a later success may still close (or close earlier).
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
struct OpenCorrelation {
    cause: Uuid,
    effect: Uuid,
    path: String,
    effect_t: i64,
    fixed_at: Option<i64>,
    /// Breaks ties between successes at the same instant, so the chosen fix
    /// never depends on arrival order.
    #[serde(default)]
    fixed_by: Option<Uuid>,
}

/// What kind of event arrived, for the incremental fix update.
#[derive(Clone, Copy)]
enum Trigger<'a> {
    Success(i64, Uuid),
    Edit(&'a str, i64),
    Other,
}

/// Everything the processor remembers about one session. Serialised into
/// `consumer_state.state` with every batch that changes it.
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
    edits: Vec<EditRef>,
    failures: Vec<FailureRef>,
    successes: Vec<SuccessRef>,
    open: Vec<OpenCorrelation>,
}

fn is_success(p: &Payload) -> bool {
    match p {
        Payload::Command(c) => c.exit_code == Some(0),
        Payload::TestRun(t) => t.failed == 0 && t.passed > 0,
        _ => false,
    }
}

/// Confidence that an edit caused a failure: by how the failure names the
/// edited file, decaying linearly to half at the edge of the window.
pub fn confidence(naming: Option<Naming>, gap_us: i64, window_us: i64) -> f64 {
    let base = match naming {
        Some(Naming::FileField) => 0.9,
        Some(Naming::Path) => 0.8,
        Some(Naming::BaseName) => 0.6,
        None => 0.3,
    };
    let decay = 1.0 - 0.5 * (gap_us as f64 / window_us.max(1) as f64).clamp(0.0, 1.0);
    (base * decay * 1000.0).round() / 1000.0
}

impl SessionState {
    pub fn apply_start(&mut self, s: &SessionStart) {
        self.tenant = s.tenant.to_string();
        self.started_at = Some(s.started_at.timestamp_micros());
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
        let info = failure_info(&ev.payload);
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
            fixes: Vec::new(),
            occurrence,
        };
        if lateness == Lateness::TooLate {
            return fx;
        }
        self.max_t = Some(self.max_t.map_or(t, |m| m.max(t)));

        match (&ev.payload, ev.actor, info) {
            (Payload::FileEdit(edit), Actor::Agent, _) => {
                let e = EditRef {
                    id: ev.id.as_uuid(),
                    path: edit.path.clone(),
                    t,
                };
                for f in &self.failures {
                    if let Some(c) = pair(&e, f, cfg) {
                        fx.correlations.push(c);
                    }
                }
                self.edits.push(e);
            }
            (_, _, Some(i)) => {
                let f = FailureRef {
                    id: ev.id.as_uuid(),
                    t,
                    file: i.file,
                    text: i.text,
                };
                for e in &self.edits {
                    if let Some(c) = pair(e, &f, cfg) {
                        fx.correlations.push(c);
                    }
                }
                self.failures.push(f);
            }
            (p, _, None) if is_success(p) => self.successes.push(SuccessRef {
                id: ev.id.as_uuid(),
                t,
            }),
            _ => {}
        }
        for c in &fx.correlations {
            self.open.push(OpenCorrelation {
                cause: c.cause,
                effect: c.effect,
                path: c.file_path.clone(),
                effect_t: c.effect_at,
                fixed_at: None,
                fixed_by: None,
            });
        }
        let trigger = match (&ev.payload, ev.actor) {
            (Payload::FileEdit(edit), Actor::Agent) => Trigger::Edit(edit.path.as_str(), t),
            (p, _) if is_success(p) => Trigger::Success(t, ev.id.as_uuid()),
            _ => Trigger::Other,
        };
        let first_new = self.open.len() - fx.correlations.len();
        fx.fixes = self.refresh_fixes(cfg, trigger, first_new);
        self.prune(cfg);
        fx
    }

    /// Updates the earliest fix of open correlations; returns the ones that
    /// changed. A fix of correlation (E, F) on path P is the earliest success
    /// S (ties broken by id) with F.t < S.t <= F.t + fix_window such that the
    /// agent edited P again at some E2 with F.t < E2.t <= S.t, within the
    /// correlation window before S.
    ///
    /// Incremental: a qualifying (S, E2) pair is examined when the later of
    /// S, E2 and the correlation arrives, which visits every pair a full
    /// recomputation would, at a fraction of the cost (a full pass per event
    /// was the processor's hottest loop under load).
    fn refresh_fixes(
        &mut self,
        cfg: &EngineConfig,
        trigger: Trigger<'_>,
        first_new: usize,
    ) -> Vec<Fix> {
        let mut changed = Vec::new();
        let (edits, successes) = (&self.edits, &self.successes);
        let qualifies = |c: &OpenCorrelation, s_t: i64, e2: i64| {
            s_t > c.effect_t
                && s_t <= c.effect_t + cfg.fix_window_us
                && e2 > c.effect_t
                && e2 <= s_t
                && s_t - e2 <= cfg.window_us
        };
        for (i, c) in self.open.iter_mut().enumerate() {
            let mut best: Option<(i64, Uuid)> = None;
            let mut consider = |cand: (i64, Uuid)| {
                if best.is_none_or(|b| cand < b) {
                    best = Some(cand);
                }
            };
            if i >= first_new {
                // A new correlation: every success and re-edit in state.
                for s in successes {
                    if edits
                        .iter()
                        .any(|e| e.path == c.path && qualifies(c, s.t, e.t))
                    {
                        consider((s.t, s.id));
                    }
                }
            } else {
                match trigger {
                    Trigger::Success(s_t, s_id)
                        if edits
                            .iter()
                            .any(|e| e.path == c.path && qualifies(c, s_t, e.t)) =>
                    {
                        consider((s_t, s_id));
                    }
                    Trigger::Edit(path, e2) if path == c.path => {
                        for s in successes.iter().filter(|s| qualifies(c, s.t, e2)) {
                            consider((s.t, s.id));
                        }
                    }
                    _ => {}
                }
            }
            let Some((t, id)) = best else { continue };
            let current = c.fixed_at.zip(c.fixed_by);
            if current.is_none_or(|cur| (t, id) < cur) {
                c.fixed_at = Some(t);
                c.fixed_by = Some(id);
                changed.push(Fix {
                    cause: c.cause,
                    effect: c.effect,
                    fixed_by: id,
                    fixed_at: t,
                });
            }
        }
        changed
    }

    /// Forgets what no on-time event can pair with any more. The state is
    /// written back with every batch that touches the session, so keeping
    /// only what can still matter is what keeps that write small.
    ///
    /// Any future event that is correlated has `t >= max - lateness` (`on`
    /// below; `max` only grows). From the rules:
    /// - a failure pairs with a future edit E only if `F.t >= E.t >= on`;
    /// - a success closes a correlation only with a re-edit E2 `<= S.t`, so
    ///   a stored success matters only to a future edit: `S.t >= on`;
    /// - an edit pairs with a future failure, or is the re-edit of a future
    ///   success, only if `E.t >= on - window`;
    /// - a correlation can get a fix only from a success `S.t >= on` with
    ///   `S.t <= F.t + fix_window`, and only an earlier one than its
    ///   current fix (ties by id): fixed before `on`, or too old, it is final.
    fn prune(&mut self, cfg: &EngineConfig) {
        let Some(max) = self.max_t else { return };
        let on = max - cfg.lateness_us;
        self.edits.retain(|e| e.t >= on - cfg.window_us);
        self.failures.retain(|f| f.t >= on);
        self.successes.retain(|s| s.t >= on);
        self.open.retain(|c| {
            c.effect_t >= on - cfg.fix_window_us && c.fixed_at.is_none_or(|at| at >= on)
        });
    }

    pub fn is_ended(&self) -> bool {
        self.ended_at.is_some()
    }
}

/// The correlation of an edit and a failure, if they are within the window
/// in the right order.
fn pair(e: &EditRef, f: &FailureRef, cfg: &EngineConfig) -> Option<Correlation> {
    let gap = f.t - e.t;
    if gap < 0 || gap > cfg.window_us {
        return None;
    }
    let info = FailureInfo {
        file: f.file.clone(),
        text: f.text.clone(),
        cluster_message: String::new(),
    };
    let naming = names(&info, &e.path);
    // Every agent edit of the last minutes precedes every failure; without
    // the failure naming the file, only an edit shortly before it is a
    // plausible cause (and pairing all of them made ~25 rows per failure).
    if naming.is_none() && gap > cfg.unnamed_window_us {
        return None;
    }
    Some(Correlation {
        cause: e.id,
        effect: f.id,
        match_kind: if naming.is_some() {
            MatchKind::SameFile
        } else {
            MatchKind::AnyFailure
        },
        file_path: e.path.clone(),
        gap_ms: gap / 1000,
        confidence: confidence(naming, gap, cfg.window_us),
        cause_at: e.t,
        effect_at: f.t,
    })
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
