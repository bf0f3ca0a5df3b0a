//! Word-shape predicates used by the masker: which pieces of a message are
//! variable (numbers, paths, file and host names, hex and base64 blobs) and
//! which look like error codes. Vocabulary words that belong to a value
//! (dates, zones, units) are in `vocab.rs`.
//!
//! Every predicate here is generic (no dataset knowledge) and works on raw
//! bytes without allocating, because it runs for almost every token of every
//! message. The lists are deliberately short and well known (common top-level
//! domains and file extensions): they describe how *software in general*
//! prints values, not any one log source.

/// Byte classes, looked up once per byte by the masker's scanner.
pub(crate) const WS: u8 = 1;
pub(crate) const DELIM: u8 = 2;
pub(crate) const DIGIT: u8 = 4;
pub(crate) const DOT: u8 = 8;
pub(crate) const SLASH: u8 = 16;
/// Anything that cannot appear in a hex number.
pub(crate) const NON_HEX: u8 = 32;

/// `CLASS[b]`: the classes of byte `b` (see the constants above). Delimiters
/// are the masker's piece separators, quotes included.
pub(crate) static CLASS: [u8; 256] = {
    let mut t = [NON_HEX; 256];
    let mut i = 0;
    while i < 256 {
        let c = i as u8;
        t[i] = match c {
            b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c => WS | NON_HEX,
            b'=' | b',' | b';' | b':' | b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'|' | b'@'
            | b'#' | b'"' | b'\'' | b'`' => DELIM | NON_HEX,
            b'0'..=b'9' => DIGIT,
            b'a'..=b'f' | b'A'..=b'F' => 0,
            b'.' => DOT | NON_HEX,
            b'/' => SLASH | NON_HEX,
            _ => NON_HEX,
        };
        i += 1;
    }
    t
};

/// Summary of a piece gathered while scanning it (the union of its bytes'
/// classes), so classification needs no second pass in the common case.
#[derive(Clone, Copy, Default)]
pub(crate) struct PieceShape(pub u8);

impl PieceShape {
    #[inline]
    fn has(self, class: u8) -> bool {
        self.0 & class != 0
    }
}

/// Is this piece (a run of bytes without delimiters) a variable value?
///
/// Rules, in order:
/// 1. it contains an ASCII digit (numbers, ids, IPs, versions, hex with
///    digits, host names with digits, `core.2275`, `blk_-42`, ...);
/// 2. it is a path (see [`is_path`]);
/// 3. it is a host name (see [`is_hostname`]);
/// 4. it is a long (>= 8) run of hex letters only, e.g. `ffffffff`, `deadbeef`.
#[inline]
pub(crate) fn is_variable(p: &[u8], s: PieceShape) -> bool {
    if s.has(DIGIT) {
        return true;
    }
    if s.has(SLASH) && is_path(p) {
        return true;
    }
    if s.has(DOT) && (is_hostname(p) || is_file_name(p)) {
        return true;
    }
    !s.has(NON_HEX) && p.len() >= 8
}

/// A base64 or base64url blob: at least 16 characters of its alphabet with
/// both letter cases (the caller checks for a digit). Such a piece followed
/// by `=` is padding, not a `key=` (keys are words: `PSR0=`, `logname=`).
pub(crate) fn is_blob(p: &[u8]) -> bool {
    p.len() >= 16
        && p.iter()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, b'+' | b'/' | b'_' | b'-'))
        && p.iter().any(u8::is_ascii_uppercase)
        && p.iter().any(u8::is_ascii_lowercase)
}

/// Error codes name the error, they are not values: one to four upper-case
/// letters, an optional `-`, and three to five digits (`E0308`, `TS2322`,
/// `C2065`, `CS0103`, `ORA-00942`, `AH00558`, `SC2086`). The scanner only
/// asks when the piece is followed by `:` or `]`, where compilers and
/// servers print codes (`error[E0308]:`, `error TS2322:`, `AH00558:`), so ids
/// of the same shape elsewhere (`job J00123 done`) stay values.
pub(crate) fn is_error_code(p: &[u8]) -> bool {
    let letters = p.iter().take_while(|c| c.is_ascii_uppercase()).count();
    let rest = &p[letters..];
    let digits = rest.strip_prefix(b"-").unwrap_or(rest);
    (1..=4).contains(&letters)
        && (3..=5).contains(&digits.len())
        && digits.iter().all(u8::is_ascii_digit)
}

/// Paths: absolute (`/x`), home/relative (`~/x`, `./x`, `../x`), Windows
/// (`\x`), or a slash-separated word that has at least two slashes or a file
/// extension after the last slash (`src/main.rs`, `a/b/c`). Plain `x/y` pairs
/// such as `Input/output`, `I/O` or `read/write` are words, not paths.
pub(crate) fn is_path(p: &[u8]) -> bool {
    if p.len() < 2 {
        return false;
    }
    if matches!(p[0], b'/' | b'\\')
        || p.starts_with(b"~/")
        || p.starts_with(b"./")
        || p.starts_with(b"../")
    {
        return true;
    }
    let slashes = p.iter().filter(|&&c| c == b'/').count();
    if slashes >= 2 {
        return true;
    }
    match p.iter().rposition(|&c| c == b'/') {
        Some(i) => {
            let tail = &p[i + 1..];
            // "dir/file.ext": a dot inside the last segment, not at its ends.
            tail.len() > 2 && tail[1..tail.len() - 1].contains(&b'.') && i > 0
        }
        None => false,
    }
}

/// File names without a directory (`main.rs`, `Foo.java`, `app.log`): a
/// stem and a well-known extension. Java-style dotted names end in a class
/// or member name (`android.intent.action.MAIN`), never in one of these.
pub(crate) fn is_file_name(p: &[u8]) -> bool {
    let p = p.strip_suffix(b".").unwrap_or(p);
    let Some(dot) = p.iter().rposition(|&c| c == b'.') else {
        return false;
    };
    dot > 0
        && matches!(
            &p[dot + 1..],
            b"rs"
                | b"py"
                | b"pyc"
                | b"c"
                | b"h"
                | b"cc"
                | b"cpp"
                | b"cxx"
                | b"hpp"
                | b"java"
                | b"class"
                | b"jar"
                | b"kt"
                | b"scala"
                | b"go"
                | b"js"
                | b"mjs"
                | b"cjs"
                | b"ts"
                | b"tsx"
                | b"jsx"
                | b"rb"
                | b"php"
                | b"cs"
                | b"swift"
                | b"sh"
                | b"json"
                | b"yaml"
                | b"yml"
                | b"toml"
                | b"xml"
                | b"ini"
                | b"cfg"
                | b"conf"
                | b"properties"
                | b"txt"
                | b"log"
                | b"md"
                | b"csv"
                | b"sql"
                | b"html"
                | b"css"
                | b"proto"
                | b"lock"
                | b"so"
                | b"dll"
                | b"exe"
                | b"o"
                | b"gz"
                | b"zip"
                | b"tar"
                | b"png"
                | b"jpg"
                | b"pdf"
                | b"pid"
                | b"sock"
                | b"tmp"
                | b"bak"
                | b"db"
        )
}

/// Host names: at least two dot-separated labels of `[A-Za-z0-9-]`, none
/// empty, the last one a known top-level domain in lower case. The TLD check
/// is what separates `www.example.com` from Java-style identifiers such as
/// `android.intent.action.SCREEN_ON`, which are usually constant parts of a
/// message; reverse-DNS package names (`com.tencent.mm`, `org.x.io`) start
/// with a TLD-like label and are not host names either.
pub(crate) fn is_hostname(p: &[u8]) -> bool {
    let p = p.strip_suffix(b".").unwrap_or(p); // sentence-final dot
    let first = p.split(|&c| c == b'.').next().unwrap_or(b"");
    if matches!(
        first,
        b"com"
            | b"org"
            | b"net"
            | b"edu"
            | b"gov"
            | b"io"
            | b"android"
            | b"java"
            | b"javax"
            | b"kotlin"
    ) {
        return false;
    }
    let mut labels = 0;
    for label in p.split(|&c| c == b'.') {
        if label.is_empty() || label[0] == b'-' {
            return false;
        }
        if !label
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'-')
        {
            return false;
        }
        labels += 1;
    }
    if labels < 2 {
        return false;
    }
    // `split` yielded at least two labels, so a last one exists.
    let tld = p.rsplit(|&c| c == b'.').next().unwrap_or(b"");
    is_tld(tld)
}

fn is_tld(t: &[u8]) -> bool {
    matches!(
        t,
        // Generic TLDs.
        b"com" | b"net" | b"org" | b"edu" | b"gov" | b"mil" | b"int" | b"info" | b"biz"
            | b"dev" | b"app" | b"cloud" | b"local" | b"localdomain" | b"internal" | b"lan"
            | b"arpa" | b"asia" | b"mobi" | b"name" | b"pro" | b"xyz" | b"online" | b"site"
            | b"top" | b"tech"
            // Country codes, minus those that are also common words or
            // identifier parts (`id`, `is`, `in`, `it`, `to`, `me`, `no`,
            // `us`, `io`, ...), which end Java-style names like `mapred.job.id`.
            | b"uk" | b"de" | b"jp" | b"cn" | b"hk" | b"ru" | b"fr" | b"br" | b"au" | b"ca"
            | b"nl" | b"es" | b"se" | b"ch" | b"tw" | b"kr" | b"pl" | b"cz" | b"eu" | b"dk"
            | b"fi" | b"nz" | b"za" | b"sg" | b"mx" | b"ar" | b"cl" | b"om" | b"ua" | b"ro"
            | b"hu" | b"gr" | b"pt" | b"ie" | b"il" | b"tr" | b"vn" | b"th" | b"my" | b"ph"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vocab::{is_date_name, is_unit};

    fn shape(p: &str) -> PieceShape {
        PieceShape(p.bytes().fold(0, |acc, c| acc | CLASS[c as usize]))
    }

    fn var(p: &str) -> bool {
        is_variable(p.as_bytes(), shape(p))
    }

    #[test]
    fn digits_make_a_piece_variable() {
        assert!(var("42"));
        assert!(var("-1"));
        assert!(var("0x1f"));
        assert!(var("core.2275"));
        assert!(var("10.251.39.209"));
        assert!(var("blk_-7724713468912166542"));
        assert!(!var("error"));
    }

    #[test]
    fn paths() {
        assert!(is_path(b"/var/www/html/"));
        assert!(is_path(b"./runtime_malloc"));
        assert!(is_path(b"../x"));
        assert!(is_path(b"~/x"));
        assert!(is_path(b"\\Users\\me"));
        assert!(is_path(b"src/main.rs"));
        assert!(is_path(b"a/b/c"));
        assert!(!is_path(b"Input/output"));
        assert!(!is_path(b"I/O"));
        assert!(!is_path(b"/"));
    }

    #[test]
    fn hostnames_need_a_tld() {
        assert!(is_hostname(b"troi.bluesky-technologies.com"));
        assert!(is_hostname(b"proxy.cse.cuhk.edu.hk"));
        assert!(is_hostname(b"www.google.com."));
        assert!(!is_hostname(b"android.intent.action.SCREEN_ON"));
        assert!(!is_hostname(b"com.huawei.health"));
        assert!(!is_hostname(b"com.tencent.mm"));
        assert!(is_hostname(b"bx.optimix.asia"));
        assert!(is_hostname(b"info.pinyin.sogou.com"));
        assert!(is_hostname(b"tc.dl.pinyin.sogoucdn.com"));
        assert!(!is_hostname(b"localhost"));
        assert!(!is_hostname(b"a..com"));
        assert!(!is_hostname(b"mapred.job.id"));
    }

    #[test]
    fn error_codes_have_a_shape() {
        for code in ["E0308", "TS2322", "C2065", "ORA-00942", "AH00558"] {
            assert!(is_error_code(code.as_bytes()), "{code}");
        }
        for value in ["t761", "E10", "KB2604115", "E0308x", "e0308", "ABCDE123"] {
            assert!(!is_error_code(value.as_bytes()), "{value}");
        }
    }

    #[test]
    fn file_names() {
        assert!(var("main.rs"));
        assert!(var("Foo.java"));
        assert!(var("app.log."));
        assert!(!var("android.intent.action.MAIN"));
        assert!(!var("workerEnv.init"));
        assert!(!var(".rs"));
        assert!(!var("a.m."), "one-letter words are not extensions");
    }

    #[test]
    fn hex_letters_only_when_long() {
        assert!(var("ffffffff"));
        assert!(var("DEADBEEF"));
        assert!(!var("facade"));
        assert!(!var("added"));
    }

    #[test]
    fn date_names_and_units() {
        assert!(is_date_name(b"Jul"));
        assert!(is_date_name(b"Saturday"));
        assert!(is_date_name(b"JUN"));
        assert!(!is_date_name(b"jul"));
        assert!(!is_date_name(b"Mayday"));
        assert!(is_unit(b"KB"));
        assert!(is_unit(b"sec"));
        assert!(!is_unit(b"received"));
        assert!(is_unit(b"MiB/s"));
        assert!(is_unit(b"req/s"));
        assert!(!is_unit(b"a/s"));
        assert!(is_blob(b"aGVsbG8gd29ybGQhIGhlbGxvIHdvcmxkIQ"));
        assert!(!is_blob(b"spark.executor.memory"));
        assert!(!is_blob(b"PSR0"));
    }
}
