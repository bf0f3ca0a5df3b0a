//! Logging bootstrap shared by every binary.
//!
//! JSON lines by default (one object per event, with the span fields such
//! as `session_id` and `trace_id` flattened in), `pretty` for a terminal.
//! `RUST_LOG` overrides the configured filter.

use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::EnvFilter;

use crate::config::LogSettings;

/// Installs the global subscriber. Safe to call twice (tests do): the second
/// call is a no-op.
pub fn init(log: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(&log.filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if log.format == "pretty" {
        builder.with_target(false).try_init()
    } else {
        builder
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .with_span_list(false)
            .with_span_events(FmtSpan::NONE)
            .try_init()
    };
}
