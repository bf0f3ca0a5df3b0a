//! `achilles`: the command-line interface to Achilles.
//!
//! Talks to the HTTP API (`--api-url`, `--api-key`), except `migrate`
//! (Postgres), `cluster` (local, stdin to stdout) and `eval` (local).

mod client;
mod commands;
mod table;

use clap::{Parser, Subcommand};

use client::{CliError, Client};

#[derive(Parser)]
#[command(
    name = "achilles",
    version,
    about = "Telemetry for AI coding agents: sessions, events, errors."
)]
struct Cli {
    /// Base URL of the Achilles API.
    #[arg(
        long,
        global = true,
        env = "ACHILLES_API_URL",
        default_value = "http://127.0.0.1:8080"
    )]
    api_url: String,
    /// API key (sent as a Bearer token). Defaults to the local dev key.
    #[arg(long, global = true, env = "ACHILLES_API_KEY", default_value = achilles_core::config::DEV_API_KEY, hide_default_value = true)]
    api_key: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Start, end or show sessions.
    #[command(subcommand)]
    Session(commands::session::SessionCommand),
    /// Send events from a JSON-lines file (one event per line).
    Send(commands::send::SendArgs),
    /// List a session's events in event-time order.
    Events(commands::events::EventsArgs),
    /// Recent insights of the monitoring agent (error storms, loops, churn, ...).
    Insights(commands::insights::InsightsArgs),
    /// Sessions across agents and models, with their summaries and verdicts.
    Sessions(commands::answers::SessionsArgs),
    /// Error clusters that keep coming back across sessions, with their trend.
    Clusters(commands::answers::WindowArgs),
    /// Agents and models ranked: success rate, induced errors, time to fix, cost.
    Leaderboard(commands::answers::WindowArgs),
    /// Webhook endpoints insight transitions are pushed to.
    #[command(subcommand)]
    Webhooks(commands::webhooks::WebhooksCommand),
    /// Generate load (ingest, reads or raw Kafka) and report throughput and latency.
    Load(commands::load::LoadArgs),
    /// Cluster messages from stdin: one cluster label per input line.
    Cluster(commands::cluster::ClusterArgs),
    /// Create the database if needed and apply migrations (uses DATABASE_URL).
    Migrate,
    /// Dead letters: list, show, replay fixable intake submissions (uses ACHILLES_KAFKA__BROKERS).
    #[command(subcommand)]
    Dlq(commands::dlq::DlqCommand),
    /// Retention: run one pass now (uses DATABASE_URL and [retention]).
    #[command(subcommand)]
    Retention(commands::retention::RetentionCommand),
    /// Score the analysis on labelled sessions (offline).
    #[command(subcommand)]
    Eval(commands::eval::EvalCommand),
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let client = Client::new(&cli.api_url, &cli.api_key);
    let result: Result<(), CliError> = match cli.command {
        Command::Session(c) => commands::session::run(&client, c).await,
        Command::Send(a) => commands::send::run(&client, a).await,
        Command::Events(a) => commands::events::run(&client, a).await,
        Command::Insights(a) => commands::insights::run(&client, a).await,
        Command::Sessions(a) => commands::answers::sessions(&client, a).await,
        Command::Clusters(a) => commands::answers::clusters(&client, a).await,
        Command::Leaderboard(a) => commands::answers::leaderboard(&client, a).await,
        Command::Webhooks(c) => commands::webhooks::run(&client, c).await,
        Command::Load(a) => commands::load::run(&cli.api_url, &cli.api_key, a).await,
        Command::Cluster(a) => commands::cluster::run(a),
        Command::Migrate => commands::migrate::run().await,
        Command::Dlq(c) => commands::dlq::run(c, &cli.api_key).await,
        Command::Retention(c) => commands::retention::run(c).await,
        Command::Eval(c) => commands::eval::run(c),
    };
    if let Err(e) = result {
        eprintln!("error: {e}");
        if let CliError::Api {
            details: Some(d), ..
        } = &e
        {
            eprintln!("{}", serde_json::to_string_pretty(d).unwrap_or_default());
        }
        std::process::exit(e.exit_code());
    }
}
