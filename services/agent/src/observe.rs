//! The facts of one event that light-mode checks read, computed once per
//! event so every check agrees on what "agent action", "success" or "the
//! command" mean.

use uuid::Uuid;

use achilles_core::model::{Actor, Event, EventKind, Payload};

/// Failure text kept for file naming, in bytes.
const MAX_TEXT: usize = 4096;
/// Commands longer than this are compared (and keyed) by their prefix.
pub const MAX_COMMAND: usize = 256;

/// One event, as the checks see it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub id: Uuid,
    /// Event time, microseconds since the Unix epoch.
    pub t: i64,
    pub kind: EventKind,
    /// An agent action: actor `agent` and kind file_edit, command,
    /// test_run, tool_call, llm_call or agent_action (the processor's
    /// definition; errors and user messages are not actions).
    pub is_action: bool,
    /// `events.is_failure`.
    pub failure: bool,
    /// A failure that can mean broken code: an error, a failing command or
    /// a failing test run (not a failed LLM or tool call).
    pub code_failure: bool,
    /// A command with exit code 0, or a test run with passes and no
    /// failures: the agent's work verifiably works.
    pub success: bool,
    /// A command with an exit code, or a test run: an attempt to verify.
    pub verification: bool,
    /// The file an agent `file_edit` changed.
    pub edited_file: Option<String>,
    /// The `file` an error names.
    pub failure_file: Option<String>,
    /// Message, output and stack trace of a code failure, cut to 4 KiB.
    pub failure_text: String,
    /// The command line, whitespace-normalised (see [`normalize_command`]).
    pub command: Option<String>,
    pub tokens: i64,
    pub cost_usd: f64,
}

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

/// Runs of whitespace become one space, ends are trimmed, and the result
/// is cut to [`MAX_COMMAND`] bytes: `cargo  test ` and `cargo test` are
/// the same command.
pub fn normalize_command(c: &str) -> String {
    let joined = c.split_whitespace().collect::<Vec<_>>().join(" ");
    cut(&joined, MAX_COMMAND).to_owned()
}

fn normalise_path(p: &str) -> String {
    p.replace('\\', "/").trim_start_matches("./").to_owned()
}

/// Does a failure name `path`? Its `file` field is that file (one path
/// ending with the other on a component boundary), or its text contains
/// the path, its last two components, or a base name with an extension.
pub fn names_file(file: Option<&str>, text: &str, path: &str) -> bool {
    let path = normalise_path(path);
    if path.is_empty() {
        return false;
    }
    if let Some(f) = file.map(normalise_path) {
        let (long, short) = if f.len() >= path.len() {
            (&f, &path)
        } else {
            (&path, &f)
        };
        if !short.is_empty()
            && long.ends_with(short.as_str())
            && (long.len() == short.len() || long.as_bytes()[long.len() - short.len() - 1] == b'/')
        {
            return true;
        }
    }
    let parts: Vec<&str> = path.rsplitn(3, '/').collect();
    let last_two = match parts.as_slice() {
        [name, dir, ..] => format!("{dir}/{name}"),
        _ => path.clone(),
    };
    if text.contains(path.as_str()) || text.contains(last_two.as_str()) {
        return true;
    }
    let base = parts.first().copied().unwrap_or("");
    // "lib" or "test" alone are words, not files.
    base.contains('.') && base.len() >= 4 && text.contains(base)
}

impl Observed {
    pub fn from_event(e: &Event) -> Self {
        let by_agent = e.actor == Actor::Agent;
        let failure = e.payload.is_failure();
        let mut o = Self {
            id: e.id.as_uuid(),
            t: e.occurred_at.timestamp_micros(),
            kind: e.kind(),
            is_action: by_agent && !matches!(e.kind(), EventKind::Error | EventKind::UserMessage),
            failure,
            code_failure: false,
            success: false,
            verification: false,
            edited_file: None,
            failure_file: None,
            failure_text: String::new(),
            command: None,
            tokens: 0,
            cost_usd: 0.0,
        };
        match &e.payload {
            Payload::FileEdit(f) if by_agent => o.edited_file = Some(f.path.clone()),
            Payload::Error(err) => {
                o.code_failure = true;
                o.failure_file = err.file.clone();
                let text = format!(
                    "{}\n{}",
                    err.message,
                    err.stack_trace.as_deref().unwrap_or("")
                );
                o.failure_text = cut(&text, MAX_TEXT).to_owned();
            }
            Payload::Command(c) => {
                o.command = Some(normalize_command(&c.command));
                o.verification = c.exit_code.is_some();
                o.success = c.exit_code == Some(0);
                if failure {
                    o.code_failure = true;
                    let text = format!("{}\n{}", c.command, c.output.as_deref().unwrap_or(""));
                    o.failure_text = cut(&text, MAX_TEXT).to_owned();
                }
            }
            Payload::TestRun(t) => {
                o.verification = true;
                o.success = t.failed == 0 && t.passed > 0;
                if failure {
                    o.code_failure = true;
                    o.failure_text = cut(t.output.as_deref().unwrap_or(""), MAX_TEXT).to_owned();
                }
            }
            Payload::LlmCall(c) => {
                o.tokens = c
                    .input_tokens
                    .saturating_add(c.output_tokens)
                    .min(i64::MAX as u64) as i64;
                o.cost_usd = c.cost_usd.unwrap_or(0.0);
            }
            _ => {}
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_normalise() {
        assert_eq!(
            normalize_command("  cargo   test\t--all "),
            "cargo test --all"
        );
        assert_eq!(normalize_command(&"x".repeat(500)).len(), MAX_COMMAND);
    }

    #[test]
    fn file_naming() {
        assert!(names_file(Some("/repo/src/a.rs"), "", "src/a.rs"));
        assert!(names_file(None, "error --> src/a.rs:3:1", "/repo/src/a.rs"));
        assert!(names_file(None, "in a.rs line 3", "src/a.rs"));
        assert!(!names_file(Some("src/ba.rs"), "", "a.rs"));
        assert!(!names_file(None, "lib failed", "src/lib"));
    }
}
