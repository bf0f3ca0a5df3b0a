//! What a failing event says: the text to cluster, which files it names
//! (and how), what kind of check failed, and whether it is the
//! environment's fault.
//!
//! Correlation asks "which edited file does this failure point at?";
//! clustering asks "which recurring error is this?". Both read the same
//! few fields, chosen per kind here and nowhere else.

use achilles_core::model::Payload;

use super::checks::{self, Check};
use super::names::{self, Named, Role};
use super::paths;

/// The parts of a failing event that matter for correlation and clustering.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureInfo {
    /// Files named, strongest role first (see [`names`]).
    pub names: Vec<Named>,
    /// The check that failed (for commands and test runs) and its command.
    pub check: Option<(Check, String)>,
    /// Network, rate limit, timeout: not the code's fault.
    pub environmental: bool,
    /// The line that identifies the error, for clustering.
    pub cluster_message: String,
}

/// How much of a failure's text is scanned for file names: the first and
/// the last half of this (producers send output tails; builds name the
/// file at the end of long logs).
pub const MAX_SCAN: usize = 64 * 1024;

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The first and last `max / 2` bytes of `s` (all of it when short).
fn head_and_tail(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let head = cut(s, max / 2);
    let mut start = s.len() - max / 2;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    format!("{head}\n{}", &s[start..])
}

fn first_line(s: &str) -> &str {
    s.lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("")
}

/// The most telling line of tool output: the first that mentions an error
/// or failure, else the last non-empty one (where most tools put the
/// summary).
fn telling_line(output: &str) -> Option<&str> {
    let lines = || output.lines().map(str::trim).filter(|l| !l.is_empty());
    lines()
        .find(|l| {
            let lower = l.to_ascii_lowercase();
            lower.contains("error") || lower.contains("fail") || lower.contains("panic")
        })
        .or_else(|| lines().next_back())
}

/// `None` unless the payload is a failure. `cwd` is the working directory
/// the event ran in, when known (relative paths are resolved against it).
pub fn failure_info(p: &Payload, cwd: Option<&str>) -> Option<FailureInfo> {
    if !p.is_failure() {
        return None;
    }
    let mut cwd = cwd.map(str::to_owned);
    let mut check = None;
    let (file, text, msg) = match p {
        Payload::Error(e) => {
            let text = format!("{}\n{}", e.message, e.stack_trace.as_deref().unwrap_or(""));
            (e.file.clone(), text, first_line(&e.message).to_owned())
        }
        Payload::Command(c) => {
            let output = c.output.as_deref().unwrap_or("");
            let msg = telling_line(output)
                .map_or_else(|| format!("command failed: {}", c.command), str::to_owned);
            if let (Some(dir), _) = checks::split_cd(&c.command) {
                cwd = Some(paths::resolve(dir, cwd.as_deref()));
            }
            check = checks::classify(&c.command).map(|k| (k, c.command.clone()));
            (None, format!("{}\n{output}", c.command), msg)
        }
        Payload::TestRun(t) => {
            let output = t.output.as_deref().unwrap_or("");
            let msg = telling_line(output)
                .map_or_else(|| format!("{}: tests failed", t.framework), str::to_owned);
            check = Some((Check::Test, t.framework.clone()));
            (None, output.to_owned(), msg)
        }
        Payload::LlmCall(c) => {
            let err = c.error.as_deref().unwrap_or("");
            let msg = if err.is_empty() {
                format!("llm call {}", c.status.as_str())
            } else {
                first_line(err).to_owned()
            };
            (None, err.to_owned(), msg)
        }
        Payload::ToolCall(c) => {
            let err = c.error.as_deref().unwrap_or("");
            let msg = if err.is_empty() {
                format!("tool {} {}", c.tool, c.status.as_str())
            } else {
                first_line(err).to_owned()
            };
            (None, err.to_owned(), msg)
        }
        Payload::AgentAction(a) => {
            let detail = a.detail.as_deref().unwrap_or("");
            (
                None,
                detail.to_owned(),
                format!("action {} failed", a.action),
            )
        }
        Payload::FileEdit(_) | Payload::UserMessage(_) => return None,
    };
    let scanned = head_and_tail(&text, MAX_SCAN);
    let mut named = names::extract(&scanned, cwd.as_deref());
    if let Some(f) = file.as_deref().filter(|f| !f.trim().is_empty()) {
        // The event's own `file` field is where the error is.
        let path = paths::resolve(f, cwd.as_deref());
        named.retain(|n| n.path != path);
        let bare = !paths::normalise(f).contains('/');
        named.insert(
            0,
            Named {
                path,
                role: Role::Location,
                bare,
            },
        );
        named.truncate(names::MAX_NAMES);
    }
    // Timeouts of calls and steps are the environment's by definition.
    let timed_out = matches!(p, Payload::LlmCall(c) if c.status.as_str() == "timeout")
        || matches!(p, Payload::ToolCall(c) if c.status.as_str() == "timeout")
        || matches!(p, Payload::AgentAction(a) if a.status.is_some_and(|s| s.as_str() == "timeout"));
    Some(FailureInfo {
        names: named,
        check,
        environmental: timed_out || checks::is_environmental(&scanned),
        cluster_message: cut(&msg, 1024).to_owned(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use achilles_core::model::{Command, ErrorEvent};

    fn err(message: &str, file: Option<&str>) -> FailureInfo {
        failure_info(
            &Payload::Error(ErrorEvent {
                message: message.into(),
                error_type: None,
                stack_trace: None,
                file: file.map(Into::into),
                line: None,
            }),
            Some("/repo"),
        )
        .unwrap()
    }

    #[test]
    fn the_file_field_is_the_location() {
        let i = err("mismatched types", Some("src/a.rs"));
        assert_eq!(
            i.names,
            vec![Named {
                path: "/repo/src/a.rs".into(),
                role: Role::Location,
                bare: false
            }]
        );
        assert!(!i.environmental);
    }

    #[test]
    fn the_tail_of_a_long_log_is_scanned() {
        let noise = "   Compiling some-dependency v1.2.3\n".repeat(3000);
        let output = format!("{noise}error[E0308]: mismatched types\n --> src/a.rs:1:1\n");
        let info = failure_info(
            &Payload::Command(Command {
                command: "cargo build".into(),
                exit_code: Some(101),
                duration_ms: None,
                output: Some(output),
            }),
            None,
        )
        .unwrap();
        assert_eq!(info.names[0].path, "src/a.rs");
        assert_eq!(info.names[0].role, Role::Location);
        assert_eq!(info.check.as_ref().map(|c| c.0), Some(Check::Build));
    }

    #[test]
    fn cd_prefix_sets_the_directory() {
        let info = failure_info(
            &Payload::Command(Command {
                command: "cd web && npx tsc".into(),
                exit_code: Some(2),
                duration_ms: None,
                output: Some("src/a.ts(1,2): error TS2322: nope".into()),
            }),
            Some("/repo"),
        )
        .unwrap();
        assert_eq!(info.names[0].path, "/repo/web/src/a.ts");
    }

    #[test]
    fn command_failures_cluster_on_the_telling_line() {
        let info = failure_info(
            &Payload::Command(Command {
                command: "cargo build".into(),
                exit_code: Some(101),
                duration_ms: None,
                output: Some(
                    "   Compiling x\nerror[E0308]: mismatched types\n --> src/a.rs:1:1\n".into(),
                ),
            }),
            None,
        )
        .unwrap();
        assert_eq!(info.cluster_message, "error[E0308]: mismatched types");
        let ok = Payload::Command(Command {
            command: "ls".into(),
            exit_code: Some(0),
            duration_ms: None,
            output: None,
        });
        assert!(failure_info(&ok, None).is_none());
        let bare = failure_info(
            &Payload::Command(Command {
                command: "make".into(),
                exit_code: Some(2),
                duration_ms: None,
                output: None,
            }),
            None,
        )
        .unwrap();
        assert_eq!(bare.cluster_message, "command failed: make");
    }
}
