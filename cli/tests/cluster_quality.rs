//! `achilles cluster`, the real binary, scored on the eight public LogHub-2k
//! samples vendored in `tests/data/loghub` with the project's own
//! grouping-accuracy evaluator: one process per dataset, labels read back
//! from stdout, exactly what a user runs. Nothing outside the repository is
//! needed.

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};

use achilles_cluster::eval::grouping_accuracy;

const DATASETS: [&str; 8] = [
    "Android",
    "Apache",
    "BGL",
    "HDFS",
    "Hadoop",
    "HealthApp",
    "Linux",
    "Proxifier",
];

/// Runs `achilles cluster` with `input` on stdin; returns its stdout lines.
fn cluster(input: &str) -> Vec<String> {
    let out = run_cluster(input, &[], None);
    assert!(
        out.status.success(),
        "achilles cluster failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("labels are UTF-8")
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs `achilles cluster ARGS`, optionally with `ACHILLES_CONFIG=config`.
fn run_cluster(
    input: &str,
    args: &[&str],
    config: Option<&std::path::Path>,
) -> std::process::Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_achilles"));
    cmd.arg("cluster").args(args);
    match config {
        Some(c) => cmd.env("ACHILLES_CONFIG", c),
        None => cmd.env_remove("ACHILLES_CONFIG"),
    };
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("achilles starts");
    let mut stdin = child.stdin.take().expect("piped stdin");
    let data = input.to_owned();
    // Write from another thread so a full stdout pipe cannot deadlock us.
    let writer = std::thread::spawn(move || stdin.write_all(data.as_bytes()));
    let out = child.wait_with_output().expect("achilles runs");
    // A command that does not read stdin (`--eval`, a refused configuration)
    // may close it early; the label counts are what the tests check.
    let _ = writer.join().expect("writer thread");
    out
}

#[test]
fn loghub_grouping_accuracy_meets_the_targets() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/loghub");
    let mut report = String::new();
    let mut sum = 0.0;
    let mut worst = 1.0f64;
    for name in DATASETS {
        let read = |suffix: &str| {
            let p = dir.join(format!("{name}.{suffix}.txt"));
            std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("vendored sample {} unreadable: {e}", p.display()))
        };
        let msgs = read("messages");
        let truth: Vec<String> = read("truth").lines().map(str::to_owned).collect();
        let labels = cluster(&msgs);
        assert_eq!(labels.len(), truth.len(), "{name}: one label per line");
        let ga = grouping_accuracy(&truth, &labels);
        report.push_str(&format!("{name:10} GA {ga:.3}\n"));
        sum += ga;
        worst = worst.min(ga);
    }
    let avg = sum / DATASETS.len() as f64;
    println!("{report}average {avg:.3}");
    assert!(avg >= 0.98, "average GA {avg:.3} < 0.98:\n{report}");
    assert!(worst >= 0.93, "a dataset is below 0.93:\n{report}");
}

#[test]
fn one_label_per_line_even_for_odd_input() {
    let labels = cluster("a 1\r\n\n\u{0}x\nlast without newline");
    assert_eq!(labels.len(), 4);
    assert!(labels.iter().all(|l| l.len() == 16));
}

#[test]
fn configured_masking_rules_apply_and_bad_ones_are_refused() {
    let dir = std::env::temp_dir().join(format!("achilles-cluster-rules-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let good = dir.join("good.toml");
    std::fs::write(
        &good,
        "[[cluster.rules]]\nname = \"acme-nodes\"\npattern = '\\b(alpha|beta)-node\\b'\ntenants = [\"acme\"]\n",
    )
    .expect("write config");
    let input = "lost alpha-node\nlost beta-node\n";
    let labels = |args: &[&str]| {
        let out = run_cluster(input, args, Some(&good));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8")
    };
    let acme = labels(&["--online", "--tenant", "acme"]);
    let acme: Vec<&str> = acme.lines().collect();
    assert_eq!(acme[0], acme[1], "the tenant's rule masks the node names");
    let other = labels(&["--online", "--tenant", "other"]);
    let other: Vec<&str> = other.lines().collect();
    assert_ne!(other[0], other[1], "other tenants are unaffected");

    let bad = dir.join("bad.toml");
    std::fs::write(
        &bad,
        "[[cluster.rules]]\nname = \"broken-rule\"\npattern = '(a'\n",
    )
    .expect("write");
    let out = run_cluster(input, &[], Some(&bad));
    assert_eq!(out.status.code(), Some(2), "bad configuration is bad input");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("broken-rule") && err.contains("invalid pattern"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn eval_scores_labelled_directories() {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/data/loghub");
    let dir = dir.to_str().expect("utf-8 path");
    let out = run_cluster("", &["--eval", dir, "--volume", "16000"], None);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(
        text.lines().filter(|l| l.contains(" GA ")).count(),
        9,
        "{text}"
    );
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.starts_with("average GA ") && l.contains("msg/s on 16000 messages")),
        "{text}"
    );
}
