//! `achilles cluster`, the real binary, scored on the eight public LogHub-2k
//! samples vendored in `tests/data/loghub` with the project's own
//! grouping-accuracy evaluator: one process per dataset, labels read back
//! from stdout, exactly what a user runs. Nothing outside the repository is
//! needed.

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
    let mut child = Command::new(env!("CARGO_BIN_EXE_achilles"))
        .arg("cluster")
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
    writer
        .join()
        .expect("writer thread")
        .expect("stdin written");
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
