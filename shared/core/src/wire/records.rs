//! Serde mirrors of the Avro schemas in `schemas/`, field for field.
//!
//! These are transport shapes only: they are never handed to business code.
//! [`super::codec`] turns them into validated domain values and back. The
//! per-kind branches use the same field names as the JSON payloads, which is
//! what lets one JSON detour (`branch <-> data`) serve every kind.

use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EnvelopeRec {
    pub tenant: String,
    pub session_id: String,
    pub ingested_at_us: i64,
    pub session_start: Option<SessionStartRec>,
    pub event: Option<EventRec>,
    pub session_end: Option<SessionEndRec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionStartRec {
    pub agent_name: String,
    pub agent_model: Option<String>,
    pub source: String,
    pub started_at_us: i64,
    pub metadata_json: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SessionEndRec {
    pub ended_at_us: i64,
    pub status: String,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EventRec {
    pub id: String,
    pub event_hash: String,
    pub occurred_at_us: i64,
    pub kind: String,
    pub actor: String,
    pub parent_id: Option<String>,
    pub attributes_json: String,
    pub file_edit: Option<FileEditRec>,
    pub command: Option<CommandRec>,
    pub test_run: Option<TestRunRec>,
    pub error: Option<ErrorRec>,
    pub llm_call: Option<LlmCallRec>,
    pub tool_call: Option<ToolCallRec>,
    pub agent_action: Option<AgentActionRec>,
    pub user_message: Option<UserMessageRec>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileEditRec {
    pub path: String,
    pub lines_added: i64,
    pub lines_removed: i64,
    pub operation: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CommandRec {
    pub command: String,
    pub exit_code: Option<i32>,
    pub duration_ms: Option<i64>,
    pub output: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestRunRec {
    pub framework: String,
    pub passed: i64,
    pub failed: i64,
    pub skipped: i64,
    pub duration_ms: Option<i64>,
    pub output: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ErrorRec {
    pub message: String,
    pub error_type: Option<String>,
    pub stack_trace: Option<String>,
    pub file: Option<String>,
    pub line: Option<i64>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LlmCallRec {
    pub provider: String,
    pub model: String,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_usd: Option<f64>,
    pub latency_ms: Option<i64>,
    pub status: String,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ToolCallRec {
    pub tool: String,
    pub status: String,
    pub duration_ms: Option<i64>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AgentActionRec {
    pub action: String,
    pub status: Option<String>,
    pub duration_ms: Option<i64>,
    pub detail: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserMessageRec {
    pub text: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetterRec {
    pub source_topic: String,
    pub source_partition: i32,
    pub source_offset: i64,
    pub consumer_group: String,
    pub reason_code: String,
    pub reason: String,
    pub failed_at_us: i64,
    #[serde(with = "apache_avro::serde_avro_bytes_opt")]
    pub key: Option<Vec<u8>>,
    #[serde(with = "apache_avro::serde_avro_bytes")]
    pub payload: Vec<u8>,
}
