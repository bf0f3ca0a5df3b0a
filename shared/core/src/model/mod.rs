//! The data model: sessions, events and their kind-specific payloads.
//!
//! Two layers live here. *Submissions* ([`submission`]) are what a producer
//! sends: loosely typed, possibly wrong. *Domain values* ([`Event`],
//! [`SessionStart`], [`SessionEnd`]) can only be obtained by validating a
//! submission, so code that holds one never has to check it again.

mod event;
mod idempotency;
mod ids;
mod limits;
mod payload;
mod session;
pub mod submission;

pub use event::{Actor, Event, EventKind};
pub use idempotency::IdempotencyKey;
pub use ids::{EventId, SessionId, TenantId};
pub use limits::{Limits, MAX_RECORD_BYTES, MAX_WINDOW_SECS};
pub use payload::{
    AgentAction, CallStatus, Command, ErrorEvent, FileEdit, LlmCall, Payload, TestRun, ToolCall,
    UserMessage,
};
pub use session::{SessionEnd, SessionSource, SessionStart, SessionStatus};

use chrono::{DateTime, Timelike, Utc};

/// Postgres keeps microseconds; normalising here means the hash, Kafka and the
/// database all see the same instant. Sub-microsecond digits carry no meaning
/// for agent telemetry, so this is a change of precision, not a repair.
pub fn truncate_to_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.nanosecond();
    // `with_nanosecond` only fails for values >= 2e9; ours is smaller.
    t.with_nanosecond(nanos - nanos % 1_000).unwrap_or(t)
}
