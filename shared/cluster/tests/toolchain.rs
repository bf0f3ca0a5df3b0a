//! Clustering on real coding-agent errors: the labelled corpus in
//! `tests/data/toolchain` was produced by running rustc, cargo, gcc, g++,
//! javac, python3, pytest, node and tsc on generated broken programs
//! (`scripts/toolchain_corpus.py`, fixed seed); each message's truth is the
//! tool's own error code or message template. The corpus is committed, so
//! this test needs none of those tools.

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
use std::collections::{HashMap, HashSet};
use std::path::PathBuf;

use achilles_cluster::{cluster_batch, eval::grouping_accuracy, Clusterer, Config};

fn corpus() -> (Vec<String>, Vec<String>) {
    let dir = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/toolchain"
    ));
    let read = |name: &str| -> Vec<String> {
        let p = dir.join(name);
        std::fs::read_to_string(&p)
            .unwrap_or_else(|e| panic!("toolchain corpus {} unreadable: {e}", p.display()))
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let (msgs, truth) = (read("toolchain.messages.txt"), read("toolchain.truth.txt"));
    assert_eq!(msgs.len(), truth.len(), "one label per message");
    (msgs, truth)
}

#[test]
fn toolchain_errors_group_by_the_tools_own_templates() {
    let (msgs, truth) = corpus();
    assert!(msgs.len() >= 3000, "the corpus has {} messages", msgs.len());
    let kinds: HashSet<&str> = truth.iter().map(String::as_str).collect();
    assert!(kinds.len() >= 60, "{} kinds", kinds.len());
    let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
    let labels = cluster_batch(&refs, &Config::default());
    let ga = grouping_accuracy(&truth, &labels);
    // Per tool, to say where a regression is.
    let mut by_tool: HashMap<&str, (Vec<&str>, Vec<_>)> = HashMap::new();
    for (t, l) in truth.iter().zip(&labels) {
        let tool = t.split('/').next().unwrap_or("");
        let e = by_tool.entry(tool).or_default();
        e.0.push(t);
        e.1.push(*l);
    }
    let mut report: Vec<String> = by_tool
        .iter()
        .map(|(tool, (t, l))| format!("{tool:8} GA {:.3} on {}", grouping_accuracy(t, l), t.len()))
        .collect();
    report.sort();
    println!("toolchain GA {ga:.3}\n{}", report.join("\n"));
    assert!(
        ga >= 0.97,
        "toolchain GA {ga:.3} < 0.97\n{}",
        report.join("\n")
    );
}

/// The pattern of the cluster holding the first message that contains `needle`.
fn pattern_of(c: &mut Clusterer, msgs: &[String], needle: &str) -> String {
    let m = msgs
        .iter()
        .find(|m| m.contains(needle))
        .unwrap_or_else(|| panic!("no message contains {needle:?}"));
    let id = c.observe(m);
    c.template(id).unwrap_or_default().to_owned()
}

#[test]
fn templates_read_like_the_tools_messages() {
    let (msgs, _) = corpus();
    let mut c = Clusterer::new(Config::default());
    for m in &msgs {
        c.observe(m);
    }
    c.rebuild();
    let cases = [
        (
            "error[E0308]: mismatched types",
            "<*>: error[E0308]: mismatched types: expected `<*>`, found `<*>`",
        ),
        (
            "error[E0599]: no method named",
            "<*>: error[E0599]: no method named `<*>` found for struct `<*>` in the current scope: method not found in `<*>`",
        ),
        (
            "has no member named",
            "<*>: error: '<*>' has no member named '<*>'",
        ),
        (
            "NameError: name",
            "NameError: name '<*>' is not defined",
        ),
        (
            "error TS2322",
            "<*>: error TS2322: Type '<*>' is not assignable to type '<*>'.",
        ),
        (
            "error: incompatible types:",
            "<*>: error: incompatible types: <*> cannot be converted to <*>",
        ),
        (
            "is public, should be declared in a file named",
            "<*>: error: class <*> is public, should be declared in a file named <*>",
        ),
        (
            "positional argument but",
            "TypeError: <*>() takes <*> positional argument<*> but <*> <*> given",
        ),
        (
            "Cannot read properties of undefined",
            "TypeError: Cannot read properties of undefined (reading '<*>')",
        ),
    ];
    let mut wrong = Vec::new();
    for (needle, want) in cases {
        let got = pattern_of(&mut c, &msgs, needle);
        if got != want {
            wrong.push(format!("{needle}:\n   got  {got}\n   want {want}"));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}
