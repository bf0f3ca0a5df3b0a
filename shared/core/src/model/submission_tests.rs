//! Tests for submission validation: every rule has a case that trips it.

use super::*;
use chrono::TimeZone;
use serde_json::json;

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 12, 0, 0).unwrap()
}

fn tenant() -> TenantId {
    TenantId::parse("acme").unwrap()
}

const SID: &str = "0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f";

fn check(v: Value) -> Result<Event, ValidationErrors> {
    let t = tenant();
    let limits = Limits::default();
    let ctx = Context {
        tenant: &t,
        now: now(),
        limits: &limits,
        scrub: None,
    };
    from_json::<EventSubmission>(v)?.validate(ctx, None)
}

fn fields(e: ValidationErrors) -> Vec<(String, &'static str)> {
    e.0.into_iter().map(|e| (e.field, e.code)).collect()
}

#[test]
fn valid_file_edit() {
    let ev = check(json!({
        "session_id": SID, "occurred_at": "2026-11-21T11:59:00.123456789Z",
        "kind": "file_edit", "data": {"path": "src/lib.rs", "lines_added": 3}
    }))
    .unwrap();
    assert_eq!(ev.kind(), EventKind::FileEdit);
    assert_eq!(ev.actor, Actor::Agent);
    assert_eq!(
        ev.occurred_at.timestamp_subsec_nanos(),
        123_456_000,
        "truncated to micros"
    );
    assert_eq!(ev.tenant, tenant());
}

#[test]
fn reports_every_problem_at_once() {
    let err = check(json!({
        "session_id": "nope", "occurred_at": "yesterday", "kind": "telepathy",
        "actor": "robot", "attributes": [1]
    }))
    .unwrap_err();
    assert_eq!(
        fields(err),
        vec![
            ("session_id".into(), codes::INVALID_ID),
            ("occurred_at".into(), codes::INVALID_TIMESTAMP),
            ("kind".into(), codes::UNKNOWN_KIND),
            ("actor".into(), codes::INVALID_VALUE),
            ("attributes".into(), codes::INVALID_DATA),
        ]
    );
}

#[test]
fn missing_required_fields() {
    let err = check(json!({})).unwrap_err();
    assert_eq!(
        fields(err),
        vec![
            ("session_id".into(), codes::MISSING_FIELD),
            ("occurred_at".into(), codes::MISSING_FIELD),
            ("kind".into(), codes::MISSING_FIELD),
        ]
    );
}

#[test]
fn unknown_top_level_field_is_rejected_by_name() {
    let err = check(json!({"session_id": SID, "ocurred_at": "x"})).unwrap_err();
    assert_eq!(err.0[0].code, codes::INVALID_JSON);
    assert!(
        err.0[0].message.contains("unknown field `ocurred_at`"),
        "{err}"
    );
}

#[test]
fn timestamps_outside_the_window() {
    for t in ["2026-11-21T12:06:00Z", "2026-11-01T00:00:00Z"] {
        let err = check(json!({
            "session_id": SID, "occurred_at": t, "kind": "user_message"
        }))
        .unwrap_err();
        assert_eq!(
            fields(err),
            vec![("occurred_at".into(), codes::TIMESTAMP_OUT_OF_RANGE)]
        );
    }
}

#[test]
fn sizes_are_enforced() {
    let big = "x".repeat(16 * 1024 + 1);
    let err = check(json!({
        "session_id": SID, "occurred_at": "2026-11-21T12:00:00Z", "kind": "error",
        "data": {"message": big}, "attributes": {"k": "v\u{0}"}
    }))
    .unwrap_err();
    assert_eq!(
        fields(err),
        vec![
            ("data.message".into(), codes::TOO_LARGE),
            ("attributes".into(), codes::CONTAINS_NUL),
        ]
    );
}

#[test]
fn too_many_attribute_keys() {
    let attrs: Map<String, Value> = (0..65).map(|i| (format!("k{i}"), json!(i))).collect();
    let err = check(json!({
        "session_id": SID, "occurred_at": "2026-11-21T12:00:00Z", "kind": "user_message",
        "attributes": attrs
    }))
    .unwrap_err();
    assert_eq!(fields(err), vec![("attributes".into(), codes::TOO_LARGE)]);
}

#[test]
fn user_message_defaults_to_human_and_batch_session_applies() {
    let t = tenant();
    let limits = Limits::default();
    let ctx = Context {
        tenant: &t,
        now: now(),
        limits: &limits,
        scrub: None,
    };
    let sub: EventSubmission =
        from_json(json!({"occurred_at": "2026-11-21T12:00:00Z", "kind": "user_message"})).unwrap();
    let ev = sub
        .validate(ctx, Some(SessionId::parse(SID).unwrap()))
        .unwrap();
    assert_eq!(ev.actor, Actor::Human);
    assert_eq!(ev.session_id.to_string(), SID);
}

#[test]
fn session_start_and_end() {
    let t = tenant();
    let limits = Limits::default();
    let ctx = Context {
        tenant: &t,
        now: now(),
        limits: &limits,
        scrub: None,
    };
    let start: SessionStartSubmission =
        from_json(json!({"agent_name": "claude-code", "source": "cli"})).unwrap();
    let start = start.validate(ctx).unwrap();
    assert_eq!(start.started_at, now());
    assert_eq!(start.source, SessionSource::Cli);

    let bad: SessionStartSubmission = from_json(json!({"source": "fax"})).unwrap();
    assert_eq!(
        fields(bad.validate(ctx).unwrap_err()),
        vec![
            ("agent_name".into(), codes::MISSING_FIELD),
            ("source".into(), codes::INVALID_VALUE)
        ]
    );

    let end: SessionEndSubmission =
        from_json(json!({"session_id": SID, "status": "active"})).unwrap();
    assert_eq!(
        fields(end.validate(ctx).unwrap_err()),
        vec![("status".into(), codes::INVALID_VALUE)],
        "an end record cannot set a session back to active"
    );
}

/// Times that RFC 3339 cannot write back (years beyond 0001-9999 once in
/// UTC) are refused, and an extreme "now" (a record's own ingest time) can
/// no longer overflow the window arithmetic.
#[test]
fn times_must_round_trip_and_the_window_never_overflows() {
    let t = tenant();
    let wide = Limits {
        max_age_secs: i64::MAX,
        max_future_secs: i64::MAX,
        ..Limits::default()
    };
    for (now, raw) in [
        (
            Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
            "0001-01-01T00:00:00+01:00",
        ),
        (
            Utc.with_ymd_and_hms(9999, 12, 31, 0, 0, 0).unwrap(),
            "9999-12-31T23:59:59-01:00",
        ),
        (DateTime::<Utc>::MAX_UTC, "2026-11-21T12:00:00Z"),
        (DateTime::<Utc>::MIN_UTC, "2026-11-21T12:00:00Z"),
    ] {
        let ctx = Context {
            tenant: &t,
            now,
            limits: &wide,
            scrub: None,
        };
        let sub: SessionEndSubmission =
            from_json(json!({"session_id": SID, "ended_at": raw})).unwrap();
        match sub.validate(ctx) {
            Ok(end) => {
                let text = end.ended_at.to_rfc3339();
                assert!(
                    DateTime::parse_from_rfc3339(&text).is_ok(),
                    "{raw} -> {text}"
                );
            }
            Err(e) => assert_eq!(e.0[0].code, codes::TIMESTAMP_OUT_OF_RANGE, "{raw}: {e}"),
        }
    }
    let ctx = Context {
        tenant: &t,
        now: Utc.with_ymd_and_hms(1, 1, 1, 0, 0, 0).unwrap(),
        limits: &wide,
        scrub: None,
    };
    let sub: SessionEndSubmission =
        from_json(json!({"session_id": SID, "ended_at": "0001-01-01T00:00:00+01:00"})).unwrap();
    assert!(sub.validate(ctx).is_err(), "year 0 in UTC is refused");
}
