//! `achilles send FILE.jsonl`: stream events to the API in batches.
//!
//! Each line is one event object in the API's shape. Lines are sent in
//! batches (`--batch-size`); a 503 is retried with the server's
//! `Retry-After`, which is safe because the API dedups on the event hash.
//! Every rejected event is reported with its line number, and the command
//! exits non-zero if any was rejected.

use std::path::PathBuf;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{CliError, Client};

#[derive(Args)]
pub struct SendArgs {
    /// A JSON-lines file: one event per line (blank lines are skipped).
    pub file: PathBuf,
    /// Session id for events that name none.
    #[arg(long)]
    pub session: Option<String>,
    #[arg(long, default_value_t = 500)]
    pub batch_size: usize,
    /// Attempts per batch while the API answers 503.
    #[arg(long, default_value_t = 10)]
    pub attempts: u32,
    /// Shift every `occurred_at` by one offset so the latest event is
    /// "now", keeping the gaps: replays recorded sessions, which would
    /// otherwise fall outside the accepted time window.
    #[arg(long)]
    pub retime: bool,
}

/// Moves all event times by the same offset so the latest one is now.
fn retime(events: &mut [(usize, Value)]) -> Result<(), CliError> {
    let parse = |line: usize, v: &Value| {
        let raw = v["occurred_at"].as_str().ok_or_else(|| {
            CliError::Input(format!(
                "line {line}: --retime needs occurred_at on every event"
            ))
        })?;
        chrono::DateTime::parse_from_rfc3339(raw)
            .map(|t| t.with_timezone(&chrono::Utc))
            .map_err(|e| CliError::Input(format!("line {line}: occurred_at {raw:?}: {e}")))
    };
    let mut latest = None;
    for (line, v) in events.iter() {
        let t = parse(*line, v)?;
        latest = Some(latest.map_or(t, |l: chrono::DateTime<chrono::Utc>| l.max(t)));
    }
    let Some(latest) = latest else { return Ok(()) };
    let shift = chrono::Utc::now() - latest;
    for (line, v) in events.iter_mut() {
        let t = parse(*line, v)? + shift;
        v["occurred_at"] = Value::String(t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true));
    }
    Ok(())
}

#[derive(Default)]
struct Totals {
    accepted: u64,
    duplicates: u64,
    rejected: Vec<String>,
}

pub async fn run(client: &Client, a: SendArgs) -> Result<(), CliError> {
    let text = std::fs::read_to_string(&a.file)
        .map_err(|e| CliError::Input(format!("cannot read {}: {e}", a.file.display())))?;
    let mut events = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: Value = serde_json::from_str(line).map_err(|e| {
            CliError::Input(format!("{}:{}: not JSON: {e}", a.file.display(), i + 1))
        })?;
        events.push((i + 1, v));
    }
    if events.is_empty() {
        return Err(CliError::Input(format!(
            "{} has no events",
            a.file.display()
        )));
    }
    if a.retime {
        retime(&mut events)?;
    }
    let bar = ProgressBar::new(events.len() as u64);
    bar.set_style(
        ProgressStyle::with_template("{bar:40} {pos}/{len} events {per_sec} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let mut totals = Totals::default();
    for chunk in events.chunks(a.batch_size.max(1)) {
        let body = json!({
            "session_id": a.session,
            "events": chunk.iter().map(|(_, v)| v).collect::<Vec<_>>(),
        });
        let result = client
            .call_retrying(Method::POST, "/v1/events/batch", Some(&body), a.attempts)
            .await;
        let results = match result {
            Ok(v) => v["results"].clone(),
            // All rejected: the per-event results are in the error details.
            Err(CliError::Api {
                code,
                details: Some(d),
                ..
            }) if code == "all_rejected" => d,
            Err(e) => {
                bar.abandon();
                return Err(e);
            }
        };
        for r in results.as_array().into_iter().flatten() {
            let line = r["index"]
                .as_u64()
                .and_then(|i| chunk.get(i as usize))
                .map_or(0, |(l, _)| *l);
            match r["status"].as_str() {
                Some("accepted") => totals.accepted += 1,
                Some("duplicate") => totals.duplicates += 1,
                _ => {
                    for e in r["errors"].as_array().into_iter().flatten() {
                        totals.rejected.push(format!(
                            "line {line}: {}: {} ({})",
                            e["field"].as_str().unwrap_or(""),
                            e["message"].as_str().unwrap_or(""),
                            e["code"].as_str().unwrap_or("")
                        ));
                    }
                }
            }
        }
        bar.inc(chunk.len() as u64);
    }
    bar.finish_and_clear();
    eprintln!(
        "sent {} events: {} accepted, {} duplicates, {} rejected",
        events.len(),
        totals.accepted,
        totals.duplicates,
        events.len() as u64 - totals.accepted - totals.duplicates
    );
    if totals.rejected.is_empty() {
        Ok(())
    } else {
        for r in &totals.rejected {
            eprintln!("  {r}");
        }
        Err(CliError::Other("some events were rejected".into()))
    }
}
