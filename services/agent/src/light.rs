//! Light mode: each event folded into its session's rolling state and
//! judged by the evaluation graph, as a [`Stage`] of the runtime's
//! exactly-once step.
//!
//! The batch's transaction carries the insights' rows, the outbox records
//! announcing raised, escalated and resolved insights, the sessions' states
//! and the positions (all the runtime's but the first two). A replay after
//! a crash or a rebalance therefore changes nothing, and an insight is
//! published once per transition (at least once on the wire, since the
//! outbox re-publishes after a crash).
//!
//! Records for a session owned by another tenant are skipped with a
//! warning: the raw sink and the processor already dead-letter exactly
//! those records from this topic, and a third copy would tell an operator
//! nothing new.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use achilles_core::db::outbox::NewOutboxRecord;
use achilles_core::metrics;
use achilles_core::model::{SessionId, TenantId};
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::codec::EncodeError;
use achilles_core::wire::insight::{InsightRecord, Transition};
use achilles_core::wire::Record;
use achilles_runtime::{Input, Refused, Session, Stage, StepError, WriteCtx};

use crate::db::{self, InsightWrite};
use crate::graph::{self, insight_id, Change, Decision, Graph, OpenInsight};
use crate::observe::Observed;

/// The `consumer` label of this loop's metrics.
pub const NAME: &str = "agent";

pub struct LightHandler {
    pub graph: Graph,
    pub topics: Topics,
}

/// An open insight as it was when the batch first touched its session.
type Seen = (String, String, i64);

/// What a batch decided.
#[derive(Default)]
pub struct Batch {
    decisions: Vec<(Uuid, String, Decision)>,
    /// Open insights of each touched session before the batch: whatever
    /// moved is written back once at the end of the batch.
    before: BTreeMap<Uuid, HashSet<Seen>>,
    raised: Vec<(String, &'static str)>,
}

fn ts(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

fn seen(s: &graph::Session) -> HashSet<Seen> {
    s.open
        .iter()
        .map(|o| (o.insight_type.clone(), o.dedup_key.clone(), o.last_seen_at))
        .collect()
}

impl Stage for LightHandler {
    type State = graph::Session;
    type Batch = Batch;
    const NAME: &'static str = NAME;
    const FRESHNESS: &'static str = "insight";
    const PARKS_FOREIGN: bool = false;

    fn new_state(&self) -> graph::Session {
        self.graph.fresh()
    }

    fn snapshot(&self, state: &graph::Session) -> graph::Session {
        self.graph.copy(state)
    }

    fn save_state(&self, state: &graph::Session) -> Result<String, EncodeError> {
        Ok(self.graph.save(state))
    }

    fn load_state(&self, text: &str) -> Result<graph::Session, String> {
        self.graph.load(text)
    }

    fn apply(
        &self,
        session: &mut Session<graph::Session>,
        input: Input,
        out: &mut Batch,
    ) -> Result<(), Refused> {
        let sid = session.id;
        let s = &mut session.state;
        out.before.entry(sid).or_insert_with(|| seen(s));
        s.tenant = input.record.tenant().to_string();
        match &input.record {
            Record::SessionStart(_) => {}
            Record::SessionEnd(_) => s.ended = true,
            Record::Event(e) => {
                let found = self.graph.step(s, &Observed::from_event(e));
                out.decisions
                    .extend(found.into_iter().map(|d| (sid, s.tenant.clone(), d)));
            }
        }
        Ok(())
    }

    async fn write<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        out: &'a mut Batch,
        _: &'a WriteCtx<'a>,
        touched: &'a [&'a Session<graph::Session>],
    ) -> Result<Vec<NewOutboxRecord>, StepError> {
        let decided_at = Utc::now();
        let mut writes: HashMap<Uuid, InsightWrite> = HashMap::new();
        let mut announce = Vec::new();
        for (sid, tenant, d) in &out.decisions {
            let w = to_write(*sid, tenant, &d.insight, d.resolved_at);
            let t = match d.change {
                Change::Raised => Transition::Raised,
                Change::Escalated => Transition::Escalated,
                Change::Resolved => Transition::Resolved,
            };
            if t == Transition::Raised {
                out.raised
                    .push((w.insight_type.clone(), d.insight.severity.as_str()));
            }
            announce.extend(self.announcement(&w, t, decided_at)?);
            writes.insert(w.id, w);
        }
        // Then the final state of every open insight that changed: it
        // supersedes the decisions' snapshots (a re-raise after a resolve
        // ends open, as it should).
        for s in touched {
            let before = out.before.get(&s.id);
            for o in &s.state.open {
                let key = (o.insight_type.clone(), o.dedup_key.clone(), o.last_seen_at);
                if !before.is_some_and(|b| b.contains(&key)) {
                    let w = to_write(s.id, &s.state.tenant, o, None);
                    writes.insert(w.id, w);
                }
            }
        }
        let writes: Vec<InsightWrite> = writes.into_values().collect();
        db::upsert_insights(conn, &writes).await?;
        Ok(announce)
    }

    fn committed(&self, out: Batch) {
        for (kind, severity) in &out.raised {
            metrics::INSIGHTS_RAISED
                .with_label_values(&[kind.as_str(), severity])
                .inc();
        }
    }

    fn finished(state: &graph::Session) -> bool {
        state.ended
    }
}

/// The row of an insight: open, or resolved at `resolved_at`.
fn to_write(sid: Uuid, tenant: &str, o: &OpenInsight, resolved_at: Option<i64>) -> InsightWrite {
    InsightWrite {
        id: insight_id(sid, &o.insight_type, &o.dedup_key),
        tenant: tenant.to_owned(),
        session_id: sid,
        insight_type: o.insight_type.clone(),
        dedup_key: o.dedup_key.clone(),
        severity: o.severity.as_str().to_owned(),
        status: if resolved_at.is_some() {
            "resolved"
        } else {
            "open"
        }
        .to_owned(),
        title: o.title.clone(),
        detail: o.detail.clone(),
        evidence: o.evidence.clone(),
        raised_at: ts(o.raised_at),
        last_seen_at: ts(o.last_seen_at),
        resolved_at: resolved_at.map(ts),
    }
}

impl LightHandler {
    fn announcement(
        &self,
        w: &InsightWrite,
        transition: Transition,
        decided_at: DateTime<Utc>,
    ) -> Result<Option<NewOutboxRecord>, EncodeError> {
        let Ok(tenant) = TenantId::parse(&w.tenant) else {
            return Ok(None);
        };
        let record = InsightRecord {
            id: w.id,
            tenant,
            session_id: SessionId::from_uuid(w.session_id),
            insight_type: w.insight_type.clone(),
            dedup_key: w.dedup_key.clone(),
            transition,
            status: w.status.clone(),
            severity: w.severity.clone(),
            title: w.title.clone(),
            detail: w.detail.clone(),
            evidence: w.evidence.clone(),
            raised_at: w.raised_at,
            last_seen_at: w.last_seen_at,
            resolved_at: w.resolved_at,
            decided_at,
        };
        Ok(Some(NewOutboxRecord {
            topic: self.topics.name(Topic::Insights),
            key: w.session_id.to_string(),
            payload: record.encode()?,
            headers: Vec::new(),
        }))
    }
}
