//! `achilles retention run`: one retention pass now, against the database
//! of the configuration (`DATABASE_URL`, `[retention]`), as the raw sink
//! runs it every `retention.interval_secs`. For operators (after changing
//! the windows, or to measure a pass); it skips when a raw sink is pruning.

use std::time::Instant;

use clap::Subcommand;

use achilles_core::config::Settings;
use achilles_core::db;

use crate::client::CliError;

#[derive(Subcommand)]
pub enum RetentionCommand {
    /// Run one pass now and print the rows removed per table.
    Run,
}

pub async fn run(cmd: RetentionCommand) -> Result<(), CliError> {
    let RetentionCommand::Run = cmd;
    let settings = Settings::load().map_err(|e| CliError::Input(e.to_string()))?;
    let pool = db::connect_lazy(&settings.database).map_err(|e| CliError::Input(e.to_string()))?;
    let started = Instant::now();
    let rows = db::retention::run_pass(&pool, &settings.retention)
        .await
        .map_err(|e| CliError::Other(format!("retention pass failed: {e}")))?;
    match rows {
        None => eprintln!("another instance is running a pass; nothing done"),
        Some(rows) => {
            for (table, n) in &rows {
                println!("{table:<28} {n}");
            }
            eprintln!("pass done in {:.1}s", started.elapsed().as_secs_f64());
        }
    }
    Ok(())
}
