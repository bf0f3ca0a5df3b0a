//! Which files a failure's text names, and how.
//!
//! Tools say where an error is in a few well-known shapes, and everything
//! else in their output is context. The roles, strongest first:
//!
//! * **Location** — where the tool reports *the error*: rustc's `-->` under
//!   an `error` header, `panicked at file:line`, the innermost traceback
//!   frame inside the project (Python, pytest, Node, Go), tsc's
//!   `file(line,col): error` / `file:line:col - error`, gcc/clang/go/mypy
//!   `file:line[:col]: error`, a linker's `file:(.text+…): undefined
//!   reference`, node's test `location:`.
//! * **Related** — named in the error's own context: other project frames,
//!   a rustc `note:` pointing at a definition, `FAILED tests/x.py::test`,
//!   paths in error messages.
//! * **Context** — named beside it: warnings (rustc, gcc), progress lines
//!   (`tests/test_x.py ....`, `Running tests/api.rs`, `PASS x.test.ts`),
//!   `In function` headers.
//!
//! Library code (interpreters, installed packages) is never named. The
//! whole text is scanned, so a file named after kilobytes of build noise
//! still counts; the caller bounds the text.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

use super::paths;

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Location,
    Related,
    Context,
}

/// A file a failure names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Named {
    /// Normalised, and resolved against the working directory when known.
    pub path: String,
    pub role: Role,
    /// Written as a bare file name (`parser.c`), no directory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub bare: bool,
}

/// At most this many names are kept per failure (strongest first).
pub const MAX_NAMES: usize = 16;

const EXTENSIONS: &[&str] = &[
    "rs", "py", "pyi", "ts", "tsx", "js", "jsx", "mjs", "cjs", "mts", "cts", "go", "c", "h", "cc",
    "cpp", "cxx", "hpp", "hh", "java", "kt", "kts", "scala", "rb", "php", "cs", "fs", "swift",
    "vue", "svelte", "css", "scss", "sass", "less", "html", "htm", "toml", "json", "yaml", "yml",
    "xml", "ini", "cfg", "conf", "sql", "sh", "bash", "zsh", "lua", "dart", "ex", "exs", "erl",
    "hs", "ml", "clj", "jl", "pl", "proto", "graphql", "gradle", "tf", "nix", "zig", "sol",
];

const P: &str = r"(?:[A-Za-z]:)?/?(?:[\w.@+~-]+/)*[\w.@+~-]+\.[A-Za-z][A-Za-z0-9]*";

fn re(pattern: &str) -> Regex {
    // The patterns are literals below; a typo fails every test at once.
    Regex::new(&pattern.replace("PATH", P)).expect("valid pattern")
}

static URL: LazyLock<Regex> = LazyLock::new(|| re(r"[A-Za-z][\w+.-]*://\S+"));
static TOKEN: LazyLock<Regex> = LazyLock::new(|| re("PATH"));
static ARROW: LazyLock<Regex> = LazyLock::new(|| re(r"^(?:-->|:::)\s*(PATH):\d+"));
static PANIC: LazyLock<Regex> = LazyLock::new(|| re(r"panicked at (?:'.*', )?(PATH):\d+:\d+"));
static PY_FRAME: LazyLock<Regex> = LazyLock::new(|| re(r#"File "([^"]+)", line \d+"#));
static PYTEST_FRAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(PATH):\d+: ?(?:in \S+|[A-Za-z_.]*)\s*$"));
static TSC: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(PATH)(?:\(\d+,\d+\):|:\d+:\d+ -) (error|warning)"));
static DIAG: LazyLock<Regex> = LazyLock::new(|| {
    re(r"^(PATH):(\d+)(?::\d+)?:\s*(?:(fatal error|error|warning|note|info|help)\b)?")
});
static NODE_HEADER: LazyLock<Regex> = LazyLock::new(|| re(r"^(PATH):\d+$"));
static JS_FRAME: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:at |\S+ )?(?:.*\()?(PATH):\d+:\d+\)?$"));
static GO_FRAME: LazyLock<Regex> = LazyLock::new(|| re(r"^(PATH):\d+ \+0x"));
static NODE_TEST_LOC: LazyLock<Regex> = LazyLock::new(|| re(r"^location: '(PATH):\d+:\d+'"));
static LINKER: LazyLock<Regex> = LazyLock::new(|| re(r"(PATH):\(\.\w+\+0x[0-9a-f]+\)"));
static SUMMARY: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(?:(?:FAILED|ERROR|FAIL)\s+(PATH)|(PATH)::\S+ (?:FAILED|ERROR)\b)"));
static VERBOSE_PASS: LazyLock<Regex> =
    LazyLock::new(|| re(r"^(PATH)::\S+ (?:PASSED|SKIPPED|XFAIL|XPASS)\b"));
static PROGRESS: LazyLock<Regex> = LazyLock::new(|| {
    re(
        r"^(?:PASS\s+(PATH)|Running (?:unittests )?(PATH)|(PATH) [.FEsxX]+(?:\s+\[\s*\d+%\])?$|(PATH): In |configfile: (PATH))",
    )
});
static INCLUDED: LazyLock<Regex> = LazyLock::new(|| re(r"^In file included from (PATH):\d+"));

#[derive(Clone, Copy, PartialEq)]
enum Block {
    None,
    Error,
    Warning,
}

struct Collector<'a> {
    cwd: Option<&'a str>,
    out: Vec<(Named, usize)>,
    order: usize,
}

impl Collector<'_> {
    fn add(&mut self, raw: &str, role: Role) {
        let ext = raw.rsplit('.').next().unwrap_or("");
        if !EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str()) {
            return;
        }
        let path = paths::resolve(raw, self.cwd);
        if paths::is_library(&path, self.cwd) || paths::is_library(raw, None) {
            return;
        }
        let bare = !paths::normalise(raw).contains('/');
        self.order += 1;
        match self.out.iter_mut().find(|(n, _)| n.path == path) {
            Some((n, _)) => {
                n.role = n.role.min(role);
                n.bare &= bare;
            }
            None => self.out.push((Named { path, role, bare }, self.order)),
        }
    }

    /// A stack of frames: the innermost project frame is the location.
    fn frames(&mut self, frames: &mut Vec<String>, innermost_last: bool) {
        let project: Vec<String> = frames
            .drain(..)
            .filter(|f| {
                let resolved = paths::resolve(f, self.cwd);
                !paths::is_library(&resolved, self.cwd) && !paths::is_library(f, None)
            })
            .collect();
        let inner = if innermost_last {
            project.len().checked_sub(1)
        } else {
            (!project.is_empty()).then_some(0)
        };
        for (i, f) in project.iter().enumerate() {
            let role = if Some(i) == inner {
                Role::Location
            } else {
                Role::Related
            };
            self.add(f, role);
        }
    }
}

/// The files `text` names, strongest role first, at most [`MAX_NAMES`].
pub fn extract(text: &str, cwd: Option<&str>) -> Vec<Named> {
    let mut c = Collector {
        cwd,
        out: Vec::new(),
        order: 0,
    };
    let mut block = Block::None;
    let mut arrows = 0;
    let mut in_note = false;
    let mut py: Vec<String> = Vec::new();
    let mut js: Vec<String> = Vec::new();
    for raw_line in text.lines() {
        let line = URL.replace_all(raw_line, " ");
        let t = line.trim();
        let t = t.strip_prefix("E ").map_or(t, str::trim_start);
        if t.is_empty() {
            continue;
        }
        if !(js.is_empty() || JS_FRAME.is_match(t) || GO_FRAME.is_match(t)) {
            c.frames(&mut js, false);
        }
        if t.starts_with("Traceback (most recent call last)")
            || (t.starts_with("___") && !t.starts_with("_ _"))
            || t.starts_with("===")
        {
            c.frames(&mut py, true);
            continue;
        }
        if let Some(rest) = t.strip_prefix("error") {
            if rest.starts_with('[') || rest.starts_with(':') {
                (block, arrows, in_note) = (Block::Error, 0, false);
            }
        } else if let Some(rest) = t.strip_prefix("warning") {
            if rest.starts_with('[') || rest.starts_with(':') {
                (block, arrows, in_note) = (Block::Warning, 0, false);
            }
        } else if t.starts_with("note:") || t.starts_with("help:") || t.starts_with("= note") {
            in_note = true;
        }
        let free_role = if block == Block::Warning {
            Role::Context
        } else {
            Role::Related
        };
        if let Some(m) = ARROW.captures(t) {
            let role = match block {
                Block::Error if arrows == 0 && !in_note => Role::Location,
                Block::Warning => Role::Context,
                _ => Role::Related,
            };
            arrows += 1;
            c.add(&m[1], role);
            continue;
        }
        if let Some(m) = PANIC.captures(t) {
            c.add(&m[1], Role::Location);
            continue;
        }
        if let Some(m) = PY_FRAME.captures(t) {
            py.push(m[1].to_owned());
            continue;
        }
        if t.ends_with(".py") || t.contains(".py:") {
            if let Some(m) = PYTEST_FRAME.captures(t) {
                py.push(m[1].to_owned());
                continue;
            }
        }
        if let Some(m) = TSC.captures(t) {
            let role = if &m[2] == "error" {
                Role::Location
            } else {
                Role::Context
            };
            c.add(&m[1], role);
            continue;
        }
        if let Some(m) = NODE_TEST_LOC.captures(t) {
            c.add(&m[1], Role::Location);
            continue;
        }
        if let Some(m) = GO_FRAME.captures(t).or_else(|| JS_FRAME.captures(t)) {
            js.push(m[1].to_owned());
            continue;
        }
        if let Some(m) = LINKER.captures(t) {
            c.add(&m[1], Role::Location);
            continue;
        }
        if let Some(m) = INCLUDED.captures(t) {
            c.add(&m[1], Role::Related);
            continue;
        }
        if let Some(m) = PROGRESS.captures(t) {
            if let Some(p) = (1..=5).find_map(|i| m.get(i)) {
                c.add(p.as_str(), Role::Context);
            }
            continue;
        }
        if let Some(m) = VERBOSE_PASS.captures(t) {
            c.add(&m[1], Role::Context);
            continue;
        }
        if let Some(m) = SUMMARY.captures(t) {
            if let Some(p) = m.get(1).or_else(|| m.get(2)) {
                c.add(p.as_str(), Role::Related);
            }
            continue;
        }
        if let Some(m) = NODE_HEADER.captures(t) {
            c.add(&m[1], Role::Location);
            continue;
        }
        if let Some(m) = DIAG.captures(t) {
            let (role, b) = match m.get(3).map(|s| s.as_str()) {
                Some("warning") => (Role::Context, Block::Warning),
                Some("note" | "info" | "help") => (free_role, block),
                _ => (Role::Location, Block::Error),
            };
            block = b;
            c.add(&m[1], role);
            continue;
        }
        for m in TOKEN.find_iter(&line) {
            c.add(m.as_str(), free_role);
        }
    }
    c.frames(&mut py, true);
    c.frames(&mut js, false);
    let mut out = c.out;
    out.sort_by_key(|(n, order)| (n.role, *order));
    out.truncate(MAX_NAMES);
    out.into_iter().map(|(n, _)| n).collect()
}

#[cfg(test)]
#[path = "names_tests.rs"]
mod tests;
