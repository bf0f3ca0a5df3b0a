//! Spend counters: tokens and US dollars of stored `llm_call` events, by
//! tenant, provider and model, for dashboards and budget alerts.
//!
//! **Counted once.** The raw sink counts the events its insert actually
//! stored (`ON CONFLICT DO NOTHING ... RETURNING`), so a retried request, a
//! replayed topic or an event that arrived over HTTP, OTLP and the intake
//! topic alike adds to the counters exactly once.
//!
//! **Bounded labels.** Provider and model names come from producers, so
//! each label has a cap (`[spend]`): the first `max_tenants` tenants,
//! `max_providers` providers and `max_models` models a process counts get
//! their own value, everything after is `other`. The counters therefore
//! have at most `(max_tenants + 1) × (max_providers + 1) × (max_models + 1)`
//! series (× 2 directions for tokens) per process, whatever producers send.
//! Several raw-sink replicas may give different names their own label;
//! sums over `other` stay correct.

use std::collections::HashSet;
use std::sync::{LazyLock, Mutex, OnceLock};

use crate::config::SpendSettings;
use crate::metrics;
use crate::model::{Event, Payload};

/// The value of a label beyond its cap.
pub const OTHER: &str = "other";
/// Longest label value; longer provider or model names are cut.
const MAX_LABEL_CHARS: usize = 64;

struct Capped {
    cap: usize,
    seen: Mutex<HashSet<String>>,
}

impl Capped {
    fn new(cap: usize) -> Self {
        Self {
            cap,
            seen: Mutex::new(HashSet::new()),
        }
    }

    /// `value`'s label: itself if already admitted or there is room, else `other`.
    fn label(&self, value: &str) -> String {
        let value: String = value
            .trim()
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_LABEL_CHARS)
            .collect();
        if value.is_empty() {
            return "unknown".into();
        }
        // A set of strings cannot be left inconsistent by a panic.
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.contains(&value) {
            return value;
        }
        if seen.len() < self.cap {
            seen.insert(value.clone());
            return value;
        }
        OTHER.into()
    }
}

struct Labels {
    tenants: Capped,
    providers: Capped,
    models: Capped,
}

static SETTINGS: OnceLock<SpendSettings> = OnceLock::new();
static LABELS: LazyLock<Labels> = LazyLock::new(|| {
    let s = SETTINGS.get().cloned().unwrap_or_default();
    Labels {
        tenants: Capped::new(s.max_tenants),
        providers: Capped::new(s.max_providers),
        models: Capped::new(s.max_models),
    }
});

/// Sets the caps; call once at start-up, before anything is counted
/// (later calls, or calls after the first count, change nothing).
pub fn configure(s: &SpendSettings) {
    let _ = SETTINGS.set(s.clone());
}

/// Adds the tokens and cost of every `llm_call` among `stored`.
pub fn count_stored<'a>(stored: impl IntoIterator<Item = &'a Event>) {
    for e in stored {
        let Payload::LlmCall(c) = &e.payload else {
            continue;
        };
        let l = &*LABELS;
        let tenant = l.tenants.label(e.tenant.as_str());
        let provider = l.providers.label(&c.provider.to_ascii_lowercase());
        let model = l.models.label(&c.model);
        for (direction, n) in [("input", c.input_tokens), ("output", c.output_tokens)] {
            metrics::LLM_TOKENS
                .with_label_values(&[&tenant, &provider, &model, direction])
                .inc_by(n);
        }
        if let Some(cost) = c.cost_usd.filter(|c| c.is_finite() && *c >= 0.0) {
            metrics::LLM_COST
                .with_label_values(&[&tenant, &provider, &model])
                .inc_by(cost);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_beyond_the_cap_are_other() {
        let c = Capped::new(2);
        assert_eq!(c.label("a"), "a");
        assert_eq!(c.label("b"), "b");
        assert_eq!(c.label("c"), OTHER);
        assert_eq!(c.label("a"), "a", "admitted values keep their label");
        assert_eq!(c.label("  "), "unknown");
        let long = "m".repeat(200);
        assert_eq!(Capped::new(5).label(&long).len(), MAX_LABEL_CHARS);
    }
}
