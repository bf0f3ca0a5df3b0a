//! What real tool output names: the fixtures were recorded from rustc,
//! cargo, CPython, pytest, tsc, Node and gcc (shared/eval/fixtures).

use super::*;

macro_rules! fixture {
    ($f:literal) => {
        achilles_eval::fixtures::recorded($f)
            .expect("a recorded fixture")
            .replace("{root}", "/repo")
            .replace("{venv}", "/repo/.venv")
    };
}

fn roles(text: &str, cwd: Option<&str>) -> Vec<(String, Role)> {
    extract(text, cwd)
        .into_iter()
        .map(|n| (n.path, n.role))
        .collect()
}

fn role_of(text: &str, cwd: Option<&str>, path: &str) -> Option<Role> {
    roles(text, cwd)
        .into_iter()
        .find(|(p, _)| p == path)
        .map(|(_, r)| r)
}

#[test]
fn the_error_location_is_what_each_tool_reports_as_the_error() {
    let cwd = Some("/repo");
    for (text, location) in [
        (
            fixture!("rust_e0308_with_warning"),
            "/repo/src/billing/invoice.rs",
        ),
        (fixture!("rust_e0061_cross_file"), "/repo/src/report.rs"),
        (fixture!("rust_e0432"), "/repo/src/report.rs"),
        (
            fixture!("rust_test_unit_fail"),
            "/repo/src/billing/invoice.rs",
        ),
        (
            fixture!("rust_test_fail_backtrace"),
            "/repo/src/billing/invoice.rs",
        ),
        (fixture!("rust_test_integration_fail"), "/repo/tests/api.rs"),
        (fixture!("rust_run_panic"), "/repo/src/bin/shop.rs"),
        (fixture!("py_run_typeerror"), "/repo/app/billing/models.py"),
        (
            fixture!("py_pytest_exception_in_app"),
            "/repo/app/billing/models.py",
        ),
        (
            fixture!("py_pytest_assert_in_test"),
            "/repo/tests/test_billing.py",
        ),
        (fixture!("py_pytest_collect_syntax"), "/repo/app/models.py"),
        (fixture!("py_syntax_error"), "/repo/app/models.py"),
        (fixture!("py_import_error"), "/repo/app/report.py"),
        (fixture!("ts_tsc_ts2322"), "/repo/src/api/client.ts"),
        (fixture!("ts_tsc_ts2554_pretty"), "/repo/src/index.ts"),
        (
            fixture!("node_runtime_typeerror_sourcemap"),
            "/repo/src/api/client.ts",
        ),
        (fixture!("node_test_fail"), "/repo/test/client.test.js"),
        (fixture!("c_gcc_error_with_warning"), "/repo/src/parser.c"),
    ] {
        let got = roles(&text, cwd);
        assert_eq!(
            got.first(),
            Some(&(location.to_owned(), Role::Location)),
            "{text}\n{got:?}"
        );
        let locations: Vec<_> = got.iter().filter(|(_, r)| *r == Role::Location).collect();
        assert_eq!(locations.len(), 1, "one location: {got:?}");
    }
}

#[test]
fn context_is_not_the_error() {
    let cwd = Some("/repo");
    // A warning about another file.
    let rust = fixture!("rust_e0308_with_warning");
    assert_eq!(
        role_of(&rust, cwd, "/repo/src/models.rs"),
        Some(Role::Context)
    );
    let c = fixture!("c_gcc_error_with_warning");
    assert_eq!(role_of(&c, cwd, "/repo/src/lexer.c"), Some(Role::Context));
    // The definition a note points at is related, not the location.
    let cross = fixture!("rust_e0061_cross_file");
    assert_eq!(
        role_of(&cross, cwd, "/repo/src/billing/invoice.rs"),
        Some(Role::Related)
    );
    // The test file that reports an exception raised in app code.
    let py = fixture!("py_pytest_exception_in_app");
    assert_eq!(
        role_of(&py, cwd, "/repo/tests/test_billing.py"),
        Some(Role::Related)
    );
    // Library frames are never named.
    let net = fixture!("py_pytest_network");
    assert!(roles(&net, cwd)
        .iter()
        .all(|(p, _)| p.starts_with("/repo/")));
    assert_eq!(
        role_of(&net, cwd, "/repo/app/client.py"),
        Some(Role::Location)
    );
    // The linker's bare file name.
    let link = extract(&fixture!("c_gcc_link_error"), None);
    assert!(
        link.iter()
            .any(|n| n.path == "parser.c" && n.bare && n.role == Role::Location),
        "{link:?}"
    );
}

#[test]
fn progress_lines_are_context() {
    let text = "tests/test_a.py ....                 [ 40%]\n\
                tests/test_b.py::test_x PASSED\n\
                     Running tests/api.rs (target/debug/deps/api-1)\n\
                PASS src/sum.test.ts\n";
    for (p, r) in roles(text, None) {
        assert_eq!(r, Role::Context, "{p}");
    }
}

#[test]
fn urls_and_dotted_names_are_not_files() {
    let text = "error: failed to download from `https://index.crates.io/config.json`\n\
                at cfg.customer.name (app.billing.models)";
    assert_eq!(roles(text, None), vec![]);
}

#[test]
fn other_common_shapes() {
    // jest
    let jest = "FAIL src/__tests__/cart.test.ts\n  ● cart › adds items\n\n    expect(received).toBe(expected)\n\n      at Object.<anonymous> (src/__tests__/cart.test.ts:12:25)\n";
    assert_eq!(
        roles(jest, None)[0],
        ("src/__tests__/cart.test.ts".to_owned(), Role::Location)
    );
    // go build and go test
    let go = "# shop/billing\n./billing/invoice.go:12:5: undefined: subtotal\n";
    assert_eq!(
        roles(go, Some("/repo"))[0],
        ("/repo/billing/invoice.go".to_owned(), Role::Location)
    );
    let go_test = "--- FAIL: TestTotal (0.00s)\n    invoice_test.go:9: got 1100, want 1000\nFAIL\n";
    let named = extract(go_test, None);
    assert_eq!(
        (named[0].path.as_str(), named[0].role, named[0].bare),
        ("invoice_test.go", Role::Location, true)
    );
    // mypy, eslint-style header, vitest
    let mypy =
        "app/billing/models.py:12: error: Incompatible return value type\nFound 1 error in 1 file";
    assert_eq!(
        role_of(mypy, None, "app/billing/models.py"),
        Some(Role::Location)
    );
    let vitest = " FAIL  src/sum.test.ts > sum > adds\nAssertionError: expected 3 to be 4\n ❯ src/sum.test.ts:5:17\n";
    assert_eq!(
        role_of(vitest, None, "src/sum.test.ts"),
        Some(Role::Location)
    );
}
