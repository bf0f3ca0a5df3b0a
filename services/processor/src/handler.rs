//! One batch of the events topic, applied exactly once.
//!
//! Everything a batch changes commits in one Postgres transaction: the
//! derived rows, the per-session state, the outbox records (session-ended
//! notices and dead letters) *and* the consumer's position. The position is
//! locked at the start of the transaction, so records at or after it are
//! applied and anything before it is skipped: a replay after a crash, or a
//! second instance briefly holding the same partition during a rebalance,
//! changes nothing. Event hashes are marked as seen in the same transaction,
//! so an event published twice is applied once.
//!
//! Outbox records keep the trace context of the record that caused them: a
//! dead letter its source record's, a session-ended notice the session
//! end's, so the monitoring agent's report joins the session end's trace.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use rdkafka::message::{Message, OwnedMessage};
use sqlx::PgPool;
use tokio::sync::Notify;
use uuid::Uuid;

use achilles_core::db::clusters::TemplateDelta;
use achilles_core::db::{self, derived, offsets, outbox::NewOutboxRecord};
use achilles_core::error::Classify;
use achilles_core::metrics;
use achilles_core::model::{Limits, SessionId, SessionStatus, TenantId};
use achilles_core::telemetry::{self, SpanContext};
use achilles_core::topics::{Topic, Topics};
use achilles_core::wire::dead_letter::DeadLetter;
use achilles_core::wire::session_ended::SessionEnded;
use achilles_core::wire::{decode_envelope, Envelope, Record};
use achilles_runtime::{BatchHandler, HandlerError};

use crate::engine::{EngineConfig, Lateness, SessionState, Summary};

pub const NAME: &str = "processor";

pub struct Processor {
    pub pool: PgPool,
    pub engine: EngineConfig,
    pub limits: Limits,
    pub group: String,
    pub topics: Topics,
    pub outbox_wake: Arc<Notify>,
    /// `[cluster]` masking rules, compiled at start-up.
    pub mask_rules: Arc<achilles_cluster::RuleSet>,
}

fn ts(us: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_micros(us).unwrap_or_default()
}

/// Occurrence aggregate key: (tenant, template id, session).
type TemplateKey = (String, String, Uuid);

impl BatchHandler for Processor {
    async fn handle(&self, batch: &[OwnedMessage]) -> Result<(), HandlerError> {
        let started = Instant::now();
        let mut tx = self.pool.begin().await?;

        // 1. Our position, locked: skip what an earlier commit applied.
        let topic = self.topics.name(Topic::Events);
        let partitions: Vec<i32> = batch
            .iter()
            .map(Message::partition)
            .collect::<HashSet<_>>()
            .into_iter()
            .collect();
        let positions = offsets::lock_offsets(&mut tx, &self.group, &topic, &partitions).await?;
        let fresh: Vec<&OwnedMessage> = batch
            .iter()
            .filter(|m| m.offset() >= positions.get(&m.partition()).copied().unwrap_or(0))
            .collect();

        // 2. Decode; undecodable records become dead letters.
        let mut dead: Vec<(&OwnedMessage, &'static str, String)> = Vec::new();
        let mut records: Vec<(&OwnedMessage, Envelope)> = Vec::with_capacity(fresh.len());
        for m in fresh {
            metrics::CONSUMED.with_label_values(&[NAME, "events"]).inc();
            match decode_envelope(m.payload().unwrap_or_default(), &self.limits) {
                Ok(env) => records.push((m, env)),
                Err(e) => dead.push((m, e.reason_code(), e.to_string())),
            }
        }

        // 3. Session rows exist (placeholders if the raw sink is behind) and
        //    belong to the record's tenant.
        let mut placeholders: HashMap<Uuid, (&str, DateTime<Utc>)> = HashMap::new();
        for (_, env) in &records {
            let at = match &env.record {
                Record::SessionStart(s) => s.started_at,
                Record::Event(e) => e.occurred_at,
                Record::SessionEnd(e) => e.ended_at,
            };
            placeholders
                .entry(env.record.session_id().as_uuid())
                .or_insert((env.record.tenant().as_str(), at));
        }
        let rows: Vec<_> = placeholders
            .iter()
            .map(|(id, (t, at))| (*id, *t, *at))
            .collect();
        db::ensure_placeholders(&mut tx, &rows).await?;
        let ids: Vec<Uuid> = placeholders.keys().copied().collect();
        let owners = db::session_owners(&mut tx, &ids).await?;
        records.retain(|(m, env)| {
            let sid = env.record.session_id().as_uuid();
            let ok = owners.get(&sid).map(String::as_str) == Some(env.record.tenant().as_str());
            if !ok {
                dead.push((
                    m,
                    "session_tenant_mismatch",
                    format!("session {sid} belongs to another tenant"),
                ));
            }
            ok
        });

        // 4. Events applied before (same hash) are skipped.
        let hashes: Vec<(String, Uuid)> = records
            .iter()
            .filter_map(|(_, env)| match &env.record {
                Record::Event(e) => Some((e.hash.to_hex(), e.session_id.as_uuid())),
                _ => None,
            })
            .collect();
        let mut unseen = derived::mark_seen(&mut tx, &hashes).await?;

        // 5. Apply, session by session state, in partition order.
        let stored = derived::load_states(&mut tx, &ids).await?;
        let mut states: BTreeMap<Uuid, SessionState> = BTreeMap::new();
        for id in &ids {
            let st = stored
                .get(id)
                .and_then(|v| serde_json::from_value(v.clone()).ok())
                .unwrap_or_default();
            states.insert(*id, st);
        }
        let mut touched: HashSet<Uuid> = HashSet::new();
        let mut newly_ended: Vec<Uuid> = Vec::new();
        let mut end_traces: HashMap<Uuid, SpanContext> = HashMap::new();
        let mut correlations = Vec::new();
        let mut fixes = Vec::new();
        let mut templates: HashMap<TemplateKey, TemplateDelta> = HashMap::new();
        let mut freshness = Vec::new();
        for (m, env) in &records {
            let sid = env.record.session_id().as_uuid();
            // Every session id in `records` was loaded into `states` above.
            let Some(st) = states.get_mut(&sid) else {
                continue;
            };
            match &env.record {
                Record::SessionStart(s) => st.apply_start(s),
                Record::SessionEnd(e) => {
                    let before = (st.ended_at, st.end_status.clone());
                    st.apply_end(e);
                    if before != (st.ended_at, st.end_status.clone()) {
                        newly_ended.push(sid);
                        if let Some(sc) = telemetry::kafka_context(*m) {
                            end_traces.insert(sid, sc);
                        }
                    }
                }
                Record::Event(e) => {
                    // Removing makes a second copy in this same batch a
                    // duplicate too.
                    if !unseen.remove(&e.hash.to_hex()) {
                        continue;
                    }
                    let fx = st.apply_event(e, &self.engine);
                    match fx.lateness {
                        Lateness::OnTime => {}
                        Lateness::Late => {
                            metrics::LATE_EVENTS.with_label_values(&["accepted"]).inc()
                        }
                        Lateness::TooLate => {
                            metrics::LATE_EVENTS.with_label_values(&["too_late"]).inc()
                        }
                    }
                    for c in fx.correlations {
                        metrics::CORRELATIONS
                            .with_label_values(&[c.match_kind.as_str()])
                            .inc();
                        correlations.push(derived::CorrelationRow {
                            tenant: e.tenant.to_string(),
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
                    fixes.extend(
                        fx.fixes
                            .into_iter()
                            .map(|f| (f.cause, f.effect, f.fixed_by, ts(f.fixed_at))),
                    );
                    if let Some(o) = fx.occurrence {
                        let template = self.mask_rules.template_of(e.tenant.as_str(), &o.message);
                        let tid = template.id().to_string();
                        let at = ts(o.t);
                        let key = (e.tenant.to_string(), tid.clone(), sid);
                        let d = templates.entry(key).or_insert_with(|| TemplateDelta {
                            tenant: e.tenant.to_string(),
                            template_id: tid,
                            template: template.text().to_owned(),
                            session_id: sid,
                            count: 0,
                            first_seen: at,
                            last_seen: at,
                            sample: o.message.clone(),
                        });
                        d.count += 1;
                        d.first_seen = d.first_seen.min(at);
                        d.last_seen = d.last_seen.max(at);
                    }
                    freshness.push(env.ingested_at);
                }
            }
            touched.insert(sid);
        }

        // 6. Write everything, then the position, in this one transaction.
        let deltas: Vec<_> = templates.into_values().collect();
        let occurrences: i64 = deltas.iter().map(|d| d.count).sum();
        let new_templates = crate::clusters::record(&mut tx, &deltas).await?;
        let fixes = derived::fold_fixes(&mut correlations, fixes);
        derived::insert_correlations(&mut tx, &correlations).await?;
        derived::apply_fixes(&mut tx, &fixes).await?;
        let mut summaries = Vec::new();
        let mut saved = Vec::new();
        let mut notices = Vec::new();
        for sid in &touched {
            let st = &states[sid];
            let s = Summary::compute(&st.counters, st.started_at, st.ended_at);
            summaries.push(derived::SummaryRow {
                session_id: *sid,
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
                summary_final: st.is_ended(),
            });
            if newly_ended.contains(sid) {
                notices.push(self.session_ended(*sid, st, &s, end_traces.get(sid)));
            }
            // Serialising plain structs of numbers and strings cannot fail.
            let value = serde_json::to_value(st).expect("session state serialises");
            saved.push((*sid, st.tenant.as_str(), value));
        }
        derived::update_summaries(&mut tx, &summaries).await?;
        derived::save_states(&mut tx, &saved).await?;
        let mut out: Vec<NewOutboxRecord> = notices.into_iter().flatten().collect();
        for (m, code, reason) in &dead {
            out.push(self.dead_letter(m, code, reason)?);
        }
        db::outbox::outbox_add(&mut tx, &out).await?;
        let mut next: HashMap<i32, i64> = HashMap::new();
        for m in batch {
            let e = next.entry(m.partition()).or_insert(0);
            *e = (*e).max(m.offset() + 1);
        }
        let next: Vec<(i32, i64)> = next.into_iter().collect();
        offsets::save_offsets(&mut tx, &self.group, &topic, &next).await?;
        tx.commit().await?;

        let now = Utc::now();
        metrics::DB_WRITE
            .with_label_values(&[NAME])
            .observe(started.elapsed().as_secs_f64());
        metrics::CLUSTERS_CREATED
            .with_label_values(&[NAME])
            .inc_by(new_templates);
        metrics::CLUSTER_OCCURRENCES
            .with_label_values(&[NAME])
            .inc_by(occurrences as u64);
        for (code, n) in dead.iter().fold(HashMap::<&str, u64>::new(), |mut m, d| {
            *m.entry(d.1).or_default() += 1;
            m
        }) {
            metrics::DEAD_LETTERED
                .with_label_values(&[NAME, code])
                .inc_by(n);
        }
        for sid in &newly_ended {
            if let Some(status) = &states[sid].end_status {
                metrics::SESSIONS_ENDED.with_label_values(&[status]).inc();
            }
        }
        for t in freshness {
            metrics::FRESHNESS
                .with_label_values(&["derived"])
                .observe((now - t).to_std().unwrap_or_default().as_secs_f64());
        }
        if !out.is_empty() {
            self.outbox_wake.notify_one();
        }
        Ok(())
    }
}

impl Processor {
    fn session_ended(
        &self,
        sid: Uuid,
        st: &SessionState,
        s: &Summary,
        trace: Option<&SpanContext>,
    ) -> Option<NewOutboxRecord> {
        let record = SessionEnded {
            tenant: TenantId::parse(&st.tenant).ok()?,
            session_id: SessionId::from_uuid(sid),
            status: st.end_status.as_deref().and_then(SessionStatus::parse)?,
            ended_at: ts(st.ended_at?),
            processed_at: Utc::now(),
            event_count: s.event_count,
            error_count: s.error_count,
        };
        Some(NewOutboxRecord {
            topic: self.topics.name(Topic::SessionEnded),
            key: sid.to_string(),
            payload: record.encode().ok()?,
            headers: trace.map(trace_headers).unwrap_or_default(),
        })
    }

    fn dead_letter(
        &self,
        m: &OwnedMessage,
        code: &'static str,
        reason: &str,
    ) -> Result<NewOutboxRecord, achilles_core::wire::codec::EncodeError> {
        let trace = telemetry::kafka_context(m);
        tracing::warn!(
            consumer = NAME,
            reason_code = code,
            reason,
            session_id = telemetry::record_session_id(m),
            trace_id = trace
                .as_ref()
                .map(|sc| telemetry::trace_id_hex(sc.trace_id())),
            partition = m.partition(),
            offset = m.offset(),
            "dead-lettering record"
        );
        let dl = DeadLetter {
            source_topic: m.topic(),
            source_partition: m.partition(),
            source_offset: m.offset(),
            consumer_group: &self.group,
            reason_code: code,
            reason: reason.to_owned(),
            failed_at: Utc::now(),
            key: m.key(),
            payload: m.payload().unwrap_or_default(),
        };
        Ok(NewOutboxRecord {
            topic: self.topics.name(Topic::DeadLetter),
            key: m
                .key()
                .map(|k| String::from_utf8_lossy(k).into_owned())
                .unwrap_or_default(),
            payload: dl.encode()?,
            headers: dl
                .headers()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v))
                .chain(trace.as_ref().map(trace_headers).unwrap_or_default())
                .collect(),
        })
    }
}

fn trace_headers(sc: &SpanContext) -> Vec<(String, String)> {
    telemetry::header_values(sc)
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect()
}
