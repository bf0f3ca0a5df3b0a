//! Stage 1 of masking: a single pass over the bytes that splits a message
//! into elements (spaces, literal pieces, delimiters, ellipses, quoted
//! literals, values) and classifies every piece with the rules of
//! [`crate::classify`]. The rules themselves are listed in
//! [`crate::mask`](mod@crate::mask).
//!
//! Elements refer to the message by byte offsets, so scanning allocates
//! nothing beyond the caller's reusable element buffer.

use crate::classify::{
    is_blob, is_error_code, is_variable, PieceShape, CLASS, DELIM, DIGIT, DOT, WS,
};
use crate::route::{http_version_prefix, is_method, scan_target, target_starts};

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    Space,
    /// Literal text `msg[start..end]`.
    Lit,
    /// One delimiter byte `msg[start]`.
    Punct,
    /// Two or more dots, rendered `...`.
    Ellipsis,
    /// A variable value, rendered `<*>`.
    Mask,
    /// A quoted literal, rendered `q<*>q` with `q = msg[start]`.
    Quoted,
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Elem {
    pub kind: Kind,
    pub start: u32,
    pub end: u32,
}

#[inline]
pub(crate) fn is_ws(c: u8) -> bool {
    CLASS[c as usize] & WS != 0
}

#[inline]
pub(crate) fn is_quote(c: u8) -> bool {
    matches!(c, b'"' | b'\'' | b'`')
}

#[inline]
fn is_delim(c: u8) -> bool {
    CLASS[c as usize] & DELIM != 0
}

/// Punctuation that may sit between two values of one run (rule 9).
#[inline]
pub(crate) fn is_glue(c: u8) -> bool {
    matches!(c, b':' | b',' | b';' | b'#' | b'@' | b'|')
}

/// Two or more dots not introducing a relative path (`../x`).
#[inline]
fn is_ellipsis(b: &[u8], i: usize) -> bool {
    if i + 1 >= b.len() || b[i] != b'.' || b[i + 1] != b'.' {
        return false;
    }
    let mut j = i;
    while j < b.len() && b[j] == b'.' {
        j += 1;
    }
    !(j < b.len() && b[j] == b'/')
}

/// A quote opens a quoted literal only at a word start or after a delimiter
/// that typically introduces a value; `can't` has no opening quote.
#[inline]
fn opens_quote(b: &[u8], i: usize) -> bool {
    i == 0 || is_ws(b[i - 1]) || matches!(b[i - 1], b'=' | b'(' | b'[' | b'{' | b':' | b',' | b'|')
}

/// Longest code span (`'...'`, `` `...` ``) judged as one quoted value.
const MAX_SPAN: usize = 128;

/// Index of the quote closing the one at `i`: the same byte, followed by
/// end of text or a non-alphanumeric byte (so `'it's'` closes at the last
/// quote). A double quote must close within the same word: quoted phrases
/// such as `msg="query failed"` or `"GET /x HTTP/1.1"` carry the message
/// kind and are masked word by word. Single quotes and backticks may span
/// words (at most [`MAX_SPAN`] bytes, never a line break): compilers quote
/// code with them, and code has spaces (`'struct point'`,
/// `` `HashMap<String, u32>` ``).
///
/// `scanned[q]` remembers where a failed search for quote byte `q` stopped:
/// no valid closer lies before it (validity does not depend on the opener),
/// so a later search starts there, which keeps the scan linear even on
/// adversarial input such as `('a('a('a...`.
fn find_close(b: &[u8], i: usize, scanned: &mut [usize; 3]) -> Option<usize> {
    let q = b[i];
    let (slot, spans_words) = match q {
        b'"' => (0, false),
        b'\'' => (1, true),
        _ => (2, true),
    };
    let limit = if spans_words {
        (i + 1 + MAX_SPAN).min(b.len())
    } else {
        b.len()
    };
    let mut j = (i + 1).max(scanned[slot]);
    while j < limit {
        let c = b[j];
        if c == b'\n' || c == b'\r' || (!spans_words && is_ws(c)) {
            break;
        }
        if c == q && (j + 1 == b.len() || !b[j + 1].is_ascii_alphanumeric()) {
            return Some(j);
        }
        j += 1;
    }
    scanned[slot] = scanned[slot].max(j);
    None
}

fn push(elems: &mut Vec<Elem>, kind: Kind, start: usize, end: usize) {
    // u32 offsets halve the scratch size; `Masker::mask_into` caps the length.
    elems.push(Elem {
        kind,
        start: start as u32,
        end: end as u32,
    });
}

/// Stage 1: split `b` into elements, classifying every piece (rules 1-7).
pub(crate) fn scan(b: &[u8], elems: &mut Vec<Elem>) {
    elems.clear();
    let n = b.len();
    let mut i = 0;
    let mut scanned = [0usize; 3];
    while i < n {
        let c = b[i];
        if is_ws(c) {
            if matches!(elems.last(), Some(e) if e.kind != Kind::Space) {
                push(elems, Kind::Space, i, i + 1);
            }
            i += 1;
            continue;
        }
        // A quoted word or code span is a value (`'lodash'`, `"*launch*"`,
        // `'struct point'`); double-quoted phrases keep their structure and
        // are masked word by word, see `find_close`.
        if is_quote(c) && opens_quote(b, i) {
            if let Some(j) = find_close(b, i, &mut scanned) {
                push(elems, Kind::Quoted, i, j + 1);
                i = j + 1;
                continue;
            }
        }
        if c == b'.' && is_ellipsis(b, i) {
            let s = i;
            while i < n && b[i] == b'.' {
                i += 1;
            }
            push(elems, Kind::Ellipsis, s, i);
            continue;
        }
        if is_delim(c) {
            push(elems, Kind::Punct, i, i + 1);
            i += 1;
            continue;
        }
        if after_method(b, elems) && target_starts(b, i) {
            i = scan_target(b, i, elems);
            continue;
        }
        let start = i;
        let mut shape = PieceShape::default();
        while i < n {
            let cl = CLASS[b[i] as usize];
            if cl & (WS | DELIM) != 0 || (cl & DOT != 0 && is_ellipsis(b, i)) {
                break;
            }
            shape.0 |= cl;
            i += 1;
        }
        if b[i..].starts_with(b"://") && b[start..i].iter().all(u8::is_ascii_alphabetic) {
            i = url_end(b, i + 3);
            push(elems, Kind::Mask, start, i);
            continue;
        }
        if let Some(k) = http_version_prefix(&b[start..i]) {
            push(elems, Kind::Lit, start, start + k);
            push(elems, Kind::Mask, start + k, i);
            continue;
        }
        if i < n && b[i] == b'=' && shape.0 & DIGIT != 0 && is_blob(&b[start..i]) {
            // A base64 blob with its padding, not a `key=`.
            while i < n && b[i] == b'=' {
                i += 1;
            }
            push(elems, Kind::Mask, start, i);
            continue;
        }
        let is_key = i < n && b[i] == b'=';
        let is_code = i < n && matches!(b[i], b':' | b']') && is_error_code(&b[start..i]);
        let kind = if !is_key && !is_code && is_variable(&b[start..i], shape) {
            Kind::Mask
        } else {
            Kind::Lit
        };
        push(elems, kind, start, i);
    }
    if matches!(elems.last(), Some(e) if e.kind == Kind::Space) {
        elems.pop();
    }
}

/// Do the elements end with an HTTP method word and a space?
fn after_method(b: &[u8], elems: &[Elem]) -> bool {
    match elems {
        [.., m, sp] if sp.kind == Kind::Space && m.kind == Kind::Lit => {
            is_method(&b[m.start as usize..m.end as usize])
        }
        _ => false,
    }
}

/// End of a URL starting at `i` (after `://`): the next whitespace or quote,
/// minus trailing sentence punctuation.
fn url_end(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && !is_ws(b[i]) && !is_quote(b[i]) {
        i += 1;
    }
    while i > 0 && matches!(b[i - 1], b'.' | b',' | b';' | b')' | b']' | b'}') {
        i -= 1;
    }
    i
}

#[cfg(test)]
mod tests {
    use super::Kind::*;
    use super::*;

    fn kinds(msg: &str) -> Vec<(Kind, &str)> {
        let mut e = Vec::new();
        scan(msg.as_bytes(), &mut e);
        e.iter()
            .map(|x| (x.kind, &msg[x.start as usize..x.end as usize]))
            .collect()
    }

    #[test]
    fn pieces_delimiters_and_values() {
        assert_eq!(
            kinds("uid=0 at core.2275, ok.. 'x'"),
            [
                (Lit, "uid"),
                (Punct, "="),
                (Mask, "0"),
                (Space, " "),
                (Lit, "at"),
                (Space, " "),
                (Mask, "core.2275"),
                (Punct, ","),
                (Space, " "),
                (Lit, "ok"),
                (Ellipsis, ".."),
                (Space, " "),
                (Quoted, "'x'"),
            ]
        );
        // A key keeps its digits; trailing whitespace produces no element.
        assert_eq!(
            kinds("PSR0=1  "),
            [(Lit, "PSR0"), (Punct, "="), (Mask, "1")]
        );
        // `../` starts a relative path, not an ellipsis.
        assert_eq!(kinds("../up"), [(Mask, "../up")]);
    }

    #[test]
    fn urls_end_at_whitespace_minus_punctuation() {
        assert_eq!(
            kinds("(http://a.b/c)."),
            [
                (Punct, "("),
                (Mask, "http://a.b/c"),
                (Punct, ")"),
                (Lit, ".")
            ]
        );
    }

    #[test]
    fn adversarial_quotes_stay_linear() {
        let evil = "('a".repeat(200_000);
        let t = std::time::Instant::now();
        let mut e = Vec::new();
        scan(evil.as_bytes(), &mut e);
        assert!(e.iter().all(|x| x.kind != Kind::Quoted));
        // Quadratic scanning would take minutes here; linear takes milliseconds.
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }
}
