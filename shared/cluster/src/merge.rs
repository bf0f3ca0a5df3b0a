//! Second level: merging templates into clusters, as a deterministic
//! function of the *set* of distinct templates.
//!
//! Masking cannot know that a plain word is variable (`session closed for
//! user news` / `... cyrus`), or that a one-off value escaped the masking
//! rules (`wpad:<*>` next to `<*>`). This stage finds such positions by
//! comparing templates of equal length, and repeats four passes until
//! nothing changes (the passes of one round are independent):
//!
//! 0. **Agreement.** Templates equal but for grammatical number
//!    (`argument`/`arguments`, `was`/`were`) are one message: printf-style
//!    messages pluralise with their counts (`agreement.rs`).
//! 1. **Siblings.** Templates identical except at one position `p` form a
//!    sibling set; the whole set merges (with `<*>` at `p`) when the values
//!    at `p` show that the position is variable, see
//!    [`crate::rules::position_varies`]: enough distinct values, with more
//!    evidence asked of enumeration-like words and none accepted at the
//!    first position.
//! 2. **Shared slots.** Templates equal except at two positions whose words
//!    move between them (`X cannot be converted to Y` with `int`, `String`
//!    on both sides) merge at both (`slots.rs`).
//! 3. **Subsumption.** A cluster whose pattern is covered token by token by
//!    a more general pattern (`<*>` covers `wpad:<*>`) joins it, if that
//!    pattern may adopt ([`crate::rules::can_subsume`]); among
//!    several covering patterns the most specific wins (most literal bytes,
//!    then the lexicographically smallest pattern).
//!
//! Merged clusters get the most specific pattern covering all members, see
//! [`crate::pattern::generalize`].
//!
//! # Determinism
//!
//! Templates are processed in sorted order, every decision depends only on
//! the set of distinct templates (never on message counts or arrival order),
//! and unions are order-independent. Hence the same set of templates always
//! yields the same clusters and the same patterns, in any process.

use crate::agreement::agreement_pass;
use crate::hash::{fnv1a64, FastMap};
use crate::pattern::{generalize, pattern_covers, specificity, CoverIndex};
use crate::rules::{can_subsume, varying_groups};
use crate::slots::slot_pass;
use crate::Config;

/// Result of merging: `assign[i]` is the cluster of input template `i`;
/// `patterns` are the cluster patterns, sorted.
pub(crate) struct Merged {
    pub assign: Vec<u32>,
    pub patterns: Vec<String>,
}

pub(crate) struct Cluster {
    pub(crate) tokens: Vec<String>,
    pub(crate) members: Vec<u32>,
}

pub(crate) struct UnionFind(Vec<u32>);

impl UnionFind {
    fn new(n: usize) -> Self {
        Self((0..n as u32).collect())
    }
    fn find(&mut self, mut x: u32) -> u32 {
        while self.0[x as usize] != x {
            let p = self.0[x as usize];
            self.0[x as usize] = self.0[p as usize];
            x = p;
        }
        x
    }
    /// Union keeping the smaller root, so roots do not depend on call order.
    pub(crate) fn union(&mut self, a: u32, b: u32) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra == rb {
            return false;
        }
        let (lo, hi) = if ra < rb { (ra, rb) } else { (rb, ra) };
        self.0[hi as usize] = lo;
        true
    }
}

/// Merge distinct templates (each a space-separated token string).
pub(crate) fn merge(templates: &[&str], cfg: &Config) -> Merged {
    let mut order: Vec<u32> = (0..templates.len() as u32).collect();
    order.sort_unstable_by_key(|&i| templates[i as usize]);
    let mut clusters: Vec<Cluster> = order
        .iter()
        .map(|&i| Cluster {
            tokens: templates[i as usize]
                .split(' ')
                .map(str::to_string)
                .collect(),
            members: vec![i],
        })
        .collect();
    loop {
        let mut uf = UnionFind::new(clusters.len());
        let a = agreement_pass(&clusters, &mut uf);
        let b = sibling_pass(&clusters, cfg, &mut uf);
        let c = subsumption_pass(&clusters, &mut uf);
        let d = slot_pass(&clusters, cfg, &mut uf);
        if !a && !b && !c && !d {
            break;
        }
        clusters = regroup(clusters, &mut uf);
    }
    clusters.sort_by(|a, b| a.tokens.cmp(&b.tokens));
    // Two clusters can generalise to the same pattern in one round; if the
    // pattern may not adopt (see `can_subsume`), no later round joins them.
    // Ids are pattern hashes, so join them here.
    clusters.dedup_by(|later, kept| {
        let same = later.tokens == kept.tokens;
        if same {
            kept.members.append(&mut later.members);
        }
        same
    });
    let mut assign = vec![0u32; templates.len()];
    let mut patterns = Vec::with_capacity(clusters.len());
    for (ci, c) in clusters.iter().enumerate() {
        for &m in &c.members {
            assign[m as usize] = ci as u32;
        }
        patterns.push(c.tokens.join(" "));
    }
    Merged { assign, patterns }
}

/// Cluster indices grouped by token count, each group in cluster order.
pub(crate) fn by_len(clusters: &[Cluster]) -> Vec<Vec<u32>> {
    let mut m: FastMap<usize, Vec<u32>> = FastMap::default();
    for (i, c) in clusters.iter().enumerate() {
        m.entry(c.tokens.len()).or_default().push(i as u32);
    }
    let mut groups: Vec<(usize, Vec<u32>)> = m.into_iter().collect();
    groups.sort_unstable_by_key(|g| g.0);
    groups
        .into_iter()
        .map(|g| g.1)
        .filter(|g| g.len() > 1)
        .collect()
}

/// Pass 1: variable positions among sibling templates.
fn sibling_pass(clusters: &[Cluster], cfg: &Config, uf: &mut UnionFind) -> bool {
    let mut changed = false;
    let mut keyed: Vec<(u64, u32)> = Vec::new();
    let mut set: Vec<u32> = Vec::new();
    for group in by_len(clusters) {
        let len = clusters[group[0] as usize].tokens.len();
        // Prefix/suffix hashes give each "template minus position p" key in
        // O(1); stored flat, `len + 1` entries per cluster.
        let w = len + 1;
        let mut pre = vec![0u64; group.len() * w];
        let mut suf = vec![0u64; group.len() * w];
        for (gi, &ci) in group.iter().enumerate() {
            let t = &clusters[ci as usize].tokens;
            let (pre, suf) = (
                &mut pre[gi * w..(gi + 1) * w],
                &mut suf[gi * w..(gi + 1) * w],
            );
            let h: Vec<u64> = t.iter().map(|x| fnv1a64(x)).collect();
            for i in 0..len {
                pre[i + 1] = (pre[i] ^ h[i])
                    .wrapping_mul(0x9e37_79b9_7f4a_7c15)
                    .rotate_left(17);
            }
            for i in (0..len).rev() {
                suf[i] = (suf[i + 1] ^ h[i])
                    .wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
                    .rotate_left(23);
            }
        }
        for p in 0..len {
            // Sorting (key, cluster) pairs groups siblings without a map of
            // vectors, and visits the sets in a deterministic order.
            keyed.clear();
            keyed.extend(
                group
                    .iter()
                    .enumerate()
                    .map(|(gi, &ci)| (pre[gi * w + p] ^ suf[gi * w + p + 1].rotate_left(31), ci)),
            );
            keyed.sort_unstable();
            for run in keyed.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 1) {
                set.clear();
                set.extend(run.iter().map(|x| x.1));
                for group in decide_siblings(clusters, &set, p, cfg) {
                    for &c in &group[1..] {
                        changed |= uf.union(group[0], c);
                    }
                }
            }
        }
    }
    changed
}

/// The groups of the sibling set `set` (equal except at position `p`) that
/// merge, as lists of clusters.
fn decide_siblings(clusters: &[Cluster], set: &[u32], p: usize, cfg: &Config) -> Vec<Vec<u32>> {
    let first = &clusters[set[0] as usize].tokens;
    // Guard against hash collisions: every member must really equal the
    // first one outside position p.
    let same_rest = set[1..].iter().all(|&c| {
        let t = &clusters[c as usize].tokens;
        t.iter()
            .zip(first)
            .enumerate()
            .all(|(i, (a, b))| i == p || a == b)
    });
    if !same_rest {
        return Vec::new();
    }
    let mut values: Vec<&str> = set
        .iter()
        .map(|&c| clusters[c as usize].tokens[p].as_str())
        .collect();
    values.sort_unstable();
    values.dedup();
    let tokens: Vec<&str> = first.iter().map(String::as_str).collect();
    varying_groups(&tokens, p, &values, cfg)
        .into_iter()
        .map(|group| {
            set.iter()
                .copied()
                .filter(|&c| {
                    let v = clusters[c as usize].tokens[p].as_str();
                    group.iter().any(|&g| values[g] == v)
                })
                .collect()
        })
        .collect()
}

/// Pass 2: clusters covered by a more general pattern join it.
fn subsumption_pass(clusters: &[Cluster], uf: &mut UnionFind) -> bool {
    let mut index = CoverIndex::default();
    let mut joined: FastMap<u32, String> = FastMap::default();
    for (ci, c) in clusters.iter().enumerate() {
        let t: Vec<&str> = c.tokens.iter().map(String::as_str).collect();
        if can_subsume(&t) {
            index.insert(ci as u32, &t);
            // Ties are broken on the joined pattern text, exactly like the
            // online matcher does, so both paths pick the same cluster.
            joined.insert(ci as u32, c.tokens.join(" "));
        }
    }
    if joined.is_empty() {
        return false;
    }
    let mut changed = false;
    for (ci, c) in clusters.iter().enumerate() {
        let ci = ci as u32;
        let t: Vec<&str> = c.tokens.iter().map(String::as_str).collect();
        let mut best: Option<(usize, &str, u32)> = None;
        for g in index.candidates(&t) {
            if g == ci {
                continue;
            }
            let gt: Vec<&str> = clusters[g as usize]
                .tokens
                .iter()
                .map(String::as_str)
                .collect();
            if !pattern_covers(&gt, &t) {
                continue;
            }
            let spec = specificity(&gt);
            let text = joined[&g].as_str();
            if best.is_none_or(|(s, bt, _)| spec > s || (spec == s && text < bt)) {
                best = Some((spec, text, g));
            }
        }
        if let Some((_, _, g)) = best {
            changed |= uf.union(ci, g);
        }
    }
    changed
}

/// Rebuild the cluster list from the union-find, generalising patterns.
fn regroup(clusters: Vec<Cluster>, uf: &mut UnionFind) -> Vec<Cluster> {
    let n = clusters.len();
    let mut parts: Vec<Vec<u32>> = vec![Vec::new(); n];
    for i in 0..n as u32 {
        let r = uf.find(i);
        parts[r as usize].push(i);
    }
    let mut out = Vec::new();
    for part in parts.into_iter().filter(|p| !p.is_empty()) {
        let len = clusters[part[0] as usize].tokens.len();
        let tokens = (0..len)
            .map(|i| {
                let vals: Vec<&str> = part
                    .iter()
                    .map(|&c| clusters[c as usize].tokens[i].as_str())
                    .collect();
                generalize(&vals)
            })
            .collect();
        let mut members: Vec<u32> = part
            .iter()
            .flat_map(|&c| clusters[c as usize].members.iter().copied())
            .collect();
        members.sort_unstable();
        out.push(Cluster { tokens, members });
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Merge and return, per input template, its cluster pattern.
    fn run(templates: &[&str]) -> Vec<String> {
        let m = merge(templates, &Config::default());
        m.assign
            .iter()
            .map(|&c| m.patterns[c as usize].clone())
            .collect()
    }

    #[test]
    fn three_name_like_values_merge_two_do_not() {
        let out = run(&[
            "session closed for user news",
            "session closed for user cyrus",
            "session closed for user test",
        ]);
        assert!(
            out.iter().all(|p| p == "session closed for user <*>"),
            "{out:?}"
        );
        let out = run(&[
            "session closed for user news",
            "session closed for user cyrus",
        ]);
        assert_ne!(out[0], out[1]);
    }

    #[test]
    fn enum_like_values_need_more_evidence() {
        let four = [
            "VM Paused (Lifecycle Event)",
            "VM Resumed (Lifecycle Event)",
            "VM Started (Lifecycle Event)",
            "VM Stopped (Lifecycle Event)",
        ];
        let out = run(&four);
        assert_eq!(
            out.iter().collect::<std::collections::HashSet<_>>().len(),
            4,
            "{out:?}"
        );
        let mut five = four.to_vec();
        five.push("VM Crashed (Lifecycle Event)");
        let out = run(&five);
        assert!(
            out.iter().all(|p| p == "VM <*> (Lifecycle Event)"),
            "{out:?}"
        );
        // key=word settings count as enumerations too.
        let keyed = [
            "auth failure rhost=<*> user=root",
            "auth failure rhost=<*> user=guest",
            "auth failure rhost=<*> user=test",
        ];
        let out = run(&keyed);
        assert_ne!(out[0], out[1]);
        assert_ne!(out[1], out[2]);
    }

    #[test]
    fn same_key_with_a_masked_value_merges() {
        let out = run(&[
            "acquire lock=<*>, name=android, ws=null, uid=<*>",
            "acquire lock=<*>, name=android, ws=WorkSource{<*>}, uid=<*>",
        ]);
        assert_eq!(out[0], out[1]);
        assert_eq!(out[0], "acquire lock=<*>, name=android, ws=<*>, uid=<*>");
    }

    #[test]
    fn general_patterns_absorb_covered_templates() {
        let out = run(&[
            "<*> open through proxy <*> HTTPS",
            "wpad:<*> open through proxy <*> HTTPS",
        ]);
        assert_eq!(out[0], out[1]);
        assert_eq!(out[0], "<*> open through proxy <*> HTTPS");
    }

    #[test]
    fn vague_patterns_absorb_nothing() {
        // `<*>` covers every one-token template but is no evidence of anything.
        let out = run(&["<*>", "setLightsOn(true)", "cancelAutohide"]);
        assert_eq!(out, ["<*>", "setLightsOn(true)", "cancelAutohide"]);
        // Too little shared context: one literal token besides the variable.
        let out = run(&[
            "isScreenOn true",
            "registersensorsuccess: true",
            "getStepCounterStatus= true",
        ]);
        assert_eq!(
            out.iter().collect::<std::collections::HashSet<_>>().len(),
            3
        );
    }

    #[test]
    fn first_words_are_subjects() {
        let t = [
            "cupsd startup succeeded",
            "klogd startup succeeded",
            "hcid startup succeeded",
            "sdpd startup succeeded",
        ];
        let out = run(&t);
        assert_eq!(out, t);
    }

    #[test]
    fn variables_at_several_positions_merge_step_by_step() {
        let t = [
            "Failed password for root from <*> port <*> ssh2",
            "Failed password for admin from <*> port <*> ssh2",
            "Failed password for guest from <*> port <*> ssh2",
            "Failed password for root via <*> port <*> ssh2",
            "Failed password for root over <*> port <*> ssh2",
        ];
        let out = run(&t);
        assert!(
            out.iter()
                .all(|p| p == "Failed password for <*> <*> <*> port <*> ssh2"),
            "{out:?}"
        );
    }

    #[test]
    fn result_depends_only_on_the_set() {
        let t = [
            "session closed for user news",
            "session closed for user cyrus",
            "<*> open through proxy <*> HTTPS",
            "session closed for user test",
            "wpad:<*> open through proxy <*> HTTPS",
            "VM Paused (Lifecycle Event)",
        ];
        let a = run(&t);
        let mut rev = t.to_vec();
        rev.reverse();
        let b = run(&rev);
        for (i, p) in a.iter().enumerate() {
            assert_eq!(p, &b[t.len() - 1 - i]);
        }
        let ma = merge(&t, &Config::default());
        let mb = merge(&rev, &Config::default());
        assert_eq!(ma.patterns, mb.patterns);
    }

    #[test]
    fn invariants_on_generated_templates() {
        // Deterministic pseudo-random templates over a small vocabulary, so
        // that many sibling sets, covers and collisions occur.
        let vocab = [
            "<*>", "k=<*>", "k=v", "a", "b", "c", "d", "Up", "Down", "x:<*>", "(<*>)", "e",
        ];
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % n as u64) as usize
        };
        let mut set = std::collections::BTreeSet::new();
        for _ in 0..3000 {
            let len = 2 + next(4);
            let t: Vec<&str> = (0..len).map(|_| vocab[next(vocab.len())]).collect();
            set.insert(t.join(" "));
        }
        let templates: Vec<&str> = set.iter().map(String::as_str).collect();
        let m = merge(&templates, &Config::default());
        assert!(m.patterns.len() < templates.len(), "something merged");
        let unique: std::collections::HashSet<&String> = m.patterns.iter().collect();
        assert_eq!(
            unique.len(),
            m.patterns.len(),
            "patterns are unique (ids are their hashes)"
        );
        for (t, &c) in templates.iter().zip(&m.assign) {
            let pat: Vec<&str> = m.patterns[c as usize].split(' ').collect();
            let tok: Vec<&str> = t.split(' ').collect();
            assert!(
                pattern_covers(&pat, &tok),
                "{:?} must cover {t}",
                m.patterns[c as usize]
            );
        }
    }

    #[test]
    fn empty_input() {
        let m = merge(&[], &Config::default());
        assert!(m.assign.is_empty() && m.patterns.is_empty());
    }
}
