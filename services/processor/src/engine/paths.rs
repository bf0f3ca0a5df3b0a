//! File paths as edits and tool output write them, made comparable.
//!
//! An edit may say `src/a.rs`, `./src/a.rs` or `/home/me/shop/src/a.rs`;
//! rustc prints `src/a.rs`, Python `/home/me/shop/src/a.py`, a linker
//! `a.c`. Two paths name the same file when, after [`normalise`] and
//! [`resolve`] against the working directory (when known), they are equal;
//! without a working directory, a relative path of at least two components
//! may stand for the tail of an absolute or longer one (`billing/models.py`
//! is `/repo/app/billing/models.py`). Directories must agree: `app/models.py`
//! is never `app/billing/models.py`, and a bare base name matches nothing by
//! itself (see `attribution` for the one place a bare name is used).

/// Backslashes to slashes, `file://` and `./` dropped, `.` and `..`
/// components folded, duplicate and trailing slashes removed.
pub fn normalise(path: &str) -> String {
    let p = path.trim().replace('\\', "/");
    let p = p.strip_prefix("file://").unwrap_or(&p);
    let absolute = is_absolute(p);
    let mut parts: Vec<&str> = Vec::new();
    for c in p.split('/') {
        match c {
            "" | "." => {}
            ".." if parts.last().is_some_and(|l| *l != "..") => {
                parts.pop();
            }
            ".." if absolute => {}
            c => parts.push(c),
        }
    }
    let joined = parts.join("/");
    if absolute && !p.starts_with('/') {
        joined
    } else if absolute {
        format!("/{joined}")
    } else {
        joined
    }
}

/// `/x` or a Windows drive path (`C:/x`, after normalising).
pub fn is_absolute(p: &str) -> bool {
    let b = p.as_bytes();
    p.starts_with('/')
        || (b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && b[2] == b'/')
}

/// `path` made absolute against `cwd` when it is relative and `cwd` is
/// known; normalised either way.
pub fn resolve(path: &str, cwd: Option<&str>) -> String {
    let n = normalise(path);
    match cwd {
        Some(dir) if !is_absolute(&n) && !dir.is_empty() => normalise(&format!("{dir}/{n}")),
        _ => n,
    }
}

fn components(p: &str) -> usize {
    p.split('/').filter(|c| !c.is_empty()).count()
}

/// Do two normalised (and, where possible, resolved) paths name one file?
pub fn same_file(a: &str, b: &str) -> bool {
    if a == b {
        return true;
    }
    if is_absolute(a) && is_absolute(b) {
        return false;
    }
    let (long, short) = if a.len() >= b.len() { (a, b) } else { (b, a) };
    !is_absolute(short)
        && components(short) >= 2
        && long.ends_with(short)
        && long.as_bytes().get(long.len() - short.len() - 1) == Some(&b'/')
}

pub fn base_name(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// The base name without its extensions (`client.test.ts` → `client`).
pub fn stem(p: &str) -> &str {
    let b = base_name(p);
    b.split('.').next().unwrap_or(b)
}

fn parent_name(p: &str) -> Option<&str> {
    let mut it = p.rsplit('/');
    it.next();
    it.next().filter(|s| !s.is_empty())
}

const TEST_DIRS: &[&str] = &["tests", "test", "__tests__", "spec", "specs"];

/// What a test file tests, by the usual naming conventions:
/// `tests/test_billing.py` → `billing`, `client.test.ts` → `client`,
/// `math_test.go` → `math`, `tests/api.rs` → `api`. `None` for other files.
pub fn test_subject(p: &str) -> Option<&str> {
    let base = base_name(p);
    let stem = stem(p);
    if let Some(s) = stem.strip_prefix("test_") {
        return Some(s);
    }
    if let Some(s) = stem
        .strip_suffix("_test")
        .or_else(|| stem.strip_suffix("_spec"))
    {
        return Some(s);
    }
    let exts: Vec<&str> = base.split('.').skip(1).collect();
    if exts.len() >= 2 && matches!(exts[0], "test" | "spec") {
        return Some(stem);
    }
    let in_test_dir = p.split('/').rev().skip(1).any(|c| TEST_DIRS.contains(&c));
    (in_test_dir && !stem.is_empty() && !matches!(stem, "mod" | "lib" | "main" | "conftest"))
        .then_some(stem)
}

/// Does an edited file look like the subject of a test named `subject`?
/// Returns 2 for a base-name match (`models.py` for `test_models.py`), 1
/// for a directory match (`billing/invoice.py` for `test_billing.py`).
pub fn subject_match(edited: &str, subject: &str) -> u8 {
    if test_subject(edited).is_some() {
        return 0;
    }
    if stem(edited) == subject {
        2
    } else if parent_name(edited) == Some(subject) {
        1
    } else {
        0
    }
}

/// Code outside the project: interpreters, installed packages, toolchains.
/// Frames there are never the error's location in the project.
pub fn is_library(p: &str, cwd: Option<&str>) -> bool {
    const MARKERS: &[&str] = &[
        "/site-packages/",
        "/dist-packages/",
        "/lib/python",
        "node_modules/",
        "/.cargo/registry/",
        "/.cargo/git/",
        "/.rustup/",
        "/rustc/",
        "/usr/lib/",
        "/usr/include/",
        "/usr/local/lib/",
        "/.pyenv/",
        "/.venv/",
        "/venv/",
        "/go/pkg/mod/",
        "/.npm/",
    ];
    if p.starts_with('<') || p.starts_with("node:") || p.starts_with("internal/") {
        return true;
    }
    if MARKERS.iter().any(|m| p.contains(m)) || p.starts_with("venv/") || p.starts_with(".venv/") {
        return true;
    }
    match cwd {
        Some(dir) if is_absolute(p) && is_absolute(dir) => {
            !(p.starts_with(dir) && p.as_bytes().get(dir.len()) == Some(&b'/'))
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalising_and_resolving() {
        assert_eq!(normalise("./src//a.rs"), "src/a.rs");
        assert_eq!(normalise("src\\billing\\..\\a.rs"), "src/a.rs");
        assert_eq!(normalise("/repo/./src/a.rs/"), "/repo/src/a.rs");
        assert_eq!(resolve("src/a.rs", Some("/repo")), "/repo/src/a.rs");
        assert_eq!(resolve("/x/a.rs", Some("/repo")), "/x/a.rs");
        assert_eq!(resolve("../lib/a.rs", Some("/repo/web")), "/repo/lib/a.rs");
        assert_eq!(resolve("src/a.rs", None), "src/a.rs");
        assert_eq!(
            resolve("C:\\repo\\src\\a.rs", Some("/x")),
            "C:/repo/src/a.rs"
        );
    }

    #[test]
    fn directories_must_agree() {
        assert!(same_file("/repo/src/a.rs", "src/a.rs"));
        assert!(same_file("app/billing/models.py", "billing/models.py"));
        assert!(!same_file("app/models.py", "app/billing/models.py"));
        assert!(!same_file("/repo/app/billing/models.py", "app/models.py"));
        assert!(!same_file("/repo/src/a.rs", "/other/src/a.rs"));
        assert!(!same_file("/repo/src/a.rs", "a.rs"), "a bare name alone");
        assert!(!same_file("src/ba.rs", "a.rs"));
    }

    #[test]
    fn test_subjects() {
        assert_eq!(test_subject("tests/test_billing.py"), Some("billing"));
        assert_eq!(test_subject("src/client.test.ts"), Some("client"));
        assert_eq!(test_subject("pkg/math_test.go"), Some("math"));
        assert_eq!(test_subject("tests/api.rs"), Some("api"));
        assert_eq!(test_subject("src/api/client.ts"), None);
        assert_eq!(subject_match("app/models.py", "models"), 2);
        assert_eq!(subject_match("app/billing/invoice.py", "billing"), 1);
        assert_eq!(subject_match("tests/test_models.py", "models"), 0);
    }

    #[test]
    fn library_code() {
        assert!(is_library("/usr/lib/python3.11/urllib/request.py", None));
        assert!(is_library("node:internal/modules/cjs/loader", None));
        assert!(is_library("/opt/other/x.py", Some("/repo")));
        assert!(!is_library("/repo/app/x.py", Some("/repo")));
        assert!(!is_library("app/x.py", Some("/repo")));
    }
}
