//! Per-request observability: metrics by route template, and a tracing
//! span that continues the caller's W3C trace (`traceparent`, extracted
//! with the TraceContext propagator) or starts a new one. The publisher
//! injects the current context into every Kafka record, so the event's
//! consumers join the same trace.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::field::Empty;
use tracing::Instrument;

use achilles_core::metrics;
use achilles_core::telemetry::{self, HeaderExtractor};

pub async fn middleware(req: Request, next: Next) -> Response {
    let started = Instant::now();
    // The route template, never the raw path: `/v1/sessions/{id}` keeps the
    // label set bounded however many sessions exist.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let parent = telemetry::extract(&HeaderExtractor(req.headers()));
    let span = tracing::info_span!(
        "http",
        %method,
        %route,
        trace_id = Empty,
        otel.name = %format_args!("{method} {route}"),
        otel.kind = "server",
        otel.status_code = Empty,
    );
    telemetry::set_remote_parent(&span, parent.as_ref());

    let response = next.run(req).instrument(span.clone()).await;

    let status = response.status().as_u16();
    metrics::HTTP_REQUESTS
        .with_label_values(&[&route, &method, &status.to_string()])
        .inc();
    metrics::HTTP_DURATION
        .with_label_values(&[&route, &method])
        .observe(started.elapsed().as_secs_f64());
    span.in_scope(|| {
        if status >= 500 {
            span.record("otel.status_code", "ERROR");
            tracing::warn!(
                status,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "request failed"
            );
        } else {
            tracing::debug!(
                status,
                elapsed_ms = started.elapsed().as_millis() as u64,
                "request"
            );
        }
    });
    response
}

#[cfg(test)]
mod tests {
    use super::*;
    use achilles_core::config::LogSettings;
    use axum::body::Body;
    use axum::routing::get;
    use axum::Router;
    use tower::ServiceExt;

    async fn traceparent_seen_by_handler(incoming: Option<&str>) -> String {
        let app = Router::new()
            .route("/t", get(|| async { telemetry::current_traceparent() }))
            .layer(axum::middleware::from_fn(middleware));
        let mut req = axum::http::Request::get("/t");
        if let Some(tp) = incoming {
            req = req.header("traceparent", tp);
        }
        let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let body = axum::body::to_bytes(resp.into_body(), 1024).await.unwrap();
        String::from_utf8(body.to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_request_span_continues_the_callers_trace() {
        // Export off, then on (nothing listens on port 9: exports fail,
        // which must not matter).
        for otlp_endpoint in [None, Some("http://127.0.0.1:9".to_owned())] {
            let log = LogSettings {
                filter: "off".into(),
                otlp_endpoint,
                ..LogSettings::default()
            };
            let (dispatch, guard) = telemetry::build(&log, "test", std::io::sink);
            let _default = tracing::dispatcher::set_default(&dispatch);
            let incoming = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
            let out = traceparent_seen_by_handler(Some(incoming)).await;
            let sc = telemetry::parse_traceparent(&out).expect("valid traceparent");
            assert_eq!(
                telemetry::trace_id_hex(sc.trace_id()),
                "4bf92f3577b34da6a3ce929d0e0e4736",
                "same trace: {out}"
            );
            assert_ne!(
                telemetry::span_id_hex(sc.span_id()),
                "00f067aa0ba902b7",
                "the request span is a child of the caller's: {out}"
            );
            // Without (or with a broken) traceparent a new trace starts.
            for incoming in [None, Some("00-garbage")] {
                let out = traceparent_seen_by_handler(incoming).await;
                let sc = telemetry::parse_traceparent(&out).expect("valid traceparent");
                assert_ne!(
                    telemetry::trace_id_hex(sc.trace_id()),
                    "4bf92f3577b34da6a3ce929d0e0e4736"
                );
            }
            drop(guard);
        }
    }
}
