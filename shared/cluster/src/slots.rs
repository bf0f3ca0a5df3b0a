//! Shared slots: a word that appears in two different positions of one
//! message shape is a value, not part of the shape.
//!
//! `incompatible types: int cannot be converted to String` and `... String
//! cannot be converted to boolean` differ at two positions, and the type
//! names move between them. Each position alone shows too few distinct
//! words for the sibling rule (four capitalised or short words are just what
//! distinguishes `VM Paused` from `VM Started`), but words that trade places
//! are arguments of one message. So templates equal except at positions `p`
//! and `q` merge at both when at least two words occur at both positions and
//! the two positions together show [`Config::min_distinct_names`] distinct
//! words. Upper-case constants do not count: they are states, and
//! `Transitioned from NEW to RUNNING` and `from RUNNING to DONE` are
//! different messages. The first position (the subject) and routes are
//! exempt, and the rest of the template must carry enough words, as for
//! siblings.

use crate::hash::fnv1a64;
use crate::merge::{by_len, Cluster, UnionFind};
use crate::pattern::is_route;
use crate::rules::{has_context_except, is_literal};
use crate::Config;

/// Odd multiplier of the position-weighted template hash.
const BASE: u64 = 0x9e37_79b9_7f4a_7c15;

/// Longer templates are skipped: the pass visits every pair of positions,
/// and long messages (stack dumps, lists) are not where arguments trade
/// places.
const MAX_TOKENS: usize = 48;

pub(crate) fn slot_pass(clusters: &[Cluster], cfg: &Config, uf: &mut UnionFind) -> bool {
    let mut changed = false;
    let mut keyed: Vec<(u64, u32)> = Vec::new();
    for group in by_len(clusters) {
        let len = clusters[group[0] as usize].tokens.len();
        if !(3..=MAX_TOKENS).contains(&len) {
            continue;
        }
        // key(p, q) = sum of h_i * BASE^i without the terms of p and q: O(1)
        // per pair. Collisions are guarded by `same_rest` below.
        let pow: Vec<u64> = (0..len)
            .scan(1u64, |acc, _| {
                let v = *acc;
                *acc = acc.wrapping_mul(BASE);
                Some(v)
            })
            .collect();
        let terms: Vec<Vec<u64>> = group
            .iter()
            .map(|&ci| {
                let t = &clusters[ci as usize].tokens;
                t.iter()
                    .zip(&pow)
                    .map(|(x, w)| fnv1a64(x).wrapping_mul(*w))
                    .collect()
            })
            .collect();
        let totals: Vec<u64> = terms
            .iter()
            .map(|t| t.iter().fold(0u64, |a, &x| a.wrapping_add(x)))
            .collect();
        for p in 1..len {
            for q in p + 1..len {
                keyed.clear();
                keyed.extend(group.iter().enumerate().map(|(gi, &ci)| {
                    let k = totals[gi]
                        .wrapping_sub(terms[gi][p])
                        .wrapping_sub(terms[gi][q]);
                    (k, ci)
                }));
                keyed.sort_unstable();
                for run in keyed.chunk_by(|a, b| a.0 == b.0).filter(|r| r.len() > 2) {
                    let set: Vec<u32> = run.iter().map(|x| x.1).collect();
                    if shares_slots(clusters, &set, p, q, cfg) {
                        for &c in &set[1..] {
                            changed |= uf.union(set[0], c);
                        }
                    }
                }
            }
        }
    }
    changed
}

/// Do the templates of `set` (equal outside `p` and `q`, per the hash) trade
/// words between `p` and `q`?
fn shares_slots(clusters: &[Cluster], set: &[u32], p: usize, q: usize, cfg: &Config) -> bool {
    let first = &clusters[set[0] as usize].tokens;
    let same_rest = set[1..].iter().all(|&c| {
        let t = &clusters[c as usize].tokens;
        t.iter()
            .zip(first)
            .enumerate()
            .all(|(i, (a, b))| i == p || i == q || a == b)
    });
    if !same_rest {
        return false;
    }
    let values = |at: usize| -> Option<Vec<&str>> {
        let mut v: Vec<&str> = set
            .iter()
            .map(|&c| clusters[c as usize].tokens[at].as_str())
            .collect();
        if v.iter().any(|x| is_route(x)) {
            return None;
        }
        v.retain(|x| is_literal(x));
        v.sort_unstable();
        v.dedup();
        Some(v)
    };
    let (Some(vp), Some(vq)) = (values(p), values(q)) else {
        return false;
    };
    // Upper-case constants are states: `from NEW to RUNNING` and `from
    // RUNNING to DONE` are different transitions, i.e. different messages.
    let shared = vp
        .iter()
        .filter(|v| vq.binary_search(v).is_ok() && !is_constant(v))
        .count();
    let mut all = vp.clone();
    all.extend(&vq);
    all.sort_unstable();
    all.dedup();
    let tokens: Vec<&str> = first.iter().map(String::as_str).collect();
    shared >= 2 && all.len() >= cfg.min_distinct_names && has_context_except(&tokens, &[p, q])
}

/// An upper-case constant such as a state name (`RUNNING`, `FAIL_TASK`).
fn is_constant(w: &str) -> bool {
    w.bytes().any(|c| c.is_ascii_uppercase()) && !w.bytes().any(|c| c.is_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use crate::merge::merge;
    use crate::Config;

    fn run(templates: &[&str]) -> Vec<String> {
        let m = merge(templates, &Config::default());
        m.assign
            .iter()
            .map(|&c| m.patterns[c as usize].clone())
            .collect()
    }

    #[test]
    fn words_that_trade_places_are_values() {
        let t = [
            "error: incompatible types: int cannot be converted to String",
            "error: incompatible types: String cannot be converted to boolean",
            "error: incompatible types: double cannot be converted to int",
        ];
        let out = run(&t);
        assert!(out.iter().all(|p| p == &out[0]), "{out:?}");
        assert_eq!(
            out[0],
            "error: incompatible types: <*> cannot be converted to <*>"
        );
    }

    #[test]
    fn state_transitions_stay_apart() {
        let t = [
            "task Transitioned from NEW to SCHEDULED now",
            "task Transitioned from SCHEDULED to RUNNING now",
            "task Transitioned from RUNNING to SUCCEEDED now",
        ];
        let out = run(&t);
        assert_eq!(out, t);
    }

    #[test]
    fn words_that_stay_in_their_slot_are_not() {
        // Two positions vary, but no word moves: different messages.
        let t = [
            "link eth up on switch alpha now",
            "link eth down on switch beta now",
            "link eth flapping on switch gamma now",
        ];
        let out = run(&t);
        assert_eq!(
            out.iter().collect::<std::collections::HashSet<_>>().len(),
            3,
            "{out:?}"
        );
    }
}
