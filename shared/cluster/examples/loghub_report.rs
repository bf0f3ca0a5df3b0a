//! Development aid: grouping accuracy on the vendored LogHub-2k samples
//! (`tests/data/loghub`), with a leave-one-dataset-out check of the merge
//! thresholds, plus (with `N [DATASET]`) the N largest grouping errors,
//! showing the masked template and one raw message for each side of a split
//! or merge.
//!
//! Usage: `cargo run --release -p achilles-cluster --example loghub_report [N [DATASET]]`
//! (`MODE=mask` scores the masking stage alone, without merging;
//! `LOO=1` runs the leave-one-dataset-out table; `TOOLCHAIN=1` reports on
//! the toolchain-error corpus instead).
//!
//! Leave-one-out: for every dataset, the configuration that scores best on
//! the *other seven* (average GA; ties go to the default) is chosen from a
//! small grid, and the held-out dataset is scored with it. If the held-out
//! scores match the scores of the default configuration, the thresholds are
//! not fitted to any one dataset.

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
fn predict(msgs: &[&str], cfg: &Config) -> Vec<String> {
    if std::env::var("MODE").as_deref() == Ok("mask") {
        return msgs.iter().map(|m| mask(m)).collect();
    }
    let ids = cluster_batch(msgs, cfg);
    // A clusterer fed the same set and rebuilt knows the same patterns.
    let mut c = Clusterer::new(cfg.clone());
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
    let mut p2t: HashMap<&str, HashMap<&str, (usize, usize)>> = HashMap::new();
    for (i, (t, p)) in truth.iter().zip(pred).enumerate() {
        t2p.entry(t).or_default().entry(p).or_insert((0, i)).0 += 1;
        p2t.entry(p).or_default().entry(t).or_insert((0, i)).0 += 1;
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
    mixed.sort_by_key(|(p, v)| (std::cmp::Reverse(size(v)), **p));
    println!("  -- clusters mixing truth templates:");
    for (p, v) in mixed.iter().take(n) {
        println!("  {p}");
        let mut parts: Vec<_> = v.iter().collect();
        parts.sort_by_key(|(t, c)| (std::cmp::Reverse(c.0), **t));
        for (t, (c, i)) in parts.iter().take(6) {
            let raw: String = msgs[*i].chars().take(160).collect();
            println!("      {c:4} {t} | {raw}");
        }
    }
}

struct Dataset {
    name: &'static str,
    msgs: String,
    truth: String,
}

fn load() -> io::Result<Vec<Dataset>> {
    if std::env::var("TOOLCHAIN").is_ok() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/toolchain");
        return Ok(vec![Dataset {
            name: "toolchain",
            msgs: std::fs::read_to_string(format!("{dir}/toolchain.messages.txt"))?,
            truth: std::fs::read_to_string(format!("{dir}/toolchain.truth.txt"))?,
        }]);
    }
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/data/loghub");
    DATASETS
        .iter()
        .map(|&name| {
            Ok(Dataset {
                name,
                msgs: std::fs::read_to_string(format!("{dir}/{name}.messages.txt"))?,
                truth: std::fs::read_to_string(format!("{dir}/{name}.truth.txt"))?,
            })
        })
        .collect()
}

fn score(d: &Dataset, cfg: &Config) -> f64 {
    let msgs: Vec<&str> = d.msgs.lines().collect();
    let truth: Vec<&str> = d.truth.lines().collect();
    grouping_accuracy(&truth, &cluster_batch(&msgs, cfg))
}

/// The grid the leave-one-out check chooses from.
fn grid() -> Vec<Config> {
    let mut out = Vec::new();
    for names in [2, 3, 4] {
        for enums in [3, 4, 5, 6, 8] {
            out.push(Config {
                min_distinct_names: names,
                min_distinct_enums: enums,
            });
        }
    }
    out
}

fn leave_one_out(data: &[Dataset]) {
    let grid = grid();
    let def = Config::default();
    // scores[g][d]
    let scores: Vec<Vec<f64>> = grid
        .iter()
        .map(|cfg| data.iter().map(|d| score(d, cfg)).collect())
        .collect();
    let default_scores: Vec<f64> = data.iter().map(|d| score(d, &def)).collect();
    if std::env::var("GRID").is_ok() {
        for (c, s) in grid.iter().zip(&scores) {
            let row: Vec<String> = s.iter().map(|v| format!("{v:.3}")).collect();
            println!("{c:?} {}", row.join(" "));
        }
    }
    println!("| held-out dataset | chosen on the other seven | GA held out | GA default |");
    println!("|---|---|---|---|");
    let (mut sum_loo, mut sum_def) = (0.0, 0.0);
    for (h, d) in data.iter().enumerate() {
        let mut best: Option<(f64, usize)> = None;
        for (g, s) in scores.iter().enumerate() {
            let train: f64 = s
                .iter()
                .enumerate()
                .filter(|(i, _)| *i != h)
                .map(|(_, v)| v)
                .sum::<f64>()
                / (data.len() - 1) as f64;
            let better = match best {
                None => true,
                Some((b, bg)) => {
                    train > b + 1e-12
                        || ((train - b).abs() <= 1e-12 && grid[g] == def && grid[bg] != def)
                }
            };
            if better {
                best = Some((train, g));
            }
        }
        let (train, g) = best.unwrap_or((0.0, 0));
        let c = &grid[g];
        println!(
            "| {} | names {} enums {} (train {:.3}) | {:.3} | {:.3} |",
            d.name,
            c.min_distinct_names,
            c.min_distinct_enums,
            train,
            scores[g][h],
            default_scores[h]
        );
        sum_loo += scores[g][h];
        sum_def += default_scores[h];
    }
    let n = data.len() as f64;
    println!("| average | | {:.3} | {:.3} |", sum_loo / n, sum_def / n);
}

fn main() -> io::Result<()> {
    let data = load()?;
    if std::env::var("LOO").is_ok() {
        leave_one_out(&data);
        return Ok(());
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    let n: usize = args.first().and_then(|a| a.parse().ok()).unwrap_or(0);
    let only = args.get(1);
    let cfg = Config::default();
    let mut sum = 0.0;
    for d in &data {
        let msgs: Vec<&str> = d.msgs.lines().collect();
        let truth: Vec<&str> = d.truth.lines().collect();
        let pred = predict(&msgs, &cfg);
        let ga = grouping_accuracy(&truth, &pred);
        sum += ga;
        let clusters = pred.iter().collect::<std::collections::HashSet<_>>().len();
        println!("{:10} GA {ga:.3} clusters {clusters}", d.name);
        if n > 0 && only.is_none_or(|o| o == d.name) {
            report_errors(n, &msgs, &truth, &pred);
        }
    }
    println!("average {:.3}", sum / data.len() as f64);
    Ok(())
}
