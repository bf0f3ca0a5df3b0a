//! `agent_churn`: the agent keeps breaking and fixing the same file.
//!
//! Per file the agent edited, a small state machine over the stream:
//! a code failure (error, failing command or test run) *breaks* every
//! edited file it names, or, when it names none, the file edited last; an
//! agent edit of a broken file *re-edits* it; the next success (command
//! exit 0 or passing test run) *fixes* it, which completes one break/fix
//! cycle if the file was re-edited in between (a success alone only clears
//! the break). Raised per file when `churn_min_cycles` (3) cycles
//! completed within `churn_window_ms` (30 min); critical at twice that.
//! Resolved when cycles age out of the window. Key: the file path.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use achilles_core::config::CheckSettings;

use super::{scaled, Check, EvalCtx, Finding};
use crate::observe::{names_file, Observed};

/// Files tracked per session; beyond this the least recently touched go.
const MAX_FILES: usize = 256;

pub struct Churn {
    min_cycles: usize,
    window_us: i64,
}

impl Churn {
    pub fn new(c: &CheckSettings) -> Self {
        Self {
            min_cycles: c.churn_min_cycles,
            window_us: c.churn_window_ms.max(0) * 1000,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FileTrack {
    /// The failure that broke it, and when.
    broken_by: Option<(Uuid, i64)>,
    /// Edited again since it broke.
    reedited: bool,
    /// Completed cycles: (break event, fix event, fix time).
    cycles: Vec<(Uuid, Uuid, i64)>,
    last_touch: i64,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    files: BTreeMap<String, FileTrack>,
    last_edited: Option<String>,
}

impl Check for Churn {
    const TYPE: &'static str = "agent_churn";
    type State = State;

    fn observe(&self, st: &mut State, ev: &Observed, now: i64) {
        if let Some(path) = &ev.edited_file {
            let f = st.files.entry(path.clone()).or_default();
            f.last_touch = f.last_touch.max(ev.t);
            if f.broken_by.is_some() {
                f.reedited = true;
            }
            st.last_edited = Some(path.clone());
        }
        if ev.code_failure {
            let named: Vec<String> = st
                .files
                .keys()
                .filter(|p| names_file(ev.failure_file.as_deref(), &ev.failure_text, p))
                .cloned()
                .collect();
            let targets = if named.is_empty() {
                st.last_edited.iter().cloned().collect()
            } else {
                named
            };
            for p in targets {
                if let Some(f) = st.files.get_mut(&p) {
                    f.broken_by = Some((ev.id, ev.t));
                    // A failure after the re-edit: that edit did not fix it.
                    f.reedited = false;
                    f.last_touch = f.last_touch.max(ev.t);
                }
            }
        }
        if ev.success {
            for f in st.files.values_mut() {
                if let Some((broke, _)) = f.broken_by.take() {
                    if f.reedited {
                        f.cycles.push((broke, ev.id, ev.t));
                    }
                    f.reedited = false;
                }
            }
        }
        self.prune(st, now);
    }

    fn evaluate(&self, st: &State, ctx: &EvalCtx<'_>) -> Vec<Finding> {
        if self.min_cycles == 0 {
            return Vec::new();
        }
        let since = ctx.now - self.window_us;
        st.files
            .iter()
            .filter_map(|(path, f)| {
                let cycles: Vec<_> = f.cycles.iter().filter(|c| c.2 >= since).collect();
                (cycles.len() >= self.min_cycles).then(|| Finding {
                    dedup_key: path.clone(),
                    severity: scaled(cycles.len() as f64, self.min_cycles as f64),
                    title: format!(
                        "Agent churn on {path}: {} break/fix cycles",
                        cycles.len()
                    ),
                    detail: format!(
                        "The agent broke {path} and fixed it again {} times within {} minutes.",
                        cycles.len(),
                        self.window_us / 60_000_000
                    ),
                    evidence: json!({
                        "file": path,
                        "cycles": cycles.len(),
                        "break_event_ids": cycles.iter().rev().take(10).map(|c| c.0.to_string()).collect::<Vec<_>>(),
                        "fix_event_ids": cycles.iter().rev().take(10).map(|c| c.1.to_string()).collect::<Vec<_>>(),
                    }),
                })
            })
            .collect()
    }
}

impl Churn {
    /// Forgets cycles outside the window and files with nothing left to
    /// say, keeping the state bounded in long sessions.
    fn prune(&self, st: &mut State, now: i64) {
        let since = now - self.window_us;
        for f in st.files.values_mut() {
            f.cycles.retain(|c| c.2 >= since);
        }
        st.files
            .retain(|_, f| !f.cycles.is_empty() || f.broken_by.is_some() || f.last_touch >= since);
        while st.files.len() > MAX_FILES {
            let oldest = st
                .files
                .iter()
                .min_by_key(|(_, f)| f.last_touch)
                .map(|(p, _)| p.clone());
            match oldest {
                Some(p) => st.files.remove(&p),
                None => break,
            };
        }
        if st
            .last_edited
            .as_ref()
            .is_some_and(|p| !st.files.contains_key(p))
        {
            st.last_edited = None;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{command, edit, error, run};

    fn check() -> Churn {
        Churn::new(&CheckSettings::default())
    }

    /// edit → failure naming the file → re-edit → passing build.
    fn cycle(t: i64, path: &str) -> Vec<Observed> {
        vec![
            edit(t, path),
            error(t + 1, Some(path), "mismatched types"),
            edit(t + 2, path),
            command(t + 3, "cargo build", 0),
        ]
    }

    #[test]
    fn three_cycles_on_one_file_are_churn() {
        let c = check();
        let two: Vec<_> = (0..2).flat_map(|i| cycle(i * 10, "src/a.rs")).collect();
        assert!(run(&c, &two).1.is_empty());
        let three: Vec<_> = (0..3).flat_map(|i| cycle(i * 10, "src/a.rs")).collect();
        let (_, found) = run(&c, &three);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].dedup_key, "src/a.rs");
        assert_eq!(found[0].evidence["cycles"], 3);
    }

    #[test]
    fn cycles_on_different_files_do_not_add_up() {
        let c = check();
        let evs: Vec<_> = ["a.rs", "b.rs", "c.rs"]
            .iter()
            .enumerate()
            .flat_map(|(i, p)| cycle(i as i64 * 10, p))
            .collect();
        assert!(run(&c, &evs).1.is_empty());
    }

    #[test]
    fn a_success_without_a_re_edit_is_no_cycle() {
        let c = check();
        let evs: Vec<_> = (0..3)
            .flat_map(|i| {
                let t = i * 10;
                vec![
                    edit(t, "src/a.rs"),
                    error(t + 1, None, "boom"), // names nothing: the last edited file
                    command(t + 3, "cargo build", 0),
                ]
            })
            .collect();
        let (st, found) = run(&c, &evs);
        assert!(found.is_empty());
        assert!(st.files["src/a.rs"].cycles.is_empty());
    }

    #[test]
    fn cycles_age_out_of_the_window() {
        let c = check();
        let mut evs: Vec<_> = (0..3).flat_map(|i| cycle(i * 10, "src/a.rs")).collect();
        assert_eq!(run(&c, &evs).1.len(), 1);
        evs.push(command(31 * 60, "ls", 0));
        assert!(run(&c, &evs).1.is_empty(), "31 minutes later");
        let (st, _) = run(&c, &evs);
        assert!(st.files.is_empty(), "pruned");
    }
}
