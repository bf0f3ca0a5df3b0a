//! `achilles cluster` scored by the kit's own evaluator on the eight
//! LogHub-2k datasets: average grouping accuracy at least 0.90, none below
//! 0.70. Runs the real binary through `../shared/tools/loghub_eval.py`, so
//! what is measured is exactly what users run.

use std::path::PathBuf;
use std::process::Command;

#[test]
fn loghub_grouping_accuracy_meets_the_targets() {
    let kit = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared");
    let script = kit.join("tools/loghub_eval.py");
    assert!(
        script.exists(),
        "the kit is missing: {} (it lives beside the checkout)",
        script.display()
    );
    let cmd = format!("{} cluster", env!("CARGO_BIN_EXE_achilles"));
    let out = Command::new("python3")
        .arg(&script)
        .args(["--cmd", &cmd, "--volume", "20000"])
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "evaluator failed: {text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut per_dataset = Vec::new();
    for line in text.lines() {
        if line.starts_with("average") {
            continue;
        }
        if let Some((name, rest)) = line.split_once(" GA ") {
            let ga: f64 = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .expect("GA value");
            per_dataset.push((name.trim().to_owned(), ga));
        }
    }
    assert_eq!(per_dataset.len(), 8, "eight datasets expected:\n{text}");
    for (name, ga) in &per_dataset {
        assert!(*ga >= 0.70, "{name} GA {ga} is below 0.70");
    }
    let avg = per_dataset.iter().map(|(_, g)| g).sum::<f64>() / 8.0;
    assert!(avg >= 0.90, "average GA {avg:.3} is below 0.90:\n{text}");
}
