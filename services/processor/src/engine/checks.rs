//! What a command checks, and failures that say nothing about the code.
//!
//! A break/fix cycle closes with a passing *check* that would have shown
//! the failure again: `ls` or `git status` succeeding proves nothing, and a
//! passing `cargo build` says nothing about a failing test. Commands are
//! classified by their program (after `cd DIR &&`, `VAR=x`, `timeout N`,
//! `npx`, `poetry run`, …) into build (compile, type-check, lint), test
//! and run (the program itself); anything else is not a check.

use std::sync::LazyLock;

use regex::Regex;
use serde::{Deserialize, Serialize};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Check {
    Build,
    Test,
    Run,
}

/// A command line split into the directory it ran in (from a leading
/// `cd DIR &&`) and the command proper, with wrappers removed.
pub fn split_cd(command: &str) -> (Option<&str>, &str) {
    let t = command.trim();
    if let Some(rest) = t.strip_prefix("cd ") {
        if let Some((dir, cmd)) = rest.split_once("&&").or_else(|| rest.split_once(';')) {
            return (Some(dir.trim().trim_matches(['"', '\''])), cmd.trim());
        }
    }
    (None, t)
}

/// The words of the command proper, wrappers and assignments skipped.
fn words(command: &str) -> Vec<&str> {
    const WRAPPERS: &[&str] = &["sudo", "time", "env", "exec", "nice", "command"];
    let (_, cmd) = split_cd(command);
    // Only the first command of a pipeline or chain decides.
    let cmd = cmd.split(['|', ';']).next().unwrap_or(cmd);
    let cmd = cmd.split("&&").next().unwrap_or(cmd);
    let mut w: Vec<&str> = cmd.split_whitespace().collect();
    loop {
        match w.first().copied() {
            Some(x) if x.contains('=') && !x.starts_with('-') => {
                w.remove(0);
            }
            Some(x) if WRAPPERS.contains(&x) => {
                w.remove(0);
            }
            Some("timeout") => {
                w.remove(0);
                if w.first()
                    .is_some_and(|d| d.chars().next().is_some_and(|c| c.is_ascii_digit()))
                {
                    w.remove(0);
                }
            }
            Some("npx" | "pnpx" | "bunx") => {
                w.remove(0);
            }
            Some("poetry" | "pipenv" | "uv" | "pdm" | "hatch" | "bundle")
                if matches!(w.get(1).copied(), Some("run" | "exec")) =>
            {
                w.drain(..2);
            }
            _ => break,
        }
    }
    w
}

fn program(word: &str) -> &str {
    word.rsplit('/').next().unwrap_or(word)
}

/// What kind of check `command` is, if it is one.
pub fn classify(command: &str) -> Option<Check> {
    let w = words(command);
    let prog = program(w.first()?);
    let sub = w.get(1).copied().unwrap_or("");
    let script = |s: &str| -> Option<Check> {
        let s = s.to_ascii_lowercase();
        if s.contains("test") || s.contains("spec") {
            Some(Check::Test)
        } else if [
            "build",
            "compile",
            "typecheck",
            "type-check",
            "tsc",
            "lint",
            "check",
        ]
        .iter()
        .any(|k| s.contains(k))
        {
            Some(Check::Build)
        } else if ["start", "dev", "serve"].iter().any(|k| s.contains(k)) {
            Some(Check::Run)
        } else {
            None
        }
    };
    use Check::*;
    match prog {
        "cargo" => match sub {
            "build" | "b" | "check" | "c" | "clippy" => Some(Build),
            "test" | "t" | "nextest" | "bench" => Some(Test),
            "run" | "r" => Some(Run),
            _ => None,
        },
        "go" => match sub {
            "build" | "vet" => Some(Build),
            "test" => Some(Test),
            "run" => Some(Run),
            _ => None,
        },
        "rustc" | "gcc" | "g++" | "cc" | "c++" | "clang" | "clang++" | "javac" | "tsc"
        | "vue-tsc" | "mypy" | "pyright" | "ruff" | "flake8" | "pylint" | "eslint" | "cmake"
        | "ninja" | "kotlinc" | "swiftc" | "scalac" => Some(Build),
        "make" | "mvn" | "gradle" | "gradlew" | "dotnet" | "swift" | "bazel" => {
            Some(script(sub).unwrap_or(Build))
        }
        "pytest" | "py.test" | "jest" | "vitest" | "mocha" | "tox" | "nox" | "ctest" | "rspec"
        | "phpunit" | "ava" | "karma" | "playwright" | "cypress" => Some(Test),
        "npm" | "pnpm" | "yarn" | "bun" => match sub {
            "test" | "t" => Some(Test),
            "start" => Some(Run),
            "run" | "run-script" => script(w.get(2).copied().unwrap_or("")),
            "install" | "i" | "add" | "ci" | "remove" | "uninstall" | "update" | "init"
            | "publish" | "audit" | "outdated" | "ls" | "view" | "link" => None,
            s => script(s),
        },
        "node" | "deno" | "ts-node" | "tsx" => match sub {
            "--test" | "test" => Some(Test),
            "" => None,
            _ => Some(Run),
        },
        p if p.starts_with("python") => match (sub, w.get(2).copied()) {
            ("-m", Some("pytest" | "unittest" | "nose2" | "tox")) => Some(Test),
            ("-m", Some("mypy" | "py_compile" | "compileall" | "pyright" | "ruff" | "flake8")) => {
                Some(Build)
            }
            ("-m", Some("pip" | "venv" | "http.server")) => None,
            ("", _) => None,
            _ => Some(Run),
        },
        "java" | "ruby" | "php" | "perl" => (!sub.is_empty()).then_some(Run),
        p if w[0].starts_with("./") || w[0].contains("/target/") || p == "a.out" => Some(Run),
        _ => None,
    }
}

/// Would `success` (a passing check) have shown `failure` again, had it
/// not been fixed? Builds are shown by builds, and by tests and runs of
/// toolchains that compile first; tests by tests; a crashing program by
/// running the same command again (a passing test suite need not run the
/// code that crashed). A failure of unknown kind (an error event) by any
/// check.
pub fn covers(success: (Check, &str), failure: Option<(Check, &str)>) -> bool {
    let (s, s_cmd) = success;
    let Some((f, f_cmd)) = failure else {
        return true;
    };
    match (f, s) {
        (Check::Build, Check::Build) | (Check::Test, Check::Test) => true,
        (Check::Build, _) => compiles_first(s_cmd),
        (Check::Run, Check::Run) => words(s_cmd) == words(f_cmd),
        _ => false,
    }
}

fn compiles_first(command: &str) -> bool {
    let w = words(command);
    w.first().map(|p| program(p)).is_some_and(|p| {
        matches!(
            p,
            "cargo" | "go" | "make" | "mvn" | "gradle" | "gradlew" | "dotnet" | "swift" | "bazel"
        )
    })
}

static ENVIRONMENTAL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)connection refused|connection reset|connection aborted|ECONNREFUSED|ECONNRESET|ETIMEDOUT|EAI_AGAIN|ENOTFOUND|ENETUNREACH|timed out|TimeoutError|deadline exceeded|could not resolve host|name resolution|name or service not known|network is unreachable|rate.?limit|too many requests|\b429\b|service unavailable|\b50[234] (?:bad gateway|service|gateway)|spurious network error|failed to download|max retries exceeded|could not connect to server|urlopen error|ssl: certificate|certificate verify failed|socket hang up|temporarily unavailable|overloaded|no space left on device|killed by signal 9|out of memory",
    )
    .expect("valid pattern")
});

/// Failures of the environment (network, rate limits, timeouts, full
/// disks): they say nothing about an edit even when a stack names a file.
pub fn is_environmental(text: &str) -> bool {
    ENVIRONMENTAL.is_match(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_classified_by_program() {
        use Check::*;
        for (cmd, want) in [
            ("cargo build --release", Some(Build)),
            ("cd web && npx tsc --noEmit", Some(Build)),
            ("RUST_BACKTRACE=1 cargo test -p shop", Some(Test)),
            ("python3 -m pytest -q tests/", Some(Test)),
            ("pytest -x", Some(Test)),
            ("python3 -m app.main", Some(Run)),
            ("npm test", Some(Test)),
            ("npm run build", Some(Build)),
            ("node --test test/", Some(Test)),
            ("node dist/index.js", Some(Run)),
            ("gcc -Wall -o tool src/a.c", Some(Build)),
            ("make test", Some(Test)),
            ("./target/debug/shop 1 2", Some(Run)),
            ("timeout 60 cargo test", Some(Test)),
            ("ls -la", None),
            ("git status", None),
            ("cat src/a.rs", None),
            ("npm install left-pad", None),
            ("pip install requests", None),
            ("cargo add serde", None),
        ] {
            assert_eq!(classify(cmd), want, "{cmd}");
        }
    }

    #[test]
    fn coverage() {
        use Check::*;
        assert!(covers((Test, "cargo test"), Some((Build, "cargo build"))));
        assert!(!covers((Test, "node --test"), Some((Build, "npx tsc"))));
        assert!(!covers((Build, "cargo build"), Some((Test, "cargo test"))));
        assert!(covers(
            (Run, "python3 -m app"),
            Some((Run, "python3 -m app"))
        ));
        assert!(!covers(
            (Run, "python3 seed.py"),
            Some((Run, "python3 -m app"))
        ));
        assert!(covers((Build, "make"), None));
    }

    #[test]
    fn environmental_failures() {
        assert!(is_environmental(
            "urllib.error.URLError: <urlopen error [Errno 111] Connection refused>"
        ));
        assert!(is_environmental("npm error code ECONNREFUSED"));
        assert!(is_environmental("Error 429: rate_limit_error"));
        assert!(!is_environmental("error[E0308]: mismatched types"));
        assert!(!is_environmental("def test_timeout_is_configurable():"));
    }
}
