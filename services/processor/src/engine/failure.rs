//! What a failing event says: the text to cluster, and which files it names.
//!
//! Correlation asks "does this failure name the file the agent edited?";
//! clustering asks "which recurring error is this?". Both read the same
//! few fields, chosen per kind here and nowhere else.

use achilles_core::model::Payload;

/// How strongly a failure names a file, strongest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Naming {
    /// The failure's own `file` field is that file.
    FileField,
    /// Its text contains the path (or its last two components).
    Path,
    /// Its text contains only the file's base name.
    BaseName,
}

/// The parts of a failing event that matter for correlation and clustering.
#[derive(Clone, Debug, PartialEq)]
pub struct FailureInfo {
    pub file: Option<String>,
    /// Message, output and stack trace, cut to [`MAX_TEXT`] bytes.
    pub text: String,
    /// The line that identifies the error, for clustering.
    pub cluster_message: String,
}

pub const MAX_TEXT: usize = 4096;

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

/// `None` unless the payload is a failure.
pub fn failure_info(p: &Payload) -> Option<FailureInfo> {
    if !p.is_failure() {
        return None;
    }
    let (file, text, msg) = match p {
        Payload::Error(e) => {
            let text = format!("{}\n{}", e.message, e.stack_trace.as_deref().unwrap_or(""));
            (e.file.clone(), text, first_line(&e.message).to_owned())
        }
        Payload::Command(c) => {
            let output = c.output.as_deref().unwrap_or("");
            let msg = telling_line(output)
                .map_or_else(|| format!("command failed: {}", c.command), str::to_owned);
            (None, format!("{}\n{output}", c.command), msg)
        }
        Payload::TestRun(t) => {
            let output = t.output.as_deref().unwrap_or("");
            let msg = telling_line(output)
                .map_or_else(|| format!("{}: tests failed", t.framework), str::to_owned);
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
    Some(FailureInfo {
        file,
        text: cut(&text, MAX_TEXT).to_owned(),
        cluster_message: cut(&msg, 1024).to_owned(),
    })
}

/// Paths are compared without a leading `./` and with `/` separators.
fn normalise(path: &str) -> String {
    let p = path.replace('\\', "/");
    p.trim_start_matches("./").to_owned()
}

/// Does one path end with the other on a component boundary?
/// (`/home/me/repo/src/a.rs` and `src/a.rs` are the same file.)
fn same_file(a: &str, b: &str) -> bool {
    let (a, b) = (normalise(a), normalise(b));
    let (long, short) = if a.len() >= b.len() {
        (&a, &b)
    } else {
        (&b, &a)
    };
    !short.is_empty()
        && long.ends_with(short.as_str())
        && (long.len() == short.len() || long.as_bytes()[long.len() - short.len() - 1] == b'/')
}

/// How the failure names `path`, if it does.
pub fn names(info: &FailureInfo, path: &str) -> Option<Naming> {
    if info.file.as_deref().is_some_and(|f| same_file(f, path)) {
        return Some(Naming::FileField);
    }
    let norm = normalise(path);
    let parts: Vec<&str> = norm.rsplitn(3, '/').collect();
    let last_two = match parts.as_slice() {
        [name, dir, ..] => format!("{dir}/{name}"),
        _ => norm.clone(),
    };
    if info.text.contains(norm.as_str()) || info.text.contains(last_two.as_str()) {
        return Some(Naming::Path);
    }
    let base = parts.first().copied().unwrap_or("");
    // A base name without an extension ("lib", "test") is too common a
    // word to count as naming a file.
    (base.contains('.') && base.len() >= 4 && info.text.contains(base)).then_some(Naming::BaseName)
}

#[cfg(test)]
mod tests {
    use super::*;
    use achilles_core::model::{Command, ErrorEvent};

    fn err(message: &str, file: Option<&str>) -> FailureInfo {
        failure_info(&Payload::Error(ErrorEvent {
            message: message.into(),
            error_type: None,
            stack_trace: None,
            file: file.map(Into::into),
            line: None,
        }))
        .unwrap()
    }

    #[test]
    fn naming_strengths() {
        assert_eq!(
            names(&err("boom", Some("/repo/src/a.rs")), "src/a.rs"),
            Some(Naming::FileField)
        );
        assert_eq!(
            names(&err("boom", Some("src/a.rs")), "./src/a.rs"),
            Some(Naming::FileField)
        );
        assert_eq!(
            names(&err("x --> src/a.rs:3:1", None), "/repo/src/a.rs"),
            Some(Naming::Path)
        );
        assert_eq!(
            names(&err("in a.rs line 3", None), "src/a.rs"),
            Some(Naming::BaseName)
        );
        assert_eq!(
            names(&err("boom", Some("src/ba.rs")), "a.rs"),
            None,
            "component boundary"
        );
        assert_eq!(
            names(&err("lib failed", None), "src/lib"),
            None,
            "bare words are not files"
        );
    }

    #[test]
    fn command_failures_cluster_on_the_telling_line() {
        let info = failure_info(&Payload::Command(Command {
            command: "cargo build".into(),
            exit_code: Some(101),
            duration_ms: None,
            output: Some(
                "   Compiling x\nerror[E0308]: mismatched types\n --> src/a.rs:1:1\n".into(),
            ),
        }))
        .unwrap();
        assert_eq!(info.cluster_message, "error[E0308]: mismatched types");
        let ok = Payload::Command(Command {
            command: "ls".into(),
            exit_code: Some(0),
            duration_ms: None,
            output: None,
        });
        assert!(failure_info(&ok).is_none());
        let bare = failure_info(&Payload::Command(Command {
            command: "make".into(),
            exit_code: Some(2),
            duration_ms: None,
            output: None,
        }))
        .unwrap();
        assert_eq!(bare.cluster_message, "command failed: make");
    }
}
