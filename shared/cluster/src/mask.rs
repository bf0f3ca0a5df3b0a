//! Normalisation: turns a raw message into its *template* by replacing the
//! variable parts with the wildcard `<*>`. This is a pure function of the
//! message text; it is the first (fully stable) level of clustering.
//!
//! # How a message is read
//!
//! The masker is a single hand-written pass over the bytes (no regexes: the
//! CLI must sustain millions of messages per second). It splits the message
//! into *words* at whitespace and each word into *pieces* at the delimiters
//! `= , ; : ( ) [ ] { } | @ #`, quotes, and runs of two or more dots. `.`,
//! `-`, `_`, `/` and `+` do not split, so `10.1.2.3`, `blk_-42`, `a/b.rs` or
//! `core.2275` stay one piece and are judged as a whole.
//!
//! # Masking rules
//!
//! 1. **Digits.** A piece containing an ASCII digit is a value: numbers
//!    (signed, decimal, `<1`), hex (`0x1f`, `8a2a501`), IPv4, versions, ids
//!    (`blk_-42`, `attempt_14_0020_m_3`, `core.2275`), host names with digits.
//!    IPv6 and MAC addresses, `host:port`, `line:column` pairs and clock
//!    times (`12:16:49`) are pieces joined by `:`, and collapse (rule 9);
//!    short hex-letter groups inside them (`FF` in `FF:F2:9F`) are values.
//!    Error codes right before `:` or `]` are words, not values: they name
//!    the error (`error[E0308]:`, `error TS2322:`, `AH00558:`).
//! 2. **Keys stay.** A piece directly followed by `=` is a key and is kept
//!    even if it has digits (`PSR0=`, `x1=`); only the value after `=` is
//!    judged. Values without digits (`user=root`, `overlap:true`, `ws=null`)
//!    are kept: in practice they are enumerations whose values distinguish
//!    message kinds.
//! 3. **Paths and files**: `/abs`, `~/x`, `./x`, `../x`, `\win`, `a/b/c`,
//!    `dir/f.ext`, and file names with a well-known extension (`main.rs`,
//!    `Foo.java`). In an HTTP request line the path is a route instead:
//!    only its variable segments are masked (see `route.rs`).
//! 4. **URLs**: `scheme://...` up to the next whitespace or quote.
//! 5. **Host names** without digits: dotted labels ending in a known TLD
//!    (`troi.bluesky-technologies.com`), so Java-style names are kept.
//! 6. **Long hex words** of 8+ hex letters only (`ffffffff`).
//! 7. **Quoted literals**: `"..."`, `'...'` and `` `...` `` opened at a word
//!    start or after `= ( [ { : , |` and closed before a non-alphanumeric
//!    byte are rendered `"<*>"` (`'lodash'`, `` `foo` ``). Single quotes and
//!    backticks may enclose spaces (compilers quote code with them:
//!    `'struct point'`, `` `HashMap<String, u32>` ``); double-quoted phrases
//!    with spaces are masked word by word instead: they often *are* the
//!    message kind (`msg="query failed"`, `"GET /x HTTP/1.1"`). Apostrophes
//!    (`can't`) are not quotes.
//! 8. **Dates and units**: month and weekday names next to another masked
//!    date part (`Sat Jul  9 12:16:49 2005`), and unit words and time zone
//!    abbreviations right after a masked number (`18.4 KB`, `<1 sec`,
//!    `42 bytes`, `4.9 MiB/s`, `12:00:01 UTC`), are part of the value.
//! 9. **Collapsing**: a run of values separated only by spaces, the glue
//!    `: , ; # @ |`, `...`, `and` or `or` becomes one `<*>`, so lists and
//!    compound values of any length give one template (`ask 1.2.3.4:50010
//!    to delete blk_1 blk_2` and `... delete blk_1` agree, and so do
//!    `missing: 'a'` and `missing: 'a', 'b', and 'c'`). A bracket group
//!    holding only values, or nothing (`(18.4 KB)`, `()`, `[1, 2]`), and a
//!    quoted value count as values in such runs; alone they are rendered
//!    `(<*>)` and `'<*>'`, and so is a run that starts and ends with the
//!    same quote (`'<*>'` for the list above).
//! 10. **Qualified locations**: a name after `<value>::` belongs to the value
//!     (`FAILED tests/test_a.py::test_total - ...` gives `FAILED <*> - ...`).
//!
//! Whitespace is normalised to single spaces, so a template never contains
//! tabs or newlines (the persisted state relies on that).

use crate::custom::MaskRules;
use crate::render::render;
use crate::scan::{scan, Elem, Kind};
use crate::vocab::{is_date_name, is_unit, is_zone};

/// The wildcard that replaces variable parts in templates.
pub const WILDCARD: &str = "<*>";

/// Reusable masking state: holds a scratch buffer so that masking many
/// messages does not allocate per message (or per token).
#[derive(Default)]
pub struct Masker {
    elems: Vec<Elem>,
    rules: MaskRules,
}

/// Masks one message, allocating a fresh `String`. For bulk work prefer
/// [`Masker::mask_into`], which reuses buffers.
pub fn mask(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    Masker::default().mask_into(msg, &mut out);
    out
}

impl Masker {
    /// Creates a masker with empty scratch buffers.
    pub fn new() -> Self {
        Self::default()
    }

    /// A masker that applies operator-defined `rules` after the built-in
    /// ones (see [`crate::RuleSet`]).
    pub fn with_rules(rules: MaskRules) -> Self {
        Self {
            elems: Vec::new(),
            rules,
        }
    }

    /// Writes the template of `msg` into `out` (cleared first).
    pub fn mask_into(&mut self, msg: &str, out: &mut String) {
        out.clear();
        // Element offsets are u32; cap absurdly long inputs (> 4 GiB) at a
        // char boundary rather than overflow.
        let mut cut = msg.len().min(u32::MAX as usize);
        while !msg.is_char_boundary(cut) {
            cut -= 1;
        }
        let msg = &msg[..cut];
        scan(msg.as_bytes(), &mut self.elems);
        self.apply_word_rules(msg.as_bytes());
        render(&self.elems, msg, out);
        if !self.rules.is_empty() {
            self.rules.apply(out);
        }
    }

    /// Is element `k` a `:` directly followed (or preceded, `dir` = -1) by a mask?
    fn colon_then_mask(&self, b: &[u8], k: usize, dir: isize) -> bool {
        let (Some(c), Some(v)) = (
            self.elems.get(k),
            self.elems.get(k.wrapping_add_signed(dir)),
        ) else {
            return false;
        };
        c.kind == Kind::Punct && b[c.start as usize] == b':' && v.kind == Kind::Mask
    }

    /// A short hex-letter group inside a colon-joined value (`FF` in the MAC
    /// `FF:F2:9F`, `fe` in IPv6) is part of that value. Two sweeps let the
    /// mask spread from the digit-bearing groups in both directions.
    fn mask_hex_groups(&mut self, b: &[u8]) {
        let len = self.elems.len();
        let is_group = |e: Elem| {
            e.kind == Kind::Lit
                && e.end - e.start <= 4
                && b[e.start as usize..e.end as usize]
                    .iter()
                    .all(u8::is_ascii_hexdigit)
        };
        for k in (0..len).rev().chain(0..len) {
            if is_group(self.elems[k])
                && (self.colon_then_mask(b, k + 1, 1)
                    || (k >= 1 && self.colon_then_mask(b, k - 1, -1)))
            {
                self.elems[k].kind = Kind::Mask;
            }
        }
    }

    /// Is element `k` a name qualified by a located value, `<value>::name`
    /// (pytest node ids `tests/x.py::test_y`, `file.rs::module::item`)?
    /// Such names locate the value further and are part of it.
    fn after_located_value(&self, b: &[u8], k: usize) -> bool {
        let colon = |e: &Elem| e.kind == Kind::Punct && b[e.start as usize] == b':';
        k >= 3
            && colon(&self.elems[k - 1])
            && colon(&self.elems[k - 2])
            && self.elems[k - 3].kind == Kind::Mask
    }

    /// Stage 2: rules that need a piece's neighbours (rules 1, 8 and 10).
    fn apply_word_rules(&mut self, b: &[u8]) {
        if self
            .elems
            .iter()
            .any(|e| e.kind == Kind::Punct && b[e.start as usize] == b':')
        {
            self.mask_hex_groups(b);
        }
        let len = self.elems.len();
        for k in 0..len {
            let e = self.elems[k];
            if e.kind == Kind::Lit && self.after_located_value(b, k) {
                self.elems[k].kind = Kind::Mask;
                continue;
            }
            if e.kind != Kind::Lit || e.end - e.start > 12 {
                continue;
            }
            let w = &b[e.start as usize..e.end as usize];
            let starts_word = k == 0 || self.elems[k - 1].kind == Kind::Space;
            let ends_word = k + 1 == len
                || match self.elems[k + 1] {
                    n if n.kind == Kind::Space => true,
                    n if n.kind == Kind::Punct => {
                        matches!(b[n.start as usize], b',' | b')' | b']' | b'}' | b';')
                    }
                    _ => false,
                };
            if !starts_word || !ends_word {
                continue;
            }
            let after_mask = k >= 2 && self.elems[k - 2].kind == Kind::Mask;
            let masked = if after_mask && (is_unit(w) || is_zone(w)) {
                true
            } else if is_date_name(w) {
                after_mask
                    || (k + 2 < len
                        && self.elems[k + 1].kind == Kind::Space
                        && match self.elems[k + 2] {
                            n if n.kind == Kind::Mask => true,
                            n if n.kind == Kind::Lit => {
                                is_date_name(&b[n.start as usize..n.end as usize])
                            }
                            _ => false,
                        })
            } else {
                false
            };
            if masked {
                self.elems[k].kind = Kind::Mask;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(s: &str) -> String {
        mask(s)
    }

    #[test]
    fn rule1_digits() {
        assert_eq!(
            m("Found child 6725 in slot 10"),
            "Found child <*> in slot <*>"
        );
        assert_eq!(m("offset -42 and 3.14"), "offset <*>");
        assert_eq!(m("value 0x1f at 8a2a501"), "value <*> at <*>");
        assert_eq!(m("generating core.2275"), "generating <*>");
        assert_eq!(
            m("Deleting block blk_-5078186985701364847"),
            "Deleting block <*>"
        );
        assert_eq!(m("lifetime <1 sec"), "lifetime <*>");
    }

    #[test]
    fn rule1_addresses_and_colon_joined_values() {
        assert_eq!(m("from 10.251.39.209"), "from <*>");
        assert_eq!(m("to 10.251.39.209:50010 ok"), "to <*> ok");
        assert_eq!(m("peer fe80::1ff:fe23:4567:890a down"), "peer <*> down");
        assert_eq!(m("mac FF:F2:9F:16:E2:23 seen"), "mac <*> seen");
        assert_eq!(m("mac DC:FF:ab:12:ee:ff seen"), "mac <*> seen");
        assert_eq!(m("Error: 5 add: bad"), "Error: <*> add: bad");
        assert_eq!(m("at 12:16:49 today"), "at <*> today");
        assert_eq!(m("src/main.rs:10:5: error"), "<*>: error");
        assert_eq!(
            m("id 123e4567-e89b-12d3-a456-426614174000 gone"),
            "id <*> gone"
        );
    }

    #[test]
    fn error_codes_before_a_colon_or_bracket_stay() {
        assert_eq!(
            m("src/a.rs:3:5: error[E0308]: mismatched types"),
            "<*>: error[E0308]: mismatched types"
        );
        assert_eq!(
            m("x.ts(1,2): error TS2322: Type"),
            "<*>: error TS2322: Type"
        );
        assert_eq!(
            m("AH00558: cannot determine name"),
            "AH00558: cannot determine name"
        );
        assert_eq!(m("job J00123 done"), "job <*> done");
    }

    #[test]
    fn rule2_keys_stay_and_word_values_stay() {
        assert_eq!(m("PSR0=00001f01 x=5"), "PSR0=<*> x=<*>");
        assert_eq!(m("uid=0 euid=0 user=root"), "uid=<*> euid=<*> user=root");
        assert_eq!(
            m("updateClipping isOverlap:false"),
            "updateClipping isOverlap:false"
        );
        assert_eq!(m("logname= ws=null"), "logname= ws=null");
    }

    #[test]
    fn rule3_paths() {
        assert_eq!(m("ok /etc/httpd/conf/workers2.properties"), "ok <*>");
        assert_eq!(
            m("forbidden by rule: /var/www/html/"),
            "forbidden by rule: <*>"
        );
        assert_eq!(
            m("Error loading ./runtime_malloc: invalid"),
            "Error loading <*>: invalid"
        );
        assert_eq!(m("in src/lib.rs now"), "in <*> now");
        assert_eq!(m("Input/output error"), "Input/output error");
    }

    #[test]
    fn rule4_urls() {
        assert_eq!(
            m("fetch https://example.com/a?b=c failed"),
            "fetch <*> failed"
        );
        assert_eq!(m("see (http://x.org/y)."), "see (<*>).");
    }

    #[test]
    fn rule5_hostnames() {
        assert_eq!(m("rhost=troi.bluesky-technologies.com"), "rhost=<*>");
        assert_eq!(
            m("wpad open through proxy.cse.cuhk.edu.hk"),
            "wpad open through <*>"
        );
        assert_eq!(
            m("action: android.intent.action.SCREEN_ON"),
            "action: android.intent.action.SCREEN_ON"
        );
        assert_eq!(
            m("package com.tencent.mm died"),
            "package com.tencent.mm died"
        );
    }

    #[test]
    fn rule6_long_hex_words() {
        assert_eq!(m("mask=ffffffff set"), "mask=<*> set");
        assert_eq!(m("a decade faced"), "a decade faced");
    }

    #[test]
    fn rule7_quoted_literals() {
        assert_eq!(m("Cannot find module 'lodash'"), "Cannot find module '<*>'");
        assert_eq!(
            m("cannot find value `foo` in this scope"),
            "cannot find value `<*>` in this scope"
        );
        assert_eq!(m(r#"tag="*launch*", name=x"#), r#"tag="<*>", name=x"#);
        assert_eq!(m("Can't find child"), "Can't find child");
        assert_eq!(
            m("error: 'struct point' has no member named 'z'"),
            "error: '<*>' has no member named '<*>'"
        );
        assert_eq!(
            m("mismatched types: expected `HashMap<String, u32>`, found `()`"),
            "mismatched types: expected `<*>`, found `<*>`"
        );
        // Phrases keep their words; only values inside are masked.
        assert_eq!(m(r#"tag="View Lock", x"#), r#"tag="View Lock", x"#);
        assert_eq!(
            m(r#"1.2.3.4 "GET /v2/servers HTTP/1.1" status: 200"#),
            r#"<*> "GET /v2/servers HTTP/<*>" status: <*>"#
        );
    }

    #[test]
    fn rule8_dates_and_units() {
        assert_eq!(
            m("connection at Sat Jul  9 12:16:49 2005"),
            "connection at <*>"
        );
        assert_eq!(m("at Fri Jul 01 08:16:53 PDT 2005 ok"), "at <*> ok");
        assert_eq!(m("since 2024-03-01 10:00:00 UTC"), "since <*>");
        assert_eq!(m("UTC offset"), "UTC offset");
        assert_eq!(m("May not be null"), "May not be null");
        assert_eq!(m("sent 18846 bytes (18.4 KB) in 35 ms"), "sent <*> in <*>");
        assert_eq!(m("s sec"), "s sec");
    }

    #[test]
    fn rule9_collapsing_runs_and_groups() {
        assert_eq!(
            m("ask 1.2.3.4:50010 to delete blk_1 blk_2 blk_3"),
            "ask <*> to delete <*>"
        );
        assert_eq!(
            m("ask 1.2.3.4:50010 to delete blk_1"),
            "ask <*> to delete <*>"
        );
        assert_eq!(m("REPORT : 7007 5002 150089 240"), "REPORT : <*>");
        assert_eq!(
            m("from 1.2.3.4 (host-1.example.com) at 10:00"),
            "from <*> at <*>"
        );
        assert_eq!(m("from 1.2.3.4 () at 10:00"), "from <*> at <*>");
        assert_eq!(m("targets: [1.2.3.4:1, 1.2.3.5:2]"), "targets: [<*>]");
        assert_eq!(m("Rect(0, 0 - 720, 1280)"), "Rect(<*> - <*>)");
        assert_eq!(
            m("data store interrupt caused by dcbf.........0"),
            "data store interrupt caused by dcbf...<*>"
        );
    }

    #[test]
    fn adversarial_quotes_stay_linear() {
        let evil = "('a".repeat(200_000);
        let t = std::time::Instant::now();
        let out = m(&evil);
        assert!(out.starts_with("('a('a"));
        // Quadratic scanning would take minutes here; linear takes milliseconds.
        assert!(
            t.elapsed() < std::time::Duration::from_secs(2),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn rule10_qualified_locations() {
        assert_eq!(
            m("FAILED tests/api/test_orders.py::TestCart::test_total - assert 3 == 4"),
            "FAILED <*> - assert <*> == <*>"
        );
        assert_eq!(m("use std::fmt::Display"), "use std::fmt::Display");
    }

    #[test]
    fn whitespace_is_normalised() {
        assert_eq!(m("  a\t\tb \r\n c  "), "a b c");
        assert_eq!(m(""), "");
        assert_eq!(m("   "), "");
    }

    #[test]
    fn non_ascii_text_is_kept_intact() {
        assert_eq!(
            m("échec de connexion à 10.0.0.1 — délai 5 s"),
            "échec de connexion à <*> — délai <*>"
        );
        assert_eq!(m("ошибка 42"), "ошибка <*>");
    }

    #[test]
    fn masker_reuse_gives_same_result() {
        let mut mk = Masker::new();
        let mut out = String::new();
        mk.mask_into("first 1 message with many tokens a b c d", &mut out);
        mk.mask_into("x 2", &mut out);
        assert_eq!(out, "x <*>");
    }
}
