//! Writes of the stream processor: correlations, fixes and session
//! summaries. All run in the caller's transaction (the runtime's
//! exactly-once step), which also carries the positions.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

/// One correlation row.
#[derive(Debug, Clone)]
pub struct CorrelationRow {
    pub tenant: String,
    pub session_id: Uuid,
    pub cause: Uuid,
    pub effect: Uuid,
    pub match_kind: &'static str,
    pub file_path: String,
    pub gap_ms: i64,
    pub confidence: f64,
    pub cause_at: DateTime<Utc>,
    pub effect_at: DateTime<Utc>,
    /// Known already when the fix arrived in the same batch.
    pub fixed_by: Option<Uuid>,
    pub fixed_at: Option<DateTime<Utc>>,
}

/// A batch's correlation changes in the order the engine made them: the
/// last word on a (cause, effect) pair wins — a row to upsert, or a
/// retraction (the pair no longer holds, e.g. a later-arriving edit of the
/// file came between the cause and the failure).
#[derive(Debug, Default)]
pub struct CorrelationChanges {
    last: BTreeMap<(Uuid, Uuid), Option<CorrelationRow>>,
}

impl CorrelationChanges {
    pub fn upsert(&mut self, row: CorrelationRow) {
        self.last.insert((row.cause, row.effect), Some(row));
    }

    pub fn retract(&mut self, cause: Uuid, effect: Uuid) {
        self.last.insert((cause, effect), None);
    }

    /// (rows to upsert, pairs to delete).
    pub fn into_parts(self) -> (Vec<CorrelationRow>, Vec<(Uuid, Uuid)>) {
        let mut rows = Vec::new();
        let mut gone = Vec::new();
        for (key, v) in self.last {
            match v {
                Some(r) => rows.push(r),
                None => gone.push(key),
            }
        }
        (rows, gone)
    }
}

/// Deletes retracted correlations.
pub async fn delete_correlations(
    conn: &mut PgConnection,
    pairs: &[(Uuid, Uuid)],
) -> Result<(), sqlx::Error> {
    if pairs.is_empty() {
        return Ok(());
    }
    let causes: Vec<Uuid> = pairs.iter().map(|p| p.0).collect();
    let effects: Vec<Uuid> = pairs.iter().map(|p| p.1).collect();
    sqlx::query(
        "DELETE FROM event_correlations c
         USING UNNEST($1::uuid[], $2::uuid[]) AS t(cause, effect)
         WHERE c.cause_event_id = t.cause AND c.effect_event_id = t.effect",
    )
    .bind(&causes)
    .bind(&effects)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A fix: (cause, effect, fixed by, fixed at).
pub type FixRow = (Uuid, Uuid, Uuid, DateTime<Utc>);

/// Folds a batch's fixes into the correlations created in the same batch
/// and returns the rest (one per pair, the earliest), for
/// [`apply_fixes`]. Most correlations of a busy session are fixed within a
/// couple of minutes, i.e. often within the batch that created them:
/// writing the row once instead of inserting and then updating it halves
/// those writes. It also leaves at most one update per pair, which
/// `UPDATE ... FROM` needs (with two matching source rows it applies an
/// arbitrary one, not necessarily the earliest).
pub fn fold_fixes(rows: &mut [CorrelationRow], fixes: Vec<FixRow>) -> Vec<FixRow> {
    let mut best: HashMap<(Uuid, Uuid), (DateTime<Utc>, Uuid)> = HashMap::new();
    for (cause, effect, by, at) in fixes {
        let e = best.entry((cause, effect)).or_insert((at, by));
        if (at, by) < *e {
            *e = (at, by);
        }
    }
    for r in rows.iter_mut() {
        if let Some((at, by)) = best.remove(&(r.cause, r.effect)) {
            r.fixed_at = Some(at);
            r.fixed_by = Some(by);
        }
    }
    best.into_iter()
        .map(|((cause, effect), (at, by))| (cause, effect, by, at))
        .collect()
}

/// Inserts correlations, or updates the kind, confidence and times of an
/// existing pair (a fix only ever moves earlier). One row per pair.
pub async fn insert_correlations(
    conn: &mut PgConnection,
    rows: &[CorrelationRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let col = |f: fn(&CorrelationRow) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let tenants = col(|r| r.tenant.clone());
    let kinds = col(|r| r.match_kind.to_owned());
    let paths = col(|r| r.file_path.clone());
    let sessions: Vec<Uuid> = rows.iter().map(|r| r.session_id).collect();
    let causes: Vec<Uuid> = rows.iter().map(|r| r.cause).collect();
    let effects: Vec<Uuid> = rows.iter().map(|r| r.effect).collect();
    let gaps: Vec<i64> = rows.iter().map(|r| r.gap_ms).collect();
    let conf: Vec<f64> = rows.iter().map(|r| r.confidence).collect();
    let cause_at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.cause_at).collect();
    let effect_at: Vec<DateTime<Utc>> = rows.iter().map(|r| r.effect_at).collect();
    let fixed_by: Vec<Option<Uuid>> = rows.iter().map(|r| r.fixed_by).collect();
    let fixed_at: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.fixed_at).collect();
    sqlx::query(
        "INSERT INTO event_correlations (tenant_id, session_id, cause_event_id, effect_event_id, match_kind,
                                         file_path, gap_ms, confidence, cause_at, effect_at,
                                         fixed_by_event_id, fixed_at)
         SELECT * FROM UNNEST($1::text[], $2::uuid[], $3::uuid[], $4::uuid[], $5::text[], $6::text[],
                              $7::bigint[], $8::float8[], $9::timestamptz[], $10::timestamptz[],
                              $11::uuid[], $12::timestamptz[])
         ON CONFLICT (cause_event_id, effect_event_id) DO UPDATE SET
             match_kind = EXCLUDED.match_kind, file_path = EXCLUDED.file_path,
             gap_ms = EXCLUDED.gap_ms, confidence = EXCLUDED.confidence,
             cause_at = EXCLUDED.cause_at, effect_at = EXCLUDED.effect_at,
             fixed_by_event_id = CASE WHEN EXCLUDED.fixed_at IS NOT NULL AND (event_correlations.fixed_at IS NULL
                     OR (EXCLUDED.fixed_at, EXCLUDED.fixed_by_event_id) < (event_correlations.fixed_at, event_correlations.fixed_by_event_id))
                 THEN EXCLUDED.fixed_by_event_id ELSE event_correlations.fixed_by_event_id END,
             fixed_at = CASE WHEN EXCLUDED.fixed_at IS NOT NULL AND (event_correlations.fixed_at IS NULL
                     OR (EXCLUDED.fixed_at, EXCLUDED.fixed_by_event_id) < (event_correlations.fixed_at, event_correlations.fixed_by_event_id))
                 THEN EXCLUDED.fixed_at ELSE event_correlations.fixed_at END",
    )
    .bind(&tenants)
    .bind(&sessions)
    .bind(&causes)
    .bind(&effects)
    .bind(&kinds)
    .bind(&paths)
    .bind(&gaps)
    .bind(&conf)
    .bind(&cause_at)
    .bind(&effect_at)
    .bind(&fixed_by)
    .bind(&fixed_at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Records fixes; a fix only ever moves earlier (ties broken by the
/// fixing event's id, as the engine does).
pub async fn apply_fixes(conn: &mut PgConnection, fixes: &[FixRow]) -> Result<(), sqlx::Error> {
    if fixes.is_empty() {
        return Ok(());
    }
    let causes: Vec<Uuid> = fixes.iter().map(|f| f.0).collect();
    let effects: Vec<Uuid> = fixes.iter().map(|f| f.1).collect();
    let by: Vec<Uuid> = fixes.iter().map(|f| f.2).collect();
    let at: Vec<DateTime<Utc>> = fixes.iter().map(|f| f.3).collect();
    sqlx::query(
        "UPDATE event_correlations c SET fixed_by_event_id = t.by, fixed_at = t.at
         FROM UNNEST($1::uuid[], $2::uuid[], $3::uuid[], $4::timestamptz[]) AS t(cause, effect, by, at)
         WHERE c.cause_event_id = t.cause AND c.effect_event_id = t.effect
           AND (c.fixed_at IS NULL OR (c.fixed_at, c.fixed_by_event_id) > (t.at, t.by))",
    )
    .bind(&causes)
    .bind(&effects)
    .bind(&by)
    .bind(&at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The summary columns of one session.
#[derive(Debug, Clone)]
pub struct SummaryRow {
    pub session_id: Uuid,
    pub event_count: i64,
    pub error_count: i64,
    pub error_density: f64,
    pub agent_activity_score: f64,
    pub duration_ms: Option<i64>,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: f64,
    pub first_event_at: Option<DateTime<Utc>>,
    pub last_event_at: Option<DateTime<Utc>>,
    pub summary_final: bool,
}

pub async fn update_summaries(
    conn: &mut PgConnection,
    rows: &[SummaryRow],
) -> Result<(), sqlx::Error> {
    if rows.is_empty() {
        return Ok(());
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.session_id).collect();
    let ec: Vec<i64> = rows.iter().map(|r| r.event_count).collect();
    let er: Vec<i64> = rows.iter().map(|r| r.error_count).collect();
    let ed: Vec<f64> = rows.iter().map(|r| r.error_density).collect();
    let act: Vec<f64> = rows.iter().map(|r| r.agent_activity_score).collect();
    let dur: Vec<Option<i64>> = rows.iter().map(|r| r.duration_ms).collect();
    let it: Vec<i64> = rows.iter().map(|r| r.input_tokens).collect();
    let ot: Vec<i64> = rows.iter().map(|r| r.output_tokens).collect();
    let cost: Vec<f64> = rows.iter().map(|r| r.cost_usd).collect();
    let first: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.first_event_at).collect();
    let last: Vec<Option<DateTime<Utc>>> = rows.iter().map(|r| r.last_event_at).collect();
    let fin: Vec<bool> = rows.iter().map(|r| r.summary_final).collect();
    sqlx::query(
        "UPDATE sessions s SET event_count = t.ec, error_count = t.er, error_density = t.ed,
                agent_activity_score = t.act, duration_ms = t.dur, input_tokens = t.it,
                output_tokens = t.ot, cost_usd = t.cost, first_event_at = t.first,
                last_event_at = t.last, summary_final = t.fin, updated_at = now()
         FROM UNNEST($1::uuid[], $2::bigint[], $3::bigint[], $4::float8[], $5::float8[], $6::bigint[],
                     $7::bigint[], $8::bigint[], $9::float8[], $10::timestamptz[], $11::timestamptz[], $12::bool[])
              AS t(id, ec, er, ed, act, dur, it, ot, cost, first, last, fin)
         WHERE s.id = t.id",
    )
    .bind(&ids)
    .bind(&ec)
    .bind(&er)
    .bind(&ed)
    .bind(&act)
    .bind(&dur)
    .bind(&it)
    .bind(&ot)
    .bind(&cost)
    .bind(&first)
    .bind(&last)
    .bind(&fin)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cause: Uuid, effect: Uuid) -> CorrelationRow {
        CorrelationRow {
            tenant: "acme".into(),
            session_id: Uuid::nil(),
            cause,
            effect,
            match_kind: "error_location",
            file_path: "src/a.rs".into(),
            gap_ms: 1,
            confidence: 0.9,
            cause_at: DateTime::UNIX_EPOCH,
            effect_at: DateTime::UNIX_EPOCH,
            fixed_by: None,
            fixed_at: None,
        }
    }

    #[test]
    fn fixes_of_new_rows_are_folded_in_and_the_earliest_fix_wins() {
        let (a, b, c, d) = (
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
            Uuid::now_v7(),
        );
        let (s1, s2) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let t = |s| DateTime::from_timestamp(s, 0).unwrap();
        let mut rows = vec![row(a, b)];
        let rest = fold_fixes(
            &mut rows,
            vec![
                (a, b, s2, t(20)),
                (a, b, s1, t(10)), // earlier: wins
                (c, d, s2, t(30)),
                (c, d, s1, t(30)), // same time, smaller id: wins
            ],
        );
        assert_eq!(
            (rows[0].fixed_by, rows[0].fixed_at),
            (Some(s1), Some(t(10)))
        );
        assert_eq!(rest, vec![(c, d, s1, t(30))], "one update per older pair");
    }
}
