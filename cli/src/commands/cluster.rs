//! `achilles cluster`: cluster messages read from stdin.
//!
//! Prints exactly one cluster label per input line, in order, with the one
//! default configuration. Two modes of the same engine:
//! * default (batch): all of stdin is clustered with
//!   [`achilles_cluster::cluster_batch_with_rules`]: masking, then merging of
//!   similar templates, so labels depend only on the set of messages;
//! * `--online`: each message's masked template alone, as the stream
//!   processor assigns clusters per event (deterministic per message, so
//!   every processor instance agrees without coordination).
//!
//! The `[cluster]` masking rules of the configuration (file or environment,
//! as for the services) apply exactly as in the processor: those for every
//! tenant, plus those of `--tenant`.
//!
//! `--eval DIR` scores the engine instead: for every `NAME.messages.txt`
//! with a `NAME.truth.txt` beside it (one truth label per line), the grouping
//! accuracy of the batch labels, then the throughput of one batch over all
//! messages repeated to `--volume` lines (reading, clustering and formatting
//! the labels, in this process).

use std::io::{BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use achilles_cluster::{ClusterId, Config, MaskRules, Masker};
use achilles_core::config::Settings;
use clap::Args;

use crate::client::CliError;

#[derive(Args)]
pub struct ClusterArgs {
    /// Label each message by its masked template only (the processor's
    /// per-event assignment), without merging similar templates.
    #[arg(long)]
    pub online: bool,
    /// Apply the `[cluster]` masking rules of this tenant (default: only
    /// the rules for every tenant).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Score labelled datasets in this directory instead of reading stdin.
    #[arg(long, value_name = "DIR")]
    pub eval: Option<PathBuf>,
    /// Messages in the `--eval` throughput run.
    #[arg(long, default_value_t = 400_000)]
    pub volume: usize,
}

pub fn run(a: ClusterArgs) -> Result<(), CliError> {
    let settings = Settings::load().map_err(|e| CliError::Input(e.to_string()))?;
    let rule_set = settings
        .cluster
        .compile()
        .map_err(|e| CliError::Input(e.to_string()))?;
    let rules = match &a.tenant {
        Some(t) => rule_set.for_tenant(t),
        None => rule_set.for_all_tenants(),
    }
    .clone();
    if let Some(dir) = &a.eval {
        return eval(dir, a.volume, a.online, &rules);
    }
    let mut raw = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut raw)
        .map_err(|e| CliError::Input(format!("cannot read stdin: {e}")))?;
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    label(&raw, a.online, &rules, &mut out)
        .and_then(|()| out.flush())
        .map_err(|e| CliError::Other(format!("cannot write stdout: {e}")))
}

/// Labels every line of `raw` and writes one label per line to `out`.
fn label(raw: &[u8], online: bool, rules: &MaskRules, out: &mut impl Write) -> std::io::Result<()> {
    // Invalid UTF-8 is replaced rather than rejected: one label per line is
    // still owed, and replacement characters mask like any other text.
    let text = String::from_utf8_lossy(raw);
    // `lines` drops a `\r` before `\n` and yields nothing after a final
    // newline: exactly one label per input line.
    let lines: Vec<&str> = text.lines().collect();
    let ids: Vec<ClusterId> = if online {
        let mut masker = Masker::with_rules(rules.clone());
        let mut buf = String::new();
        lines
            .iter()
            .map(|l| {
                masker.mask_into(l, &mut buf);
                ClusterId::of_pattern(&buf)
            })
            .collect()
    } else {
        achilles_cluster::cluster_batch_with_rules(&lines, &Config::default(), rules.clone())
    };
    let mut buf = [0u8; 17];
    buf[16] = b'\n';
    for id in ids {
        id.write_hex(&mut buf[..16]);
        out.write_all(&buf)?;
    }
    Ok(())
}

fn read(path: &Path) -> Result<String, CliError> {
    std::fs::read_to_string(path)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", path.display())))
}

/// `--eval DIR`: the same output lines as the LogHub kit's evaluator, so
/// results compare directly.
fn eval(dir: &Path, volume: usize, online: bool, rules: &MaskRules) -> Result<(), CliError> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", dir.display())))?;
    let mut names: Vec<String> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            e.file_name()
                .to_str()
                .and_then(|n| n.strip_suffix(".messages.txt"))
                .map(str::to_owned)
        })
        .filter(|n| dir.join(format!("{n}.truth.txt")).exists())
        .collect();
    names.sort();
    if names.is_empty() {
        return Err(CliError::Input(format!(
            "no NAME.messages.txt with NAME.truth.txt in {}",
            dir.display()
        )));
    }
    let mut corpus = String::new();
    let mut sum = 0.0;
    for name in &names {
        let msgs = read(&dir.join(format!("{name}.messages.txt")))?;
        let truth = read(&dir.join(format!("{name}.truth.txt")))?;
        let truth: Vec<&str> = truth.lines().collect();
        let mut labels = Vec::new();
        label(msgs.as_bytes(), online, rules, &mut labels)
            .map_err(|e| CliError::Other(e.to_string()))?;
        let labels: Vec<&[u8]> = labels
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .collect();
        if labels.len() != truth.len() {
            return Err(CliError::Input(format!(
                "{name}: {} messages but {} truth labels",
                labels.len(),
                truth.len()
            )));
        }
        let ga = achilles_cluster::eval::grouping_accuracy(&truth, &labels);
        let clusters = labels
            .iter()
            .collect::<std::collections::HashSet<_>>()
            .len();
        let templates = truth.iter().collect::<std::collections::HashSet<_>>().len();
        println!("{name:12} GA {ga:.3}  clusters {clusters:4} (truth {templates:4})");
        sum += ga;
        corpus.push_str(&msgs);
        if !msgs.ends_with('\n') {
            corpus.push('\n');
        }
    }
    let lines = corpus.lines().count().max(1);
    let big = corpus.repeat(volume.div_ceil(lines).max(1));
    let n = big.lines().count();
    let mut sink = Vec::with_capacity(n * 17);
    let start = Instant::now();
    label(big.as_bytes(), online, rules, &mut sink).map_err(|e| CliError::Other(e.to_string()))?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "average GA {:.3} over {} datasets, {:.0} msg/s on {n} messages",
        sum / names.len() as f64,
        names.len(),
        n as f64 / secs
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    //! Properties of the masker this command (and the processor) relies
    //! on, through `achilles_cluster`'s public API; the `mask` fuzz target
    //! (docs/testing.md) checks the same at scale.
    use achilles_cluster::{mask, template_of, Clusterer, Config, Masker};
    use proptest::prelude::*;

    fn message() -> impl Strategy<Value = String> {
        prop_oneof![
            "\\PC{0,120}",
            "[a-z0-9 .:/=,;()\\[\\]{}|@#'\"`~_+-]{0,120}",
            prop::collection::vec(
                prop::sample::select(vec![
                    "error",
                    "at",
                    "0x1f",
                    "10.0.0.1:22",
                    "/usr/lib/x.so",
                    "'q'",
                    "\"a b\"",
                    "key=value",
                    "Sat",
                    "Jul",
                    "12:16:49",
                    "42",
                    "KB",
                    "http://h/x",
                    "::1",
                    "..",
                    "é",
                    "𝄞",
                ]),
                0..20,
            )
            .prop_map(|w| w.join(" ")),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(500))]

        #[test]
        fn masking_is_pure_and_every_entry_point_agrees(msg in message()) {
            let masked = mask(&msg);
            prop_assert_eq!(&mask(&msg), &masked);
            let mut out = String::new();
            Masker::new().mask_into(&msg, &mut out);
            prop_assert_eq!(&out, &masked);
            let template = template_of(&msg);
            prop_assert_eq!(template.text(), masked.as_str());
            let mut c = Clusterer::new(Config::default());
            let id = c.observe(&msg);
            prop_assert!(c.template(id).is_some());
            c.rebuild();
            let again = c.observe(&msg);
            prop_assert!(c.template(again).is_some());
        }
    }
}
