//! Operator-defined masking rules: regular expressions from configuration
//! that mask what the built-in rules keep (a customer's order codes, internal
//! host aliases, names of tenants' own services).
//!
//! The built-in masker stays hand-written: it runs on every message at more
//! than a million messages a second, which a regex set cannot match. Rules
//! are for the cases only an operator knows about. They run *after* the
//! built-in masking, on the template text, so they see `<*>` where a value
//! was already masked, and every match becomes one `<*>`.
//!
//! Rules are compiled once ([`RuleSet::compile`]) with the `regex` crate,
//! whose matching time is linear in the input (no backtracking), so a rule
//! cannot make masking blow up. A pattern that does not compile, matches the
//! empty string (it would put a wildcard between every two characters),
//! has no name, or reuses a name is refused with an error naming the rule,
//! at start-up rather than on the first message.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::{Regex, RegexBuilder};

use crate::mask::WILDCARD;
use crate::{mask, Template};

/// Largest compiled program a rule may produce (the `regex` crate's size
/// limit), so one pathological pattern cannot take the process's memory.
const MAX_RULE_BYTES: usize = 1 << 20;

/// One rule as configured: its name (used in errors), its pattern, and the
/// tenants it applies to (empty: every tenant).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RuleSpec {
    /// Unique name, used in errors.
    pub name: String,
    /// A `regex` crate pattern; every match becomes `<*>`.
    pub pattern: String,
    /// Tenants it applies to; empty: every tenant.
    pub tenants: Vec<String>,
}

/// Why a rule was refused. Configuration errors: the process must not start.
#[derive(Debug, thiserror::Error)]
pub enum RuleError {
    /// The pattern does not compile.
    #[error("masking rule {rule:?}: invalid pattern: {source}")]
    InvalidPattern {
        /// The rule's name.
        rule: String,
        /// What the regex parser said.
        #[source]
        source: regex::Error,
    },
    #[error(
        "masking rule {rule:?}: the pattern matches the empty string, which would put a wildcard \
         between every two characters"
    )]
    /// The pattern matches the empty string.
    MatchesEmpty {
        /// The rule's name.
        rule: String,
    },
    /// A rule without a name.
    #[error("masking rule number {position} has no name")]
    Unnamed {
        /// Its 1-based position in the configuration.
        position: usize,
    },
    /// Two rules with one name.
    #[error("masking rule {rule:?} is defined twice")]
    Duplicate {
        /// The name used twice.
        rule: String,
    },
}

/// The rules that apply to one tenant, in configuration order. Cloning is
/// cheap (shared); the default is no rules.
#[derive(Clone, Debug, Default)]
pub struct MaskRules(Arc<[Regex]>);

impl MaskRules {
    /// No rules apply (the default).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Applies the rules to a template produced by the built-in masker.
    pub(crate) fn apply(&self, template: &mut String) {
        for re in self.0.iter() {
            if let std::borrow::Cow::Owned(s) = re.replace_all(template, WILDCARD) {
                *template = s;
            }
        }
        // A match next to a masked value gives `<*><*>`: one value.
        let double = "<*><*>";
        while template.contains(double) {
            *template = template.replace(double, WILDCARD);
        }
    }
}

/// Every configured rule, compiled once, grouped per tenant.
#[derive(Clone, Debug, Default)]
pub struct RuleSet {
    all_tenants: MaskRules,
    per_tenant: BTreeMap<String, MaskRules>,
}

impl RuleSet {
    /// Compiles and validates `specs`. A tenant's rules are the rules for all
    /// tenants and those naming it, in the order given.
    pub fn compile(specs: &[RuleSpec]) -> Result<Self, RuleError> {
        let mut compiled: Vec<(Regex, &[String])> = Vec::with_capacity(specs.len());
        let mut names = std::collections::BTreeSet::new();
        for (i, spec) in specs.iter().enumerate() {
            if spec.name.trim().is_empty() {
                return Err(RuleError::Unnamed { position: i + 1 });
            }
            if !names.insert(spec.name.as_str()) {
                return Err(RuleError::Duplicate {
                    rule: spec.name.clone(),
                });
            }
            let re = RegexBuilder::new(&spec.pattern)
                .size_limit(MAX_RULE_BYTES)
                .build()
                .map_err(|source| RuleError::InvalidPattern {
                    rule: spec.name.clone(),
                    source,
                })?;
            if re.is_match("") {
                return Err(RuleError::MatchesEmpty {
                    rule: spec.name.clone(),
                });
            }
            compiled.push((re, &spec.tenants));
        }
        let for_tenant = |t: Option<&str>| -> MaskRules {
            MaskRules(
                compiled
                    .iter()
                    .filter(|(_, ts)| ts.is_empty() || t.is_some_and(|t| ts.iter().any(|x| x == t)))
                    .map(|(re, _)| re.clone())
                    .collect(),
            )
        };
        let tenants: std::collections::BTreeSet<&str> = specs
            .iter()
            .flat_map(|s| s.tenants.iter().map(String::as_str))
            .collect();
        Ok(Self {
            all_tenants: for_tenant(None),
            per_tenant: tenants
                .into_iter()
                .map(|t| (t.to_owned(), for_tenant(Some(t))))
                .collect(),
        })
    }

    /// The rules of `tenant`.
    pub fn for_tenant(&self, tenant: &str) -> &MaskRules {
        self.per_tenant.get(tenant).unwrap_or(&self.all_tenants)
    }

    /// The rules that apply to every tenant.
    pub fn for_all_tenants(&self) -> &MaskRules {
        &self.all_tenants
    }

    /// The template of `msg` for `tenant`: the built-in masking, then the
    /// tenant's rules. Without rules this equals [`crate::template_of`].
    pub fn template_of(&self, tenant: &str, msg: &str) -> Template {
        let mut text = mask(msg);
        let rules = self.for_tenant(tenant);
        if !rules.is_empty() {
            rules.apply(&mut text);
        }
        Template { text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, pattern: &str, tenants: &[&str]) -> RuleSpec {
        RuleSpec {
            name: name.into(),
            pattern: pattern.into(),
            tenants: tenants.iter().map(|t| t.to_string()).collect(),
        }
    }

    #[test]
    fn rules_run_after_the_built_in_masker_per_tenant() {
        let set = RuleSet::compile(&[
            spec("order-codes", r"\bORD-[A-Z]+\b", &[]),
            spec("acme-hosts", r"\b(alpha|beta|gamma)-node\b", &["acme"]),
        ])
        .expect("valid rules");
        let t = set.template_of("acme", "order ORD-XYZ failed on beta-node after 3 tries");
        assert_eq!(t.text(), "order <*> failed on <*> after <*> tries");
        let t = set.template_of("other", "order ORD-XYZ failed on beta-node after 3 tries");
        assert_eq!(t.text(), "order <*> failed on beta-node after <*> tries");
        // A match touching a masked value gives one wildcard.
        let set = RuleSet::compile(&[spec("suffix", r"-[a-z]+\b", &[])]).expect("valid");
        assert_eq!(
            set.template_of("x", "job 42-abc done").text(),
            "job <*> done"
        );
        // No rules: the built-in template, same id.
        let none = RuleSet::default();
        assert_eq!(
            none.template_of("x", "session closed for user 7"),
            crate::template_of("session closed for user 7")
        );
    }

    #[test]
    fn bad_rules_are_refused_with_their_name() {
        let err = RuleSet::compile(&[spec("ok", "a+", &[]), spec("broken", "(unclosed", &[])])
            .expect_err("bad pattern");
        let text = err.to_string();
        assert!(
            text.contains("\"broken\"") && text.contains("invalid pattern"),
            "{text}"
        );
        let err = RuleSet::compile(&[spec("empty", "x*", &[])]).expect_err("matches empty");
        assert!(err.to_string().contains("\"empty\""), "{err}");
        let err = RuleSet::compile(&[spec("a", "x", &[]), spec("a", "y", &[])]).expect_err("dup");
        assert!(matches!(err, RuleError::Duplicate { .. }), "{err}");
        let err = RuleSet::compile(&[spec(" ", "x", &[])]).expect_err("unnamed");
        assert!(matches!(err, RuleError::Unnamed { position: 1 }), "{err}");
        let huge = format!("({}){{1000}}", "[a-z]{100}".repeat(50));
        let err = RuleSet::compile(&[spec("huge", &huge, &[])]).expect_err("too big");
        assert!(err.to_string().contains("\"huge\""), "{err}");
    }
}
