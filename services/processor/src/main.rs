//! `achilles-processor`: runs the stream processor until SIGTERM.

/// mimalloc instead of glibc malloc: measured cheaper per event (bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use achilles_core::config::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    // Held to the end of main: dropping it flushes queued spans.
    let _telemetry = achilles_core::telemetry::init(&settings.log, "achilles-processor");
    let service = achilles_processor::ProcessorService::build(settings).await?;
    tracing::info!(ops = %service.ops_addr(), "achilles-processor running");
    service.run_until(achilles_core::shutdown::signal()).await?;
    Ok(())
}
