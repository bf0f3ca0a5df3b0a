//! Per-session state and the rules that update it.

use std::collections::HashMap;

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
}

/// Everything the processor remembers about one session. Serialised into
/// `processor_sessions.state` with every batch that changes it.
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
            });
        }
        fx.fixes = self.refresh_fixes(cfg);
        self.prune(cfg);
        fx
    }

    /// Recomputes the earliest fix of every open correlation; returns the
    /// ones that changed. A fix of correlation (E, F) on path P is the
    /// earliest success S with F.t < S.t <= F.t + fix_window such that the
    /// agent edited P again at some E2 with F.t < E2.t <= S.t, within the
    /// correlation window before S.
    fn refresh_fixes(&mut self, cfg: &EngineConfig) -> Vec<Fix> {
        let mut edits_by_path: HashMap<&str, Vec<i64>> = HashMap::new();
        for e in &self.edits {
            edits_by_path.entry(e.path.as_str()).or_default().push(e.t);
        }
        let mut changed = Vec::new();
        for c in &mut self.open {
            let Some(edit_times) = edits_by_path.get(c.path.as_str()) else {
                continue;
            };
            let best = self
                .successes
                .iter()
                .filter(|s| s.t > c.effect_t && s.t <= c.effect_t + cfg.fix_window_us)
                .filter(|s| {
                    edit_times
                        .iter()
                        .any(|&e2| e2 > c.effect_t && e2 <= s.t && s.t - e2 <= cfg.window_us)
                })
                .min_by_key(|s| (s.t, s.id));
            if let Some(s) = best {
                if c.fixed_at.is_none_or(|f| s.t < f) {
                    c.fixed_at = Some(s.t);
                    changed.push(Fix {
                        cause: c.cause,
                        effect: c.effect,
                        fixed_by: s.id,
                        fixed_at: s.t,
                    });
                }
            }
        }
        changed
    }

    /// Forgets what no on-time event can pair with any more.
    fn prune(&mut self, cfg: &EngineConfig) {
        let Some(max) = self.max_t else { return };
        let horizon = max - cfg.horizon_us();
        self.edits.retain(|e| e.t >= horizon);
        self.failures.retain(|f| f.t >= horizon);
        self.successes.retain(|s| s.t >= horizon);
        let fixable = max - cfg.fix_window_us - cfg.lateness_us;
        self.open.retain(|c| c.effect_t >= fixable);
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
