//! Grouping accuracy (GA), the LogHub benchmark metric, so that tests and
//! tools score the engine exactly like `shared/tools/loghub_eval.py`.
//!
//! GA (Zhu et al., ICSE-SEIP 2019): a message is correct when the set of
//! messages in its predicted cluster equals the set of messages sharing its
//! ground-truth template; GA = correct / total.

use std::collections::HashMap;
use std::hash::Hash;

/// Grouping accuracy of `pred` against `truth` (same length, one label per
/// message; equal labels = same group). Returns 1.0 for empty input.
///
/// # Panics
/// If the two slices differ in length: that is a caller bug, not data.
pub fn grouping_accuracy<T: Hash + Eq, P: Hash + Eq>(truth: &[T], pred: &[P]) -> f64 {
    assert_eq!(truth.len(), pred.len(), "one predicted label per message");
    if truth.is_empty() {
        return 1.0;
    }
    let mut truth_size: HashMap<&T, usize> = HashMap::new();
    for t in truth {
        *truth_size.entry(t).or_default() += 1;
    }
    // For every predicted cluster: its size, the truth label of its first
    // member, and whether all members share that label.
    let mut clusters: HashMap<&P, (usize, &T, bool)> = HashMap::new();
    for (t, p) in truth.iter().zip(pred) {
        let c = clusters.entry(p).or_insert((0, t, true));
        c.0 += 1;
        c.2 &= c.1 == t;
    }
    let correct: usize = clusters
        .values()
        .filter(|(n, t, pure)| *pure && truth_size[t] == *n)
        .map(|(n, _, _)| n)
        .sum();
    correct as f64 / truth.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn perfect_and_partial_grouping() {
        let truth = ["a", "a", "b", "c"];
        assert_eq!(grouping_accuracy(&truth, &[1, 1, 2, 3]), 1.0);
        // Splitting "a" costs both of its messages.
        assert_eq!(grouping_accuracy(&truth, &[1, 4, 2, 3]), 0.5);
        // Merging "b" and "c" costs both as well.
        assert_eq!(grouping_accuracy(&truth, &[1, 1, 2, 2]), 0.5);
        // Label names do not matter, only the partition.
        assert_eq!(grouping_accuracy(&truth, &["x", "x", "y", "z"]), 1.0);
    }
}
