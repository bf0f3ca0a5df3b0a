//! `achilles-runtime`: the machinery shared by every consumer service (raw
//! sink, stream processor, monitoring agent), so each service is only its
//! handler.
//!
//! * [`consumer_loop`] — batching, at-least-once consumer loop with retries
//!   and a deadline-bounded graceful shutdown; one step is exposed for tests.
//! * [`dead_letter`] — parking records that can never be processed.
//! * [`context`] — rebalance and lag bookkeeping for metrics.
//! * [`ops`] — `/healthz`, `/readyz`, `/metrics` for probes and Prometheus.
//! * [`outbox`] — publishing the transactional outbox after commit.
//! * [`shutdown`] — one shutdown signal fanned out to every task.
//! * [`error`] — the handler error type and its retry/dead-letter decision.
//! * [`trace`] — a span per batch, linked to (and, with OTLP export, a span
//!   in) the trace of every record it holds.

pub mod consumer_loop;
pub mod context;
pub mod dead_letter;
pub mod error;
pub mod ops;
pub mod outbox;
pub mod shutdown;
pub mod trace;

pub use consumer_loop::{BatchHandler, ConsumerLoop, LoopSettings, StepReport};
pub use context::ConsumerCtx;
pub use dead_letter::{DeadLetterSink, Rejected};
pub use error::HandlerError;
pub use shutdown::Shutdown;
