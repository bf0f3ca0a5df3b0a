//! Per-request observability: metrics by route template, a tracing span
//! carrying the W3C trace id, and the trace context that travels on into
//! Kafka headers.

use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use achilles_core::metrics;

/// The request's W3C `traceparent`: the caller's when it sent a valid one,
/// otherwise a fresh one, so every event's path can be followed from the
/// API log line into the consumers.
#[derive(Clone, Debug)]
pub struct TraceParent(pub String);

impl TraceParent {
    pub fn trace_id(&self) -> &str {
        self.0.get(3..35).unwrap_or("")
    }
}

fn valid_traceparent(v: &str) -> bool {
    let parts: Vec<&str> = v.split('-').collect();
    parts.len() == 4
        && parts[0].len() == 2
        && parts[1].len() == 32
        && parts[2].len() == 16
        && parts[3].len() == 2
        && parts
            .iter()
            .all(|p| p.bytes().all(|b| b.is_ascii_hexdigit()))
        && parts[1] != "00000000000000000000000000000000"
}

fn fresh_traceparent() -> String {
    let trace = uuid::Uuid::new_v4().simple().to_string();
    let span = &uuid::Uuid::new_v4().simple().to_string()[..16];
    format!("00-{trace}-{span}-01")
}

pub async fn middleware(mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    // The route template, never the raw path: `/v1/sessions/{id}` keeps the
    // label set bounded however many sessions exist.
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let tp = req
        .headers()
        .get("traceparent")
        .and_then(|v| v.to_str().ok())
        .filter(|v| valid_traceparent(v))
        .map_or_else(fresh_traceparent, str::to_owned);
    let tp = TraceParent(tp);
    let span = tracing::info_span!("http", %method, %route, trace_id = %tp.trace_id());
    req.extensions_mut().insert(tp);

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

    #[test]
    fn traceparent_validation() {
        assert!(valid_traceparent(
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent(
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01"
        ));
        assert!(!valid_traceparent("garbage"));
        let fresh = fresh_traceparent();
        assert!(valid_traceparent(&fresh), "{fresh}");
        assert_eq!(TraceParent(fresh.clone()).trace_id(), &fresh[3..35]);
    }
}
