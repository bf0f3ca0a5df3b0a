//! What a consumer service implements to run on the exactly-once step
//! ([`crate::exactly_once`]): a [`Stage`] (state type, pure `apply`,
//! `write` of a batch's effects) and the types it sees.

use std::future::Future;

use chrono::{DateTime, Utc};
use rdkafka::message::OwnedMessage;
use serde::de::DeserializeOwned;
use serde::Serialize;
use sqlx::PgConnection;
use uuid::Uuid;

use achilles_core::db::outbox::NewOutboxRecord;
use achilles_core::telemetry::SpanContext;
use achilles_core::wire::codec::EncodeError;
use achilles_core::wire::Record;

use crate::dead_letter::outbox_dead_letter;
use crate::error::StepError;
use crate::sessions::Session;

/// A consumer of the events topic whose effects commit exactly once.
pub trait Stage: Send + Sync + 'static {
    /// Per-session state, checkpointed with the positions (`()` if none).
    type State: Send + Sync + 'static;
    /// What applying a batch produced, written by [`Stage::write`].
    type Batch: Default + Send;

    /// The `consumer` label of metrics and logs, and the key of this
    /// stage's rows in `consumer_state`.
    const NAME: &'static str;
    /// The `stage` label of `achilles_freshness_seconds` for its events.
    const FRESHNESS: &'static str;
    /// Whether state is kept and checkpointed; landing keeps none.
    const STATEFUL: bool = true;
    /// Records for another tenant's session are dead-lettered; a stage that
    /// reads the same topic as one that already does so may only skip them.
    const PARKS_FOREIGN: bool = true;

    /// The state of a session this stage has never seen.
    fn new_state(&self) -> Self::State;

    /// A copy of a state, kept while a transaction changes the original so
    /// a failed one can be undone in memory.
    fn snapshot(&self, state: &Self::State) -> Self::State;

    /// The checkpoint form of a state (JSON text; [`to_json`] for serde
    /// types).
    fn save_state(&self, state: &Self::State) -> Result<String, EncodeError>;

    /// A state from its checkpoint; an error is never papered over with an
    /// empty state (the session's records are parked instead).
    fn load_state(&self, text: &str) -> Result<Self::State, String>;

    /// Folds one record into its session and the batch's effects. Pure (no
    /// I/O); a record that can never be applied is refused with a reason
    /// and parked.
    fn apply(
        &self,
        session: &mut Session<Self::State>,
        input: Input,
        out: &mut Self::Batch,
    ) -> Result<(), Refused>;

    /// Writes the batch's effects in the batch's transaction; returns the
    /// records to publish through the outbox. `touched` is in id order.
    fn write<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        out: &'a mut Self::Batch,
        ctx: &'a WriteCtx<'a>,
        touched: &'a [&'a Session<Self::State>],
    ) -> impl Future<Output = Result<Vec<NewOutboxRecord>, StepError>> + Send + 'a;

    /// Called once the batch committed (metrics that must count once).
    fn committed(&self, _out: Self::Batch) {}

    /// A finished session (ended) is dropped from memory after its commit.
    fn finished(_state: &Self::State) -> bool {
        false
    }
}

/// [`Stage::save_state`] for a serde state.
pub fn to_json<T: Serialize>(state: &T) -> Result<String, EncodeError> {
    serde_json::to_string(state).map_err(|e| EncodeError(format!("session state: {e}")))
}

/// [`Stage::load_state`] for a serde state.
pub fn from_json<T: DeserializeOwned>(text: &str) -> Result<T, String> {
    serde_json::from_str(text).map_err(|e| e.to_string())
}

/// One decoded record handed to [`Stage::apply`].
pub struct Input {
    /// The decoded record.
    pub record: Record,
    /// When the API or gate accepted it.
    pub ingested_at: DateTime<Utc>,
    /// The source record's trace context, if it carried one.
    pub trace: Option<SpanContext>,
    /// Its index in the batch, for [`WriteCtx::dead_letter`].
    pub source: usize,
}

/// Why a record cannot be applied.
#[derive(Debug)]
pub struct Refused {
    /// Stable machine-readable reason.
    pub code: &'static str,
    /// Human-readable reason.
    pub reason: String,
}

/// What `write` may need of the batch beyond its effects.
pub struct WriteCtx<'a> {
    pub(crate) batch: &'a [OwnedMessage],
    pub(crate) group: &'a str,
    pub(crate) dead_letter_topic: &'a str,
    pub(crate) consumer: &'static str,
    pub(crate) parked: std::sync::Mutex<Vec<&'static str>>,
}

impl WriteCtx<'_> {
    /// Locks the `sessions` rows this batch updates, in id order, for the
    /// rest of the transaction. The one way a stage may update session
    /// rows: call it once, right before those updates, and update no other
    /// session row (store.rs says why that cannot deadlock; holding the
    /// locks only from here to the commit keeps other consumers' waits
    /// short).
    pub async fn lock_sessions(
        &self,
        conn: &mut PgConnection,
        ids: &[Uuid],
    ) -> Result<(), sqlx::Error> {
        let mut ids = ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        crate::store::lock_sessions(conn, &ids).await
    }

    /// Parks the batch's record `source` (refused by the database for a
    /// reason of its own, say) in this transaction.
    pub fn dead_letter(
        &self,
        source: usize,
        code: &'static str,
        reason: &str,
    ) -> Result<Option<NewOutboxRecord>, EncodeError> {
        let Some(m) = self.batch.get(source) else {
            return Ok(None);
        };
        self.parked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(code);
        outbox_dead_letter(
            m,
            self.consumer,
            self.group,
            self.dead_letter_topic,
            code,
            reason,
        )
        .map(Some)
    }
}
