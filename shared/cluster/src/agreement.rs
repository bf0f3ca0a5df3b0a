//! Grammatical agreement: printf-style messages pluralise with their counts
//! (`takes 1 positional argument but 2 were given`, `takes 2 positional
//! arguments but 1 was given`), so templates that differ only in grammatical
//! number are one message. The merge stage joins them before anything else
//! (pass 0 in `merge.rs`), and generalisation writes the word as
//! `argument<*>` (see `pattern::generalize`).

use crate::merge::{Cluster, UnionFind};

/// Pass 0: templates that differ only in grammatical number are one message
/// (`takes <*> argument but <*> were given` / `takes <*> arguments but <*>
/// was given`): printf-style messages pluralise with their counts.
pub(crate) fn agreement_pass(clusters: &[Cluster], uf: &mut UnionFind) -> bool {
    let mut keyed: Vec<(Vec<std::borrow::Cow<'_, str>>, u32)> = clusters
        .iter()
        .enumerate()
        .map(|(i, c)| (c.tokens.iter().map(|t| singular(t)).collect(), i as u32))
        .collect();
    keyed.sort_unstable();
    let mut changed = false;
    for run in keyed.chunk_by(|a, b| a.0 == b.0) {
        for x in &run[1..] {
            changed |= uf.union(run[0].1, x.1);
        }
    }
    changed
}

/// A word and the punctuation after it (`arguments:` -> `arguments`, `:`).
pub(crate) fn split_word(t: &str) -> (&str, &str) {
    let core = t.trim_end_matches(|c: char| c.is_ascii_punctuation());
    (core, &t[core.len()..])
}

/// The grammatical-number-free form of a token: lower-case words lose a
/// plural `s`, and `were`, `are`, `have` become `was`, `is`, `has`;
/// punctuation after the word stays.
pub(crate) fn singular(t: &str) -> std::borrow::Cow<'_, str> {
    let (core, punct) = split_word(t);
    let stem = match core {
        "were" => "was",
        "are" => "is",
        "have" => "has",
        _ if core.len() >= 4
            && core.bytes().all(|c| c.is_ascii_lowercase())
            && core.ends_with('s')
            && !core.ends_with("ss") =>
        {
            &core[..core.len() - 1]
        }
        _ => return std::borrow::Cow::Borrowed(t),
    };
    std::borrow::Cow::Owned(format!("{stem}{punct}"))
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
    fn grammatical_number_is_not_a_message_kind() {
        let out = run(&[
            "f() takes <*> positional argument but <*> were given",
            "f() takes <*> positional arguments but <*> were given",
            "f() takes <*> positional arguments but <*> was given",
        ]);
        assert!(out.iter().all(|p| p == &out[0]), "{out:?}");
        assert_eq!(
            out[0],
            "f() takes <*> positional argument<*> but <*> <*> given"
        );
        let out = run(&[
            "missing <*> argument: '<*>'",
            "missing <*> arguments: '<*>'",
        ]);
        assert_eq!(out[0], "missing <*> argument<*>: '<*>'");
        assert_eq!(out[0], out[1]);
        let out = run(&[
            "<*> more authentication failure",
            "<*> more authentication failed",
        ]);
        assert_ne!(out[0], out[1]);
    }
}
