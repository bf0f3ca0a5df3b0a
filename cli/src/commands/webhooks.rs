//! `achilles webhooks add|list|remove|deliveries`: where insight
//! transitions are pushed (docs/push.md).

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};

use crate::client::{CliError, Client};
use crate::table::{text, when, Table};

#[derive(Subcommand)]
pub enum WebhooksCommand {
    /// Register an endpoint; prints its id and signing secret (shown once).
    Add {
        /// http(s) URL that receives signed POSTs.
        url: String,
        /// Only this severity (info, warning, critical); repeatable.
        #[arg(long = "severity")]
        severities: Vec<String>,
        /// Only this insight type (e.g. command_loop); repeatable.
        #[arg(long = "type")]
        types: Vec<String>,
        /// Only this transition (raised, escalated, resolved); repeatable.
        #[arg(long = "transition")]
        transitions: Vec<String>,
        #[arg(long)]
        description: Option<String>,
    },
    /// The tenant's endpoints.
    List,
    /// Remove an endpoint (pending deliveries to it are dropped).
    Remove { id: String },
    /// An endpoint's recent deliveries: status, attempts, last error.
    Deliveries {
        id: String,
        #[arg(long, default_value_t = 20)]
        limit: u32,
    },
}

fn list(v: Vec<String>) -> Value {
    if v.is_empty() {
        Value::Null
    } else {
        json!(v)
    }
}

fn filters(w: &Value) -> String {
    let parts: Vec<String> = ["severities", "types", "transitions"]
        .iter()
        .filter_map(|k| {
            let vals: Vec<&str> = w[*k].as_array()?.iter().filter_map(Value::as_str).collect();
            Some(format!("{k}={}", vals.join("|")))
        })
        .collect();
    if parts.is_empty() {
        "all".into()
    } else {
        parts.join(" ")
    }
}

pub async fn run(client: &Client, cmd: WebhooksCommand) -> Result<(), CliError> {
    match cmd {
        WebhooksCommand::Add {
            url,
            severities,
            types,
            transitions,
            description,
        } => {
            let body = json!({"url": url, "description": description, "severities": list(severities),
                              "types": list(types), "transitions": list(transitions)});
            let v = client
                .call_retrying(Method::POST, "/v1/webhooks", Some(&body), 3)
                .await?;
            println!("id      {}", text(&v["id"]));
            println!("url     {}", text(&v["url"]));
            println!("filters {}", filters(&v));
            println!("secret  {}", text(&v["secret"]));
            eprintln!("keep the secret: it verifies Achilles-Signature and is not shown again");
        }
        WebhooksCommand::List => {
            let v = client
                .call_retrying(Method::GET, "/v1/webhooks", None, 3)
                .await?;
            let mut t = Table::new(&["id", "url", "filters", "created", "description"]);
            for w in v["webhooks"].as_array().into_iter().flatten() {
                t.row(vec![
                    text(&w["id"]),
                    text(&w["url"]),
                    filters(w),
                    when(&w["created_at"]),
                    text(&w["description"]),
                ]);
            }
            if t.is_empty() {
                eprintln!("no webhooks");
            } else {
                print!("{}", t.render());
            }
        }
        WebhooksCommand::Remove { id } => {
            client
                .call_retrying(Method::DELETE, &format!("/v1/webhooks/{id}"), None, 3)
                .await?;
            eprintln!("webhook {id} removed");
        }
        WebhooksCommand::Deliveries { id, limit } => {
            let v = client
                .call_retrying(
                    Method::GET,
                    &format!("/v1/webhooks/{id}/deliveries?limit={limit}"),
                    None,
                    3,
                )
                .await?;
            let mut t = Table::new(&[
                "delivery",
                ">event",
                "status",
                ">attempts",
                ">http",
                "next / done",
                "last error",
            ]);
            for d in v["deliveries"].as_array().into_iter().flatten() {
                let at = if d["delivered_at"].is_string() {
                    &d["delivered_at"]
                } else {
                    &d["next_attempt_at"]
                };
                t.row(vec![
                    text(&d["id"]),
                    text(&d["transition_id"]),
                    text(&d["status"]),
                    text(&d["attempts"]),
                    text(&d["last_status"]),
                    when(at),
                    text(&d["last_error"]),
                ]);
            }
            if t.is_empty() {
                eprintln!("no deliveries yet");
            } else {
                print!("{}", t.render());
            }
        }
    }
    Ok(())
}
