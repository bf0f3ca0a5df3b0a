//! The stream processor as a [`Stage`] of the runtime's exactly-once step.
//!
//! `apply` folds each record into the session's [`SessionState`] (pure
//! engine code, see [`crate::engine`]) and collects what it produced:
//! correlations, fixes, template occurrences, session ends. `write` turns
//! that into rows in the batch's transaction, with the session summaries
//! and the session-ended notices (through the outbox). Positions, state
//! checkpoints, duplicates and dead letters are the runtime's.
//!
//! A session is ended by its `session_end` record: the producer's, or a
//! `timed_out` one from the [`crate::reaper`] (which never replaces the
//! producer's). An event applied to an ended session publishes the
//! session-ended notice again (at most once per batch), so deep mode
//! re-judges it with the late event counted.
//!
//! Outbox records keep the trace context of the record that caused them:
//! a session-ended notice the session end's, so the monitoring agent's
//! report joins the session end's trace.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use achilles_core::db::outbox::NewOutboxRecord;
use achilles_core::metrics;
use achilles_core::model::{SessionId, SessionStatus, TenantId};
use achilles_core::telemetry::{self, SpanContext};
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::codec::EncodeError;
use achilles_core::wire::session_ended::SessionEnded;
use achilles_core::wire::Record;
use achilles_runtime::stage::{from_json, to_json};
use achilles_runtime::{Input, Refused, Session, Stage, StepError, WriteCtx};

use crate::db::clusters::TemplateDelta;
use crate::db::derived::{self, CorrelationRow, FixRow, SummaryRow};
use crate::engine::{EngineConfig, Lateness, SessionState, Summary};

pub const NAME: &str = "processor";

pub struct Processor {
    pub engine: EngineConfig,
    pub topics: Topics,
    /// `[cluster]` masking rules, compiled at start-up.
    pub mask_rules: Arc<achilles_cluster::RuleSet>,
}

fn ts(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Occurrence aggregate key: (tenant, template id, session).
type TemplateKey = (String, String, Uuid);

/// What a batch produced.
#[derive(Default)]
pub struct Batch {
    touched: Vec<Uuid>,
    correlations: derived::CorrelationChanges,
    fixes: Vec<FixRow>,
    templates: HashMap<TemplateKey, TemplateDelta>,
    /// Sessions to publish a session-ended notice for: those whose end
    /// changed, and ended sessions that took a late event (re-judged).
    ended: Vec<Ended>,
    /// The rows written, for the metrics once committed.
    written: Vec<CorrelationRow>,
    late: u64,
    too_late: u64,
    new_templates: u64,
}

/// One session-ended notice to publish: the trace of the record that
/// caused it, and why.
pub struct Ended {
    id: Uuid,
    trace: Option<SpanContext>,
    /// The end's status, when the end itself changed (counted in
    /// `achilles_sessions_ended_total`); `None` for a late event after the
    /// end, which republishes the notice so deep mode judges again.
    new_end: Option<&'static str>,
}

impl Stage for Processor {
    type State = SessionState;
    type Batch = Batch;
    const NAME: &'static str = NAME;
    const FRESHNESS: &'static str = "derived";

    fn new_state(&self) -> SessionState {
        SessionState::default()
    }

    fn snapshot(&self, state: &SessionState) -> SessionState {
        state.clone()
    }

    fn save_state(&self, state: &SessionState) -> Result<String, EncodeError> {
        to_json(state)
    }

    fn load_state(&self, text: &str) -> Result<SessionState, String> {
        from_json(text)
    }

    fn apply(
        &self,
        session: &mut Session<SessionState>,
        input: Input,
        out: &mut Batch,
    ) -> Result<(), Refused> {
        let sid = session.id;
        let st = &mut session.state;
        match input.record {
            Record::SessionStart(s) => st.apply_start(&s),
            Record::SessionEnd(e) => {
                let before = (st.ended_at, st.end_status.clone());
                // A timeout never replaces the producer's own end (it may
                // have been published while that end was on its way).
                let current = st.end_status.as_deref().and_then(SessionStatus::parse);
                if e.status.may_replace(current) {
                    st.apply_end(&e);
                }
                if before != (st.ended_at, st.end_status.clone()) {
                    out.ended.retain(|x| x.id != sid);
                    out.ended.push(Ended {
                        id: sid,
                        trace: input.trace,
                        new_end: Some(e.status.as_str()),
                    });
                }
            }
            Record::Event(e) => {
                // An event after the end (a timed-out session that was
                // only idle, a slow producer): the summary changes, so the
                // session is judged again, once per batch.
                if st.is_ended() && !out.ended.iter().any(|x| x.id == sid) {
                    out.ended.push(Ended {
                        id: sid,
                        trace: input.trace.clone(),
                        new_end: None,
                    });
                }
                let fx = st.apply_event(&e, &self.engine);
                match fx.lateness {
                    Lateness::OnTime => {}
                    Lateness::Late => out.late += 1,
                    Lateness::TooLate => out.too_late += 1,
                }
                let tenant = e.tenant.to_string();
                for (cause, effect) in fx.retracted {
                    out.correlations.retract(cause, effect);
                }
                for c in fx.correlations {
                    out.correlations.upsert(CorrelationRow {
                        tenant: tenant.clone(),
                        session_id: sid,
                        cause: c.cause,
                        effect: c.effect,
                        match_kind: c.match_kind.as_str(),
                        file_path: c.file_path,
                        gap_ms: c.gap_ms,
                        confidence: c.confidence,
                        cause_at: ts(c.cause_at),
                        effect_at: ts(c.effect_at),
                        fixed_by: None,
                        fixed_at: None,
                    });
                }
                out.fixes.extend(
                    fx.fixes
                        .into_iter()
                        .map(|f| (f.cause, f.effect, f.fixed_by, ts(f.fixed_at))),
                );
                if let Some(o) = fx.occurrence {
                    let template = self.mask_rules.template_of(&tenant, &o.message);
                    add_occurrence(out, template, tenant, sid, &o.message, ts(o.t));
                }
            }
        }
        if out.touched.last() != Some(&sid) {
            out.touched.push(sid);
        }
        Ok(())
    }

    async fn write<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        out: &'a mut Batch,
        ctx: &'a WriteCtx<'a>,
        touched: &'a [&'a Session<SessionState>],
    ) -> Result<Vec<NewOutboxRecord>, StepError> {
        let deltas: Vec<TemplateDelta> = out.templates.values().cloned().collect();
        out.new_templates = crate::clusters::record(conn, &deltas, &self.mask_rules).await?;
        let (mut rows, retracted) = std::mem::take(&mut out.correlations).into_parts();
        let fixes = derived::fold_fixes(&mut rows, std::mem::take(&mut out.fixes));
        derived::delete_correlations(conn, &retracted).await?;
        derived::insert_correlations(conn, &rows).await?;
        derived::apply_fixes(conn, &fixes).await?;
        out.written = rows;
        let mut summaries = Vec::with_capacity(touched.len());
        let mut notices = Vec::new();
        for s in touched {
            let st = &s.state;
            let sum = Summary::compute(&st.counters, st.started_at, st.ended_at);
            summaries.push(summary_row(s.id, &sum, st.is_ended()));
            if let Some(x) = out.ended.iter().find(|x| x.id == s.id) {
                notices.extend(self.session_ended(s, &sum, x.trace.as_ref())?);
            }
        }
        // Session rows last, locked in id order only from here to the
        // commit (the raw sink writes the same rows).
        ctx.lock_sessions(conn, &out.touched).await?;
        derived::update_summaries(conn, &summaries).await?;
        Ok(notices)
    }

    fn committed(&self, out: Batch) {
        for c in &out.written {
            metrics::CORRELATIONS
                .with_label_values(&[c.match_kind])
                .inc();
        }
        metrics::LATE_EVENTS
            .with_label_values(&["accepted"])
            .inc_by(out.late);
        metrics::LATE_EVENTS
            .with_label_values(&["too_late"])
            .inc_by(out.too_late);
        metrics::CLUSTERS_CREATED
            .with_label_values(&[NAME])
            .inc_by(out.new_templates);
        metrics::CLUSTER_OCCURRENCES
            .with_label_values(&[NAME])
            .inc_by(out.templates.values().map(|d| d.count as u64).sum());
        for x in &out.ended {
            match x.new_end {
                Some(status) => metrics::SESSIONS_ENDED.with_label_values(&[status]).inc(),
                None => metrics::SESSION_REJUDGES
                    .with_label_values(&["late_event"])
                    .inc(),
            }
        }
    }

    fn finished(state: &SessionState) -> bool {
        state.is_ended()
    }
}

fn add_occurrence(
    out: &mut Batch,
    template: achilles_cluster::Template,
    tenant: String,
    sid: Uuid,
    message: &str,
    at: DateTime<Utc>,
) {
    let tid = template.id().to_string();
    let d = out
        .templates
        .entry((tenant.clone(), tid.clone(), sid))
        .or_insert_with(|| TemplateDelta {
            tenant,
            template_id: tid,
            template: template.text().to_owned(),
            session_id: sid,
            count: 0,
            first_seen: at,
            last_seen: at,
            sample: message.to_owned(),
        });
    d.count += 1;
    d.first_seen = d.first_seen.min(at);
    d.last_seen = d.last_seen.max(at);
}

fn summary_row(id: Uuid, s: &Summary, fin: bool) -> SummaryRow {
    SummaryRow {
        session_id: id,
        event_count: s.event_count,
        error_count: s.error_count,
        error_density: s.error_density,
        agent_activity_score: s.agent_activity_score,
        duration_ms: s.duration_ms,
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
        cost_usd: s.cost_usd,
        first_event_at: s.first_t.map(ts),
        last_event_at: s.last_t.map(ts),
        summary_final: fin,
    }
}

impl Processor {
    fn session_ended(
        &self,
        s: &Session<SessionState>,
        sum: &Summary,
        trace: Option<&SpanContext>,
    ) -> Result<Option<NewOutboxRecord>, StepError> {
        let st = &s.state;
        let (Some(status), Some(ended_at)) = (
            st.end_status.as_deref().and_then(SessionStatus::parse),
            st.ended_at,
        ) else {
            return Ok(None);
        };
        let record = SessionEnded {
            tenant: TenantId::clone(&s.tenant),
            session_id: SessionId::from_uuid(s.id),
            status,
            ended_at: ts(ended_at),
            processed_at: Utc::now(),
            event_count: sum.event_count,
            error_count: sum.error_count,
        };
        let headers = trace
            .map(|sc| {
                telemetry::header_values(sc)
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v))
                    .collect()
            })
            .unwrap_or_default();
        Ok(Some(NewOutboxRecord {
            topic: self.topics.name(Topic::SessionEnded),
            key: s.id.to_string(),
            payload: record.encode()?,
            headers,
        }))
    }
}
