//! Runs the engine over labelled sessions (`achilles-eval`) and scores
//! the rows it would write: what `achilles eval attribution` prints and
//! what the engine-level quality test asserts.
//!
//! The rows are folded exactly as the handler writes them: upserts by
//! (cause, effect), retractions delete, a fix only moves earlier.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Duration, TimeZone, Utc};
use uuid::Uuid;

use achilles_core::model::submission::{
    from_json, Context, EventSubmission, SessionStartSubmission,
};
use achilles_core::model::{Event, Limits, SessionStart, TenantId};
use achilles_eval::{Predicted, Report, Session};

use crate::engine::{EngineConfig, SessionState};

#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("generated event {index} of session {session} is invalid: {reason}")]
    Invalid {
        session: Uuid,
        index: usize,
        reason: String,
    },
}

/// The session's start and events as validated domain values, with the
/// session starting at `t0`.
pub fn materialise(
    s: &Session,
    t0: DateTime<Utc>,
) -> Result<(SessionStart, Vec<Event>), EvalError> {
    let tenant = TenantId::parse("eval").map_err(|reason| EvalError::Invalid {
        session: s.id,
        index: 0,
        reason,
    })?;
    let limits = Limits::default();
    let ctx = Context {
        tenant: &tenant,
        now: t0 + Duration::milliseconds(s.duration_ms()) + Duration::minutes(1),
        limits: &limits,
        scrub: None,
    };
    let invalid = |index: usize, reason: String| EvalError::Invalid {
        session: s.id,
        index,
        reason,
    };
    let start: SessionStartSubmission = from_json(s.start_submission(&t0.to_rfc3339()))
        .map_err(|e| invalid(0, format!("{e:?}")))?;
    let start = start
        .validate(ctx)
        .map_err(|e| invalid(0, format!("{e:?}")))?;
    let mut events = Vec::with_capacity(s.events.len());
    for (i, e) in s.events.iter().enumerate() {
        let at = (t0 + Duration::milliseconds(e.offset_ms)).to_rfc3339();
        let sub: EventSubmission =
            from_json(s.submission(i, &at)).map_err(|err| invalid(i, format!("{err:?}")))?;
        events.push(
            sub.validate(ctx, None)
                .map_err(|err| invalid(i, format!("{err:?}")))?,
        );
    }
    Ok((start, events))
}

/// A row as stored: confidence, and the fix (time, event) if any.
type Row = (f64, Option<(i64, Uuid)>);

/// The rows the engine leaves for `events`, applied in the given order.
pub fn rows(start: &SessionStart, events: &[Event], cfg: &EngineConfig) -> Vec<Predicted> {
    let mut st = SessionState::default();
    st.apply_start(start);
    let mut rows: BTreeMap<(Uuid, Uuid), Row> = BTreeMap::new();
    for e in events {
        let fx = st.apply_event(e, cfg);
        for (c, f) in fx.retracted {
            rows.remove(&(c, f));
        }
        for c in fx.correlations {
            let fix = rows.get(&(c.cause, c.effect)).and_then(|r| r.1);
            rows.insert((c.cause, c.effect), (c.confidence, fix));
        }
        for f in fx.fixes {
            if let Some(r) = rows.get_mut(&(f.cause, f.effect)) {
                if r.1.is_none_or(|cur| (f.fixed_at, f.fixed_by) < cur) {
                    r.1 = Some((f.fixed_at, f.fixed_by));
                }
            }
        }
    }
    rows.into_iter()
        .map(|((cause, effect), (confidence, fix))| Predicted {
            cause,
            effect,
            confidence,
            fixed_by: fix.map(|f| f.1),
        })
        .collect()
}

/// A fixed, valid start time for offline runs (events are validated
/// against it, not against the clock).
pub fn offline_t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 21, 9, 0, 0)
        .single()
        .unwrap_or_default()
}

/// Runs every session through the engine and scores the rows.
pub fn evaluate(sessions: &[Session], cfg: &EngineConfig) -> Result<Report, EvalError> {
    let mut predicted: HashMap<Uuid, Vec<Predicted>> = HashMap::new();
    for s in sessions {
        let (start, events) = materialise(s, offline_t0())?;
        predicted.insert(s.id, rows(&start, &events, cfg));
    }
    Ok(achilles_eval::score(sessions, &predicted))
}

#[cfg(test)]
mod tests {
    use super::*;
    use achilles_core::config::ProcessorSettings;

    /// The quality bar on the whole generated set, with the default
    /// configuration: what `make test` holds the engine to.
    #[test]
    fn attribution_meets_the_targets_on_the_labelled_sessions() {
        let cfg = EngineConfig::from_settings(&ProcessorSettings::default());
        let sessions = achilles_eval::generate(2026, 120);
        let r = evaluate(&sessions, &cfg).unwrap();
        let report = r.render();
        assert!(r.true_pairs > 300, "{report}");
        assert!(r.precision >= 0.95, "{report}");
        assert!(r.recall >= 0.95, "{report}");
        assert!(r.break_fix_accuracy >= 0.90, "{report}");
        assert!(r.induced_mae <= 0.3, "{report}");
    }

    /// Delivering each session's events in reverse within the allowed
    /// lateness changes nothing (order independence on real output).
    #[test]
    fn arrival_order_does_not_change_the_rows() {
        let cfg = EngineConfig::from_settings(&ProcessorSettings::default());
        for s in achilles_eval::generate(5, 12) {
            let (start, events) = materialise(&s, offline_t0()).unwrap();
            let in_order = rows(&start, &events, &cfg);
            // Swap neighbours less than the lateness apart.
            let mut shuffled = events.clone();
            for i in (1..shuffled.len()).step_by(2) {
                let gap = shuffled[i].occurred_at - shuffled[i - 1].occurred_at;
                if gap.num_milliseconds() < cfg.lateness_us / 1000 {
                    shuffled.swap(i - 1, i);
                }
            }
            assert_eq!(rows(&start, &shuffled, &cfg), in_order, "session {}", s.id);
        }
    }
}
