//! `command_loop`: the same command keeps failing.
//!
//! Per command line (whitespace-normalised), the failures since it last
//! succeeded, within `loop_window_ms` (10 min): raised at
//! `loop_min_repeats` (3), critical at twice that. Other commands or edits
//! in between do not reset the count (an agent alternating `cargo build`
//! and a quick edit is still looping if the build never passes); the
//! command succeeding does, and failures older than the window age out,
//! which resolves the insight. Key: the command line.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use achilles_core::config::CheckSettings;

use super::{scaled, Check, EvalCtx, Finding};
use crate::observe::Observed;

/// Commands tracked per session, and failures kept per command.
const MAX_COMMANDS: usize = 128;
const MAX_FAILURES: usize = 64;

pub struct CommandLoop {
    min_repeats: usize,
    window_us: i64,
}

impl CommandLoop {
    pub fn new(c: &CheckSettings) -> Self {
        Self {
            min_repeats: c.loop_min_repeats,
            window_us: c.loop_window_ms.max(0) * 1000,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Command → its failures (time, event id) since it last succeeded.
    failing: BTreeMap<String, Vec<(i64, Uuid)>>,
}

impl Check for CommandLoop {
    const TYPE: &'static str = "command_loop";
    type State = State;

    fn observe(&self, st: &mut State, ev: &Observed, now: i64) {
        if let Some(cmd) = &ev.command {
            if ev.success {
                st.failing.remove(cmd);
            } else if ev.failure {
                let f = st.failing.entry(cmd.clone()).or_default();
                f.push((ev.t, ev.id));
                f.sort();
                if f.len() > MAX_FAILURES {
                    f.remove(0);
                }
            }
        }
        let since = now - self.window_us;
        for f in st.failing.values_mut() {
            f.retain(|x| x.0 >= since);
        }
        st.failing.retain(|_, f| !f.is_empty());
        while st.failing.len() > MAX_COMMANDS {
            let stalest = st
                .failing
                .iter()
                .min_by_key(|(_, f)| f.last().map_or(i64::MIN, |x| x.0))
                .map(|(c, _)| c.clone());
            match stalest {
                Some(c) => st.failing.remove(&c),
                None => break,
            };
        }
    }

    fn evaluate(&self, st: &State, ctx: &EvalCtx<'_>) -> Vec<Finding> {
        if self.min_repeats == 0 {
            return Vec::new();
        }
        let since = ctx.now - self.window_us;
        st.failing
            .iter()
            .filter_map(|(cmd, f)| {
                let recent: Vec<_> = f.iter().filter(|x| x.0 >= since).collect();
                (recent.len() >= self.min_repeats).then(|| Finding {
                    dedup_key: cmd.clone(),
                    severity: scaled(recent.len() as f64, self.min_repeats as f64),
                    title: format!("`{cmd}` failed {} times in a row", recent.len()),
                    detail: format!(
                        "The same command failed {} times without succeeding in between (within {} minutes): the agent may be looping.",
                        recent.len(),
                        self.window_us / 60_000_000
                    ),
                    evidence: json!({
                        "command": cmd,
                        "repeats": recent.len(),
                        "event_ids": recent.iter().rev().take(10).map(|x| x.1.to_string()).collect::<Vec<_>>(),
                    }),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{command, edit, run};
    use crate::checks::Severity;

    fn check() -> CommandLoop {
        CommandLoop::new(&CheckSettings::default())
    }

    #[test]
    fn the_third_failure_of_one_command_is_a_loop() {
        let c = check();
        let two = vec![command(0, "cargo test", 101), command(5, "cargo test", 101)];
        assert!(run(&c, &two).1.is_empty());
        let three = vec![
            command(0, "cargo test", 101),
            edit(2, "src/a.rs"),
            command(5, "cargo test", 101),
            command(7, "ls", 0),
            command(9, "cargo test", 101),
        ];
        let (_, found) = run(&c, &three);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].dedup_key, "cargo test");
        assert_eq!(found[0].evidence["repeats"], 3);
        assert_eq!(found[0].severity, Severity::Warning);
    }

    #[test]
    fn success_resets_and_different_commands_do_not_add_up() {
        let c = check();
        let evs = vec![
            command(0, "cargo test", 101),
            command(1, "cargo test", 101),
            command(2, "cargo test", 0),
            command(3, "cargo test", 101),
            command(4, "make", 2),
            command(5, "npm test", 1),
        ];
        let (st, found) = run(&c, &evs);
        assert!(found.is_empty());
        assert_eq!(st.failing["cargo test"].len(), 1);
    }

    #[test]
    fn failures_age_out_and_six_are_critical() {
        let c = check();
        let mut evs: Vec<_> = (0..6).map(|i| command(i, "pytest", 1)).collect();
        assert_eq!(run(&c, &evs).1[0].severity, Severity::Critical);
        evs.push(command(11 * 60, "ls", 0));
        assert!(run(&c, &evs).1.is_empty(), "11 minutes later");
    }
}
