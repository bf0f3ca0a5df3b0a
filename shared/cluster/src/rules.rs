//! The merge stage's evidence rules: when does a position of a template
//! hold a variable, and which patterns may adopt other templates. These are
//! the only judgement calls of the merge stage; `merge.rs` applies them.
//!
//! Position `p` of a sibling set (templates identical except at `p`) is a
//! variable when:
//!
//! * **(a) enough distinct values**: at least [`Config::min_distinct_names`]
//!   when every literal value looks like a name (starts with a lower-case
//!   letter, after opening brackets and quotes: users, hosts, packages,
//!   files, `(agent[<*>]):` subjects), otherwise at least
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
//! In both cases the rest of the template must carry enough words: tokens
//! with letters outside wildcards, at least three, or two that are half of
//! all tokens. So short or already vague templates do not swallow each
//! other (`isScreenOn true` / `registersensorsuccess: true` stay apart),
//! while value-heavy lines such as access-log entries, where a request line
//! and a few words hold the structure, can still merge. A `-` value (the
//! usual placeholder of a missing field) counts as a value, not a word.
//!
//! Values that are routes (request-line paths, see `route.rs`) are judged
//! segment by segment instead, see [`varying_groups`].

use crate::mask::WILDCARD;
use crate::pattern::is_route;
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
/// A trailing `:` (`(agent[<*>]):`) ends a subject, it introduces no value.
fn key_of(v: &str) -> Option<&str> {
    v.find(['=', ':'])
        .filter(|&i| i + 1 < v.len())
        .map(|i| &v[..=i])
        .filter(|k| k.len() > 1)
}

/// Does the value read as a name: after opening brackets and quotes
/// (`(com.apple.foo[<*>]):`, `'alice'`) it starts with a lower-case letter
/// and has at least three letters or digits? One or two letters (`x+`,
/// `y+`, `rx`) are codes: axes, flags, modes, which tell messages apart.
fn reads_as_name(v: &str) -> bool {
    let w = v.trim_start_matches(['(', '[', '{', '"', '\'', '`']);
    w.as_bytes().first().is_some_and(u8::is_ascii_lowercase)
        && w.bytes().filter(u8::is_ascii_alphanumeric).count() >= 3
}

/// Does the rest of the template carry enough words to judge position `p`?
fn has_context(tokens: &[&str], p: usize) -> bool {
    has_context_except(tokens, &[p])
}

/// [`has_context`] for the template without the positions in `skip`.
pub(crate) fn has_context_except(tokens: &[&str], skip: &[usize]) -> bool {
    let context = tokens
        .iter()
        .enumerate()
        .filter(|&(i, t)| !skip.contains(&i) && is_informative(t))
        .count();
    context >= 3 || (context >= 2 && 2 * context >= tokens.len())
}

/// Is position `p` of a sibling set variable? `tokens` is any member of the
/// set (they agree outside `p`); `values` are the distinct tokens at `p`,
/// sorted, at least two. Sets whose values are routes are judged by
/// [`varying_groups`] instead.
pub(crate) fn position_varies(tokens: &[&str], p: usize, values: &[&str], cfg: &Config) -> bool {
    if !has_context(tokens, p) {
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

/// Which of the distinct `values` at position `p` are one variable: groups
/// of indices into `values`, each to be merged. Usually all or nothing (see
/// [`position_varies`]); but when the values are routes or paths with
/// literal words (`/users/<*>/keys`, kept by the request-line rule), two of
/// them only belong together if they differ in exactly one segment, and that
/// segment shows enough distinct values by rule (a). A route's words are
/// its operation: `/servers/detail`, `/servers` and `/flavors` stay apart
/// however many there are.
pub(crate) fn varying_groups(
    tokens: &[&str],
    p: usize,
    values: &[&str],
    cfg: &Config,
) -> Vec<Vec<usize>> {
    if !values.iter().any(|v| is_route(v)) {
        return if position_varies(tokens, p, values, cfg) {
            vec![(0..values.len()).collect()]
        } else {
            Vec::new()
        };
    }
    if p == 0 || !has_context(tokens, p) {
        return Vec::new();
    }
    route_groups(values, cfg)
}

/// Splits a route into its items: segments and the separators between them.
fn route_items(v: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, c) in v.char_indices() {
        if matches!(c, '/' | '?' | '&' | '=' | ';' | ',') {
            if start < i {
                out.push(&v[start..i]);
            }
            out.push(&v[i..i + 1]);
            start = i + 1;
        }
    }
    if start < v.len() {
        out.push(&v[start..]);
    }
    out
}

fn is_route_separator(item: &str) -> bool {
    item.len() == 1 && matches!(item.as_bytes()[0], b'/' | b'?' | b'&' | b'=' | b';' | b',')
}

/// Route segments that name an operation, never a variable: the first
/// word segment (the resource: `/servers`, `/v2/...`) and a word right
/// after a value (`/<*>/servers`, `/jobs/<*>/cancel`).
fn names_operation(items: &[&str], i: usize) -> bool {
    let before = items[..i].iter().rev().find(|s| !is_route_separator(s));
    match before {
        None => true,
        Some(prev) => prev.contains(WILDCARD),
    }
}

fn route_groups(values: &[&str], cfg: &Config) -> Vec<Vec<usize>> {
    let items: Vec<Vec<&str>> = values.iter().map(|v| route_items(v)).collect();
    // (item count, position, the other items) -> indices of values.
    let mut by_rest: std::collections::BTreeMap<(usize, usize, Vec<&str>), Vec<usize>> =
        std::collections::BTreeMap::new();
    for (vi, it) in items.iter().enumerate() {
        for (i, seg) in it.iter().enumerate() {
            if is_route_separator(seg) || names_operation(it, i) {
                continue;
            }
            let rest: Vec<&str> = it
                .iter()
                .enumerate()
                .map(|(j, s)| if j == i { "" } else { *s })
                .collect();
            by_rest.entry((it.len(), i, rest)).or_default().push(vi);
        }
    }
    // Words inside a route are usually operations (`/servers/detail`,
    // `/servers/action`), so they need the stricter enumeration evidence.
    by_rest
        .into_iter()
        .filter_map(|((_, i, _), members)| {
            let mut segs: Vec<&str> = members.iter().map(|&v| items[v][i]).collect();
            segs.sort_unstable();
            segs.dedup();
            (segs.len() >= 2 && segs.len() >= cfg.min_distinct_enums).then_some(members)
        })
        .collect()
}

/// How many distinct values rule (a) needs, given the values' shape.
/// Already-masked values do not vote.
fn required_distinct(values: &[&str], cfg: &Config) -> usize {
    // `-` is the conventional placeholder of a missing value (access logs'
    // `- alice`), a value itself: it does not vote either.
    let mut literal = values
        .iter()
        .filter(|v| is_literal(v) && **v != "-")
        .peekable();
    if literal.peek().is_none() {
        return cfg.min_distinct_names;
    }
    let name_like = literal.all(|v| reads_as_name(v) && key_of(v).is_none());
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
        assert!(
            varies(t, 4, &["-", "news", "test"]),
            "`-` is a missing value"
        );
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
        assert!(!varies("<*> <*> <*> a X", 4, &["ann", "bob", "cyd"]));
        assert!(varies("(<*>) a b X", 3, &["ann", "bob", "cyd"]));
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
    fn routes_merge_only_on_one_varying_segment() {
        let t = "<*> \"GET X HTTP/<*>\" status: <*>";
        let tokens: Vec<&str> = t.split(' ').collect();
        let g = |values: &[&str]| varying_groups(&tokens, 2, values, &Config::default());
        let routes = [
            "/servers",
            "/servers/detail",
            "/flavors",
            "/images/detail",
            "/os-keypairs",
            "/os-hosts",
        ];
        assert!(g(&routes).is_empty(), "different operations stay apart");
        let users = [
            "/users/<*>",
            "/users/alice/keys",
            "/users/bob/keys",
            "/users/carol/keys",
            "/users/dave/keys",
            "/users/erin/keys",
        ];
        assert_eq!(g(&users), [vec![1, 2, 3, 4, 5]]);
        assert!(
            g(&users[..5]).is_empty(),
            "four names are not yet a variable"
        );
        let ops = [
            "/jobs/<*>/cancel",
            "/jobs/<*>/log",
            "/jobs/<*>/retry",
            "/jobs/<*>/stop",
            "/jobs/<*>/x",
        ];
        assert!(g(&ops).is_empty(), "a word after an id names the operation");
    }

    #[test]
    fn empty_tokens_do_not_panic() {
        assert!(!varies("a b c X", 3, &["", "x"]));
    }
}
