//! Failure output recorded from real tools, and what each one reports.
//!
//! Every text in `fixtures/` was produced by running the tool named in its
//! entry on a small broken project (`{root}` stands for the project
//! directory, `{venv}` for the virtualenv). An entry says which check
//! printed it, which checks the bug would fail, and the *stories* that
//! produce it: which file's edit introduces the bug, and which other files
//! the output names at the error (those must be quiet — not edited since
//! the check last passed — for the story to be unambiguous).

/// A kind of check an agent runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Check {
    Build,
    Test,
    Run,
}

/// How a check's result is reported.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Shape {
    Command,
    /// A `test_run` event with this framework (or a command, at random).
    TestRun(&'static str),
}

/// Who broke what, for one way a bug comes about.
#[derive(Clone, Copy, Debug)]
pub struct Story {
    /// The file whose edit introduces the bug.
    pub blame: &'static str,
    /// Files the output names at the error that must not have been edited
    /// since the check last passed.
    pub quiet: &'static [&'static str],
    /// Reason label for reports.
    pub label: &'static str,
}

#[derive(Clone, Copy, Debug)]
pub struct Bug {
    pub name: &'static str,
    pub text: &'static str,
    pub check: Check,
    pub command: &'static str,
    pub shape: Shape,
    /// Checks that fail while the bug is present.
    pub exposed_by: &'static [Check],
    pub stories: &'static [Story],
    /// Where the error is, as the tool prints it (for `error` events).
    pub location: Option<(&'static str, u32)>,
}

/// Output of a failure of the environment.
#[derive(Clone, Copy, Debug)]
pub struct Flake {
    pub name: &'static str,
    pub text: &'static str,
    pub command: &'static str,
    pub check: Option<Check>,
    pub shape: Shape,
}

macro_rules! fixture {
    ($f:literal) => {
        include_str!(concat!("../fixtures/", $f, ".txt"))
    };
}

const fn story(blame: &'static str, quiet: &'static [&'static str], label: &'static str) -> Story {
    Story {
        blame,
        quiet,
        label,
    }
}

use Check::*;

const COMPILED: &[Check] = &[Build, Test, Run];

/// A small project in one language.
#[derive(Clone, Copy, Debug)]
pub struct Language {
    pub name: &'static str,
    /// Files the agent works on (relative to the project root).
    pub files: &'static [&'static str],
    pub bugs: &'static [Bug],
    pub flakes: &'static [Flake],
    /// The commands of each check, as the agent types them.
    pub build: Option<&'static str>,
    pub test: &'static str,
    pub run: &'static str,
    /// Noise a long log starts with (one line, repeated with a counter).
    pub noise: &'static str,
}

pub const RUST: Language = Language {
    name: "rust",
    files: &[
        "src/lib.rs",
        "src/models.rs",
        "src/billing/mod.rs",
        "src/billing/models.rs",
        "src/billing/invoice.rs",
        "src/report.rs",
        "src/bin/shop.rs",
        "tests/api.rs",
        "Cargo.toml",
        "README.md",
    ],
    bugs: &[
        Bug {
            name: "rust_e0308_with_warning",
            text: fixture!("rust_e0308_with_warning"),
            check: Build,
            command: "cargo build",
            shape: Shape::Command,
            exposed_by: COMPILED,
            stories: &[story("src/billing/invoice.rs", &[], "rust_type_error")],
            location: Some(("src/billing/invoice.rs", 9)),
        },
        Bug {
            name: "rust_e0061_cross_file",
            text: fixture!("rust_e0061_cross_file"),
            check: Build,
            command: "cargo build",
            shape: Shape::Command,
            exposed_by: COMPILED,
            stories: &[
                story(
                    "src/billing/invoice.rs",
                    &["src/report.rs"],
                    "rust_signature_change_breaks_caller",
                ),
                story(
                    "src/report.rs",
                    &["src/billing/invoice.rs"],
                    "rust_wrong_call",
                ),
            ],
            location: Some(("src/report.rs", 5)),
        },
        Bug {
            name: "rust_e0425",
            text: fixture!("rust_e0425"),
            check: Build,
            command: "cargo check",
            shape: Shape::Command,
            exposed_by: COMPILED,
            stories: &[story("src/report.rs", &[], "rust_unresolved_name")],
            location: Some(("src/report.rs", 5)),
        },
        Bug {
            name: "rust_e0502",
            text: fixture!("rust_e0502"),
            check: Build,
            command: "cargo build",
            shape: Shape::Command,
            exposed_by: COMPILED,
            stories: &[story("src/report.rs", &[], "rust_borrow_error")],
            location: Some(("src/report.rs", 6)),
        },
        Bug {
            name: "rust_e0432",
            text: fixture!("rust_e0432"),
            check: Build,
            command: "cargo build",
            shape: Shape::Command,
            exposed_by: COMPILED,
            stories: &[story("src/report.rs", &[], "rust_bad_import")],
            location: Some(("src/report.rs", 1)),
        },
        Bug {
            name: "rust_test_unit_fail",
            text: fixture!("rust_test_unit_fail"),
            check: Test,
            command: "cargo test --lib",
            shape: Shape::Command,
            exposed_by: &[Test],
            stories: &[story("src/billing/invoice.rs", &[], "rust_unit_test_panic")],
            location: Some(("src/billing/invoice.rs", 20)),
        },
        Bug {
            name: "rust_test_fail_backtrace",
            text: fixture!("rust_test_fail_backtrace"),
            check: Test,
            command: "RUST_BACKTRACE=1 cargo test",
            shape: Shape::Command,
            exposed_by: &[Test],
            stories: &[story(
                "src/billing/invoice.rs",
                &[],
                "rust_unit_test_backtrace",
            )],
            location: Some(("src/billing/invoice.rs", 20)),
        },
        Bug {
            name: "rust_test_integration_fail",
            text: fixture!("rust_test_integration_fail"),
            check: Test,
            command: "cargo test --test api",
            shape: Shape::Command,
            exposed_by: &[Test],
            stories: &[story(
                "tests/api.rs",
                &[],
                "rust_integration_test_wrong_assertion",
            )],
            location: Some(("tests/api.rs", 7)),
        },
        Bug {
            name: "rust_run_panic",
            text: fixture!("rust_run_panic"),
            check: Run,
            command: "cargo run --bin shop",
            shape: Shape::Command,
            exposed_by: &[Run],
            stories: &[story("src/bin/shop.rs", &[], "rust_runtime_panic")],
            location: Some(("src/bin/shop.rs", 3)),
        },
    ],
    flakes: &[Flake {
        name: "cargo_registry_unreachable",
        text: fixture!("rust_network_registry"),
        command: "cargo build",
        check: Some(Build),
        shape: Shape::Command,
    }],
    build: Some("cargo build"),
    test: "cargo test",
    run: "cargo run --bin shop",
    noise: "   Compiling dependency-{n} v0.{n}.3",
};

pub const PYTHON: Language = Language {
    name: "python",
    files: &[
        "app/__init__.py",
        "app/models.py",
        "app/billing/__init__.py",
        "app/billing/models.py",
        "app/billing/invoice.py",
        "app/main.py",
        "app/report.py",
        "app/client.py",
        "tests/test_billing.py",
        "tests/test_models.py",
        "tests/test_client.py",
        "pyproject.toml",
    ],
    bugs: &[
        Bug {
            name: "py_run_typeerror",
            text: fixture!("py_run_typeerror"),
            check: Run,
            command: "python3 -m app.main",
            shape: Shape::Command,
            exposed_by: &[Run],
            stories: &[
                story(
                    "app/billing/models.py",
                    &["app/main.py"],
                    "py_crash_in_edited_module",
                ),
                story(
                    "app/main.py",
                    &["app/billing/models.py"],
                    "py_caller_passes_bad_value",
                ),
            ],
            location: Some(("app/billing/models.py", 11)),
        },
        Bug {
            name: "py_pytest_exception_in_app",
            text: fixture!("py_pytest_exception_in_app"),
            check: Test,
            command: "python3 -m pytest tests/test_billing.py",
            shape: Shape::TestRun("pytest"),
            exposed_by: &[Test],
            stories: &[
                story(
                    "app/billing/models.py",
                    &["tests/test_billing.py"],
                    "pytest_exception_in_app",
                ),
                story(
                    "tests/test_billing.py",
                    &["app/billing/models.py"],
                    "pytest_new_test_misuses_api",
                ),
            ],
            location: Some(("app/billing/models.py", 11)),
        },
        Bug {
            name: "py_pytest_assert_in_test",
            text: fixture!("py_pytest_assert_in_test"),
            check: Test,
            command: "python3 -m pytest tests/test_billing.py",
            shape: Shape::TestRun("pytest"),
            exposed_by: &[Test],
            stories: &[
                story(
                    "tests/test_billing.py",
                    &["app/billing/models.py", "app/billing/invoice.py"],
                    "pytest_wrong_expectation",
                ),
                story(
                    "app/billing/models.py",
                    &[
                        "tests/test_billing.py",
                        "app/billing/invoice.py",
                        "app/billing/__init__.py",
                    ],
                    "pytest_behaviour_change_subject",
                ),
            ],
            location: Some(("tests/test_billing.py", 9)),
        },
        Bug {
            name: "py_pytest_q_assert",
            text: fixture!("py_pytest_q_assert"),
            check: Test,
            command: "pytest -q tests/test_models.py",
            shape: Shape::TestRun("pytest"),
            exposed_by: &[Test],
            stories: &[
                story(
                    "tests/test_models.py",
                    &["app/models.py", "app/billing/models.py"],
                    "pytest_wrong_expectation",
                ),
                story(
                    "app/models.py",
                    &["tests/test_models.py", "app/billing/models.py"],
                    "pytest_behaviour_change_subject",
                ),
            ],
            location: Some(("tests/test_models.py", 5)),
        },
        Bug {
            name: "py_syntax_error",
            text: fixture!("py_syntax_error"),
            check: Run,
            command: "python3 -c 'import app.models'",
            shape: Shape::Command,
            exposed_by: &[Run],
            stories: &[story("app/models.py", &[], "py_syntax_error")],
            location: Some(("app/models.py", 10)),
        },
        Bug {
            name: "py_pytest_collect_syntax",
            text: fixture!("py_pytest_collect_syntax"),
            check: Test,
            command: "python3 -m pytest tests/test_models.py",
            shape: Shape::Command,
            exposed_by: &[Test],
            stories: &[story(
                "app/models.py",
                &[],
                "pytest_collection_syntax_error",
            )],
            location: Some(("app/models.py", 10)),
        },
        Bug {
            name: "py_import_error",
            text: fixture!("py_import_error"),
            check: Run,
            command: "python3 -c 'import app.report'",
            shape: Shape::Command,
            exposed_by: &[Run],
            stories: &[
                story("app/report.py", &["app/billing/models.py"], "py_bad_import"),
                story(
                    "app/billing/models.py",
                    &["app/report.py"],
                    "py_renamed_function_breaks_importer",
                ),
            ],
            location: Some(("app/report.py", 1)),
        },
    ],
    flakes: &[
        Flake {
            name: "pytest_connection_refused",
            text: fixture!("py_pytest_network"),
            command: "python3 -m pytest tests/test_client.py",
            check: Some(Test),
            shape: Shape::TestRun("pytest"),
        },
        Flake {
            name: "pip_index_unreachable",
            text: fixture!("pip_network"),
            command: "pip install requests",
            check: None,
            shape: Shape::Command,
        },
    ],
    build: None,
    test: "python3 -m pytest",
    run: "python3 -m app.main",
    noise: "tests/test_generated_{n}.py::test_case_{n} PASSED",
};

pub const TYPESCRIPT: Language = Language {
    name: "typescript",
    files: &[
        "src/index.ts",
        "src/api/client.ts",
        "src/billing/models.ts",
        "src/models.ts",
        "test/client.test.js",
        "package.json",
        "tsconfig.json",
    ],
    bugs: &[
        Bug {
            name: "ts_tsc_ts2322",
            text: fixture!("ts_tsc_ts2322"),
            check: Build,
            command: "npx tsc --pretty false",
            shape: Shape::Command,
            exposed_by: &[Build],
            stories: &[story("src/api/client.ts", &[], "tsc_type_error")],
            location: Some(("src/api/client.ts", 4)),
        },
        Bug {
            name: "ts_tsc_ts2322_b",
            text: fixture!("ts_tsc_ts2322_b"),
            check: Build,
            command: "npx tsc --pretty false",
            shape: Shape::Command,
            exposed_by: &[Build],
            stories: &[story("src/index.ts", &[], "tsc_type_error")],
            location: Some(("src/index.ts", 3)),
        },
        Bug {
            name: "ts_tsc_ts2554",
            text: fixture!("ts_tsc_ts2554"),
            check: Build,
            command: "npm run build",
            shape: Shape::Command,
            exposed_by: &[Build],
            stories: &[story("src/index.ts", &[], "tsc_argument_count")],
            location: Some(("src/index.ts", 3)),
        },
        Bug {
            name: "ts_tsc_ts2554_pretty",
            text: fixture!("ts_tsc_ts2554_pretty"),
            check: Build,
            command: "npx tsc --pretty",
            shape: Shape::Command,
            exposed_by: &[Build],
            stories: &[story("src/index.ts", &[], "tsc_pretty_argument_count")],
            location: Some(("src/index.ts", 3)),
        },
        Bug {
            name: "node_runtime_typeerror_sourcemap",
            text: fixture!("node_runtime_typeerror_sourcemap"),
            check: Run,
            command: "node --enable-source-maps dist/index.js",
            shape: Shape::Command,
            exposed_by: &[Run],
            stories: &[
                story(
                    "src/api/client.ts",
                    &["src/index.ts"],
                    "node_crash_in_edited_module",
                ),
                story(
                    "src/index.ts",
                    &["src/api/client.ts"],
                    "node_caller_passes_bad_value",
                ),
            ],
            location: Some(("src/api/client.ts", 9)),
        },
        Bug {
            name: "node_test_fail",
            text: fixture!("node_test_fail"),
            check: Test,
            command: "node --test test/",
            shape: Shape::TestRun("node:test"),
            exposed_by: &[Test],
            stories: &[
                story(
                    "test/client.test.js",
                    &["src/api/client.ts"],
                    "node_test_wrong_expectation",
                ),
                story(
                    "src/api/client.ts",
                    &["test/client.test.js"],
                    "node_test_behaviour_change_subject",
                ),
            ],
            location: Some(("test/client.test.js", 6)),
        },
    ],
    flakes: &[Flake {
        name: "npm_registry_refused",
        text: fixture!("npm_network"),
        command: "npm install left-pad",
        check: None,
        shape: Shape::Command,
    }],
    build: Some("npx tsc"),
    test: "node --test test/",
    run: "node --enable-source-maps dist/index.js",
    noise: "npm warn deprecated package-{n}@1.{n}.0: this version is no longer supported",
};

pub const C: Language = Language {
    name: "c",
    files: &[
        "src/parser.c",
        "src/lexer.c",
        "src/lexer.h",
        "Makefile",
        "README.md",
    ],
    bugs: &[
        Bug {
            name: "c_gcc_error_with_warning",
            text: fixture!("c_gcc_error_with_warning"),
            check: Build,
            command: "gcc -Wall -o tool src/lexer.c src/parser.c",
            shape: Shape::Command,
            exposed_by: &[Build, Test],
            stories: &[story("src/parser.c", &[], "gcc_syntax_error")],
            location: Some(("src/parser.c", 7)),
        },
        Bug {
            name: "c_gcc_link_error",
            text: fixture!("c_gcc_link_error"),
            check: Build,
            command: "gcc -Wall -o tool src/lexer.c src/parser.c",
            shape: Shape::Command,
            exposed_by: &[Build, Test],
            stories: &[story("src/parser.c", &[], "linker_undefined_reference")],
            location: None,
        },
    ],
    flakes: &[],
    build: Some("make"),
    test: "make test",
    run: "./tool input.txt",
    noise: "gcc -O2 -c -o build/gen_{n}.o build/gen_{n}.c",
};

pub const LANGUAGES: &[Language] = &[RUST, PYTHON, TYPESCRIPT, C];

/// Every recorded output by file name (without `.txt`), for tests in other
/// crates that need real tool output.
pub const RECORDED: &[(&str, &str)] = &[
    (
        "c_gcc_error_with_warning",
        fixture!("c_gcc_error_with_warning"),
    ),
    ("c_gcc_link_error", fixture!("c_gcc_link_error")),
    (
        "node_runtime_typeerror_sourcemap",
        fixture!("node_runtime_typeerror_sourcemap"),
    ),
    ("node_test_fail", fixture!("node_test_fail")),
    ("npm_network", fixture!("npm_network")),
    ("pip_network", fixture!("pip_network")),
    ("py_import_error", fixture!("py_import_error")),
    (
        "py_pytest_assert_in_test",
        fixture!("py_pytest_assert_in_test"),
    ),
    (
        "py_pytest_collect_syntax",
        fixture!("py_pytest_collect_syntax"),
    ),
    (
        "py_pytest_exception_in_app",
        fixture!("py_pytest_exception_in_app"),
    ),
    ("py_pytest_network", fixture!("py_pytest_network")),
    ("py_pytest_q_assert", fixture!("py_pytest_q_assert")),
    ("py_run_typeerror", fixture!("py_run_typeerror")),
    ("py_syntax_error", fixture!("py_syntax_error")),
    ("rust_e0061_cross_file", fixture!("rust_e0061_cross_file")),
    (
        "rust_e0308_with_warning",
        fixture!("rust_e0308_with_warning"),
    ),
    ("rust_e0425", fixture!("rust_e0425")),
    ("rust_e0432", fixture!("rust_e0432")),
    ("rust_e0502", fixture!("rust_e0502")),
    ("rust_network_registry", fixture!("rust_network_registry")),
    ("rust_run_panic", fixture!("rust_run_panic")),
    (
        "rust_test_fail_backtrace",
        fixture!("rust_test_fail_backtrace"),
    ),
    (
        "rust_test_integration_fail",
        fixture!("rust_test_integration_fail"),
    ),
    ("rust_test_unit_fail", fixture!("rust_test_unit_fail")),
    ("ts_tsc_ts2322", fixture!("ts_tsc_ts2322")),
    ("ts_tsc_ts2322_b", fixture!("ts_tsc_ts2322_b")),
    ("ts_tsc_ts2554", fixture!("ts_tsc_ts2554")),
    ("ts_tsc_ts2554_pretty", fixture!("ts_tsc_ts2554_pretty")),
];

/// The recorded output `name` (a file of `fixtures/` without `.txt`).
pub fn recorded(name: &str) -> Option<&'static str> {
    RECORDED.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}
