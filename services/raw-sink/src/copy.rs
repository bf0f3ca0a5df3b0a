//! The fast path of landing: `COPY` a batch of events into `events`.
//!
//! `INSERT ... SELECT FROM UNNEST(...) ON CONFLICT DO NOTHING` costs
//! Postgres a speculative check of both unique indexes per row on top of
//! the insert, plus parsing thirteen parameter arrays; it was the single
//! largest statement under load (bench/README.md). A batch almost never
//! holds an event that is already stored: the positions committed with
//! each batch mean replays are skipped before they get here, and the API
//! drops retried duplicates it remembers. So landing first tries `COPY`
//! inside a savepoint; only when a unique key refuses it (a duplicate that
//! slipped through, or an event id reused for other content) does it roll
//! back to the savepoint and take the `INSERT ... ON CONFLICT` path, which
//! sorts out duplicates from id conflicts. Either way the rows and the
//! outcome are the same.

use std::fmt::Write as _;

use chrono::{DateTime, SecondsFormat, Utc};
use sqlx::PgConnection;

use achilles_core::model::Event;

/// Appends `s` as a COPY text field (backslash escapes).
fn field(out: &mut String, s: &str) {
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
}

fn time(out: &mut String, t: DateTime<Utc>) {
    out.push_str(&t.to_rfc3339_opts(SecondsFormat::Micros, true));
}

/// The COPY text of `events`, one line per event, in the column order of
/// [`COPY_EVENTS`].
pub fn copy_text(events: &[(&Event, DateTime<Utc>)]) -> String {
    let mut out = String::with_capacity(events.len() * 700);
    for (e, ingested_at) in events {
        let _ = write!(out, "{}\t", e.id);
        out.push_str(&e.hash.to_hex());
        out.push('\t');
        field(&mut out, e.tenant.as_str());
        let _ = write!(out, "\t{}\t", e.session_id);
        time(&mut out, e.occurred_at);
        out.push('\t');
        time(&mut out, *ingested_at);
        out.push('\t');
        out.push_str(e.kind().as_str());
        out.push('\t');
        out.push_str(e.actor.as_str());
        out.push('\t');
        match e.parent_id {
            Some(p) => {
                let _ = write!(out, "{p}");
            }
            None => out.push_str("\\N"),
        }
        out.push_str(if e.payload.is_failure() {
            "\tt\t"
        } else {
            "\tf\t"
        });
        match e.payload.file_path() {
            Some(p) => field(&mut out, p),
            None => out.push_str("\\N"),
        }
        out.push('\t');
        field(&mut out, &e.payload.data().to_string());
        out.push('\t');
        field(
            &mut out,
            &serde_json::Value::Object(e.attributes.clone()).to_string(),
        );
        out.push('\n');
    }
    out
}

pub const COPY_EVENTS: &str = "COPY events (id, event_hash, tenant_id, session_id, occurred_at, \
     ingested_at, kind, actor, parent_id, is_failure, file_path, data, attributes) FROM STDIN";

/// Copies `events` in; `Ok(false)` when a unique key refused the batch
/// (nothing was written: the caller takes the `ON CONFLICT` path).
pub async fn try_copy(
    conn: &mut PgConnection,
    events: &[(&Event, DateTime<Utc>)],
) -> Result<bool, sqlx::Error> {
    sqlx::query("SAVEPOINT landing_copy")
        .execute(&mut *conn)
        .await?;
    let text = copy_text(events);
    let copied = async {
        let mut copy = conn.copy_in_raw(COPY_EVENTS).await?;
        copy.send(text.as_bytes()).await?;
        copy.finish().await
    }
    .await;
    match copied {
        Ok(_) => {
            sqlx::query("RELEASE SAVEPOINT landing_copy")
                .execute(&mut *conn)
                .await?;
            Ok(true)
        }
        Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("23505") => {
            sqlx::query("ROLLBACK TO SAVEPOINT landing_copy")
                .execute(&mut *conn)
                .await?;
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_fields_are_escaped() {
        let mut out = String::new();
        field(&mut out, "a\tb\nc\\d\re");
        assert_eq!(out, "a\\tb\\nc\\\\d\\re");
    }
}
