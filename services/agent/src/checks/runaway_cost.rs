//! `runaway_cost`: the session spends more than it should on the model.
//!
//! Sums input plus output tokens and cost over the session's `llm_call`
//! events. Raised with key `tokens` at `max_session_tokens` (2,000,000)
//! and with key `cost` at `max_session_cost_usd` (10.0), each critical at
//! twice its limit. Totals only grow, so these stay open for the rest of
//! the session. A limit of 0 disables that half.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};
use serde_json::json;
use uuid::Uuid;

use achilles_core::config::CheckSettings;

use super::{scaled, Check, EvalCtx, Finding};
use crate::observe::Observed;
use achilles_core::model::EventKind;

pub struct RunawayCost {
    max_tokens: i64,
    max_cost: f64,
}

impl RunawayCost {
    pub fn new(c: &CheckSettings) -> Self {
        Self {
            max_tokens: c.max_session_tokens,
            max_cost: c.max_session_cost_usd,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct State {
    tokens: i64,
    cost_usd: f64,
    llm_calls: i64,
    recent_calls: VecDeque<Uuid>,
}

impl Check for RunawayCost {
    const TYPE: &'static str = "runaway_cost";
    type State = State;

    fn observe(&self, st: &mut State, ev: &Observed, _now: i64) {
        if ev.kind != EventKind::LlmCall {
            return;
        }
        st.tokens = st.tokens.saturating_add(ev.tokens);
        // Rounded to micro-dollars so replays are byte-identical.
        st.cost_usd = ((st.cost_usd + ev.cost_usd) * 1e6).round() / 1e6;
        st.llm_calls += 1;
        st.recent_calls.push_back(ev.id);
        if st.recent_calls.len() > 5 {
            st.recent_calls.pop_front();
        }
    }

    fn evaluate(&self, st: &State, _ctx: &EvalCtx<'_>) -> Vec<Finding> {
        let mut out = Vec::new();
        let evidence = |limit: serde_json::Value| {
            json!({
                "tokens": st.tokens,
                "cost_usd": st.cost_usd,
                "llm_calls": st.llm_calls,
                "limit": limit,
                "recent_llm_call_event_ids": st.recent_calls.iter().map(Uuid::to_string).collect::<Vec<_>>(),
            })
        };
        if self.max_tokens > 0 && st.tokens >= self.max_tokens {
            out.push(Finding {
                dedup_key: "tokens".into(),
                severity: scaled(st.tokens as f64, self.max_tokens as f64),
                title: format!("Token use of {} exceeds {}", st.tokens, self.max_tokens),
                detail: format!(
                    "{} LLM calls used {} tokens in this session.",
                    st.llm_calls, st.tokens
                ),
                evidence: evidence(json!(self.max_tokens)),
            });
        }
        if self.max_cost > 0.0 && st.cost_usd >= self.max_cost {
            out.push(Finding {
                dedup_key: "cost".into(),
                severity: scaled(st.cost_usd, self.max_cost),
                title: format!(
                    "LLM cost of ${:.2} exceeds ${:.2}",
                    st.cost_usd, self.max_cost
                ),
                detail: format!(
                    "{} LLM calls cost ${:.4} in this session.",
                    st.llm_calls, st.cost_usd
                ),
                evidence: evidence(json!(self.max_cost)),
            });
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checks::test_support::{ev, run};
    use crate::checks::Severity;

    fn call(t: i64, tokens: i64, cost: f64) -> Observed {
        Observed {
            tokens,
            cost_usd: cost,
            ..ev(t, EventKind::LlmCall)
        }
    }

    #[test]
    fn tokens_and_cost_each_have_a_limit() {
        let c = RunawayCost::new(&CheckSettings::default());
        let (_, found) = run(&c, &[call(0, 1_999_999, 9.99)]);
        assert!(found.is_empty());
        let (st, found) = run(&c, &[call(0, 1_999_999, 9.99), call(1, 1, 0.01)]);
        let keys: Vec<_> = found.iter().map(|f| f.dedup_key.as_str()).collect();
        assert_eq!(keys, ["tokens", "cost"]);
        assert_eq!(st.cost_usd, 10.0, "rounded sum");
        let (_, found) = run(&c, &[call(0, 4_000_000, 0.0)]);
        assert_eq!(found[0].severity, Severity::Critical);
    }

    #[test]
    fn zero_disables() {
        let cfg = CheckSettings {
            max_session_tokens: 0,
            max_session_cost_usd: 0.0,
            ..CheckSettings::default()
        };
        let c = RunawayCost::new(&cfg);
        assert!(run(&c, &[call(0, 9_000_000, 900.0)]).1.is_empty());
    }
}
