//! A real OpenTelemetry SDK exporting OTLP/HTTP to an Achilles API, for
//! the OTLP ingest tests: the bytes on the wire are what an instrumented
//! agent sends, not something a test wrote by hand.
//!
//! [`Exporter::claude_event`] emits a log record the way Claude Code does
//! (body `claude_code.<name>`, attribute `event.name`, `session.id`, every
//! value a string); [`Exporter::tracer`] gives spans for GenAI-style
//! instrumentation.

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use achilles_core::telemetry::OtlpHttpClient;
use opentelemetry::logs::{AnyValue, LogRecord, Logger, LoggerProvider, Severity};
use opentelemetry::trace::TracerProvider;
use opentelemetry::KeyValue;
use opentelemetry_otlp::{Compression, Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::logs::{SdkLogger, SdkLoggerProvider};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

const TIMEOUT: Duration = Duration::from_secs(10);

/// How the exporter talks to the API.
#[derive(Clone, Copy, Debug)]
pub struct Wire {
    pub json: bool,
    pub gzip: bool,
    /// `Authorization: Bearer <key>` instead of `x-api-key: <key>`.
    pub bearer: bool,
}

pub struct Exporter {
    logs: SdkLoggerProvider,
    traces: SdkTracerProvider,
    logger: SdkLogger,
}

impl Exporter {
    /// Exports to `base` (`http://host:port`) with `key`, as the service
    /// `service_name` with these extra resource attributes.
    pub fn new(
        base: &str,
        key: &str,
        wire: Wire,
        service_name: &str,
        resource: &[(&str, &str)],
    ) -> Self {
        let headers: HashMap<String, String> = if wire.bearer {
            [("authorization".into(), format!("Bearer {key}"))].into()
        } else {
            [("x-api-key".into(), key.to_owned())].into()
        };
        let protocol = if wire.json {
            Protocol::HttpJson
        } else {
            Protocol::HttpBinary
        };
        let resource = Resource::builder()
            .with_service_name(service_name.to_owned())
            .with_attributes(
                resource
                    .iter()
                    .map(|(k, v)| KeyValue::new(k.to_string(), v.to_string())),
            )
            .build();
        let mut logs = opentelemetry_otlp::LogExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(format!("{base}/v1/logs"))
            .with_timeout(TIMEOUT)
            .with_headers(headers.clone())
            .with_http_client(OtlpHttpClient::new(TIMEOUT));
        let mut spans = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(protocol)
            .with_endpoint(format!("{base}/v1/traces"))
            .with_timeout(TIMEOUT)
            .with_headers(headers)
            .with_http_client(OtlpHttpClient::new(TIMEOUT));
        if wire.gzip {
            logs = logs.with_compression(Compression::Gzip);
            spans = spans.with_compression(Compression::Gzip);
        }
        let logs = SdkLoggerProvider::builder()
            .with_batch_exporter(logs.build().expect("log exporter builds"))
            .with_resource(resource.clone())
            .build();
        let traces = SdkTracerProvider::builder()
            .with_batch_exporter(spans.build().expect("span exporter builds"))
            .with_resource(resource)
            .build();
        let logger = logs.logger("com.anthropic.claude_code.events");
        Self {
            logs,
            traces,
            logger,
        }
    }

    /// A Claude Code event: body `claude_code.<name>`, `event.name`
    /// `<name>`, the session, a sequence number and `attrs`, all strings.
    pub fn claude_event(
        &self,
        name: &'static str,
        session: &str,
        at: SystemTime,
        attrs: &[(&str, &str)],
    ) {
        let mut r = self.logger.create_log_record();
        r.set_event_name(name);
        r.set_body(AnyValue::from(format!("claude_code.{name}")));
        r.set_timestamp(at);
        r.set_observed_timestamp(at);
        r.set_severity_number(Severity::Info);
        r.add_attribute("event.name", name);
        r.add_attribute("session.id", session.to_owned());
        r.add_attribute(
            "event.timestamp",
            chrono::DateTime::<chrono::Utc>::from(at).to_rfc3339(),
        );
        for (k, v) in attrs {
            r.add_attribute(k.to_string(), v.to_string());
        }
        self.logger.emit(r);
    }

    /// Any log record (e.g. a `session.end` event).
    pub fn log(
        &self,
        name: &'static str,
        at: SystemTime,
        severity: Severity,
        attrs: &[(&str, &str)],
    ) {
        let mut r = self.logger.create_log_record();
        r.set_event_name(name);
        r.set_timestamp(at);
        r.set_severity_number(severity);
        for (k, v) in attrs {
            r.add_attribute(k.to_string(), v.to_string());
        }
        self.logger.emit(r);
    }

    pub fn tracer(&self) -> SdkTracer {
        self.traces.tracer("agent-framework")
    }

    /// Exports everything emitted so far and waits for the API's answers.
    /// The SDK blocks while it exports, so this runs off the async runtime.
    pub async fn flush(&self) {
        let (logs, traces) = (self.logs.clone(), self.traces.clone());
        tokio::task::spawn_blocking(move || {
            logs.force_flush().expect("logs exported");
            traces.force_flush().expect("spans exported");
        })
        .await
        .expect("flush task");
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        let _ = self.logs.shutdown();
        let _ = self.traces.shutdown();
    }
}
