//! The session report (`session_reports.report`): a JSON document a human
//! can read, built deterministically from the verdict and the session's
//! rows, so the same inputs always give the same document (re-delivered
//! session-ended records then change nothing).

use std::collections::BTreeMap;

use serde_json::{json, Value};

use achilles_core::db::analysis::{InsightRow, SessionClusterRow};

use crate::db::ActionStats;
use achilles_core::db::SessionRow;

use super::judge::Verdict;

/// Report format version, bumped when fields change meaning.
pub const VERSION: i64 = 1;

/// What the report is built from.
pub struct Inputs<'a> {
    pub session: &'a SessionRow,
    /// Events the session-ended record announced, and events found.
    pub events_expected: i64,
    pub events_found: i64,
    pub stats: &'a ActionStats,
    pub verdict: &'a Verdict,
    /// Most frequent first.
    pub clusters: &'a [SessionClusterRow],
    /// (path, agent edits, failures naming it).
    pub files: &'a [(String, i64, i64)],
    pub insights: &'a [InsightRow],
    pub top_n: usize,
}

fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

#[derive(Default)]
struct FileScore {
    induced: i64,
    fixed: i64,
    edits: i64,
    failures: i64,
}

/// Files ranked by induced errors, then failures naming them, then edits.
fn worst_files(i: &Inputs<'_>) -> Vec<Value> {
    let mut files: BTreeMap<&str, FileScore> = BTreeMap::new();
    for ind in &i.verdict.induced {
        for f in &ind.files {
            let s = files.entry(f.as_str()).or_default();
            s.induced += 1;
            s.fixed += i64::from(ind.fixed_at.is_some());
        }
    }
    for (path, edits, failures) in i.files {
        let s = files.entry(path.as_str()).or_default();
        s.edits = *edits;
        s.failures = *failures;
    }
    let mut ranked: Vec<(&str, FileScore)> = files
        .into_iter()
        .filter(|(_, s)| s.induced > 0 || s.failures > 0)
        .collect();
    ranked.sort_by(|a, b| {
        (b.1.induced, b.1.failures, b.1.edits, a.0).cmp(&(
            a.1.induced,
            a.1.failures,
            a.1.edits,
            b.0,
        ))
    });
    ranked
        .into_iter()
        .take(i.top_n)
        .map(|(path, s)| {
            json!({"path": path, "induced_errors": s.induced, "fixed": s.fixed,
                   "failures": s.failures, "agent_edits": s.edits})
        })
        .collect()
}

fn summary(i: &Inputs<'_>) -> String {
    let v = i.verdict;
    let mut out = format!(
        "{} took {} actions in {} events: {} succeeded",
        v.agent_name, v.total_actions, i.stats.events, v.successful_actions
    );
    if let Some(r) = v.success_rate {
        out.push_str(&format!(" ({:.1}%)", r * 100.0));
    }
    out.push_str(&format!(
        ", {} failed and {} induced an error. ",
        v.failed_actions, v.inducing_actions
    ));
    out.push_str(&format!(
        "{} induced error(s), {} fixed",
        v.induced.len(),
        v.break_fix_cycles
    ));
    if let Some(ms) = v.mean_time_to_fix_ms {
        out.push_str(&format!(" after {:.1} s on average", ms / 1000.0));
    }
    out.push_str(&format!(
        ". {} tokens and ${:.4} spent",
        v.tokens, v.cost_usd
    ));
    if let (Some(t), Some(c)) = (v.tokens_per_successful_action, v.cost_per_successful_action) {
        out.push_str(&format!(" ({t:.0} tokens, ${c:.4} per successful action)"));
    }
    out.push('.');
    if let Some(c) = i.clusters.first() {
        out.push_str(&format!(
            " Most frequent error: \"{}\" ({}x).",
            c.template, c.occurrences
        ));
    }
    if i.events_found < i.events_expected {
        out.push_str(&format!(
            " Incomplete: judged {} of {} events.",
            i.events_found, i.events_expected
        ));
    }
    out
}

pub fn build(i: &Inputs<'_>) -> Value {
    let s = i.session;
    let v = i.verdict;
    let st = i.stats;
    let open = i.insights.iter().filter(|x| x.status == "open").count();
    json!({
        "version": VERSION,
        "session": {
            "id": s.id, "agent_name": s.agent_name, "agent_model": s.agent_model,
            "status": s.status, "started_at": s.started_at, "ended_at": s.ended_at,
            "duration_ms": s.duration_ms,
        },
        "completeness": {
            "complete": i.events_found >= i.events_expected,
            "events_expected": i.events_expected,
            "events_judged": i.events_found,
        },
        "headline": {
            "events": st.events,
            "failures": st.failures,
            "error_density": if st.events > 0 { round4(st.failures as f64 / st.events as f64) } else { 0.0 },
            "agent_actions": v.total_actions,
            "failed_actions": v.failed_actions,
            "inducing_actions": v.inducing_actions,
            "successful_actions": v.successful_actions,
            "success_rate": v.success_rate.map(round4),
            "induced_errors": v.induced.len(),
            "break_fix_cycles": v.break_fix_cycles,
            "unfixed_induced_errors": v.induced.len() as i64 - v.break_fix_cycles,
            "mean_time_to_fix_ms": v.mean_time_to_fix_ms,
            "tokens": v.tokens,
            "cost_usd": v.cost_usd,
            "tokens_per_successful_action": v.tokens_per_successful_action.map(round4),
            "cost_per_successful_action": v.cost_per_successful_action.map(|c| (c * 1e6).round() / 1e6),
            "insights_raised": i.insights.len(),
            "insights_open": open,
        },
        "summary": summary(i),
        "top_clusters": i.clusters.iter().take(i.top_n).map(|c| json!({
            "cluster_id": c.cluster_id, "template": c.template, "occurrences": c.occurrences,
            "first_seen": c.first_seen, "last_seen": c.last_seen,
            "sessions_with_it": c.session_count,
        })).collect::<Vec<_>>(),
        "worst_files": worst_files(i),
        "insights": i.insights.iter().map(|x| json!({
            "id": x.id, "type": x.insight_type, "severity": x.severity, "status": x.status,
            "title": x.title, "raised_at": x.raised_at, "resolved_at": x.resolved_at,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deep::judge::Induced;
    use chrono::{DateTime, Utc};
    use std::collections::BTreeSet;
    use uuid::Uuid;

    fn session() -> SessionRow {
        let t = DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap();
        SessionRow {
            id: Uuid::nil(),
            tenant_id: "acme".into(),
            agent_name: Some("claude-code".into()),
            agent_model: None,
            source: "cli".into(),
            status: "completed".into(),
            started_at: Some(t),
            ended_at: Some(t),
            metadata: json!({}),
            placeholder: false,
            event_count: 7,
            agent_activity_score: None,
            error_density: None,
            error_count: 2,
            duration_ms: Some(60_000),
            input_tokens: 1000,
            output_tokens: 200,
            cost_usd: 0.01,
            first_event_at: None,
            last_event_at: None,
            summary_final: true,
            created_at: t,
            updated_at: t,
        }
    }

    #[test]
    fn worst_files_rank_induced_errors_first_and_the_report_is_deterministic() {
        let s = session();
        let stats = ActionStats {
            events: 7,
            failures: 2,
            agent_actions: 6,
            failed_agent_actions: 1,
            tokens: 1200,
            cost_usd: 0.01,
        };
        let verdict = Verdict {
            agent_name: "claude-code".into(),
            total_actions: 6,
            failed_actions: 1,
            inducing_actions: 1,
            successful_actions: 4,
            success_rate: Some(4.0 / 6.0),
            induced: vec![Induced {
                effect: Uuid::nil(),
                effect_at: None,
                files: BTreeSet::from(["src/a.rs".to_owned()]),
                fixed_at: s.ended_at,
            }],
            break_fix_cycles: 1,
            mean_time_to_fix_ms: Some(40_000.0),
            tokens: 1200,
            cost_usd: 0.01,
            tokens_per_successful_action: Some(300.0),
            cost_per_successful_action: Some(0.0025),
        };
        let files = vec![
            ("src/a.rs".to_owned(), 2, 1),
            ("src/b.rs".to_owned(), 1, 0),
            ("src/c.rs".to_owned(), 0, 3),
        ];
        let inputs = Inputs {
            session: &s,
            events_expected: 7,
            events_found: 7,
            stats: &stats,
            verdict: &verdict,
            clusters: &[],
            files: &files,
            insights: &[],
            top_n: 5,
        };
        let r = build(&inputs);
        assert_eq!(r, build(&inputs));
        let paths: Vec<_> = r["worst_files"]
            .as_array()
            .unwrap()
            .iter()
            .map(|f| f["path"].as_str().unwrap())
            .collect();
        assert_eq!(paths, ["src/a.rs", "src/c.rs"], "b.rs never failed");
        assert_eq!(r["headline"]["success_rate"], 0.6667);
        assert_eq!(r["completeness"]["complete"], true);
        let text = r["summary"].as_str().unwrap();
        assert!(text.contains("4 succeeded (66.7%)"), "{text}");
        assert!(text.contains("after 40.0 s on average"), "{text}");
    }
}
