//! Tracing of consumed batches: how a record's processing joins the trace
//! of the request that produced it.
//!
//! A batch mixes records of many traces, so it gets a `batch` span of its
//! own. With OTLP export on, that span links to each record's context
//! (the standard batching pattern; the SDK keeps up to 128 links per
//! span), and every record that carries a `traceparent` gets a `record`
//! span whose parent is that context and which links back to the batch:
//! it lasts until the batch is processed and committed, so the event's
//! trace shows each consumer that handled it. With export off there are
//! no per-record spans; a `debug` line per record names its `trace_id`
//! and `session_id` instead.

use rdkafka::message::{Message, OwnedMessage};
use tracing::field::Empty;
use tracing::Span;

use achilles_core::telemetry::{self, SpanContext};

pub(crate) struct BatchTrace {
    pub(crate) span: Span,
    /// Held (not entered) while the batch is processed; dropping ends them.
    _records: Vec<Span>,
}

/// `trace_id` of a record's `traceparent`, for log lines about it.
pub fn record_trace_id(m: &OwnedMessage) -> Option<String> {
    telemetry::kafka_context(m).map(|sc| telemetry::trace_id_hex(sc.trace_id()))
}

impl BatchTrace {
    pub(crate) fn start(consumer: &'static str, batch: &[OwnedMessage]) -> Self {
        let span = tracing::info_span!(
            "batch",
            consumer,
            records = batch.len(),
            otel.name = %format_args!("{consumer} process"),
            otel.kind = "consumer",
        );
        if !telemetry::otel_enabled() {
            for m in batch {
                tracing::debug!(
                    parent: &span,
                    session_id = telemetry::record_session_id(m),
                    trace_id = record_trace_id(m).as_deref(),
                    partition = m.partition(),
                    offset = m.offset(),
                    "record received"
                );
            }
            return Self {
                span,
                _records: Vec::new(),
            };
        }
        let contexts: Vec<Option<SpanContext>> =
            batch.iter().map(telemetry::kafka_context).collect();
        for sc in contexts.iter().flatten() {
            telemetry::add_link(&span, sc);
        }
        let batch_cx = telemetry::span_context(&span);
        let mut records = Vec::new();
        for (m, sc) in batch.iter().zip(&contexts) {
            let Some(sc) = sc else { continue };
            let record = tracing::info_span!(
                parent: &span,
                "record",
                session_id = telemetry::record_session_id(m),
                partition = m.partition(),
                offset = m.offset(),
                trace_id = Empty,
                otel.name = %format_args!("{consumer} receive"),
                otel.kind = "consumer",
            );
            telemetry::set_remote_parent(&record, Some(sc));
            if let Some(b) = &batch_cx {
                telemetry::add_link(&record, b);
            }
            tracing::debug!(parent: &record, "record received");
            records.push(record);
        }
        Self {
            span,
            _records: records,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io;
    use std::sync::{Arc, Mutex};

    use achilles_core::config::LogSettings;
    use rdkafka::message::{Header, OwnedHeaders, Timestamp};
    use serde_json::Value;

    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    const TRACE: &str = "4bf92f3577b34da6a3ce929d0e0e4736";
    const SID: &str = "0190b3a2-7c1e-7a51-9d7e-000000000001";

    /// JSON log lines written to memory.
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    impl Capture {
        fn lines(&self) -> Vec<Value> {
            String::from_utf8(self.0.lock().unwrap().clone())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).expect("every line is JSON"))
                .collect()
        }
    }

    fn message(traceparent: Option<&str>, offset: i64) -> OwnedMessage {
        let mut headers = OwnedHeaders::new();
        if let Some(tp) = traceparent {
            headers = headers.insert(Header {
                key: "traceparent",
                value: Some(tp),
            });
        }
        OwnedMessage::new(
            Some(b"x".to_vec()),
            Some(SID.as_bytes().to_vec()),
            "events".into(),
            Timestamp::NotAvailable,
            3,
            offset,
            Some(headers),
        )
    }

    fn received(log: LogSettings) -> Vec<Value> {
        let capture = Capture::default();
        let writer = capture.clone();
        let (dispatch, guard) = telemetry::build(&log, "test", move || writer.clone());
        tracing::dispatcher::with_default(&dispatch, || {
            let batch = [message(Some(TP), 41), message(None, 42)];
            let trace = BatchTrace::start("landing", &batch);
            trace.span.in_scope(|| tracing::warn!("inside the batch"));
        });
        drop(guard);
        capture.lines()
    }

    #[test]
    fn a_records_traceparent_becomes_the_trace_id_of_its_log_line() {
        let lines = received(LogSettings {
            filter: "debug".into(),
            ..LogSettings::default()
        });
        let rec: Vec<&Value> = lines
            .iter()
            .filter(|l| l["message"] == "record received")
            .collect();
        assert_eq!(rec.len(), 2, "{lines:?}");
        assert_eq!(rec[0]["trace_id"], TRACE);
        assert_eq!(rec[0]["session_id"], SID);
        assert_eq!(rec[0]["consumer"], "landing");
        assert_eq!(rec[0]["offset"], 41);
        assert!(
            rec[1].get("trace_id").is_none(),
            "no header, no trace: {}",
            rec[1]
        );
        assert_eq!(rec[1]["session_id"], SID);
    }

    #[test]
    fn with_otlp_on_each_record_gets_a_span_in_its_own_trace() {
        // Nothing listens on port 9; the exporter's failures stay its own.
        let lines = received(LogSettings {
            filter: "debug,opentelemetry=off".into(),
            otlp_endpoint: Some("http://127.0.0.1:9".into()),
            ..LogSettings::default()
        });
        let rec: Vec<&Value> = lines
            .iter()
            .filter(|l| l["message"] == "record received")
            .collect();
        assert_eq!(
            rec.len(),
            1,
            "only records with a context get a span: {lines:?}"
        );
        assert_eq!(rec[0]["trace_id"], TRACE, "{}", rec[0]);
        assert_eq!(rec[0]["span"], "record");
        assert_eq!(rec[0]["session_id"], SID);
        let span_id = rec[0]["span_id"].as_str().unwrap();
        assert_ne!(span_id, "00f067aa0ba902b7", "a span of its own");
        // The batch has a trace of its own.
        let batch = lines
            .iter()
            .find(|l| l["message"] == "inside the batch")
            .unwrap();
        assert_eq!(batch["span"], "batch");
        assert_eq!(batch["trace_id"].as_str().unwrap().len(), 32);
        assert_ne!(batch["trace_id"], TRACE);
    }
}
