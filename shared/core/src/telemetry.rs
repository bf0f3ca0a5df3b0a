//! Logging and tracing bootstrap shared by every binary.
//!
//! Logs: JSON lines by default, one flat object per event with the fields
//! of the spans in scope (`session_id`, `tenant`, `consumer`, ...) and the
//! current `trace_id`/`span_id` (telemetry/json.rs); `pretty` for a terminal.
//! `RUST_LOG` overrides the configured filter.
//!
//! Traces: a W3C trace context travels from the HTTP request through the
//! `traceparent` Kafka header into every consumer ([`context`]). When an
//! OTLP endpoint is configured (`log.otlp_endpoint`, or the standard
//! `OTEL_EXPORTER_OTLP_ENDPOINT`), spans are also exported over OTLP/HTTP
//! (protobuf) by a batch exporter; off by default, and nothing but the log
//! lines changes when it is off.

mod context;
mod http_client;
mod json;

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use opentelemetry_sdk::Resource;
use tracing::field::{Field, Visit};
use tracing::level_filters::LevelFilter;
use tracing::Dispatch;
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::filter::{filter_fn, Targets};
use tracing_subscriber::fmt::format::{DefaultVisitor, JsonFields, Writer};
use tracing_subscriber::fmt::{FormatFields, MakeWriter};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

use crate::config::LogSettings;

pub use context::{
    add_link, current_context, current_traceparent, extract, fresh_context, header_values,
    insert_kafka_headers, kafka_context, otel_enabled, parse_traceparent, record_session_id,
    set_remote_parent, span_context, span_id_hex, trace_id_hex, traceparent, HeaderExtractor,
    KafkaExtractor,
};
pub use http_client::OtlpHttpClient;
pub use opentelemetry::trace::SpanContext;

/// How long one export may take, and how long shutdown waits for the last.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Keeps the tracer provider alive; dropping it flushes the spans still
/// queued and shuts the exporter down. Hold it for the life of `main`.
#[must_use = "dropping the guard stops trace export"]
pub struct TelemetryGuard {
    provider: Option<SdkTracerProvider>,
}

impl TelemetryGuard {
    /// Whether spans are being exported.
    pub fn exporting(&self) -> bool {
        self.provider.is_some()
    }
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            // `shutdown` flushes first; errors mean the collector was not
            // reachable, which must not fail the process on its way out.
            if let Err(e) = provider.shutdown() {
                eprintln!("trace export: shutdown: {e}");
            }
        }
    }
}

/// The collector URL spans are posted to: the configured endpoint is the
/// OTLP/HTTP base URL (as `OTEL_EXPORTER_OTLP_ENDPOINT`), to which
/// `/v1/traces` is added unless it already ends so. `None` = export off.
pub fn traces_url(log: &LogSettings) -> Option<String> {
    let base = log.otlp_endpoint.as_deref().map(str::trim)?;
    if base.is_empty() {
        return None;
    }
    let base = base.trim_end_matches('/');
    Some(if base.ends_with("/v1/traces") {
        base.to_owned()
    } else {
        format!("{base}/v1/traces")
    })
}

/// Installs the global subscriber (writing to stderr) and, when an
/// endpoint is configured, the OTLP exporter. `service_name` is the
/// binary's name, used for `service.name` unless `log.service_name` is
/// set. Safe to call twice (tests do): the second call installs nothing.
pub fn init(log: &LogSettings, service_name: &str) -> TelemetryGuard {
    let mut log = log.clone();
    if let Ok(filter) = std::env::var("RUST_LOG") {
        if !filter.trim().is_empty() {
            log.filter = filter;
        }
    }
    let (dispatch, guard, problem) = build_inner(&log, service_name, std::io::stderr);
    if tracing::dispatcher::set_global_default(dispatch).is_err() {
        // Already initialised: keep the first subscriber, export nothing new.
        return TelemetryGuard { provider: None };
    }
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    if let Some(problem) = problem {
        tracing::error!(error = %problem, "trace export disabled");
    } else if guard.exporting() {
        tracing::info!(
            endpoint = traces_url(&log).unwrap_or_default(),
            "exporting traces over OTLP/HTTP"
        );
    }
    guard
}

/// The subscriber `init` installs, writing to `writer`, for callers that
/// install it themselves (tests: `tracing::dispatcher::set_default`).
/// The filter is `log.filter` alone (no `RUST_LOG`). An exporter that
/// cannot be built leaves export off.
pub fn build<W>(log: &LogSettings, service_name: &str, writer: W) -> (Dispatch, TelemetryGuard)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let (dispatch, guard, _) = build_inner(log, service_name, writer);
    (dispatch, guard)
}

fn build_inner<W>(
    log: &LogSettings,
    service_name: &str,
    writer: W,
) -> (Dispatch, TelemetryGuard, Option<String>)
where
    W: for<'w> MakeWriter<'w> + Send + Sync + 'static,
{
    let service_name = log
        .service_name
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(service_name);
    let (provider, problem) = match traces_url(log).map(|url| tracer_provider(&url, service_name)) {
        None => (None, None),
        Some(Ok(p)) => (Some(p), None),
        Some(Err(e)) => (None, Some(e)),
    };
    let otel = provider.is_some();
    let filter = EnvFilter::try_new(&log.filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let dispatch_cell = Arc::new(OnceLock::new());

    let mut layers: Vec<Box<dyn Layer<Registry> + Send + Sync>> = Vec::new();
    let fmt = tracing_subscriber::fmt::layer().with_writer(writer);
    layers.push(if log.format == "pretty" {
        fmt.with_target(false)
            .fmt_fields(PrettyFields)
            .with_filter(filter)
            .boxed()
    } else {
        fmt.fmt_fields(JsonFields::new())
            .event_format(json::JsonLines {
                dispatch: dispatch_cell.clone(),
                otel,
            })
            .with_filter(filter)
            .boxed()
    });
    // Spans carry the trace context, so they must exist whatever the log
    // level: this layer enables every INFO span (and no event) for itself.
    layers.push(
        context::TraceMode { otel }
            .with_filter(filter_fn(|m| {
                m.is_span() && *m.level() <= tracing::Level::INFO
            }))
            .boxed(),
    );
    if let Some(provider) = &provider {
        let tracer = provider.tracer("achilles");
        // INFO and up, and never the OpenTelemetry crates' own diagnostics
        // (an exporter warning must not become a span event, or re-enter
        // the layer while it ends a span).
        let spans = Targets::new()
            .with_default(LevelFilter::INFO)
            .with_target("opentelemetry", LevelFilter::OFF);
        layers.push(
            tracing_opentelemetry::layer()
                .with_tracer(tracer)
                .with_filter(spans)
                .boxed(),
        );
    }
    let dispatch = Dispatch::new(Registry::default().with(layers));
    let _ = dispatch_cell.set(dispatch.downgrade());
    (dispatch, TelemetryGuard { provider }, problem)
}

fn tracer_provider(url: &str, service_name: &str) -> Result<SdkTracerProvider, String> {
    if !url.starts_with("http://") {
        return Err(format!(
            "OTLP endpoint {url}: only http:// is supported (send to a collector or agent next to the service)"
        ));
    }
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_protocol(Protocol::HttpBinary)
        .with_endpoint(url)
        .with_timeout(EXPORT_TIMEOUT)
        .with_http_client(http_client::OtlpHttpClient::new(EXPORT_TIMEOUT))
        .build()
        .map_err(|e| format!("OTLP exporter for {url}: {e}"))?;
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            Resource::builder()
                .with_service_name(service_name.to_owned())
                .build(),
        )
        .build())
}

/// The default `key=value` fields of the pretty format, less the `otel.*`
/// ones that only steer the exporter (span name, kind, status).
struct PrettyFields;

struct SkipOtel<V>(V);

impl<V: Visit> Visit for SkipOtel<V> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if !field.name().starts_with("otel.") {
            self.0.record_str(field, value);
        }
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.record_error(field, value);
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if !field.name().starts_with("otel.") {
            self.0.record_debug(field, value);
        }
    }
}

impl<'w> FormatFields<'w> for PrettyFields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> std::fmt::Result {
        let mut visitor = SkipOtel(DefaultVisitor::new(writer, true));
        fields.record(&mut visitor);
        visitor.0.finish()
    }
}
