//! What a tool call did, from its name and arguments: changed a file, ran a
//! shell command, or something else.
//!
//! Coding agents name their tools differently (Claude Code's `Edit`,
//! `Write`, `MultiEdit`, `NotebookEdit`, `Bash`; Anthropic's
//! `str_replace_based_edit_tool` and `bash`; OpenAI's `apply_patch` and
//! `shell`; editors' `edit_file`, `run_terminal_cmd`), so the names are
//! matched case-insensitively against the lists below, which docs/otlp.md
//! repeats.

use serde_json::{Map, Value};

use super::attrs::{i64_of, str_of};

/// Tools that change a file when they succeed.
pub const FILE_TOOLS: &[&str] = &[
    "edit",
    "multiedit",
    "write",
    "notebookedit",
    "str_replace_editor",
    "str_replace_based_edit_tool",
    "apply_patch",
    "create_file",
    "write_file",
    "edit_file",
    "replace_in_file",
    "search_replace",
];

/// Tools that run a shell command.
pub const SHELL_TOOLS: &[&str] = &[
    "bash",
    "shell",
    "sh",
    "terminal",
    "local_shell",
    "run_terminal_cmd",
    "run_command",
    "execute_command",
    "exec_command",
    "run_shell_command",
];

/// Argument keys naming the file a tool changes.
const PATH_KEYS: &[&str] = &[
    "file_path",
    "notebook_path",
    "path",
    "target_file",
    "filename",
    "file",
];
/// Argument keys holding the command line (Claude Code's `bash_command`
/// is the program alone, `full_command` the whole line).
const COMMAND_KEYS: &[&str] = &["command", "full_command", "bash_command", "cmd"];

#[derive(Debug, PartialEq)]
pub enum ToolKind {
    /// A file-changing tool with the path it names; `operation` when the
    /// tool says (`create`), else `modify` for edits and unknown for writes.
    FileEdit {
        path: String,
        operation: Option<&'static str>,
    },
    Shell {
        command: String,
    },
    Other,
}

/// Classifies a call of `tool` with `args` (the tool's input, merged from
/// whatever attributes carried it).
pub fn classify(tool: &str, args: &Map<String, Value>) -> ToolKind {
    let name = tool.trim().to_ascii_lowercase();
    if FILE_TOOLS.contains(&name.as_str()) {
        // The editor tool also views files: only its writing commands count.
        let sub = str_of(args, &["command"]).map(|c| c.to_ascii_lowercase());
        let operation = match (name.as_str(), sub.as_deref()) {
            (_, Some("view")) => return ToolKind::Other,
            (_, Some("create")) | ("create_file", _) => Some("create"),
            ("write" | "write_file", _) => None,
            _ => Some("modify"),
        };
        return match str_of(args, PATH_KEYS) {
            Some(path) => ToolKind::FileEdit { path, operation },
            None => ToolKind::Other,
        };
    }
    if SHELL_TOOLS.contains(&name.as_str()) {
        let command = match args.get("command").or_else(|| args.get("cmd")) {
            // `["bash", "-lc", "cargo test"]` (OpenAI's shell tool).
            Some(Value::Array(parts)) => Some(
                parts
                    .iter()
                    .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            _ => str_of(args, COMMAND_KEYS),
        };
        if let Some(command) = command {
            return ToolKind::Shell { command };
        }
    }
    ToolKind::Other
}

/// A shell tool's exit code: reported (`exit_code`, `process.exit.code`),
/// else read from the error text (`Exit code 101`), else `None`.
pub fn exit_code(attrs: &Map<String, Value>, error: Option<&str>) -> Option<i32> {
    if let Some(code) = i64_of(attrs, &["exit_code", "process.exit.code", "exitCode"]) {
        return i32::try_from(code).ok();
    }
    let text = error?.to_ascii_lowercase();
    let at = text.find("exit code")? + "exit code".len();
    let digits: String = text[at..]
        .trim_start_matches([' ', ':', '='])
        .chars()
        .take_while(|c| c.is_ascii_digit() || *c == '-')
        .collect();
    digits.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn args(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => Map::new(),
        }
    }

    #[test]
    fn file_tools_need_a_path() {
        assert_eq!(
            classify("Edit", &args(json!({"file_path": "src/a.rs"}))),
            ToolKind::FileEdit {
                path: "src/a.rs".into(),
                operation: Some("modify")
            }
        );
        assert_eq!(
            classify("Write", &args(json!({"file_path": "b.rs"}))),
            ToolKind::FileEdit {
                path: "b.rs".into(),
                operation: None
            }
        );
        assert_eq!(
            classify(
                "str_replace_based_edit_tool",
                &args(json!({"command": "create", "path": "c.py"}))
            ),
            ToolKind::FileEdit {
                path: "c.py".into(),
                operation: Some("create")
            }
        );
        assert_eq!(
            classify(
                "str_replace_based_edit_tool",
                &args(json!({"command": "view", "path": "c.py"}))
            ),
            ToolKind::Other
        );
        assert_eq!(classify("Edit", &args(json!({}))), ToolKind::Other);
        assert_eq!(
            classify("Read", &args(json!({"file_path": "a.rs"}))),
            ToolKind::Other
        );
    }

    #[test]
    fn shell_tools_need_a_command() {
        assert_eq!(
            classify("Bash", &args(json!({"bash_command": "cargo test"}))),
            ToolKind::Shell {
                command: "cargo test".into()
            }
        );
        assert_eq!(
            classify("shell", &args(json!({"command": ["bash", "-lc", "ls"]}))),
            ToolKind::Shell {
                command: "bash -lc ls".into()
            }
        );
        assert_eq!(classify("Bash", &args(json!({}))), ToolKind::Other);
    }

    #[test]
    fn exit_codes_are_reported_or_read_from_the_error() {
        let none = Map::new();
        assert_eq!(
            exit_code(&args(json!({"exit_code": "101"})), None),
            Some(101)
        );
        assert_eq!(
            exit_code(&args(json!({"process.exit.code": 2})), Some("Exit code 9")),
            Some(2)
        );
        assert_eq!(
            exit_code(&none, Some("Error: Exit code 101\nerror[E0425]")),
            Some(101)
        );
        assert_eq!(exit_code(&none, Some("permission denied")), None);
        assert_eq!(exit_code(&none, None), None);
    }
}
