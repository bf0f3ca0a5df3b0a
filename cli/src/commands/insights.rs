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
    /// Follow live: print raised, escalated and resolved insights as they
    /// happen (after those since --since), reconnecting without loss.
    #[arg(long, short = 'f')]
    pub follow: bool,
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
    if a.follow {
        return follow(client, &a).await;
    }
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

/// `--follow`: the insight stream, one line per transition.
async fn follow(client: &Client, a: &InsightsArgs) -> Result<(), CliError> {
    let mut query = Vec::new();
    if let Some(s) = &a.since {
        query.push(format!(
            "since={}",
            escape(&since(s, Utc::now())?.to_rfc3339())
        ));
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
    let path = format!("/v1/insights/stream?{}", query.join("&"));
    let mut last: Option<String> = None;
    loop {
        let mut resp = client.stream(&path, last.as_deref()).await?;
        let mut buf = String::new();
        while let Ok(Some(chunk)) = resp.chunk().await {
            buf.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = buf.find("\n\n") {
                let block: String = buf.drain(..end + 2).collect();
                let (id, event, data) = sse_fields(&block);
                let Some(data) = data else { continue };
                last = id.or(last);
                if a.json {
                    println!("{data}");
                    continue;
                }
                let i: serde_json::Value = serde_json::from_str(&data).unwrap_or_default();
                println!(
                    "{}  {:<9} {:<8} {:<18} {}  {}",
                    i["decided_at"].as_str().unwrap_or_default(),
                    event.unwrap_or_default(),
                    i["severity"].as_str().unwrap_or_default(),
                    i["type"].as_str().unwrap_or_default(),
                    i["session_id"].as_str().unwrap_or_default(),
                    i["title"].as_str().unwrap_or_default(),
                );
            }
        }
        // The server ended the stream (a restart, or we read too slowly):
        // resume where we were.
        eprintln!(
            "stream ended; resuming after event {}",
            last.as_deref().unwrap_or("-")
        );
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

/// `id`, `event` and `data` of one event block (comments skipped).
fn sse_fields(block: &str) -> (Option<String>, Option<String>, Option<String>) {
    let (mut id, mut event, mut data) = (None, None, None::<String>);
    for line in block.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.strip_prefix(' ').unwrap_or(v).to_owned();
        match k {
            "id" => id = Some(v),
            "event" => event = Some(v),
            "data" => data = Some(data.map_or(v.clone(), |d| d + "\n" + &v)),
            _ => {}
        }
    }
    (id, event, data)
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

    #[test]
    fn event_blocks_are_parsed_and_comments_skipped() {
        assert_eq!(
            sse_fields("id: 7\nevent: raised\ndata: {\"a\":1}\n\n"),
            (
                Some("7".into()),
                Some("raised".into()),
                Some("{\"a\":1}".into())
            )
        );
        assert_eq!(sse_fields(": heartbeat\n\n"), (None, None, None));
    }
}
