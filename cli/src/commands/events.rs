//! `achilles events ID`: one page (or all pages) of a session's events.

use clap::Args;
use reqwest::Method;

use crate::client::{CliError, Client};

#[derive(Args)]
pub struct EventsArgs {
    /// Session id.
    pub session: String,
    /// Events per page.
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

pub async fn run(client: &Client, a: EventsArgs) -> Result<(), CliError> {
    let mut after = a.after.clone();
    loop {
        let mut path = format!("/v1/sessions/{}/events?limit={}", a.session, a.limit);
        if let Some(c) = &after {
            path.push_str(&format!("&after={c}"));
        }
        let page = client.call_retrying(Method::GET, &path, None, 3).await?;
        for e in page["events"].as_array().into_iter().flatten() {
            if a.json {
                println!("{e}");
            } else {
                println!(
                    "{}  {:<12} {:<6} {}{}",
                    e["occurred_at"].as_str().unwrap_or_default(),
                    e["kind"].as_str().unwrap_or_default(),
                    e["actor"].as_str().unwrap_or_default(),
                    if e["is_failure"].as_bool() == Some(true) {
                        "FAIL "
                    } else {
                        ""
                    },
                    e["data"],
                );
            }
        }
        after = page["next_cursor"].as_str().map(str::to_owned);
        match (&after, a.all) {
            (Some(_), true) => continue,
            (Some(c), false) => eprintln!("more: --after {c}"),
            (None, _) => {}
        }
        return Ok(());
    }
}
