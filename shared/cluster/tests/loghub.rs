//! End-to-end accuracy check on the eight LogHub-2k datasets shipped in
//! `/work/shared/data/loghub` (read in place, never copied): clusters every
//! dataset exactly like `achilles cluster` does (one fresh batch per
//! dataset, default configuration) and scores grouping accuracy the way
//! `shared/tools/loghub_eval.py` does.

use std::collections::HashMap;
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
        "/../../../shared/data/loghub"
    ))
}

fn read_lines(path: &PathBuf) -> Vec<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => s.lines().map(str::to_string).collect(),
        Err(e) => panic!(
            "LogHub data missing: cannot read {} ({e}). The accuracy test needs the shared \
             LogHub-2k datasets at <repo>/../shared/data/loghub; it must not be skipped.",
            path.display()
        ),
    }
}

/// Literal port of `grouping_accuracy` in `loghub_eval.py`: a predicted
/// cluster counts when its member set equals the member set of the truth
/// template of its first member.
fn ga_like_python(truth: &[String], pred: &[String]) -> f64 {
    assert_eq!(
        truth.len(),
        pred.len(),
        "expected {} labels, got {}",
        truth.len(),
        pred.len()
    );
    let mut by_truth: HashMap<&str, Vec<usize>> = HashMap::new();
    let mut by_pred: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, (t, p)) in truth.iter().zip(pred).enumerate() {
        by_truth.entry(t).or_default().push(i);
        by_pred.entry(p).or_default().push(i);
    }
    let correct: usize = by_pred
        .values()
        .filter(|members| by_truth[truth[members[0]].as_str()] == **members)
        .map(Vec::len)
        .sum();
    correct as f64 / truth.len() as f64
}

#[test]
fn loghub_grouping_accuracy() {
    let dir = data_dir();
    assert!(
        dir.is_dir(),
        "LogHub data directory {} not found; this test fails rather than skips without it",
        dir.display()
    );
    let mut total = 0.0;
    let mut report = String::new();
    let mut worst = ("", 1.0f64);
    for name in DATASETS {
        let msgs = read_lines(&dir.join(format!("{name}.messages.txt")));
        let truth = read_lines(&dir.join(format!("{name}.truth.txt")));
        assert_eq!(
            msgs.len(),
            truth.len(),
            "{name}: messages and truth differ in length"
        );
        let refs: Vec<&str> = msgs.iter().map(String::as_str).collect();
        let labels: Vec<String> = cluster_batch(&refs, &Config::default())
            .iter()
            .map(|id| id.to_string())
            .collect();
        let ga = ga_like_python(&truth, &labels);
        assert!(
            (ga - grouping_accuracy(&truth, &labels)).abs() < 1e-12,
            "{name}: GA implementations disagree"
        );
        report.push_str(&format!("{name:10} GA {ga:.3}\n"));
        total += ga;
        if ga < worst.1 {
            worst = (name, ga);
        }
    }
    let avg = total / DATASETS.len() as f64;
    println!("{report}average GA {avg:.3}");
    assert!(avg >= 0.90, "average GA {avg:.3} < 0.90\n{report}");
    assert!(
        worst.1 >= 0.70,
        "{} GA {:.3} < 0.70\n{report}",
        worst.0,
        worst.1
    );
}

#[test]
fn ga_port_matches_known_values() {
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(
        ga_like_python(&s(&["a", "a", "b"]), &s(&["x", "x", "y"])),
        1.0
    );
    assert!((ga_like_python(&s(&["a", "a", "b"]), &s(&["x", "y", "y"])) - 0.0).abs() < 1e-12);
    assert!(
        (ga_like_python(&s(&["a", "a", "b", "c"]), &s(&["x", "x", "y", "y"])) - 0.5).abs() < 1e-12
    );
}
