//! Error/log message clustering for Achilles: a deterministic template miner.
//!
//! Two levels:
//!
//! 1. **Masking** ([`mask()`], [`template_of`]): a pure function replacing the
//!    variable parts of a message (numbers, hex, ids, IPs, host names, paths,
//!    URLs, quoted literals, dates, units, ...) with `<*>`. Its output, the
//!    *template*, and the template's hash never change for a given message.
//!    The rules are listed in the [`mask`](mod@mask) module; HTTP request
//!    lines keep their route (`route.rs`). Operator-defined regex rules
//!    ([`RuleSet`], from the `[cluster]` configuration) run after them.
//! 2. **Merging** (inside [`Clusterer`] and [`cluster_batch`]): templates of
//!    equal length that differ only in grammatical number, or in one
//!    position that shows enough distinct values, are merged, and so is a
//!    template that another covers through its wildcards. The result is a
//!    deterministic function of the *set* of templates seen (see `merge.rs`,
//!    `agreement.rs` and `rules.rs`).
//!
//! How it is measured (LogHub, leave-one-dataset-out, real toolchain
//! errors, throughput): `docs/clustering.md`.
//!
//! A cluster's id ([`ClusterId`]) is the FNV-1a 64 hash of its pattern, so
//! equal clusters get equal ids in every process.
//!
//! # Stability trade-off
//!
//! Online miners such as Drain merge as messages arrive, so the cluster a
//! message lands in depends on arrival order. Here merges only happen when
//! the caller asks for them ([`Clusterer::rebuild`]; [`cluster_batch`] does it
//! once after reading everything). Between rebuilds [`Clusterer::observe`] is
//! a pure function of the frozen state and the message; a rebuild depends
//! only on the set of templates seen; and the state can be saved and restored
//! ([`Clusterer::snapshot`], [`Clusterer::restore`]) so a restarted process
//! gives the same answers. The price is that a rebuild may rename clusters
//! (it reports the renames), and that merges lag until the next rebuild.
//!
//! # Example
//!
//! ```
//! use achilles_cluster::{cluster_batch, mask, Clusterer, Config};
//!
//! assert_eq!(mask("connection from 10.0.0.1:22 closed after 35 ms"), "connection from <*> closed after <*>");
//!
//! let msgs = ["session closed for user alice", "session closed for user bob", "session closed for user carol"];
//! let ids = cluster_batch(&msgs, &Config::default());
//! assert!(ids.iter().all(|&id| id == ids[0]));
//!
//! let mut c = Clusterer::new(Config::default());
//! for m in msgs {
//!     c.observe(m);
//! }
//! c.rebuild();
//! let id = c.observe("session closed for user dave");
//! assert_eq!(id, ids[0]);
//! assert_eq!(c.template(id), Some("session closed for user <*>"));
//! ```

#![warn(missing_docs)]

mod agreement;
mod classify;
mod clusterer;
mod custom;
pub mod eval;
mod hash;
pub mod mask;
mod merge;
mod pattern;
mod render;
mod route;
mod rules;
mod scan;
mod slots;
mod vocab;

pub use clusterer::{Clusterer, StateError};
pub use custom::{MaskRules, RuleError, RuleSet, RuleSpec};
pub use mask::{mask, Masker, WILDCARD};

use std::fmt;
use std::str::FromStr;

/// The configuration. [`Config::default`] is *the* configuration used by the
/// CLI and the stream processor; the fields exist to document the merge
/// stage's two thresholds, not for per-dataset tuning.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Config {
    /// Distinct values a position must show, among templates that are
    /// otherwise identical, before it is treated as a variable when the
    /// values look like names (lower-case words: users, hosts, packages).
    pub min_distinct_names: usize,
    /// The same for values that look like enumeration constants
    /// (capitalised or upper-case words such as states and event names, and
    /// `key=word` settings), which more often distinguish message kinds.
    pub min_distinct_enums: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            min_distinct_names: 3,
            min_distinct_enums: 5,
        }
    }
}

/// Stable cluster identity: FNV-1a 64 of the cluster pattern. Displays as 16
/// lower-case hex digits, and parses back with [`FromStr`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClusterId(pub u64);

impl ClusterId {
    /// The id of a cluster whose pattern (or single template) is `pattern`.
    pub fn of_pattern(pattern: &str) -> Self {
        Self(hash::fnv1a64(pattern))
    }

    /// Write the 16 hex digits of the id into `out[..16]` without going
    /// through `fmt` (the CLI prints millions of labels).
    ///
    /// # Panics
    /// If `out` is shorter than 16 bytes.
    pub fn write_hex(self, out: &mut [u8]) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        for (i, o) in out[..16].iter_mut().enumerate() {
            *o = HEX[((self.0 >> (60 - 4 * i)) & 0xf) as usize];
        }
    }
}

impl fmt::Display for ClusterId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl FromStr for ClusterId {
    type Err = std::num::ParseIntError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        u64::from_str_radix(s, 16).map(ClusterId)
    }
}

/// A message's template: the first, purely functional level of clustering.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Template {
    text: String,
}

impl Template {
    /// The masked text, e.g. `Found child <*> in scoreboard slot <*>`.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Hash of the template text. This is also the [`ClusterId`] the
    /// template gets while it is a cluster of its own (before any merge).
    pub fn id(&self) -> ClusterId {
        ClusterId::of_pattern(&self.text)
    }
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// The template of `msg` (stateless; same as [`mask()`], wrapped).
pub fn template_of(msg: &str) -> Template {
    Template { text: mask(msg) }
}

/// Cluster every message of `msgs` at once (offline): all messages are fed
/// to a fresh [`Clusterer`], which is then rebuilt, and each message gets its
/// final cluster. Labels depend only on the set of messages, not on their
/// order or repetitions. This is what `achilles cluster` prints.
pub fn cluster_batch(msgs: &[&str], cfg: &Config) -> Vec<ClusterId> {
    cluster_batch_with_rules(msgs, cfg, MaskRules::default())
}

/// [`cluster_batch`] with operator-defined masking rules applied after the
/// built-in ones.
pub fn cluster_batch_with_rules(msgs: &[&str], cfg: &Config, rules: MaskRules) -> Vec<ClusterId> {
    let mut c = Clusterer::new(cfg.clone()).with_rules(rules);
    let tids: Vec<u32> = msgs.iter().map(|m| c.intern(m)).collect();
    c.rebuild();
    tids.into_iter().map(|t| c.cluster_of(t)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_id_hex_roundtrip() {
        let id = ClusterId(0x0123_4567_89ab_cdef);
        assert_eq!(id.to_string(), "0123456789abcdef");
        let mut buf = [0u8; 16];
        id.write_hex(&mut buf);
        assert_eq!(&buf, b"0123456789abcdef");
        assert_eq!("0123456789abcdef".parse::<ClusterId>(), Ok(id));
    }

    #[test]
    fn template_id_is_the_hash_of_the_text() {
        let t = template_of("Found child 6725 in scoreboard slot 10");
        assert_eq!(t.text(), "Found child <*> in scoreboard slot <*>");
        assert_eq!(
            t.id(),
            ClusterId::of_pattern("Found child <*> in scoreboard slot <*>")
        );
        // Pinned value: the id function is part of the persisted format.
        assert_eq!(ClusterId::of_pattern("a"), ClusterId(0xaf63_dc4c_8601_ec8c));
    }

    #[test]
    fn batch_labels_ignore_order_and_repetition() {
        let msgs = [
            "session closed for user news",
            "session closed for user cyrus",
            "session closed for user test",
            "Received block blk_1 of size 67108864 from /10.0.0.1",
            "Received block blk_2 of size 67108864 from /10.0.0.2",
            "VM Started (Lifecycle Event)",
            "VM Paused (Lifecycle Event)",
        ];
        let a = cluster_batch(&msgs, &Config::default());
        let mut rev: Vec<&str> = msgs.iter().rev().copied().collect();
        rev.extend_from_slice(&msgs[..3]);
        let b = cluster_batch(&rev, &Config::default());
        for (i, m) in msgs.iter().enumerate() {
            let j = rev
                .iter()
                .position(|r| r == m)
                .expect("message is in the reversed list");
            assert_eq!(a[i], b[j], "{m}");
        }
        assert_eq!(a[0], a[1]);
        assert_eq!(a[1], a[2]);
        assert_eq!(a[3], a[4]);
        assert_ne!(a[5], a[6], "two enumeration values stay apart");
    }
}
