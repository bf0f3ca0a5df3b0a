//! `achilles session start|end|show|report|judge`.

use clap::Subcommand;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use crate::client::{CliError, Client};

#[derive(Subcommand)]
pub enum SessionCommand {
    /// Start a session; prints only its id, so scripts can capture it.
    Start {
        /// Agent product, e.g. claude-code.
        #[arg(long)]
        agent: String,
        #[arg(long)]
        model: Option<String>,
        /// cli, ide, sdk or other.
        #[arg(long, default_value = "cli")]
        source: String,
        /// Choose the session id instead of letting the API pick one.
        #[arg(long)]
        id: Option<String>,
        /// A JSON object of free-form metadata.
        #[arg(long)]
        metadata: Option<String>,
    },
    /// End a session.
    End {
        id: String,
        /// completed, failed or aborted.
        #[arg(long, default_value = "completed")]
        status: String,
    },
    /// Show a session with its summary fields.
    Show { id: String },
    /// The monitoring agent's report on a session (verdict, clusters, files, insights).
    Report(super::report::ReportArgs),
    /// Judge an ended session again (deep mode; one verdict, updated).
    Judge { id: String },
}

pub async fn run(client: &Client, cmd: SessionCommand) -> Result<(), CliError> {
    match cmd {
        SessionCommand::Start {
            agent,
            model,
            source,
            id,
            metadata,
        } => {
            let metadata: Option<Value> = metadata
                .map(|m| {
                    serde_json::from_str(&m)
                        .map_err(|e| CliError::Input(format!("--metadata is not JSON: {e}")))
                })
                .transpose()?;
            let body = json!({"id": id, "agent_name": agent, "agent_model": model, "source": source, "metadata": metadata});
            // One key for every attempt: a retry after a lost response gets
            // the same session (and start time), not a second one.
            let key = Uuid::now_v7().to_string();
            let v = client
                .call_idempotent(
                    Method::POST,
                    "/v1/sessions/start",
                    Some(&body),
                    5,
                    Some(&key),
                )
                .await?;
            println!("{}", v["session_id"].as_str().unwrap_or_default());
        }
        SessionCommand::End { id, status } => {
            let body = json!({"session_id": id, "status": status});
            // The end time is derived from the key: every attempt ends the
            // session at the same instant.
            let key = Uuid::now_v7().to_string();
            client
                .call_idempotent(Method::POST, "/v1/sessions/end", Some(&body), 5, Some(&key))
                .await?;
            eprintln!("session {id} ended ({status})");
        }
        SessionCommand::Show { id } => {
            let v = client
                .call_retrying(Method::GET, &format!("/v1/sessions/{id}"), None, 3)
                .await?;
            println!("{}", serde_json::to_string_pretty(&v).unwrap_or_default());
        }
        SessionCommand::Report(a) => super::report::run(client, a).await?,
        SessionCommand::Judge { id } => {
            // Safe to repeat: judging again upserts the same verdict.
            let v = client
                .call_retrying(Method::POST, &format!("/v1/sessions/{id}/judge"), None, 3)
                .await?;
            eprintln!(
                "session {id} ({}, {} events) queued for judging; see `achilles session report {id}`",
                v["session_status"].as_str().unwrap_or("?"),
                v["event_count"]
            );
        }
    }
    Ok(())
}
