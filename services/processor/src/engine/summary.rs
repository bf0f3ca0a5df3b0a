//! Session summary counters and the formulas built on them.
//!
//! Formulas (also in docs/metrics.md):
//! * `event_count` — distinct events applied (duplicates by hash excluded).
//! * `error_count` — failing events: errors, commands with a non-zero exit
//!   code, test runs with failures, failed or timed-out calls and steps.
//! * `error_density` — `error_count / event_count` (0 when empty), 0..1.
//! * `agent_activity_score` — weighted agent actions per active minute:
//!   `Σ weight(kind) / max(1, (last_event_t - first_event_t) in minutes)`
//!   over events whose actor is `agent`, with weights file_edit 3, command 2,
//!   test_run 2, tool_call 1, llm_call 1, agent_action 1 (errors and user
//!   messages are not actions). A busy agent editing and testing scores
//!   higher than one only chatting with the model.
//! * `duration_ms` — the later of (end time, newest event) minus the earlier
//!   of (start time, oldest event).
//! * tokens and cost — sums over `llm_call` events.
//!
//! Every counter is a sum, so the summary is the same whatever order the
//! events arrive in.

use serde::{Deserialize, Serialize};

use achilles_core::model::{Actor, Event, EventKind, Payload};

#[derive(Clone, Debug, Default, Serialize, Deserialize, PartialEq)]
pub struct Counters {
    pub events: i64,
    pub failures: i64,
    pub agent_actions: i64,
    pub weighted_agent_actions: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub first_t: Option<i64>,
    pub last_t: Option<i64>,
}

pub fn weight(kind: EventKind) -> i64 {
    match kind {
        EventKind::FileEdit => 3,
        EventKind::Command | EventKind::TestRun => 2,
        EventKind::ToolCall | EventKind::LlmCall | EventKind::AgentAction => 1,
        EventKind::Error | EventKind::UserMessage => 0,
    }
}

impl Counters {
    pub fn add(&mut self, ev: &Event, t: i64) {
        self.events += 1;
        if ev.payload.is_failure() {
            self.failures += 1;
        }
        if ev.actor == Actor::Agent && weight(ev.kind()) > 0 {
            self.agent_actions += 1;
            self.weighted_agent_actions += weight(ev.kind());
        }
        if let Payload::LlmCall(c) = &ev.payload {
            // Saturating: each call is at most 2^53 - 1 tokens (validation),
            // but a long session of them would overflow an i64 sum.
            let tokens = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            self.input_tokens = self.input_tokens.saturating_add(tokens(c.input_tokens));
            self.output_tokens = self.output_tokens.saturating_add(tokens(c.output_tokens));
            // At most $1M per call: finite for any number of calls.
            self.cost_usd += c.cost_usd.unwrap_or(0.0);
        }
        self.first_t = Some(self.first_t.map_or(t, |f| f.min(t)));
        self.last_t = Some(self.last_t.map_or(t, |l| l.max(t)));
    }
}

/// The summary columns of `sessions`.
#[derive(Clone, Debug, PartialEq)]
pub struct Summary {
    pub event_count: i64,
    pub error_count: i64,
    pub error_density: f64,
    pub agent_activity_score: f64,
    pub duration_ms: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub first_t: Option<i64>,
    pub last_t: Option<i64>,
}

impl Summary {
    pub fn compute(c: &Counters, started_at: Option<i64>, ended_at: Option<i64>) -> Self {
        let active_min = match (c.first_t, c.last_t) {
            (Some(f), Some(l)) => ((l - f) as f64 / 60e6).max(1.0),
            _ => 1.0,
        };
        // The session's span covers its start/end records *and* its events:
        // producers' clocks differ, and replayed sessions start "now".
        let start = [started_at, c.first_t].into_iter().flatten().min();
        let end = [ended_at, c.last_t].into_iter().flatten().max();
        Self {
            event_count: c.events,
            error_count: c.failures,
            error_density: if c.events == 0 {
                0.0
            } else {
                c.failures as f64 / c.events as f64
            },
            agent_activity_score: round3(c.weighted_agent_actions as f64 / active_min),
            duration_ms: start.zip(end).map(|(s, e)| ((e - s) / 1000).max(0)),
            input_tokens: c.input_tokens,
            output_tokens: c.output_tokens,
            // Sums of floats depend on order in the last bits; rounding to
            // micro-dollars keeps replays byte-identical.
            cost_usd: (c.cost_usd * 1e6).round() / 1e6,
            first_t: c.first_t,
            last_t: c.last_t,
        }
    }
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas() {
        let c = Counters {
            events: 10,
            failures: 3,
            agent_actions: 6,
            weighted_agent_actions: 12,
            input_tokens: 100,
            output_tokens: 20,
            cost_usd: 0.1 + 0.2,
            first_t: Some(0),
            last_t: Some(240_000_000), // 4 minutes
        };
        let s = Summary::compute(&c, None, None);
        assert_eq!(s.error_density, 0.3);
        assert_eq!(
            s.agent_activity_score, 3.0,
            "12 weighted actions over 4 minutes"
        );
        assert_eq!(s.duration_ms, Some(240_000));
        assert_eq!(s.cost_usd, 0.3);
        let short = Counters {
            last_t: Some(10_000_000),
            ..c
        };
        assert_eq!(
            Summary::compute(&short, None, None).agent_activity_score,
            12.0,
            "at least one minute"
        );
        assert_eq!(
            Summary::compute(&Counters::default(), None, None).error_density,
            0.0
        );
    }

    #[test]
    fn duration_spans_session_bounds_and_events() {
        let c = Counters {
            first_t: Some(5_000_000),
            last_t: Some(6_000_000),
            ..Default::default()
        };
        assert_eq!(
            Summary::compute(&c, Some(0), Some(10_000_000)).duration_ms,
            Some(10_000)
        );
        // Events before the start record (a replayed session) still count.
        assert_eq!(
            Summary::compute(&c, Some(5_500_000), Some(5_600_000)).duration_ms,
            Some(1_000)
        );
    }

    /// Each call within the validated maximum, the session's sum beyond
    /// i64: it saturates (it used to overflow), and the cost stays finite.
    #[test]
    fn token_sums_saturate_and_cost_stays_finite() {
        use achilles_core::model::submission::{from_json, Context, EventSubmission};
        use achilles_core::model::{Limits, SessionId, TenantId};
        let tenant = TenantId::parse("acme").unwrap();
        let now = chrono::Utc::now();
        let ctx = Context {
            tenant: &tenant,
            now,
            limits: &Limits::default(),
            scrub: None,
        };
        let max = achilles_core::error::MAX_SAFE_INTEGER;
        let sub: EventSubmission = from_json(serde_json::json!({
            "occurred_at": now.to_rfc3339(), "kind": "llm_call",
            "data": {"provider": "p", "model": "m", "status": "ok",
                     "input_tokens": max, "output_tokens": max, "cost_usd": 1e6}
        }))
        .unwrap();
        let ev = sub.validate(ctx, Some(SessionId::new_v7())).unwrap();
        let mut c = Counters::default();
        for i in 0..2_000 {
            c.add(&ev, i);
        }
        assert_eq!(c.input_tokens, i64::MAX);
        assert_eq!(c.output_tokens, i64::MAX);
        let s = Summary::compute(&c, None, None);
        assert!(
            s.cost_usd.is_finite() && s.cost_usd == 2e9,
            "{}",
            s.cost_usd
        );
    }
}
