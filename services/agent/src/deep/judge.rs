//! The verdict on one agent in one ended session: pure arithmetic over
//! counts from `events` and the processor's `event_correlations`.
//!
//! Definitions (docs/agent.md has the worked example):
//! * **agent actions** — events with actor `agent` of kind file_edit,
//!   command, test_run, tool_call, llm_call or agent_action.
//! * **induced errors** — distinct failing events (effects) with at least
//!   one *claim*: a correlation with `confidence >= 0.5` (the processor
//!   attributed the failure to the latest agent edit of a file it names;
//!   docs/processing.md). Rows below 0.5 are candidates (a file named only
//!   beside the error, a failure of the environment) and are never counted.
//! * **inducing actions** — distinct edits (causes) of those claims.
//! * **successful actions** — agent actions that neither failed themselves
//!   nor induced an error: `total - failed - inducing` (disjoint sets: the
//!   causes are edits, which never fail).
//! * **success rate** — `successful / total`, NULL without actions.
//! * **break/fix cycles** — induced errors with a fix (`fixed_by_event_id`
//!   on one of their claims).
//! * **mean time to fix** — mean over those of `earliest fixed_at -
//!   effect time`, in milliseconds.
//! * **tokens and cost per successful action** — session llm_call totals
//!   divided by successful actions; NULL when there are none.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use uuid::Uuid;

use achilles_core::db::analysis::CorrelationView;

use crate::db::{ActionStats, PerformanceWrite};

/// Confidence at or above which a correlation is a claim that counts
/// (the processor's threshold, docs/processing.md).
pub const CLAIM: f64 = 0.5;

/// Does this correlation count in verdicts and reports?
pub fn counts(c: &CorrelationView) -> bool {
    c.confidence >= CLAIM
}

/// One induced error and what became of it.
#[derive(Clone, Debug, PartialEq)]
pub struct Induced {
    pub effect: Uuid,
    pub effect_at: Option<DateTime<Utc>>,
    /// The edited files it names.
    pub files: BTreeSet<String>,
    pub fixed_at: Option<DateTime<Utc>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Verdict {
    pub agent_name: String,
    pub total_actions: i64,
    pub failed_actions: i64,
    pub inducing_actions: i64,
    pub successful_actions: i64,
    pub success_rate: Option<f64>,
    pub induced: Vec<Induced>,
    pub break_fix_cycles: i64,
    pub mean_time_to_fix_ms: Option<f64>,
    pub tokens: i64,
    pub cost_usd: f64,
    pub tokens_per_successful_action: Option<f64>,
    pub cost_per_successful_action: Option<f64>,
}

pub fn judge(agent_name: &str, stats: &ActionStats, correlations: &[CorrelationView]) -> Verdict {
    let mut induced: BTreeMap<Uuid, Induced> = BTreeMap::new();
    let mut causes: BTreeSet<Uuid> = BTreeSet::new();
    for c in correlations.iter().filter(|c| counts(c)) {
        causes.insert(c.cause_event_id);
        let e = induced.entry(c.effect_event_id).or_insert(Induced {
            effect: c.effect_event_id,
            effect_at: c.effect_at,
            files: BTreeSet::new(),
            fixed_at: None,
        });
        if let Some(p) = &c.file_path {
            e.files.insert(p.clone());
        }
        e.effect_at = e.effect_at.or(c.effect_at);
        if c.fixed_by_event_id.is_some() {
            e.fixed_at = match (e.fixed_at, c.fixed_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
        }
    }
    let fixed: Vec<&Induced> = induced.values().filter(|i| i.fixed_at.is_some()).collect();
    let fix_times: Vec<i64> = fixed
        .iter()
        .filter_map(|i| Some((i.fixed_at? - i.effect_at?).num_milliseconds().max(0)))
        .collect();
    let total = stats.agent_actions;
    let inducing = causes.len() as i64;
    let successful = (total - stats.failed_agent_actions - inducing).max(0);
    let per = |x: f64| (successful > 0).then(|| x / successful as f64);
    let cost = (stats.cost_usd * 1e6).round() / 1e6;
    Verdict {
        agent_name: agent_name.to_owned(),
        total_actions: total,
        failed_actions: stats.failed_agent_actions,
        inducing_actions: inducing,
        successful_actions: successful,
        success_rate: (total > 0).then(|| successful as f64 / total as f64),
        break_fix_cycles: fixed.len() as i64,
        mean_time_to_fix_ms: (!fix_times.is_empty())
            .then(|| fix_times.iter().sum::<i64>() as f64 / fix_times.len() as f64),
        induced: induced.into_values().collect(),
        tokens: stats.tokens,
        cost_usd: cost,
        tokens_per_successful_action: per(stats.tokens as f64),
        cost_per_successful_action: per(cost),
    }
}

impl Verdict {
    pub fn row(&self) -> PerformanceWrite {
        PerformanceWrite {
            agent_name: self.agent_name.clone(),
            total_actions: self.total_actions,
            induced_error_count: self.induced.len() as i64,
            success_rate: self.success_rate,
            break_fix_cycles: self.break_fix_cycles,
            mean_time_to_fix_ms: self.mean_time_to_fix_ms,
            total_tokens: self.tokens,
            cost_usd: self.cost_usd,
            tokens_per_successful_action: self.tokens_per_successful_action,
            cost_per_successful_action: self.cost_per_successful_action,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    fn corr(
        cause: Uuid,
        effect: Uuid,
        confidence: f64,
        file: &str,
        effect_s: i64,
        fixed_s: Option<i64>,
    ) -> CorrelationView {
        let t0 = DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        CorrelationView {
            cause_event_id: cause,
            effect_event_id: effect,
            match_kind: if confidence >= CLAIM {
                "error_location"
            } else {
                "context"
            }
            .into(),
            file_path: Some(file.into()),
            gap_ms: 0,
            confidence,
            fixed_by_event_id: fixed_s.map(|_| Uuid::now_v7()),
            fixed_at: fixed_s.map(|s| t0 + Duration::seconds(s)),
            cause_at: Some(t0),
            effect_at: Some(t0 + Duration::seconds(effect_s)),
        }
    }

    /// The processor test's scripted session: edit a.rs, error in a.rs,
    /// edit b.rs, failing build, llm call, edit a.rs, passing build.
    #[test]
    fn the_scripted_session() {
        let (edit_a, err, edit_b, build) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let correlations = vec![
            corr(edit_a, err, 0.9, "src/a.rs", 10, Some(50)),
            corr(edit_a, build, 0.3, "src/a.rs", 30, Some(50)),
            corr(edit_b, build, 0.49, "src/b.rs", 30, None),
        ];
        let stats = ActionStats {
            events: 7,
            failures: 2,
            agent_actions: 6,
            failed_agent_actions: 1,
            tokens: 1200,
            cost_usd: 0.01,
        };
        let v = judge("claude-code", &stats, &correlations);
        assert_eq!(v.induced.len(), 1, "only the claim (confidence >= 0.5)");
        assert_eq!(
            (v.inducing_actions, v.successful_actions, v.break_fix_cycles),
            (1, 4, 1)
        );
        assert_eq!(v.success_rate, Some(4.0 / 6.0));
        assert_eq!(v.mean_time_to_fix_ms, Some(40_000.0));
        assert_eq!(v.tokens_per_successful_action, Some(300.0));
        assert_eq!(v.cost_per_successful_action, Some(0.0025));
    }

    #[test]
    fn one_effect_with_two_causes_counts_once_and_fixes_earliest() {
        let (a, b, err) = (Uuid::now_v7(), Uuid::now_v7(), Uuid::now_v7());
        let correlations = vec![
            corr(a, err, 0.9, "x.rs", 10, Some(70)),
            corr(b, err, 0.5, "y.rs", 10, Some(40)),
        ];
        let stats = ActionStats {
            agent_actions: 2,
            ..Default::default()
        };
        let v = judge("a", &stats, &correlations);
        assert_eq!(v.induced.len(), 1);
        assert_eq!(v.induced[0].files.len(), 2);
        assert_eq!(v.mean_time_to_fix_ms, Some(30_000.0));
        assert_eq!((v.successful_actions, v.success_rate), (0, Some(0.0)));
        assert_eq!(v.tokens_per_successful_action, None);
    }

    #[test]
    fn no_actions_no_rates() {
        let v = judge("a", &ActionStats::default(), &[]);
        assert_eq!((v.success_rate, v.mean_time_to_fix_ms), (None, None));
        assert_eq!(v.row().induced_error_count, 0);
    }
}
