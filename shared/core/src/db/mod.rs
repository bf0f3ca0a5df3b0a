//! Postgres access shared by every service.
//!
//! Connecting, migrating, and the reads shared by the API and the agent.
//! Writes live with the service that owns the tables: the raw sink
//! (`events`, session lifecycle), the processor (clusters, correlations,
//! summaries), the agent (insights, verdicts, reports), and the runtime
//! (positions, consumer state, outbox).

pub mod analysis;
pub mod answers;
mod events;
pub mod keys;
pub mod offsets;
pub mod outbox;
pub mod push;
pub mod retention;
mod sessions;

pub use events::{list_events, EventCursor, EventRow};
pub use keys::{index_key, MAX_INDEXED_NAME_BYTES, MAX_INDEX_KEY_BYTES};
pub use sessions::{get_session, SessionRow};

use std::str::FromStr;
use std::time::Duration;

use secrecy::ExposeSecret;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool};

use crate::config::DatabaseSettings;

/// Migrations embedded from `migrations/` at build time.
pub static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// A pool that connects lazily, so a service starts (and reports
/// not-ready) while Postgres is still down, instead of crash-looping.
pub fn connect_lazy(s: &DatabaseSettings) -> Result<PgPool, sqlx::Error> {
    let opts = PgConnectOptions::from_str(s.url.expose_secret())?;
    Ok(PgPoolOptions::new()
        .max_connections(s.max_connections)
        .acquire_timeout(Duration::from_millis(s.acquire_timeout_ms))
        .connect_lazy_with(opts))
}

/// Creates the database named in `url` if it does not exist, by connecting
/// to the server's `postgres` database.
pub async fn ensure_database(url: &str) -> Result<(), sqlx::Error> {
    let opts = PgConnectOptions::from_str(url)?;
    let name = opts.get_database().unwrap_or("postgres").to_owned();
    let mut admin = opts.database("postgres").connect().await?;
    let exists: bool =
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM pg_database WHERE datname = $1)")
            .bind(&name)
            .fetch_one(&mut admin)
            .await?;
    if !exists {
        // Identifiers cannot be bound as parameters; quote it ourselves.
        let quoted = format!("\"{}\"", name.replace('"', "\"\""));
        match sqlx::query(&format!("CREATE DATABASE {quoted}"))
            .execute(&mut admin)
            .await
        {
            Ok(_) => tracing::info!(database = %name, "created database"),
            // Another process won the race: fine.
            Err(sqlx::Error::Database(e)) if e.code().as_deref() == Some("42P04") => {}
            Err(e) => return Err(e),
        }
    }
    admin.close().await
}

/// Applies pending migrations.
pub async fn migrate(pool: &PgPool) -> Result<(), sqlx::migrate::MigrateError> {
    MIGRATOR.run(pool).await
}

/// Is Postgres answering? For readiness probes.
pub async fn reachable(pool: &PgPool) -> bool {
    sqlx::query("SELECT 1").execute(pool).await.is_ok()
}
