//! HTTP request lines: `GET /v2/42/servers/detail?all=True HTTP/1.1`.
//!
//! Everywhere else a path or URL is one value (`opening /etc/x.conf` and
//! `opening /var/y.conf` are one message kind). In a request line it is not:
//! the route *is* the message kind of a web server or an API gateway
//! (`GET /servers/detail` and `POST /servers/<id>/action` are different
//! operations), and only some of its segments are values. So a path or URL
//! right after an HTTP method word is split at `/ ? & = ; ,` and every
//! segment is judged alone: ids, numbers, hashes, UUIDs and percent-encoded
//! text are values; words (`servers`, `detail`, `os-keypairs`,
//! `meta_data.json`) and API versions (`v2`) stay, and the merge stage
//! generalises a segment that shows many distinct words (see
//! `rules::varying_groups`). The
//! scheme and authority of an absolute URL (`http://10.0.0.1:8080`) are one
//! value. Query keys stay, query values are judged like segments.
//!
//! The version after the target is rendered `HTTP/<*>` wherever it appears,
//! so a status line (`HTTP/1.1 404 Not Found`) keeps its protocol word too.

use crate::scan::{is_ws, Elem, Kind};

/// Request methods of RFC 9110 plus PATCH (RFC 5789), upper case only.
pub(crate) fn is_method(w: &[u8]) -> bool {
    matches!(
        w,
        b"GET"
            | b"POST"
            | b"PUT"
            | b"DELETE"
            | b"PATCH"
            | b"HEAD"
            | b"OPTIONS"
            | b"CONNECT"
            | b"TRACE"
    )
}

/// Does a request target start at `i`: an origin-form path (`/x`) or an
/// absolute URL (`http://...`)?
pub(crate) fn target_starts(b: &[u8], i: usize) -> bool {
    match b.get(i) {
        Some(b'/') => true,
        Some(c) if c.is_ascii_alphabetic() => {
            let mut j = i;
            while j < b.len() && b[j].is_ascii_alphabetic() {
                j += 1;
            }
            b[j..].starts_with(b"://")
        }
        _ => false,
    }
}

fn push(elems: &mut Vec<Elem>, kind: Kind, start: usize, end: usize) {
    elems.push(Elem {
        kind,
        start: start as u32,
        end: end as u32,
    });
}

#[inline]
fn is_separator(c: u8) -> bool {
    matches!(c, b'/' | b'?' | b'&' | b'=' | b';' | b',')
}

/// A route segment that is a value. `v1`, `v2.1` are API versions, which
/// name the operation rather than vary within it.
fn segment_is_value(s: &[u8]) -> bool {
    let version = s.len() <= 5
        && s.first() == Some(&b'v')
        && s[1..].iter().all(|c| c.is_ascii_digit() || *c == b'.')
        && s.len() > 1;
    if version {
        return false;
    }
    s.iter().any(|c| c.is_ascii_digit() || *c == b'%')
        || (s.len() >= 8 && s.iter().all(u8::is_ascii_hexdigit))
}

/// Scans the request target starting at `i` (see [`target_starts`]) into
/// elements, up to the next whitespace or double quote; returns its end.
pub(crate) fn scan_target(b: &[u8], mut i: usize, elems: &mut Vec<Elem>) -> usize {
    let n = b.len();
    let end = (i..n).find(|&j| is_ws(b[j]) || b[j] == b'"').unwrap_or(n);
    if b[i] != b'/' {
        // scheme://authority is one value.
        let auth = i + b[i..end].windows(3).position(|w| w == b"://").unwrap_or(0) + 3;
        let stop = (auth..end).find(|&j| b[j] == b'/').unwrap_or(end);
        push(elems, Kind::Mask, i, stop);
        i = stop;
    }
    while i < end {
        if is_separator(b[i]) {
            push(elems, Kind::Punct, i, i + 1);
            i += 1;
            continue;
        }
        let s = i;
        while i < end && !is_separator(b[i]) {
            i += 1;
        }
        let kind = if segment_is_value(&b[s..i]) {
            Kind::Mask
        } else {
            Kind::Lit
        };
        push(elems, kind, s, i);
    }
    end
}

/// `HTTP/1.1`, `HTTP/2`: the length of the `HTTP/` prefix when `p` is a
/// protocol version, so the caller keeps the word and masks the number.
pub(crate) fn http_version_prefix(p: &[u8]) -> Option<usize> {
    let rest = p.strip_prefix(b"HTTP/")?;
    (!rest.is_empty() && rest.iter().all(|c| c.is_ascii_digit() || *c == b'.')).then_some(5)
}

#[cfg(test)]
mod tests {
    use crate::mask;

    #[test]
    fn routes_keep_their_words_and_mask_their_values() {
        assert_eq!(
            mask(
                r#"10.0.0.1 "GET /v2/54fadb412c4e40cdbaed9335e4c35a9e/servers/detail HTTP/1.1" status: 200 len: 1893 time: 0.24"#
            ),
            r#"<*> "GET /v2/<*>/servers/detail HTTP/<*>" status: <*> len: <*> time: <*>"#
        );
        assert_eq!(
            mask("POST /api/v1/jobs/123e4567-e89b-12d3-a456-426614174000/cancel HTTP/2 202"),
            "POST /api/v1/jobs/<*>/cancel HTTP/<*>"
        );
        assert_eq!(
            mask("GET /orders?status=open&page=3&since=2024-01-01T10%3A00 200 12ms"),
            "GET /orders?status=open&page=<*>&since=<*>"
        );
        assert_eq!(
            mask("GET /static/js/app.3f2a1c.js 304"),
            "GET /static/js/<*>"
        );
        assert_eq!(
            mask("GET /openstack/2013-10-17/meta_data.json HTTP/1.1"),
            "GET /openstack/<*>/meta_data.json HTTP/<*>"
        );
        assert_eq!(
            mask("GET http://10.1.1.1:8080/health HTTP/1.0"),
            "GET <*>/health HTTP/<*>"
        );
    }

    #[test]
    fn paths_elsewhere_stay_one_value() {
        assert_eq!(
            mask("opening /etc/app/main.conf failed"),
            "opening <*> failed"
        );
        assert_eq!(mask("HTTP/1.1 404 Not Found"), "HTTP/<*> Not Found");
    }
}
