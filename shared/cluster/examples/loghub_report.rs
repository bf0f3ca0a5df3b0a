//! Development aid: per-dataset grouping accuracy on the shared LogHub-2k
//! data, plus (with `N [DATASET]`) the N largest grouping errors, showing the
//! masked template and one raw message for each side of a split or merge.
//!
//! Usage: `cargo run --release --example loghub_report [N [DATASET]]`
//! (`MODE=mask` scores the masking stage alone, without merging).

use std::collections::HashMap;
use std::io;

use achilles_cluster::{cluster_batch, eval::grouping_accuracy, mask, Clusterer, Config};

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

/// Predicted labels, as cluster patterns so that reports are readable.
fn predict(msgs: &[&str]) -> Vec<String> {
    if std::env::var("MODE").as_deref() == Ok("mask") {
        return msgs.iter().map(|m| mask(m)).collect();
    }
    let ids = cluster_batch(msgs, &Config::default());
    // A clusterer fed the same set and rebuilt knows the same patterns.
    let mut c = Clusterer::new(Config::default());
    msgs.iter().for_each(|m| {
        c.observe(m);
    });
    c.rebuild();
    ids.iter()
        .map(|&id| {
            c.template(id)
                .map_or_else(|| id.to_string(), str::to_string)
        })
        .collect()
}

fn report_errors(n: usize, msgs: &[&str], truth: &[&str], pred: &[String]) {
    let mut t2p: HashMap<&str, HashMap<&str, (usize, usize)>> = HashMap::new();
    let mut p2t: HashMap<&str, HashMap<&str, usize>> = HashMap::new();
    for (i, (t, p)) in truth.iter().zip(pred).enumerate() {
        t2p.entry(t).or_default().entry(p).or_insert((0, i)).0 += 1;
        *p2t.entry(p).or_default().entry(t).or_default() += 1;
    }
    let size = |v: &HashMap<&str, (usize, usize)>| v.values().map(|x| x.0).sum::<usize>();
    let mut split: Vec<_> = t2p.iter().filter(|(_, v)| v.len() > 1).collect();
    split.sort_by_key(|(t, v)| (std::cmp::Reverse(size(v)), **t));
    println!("  -- truth templates split across clusters:");
    for (t, v) in split.iter().take(n) {
        println!("  {t} n={} into {}", size(v), v.len());
        let mut parts: Vec<_> = v.iter().collect();
        parts.sort_by_key(|(p, c)| (std::cmp::Reverse(c.0), **p));
        for (p, (c, i)) in parts.iter().take(6) {
            let raw: String = msgs[*i].chars().take(160).collect();
            println!("      {c:4} {p}\n           | {raw}");
        }
    }
    let mut mixed: Vec<_> = p2t.iter().filter(|(_, v)| v.len() > 1).collect();
    mixed.sort_by_key(|(p, v)| (std::cmp::Reverse(v.values().sum::<usize>()), **p));
    println!("  -- clusters mixing truth templates:");
    for (p, v) in mixed.iter().take(n) {
        println!("  {p}  {v:?}");
    }
}

fn main() -> io::Result<()> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/data/loghub");
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
    let only = args.get(1);
    let mut sum = 0.0;
    for name in DATASETS {
        let msgs = std::fs::read_to_string(format!("{dir}/{name}.messages.txt"))?;
        let truth = std::fs::read_to_string(format!("{dir}/{name}.truth.txt"))?;
        let msgs: Vec<&str> = msgs.lines().collect();
        let truth: Vec<&str> = truth.lines().collect();
        let pred = predict(&msgs);
        let ga = grouping_accuracy(&truth, &pred);
        sum += ga;
        let clusters = pred.iter().collect::<std::collections::HashSet<_>>().len();
        println!("{name:10} GA {ga:.3} clusters {clusters}");
        if n > 0 && only.is_none_or(|o| o == name) {
            report_errors(n, &msgs, &truth, &pred);
        }
    }
    println!("average {:.3}", sum / DATASETS.len() as f64);
    Ok(())
}
