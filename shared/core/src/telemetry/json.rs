//! The JSON log line: one object per event, flat.
//!
//! ```json
//! {"timestamp":"2026-05-01T12:00:00.123456Z","level":"INFO","target":"achilles_api::observe",
//!  "span":"http","method":"POST","route":"/v1/events/batch","tenant":"acme",
//!  "session_id":"0190…","trace_id":"4bf9…4736","span_id":"00f0…02b7","message":"…"}
//! ```
//!
//! Fields of every span in scope are merged in (the innermost span wins a
//! name clash), then `trace_id`/`span_id` of the current span (its
//! OpenTelemetry context when export is on, else the W3C context recorded
//! on the request span), then the event's own fields, which win: a
//! per-record event in a consumer batch names the record's `trace_id`.

use std::fmt;
use std::sync::{Arc, OnceLock};

use opentelemetry::trace::TraceContextExt;
use serde_json::Value;
use tracing::dispatcher::WeakDispatch;
use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields, FormattedFields};
use tracing_subscriber::registry::LookupSpan;

use super::context::{span_id_hex, trace_id_hex, LocalContext};

pub(crate) struct JsonLines {
    /// The dispatcher this formatter belongs to, for reading OpenTelemetry
    /// contexts (set once the dispatcher exists; weak, so no cycle).
    pub(crate) dispatch: Arc<OnceLock<WeakDispatch>>,
    pub(crate) otel: bool,
}

/// Insertion-ordered fields; a later value for a name replaces the earlier.
#[derive(Default)]
struct Fields(Vec<(String, Value)>);

impl Fields {
    fn set(&mut self, name: &str, value: Value) {
        match self.0.iter_mut().find(|(k, _)| k == name) {
            Some(slot) => slot.1 = value,
            None => self.0.push((name.to_owned(), value)),
        }
    }
    fn remove(&mut self, name: &str) {
        self.0.retain(|(k, _)| k != name);
    }
    fn get(&self, name: &str) -> Option<&Value> {
        self.0.iter().find(|(k, _)| k == name).map(|(_, v)| v)
    }
}

struct EventFields<'a>(&'a mut Fields);

impl Visit for EventFields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.set(field.name(), Value::from(value));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.0.set(field.name(), Value::from(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.0.set(field.name(), Value::from(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.0.set(field.name(), Value::from(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.0.set(field.name(), Value::from(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.0.set(field.name(), Value::from(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0.set(field.name(), Value::from(format!("{value:?}")));
    }
}

impl<S, N> FormatEvent<S, N> for JsonLines
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = Fields::default();
        fields.set(
            "timestamp",
            Value::from(chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)),
        );
        fields.set("level", Value::from(meta.level().as_str()));
        fields.set("target", Value::from(meta.target()));

        let leaf = ctx.event_scope().and_then(|mut s| s.next()).map(|s| s.id());
        // Read before any extension guard is held below: the lookup may
        // need to lock the span's OpenTelemetry data.
        let otel_ids = match (&leaf, self.otel) {
            (Some(id), true) => self
                .dispatch
                .get()
                .and_then(WeakDispatch::upgrade)
                .and_then(|d| tracing_opentelemetry::get_otel_context(id, &d))
                .map(|cx| cx.span().span_context().clone())
                .filter(|sc| sc.is_valid()),
            _ => None,
        };
        let mut local = None;
        if let Some(scope) = ctx.event_scope() {
            let mut name = None;
            for span in scope.from_root() {
                let ext = span.extensions();
                if let Some(f) = ext.get::<FormattedFields<N>>() {
                    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(f.as_str()) {
                        // `otel.*` fields steer the exporter (span name,
                        // kind, status); they are not log context.
                        for (k, v) in map.into_iter().filter(|(k, _)| !k.starts_with("otel.")) {
                            fields.set(&k, v);
                        }
                    }
                }
                if let Some(c) = ext.get::<LocalContext>() {
                    local = Some(c.0.clone());
                }
                name = Some(span.name());
            }
            if let Some(name) = name {
                fields.set("span", Value::from(name));
            }
        }
        if let Some(sc) = otel_ids.or(local) {
            fields.set("trace_id", Value::from(trace_id_hex(sc.trace_id())));
            fields.set("span_id", Value::from(span_id_hex(sc.span_id())));
        }

        let context_trace = fields.get("trace_id").cloned();
        let mut own = Fields::default();
        event.record(&mut EventFields(&mut own));
        if own
            .get("trace_id")
            .is_some_and(|t| Some(t) != context_trace.as_ref())
            && own.get("span_id").is_none()
        {
            // The event names another trace: the span id is not of it.
            fields.remove("span_id");
        }
        for (k, v) in own.0 {
            if k.starts_with("log.") {
                continue;
            }
            fields.set(&k, v);
        }

        writer.write_char('{')?;
        for (i, (k, v)) in fields.0.iter().enumerate() {
            if i > 0 {
                writer.write_char(',')?;
            }
            let k = serde_json::to_string(k).map_err(|_| fmt::Error)?;
            let v = serde_json::to_string(v).map_err(|_| fmt::Error)?;
            writer.write_str(&k)?;
            writer.write_char(':')?;
            writer.write_str(&v)?;
        }
        writer.write_str("}\n")
    }
}
