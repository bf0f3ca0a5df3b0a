//! Tests of the evaluation graph: deduplication, escalation, resolution
//! and state that survives a save/load round trip.

use super::*;
use crate::checks::test_support::{command, error, SEC};

fn graph() -> Graph {
    Graph::from_settings(&CheckSettings::default())
}

fn raised(ds: &[Decision]) -> Vec<(&str, &str)> {
    ds.iter()
        .filter(|d| d.change == Change::Raised)
        .map(|d| {
            (
                d.insight.insight_type.as_str(),
                d.insight.dedup_key.as_str(),
            )
        })
        .collect()
}

#[test]
fn a_storm_raises_one_insight_then_updates_it_then_resolves_it() {
    let g = graph();
    let mut s = g.fresh();
    let mut all = Vec::new();
    for i in 0..40 {
        all.extend(g.step(&mut s, &error(i, None, &format!("boom {i}"))));
    }
    assert_eq!(raised(&all), vec![("high_error_density", "session")]);
    // Only the raise is a decision; later events refresh the open insight.
    assert_eq!(
        all.iter()
            .filter(|d| d.insight.insight_type == "high_error_density")
            .count(),
        1
    );
    assert_eq!(s.open.len(), 1);
    assert_eq!(
        s.open[0].last_seen_at,
        39 * SEC,
        "refreshed by the last event"
    );
    let mut after = Vec::new();
    for i in 40..60 {
        after.extend(g.step(&mut s, &command(i, "ls", 0)));
    }
    let resolved: Vec<_> = after
        .iter()
        .filter(|d| d.change == Change::Resolved)
        .collect();
    assert_eq!(resolved.len(), 1);
    assert!(s.open.is_empty());
    // It is raised again if the storm comes back: same key, so same id.
    for i in 60..90 {
        after.extend(g.step(&mut s, &error(i, None, "boom")));
    }
    assert_eq!(raised(&after), vec![("high_error_density", "session")]);
}

#[test]
fn escalation_is_its_own_change() {
    let mut open = Vec::new();
    let f = |sev| Finding {
        dedup_key: "k".into(),
        severity: sev,
        title: "t".into(),
        detail: String::new(),
        evidence: Value::Null,
    };
    let d = reconcile("x", vec![f(Severity::Warning)], &mut open, 1);
    assert_eq!(d[0].change, Change::Raised);
    let d = reconcile("x", vec![f(Severity::Critical)], &mut open, 2);
    assert_eq!(d[0].change, Change::Escalated);
    // Still holding at a lower severity: no decision, a refresh in place.
    let d = reconcile("x", vec![f(Severity::Warning)], &mut open, 3);
    assert!(d.is_empty(), "{d:?}");
    assert_eq!(
        (open[0].severity, open[0].raised_at, open[0].last_seen_at),
        (Severity::Warning, 1, 3)
    );
    // Another check's open insights are not touched.
    assert!(reconcile("y", vec![], &mut open, 4).is_empty());
    let d = reconcile("x", vec![], &mut open, 5);
    assert_eq!((d[0].change, d[0].resolved_at), (Change::Resolved, Some(5)));
    assert!(open.is_empty());
}

#[test]
fn state_survives_save_and_load() {
    let g = graph();
    let mut s = g.fresh();
    s.tenant = "acme".into();
    for i in 0..2 {
        g.step(&mut s, &command(i, "cargo test", 101));
    }
    let mut restored = g.load(&g.save(&s)).unwrap();
    assert_eq!((restored.events, restored.max_t), (2, Some(SEC)));
    // The third failure is recognised only if the first two were kept.
    let d = g.step(&mut restored, &command(2, "cargo test", 101));
    assert_eq!(raised(&d), vec![("command_loop", "cargo test")]);
    // Unreadable state is an error, never a silently empty state.
    assert!(g.load(r#"{"checks": 5}"#).is_err());
    assert!(g
        .load(r#"{"tenant": "acme", "events": 3, "checks": {"command_loop": 5}}"#)
        .is_err());
    assert!(g.load("{}").is_ok(), "missing slots start afresh");
}

#[test]
fn insight_ids_are_stable_per_session_type_and_key() {
    let s = Uuid::now_v7();
    let a = insight_id(s, "command_loop", "make");
    assert_eq!(a, insight_id(s, "command_loop", "make"));
    assert_ne!(a, insight_id(s, "command_loop", "make test"));
    assert_ne!(a, insight_id(Uuid::now_v7(), "command_loop", "make"));
    assert_eq!(a.get_version_num(), 8);
}
