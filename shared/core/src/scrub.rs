//! Secret scrubbing: credentials are replaced by `[REDACTED:<rule>]` before
//! an event is hashed and published.
//!
//! Agents paste whatever their tools print, and tools print credentials:
//! a failing `curl` with an `Authorization` header, a stack trace with a
//! database URL, an `.env` file in a command's output. Once such a record
//! is in Kafka and Postgres it is copied to every consumer, backup and
//! report, so the only safe place to remove it is before it is published.
//! Both producers' paths (the HTTP API, including OTLP, and the intake
//! gate) validate through [`crate::model::submission`]; the scrubber runs
//! there, once, after validation and before the hash, so the hash is of the
//! scrubbed event and a retried raw event still hashes the same. Consumers
//! decoding canonical records do not scrub again (their `Context` has no
//! scrubber): what they read was scrubbed by the producer's process.
//!
//! How a text is scrubbed: one [`RegexSet`] pass tells which rules can
//! match at all (almost always none: the text is returned untouched,
//! without a copy). Each rule that can is then run on its own over the
//! whole text and contributes the spans it would hide: the whole match, or
//! only its `secret` capture group, so `password=hunter2` keeps `password=`
//! and `https://deploy:pw@host` keeps user and host. Overlapping spans are
//! merged and each is replaced once, named after the rule whose span starts
//! first (rules are ordered from specific to generic, so a GitHub token in
//! `token=ghp_...` is named `github_token`). Spans that touch an existing
//! `[REDACTED:...]` marker are left alone, which makes scrubbing
//! idempotent: an already scrubbed text (a retry, a record read back) stays
//! as it is.
//!
//! Rules: the built-in ones ([`BUILTIN`]), the optional e-mail rule, and
//! operator rules from `[[scrub.rules]]` (for all tenants or for some),
//! all compiled once when the process starts. See docs/scrubbing.md.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use regex::{Regex, RegexBuilder, RegexSet, RegexSetBuilder};
use serde_json::{Map, Value};

use crate::metrics;

/// The built-in rules, in priority order (specific before generic): name
/// (shown in the marker and as the metric label) and pattern. Where a
/// pattern has a `secret` group only that group is replaced.
///
/// Value classes never start with `[`, so a marker is never taken for a
/// value (`password=[REDACTED:...]` is not redacted again).
pub const BUILTIN: &[(&str, &str)] = &[
    (
        "private_key",
        // To the END line, or to the end of the text when it was cut off.
        r"-----BEGIN[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[A-Z0-9 ]{0,40} PRIVATE KEY(?: BLOCK)?-----|\z)",
    ),
    (
        "aws_access_key",
        r"\b(?:AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AIPA|AROA|ANPA|ANVA)[A-Z2-7]{16}\b",
    ),
    (
        "aws_secret_key",
        r#"(?i:aws_?secret_?(?:access_?)?key)["']?\s*[:=]\s*["']?(?P<secret>[A-Za-z0-9/+]{40})"#,
    ),
    ("gcp_api_key", r"\bAIza[0-9A-Za-z_\-]{35}"),
    (
        "github_token",
        r"\b(?:gh[pousr]_[A-Za-z0-9]{36,255}|github_pat_[A-Za-z0-9_]{22,255})",
    ),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_\-]{20,}"),
    (
        "slack_webhook",
        r"https://hooks\.slack\.com/(?:services|workflows|triggers)/[A-Za-z0-9_/\-]+",
    ),
    ("slack_token", r"\bxox[abprs]-[A-Za-z0-9\-]{10,}"),
    ("stripe_key", r"\b[rs]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("anthropic_key", r"\bsk-ant-[A-Za-z0-9_\-]{20,}"),
    (
        "openai_key",
        r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_\-]{32,}",
    ),
    (
        "jwt",
        r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]*",
    ),
    (
        "bearer_token",
        r"\b(?:[Bb]earer|BEARER)\s+(?P<secret>[A-Za-z0-9\-._~+/]{16,}=*)",
    ),
    (
        "url_password",
        r"\b[A-Za-z][A-Za-z0-9+.\-]*://[^\s:/?#@\[\]]*:(?P<secret>[^\s/?#@\[\]]+)@",
    ),
    // The key ends with the keyword (`db_password`, `api_key`, but not
    // `input_tokens`). Two rules of one name: the value as one word, and a
    // quoted value up to its closing quote (`"password": "two words"`).
    (
        "password_assignment",
        r#"(?i:\b[a-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|secret[_\-]?key|auth[_\-]?key|private[_\-]?key|client[_\-]?secret|credentials?))\b["']?\s*[:=]\s*["']?(?P<secret>[^\s"'\[\]=,;&{}<>()`][^\s"'\[\],;&{}<>`]*)"#,
    ),
    (
        "password_assignment",
        r#"(?i:\b[a-z0-9_.\-]*(?:password|passwd|pwd|secret|token|api[_\-]?key|access[_\-]?key|secret[_\-]?key|auth[_\-]?key|private[_\-]?key|client[_\-]?secret|credentials?))\b["']?\s*[:=]\s*["'](?P<secret>[^"'\[\r\n][^"'\r\n]{0,255})["']"#,
    ),
];

/// The optional rule (`scrub.email`): off by default, since addresses are
/// often what makes an error message useful (`user x@y not found`).
pub const EMAIL: (&str, &str) = (
    "email",
    r"\b[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}\b",
);

/// The metric label of every operator-defined rule (keeps the label set
/// closed; the marker in the text names the rule).
pub const CUSTOM_LABEL: &str = "custom";

/// Compiled size limit of one operator pattern.
const MAX_RULE_BYTES: usize = 1 << 20;

/// An operator's rule (`[[scrub.rules]]`).
#[derive(Clone, Debug)]
pub struct CustomRule {
    pub name: String,
    pub pattern: String,
    /// Empty: every tenant.
    pub tenants: Vec<String>,
}

/// What the operator chose (`[scrub]`).
#[derive(Clone, Copy, Debug)]
pub struct Options {
    pub enabled: bool,
    pub email: bool,
}

/// Why the rules were refused: a configuration error, the process must
/// not start. Every variant names the rule.
#[derive(Debug, thiserror::Error)]
pub enum ScrubError {
    #[error("scrub rule {rule:?}: invalid pattern: {source}")]
    InvalidPattern {
        rule: String,
        #[source]
        source: regex::Error,
    },
    #[error("scrub rule {rule:?}: the pattern matches the empty string")]
    MatchesEmpty { rule: String },
    #[error(
        "scrub rule {rule:?}: a name is 1 to 64 letters, digits, '_', '.' or '-' (it is \
         written into the scrubbed text as [REDACTED:name])"
    )]
    BadName { rule: String },
    #[error("scrub rule {rule:?} is defined twice (or shadows a built-in rule)")]
    Duplicate { rule: String },
}

#[derive(Clone)]
struct Rule {
    /// Written into the marker.
    name: String,
    /// The metric label: the built-in name, or [`CUSTOM_LABEL`].
    label: &'static str,
    re: Regex,
    /// Index of the `secret` group, if the pattern has one.
    secret: Option<usize>,
}

/// The rules one tenant's texts are scrubbed with, and their prefilter.
#[derive(Clone)]
struct RuleList {
    rules: Vec<Rule>,
    set: RegexSet,
}

impl RuleList {
    fn new(rules: Vec<Rule>) -> Result<Self, ScrubError> {
        let set = RegexSetBuilder::new(rules.iter().map(|r| r.re.as_str()))
            .size_limit(MAX_RULE_BYTES.saturating_mul(rules.len().max(1)))
            .build()
            .map_err(|source| ScrubError::InvalidPattern {
                rule: rules
                    .iter()
                    .map(|r| r.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", "),
                source,
            })?;
        Ok(Self { rules, set })
    }
}

/// A marker already in a text: `[REDACTED:name]`.
static MARKER: LazyLock<Regex> = LazyLock::new(|| {
    // A literal pattern, checked by the tests.
    Regex::new(r"\[REDACTED:[A-Za-z0-9_.\-]{1,64}\]").expect("valid marker pattern")
});

const MARKER_PREFIX: &str = "[REDACTED:";

/// Redactions made while scrubbing one record, counted in
/// `achilles_redactions_total` by [`Tally::record`] once the record is
/// accepted.
#[derive(Debug, Default)]
pub struct Tally(Vec<&'static str>);

impl Tally {
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The rule labels, one per redaction.
    pub fn labels(&self) -> &[&'static str] {
        &self.0
    }

    pub fn record(self) {
        for label in self.0 {
            metrics::REDACTIONS.with_label_values(&[label]).inc();
        }
    }
}

/// The compiled rule set of a process. Build it once at start-up
/// ([`Scrubber::new`]) and share it.
#[derive(Clone)]
pub struct Scrubber {
    enabled: bool,
    /// Built-in rules (+ e-mail) and the operator's rules for all tenants.
    default: RuleList,
    /// The same plus the tenant's own rules, for tenants that have any.
    tenants: BTreeMap<String, RuleList>,
}

impl fmt::Debug for Scrubber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scrubber")
            .field("enabled", &self.enabled)
            .field(
                "rules",
                &self
                    .default
                    .rules
                    .iter()
                    .map(|r| &r.name)
                    .collect::<Vec<_>>(),
            )
            .field("tenants", &self.tenants.keys().collect::<Vec<_>>())
            .finish()
    }
}

fn valid_name(name: &str) -> bool {
    (1..=64).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

fn builtin_rule(name: &'static str, pattern: &str) -> Result<Rule, ScrubError> {
    let re = Regex::new(pattern).map_err(|source| ScrubError::InvalidPattern {
        rule: name.into(),
        source,
    })?;
    let secret = re.capture_names().position(|n| n == Some("secret"));
    Ok(Rule {
        name: name.into(),
        label: name,
        re,
        secret,
    })
}

impl Scrubber {
    /// The built-in rules only, enabled, without e-mail addresses: the
    /// defaults of `[scrub]`.
    pub fn builtin() -> &'static Self {
        static BUILT_IN: LazyLock<Result<Scrubber, String>> = LazyLock::new(|| {
            Scrubber::new(
                Options {
                    enabled: true,
                    email: false,
                },
                &[],
            )
            .map_err(|e| e.to_string())
        });
        match &*BUILT_IN {
            Ok(s) => s,
            // The built-in patterns are literals, compiled by every test run.
            Err(e) => unreachable!("built-in scrub rules do not compile: {e}"),
        }
    }

    /// A scrubber that changes nothing (`scrub.enabled = false`).
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            default: RuleList {
                rules: Vec::new(),
                set: RegexSet::empty(),
            },
            tenants: BTreeMap::new(),
        }
    }

    /// Compiles the built-in rules and the operator's; an invalid operator
    /// rule is an error naming it.
    pub fn new(options: Options, custom: &[CustomRule]) -> Result<Self, ScrubError> {
        let mut base = Vec::with_capacity(BUILTIN.len() + 1 + custom.len());
        for (name, pattern) in BUILTIN {
            base.push(builtin_rule(name, pattern)?);
        }
        if options.email {
            base.push(builtin_rule(EMAIL.0, EMAIL.1)?);
        }
        let mut names: std::collections::BTreeSet<String> =
            base.iter().map(|r| r.name.clone()).collect();
        names.insert(EMAIL.0.into());
        let mut compiled: Vec<(Rule, &[String])> = Vec::with_capacity(custom.len());
        for spec in custom {
            if !valid_name(&spec.name) {
                return Err(ScrubError::BadName {
                    rule: spec.name.clone(),
                });
            }
            if !names.insert(spec.name.clone()) {
                return Err(ScrubError::Duplicate {
                    rule: spec.name.clone(),
                });
            }
            let re = RegexBuilder::new(&spec.pattern)
                .size_limit(MAX_RULE_BYTES)
                .build()
                .map_err(|source| ScrubError::InvalidPattern {
                    rule: spec.name.clone(),
                    source,
                })?;
            if re.is_match("") {
                return Err(ScrubError::MatchesEmpty {
                    rule: spec.name.clone(),
                });
            }
            let secret = re.capture_names().position(|n| n == Some("secret"));
            compiled.push((
                Rule {
                    name: spec.name.clone(),
                    label: CUSTOM_LABEL,
                    re,
                    secret,
                },
                &spec.tenants,
            ));
        }
        let for_tenant = |t: Option<&str>| -> Vec<Rule> {
            let mut rules = base.clone();
            rules.extend(
                compiled
                    .iter()
                    .filter(|(_, ts)| ts.is_empty() || t.is_some_and(|t| ts.iter().any(|x| x == t)))
                    .map(|(r, _)| r.clone()),
            );
            rules
        };
        let mut tenants = BTreeMap::new();
        for (_, ts) in &compiled {
            for t in ts.iter() {
                if !tenants.contains_key(t) {
                    tenants.insert(t.clone(), RuleList::new(for_tenant(Some(t)))?);
                }
            }
        }
        let default = RuleList::new(for_tenant(None))?;
        // Compiled either way: a broken rule is an error even while
        // scrubbing is switched off, not a surprise when it is switched on.
        if !options.enabled {
            return Ok(Self::disabled());
        }
        Ok(Self {
            enabled: true,
            default,
            tenants,
        })
    }

    pub fn is_enabled(&self) -> bool {
        self.enabled
    }

    fn rules_for(&self, tenant: &str) -> &RuleList {
        self.tenants.get(tenant).unwrap_or(&self.default)
    }

    /// The scrubbed text, or `None` when nothing had to change (the usual
    /// case, which costs one prefilter pass and no allocation).
    pub fn scrub_str(&self, tenant: &str, text: &str, tally: &mut Tally) -> Option<String> {
        if !self.enabled {
            return None;
        }
        redact(self.rules_for(tenant), text, tally)
    }

    /// Scrubs a text field in place, keeping it within `max` bytes: a
    /// marker can be longer than what it replaced, and the record must
    /// still pass validation when a consumer decodes it, so the text is
    /// cut at the limit then (after scrubbing: nothing cut was a secret).
    pub fn scrub_field(&self, tenant: &str, text: &mut String, max: usize, tally: &mut Tally) {
        if let Some(new) = self.scrub_str(tenant, text, tally) {
            *text = new;
            truncate_at(text, max);
        }
    }

    /// Scrubs every string value in a JSON object (at any depth; keys are
    /// not scrubbed), keeping its serialised size within `max_bytes`:
    /// if the markers would push it over, each redacted value that grew
    /// becomes a prefix of `[REDACTED]` as long as the value was, so the
    /// object is never larger than the one validation accepted.
    pub fn scrub_object(
        &self,
        tenant: &str,
        map: &mut Map<String, Value>,
        max_bytes: usize,
        tally: &mut Tally,
    ) {
        if !self.enabled {
            return;
        }
        let rules = self.rules_for(tenant);
        if !map.values().any(|v| any_match(rules, v)) {
            return;
        }
        let original = map.clone();
        let mut grew = false;
        let mut first = Tally::default();
        for v in map.values_mut() {
            walk_strings(v, &mut |s| {
                if let Some(new) = redact(rules, s, &mut first) {
                    grew |= new.len() > s.len();
                    *s = new;
                }
            });
        }
        if !grew || Value::Object(map.clone()).to_string().len() <= max_bytes {
            tally.0.extend(first.0);
            return;
        }
        *map = original;
        for v in map.values_mut() {
            walk_strings(v, &mut |s| {
                if let Some(new) = redact(rules, s, tally) {
                    *s = if new.len() > s.len() {
                        "[REDACTED]"[..s.len().min(10)].to_owned()
                    } else {
                        new
                    };
                }
            });
        }
    }
}

fn any_match(rules: &RuleList, v: &Value) -> bool {
    match v {
        Value::String(s) => rules.set.is_match(s),
        Value::Array(a) => a.iter().any(|v| any_match(rules, v)),
        Value::Object(m) => m.values().any(|v| any_match(rules, v)),
        _ => false,
    }
}

fn walk_strings(v: &mut Value, f: &mut impl FnMut(&mut String)) {
    match v {
        Value::String(s) => f(s),
        Value::Array(a) => a.iter_mut().for_each(|v| walk_strings(v, f)),
        Value::Object(m) => m.values_mut().for_each(|v| walk_strings(v, f)),
        _ => {}
    }
}

/// Cuts `s` to at most `max` bytes, on a character boundary.
fn truncate_at(s: &mut String, max: usize) {
    if s.len() <= max {
        return;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
}

/// One rule's span to hide: `[start, end)` and the rule's position.
#[derive(Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    rule: usize,
}

/// At most this many passes over one text; see [`redact`].
const MAX_PASSES: usize = 8;

/// Scrubs `text` until nothing changes: a replacement can change what a
/// neighbour looks like (two keys glued together: the second one starts a
/// word only once the first is a marker), so one pass is not always
/// enough. Markers are never matched again, so every pass that changes
/// something hides more of the text and the loop ends; the cap bounds the
/// cost of adversarial input.
fn redact(rules: &RuleList, text: &str, tally: &mut Tally) -> Option<String> {
    let mut out = redact_once(rules, text, tally)?;
    for _ in 1..MAX_PASSES {
        match redact_once(rules, &out, tally) {
            Some(next) => out = next,
            None => break,
        }
    }
    Some(out)
}

fn redact_once(rules: &RuleList, text: &str, tally: &mut Tally) -> Option<String> {
    let hits = rules.set.matches(text);
    if !hits.matched_any() {
        return None;
    }
    let markers: Vec<(usize, usize)> = if text.contains(MARKER_PREFIX) {
        MARKER
            .find_iter(text)
            .map(|m| (m.start(), m.end()))
            .collect()
    } else {
        Vec::new()
    };
    let touches_marker = |s: usize, e: usize| markers.iter().any(|&(a, b)| s < b && a < e);
    let mut spans = Vec::new();
    for i in hits.iter() {
        let rule = &rules.rules[i];
        let mut locs = rule.re.capture_locations();
        let mut from = 0;
        while from <= text.len() {
            let Some(m) = rule.re.captures_read_at(&mut locs, text, from) else {
                break;
            };
            let (start, end) = rule
                .secret
                .and_then(|g| locs.get(g))
                .unwrap_or((m.start(), m.end()));
            if start < end && !touches_marker(start, end) {
                spans.push(Span {
                    start,
                    end,
                    rule: i,
                });
            }
            from = if m.end() > m.start() {
                m.end()
            } else {
                // An empty match (an operator pattern can make one once it
                // is past its first character): step over one character.
                m.end() + text[m.end()..].chars().next().map_or(1, char::len_utf8)
            };
        }
    }
    if spans.is_empty() {
        return None;
    }
    spans.sort_by_key(|s| (s.start, s.rule));
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    let mut i = 0;
    while i < spans.len() {
        let first = spans[i];
        let mut end = first.end;
        i += 1;
        while i < spans.len() && spans[i].start < end {
            end = end.max(spans[i].end);
            i += 1;
        }
        let rule = &rules.rules[first.rule];
        out.push_str(&text[last..first.start]);
        out.push_str(MARKER_PREFIX);
        out.push_str(&rule.name);
        out.push(']');
        last = end;
        tally.0.push(rule.label);
    }
    out.push_str(&text[last..]);
    Some(out)
}

#[cfg(test)]
#[path = "scrub_tests.rs"]
mod tests;
