//! What the OTLP routes remember between requests, in the same bounded
//! two-generation sets as the accepted event hashes (`recent.rs`):
//!
//! * **started sessions** — a session starts implicitly with its first
//!   record, so the first request that names it also publishes a session
//!   start. Remembering which were started keeps that to one start per
//!   session per API process; another process (or a restart) publishes it
//!   again, which is harmless: the raw sink fills a session row in only
//!   once and the start record carries the first record's time.
//! * **twins** — with both logs and traces exported, Claude Code describes
//!   each tool call and API request twice (`tool_result` event and
//!   `claude_code.tool` span, `api_request` event and
//!   `claude_code.llm_request` span). The first description to arrive is
//!   kept and the second is dropped, so tokens, cost and actions are
//!   counted once. Best-effort like duplicates: across API processes both
//!   may be kept (docs/otlp.md says to export one signal for exact counts).

use sha2::{Digest, Sha256};

use achilles_core::hash::EventHash;
use achilles_core::model::{SessionId, TenantId};

use crate::recent::RecentHashes;

pub struct OtlpMemory {
    sessions: RecentHashes,
    twins: RecentHashes,
}

fn key(parts: &[&str]) -> EventHash {
    EventHash::from_bytes(Sha256::digest(parts.join("\n").as_bytes()).into())
}

impl OtlpMemory {
    pub fn new(capacity: usize) -> Self {
        Self {
            sessions: RecentHashes::new(capacity),
            twins: RecentHashes::new(capacity),
        }
    }

    fn session_key(tenant: &TenantId, s: SessionId) -> EventHash {
        key(&["session", tenant.as_str(), &s.to_string()])
    }

    fn twin_key(tenant: &TenantId, s: SessionId, twin: &str) -> EventHash {
        key(&["twin", tenant.as_str(), &s.to_string(), twin])
    }

    /// Which of `sessions` this process has published a start for.
    pub fn started(&self, tenant: &TenantId, sessions: &[SessionId]) -> Vec<bool> {
        let keys: Vec<_> = sessions
            .iter()
            .map(|s| Self::session_key(tenant, *s))
            .collect();
        self.sessions.seen(&keys.iter().collect::<Vec<_>>())
    }

    pub fn remember_started(&self, tenant: &TenantId, sessions: &[SessionId]) {
        let keys: Vec<_> = sessions
            .iter()
            .map(|s| Self::session_key(tenant, *s))
            .collect();
        self.sessions.remember(keys.iter());
    }

    /// Which of the calls were already received in their other form.
    pub fn twins_seen(&self, tenant: &TenantId, calls: &[(SessionId, &str)]) -> Vec<bool> {
        let keys: Vec<_> = calls
            .iter()
            .map(|(s, t)| Self::twin_key(tenant, *s, t))
            .collect();
        self.twins.seen(&keys.iter().collect::<Vec<_>>())
    }

    pub fn remember_twins(&self, tenant: &TenantId, calls: &[(SessionId, &str)]) {
        let keys: Vec<_> = calls
            .iter()
            .map(|(s, t)| Self::twin_key(tenant, *s, t))
            .collect();
        self.twins.remember(keys.iter());
    }
}
