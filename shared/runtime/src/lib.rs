//! `achilles-runtime`: the machinery shared by every consumer service (raw
//! sink, stream processor, monitoring agent), so each service is only its
//! stage or handler.
//!
//! * [`exactly_once`] — the exactly-once step for consumers that write
//!   Postgres (landing, processor, light mode): a service implements
//!   [`Stage`], the runtime owns positions, decoding, ownership, dedup,
//!   state, the outbox and the error dispositions. The argument for
//!   exactly-once is written there, once; [`stage`] is what a service
//!   implements.
//! * [`consumer_loop`] — the at-least-once loop for idempotent handlers
//!   (the intake gate, deep mode, webhook fan-out).
//! * [`positions`] — positions in Postgres and the check that they still
//!   fit the topic; [`sessions`] — per-session state in memory, bounded;
//!   [`store`] — the runtime's SQL.
//! * [`fetch`] — gathering a batch without fixed waits.
//! * [`dead_letter`] — parking records that can never be processed.
//! * [`outbox`] — publishing the transactional outbox after commit.
//! * [`context`] — rebalances and lag from librdkafka's callbacks.
//! * [`ops`] — `/healthz`, `/readyz`, `/metrics` for probes and Prometheus.
//! * [`settings`] — one constructor for consumers from `[kafka]` and
//!   `[consumer]`.
//! * [`shutdown`] — one shutdown signal fanned out to every task.
//! * [`error`] — error types and their retry/dead-letter decision.
//! * [`trace`] — a span per batch, linked to (and, with OTLP export, a span
//!   in) the trace of every record it holds.

#![warn(missing_docs)]

pub mod consumer_loop;
pub mod context;
pub mod dead_letter;
pub mod error;
pub mod exactly_once;
pub mod fetch;
pub mod ops;
pub mod outbox;
pub mod positions;
pub mod sessions;
pub mod settings;
pub mod shutdown;
pub mod stage;
mod store;
pub mod trace;
mod transaction;

pub use consumer_loop::{BatchHandler, ConsumerLoop, LoopSettings, StepReport};
pub use context::ConsumerCtx;
pub use dead_letter::{DeadLetterSink, Rejected};
pub use error::{HandlerError, StepError};
pub use exactly_once::{ExactlyOnce, StepSettings};
pub use sessions::Session;
pub use shutdown::Shutdown;
pub use stage::{Input, Refused, Stage, WriteCtx};
