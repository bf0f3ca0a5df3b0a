//! `achilles migrate`: create the database if needed and apply migrations.

use achilles_core::config::Settings;
use achilles_core::db;
use achilles_core::secrecy::ExposeSecret;

use crate::client::CliError;

pub async fn run() -> Result<(), CliError> {
    let settings = Settings::load().map_err(|e| CliError::Input(e.to_string()))?;
    db::ensure_database(settings.database.url.expose_secret())
        .await
        .map_err(|e| CliError::Other(format!("cannot reach or create the database: {e}")))?;
    let pool = db::connect_lazy(&settings.database).map_err(|e| CliError::Input(e.to_string()))?;
    db::migrate(&pool)
        .await
        .map_err(|e| CliError::Other(format!("migration failed: {e}")))?;
    let latest = db::MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
    eprintln!("database is at migration {latest}");
    Ok(())
}
