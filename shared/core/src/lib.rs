//! `achilles-core`: the one place where Achilles defines what its data *is*.
//!
//! Every service links this crate and nothing else may define models,
//! validation or hashing (see the README's architecture section). The modules follow the
//! path of an event through the pipeline:
//!
//! * [`model`] — newtypes and domain types; parsing a submission into them *is*
//!   validation, so an [`model::Event`] value is valid by construction.
//! * [`hash`] — the canonical SHA-256 event hash, the pipeline's dedup key.
//! * [`topics`] and [`wire`] — typed Kafka topics and their Avro/JSON codecs.
//! * [`db`] — Postgres access shared by the API (reads) and consumers (writes).
//! * [`config`], [`telemetry`], [`metrics`] — layered settings, logs, metrics.
//! * [`scrub`] — secret scrubbing of event texts before they are hashed.
//! * [`quota`] — per-tenant rate limits (token buckets).
//! * [`kafka`] — broker-agnostic producer/consumer/admin construction.
//! * [`error`] — error types that know whether they are retryable or belong in
//!   the dead-letter topic.

pub mod auth;
pub mod config;
pub mod db;
pub mod error;
pub mod hash;
pub mod kafka;
pub mod metrics;
pub mod model;
pub mod publisher;
pub mod quota;
pub mod scrub;
pub mod shutdown;
pub mod spend;
pub mod telemetry;
pub mod topics;
pub mod webhook;
pub mod wire;

pub use error::{Disposition, ValidationError, ValidationErrors};
// Re-exported so binaries unwrap secrets with the same version we wrap them in.
pub use secrecy;
