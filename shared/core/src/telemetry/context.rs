//! W3C trace context: reading it from HTTP and Kafka headers, attaching it
//! to `tracing` spans, and writing the current one into outgoing records.
//!
//! With OTLP export on, the context lives in the OpenTelemetry layer (each
//! span gets its own OpenTelemetry span id). With it off, a span that
//! starts a unit of work (the HTTP request) carries a [`LocalContext`]
//! extension: the caller's trace id (or a fresh one) and a span id of its
//! own, which is what goes out as the parent in the `traceparent` header.
//! Either way [`current_traceparent`] always yields a valid header.

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt, TraceFlags, TraceId, TraceState};
use opentelemetry::Context;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::{IdGenerator, RandomIdGenerator};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Registry;

use crate::wire::headers;

pub use opentelemetry_http::HeaderExtractor;

/// The trace context a span carries when OpenTelemetry is off.
#[derive(Clone, Debug)]
pub(crate) struct LocalContext(pub(crate) SpanContext);

/// Set on the dispatcher (as a layer) so helpers know whether spans go to
/// OpenTelemetry.
pub(crate) struct TraceMode {
    pub(crate) otel: bool,
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for TraceMode {}

fn otel_on(dispatch: &tracing::Dispatch) -> bool {
    dispatch.downcast_ref::<TraceMode>().is_some_and(|m| m.otel)
}

/// Whether the current dispatcher exports spans to OpenTelemetry.
pub fn otel_enabled() -> bool {
    tracing::dispatcher::get_default(otel_on)
}

/// Parses W3C `traceparent` (and `tracestate`) from any carrier with the
/// TraceContext propagator. `None` when absent or invalid.
pub fn extract(carrier: &dyn Extractor) -> Option<SpanContext> {
    // The propagator parses the ids as numbers and so lets short ones
    // through; the W3C format has fixed widths.
    if !well_formed(carrier.get(headers::TRACEPARENT)?.trim()) {
        return None;
    }
    let cx = TraceContextPropagator::new().extract(carrier);
    let sc = cx.span().span_context().clone();
    sc.is_valid().then_some(sc)
}

/// `version-traceid-parentid-flags` with 2, 32, 16 and 2 hex digits (a
/// later version may append fields; version 00 may not, which the
/// propagator checks).
fn well_formed(traceparent: &str) -> bool {
    let parts: Vec<&str> = traceparent.split('-').collect();
    parts.len() >= 4
        && [2, 32, 16, 2]
            .iter()
            .zip(&parts)
            .all(|(len, p)| p.len() == *len && p.bytes().all(|b| b.is_ascii_hexdigit()))
}

/// [`extract`] from a bare `traceparent` value.
pub fn parse_traceparent(value: &str) -> Option<SpanContext> {
    extract(&Single(headers::TRACEPARENT, value))
}

struct Single<'a>(&'a str, &'a str);

impl Extractor for Single<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        (key == self.0).then_some(self.1)
    }
    fn keys(&self) -> Vec<&str> {
        vec![self.0]
    }
}

/// Kafka headers as a propagation carrier (header names compared without
/// regard to case; the first value wins).
pub struct KafkaExtractor<'a, H: Headers>(pub &'a H);

impl<H: Headers> Extractor for KafkaExtractor<'_, H> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|h| h.key.eq_ignore_ascii_case(key))
            .and_then(|h| std::str::from_utf8(h.value?).ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.iter().map(|h| h.key).collect()
    }
}

/// The trace context a Kafka record carries, if any.
pub fn kafka_context<M: Message>(message: &M) -> Option<SpanContext> {
    extract(&KafkaExtractor(message.headers()?))
}

/// The record key as text: the session id on every Achilles topic.
pub fn record_session_id<M: Message>(message: &M) -> Option<&str> {
    message.key().and_then(|k| std::str::from_utf8(k).ok())
}

/// The `traceparent` (and, when non-empty, `tracestate`) headers for a
/// context, written by the TraceContext propagator.
pub fn header_values(sc: &SpanContext) -> Vec<(&'static str, String)> {
    struct Collect(Vec<(&'static str, String)>);
    impl Injector for Collect {
        fn set(&mut self, key: &str, value: String) {
            if key == headers::TRACEPARENT {
                self.0.push((headers::TRACEPARENT, value));
            } else if key == headers::TRACESTATE && !value.is_empty() {
                self.0.push((headers::TRACESTATE, value));
            }
        }
    }
    let mut out = Collect(Vec::with_capacity(2));
    let cx = Context::new().with_remote_span_context(sc.clone());
    TraceContextPropagator::new().inject_context(&cx, &mut out);
    out.0
}

/// Adds the trace context headers of `sc` to Kafka headers.
pub fn insert_kafka_headers(mut hdrs: OwnedHeaders, sc: &SpanContext) -> OwnedHeaders {
    for (key, value) in header_values(sc) {
        hdrs = hdrs.insert(Header {
            key,
            value: Some(&value),
        });
    }
    hdrs
}

/// The `traceparent` header value of a context.
pub fn traceparent(sc: &SpanContext) -> String {
    header_values(sc)
        .into_iter()
        .find_map(|(k, v)| (k == headers::TRACEPARENT).then_some(v))
        .unwrap_or_default()
}

/// A new sampled root context: fresh trace and span ids.
pub fn fresh_context() -> SpanContext {
    let ids = RandomIdGenerator::default();
    SpanContext::new(
        ids.new_trace_id(),
        ids.new_span_id(),
        TraceFlags::SAMPLED,
        false,
        TraceState::default(),
    )
}

/// A context for a new span in `parent`'s trace (or a fresh trace).
fn child_of(parent: Option<&SpanContext>) -> SpanContext {
    match parent {
        Some(p) => SpanContext::new(
            p.trace_id(),
            RandomIdGenerator::default().new_span_id(),
            p.trace_flags(),
            false,
            p.trace_state().clone(),
        ),
        None => fresh_context(),
    }
}

/// Lower-case hex trace id, as logged in `trace_id`.
pub fn trace_id_hex(id: TraceId) -> String {
    format!("{id:032x}")
}

/// Lower-case hex span id, as logged in `span_id`.
pub fn span_id_hex(id: SpanId) -> String {
    format!("{id:016x}")
}

/// Makes `span` continue the trace of `parent` (a remote caller or the
/// producer of a record), or start a new trace when there is none, and
/// records its `trace_id` field (declare it as `trace_id =
/// tracing::field::Empty`). Call before the span is first entered.
pub fn set_remote_parent(span: &Span, parent: Option<&SpanContext>) {
    let mut otel = false;
    span.with_subscriber(|(id, dispatch)| {
        if otel_on(dispatch) {
            otel = true;
        } else if let Some(registry) = dispatch.downcast_ref::<Registry>() {
            if let Some(data) = registry.span(id) {
                data.extensions_mut()
                    .replace(LocalContext(child_of(parent)));
            }
        }
    });
    if otel {
        if let Some(p) = parent {
            let _ = span.set_parent(Context::new().with_remote_span_context(p.clone()));
        }
    }
    if let Some(sc) = span_context(span) {
        span.record("trace_id", trace_id_hex(sc.trace_id()));
    }
}

/// Links `span` to another trace's span (OpenTelemetry only; a no-op
/// otherwise, where links have nowhere to go).
pub fn add_link(span: &Span, to: &SpanContext) {
    span.add_link(to.clone());
}

/// The trace context of `span`: its OpenTelemetry context when export is
/// on, otherwise the nearest [`LocalContext`] among it and its parents.
pub fn span_context(span: &Span) -> Option<SpanContext> {
    span.with_subscriber(|(id, dispatch)| {
        if otel_on(dispatch) {
            return None;
        }
        let registry = dispatch.downcast_ref::<Registry>()?;
        let data = registry.span(id)?;
        data.scope()
            .find_map(|s| s.extensions().get::<LocalContext>().map(|c| c.0.clone()))
    })
    .flatten()
    .or_else(|| {
        let sc = span.context().span().span_context().clone();
        sc.is_valid().then_some(sc)
    })
}

/// The current span's trace context, or a fresh root context when there
/// is none (no span, no subscriber): outgoing records always carry one.
pub fn current_context() -> SpanContext {
    span_context(&Span::current()).unwrap_or_else(fresh_context)
}

/// `traceparent` for the current span; always valid.
pub fn current_traceparent() -> String {
    traceparent(&current_context())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::message::{OwnedMessage, Timestamp};

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    fn record(headers: OwnedHeaders, key: &str) -> OwnedMessage {
        OwnedMessage::new(
            Some(b"{}".to_vec()),
            Some(key.as_bytes().to_vec()),
            "t".into(),
            Timestamp::NotAvailable,
            0,
            7,
            Some(headers),
        )
    }

    #[test]
    fn traceparent_parses_and_formats_back() {
        let sc = parse_traceparent(TP).expect("valid");
        assert_eq!(
            trace_id_hex(sc.trace_id()),
            "4bf92f3577b34da6a3ce929d0e0e4736"
        );
        assert_eq!(span_id_hex(sc.span_id()), "00f067aa0ba902b7");
        assert!(sc.is_sampled());
        assert!(sc.is_remote());
        assert_eq!(traceparent(&sc), TP);
        for bad in [
            "garbage",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-1",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        ] {
            assert!(parse_traceparent(bad).is_none(), "{bad}");
        }
        let unsampled = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
        assert_eq!(
            traceparent(&parse_traceparent(unsampled).unwrap()),
            unsampled
        );
    }

    #[test]
    fn fresh_contexts_are_valid_and_distinct() {
        let (a, b) = (fresh_context(), fresh_context());
        assert!(a.is_valid() && b.is_valid());
        assert_ne!(a.trace_id(), b.trace_id());
        let tp = traceparent(&a);
        assert_eq!(parse_traceparent(&tp).unwrap().trace_id(), a.trace_id());
        let child = child_of(Some(&a));
        assert_eq!(child.trace_id(), a.trace_id());
        assert_ne!(child.span_id(), a.span_id());
    }

    #[test]
    fn kafka_headers_round_trip_with_tracestate() {
        let cx = extract(&KafkaExtractor(
            &OwnedHeaders::new()
                .insert(Header {
                    key: "TraceParent",
                    value: Some(TP),
                })
                .insert(Header {
                    key: "tracestate",
                    value: Some("vendor=abc"),
                }),
        ))
        .expect("case-insensitive header names");
        let hdrs = insert_kafka_headers(OwnedHeaders::new(), &cx);
        let m = record(hdrs, "0190b3a2-7c1e-7a51-9d7e-000000000001");
        let back = kafka_context(&m).expect("round trip");
        assert_eq!(back.trace_id(), cx.trace_id());
        assert_eq!(back.span_id(), cx.span_id());
        assert_eq!(back.trace_state().header(), "vendor=abc");
        assert_eq!(
            record_session_id(&m),
            Some("0190b3a2-7c1e-7a51-9d7e-000000000001")
        );
        assert!(kafka_context(&record(OwnedHeaders::new(), "k")).is_none());
    }

    #[test]
    fn without_a_subscriber_the_current_context_is_fresh_but_valid() {
        let tp = current_traceparent();
        assert!(parse_traceparent(&tp).is_some(), "{tp}");
        assert!(!otel_enabled());
    }
}
