//! Stage 3 of masking: writes the template text from the classified
//! elements, collapsing runs of values (rule 9 in
//! [`crate::mask`](mod@crate::mask)): a run of values separated only by
//! spaces, the glue `: , ; # @ |`, `...`, `and` or `or`, becomes one `<*>`;
//! a bracket group holding only values (or nothing) counts as a value inside
//! such runs, and so does a quoted value (`'a', 'b', and 'c'` is one list).
//!
//! Every bracket scan stops at the first element that is neither a value nor
//! glue, so rendering stays linear in the number of elements.
//!
//! Collapsing is what makes variable-length values agree: lists
//! (`delete blk_1 blk_2 blk_3`), compound values (`10.0.0.1:80`,
//! `Fri Jun 17 07:07:00 2005`) and optional annotations (`5 bytes (5.0 KB)`)
//! all end up as a single wildcard.

use crate::mask::WILDCARD;
use crate::scan::{is_glue, Elem, Kind};

/// If a value atom (a mask, or a bracket group of values) starts at `k`,
/// returns the index just past it and whether it is a group.
fn atom_at(elems: &[Elem], b: &[u8], k: usize) -> Option<(usize, bool)> {
    let e = *elems.get(k)?;
    match e.kind {
        Kind::Mask | Kind::Quoted => Some((k + 1, false)),
        Kind::Punct => {
            let close = match b[e.start as usize] {
                b'(' => b')',
                b'[' => b']',
                b'{' => b'}',
                _ => return None,
            };
            let mut j = k + 1;
            while let Some(x) = elems.get(j) {
                match x.kind {
                    Kind::Mask | Kind::Space | Kind::Ellipsis => {}
                    Kind::Punct if b[x.start as usize] == close => return Some((j + 1, true)),
                    Kind::Punct if is_glue(b[x.start as usize]) => {}
                    _ => return None,
                }
                j += 1;
            }
            None
        }
        _ => None,
    }
}

/// Index of the next atom after glue starting at `k`, if any. Inside a
/// run, `and` / `or` are glue too (`'a', 'b', and 'c'`).
fn next_atom(elems: &[Elem], b: &[u8], mut k: usize) -> Option<(usize, usize, bool)> {
    while let Some(x) = elems.get(k) {
        match x.kind {
            Kind::Space | Kind::Ellipsis => k += 1,
            Kind::Punct if is_glue(b[x.start as usize]) => k += 1,
            Kind::Lit if matches!(&b[x.start as usize..x.end as usize], b"and" | b"or") => k += 1,
            _ => break,
        }
    }
    atom_at(elems, b, k).map(|(end, g)| (k, end, g))
}

/// Stage 3: write the template, collapsing runs of values (rule 9).
pub(crate) fn render(elems: &[Elem], msg: &str, out: &mut String) {
    let b = msg.as_bytes();
    let mut k = 0;
    while k < elems.len() {
        if let Some((mut end, group)) = atom_at(elems, b, k) {
            let mut atoms = 1;
            while let Some((_, e2, _)) = next_atom(elems, b, end) {
                end = e2;
                atoms += 1;
            }
            let (e, last) = (elems[k], elems[end - 1]);
            if e.kind == Kind::Quoted
                && last.kind == Kind::Quoted
                && b[e.start as usize] == b[last.start as usize]
            {
                // Quoted values keep their quotes: `'<*>'`, also for a list
                // such as `'a', 'b', and 'c'`.
                let q = char::from(b[e.start as usize]);
                out.push(q);
                out.push_str(WILDCARD);
                out.push(q);
            } else if atoms > 1 || !group {
                out.push_str(WILDCARD);
            } else {
                // A lone group: `(<*>)`, or `()` when it held nothing.
                let has_value = elems[k..end].iter().any(|e| e.kind == Kind::Mask);
                out.push(char::from(b[elems[k].start as usize]));
                if has_value {
                    out.push_str(WILDCARD);
                }
                out.push(char::from(b[elems[end - 1].start as usize]));
            }
            k = end;
            continue;
        }
        let e = elems[k];
        let (s, t) = (e.start as usize, e.end as usize);
        match e.kind {
            Kind::Space => out.push(' '),
            Kind::Lit | Kind::Punct => out.push_str(&msg[s..t]),
            Kind::Ellipsis => out.push_str("..."),
            // `atom_at` claims every mask and quoted value; rendering one
            // here anyway keeps this total without a panic path.
            Kind::Mask | Kind::Quoted => out.push_str(WILDCARD),
        }
        k += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scan::scan;

    fn r(msg: &str) -> String {
        let mut e = Vec::new();
        scan(msg.as_bytes(), &mut e);
        let mut out = String::new();
        render(&e, msg, &mut out);
        out
    }

    #[test]
    fn runs_of_values_collapse() {
        assert_eq!(r("a 1 2 3 b"), "a <*> b");
        assert_eq!(r("a 1, 2; 3 b"), "a <*> b");
        assert_eq!(r("a 1 (2) b"), "a <*> b");
        assert_eq!(r("a (1) () [2] b"), "a <*> b");
        assert_eq!(r("a 1 - 2 b"), "a <*> - <*> b");
        assert_eq!(r("missing: 'x', 'y', and 'z'"), "missing: '<*>'");
        assert_eq!(r("missing: 'x' and 'y' here"), "missing: '<*>' here");
        assert_eq!(r("got 'x' 2"), "got <*>");
        assert_eq!(r("between 1 or 2"), "between <*>");
        assert_eq!(r("cats and dogs 'x'"), "cats and dogs '<*>'");
    }

    #[test]
    fn lone_groups_keep_their_brackets() {
        assert_eq!(r("f(1, 2) g[] h"), "f(<*>) g[] h");
        assert_eq!(r("clear()"), "clear()");
        assert_eq!(r("x (y 1) z"), "x (y <*>) z");
    }

    #[test]
    fn literals_and_quotes_render_verbatim() {
        assert_eq!(
            r("Can't stop..... now 'x' ok \"y\""),
            "Can't stop... now '<*>' ok \"<*>\""
        );
    }
}
