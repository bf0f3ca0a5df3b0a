//! `achilles session report ID`: the session's report, readable in a
//! terminal (or as JSON with `--json`). Before the session ended and was
//! judged, shows what is known so far: summary fields, top clusters and
//! open insights.

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use crate::client::{CliError, Client};

#[derive(Args)]
pub struct ReportArgs {
    /// Session id.
    pub session: String,
    /// Print the API's summary document as JSON.
    #[arg(long)]
    pub json: bool,
}

pub async fn run(client: &Client, a: ReportArgs) -> Result<(), CliError> {
    let v = client
        .call_retrying(
            Method::GET,
            &format!("/v1/sessions/{}/summary", a.session),
            None,
            3,
        )
        .await?;
    if a.json {
        println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
    } else {
        print!("{}", render(&v));
    }
    Ok(())
}

fn s(v: &Value) -> String {
    match v {
        Value::String(x) => x.clone(),
        Value::Null => "-".into(),
        other => other.to_string(),
    }
}

fn pct(v: &Value) -> String {
    v.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{:.1}%", x * 100.0))
}

fn secs(ms: &Value) -> String {
    ms.as_f64()
        .map_or_else(|| "-".into(), |x| format!("{:.1} s", x / 1000.0))
}

/// The summary document as text.
pub fn render(v: &Value) -> String {
    let mut out = String::new();
    let ses = &v["session"];
    out.push_str(&format!(
        "Session {}  ({}, {})\n",
        s(&ses["id"]),
        s(&ses["agent_name"]),
        s(&ses["status"])
    ));
    out.push_str(&format!(
        "  started {}  ended {}  duration {}\n",
        s(&ses["started_at"]),
        s(&ses["ended_at"]),
        secs(&ses["duration_ms"])
    ));
    out.push_str(&format!(
        "  events {}  failures {}  error density {}  tokens {}  cost ${:.4}\n",
        s(&ses["event_count"]),
        s(&ses["error_count"]),
        pct(&ses["error_density"]),
        ses["input_tokens"].as_i64().unwrap_or(0) + ses["output_tokens"].as_i64().unwrap_or(0),
        ses["cost_usd"].as_f64().unwrap_or(0.0)
    ));
    let report = &v["report"];
    if report.is_null() {
        out.push_str("\nNo report yet: the session has not ended or has not been judged.\n");
    } else {
        render_report(report, &mut out);
    }
    render_induced(&v["induced_errors"], &mut out);
    let clusters = if report.is_null() {
        &v["top_clusters"]
    } else {
        &report["top_clusters"]
    };
    if let Some(cs) = clusters.as_array().filter(|c| !c.is_empty()) {
        out.push_str("\nTop error clusters\n");
        for c in cs {
            out.push_str(&format!(
                "  {:>4}x  {}\n",
                s(&c["occurrences"]),
                s(&c["template"])
            ));
        }
    }
    let insights = if report.is_null() {
        &v["open_insights"]
    } else {
        &report["insights"]
    };
    if let Some(is) = insights.as_array().filter(|i| !i.is_empty()) {
        out.push_str("\nInsights\n");
        for i in is {
            out.push_str(&format!(
                "  [{:<8}] {:<8} {:<18} {}\n",
                s(&i["severity"]),
                s(&i["status"]),
                s(&i["type"]),
                s(&i["title"])
            ));
        }
    }
    if let Some(text) = report["narrative"]["text"].as_str() {
        out.push_str(&format!(
            "\nNarrative ({})\n  {text}\n",
            s(&report["narrative"]["model"])
        ));
    }
    out
}

/// Time of day of an RFC 3339 time.
fn clock(v: &Value) -> String {
    v.as_str()
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
        .map_or_else(|| "-".into(), |t| t.format("%H:%M:%S").to_string())
}

/// The induced errors with their causes and fixes.
fn render_induced(list: &Value, out: &mut String) {
    let Some(items) = list.as_array().filter(|l| !l.is_empty()) else {
        return;
    };
    out.push_str("\nInduced errors (failures attributed to agent edits, confidence >= 0.5)\n");
    for i in items {
        let fixed = if i["fixed_at"].is_string() {
            format!("fixed after {}", secs(&i["time_to_fix_ms"]))
        } else {
            "not fixed".into()
        };
        out.push_str(&format!(
            "  {} {} failed: {}\n      caused by the edit of {} at {} (confidence {:.2}); {}\n",
            clock(&i["effect_at"]),
            s(&i["effect_kind"]),
            s(&i["effect_summary"]),
            s(&i["file_path"]),
            clock(&i["cause_at"]),
            i["confidence"].as_f64().unwrap_or(0.0),
            fixed
        ));
    }
}

fn render_report(r: &Value, out: &mut String) {
    let h = &r["headline"];
    out.push_str(&format!(
        "\nVerdict on {}\n",
        s(&r["session"]["agent_name"])
    ));
    out.push_str(&format!(
        "  actions {}  successful {} ({})  failed {}  inducing an error {}\n",
        s(&h["agent_actions"]),
        s(&h["successful_actions"]),
        pct(&h["success_rate"]),
        s(&h["failed_actions"]),
        s(&h["inducing_actions"])
    ));
    out.push_str(&format!(
        "  induced errors {}  break/fix cycles {}  unfixed {}  mean time to fix {}\n",
        s(&h["induced_errors"]),
        s(&h["break_fix_cycles"]),
        s(&h["unfixed_induced_errors"]),
        secs(&h["mean_time_to_fix_ms"])
    ));
    out.push_str(&format!(
        "  per successful action: {} tokens, ${}\n",
        s(&h["tokens_per_successful_action"]),
        s(&h["cost_per_successful_action"])
    ));
    if r["completeness"]["complete"] == Value::Bool(false) {
        out.push_str(&format!(
            "  (incomplete: judged {} of {} events)\n",
            s(&r["completeness"]["events_judged"]),
            s(&r["completeness"]["events_expected"])
        ));
    }
    out.push_str(&format!("\n{}\n", s(&r["summary"])));
    if let Some(fs) = r["worst_files"].as_array().filter(|f| !f.is_empty()) {
        out.push_str("\nWorst files\n");
        for f in fs {
            out.push_str(&format!(
                "  {}  induced {} (fixed {}), failures {}, agent edits {}\n",
                s(&f["path"]),
                s(&f["induced_errors"]),
                s(&f["fixed"]),
                s(&f["failures"]),
                s(&f["agent_edits"])
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_a_judged_session_and_an_active_one() {
        let judged = json!({
            "session": {"id": "s1", "agent_name": "claude-code", "status": "completed", "event_count": 7},
            "report": {
                "session": {"agent_name": "claude-code"},
                "headline": {"agent_actions": 6, "successful_actions": 4, "success_rate": 0.6667,
                             "mean_time_to_fix_ms": 40000.0},
                "completeness": {"complete": true},
                "summary": "claude-code took 6 actions",
                "worst_files": [{"path": "src/a.rs", "induced_errors": 1}],
                "top_clusters": [{"occurrences": 2, "template": "error[<*>]"}],
                "insights": [],
            },
            "induced_errors": [{"effect_at": "2026-11-20T09:00:30Z", "effect_kind": "command",
                "effect_summary": "cargo build (exit 101)", "file_path": "src/parser.rs",
                "cause_at": "2026-11-20T09:00:22Z", "confidence": 0.79,
                "fixed_at": "2026-11-20T09:00:50Z", "time_to_fix_ms": 20000.0}],
        });
        let text = render(&judged);
        assert!(text.contains("successful 4 (66.7%)"), "{text}");
        assert!(text.contains("mean time to fix 40.0 s"), "{text}");
        assert!(text.contains("src/a.rs"), "{text}");
        assert!(text.contains("error[<*>]"), "{text}");
        assert!(
            text.contains("09:00:30 command failed: cargo build (exit 101)")
                && text.contains("caused by the edit of src/parser.rs at 09:00:22 (confidence 0.79); fixed after 20.0 s"),
            "{text}"
        );
        let active = json!({"session": {"id": "s2", "status": "active"}, "report": null,
            "open_insights": [{"severity": "warning", "status": "open", "type": "command_loop", "title": "loop"}]});
        let text = render(&active);
        assert!(text.contains("No report yet"), "{text}");
        assert!(text.contains("command_loop"), "{text}");
    }
}
