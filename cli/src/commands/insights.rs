//! `achilles insights`: the tenant's recent insights, newest first.

use chrono::{DateTime, Duration, Utc};
use clap::Args;
use reqwest::Method;

use crate::client::{CliError, Client};

#[derive(Args)]
pub struct InsightsArgs {
    /// Only insights raised since then: RFC 3339 (2026-11-21T10:00:00Z) or
    /// an age such as 30m, 2h, 7d.
    #[arg(long)]
    pub since: Option<String>,
    /// info, warning or critical.
    #[arg(long)]
    pub severity: Option<String>,
    /// Insight type, e.g. command_loop.
    #[arg(long = "type")]
    pub insight_type: Option<String>,
    /// Only this session's insights.
    #[arg(long)]
    pub session: Option<String>,
    /// open or resolved.
    #[arg(long)]
    pub status: Option<String>,
    /// Insights per page.
    #[arg(long, default_value_t = 50)]
    pub limit: u32,
    /// Cursor from a previous page (printed on stderr).
    #[arg(long)]
    pub after: Option<String>,
    /// Follow cursors until the last page.
    #[arg(long)]
    pub all: bool,
    /// Print raw JSON lines instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `30m`, `2h`, `7d` or `45s` ago, or an RFC 3339 time.
fn since(raw: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>, CliError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.with_timezone(&Utc));
    }
    let bad = || {
        CliError::Input(format!(
            "--since {raw:?}: use RFC 3339 or an age like 30m, 2h, 7d"
        ))
    };
    let (n, unit) = raw.split_at(raw.len().saturating_sub(1));
    let n: i64 = n.parse().map_err(|_| bad())?;
    let age = match unit {
        "s" => Duration::seconds(n),
        "m" => Duration::minutes(n),
        "h" => Duration::hours(n),
        "d" => Duration::days(n),
        _ => return Err(bad()),
    };
    Ok(now - age)
}

/// Query strings only ever carry our own values and RFC 3339 times; `+`
/// (a UTC offset) and spaces are the characters that need escaping.
pub(crate) fn escape(v: &str) -> String {
    v.replace('%', "%25")
        .replace('+', "%2B")
        .replace(' ', "%20")
        .replace('&', "%26")
}

pub async fn run(client: &Client, a: InsightsArgs) -> Result<(), CliError> {
    let mut query = vec![format!("limit={}", a.limit)];
    if let Some(s) = &a.since {
        let t = since(s, Utc::now())?;
        query.push(format!("since={}", escape(&t.to_rfc3339())));
    }
    for (k, v) in [
        ("severity", &a.severity),
        ("type", &a.insight_type),
        ("session", &a.session),
        ("status", &a.status),
    ] {
        if let Some(v) = v {
            query.push(format!("{k}={}", escape(v)));
        }
    }
    let mut after = a.after.clone();
    let mut shown = 0;
    loop {
        let mut path = format!("/v1/insights/recent?{}", query.join("&"));
        if let Some(c) = &after {
            path.push_str(&format!("&after={c}"));
        }
        let page = client.call_retrying(Method::GET, &path, None, 3).await?;
        for i in page["insights"].as_array().into_iter().flatten() {
            shown += 1;
            if a.json {
                println!("{i}");
            } else {
                println!(
                    "{}  {:<8} {:<8} {:<18} {}  {}",
                    i["raised_at"].as_str().unwrap_or_default(),
                    i["severity"].as_str().unwrap_or_default(),
                    i["status"].as_str().unwrap_or_default(),
                    i["type"].as_str().unwrap_or_default(),
                    i["session_id"].as_str().unwrap_or_default(),
                    i["title"].as_str().unwrap_or_default(),
                );
            }
        }
        after = page["next_cursor"].as_str().map(str::to_owned);
        match (&after, a.all) {
            (Some(_), true) => continue,
            (Some(c), false) => eprintln!("more: --after {c}"),
            (None, _) if shown == 0 && !a.json => eprintln!("no insights"),
            (None, _) => {}
        }
        return Ok(());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_accepts_ages_and_times() {
        let now = DateTime::parse_from_rfc3339("2026-11-21T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(since("2h", now).unwrap(), now - Duration::hours(2));
        assert_eq!(since("30m", now).unwrap(), now - Duration::minutes(30));
        assert_eq!(
            since("2026-11-21T10:00:00+01:00", now).unwrap(),
            now - Duration::hours(3)
        );
        assert!(since("yesterday", now).is_err());
        assert_eq!(
            escape("2026-11-21T10:00:00+00:00"),
            "2026-11-21T10:00:00%2B00:00"
        );
    }
}
