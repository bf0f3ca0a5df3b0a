//! Engine tests: scripted sessions with known answers, and the property
//! the whole design rests on — any arrival order within the allowed
//! lateness yields the same correlations and fixes.

use super::*;
use achilles_core::model::submission::{from_json, Context, EventSubmission};
use achilles_core::model::{Limits, TenantId};
use chrono::{DateTime, Duration, TimeZone, Utc};
use serde_json::{json, Value};
use std::collections::BTreeSet;

const SID: &str = "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f";

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn cfg() -> EngineConfig {
    EngineConfig {
        window_us: 300_000_000,
        unnamed_window_us: 60_000_000,
        fix_window_us: 1_800_000_000,
        lateness_us: 60_000_000,
    }
}

/// An event `secs` after t0.
fn ev(secs: i64, kind: &str, data: Value) -> Event {
    let tenant = TenantId::parse("acme").unwrap();
    let limits = Limits::default();
    let ctx = Context {
        tenant: &tenant,
        now: t0() + Duration::hours(1),
        limits: &limits,
    };
    let at = (t0() + Duration::seconds(secs)).to_rfc3339();
    let sub: EventSubmission =
        from_json(json!({"session_id": SID, "occurred_at": at, "kind": kind, "data": data}))
            .unwrap();
    sub.validate(ctx, None).unwrap()
}

fn edit(secs: i64, path: &str) -> Event {
    ev(secs, "file_edit", json!({"path": path}))
}
fn error(secs: i64, file: &str) -> Event {
    ev(
        secs,
        "error",
        json!({"message": "mismatched types", "file": file}),
    )
}
fn build(secs: i64, exit: i32) -> Event {
    ev(
        secs,
        "command",
        json!({"command": "cargo build", "exit_code": exit}),
    )
}

/// The script: edit a.rs → error in a.rs (same_file) → edit b.rs → failing
/// build naming nothing (any_failure with both edits) → edit a.rs → build
/// passes (fixes both correlations whose cause path is a.rs) .
fn script() -> Vec<Event> {
    vec![
        edit(0, "src/a.rs"),
        error(10, "src/a.rs"),
        edit(20, "src/b.rs"),
        build(30, 101),
        edit(40, "src/a.rs"),
        build(50, 0),
    ]
}

type Facts = (
    BTreeSet<(String, String, &'static str, i64)>,
    BTreeSet<(String, String, String)>,
);

fn run(events: &[Event]) -> Facts {
    let names: std::collections::HashMap<_, _> = script()
        .iter()
        .enumerate()
        .map(|(i, e)| (e.id.as_uuid(), format!("e{i}")))
        .collect();
    let mut st = SessionState::default();
    let mut corr = BTreeSet::new();
    let mut fixes = std::collections::BTreeMap::new();
    for e in events {
        let fx = st.apply_event(e, &cfg());
        for c in fx.correlations {
            corr.insert((
                names[&c.cause].clone(),
                names[&c.effect].clone(),
                c.match_kind.as_str(),
                c.gap_ms,
            ));
        }
        for f in fx.fixes {
            // Later refreshes can only move a fix earlier; keep the last word.
            fixes.insert(
                (names[&f.cause].clone(), names[&f.effect].clone()),
                names[&f.fixed_by].clone(),
            );
        }
    }
    (
        corr,
        fixes.into_iter().map(|((a, b), c)| (a, b, c)).collect(),
    )
}

#[test]
fn scripted_session_has_the_known_answer() {
    let (corr, fixes) = run(&script());
    let expected: BTreeSet<_> = [
        ("e0", "e1", "same_file", 10_000),
        ("e0", "e3", "any_failure", 30_000),
        ("e2", "e3", "any_failure", 10_000),
    ]
    .into_iter()
    .map(|(a, b, k, g)| (a.to_owned(), b.to_owned(), k, g))
    .collect();
    assert_eq!(corr, expected);
    // e5 (passing build) after e4 (new edit of a.rs) fixes both a.rs
    // correlations; b.rs was never edited again, so e2→e3 stays open.
    let expected_fixes: BTreeSet<_> = [("e0", "e1", "e5"), ("e0", "e3", "e5")]
        .into_iter()
        .map(|(a, b, c)| (a.to_owned(), b.to_owned(), c.to_owned()))
        .collect();
    assert_eq!(fixes, expected_fixes);
}

#[test]
fn unnamed_failures_pair_only_with_recent_edits() {
    // A failure naming a.rs pairs with its edit 4 minutes back; one naming
    // nothing pairs only with the edit within the unnamed window (60 s),
    // not with the older one.
    let mut st = SessionState::default();
    let old_a = edit(0, "src/a.rs");
    let old_c = edit(10, "src/c.rs");
    let recent_b = edit(200, "src/b.rs");
    let mut pairs = Vec::new();
    for e in [
        old_a.clone(),
        old_c.clone(),
        recent_b.clone(),
        error(240, "src/a.rs"),
        build(250, 1),
    ] {
        for c in st.apply_event(&e, &cfg()).correlations {
            pairs.push((c.cause, c.match_kind.as_str(), c.gap_ms));
        }
    }
    pairs.sort();
    let mut expected = vec![
        (old_a.id.as_uuid(), "same_file", 240_000),
        (recent_b.id.as_uuid(), "any_failure", 40_000), // b.rs → error in a.rs
        (recent_b.id.as_uuid(), "any_failure", 50_000), // b.rs → build
    ];
    expected.sort();
    assert_eq!(pairs, expected);
}

#[test]
fn every_arrival_order_within_lateness_gives_the_same_rows() {
    let in_order = run(&script());
    // All 720 permutations of the six events.
    let mut idx: Vec<usize> = (0..6).collect();
    let mut count = 0;
    permute(&mut idx, 0, &mut |order| {
        let events: Vec<Event> = order.iter().map(|&i| script()[i].clone()).collect();
        assert_eq!(run(&events), in_order, "order {order:?}");
        count += 1;
    });
    assert_eq!(count, 720);
}

fn permute(v: &mut Vec<usize>, k: usize, f: &mut impl FnMut(&[usize])) {
    if k == v.len() {
        f(v);
        return;
    }
    for i in k..v.len() {
        v.swap(k, i);
        permute(v, k + 1, f);
        v.swap(k, i);
    }
}

#[test]
fn too_late_events_are_counted_but_not_correlated() {
    let mut st = SessionState::default();
    st.apply_event(&edit(0, "src/a.rs"), &cfg());
    st.apply_event(&build(200, 0), &cfg());
    // 150 s older than the newest event: beyond the 60 s lateness.
    let fx = st.apply_event(&error(50, "src/a.rs"), &cfg());
    assert_eq!(fx.lateness, Lateness::TooLate);
    assert!(fx.correlations.is_empty());
    assert_eq!(st.counters.events, 3);
    assert_eq!(st.counters.failures, 1);
    let fx = st.apply_event(&error(170, "src/a.rs"), &cfg());
    assert_eq!(fx.lateness, Lateness::Late);
    assert_eq!(
        fx.correlations.len(),
        1,
        "late but within lateness still correlates"
    );
}

#[test]
fn window_bounds_and_human_edits() {
    let mut st = SessionState::default();
    st.apply_event(&edit(0, "src/a.rs"), &cfg());
    let fx = st.apply_event(&error(301, "src/a.rs"), &cfg());
    assert!(
        fx.correlations.is_empty(),
        "301 s is outside the 300 s window"
    );
    let mut human = edit(302, "src/a.rs");
    human.actor = achilles_core::model::Actor::Human;
    st.apply_event(&human, &cfg());
    let fx = st.apply_event(&error(303, "src/a.rs"), &cfg());
    assert!(
        fx.correlations.is_empty(),
        "a human's edit is not the agent's fault"
    );
}

#[test]
fn confidence_decays_and_orders_by_naming() {
    let w = 300_000_000;
    assert_eq!(confidence(Some(Naming::FileField), 0, w), 0.9);
    assert_eq!(confidence(Some(Naming::FileField), w, w), 0.45);
    assert!(confidence(Some(Naming::Path), 0, w) > confidence(Some(Naming::BaseName), 0, w));
    assert_eq!(confidence(None, 0, w), 0.3);
}

#[test]
fn state_survives_serialisation() {
    let mut st = SessionState::default();
    for e in script().iter().take(3) {
        st.apply_event(e, &cfg());
    }
    let json = serde_json::to_value(&st).unwrap();
    let mut back: SessionState = serde_json::from_value(json).unwrap();
    assert_eq!(back, st);
    // The restored state continues exactly like the original.
    let a = st.apply_event(&script()[3], &cfg());
    let b = back.apply_event(&script()[3], &cfg());
    assert_eq!(a.correlations, b.correlations);
}
