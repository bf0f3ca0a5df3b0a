//! `achilles-api`: loads configuration and runs the HTTP API until SIGTERM.

use achilles_core::config::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    achilles_core::telemetry::init(&settings.log);
    let app = achilles_api::Application::build(settings).await?;
    tracing::info!(address = %app.local_addr(), "achilles-api listening");
    app.run_until(achilles_core::shutdown::signal()).await?;
    Ok(())
}
