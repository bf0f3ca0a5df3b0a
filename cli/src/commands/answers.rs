//! `achilles sessions`, `achilles clusters`, `achilles leaderboard`: the
//! answers across sessions, as tables (or JSON lines with `--json`).

use clap::Args;
use reqwest::Method;
use serde_json::Value;

use super::insights::escape;
use crate::client::{CliError, Client};
use crate::table::{duration_ms, num, pct, text, usd, when, Table};

#[derive(Args)]
pub struct SessionsArgs {
    /// Only this agent, e.g. claude-code.
    #[arg(long)]
    pub agent: Option<String>,
    /// Only this model.
    #[arg(long)]
    pub model: Option<String>,
    /// active, completed, failed, aborted or timed_out.
    #[arg(long)]
    pub status: Option<String>,
    /// Started since: RFC 3339 or an age such as 24h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// Started before: RFC 3339 or an age.
    #[arg(long)]
    pub until: Option<String>,
    /// Sessions per page.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Cursor from a previous page (printed on stderr).
    #[arg(long)]
    pub after: Option<String>,
    /// Follow cursors until the last page.
    #[arg(long)]
    pub all: bool,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
pub struct WindowArgs {
    /// Window start: RFC 3339 or an age such as 24h, 7d (default 7d for
    /// clusters, 30d for the leaderboard).
    #[arg(long)]
    pub since: Option<String>,
    /// Window end (default now).
    #[arg(long)]
    pub until: Option<String>,
    /// At most this many rows.
    #[arg(long, default_value_t = 20)]
    pub limit: u32,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

fn query(pairs: &[(&str, Option<&str>)]) -> String {
    pairs
        .iter()
        .filter_map(|(k, v)| v.map(|v| format!("{k}={}", escape(v))))
        .collect::<Vec<_>>()
        .join("&")
}

pub async fn sessions(client: &Client, a: SessionsArgs) -> Result<(), CliError> {
    let limit = a.limit.to_string();
    let base = query(&[
        ("agent", a.agent.as_deref()),
        ("model", a.model.as_deref()),
        ("status", a.status.as_deref()),
        ("since", a.since.as_deref()),
        ("until", a.until.as_deref()),
        ("limit", Some(&limit)),
    ]);
    let mut table = Table::new(&[
        "session",
        "agent",
        "model",
        "status",
        "started",
        ">duration",
        ">events",
        ">errors",
        ">success",
        ">induced",
        ">tokens",
        ">cost",
    ]);
    let mut after = a.after.clone();
    loop {
        let mut path = format!("/v1/sessions?{base}");
        if let Some(c) = &after {
            path.push_str(&format!("&after={c}"));
        }
        let page = client.call_retrying(Method::GET, &path, None, 3).await?;
        for s in page["sessions"].as_array().into_iter().flatten() {
            if a.json {
                println!("{s}");
                continue;
            }
            let tokens =
                s["input_tokens"].as_i64().unwrap_or(0) + s["output_tokens"].as_i64().unwrap_or(0);
            table.row(vec![
                text(&s["session_id"]),
                text(&s["agent_name"]),
                text(&s["agent_model"]),
                text(&s["status"]),
                when(&s["started_at"]),
                duration_ms(&s["duration_ms"]),
                text(&s["event_count"]),
                text(&s["error_count"]),
                pct(&s["success_rate"]),
                text(&s["induced_errors"]),
                tokens.to_string(),
                usd(&s["cost_usd"]),
            ]);
        }
        after = page["next_cursor"].as_str().map(str::to_owned);
        if after.is_some() && a.all {
            continue;
        }
        break;
    }
    if !a.json {
        if table.is_empty() {
            eprintln!("no sessions");
        } else {
            print!("{}", table.render());
        }
    }
    if let (Some(c), false) = (&after, a.all) {
        eprintln!("more: --after {c}");
    }
    Ok(())
}

async fn window(client: &Client, path: &str, a: &WindowArgs) -> Result<Value, CliError> {
    let limit = a.limit.to_string();
    let q = query(&[
        ("since", a.since.as_deref()),
        ("until", a.until.as_deref()),
        ("limit", Some(&limit)),
    ]);
    client
        .call_retrying(Method::GET, &format!("{path}?{q}"), None, 3)
        .await
}

pub async fn clusters(client: &Client, a: WindowArgs) -> Result<(), CliError> {
    let v = window(client, "/v1/clusters", &a).await?;
    let rows = v["clusters"].as_array().cloned().unwrap_or_default();
    if a.json {
        rows.iter().for_each(|c| println!("{c}"));
        return Ok(());
    }
    println!(
        "Recurring error clusters, {} to {}",
        when(&v["since"]),
        when(&v["until"])
    );
    let mut t = Table::new(&[
        ">sessions",
        ">occurrences",
        ">before",
        "trend",
        "last seen",
        "template",
    ]);
    for c in &rows {
        t.row(vec![
            text(&c["sessions"]),
            text(&c["occurrences"]),
            text(&c["previous_sessions"]),
            text(&c["trend"]),
            when(&c["last_seen"]),
            text(&c["template"]),
        ]);
    }
    if t.is_empty() {
        println!("no error clusters in this window");
    } else {
        print!("{}", t.render());
        println!("(sessions with occurrences; BEFORE = sessions in the window of the same length before)");
    }
    Ok(())
}

pub async fn leaderboard(client: &Client, a: WindowArgs) -> Result<(), CliError> {
    let v = window(client, "/v1/agents/leaderboard", &a).await?;
    let rows = v["agents"].as_array().cloned().unwrap_or_default();
    if a.json {
        rows.iter().for_each(|r| println!("{r}"));
        return Ok(());
    }
    println!(
        "Agent leaderboard, judged sessions started {} to {}",
        when(&v["since"]),
        when(&v["until"])
    );
    let mut t = Table::new(&[
        "agent",
        "model",
        ">sessions",
        ">actions",
        ">success",
        ">induced/100",
        ">fix time",
        ">tokens/ok",
        ">cost/ok",
        ">cost",
    ]);
    for r in rows.iter().take(a.limit as usize) {
        t.row(vec![
            text(&r["agent_name"]),
            text(&r["agent_model"]),
            text(&r["sessions"]),
            text(&r["actions"]),
            pct(&r["success_rate"]),
            num(&r["induced_errors_per_100_actions"], 1),
            duration_ms(&r["mean_time_to_fix_ms"]),
            num(&r["tokens_per_successful_action"], 0),
            usd(&r["cost_per_successful_action"]),
            usd(&r["cost_usd"]),
        ]);
    }
    if t.is_empty() {
        println!("no judged sessions in this window");
    } else {
        print!("{}", t.render());
        println!("(induced = failures attributed to agent edits with confidence >= 0.5; /ok = per successful action)");
    }
    Ok(())
}
