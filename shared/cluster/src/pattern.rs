//! Token-level helpers shared by the merge stage and the online matcher:
//! wildcard matching (does a pattern token cover a token?) and
//! generalisation (the most specific pattern token covering several tokens).
//!
//! Tokens are the space-separated words of a template. Inside a token,
//! `<*>` is a wildcard matching any text, including other wildcards; the
//! rest of the token must match literally.

use crate::hash::{fnv1a64, FastMap};
use crate::mask::WILDCARD;

/// Is this template token a request route (`/users/<*>`, `<*>/health`)?
/// Routes keep their words (see `route.rs`), and their segments are their
/// structure.
pub(crate) fn is_route(tok: &str) -> bool {
    tok.starts_with('/')
        || tok
            .strip_prefix(WILDCARD)
            .is_some_and(|t| t.starts_with('/'))
}

/// True if `pat` (which may contain `<*>`) matches all of `tok`.
/// `<*>` matches any (possibly empty) text, so `a=<*>,` matches `a=1,` and
/// `a=<*>,`, and `<*>` matches every token; but inside a route it stands
/// for a masked value within one segment: `/users/<*>` covers `/users/<*>`,
/// not `/users/<*>/keys`, nor `/users/me` (a route's words name its
/// operation: `/servers/<*>` and `/servers/detail` are different calls).
pub(crate) fn token_matches(pat: &str, tok: &str) -> bool {
    if !pat.contains(WILDCARD) {
        return pat == tok;
    }
    let route = is_route(pat);
    let gap_ok = |g: &str| !route || g.split(WILDCARD).all(str::is_empty);
    let mut parts = pat.split(WILDCARD);
    // `split` on a string that contains the separator yields >= 2 parts.
    let first = parts.next().unwrap_or("");
    let Some(mut rest) = tok.strip_prefix(first) else {
        return false;
    };
    let mut middle: Vec<&str> = parts.collect();
    let last = middle.pop().unwrap_or("");
    for m in middle {
        // The leftmost occurrence leaves the shortest gap: if that gap holds
        // a `/`, every later occurrence's gap does too.
        match rest.find(m) {
            Some(i) if gap_ok(&rest[..i]) => rest = &rest[i + m.len()..],
            _ => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last) && gap_ok(&rest[..rest.len() - last.len()])
}

/// Does every token of `pat` match the token at the same position of `tpl`?
pub(crate) fn pattern_covers(pat: &[&str], tpl: &[&str]) -> bool {
    pat.len() == tpl.len() && pat.iter().zip(tpl).all(|(p, t)| token_matches(p, t))
}

/// Split a token into segments for generalisation: each delimiter byte and
/// each `<*>` is its own segment, other runs are one segment. Aligning on
/// these boundaries keeps `name=<*>,` from `name=android,`/`name=audio,`
/// instead of the accidental `name=a<*>,`.
fn segments(tok: &str) -> Vec<&str> {
    let b = tok.as_bytes();
    let mut out = Vec::new();
    let mut start = 0;
    let mut i = 0;
    while i < b.len() {
        let seg_len = if tok[i..].starts_with(WILDCARD) {
            WILDCARD.len()
        } else if matches!(
            b[i],
            b'=' | b','
                | b'/'
                | b'?'
                | b'&'
                | b';'
                | b':'
                | b'('
                | b')'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b'|'
                | b'@'
                | b'#'
                | b'"'
                | b'\''
                | b'`'
        ) {
            1
        } else {
            i += 1;
            continue;
        };
        if start < i {
            out.push(&tok[start..i]);
        }
        out.push(&tok[i..i + seg_len]);
        i += seg_len;
        start = i;
    }
    if start < b.len() {
        out.push(&tok[start..]);
    }
    out
}

/// The most specific token covering all `values` (all equal: that value;
/// otherwise common leading and trailing segments around one `<*>`).
pub(crate) fn generalize(values: &[&str]) -> String {
    let Some(&first) = values.first() else {
        return String::new();
    };
    if values.iter().all(|v| *v == first) {
        return first.to_string();
    }
    let segs: Vec<Vec<&str>> = values.iter().map(|v| segments(v)).collect();
    let min_len = segs.iter().map(Vec::len).min().unwrap_or(0);
    // Words in different grammatical number (`argument`, `arguments:`).
    let (_, punct) = crate::agreement::split_word(first);
    if values.iter().all(|v| {
        crate::agreement::split_word(v).1 == punct
            && crate::agreement::singular(v) == crate::agreement::singular(first)
    }) {
        let stem = crate::agreement::singular(first);
        let stem = &stem[..stem.len() - punct.len()];
        if !stem.is_empty() && values.iter().all(|v| v.starts_with(stem)) {
            return format!("{stem}{WILDCARD}{punct}");
        }
    }
    let mut pre = 0;
    while pre < min_len && segs.iter().all(|s| s[pre] == segs[0][pre]) {
        pre += 1;
    }
    let mut suf = 0;
    while suf < min_len - pre
        && segs
            .iter()
            .all(|s| s[s.len() - 1 - suf] == segs[0][segs[0].len() - 1 - suf])
    {
        suf += 1;
    }
    let head = &segs[0][..pre];
    let tail = &segs[0][segs[0].len() - suf..];
    // A wildcard inside a route does not stand for a `/` (see
    // `token_matches`): if the differing middles hold one, only the whole
    // token is variable.
    if is_route(first) && segs.iter().any(|s| s[pre..s.len() - suf].contains(&"/")) {
        return WILDCARD.to_string();
    }
    let mut out: String = head.concat();
    // Avoid `<*><*>`: a wildcard next to the new one is redundant.
    if !out.ends_with(WILDCARD) {
        out.push_str(WILDCARD);
    }
    let tail = tail.concat();
    out.push_str(tail.strip_prefix(WILDCARD).unwrap_or(&tail));
    out
}

/// Number of literal (non-wildcard) bytes: how specific a pattern is.
pub(crate) fn specificity(tokens: &[&str]) -> usize {
    tokens
        .iter()
        .map(|t| t.len() - t.matches(WILDCARD).count() * WILDCARD.len())
        .sum()
}

/// Index answering "which general patterns may cover this template?".
///
/// A covering pattern equals the template at each of its fully literal
/// positions, and at its first non-literal position the template's token
/// starts with the pattern token's text before its first `<*>`. Patterns are
/// grouped by token count and *signature* (the set of literal positions);
/// within a signature they are keyed by the hash of the literal tokens plus
/// that prefix. A lookup costs one probe per distinct prefix length in the
/// signature, so it stays cheap even when thousands of patterns share their
/// literal words (stack frames such as `at <*>(Foo.java:<*>)`). Callers
/// confirm candidates with [`pattern_covers`] (hash collisions are harmless).
#[derive(Default)]
pub(crate) struct CoverIndex {
    by_len: FastMap<usize, Vec<Signature>>,
    signature_slot: FastMap<(usize, Vec<u32>), usize>,
}

struct Signature {
    positions: Vec<u32>,
    /// First position holding a wildcard (every signature has one: patterns
    /// without wildcards are never inserted).
    open: usize,
    /// Distinct prefix lengths used at `open`, sorted.
    prefix_lens: Vec<usize>,
    patterns: FastMap<u64, Vec<u32>>,
}

fn literal_key(tokens: &[&str], positions: &[u32]) -> u64 {
    positions.iter().fold(0u64, |h, &p| {
        (h ^ fnv1a64(tokens[p as usize]))
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .rotate_left(29)
    })
}

fn with_prefix(literal: u64, prefix: &str) -> u64 {
    (literal ^ fnv1a64(prefix).rotate_left(17)).wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
}

impl CoverIndex {
    pub fn clear(&mut self) {
        self.by_len.clear();
        self.signature_slot.clear();
    }

    /// Register pattern `id` with the given tokens. Patterns without a
    /// wildcard cover only themselves and are ignored.
    pub fn insert(&mut self, id: u32, tokens: &[&str]) {
        let Some(open) = tokens.iter().position(|t| t.contains(WILDCARD)) else {
            return;
        };
        let positions: Vec<u32> = tokens
            .iter()
            .enumerate()
            .filter(|(_, t)| !t.contains(WILDCARD))
            .map(|(i, _)| i as u32)
            .collect();
        let open_tok = tokens[open];
        // `open` was found by looking for the wildcard, so `find` succeeds.
        let prefix = &open_tok[..open_tok.find(WILDCARD).unwrap_or(0)];
        let key = with_prefix(literal_key(tokens, &positions), prefix);
        let sigs = self.by_len.entry(tokens.len()).or_default();
        let slot = *self
            .signature_slot
            .entry((tokens.len(), positions.clone()))
            .or_insert_with(|| {
                sigs.push(Signature {
                    positions,
                    open,
                    prefix_lens: Vec::new(),
                    patterns: FastMap::default(),
                });
                sigs.len() - 1
            });
        let sig = &mut sigs[slot];
        if let Err(at) = sig.prefix_lens.binary_search(&prefix.len()) {
            sig.prefix_lens.insert(at, prefix.len());
        }
        sig.patterns.entry(key).or_default().push(id);
    }

    /// Ids of patterns that agree with `tokens` on all their literal tokens
    /// and on the prefix of their first wildcard token.
    pub fn candidates<'a>(&'a self, tokens: &'a [&str]) -> impl Iterator<Item = u32> + 'a {
        self.by_len
            .get(&tokens.len())
            .into_iter()
            .flatten()
            .flat_map(move |s| {
                let literal = literal_key(tokens, &s.positions);
                let tok = tokens[s.open];
                s.prefix_lens
                    .iter()
                    .take_while(move |&&l| l <= tok.len())
                    .filter(move |&&l| tok.is_char_boundary(l))
                    .filter_map(move |&l| s.patterns.get(&with_prefix(literal, &tok[..l])))
                    .flatten()
                    .copied()
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wildcard_matching() {
        assert!(token_matches("<*>", "anything"));
        assert!(token_matches("<*>", "foo:<*>"));
        assert!(token_matches("a=<*>,", "a=1,"));
        assert!(token_matches("a=<*>,", "a=,"));
        assert!(token_matches("x<*>y<*>z", "x1y2z"));
        assert!(!token_matches("a=<*>,", "b=1,"));
        assert!(!token_matches("a=<*>,", "a=1"));
        assert!(!token_matches("ab<*>ba", "aba"));
        assert!(!token_matches("foo", "<*>"));
        assert!(token_matches("/users/<*>", "/users/<*>"));
        assert!(!token_matches("/users/<*>", "/users/<*>/keys"));
        assert!(!token_matches("/servers/<*>", "/servers/detail"));
        assert!(token_matches("<*>", "/a/b"));
        assert!(token_matches("cmp=<*>", "cmp=a/.b"));
        assert!(pattern_covers(&["<*>", "closed"], &["x:<*>", "closed"]));
        assert!(!pattern_covers(&["<*>", "closed"], &["x", "opened"]));
    }

    #[test]
    fn generalisation_keeps_structure() {
        assert_eq!(generalize(&["same", "same"]), "same");
        assert_eq!(
            generalize(&["name=android,", "name=audioserver,"]),
            "name=<*>,"
        );
        assert_eq!(generalize(&["ws=null,", "ws=WorkSource{<*>},"]), "ws=<*>,");
        assert_eq!(generalize(&["<*>", "foo:<*>"]), "<*>");
        assert_eq!(generalize(&["root", "guest"]), "<*>");
        assert_eq!(
            generalize(&["/users/alice/keys", "/users/bob/keys"]),
            "/users/<*>/keys"
        );
        assert_eq!(generalize(&["/a/b/c", "/a/c"]), "<*>");
        // The result always covers every input.
        for vals in [["a:<*>", "b:<*>"], ["(x)", "(y)"], ["k=<*>", "k="]] {
            let g = generalize(&vals);
            assert!(vals.iter().all(|v| token_matches(&g, v)), "{g} vs {vals:?}");
        }
    }

    #[test]
    fn cover_index_finds_exactly_the_agreeing_patterns() {
        let mut ix = CoverIndex::default();
        let pats: [&[&str]; 6] = [
            &["a", "<*>", "c"],
            &["a", "b", "<*>"],
            &["x", "<*>", "c"],
            &["<*>", "b", "c", "d"],
            &["a", "b<*>", "c"],
            &["a", "bb<*>", "c"],
        ];
        for (i, p) in pats.iter().enumerate() {
            ix.insert(i as u32, p);
        }
        let mut got: Vec<u32> = ix.candidates(&["a", "b", "c"]).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 1, 4]);
        let mut got: Vec<u32> = ix.candidates(&["a", "bbb", "c"]).collect();
        got.sort_unstable();
        assert_eq!(got, [0, 4, 5]);
        ix.insert(9, &["a", "b", "c"]); // no wildcard: ignored
        assert_eq!(ix.candidates(&["q", "b", "c"]).count(), 0);
        assert_eq!(
            ix.candidates(&["z", "b", "c", "d"]).collect::<Vec<_>>(),
            [3]
        );
        ix.clear();
        assert_eq!(ix.candidates(&["a", "b", "c"]).count(), 0);
    }

    #[test]
    fn specificity_counts_literal_bytes() {
        assert_eq!(specificity(&["a=<*>,", "<*>"]), 3);
        assert_eq!(specificity(&["abc"]), 3);
    }
}
