//! `achilles-raw-sink`: runs the landing and intake-gate consumers until
//! SIGTERM, then drains within `sink.shutdown_deadline_ms`.

/// mimalloc instead of glibc malloc: measured cheaper per event (bench/README.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

use achilles_core::config::Settings;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let settings = Settings::load()?;
    // Held to the end of main: dropping it flushes queued spans.
    let _telemetry = achilles_core::telemetry::init(&settings.log, "achilles-raw-sink");
    let sink = achilles_raw_sink::RawSink::build(settings).await?;
    tracing::info!(ops = %sink.ops_addr(), "achilles-raw-sink running");
    sink.run_until(achilles_core::shutdown::signal()).await?;
    Ok(())
}
