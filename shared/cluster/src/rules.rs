//! The merge stage's evidence rules: when does a position of a template
//! hold a variable, and which patterns may adopt other templates. These are
//! the only judgement calls of the merge stage; `merge.rs` applies them.
//!
//! Position `p` of a sibling set (templates identical except at `p`) is a
//! variable when:
//!
//! * **(a) enough distinct values**: at least [`Config::min_distinct_names`]
//!   when every literal value looks like a name (starts with a lower-case
//!   letter: users, hosts, packages, files), otherwise at least
//!   [`Config::min_distinct_enums`]: capitalised or upper-case words and
//!   `key=word` settings are usually states or event kinds that distinguish
//!   messages (`VM Paused` / `VM Started`, `overlap:true` / `overlap:false`,
//!   `LOOKING` / `FOLLOWING`). Position 0 is exempt from (a): a message's
//!   first word is its subject (`cupsd startup succeeded`, `tickTime set to
//!   2000`), and many subjects sharing a predicate are still different
//!   messages.
//! * **(b) a masked value behind a shared key**: all values are `key=...`
//!   or `key:...` with the same key and at least one of them is already
//!   masked (`ws=null,` vs `ws=WorkSource{<*>},`).
//!
//! In both cases the rest of the template must carry enough words (at least
//! two tokens, and half of all tokens, with letters outside wildcards), so
//! that short or already vague templates do not swallow each other
//! (`isScreenOn true` / `registersensorsuccess: true` stay apart).

use crate::mask::WILDCARD;
use crate::Config;

pub(crate) fn is_literal(t: &str) -> bool {
    !t.contains(WILDCARD)
}

/// Does the token carry words outside its wildcards (`lock=<*>,` does,
/// `(<*>)` does not)? Such tokens are context that siblings must share.
pub(crate) fn is_informative(t: &str) -> bool {
    t.split(WILDCARD)
        .any(|part| part.bytes().any(|c| c.is_ascii_alphabetic()))
}

/// The `key=` or `key:` prefix of a token, if it has a non-empty key.
fn key_of(v: &str) -> Option<&str> {
    v.find(['=', ':']).map(|i| &v[..=i]).filter(|k| k.len() > 1)
}

/// Is position `p` of a sibling set variable? `tokens` is any member of the
/// set (they agree outside `p`); `values` are the distinct tokens at `p`,
/// sorted, at least two.
pub(crate) fn position_varies(tokens: &[&str], p: usize, values: &[&str], cfg: &Config) -> bool {
    let context = tokens
        .iter()
        .enumerate()
        .filter(|&(i, t)| i != p && is_informative(t))
        .count();
    if context < 2 || 2 * context < tokens.len() {
        return false;
    }
    if p > 0 && values.len() >= required_distinct(values, cfg) {
        return true;
    }
    match values.first().and_then(|v| key_of(v)) {
        Some(k0) => {
            values.iter().all(|v| key_of(v) == Some(k0))
                && values.iter().any(|v| v[k0.len()..].contains(WILDCARD))
        }
        None => false,
    }
}

/// How many distinct values rule (a) needs, given the values' shape.
/// Already-masked values do not vote.
fn required_distinct(values: &[&str], cfg: &Config) -> usize {
    let mut literal = values.iter().filter(|v| is_literal(v)).peekable();
    if literal.peek().is_none() {
        return cfg.min_distinct_names;
    }
    let name_like = literal
        .all(|v| v.as_bytes().first().is_some_and(u8::is_ascii_lowercase) && key_of(v).is_none());
    if name_like {
        cfg.min_distinct_names
    } else {
        cfg.min_distinct_enums
    }
}

/// May a pattern with these tokens adopt other templates? It must be
/// general (have a wildcard), have a fully literal token, and still be mostly
/// words: at least half of its tokens informative. Otherwise a pattern like
/// `<*>` or `<*>: <*>` would swallow every template of its length.
pub(crate) fn can_subsume(tokens: &[&str]) -> bool {
    let literal = tokens.iter().filter(|t| is_literal(t)).count();
    let informative = tokens.iter().filter(|t| is_informative(t)).count();
    literal > 0 && literal < tokens.len() && 2 * informative >= tokens.len()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn varies(tpl: &str, p: usize, values: &[&str]) -> bool {
        let tokens: Vec<&str> = tpl.split(' ').collect();
        position_varies(&tokens, p, values, &Config::default())
    }

    #[test]
    fn names_need_three_values_enums_five() {
        let t = "session closed for user X";
        assert!(!varies(t, 4, &["cyrus", "news"]));
        assert!(varies(t, 4, &["cyrus", "news", "test"]));
        assert!(!varies(t, 4, &["Paused", "Resumed", "Started", "Stopped"]));
        assert!(varies(t, 4, &["A", "B", "C", "D", "E"]));
        assert!(!varies(t, 4, &["user=guest", "user=root", "user=test"]));
        // A mix of shapes is judged by the strictest reading.
        assert!(!varies(t, 4, &["Root", "news", "test"]));
        // Masked values count as values but do not vote on the shape.
        assert!(varies(t, 4, &["<*>", "news", "test"]));
    }

    #[test]
    fn first_position_never_merges_on_counts() {
        assert!(!varies(
            "X startup succeeded now",
            0,
            &["cupsd", "hcid", "klogd", "sdpd", "xinetd"]
        ));
    }

    #[test]
    fn shared_key_with_masked_value() {
        let t = "acquire lock=<*>, name=android, X uid=<*>";
        assert!(varies(t, 3, &["ws=WorkSource{<*>},", "ws=null,"]));
        assert!(!varies(t, 3, &["ws=null,", "ws=other,"]));
        assert!(!varies(t, 3, &["ws=<*>,", "xs=null,"]));
    }

    #[test]
    fn context_must_be_words() {
        assert!(!varies("X true", 0, &["a", "b", "c", "d", "e"]));
        assert!(!varies("<*> <*> <*> a X", 4, &["a", "b", "c"]));
        assert!(varies("(<*>) a b X", 3, &["a", "b", "c"]));
    }

    #[test]
    fn who_may_adopt() {
        assert!(can_subsume(&["<*>", "open", "through", "proxy", "<*>"]));
        assert!(!can_subsume(&["<*>"]));
        assert!(!can_subsume(&["all", "literal"]));
        assert!(!can_subsume(&["k=<*>", "m=<*>"]), "no fully literal token");
        assert!(
            !can_subsume(&["<*>", "(<*>)", "<*>:", "x"]),
            "mostly wildcards"
        );
        assert!(is_informative("lock=<*>,"));
        assert!(!is_informative("(<*>):"));
    }

    #[test]
    fn empty_tokens_do_not_panic() {
        assert!(!varies("a b c X", 3, &["", "x"]));
    }
}
