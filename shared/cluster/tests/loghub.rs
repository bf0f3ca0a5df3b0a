//! End-to-end accuracy on the eight public LogHub-2k samples vendored in
//! `tests/data/loghub` (see its README for the source and licence): every
//! dataset is clustered exactly like `achilles cluster` does (one fresh
//! batch per dataset, default configuration) and scored with the project's
//! own grouping-accuracy evaluator ([`achilles_cluster::eval`]).

#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing
use std::path::PathBuf;

use achilles_cluster::{cluster_batch, eval::grouping_accuracy, Config};

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

fn data_dir() -> PathBuf {
    PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../tests/data/loghub"
    ))
}

fn read_lines(path: &PathBuf) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => s.lines().map(str::to_string).collect(),
        Err(e) => panic!("vendored LogHub sample {} unreadable: {e}", path.display()),
    }
}

#[test]
fn loghub_grouping_accuracy() {
    let dir = data_dir();
    let mut total = 0.0;
    let mut report = String::new();
    let mut worst = ("", 1.0f64);
    for name in DATASETS {
        let msgs = read_lines(&dir.join(format!("{name}.messages.txt")));
        let truth = read_lines(&dir.join(format!("{name}.truth.txt")));
        assert_eq!(
            msgs.len(),
            2000,
            "{name}: a LogHub-2k sample has 2000 lines"
        );
        assert_eq!(
            truth.len(),
            msgs.len(),
            "{name}: one truth label per message"
        );
        let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
        let labels = cluster_batch(&refs, &Config::default());
        let ga = grouping_accuracy(&truth, &labels);
        report.push_str(&format!("{name:10} GA {ga:.3}\n"));
        total += ga;
        if ga < worst.1 {
            worst = (name, ga);
        }
    }
    let avg = total / DATASETS.len() as f64;
    println!("{report}average GA {avg:.3}");
    assert!(avg >= 0.98, "average GA {avg:.3} < 0.98\n{report}");
    assert!(
        worst.1 >= 0.93,
        "{} GA {:.3} < 0.93\n{report}",
        worst.0,
        worst.1
    );
}
