//! The validated event and its small enumerations.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::{EventId, Payload, SessionId, TenantId};
use crate::hash::EventHash;

/// Who caused an event.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Actor {
    Agent,
    Human,
    System,
}

impl Actor {
    pub const ALL: [Actor; 3] = [Actor::Agent, Actor::Human, Actor::System];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Agent => "agent",
            Self::Human => "human",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|a| a.as_str() == s)
    }
}

/// The closed set of event kinds. Adding one is a schema change: it needs a
/// payload struct, an Avro branch and a hash test vector.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    FileEdit,
    Command,
    TestRun,
    Error,
    LlmCall,
    ToolCall,
    AgentAction,
    UserMessage,
}

impl EventKind {
    pub const ALL: [EventKind; 8] = [
        EventKind::FileEdit,
        EventKind::Command,
        EventKind::TestRun,
        EventKind::Error,
        EventKind::LlmCall,
        EventKind::ToolCall,
        EventKind::AgentAction,
        EventKind::UserMessage,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::FileEdit => "file_edit",
            Self::Command => "command",
            Self::TestRun => "test_run",
            Self::Error => "error",
            Self::LlmCall => "llm_call",
            Self::ToolCall => "tool_call",
            Self::AgentAction => "agent_action",
            Self::UserMessage => "user_message",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// A validated event. Obtain one with
/// [`EventSubmission::validate`](super::submission::EventSubmission::validate)
/// or by decoding a canonical record (which validates again): there is no
/// other constructor, so holding an `Event` means it passed validation.
#[derive(Clone, Debug, PartialEq, Serialize, ToSchema)]
pub struct Event {
    #[schema(value_type = String, format = Uuid)]
    pub id: EventId,
    #[schema(value_type = String)]
    pub tenant: TenantId,
    #[schema(value_type = String, format = Uuid)]
    pub session_id: SessionId,
    /// When it happened, by the producer's clock (microsecond precision).
    pub occurred_at: DateTime<Utc>,
    pub actor: Actor,
    #[schema(value_type = Option<String>, format = Uuid)]
    pub parent_id: Option<EventId>,
    #[serde(flatten)]
    pub payload: Payload,
    #[schema(value_type = Object)]
    pub attributes: Map<String, Value>,
    /// Canonical SHA-256 of the semantic content; see [`crate::hash`].
    #[schema(value_type = String)]
    pub hash: EventHash,
}

impl Event {
    pub fn kind(&self) -> EventKind {
        self.payload.kind()
    }

    // One argument per field of the event: a parameter struct would only
    // restate `Event` itself, and this is crate-private.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new_unchecked(
        id: Option<EventId>,
        tenant: TenantId,
        session_id: SessionId,
        occurred_at: DateTime<Utc>,
        actor: Actor,
        parent_id: Option<EventId>,
        payload: Payload,
        attributes: Map<String, Value>,
    ) -> Self {
        let hash = crate::hash::event_hash(
            &tenant,
            &session_id,
            occurred_at,
            actor,
            parent_id.as_ref(),
            &payload,
            &attributes,
        );
        Self {
            id: id.unwrap_or_else(|| EventId::from_hash(&hash, occurred_at)),
            tenant,
            session_id,
            occurred_at,
            actor,
            parent_id,
            payload,
            attributes,
            hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kind_names_round_trip() {
        for k in EventKind::ALL {
            assert_eq!(EventKind::parse(k.as_str()), Some(k));
            assert_eq!(
                serde_json::to_value(k).unwrap(),
                Value::String(k.as_str().into())
            );
        }
        assert_eq!(EventKind::parse("FileEdit"), None);
    }

    #[test]
    fn actor_names_round_trip() {
        for a in Actor::ALL {
            assert_eq!(Actor::parse(a.as_str()), Some(a));
        }
        assert_eq!(Actor::parse("robot"), None);
    }
}
