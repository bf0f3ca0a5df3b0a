//! Docs that cannot drift from the code where checking is cheap: every
//! configuration key of `Settings` is in the README's configuration table
//! (or, for a `section.*` row, in the page that row points to), and every
//! metric family of `metrics.rs` is in `docs/metrics.md`.
//!
//! Both read the sources as text: the config structs derive only
//! `Deserialize` (a serialised default would have to leave out secrets),
//! and a metric's name is a string literal either way.
#![allow(clippy::unwrap_used)] // a panic in a test helper is the test failing

use std::path::Path;

const CONFIG_RS: &str = include_str!("../src/config.rs");
const QUOTA_RS: &str = include_str!("../src/quota.rs");
const LIMITS_RS: &str = include_str!("../src/model/limits.rs");
const METRICS_RS: &str = include_str!("../src/metrics.rs");

fn repo_file(rel: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    std::fs::read_to_string(root.join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// `(field, type)` of each `pub` field of `pub struct NAME` in `src`.
fn fields(src: &str, name: &str) -> Option<Vec<(String, String)>> {
    let start = src.find(&format!("pub struct {name} {{"))?;
    let body = &src[start..];
    let body = &body[body.find('{')? + 1..body.find("\n}")?];
    let mut out = Vec::new();
    for line in body.lines() {
        let Some(rest) = line.trim().strip_prefix("pub ") else {
            continue;
        };
        if let Some((field, ty)) = rest.split_once(':') {
            let ty = ty.trim().trim_end_matches(',').to_string();
            out.push((field.trim().to_string(), ty));
        }
    }
    Some(out)
}

fn struct_fields(name: &str) -> Vec<(String, String)> {
    [CONFIG_RS, QUOTA_RS, LIMITS_RS]
        .iter()
        .find_map(|src| fields(src, name))
        .unwrap_or_else(|| panic!("struct {name} not found"))
}

/// The README's configuration table rows.
fn config_rows(readme: &str) -> Vec<&str> {
    readme
        .lines()
        .filter(|l| l.starts_with("| `") && l.contains('.'))
        .collect()
}

/// Whether `section.key` is documented: named in full, named as a
/// backticked key in a row of its section (`| `a.b` / `c` |`), or covered
/// by a `section.*` row whose page (docs/*.md) names the key.
fn documented(rows: &[&str], section: &str, key: &str) -> bool {
    let full = format!("`{section}.{key}`");
    let in_section = format!("| `{section}.");
    let bare = format!("`{key}`");
    let wildcard = format!("| `{section}.*`");
    rows.iter().any(|row| {
        if row.contains(&full) || row.contains(&format!("`{section}.{key}.")) {
            return true;
        }
        let head = row.split(" | ").next().unwrap_or("");
        if row.starts_with(&in_section) && head.contains(&bare) {
            return true;
        }
        if row.starts_with(&wildcard) {
            return row
                .split(|c: char| c.is_whitespace() || c == '(' || c == ')' || c == '`')
                .filter(|w| w.starts_with("docs/") && w.ends_with(".md"))
                .any(|page| repo_file(page).contains(key))
                || row.contains(key);
        }
        false
    })
}

#[test]
fn every_configuration_key_is_in_the_readme() {
    let readme = repo_file("README.md");
    let rows = config_rows(&readme);
    let sections = struct_fields("Settings");
    assert!(sections.len() >= 10, "parsed {sections:?}");
    let mut missing = Vec::new();
    let mut checked = 0;
    for (section, ty) in &sections {
        for (key, _) in struct_fields(ty) {
            checked += 1;
            if !documented(&rows, section, &key) {
                missing.push(format!("{section}.{key}"));
            }
        }
    }
    assert!(checked >= 60, "only {checked} keys parsed");
    assert!(
        missing.is_empty(),
        "configuration keys missing from the README's table: {missing:?}"
    );
}

#[test]
fn every_metric_family_is_in_docs_metrics() {
    let doc = repo_file("docs/metrics.md");
    let names: Vec<&str> = METRICS_RS
        .split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.starts_with("achilles_")
                && s.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        })
        .collect();
    assert!(names.len() >= 30, "parsed only {names:?}");
    let missing: Vec<&&str> = names.iter().filter(|n| !doc.contains(**n)).collect();
    assert!(
        missing.is_empty(),
        "metric families missing from docs/metrics.md: {missing:?}"
    );
}
