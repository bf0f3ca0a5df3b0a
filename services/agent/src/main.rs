//! `achilles-agent`: runs the monitoring agent until SIGTERM.

/// mimalloc instead of glibc malloc: measured cheaper per event (bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use achilles_core::config::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    // Held until exit: dropping it flushes any trace export.
    let _telemetry = achilles_core::telemetry::init(&settings.log, "achilles-agent");
    let service = achilles_agent::AgentService::build(settings).await?;
    tracing::info!(ops = %service.ops_addr(), "achilles-agent running");
    service.run_until(achilles_core::shutdown::signal()).await?;
    Ok(())
}
