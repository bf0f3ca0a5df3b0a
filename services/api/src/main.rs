//! `achilles-api`: loads configuration and runs the HTTP API until SIGTERM.

/// mimalloc instead of glibc malloc: measured cheaper per event (bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use achilles_core::config::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    // Held to the end of main: dropping it flushes queued spans.
    let _telemetry = achilles_core::telemetry::init(&settings.log, "achilles-api");
    let app = achilles_api::Application::build(settings).await?;
    tracing::info!(address = %app.local_addr(), "achilles-api listening");
    app.run_until(achilles_core::shutdown::signal()).await?;
    Ok(())
}
