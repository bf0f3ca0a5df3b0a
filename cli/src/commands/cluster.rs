//! `achilles cluster`: cluster messages read from stdin.
//!
//! Prints exactly one cluster label per input line, in order, with the one
//! default configuration. Two modes of the same engine:
//! * default (batch): all of stdin is clustered with
//!   [`achilles_cluster::cluster_batch`]: masking, then merging of similar
//!   templates, so labels depend only on the set of messages;
//! * `--online`: each message's masked template alone, as the stream
//!   processor assigns clusters per event (deterministic per message, so
//!   every processor instance agrees without coordination).

use std::io::{BufWriter, Read, Write};

use clap::Args;

use crate::client::CliError;

#[derive(Args)]
pub struct ClusterArgs {
    /// Label each message by its masked template only (the processor's
    /// per-event assignment), without merging similar templates.
    #[arg(long)]
    pub online: bool,
}

pub fn run(a: ClusterArgs) -> Result<(), CliError> {
    let mut raw = Vec::new();
    std::io::stdin()
        .lock()
        .read_to_end(&mut raw)
        .map_err(|e| CliError::Input(format!("cannot read stdin: {e}")))?;
    // Invalid UTF-8 is replaced rather than rejected: one label per line is
    // still owed, and replacement characters mask like any other text.
    let text = String::from_utf8_lossy(&raw);
    // `lines` drops a `\r` before `\n` and yields nothing after a final
    // newline: exactly one label per input line.
    let lines: Vec<&str> = text.lines().collect();
    let ids: Vec<achilles_cluster::ClusterId> = if a.online {
        lines
            .iter()
            .map(|l| achilles_cluster::template_of(l).id())
            .collect()
    } else {
        achilles_cluster::cluster_batch(&lines, &achilles_cluster::Config::default())
    };
    let stdout = std::io::stdout();
    let mut out = BufWriter::with_capacity(1 << 16, stdout.lock());
    let io = |e: std::io::Error| CliError::Other(format!("cannot write stdout: {e}"));
    let mut buf = [0u8; 17];
    buf[16] = b'\n';
    for id in ids {
        id.write_hex(&mut buf[..16]);
        out.write_all(&buf).map_err(io)?;
    }
    out.flush().map_err(io)
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
