//! An optional narrative for session reports, written by an LLM behind an
//! OpenAI-compatible chat-completions endpoint (`agent.llm_endpoint`, off
//! by default).
//!
//! The deterministic report never depends on it: the narrative is added
//! under `narrative` after the report is built, any failure only leaves it
//! out, and it is regenerated only when the deterministic part changed (so
//! a re-delivered session-ended record does not rewrite the report with a
//! differently worded text).
//!
//! The HTTP client is built without TLS (the workspace's `reqwest` has no
//! TLS backend): point `llm_endpoint` at a local model server or a local
//! TLS-terminating gateway.

use std::time::Duration;

use achilles_core::config::AgentSettings;
use achilles_core::secrecy::{ExposeSecret, SecretString};
use serde_json::{json, Value};

const SYSTEM: &str = "You review telemetry of an AI coding agent's session. \
Given the JSON report, write three to five plain sentences for a developer: how the \
agent did, what went wrong, and what to look at first. Use only facts in the report.";

/// Longest narrative kept, in bytes.
const MAX_CHARS: usize = 4000;

#[derive(Debug, thiserror::Error)]
pub enum NarrativeError {
    #[error("LLM request failed: {0}")]
    Http(#[from] reqwest::Error),
    #[error("LLM endpoint answered {0}")]
    Status(u16),
    #[error("LLM response has no choices[0].message.content")]
    Shape,
}

pub struct Narrator {
    http: reqwest::Client,
    url: String,
    model: String,
    key: Option<SecretString>,
}

impl Narrator {
    /// `None` unless `agent.llm_endpoint` is set.
    pub fn from_settings(a: &AgentSettings) -> Option<Self> {
        let base = a.llm_endpoint.as_deref()?.trim().trim_end_matches('/');
        if base.is_empty() {
            return None;
        }
        let url = if base.ends_with("/chat/completions") {
            base.to_owned()
        } else {
            format!("{base}/chat/completions")
        };
        let http = reqwest::Client::builder()
            .timeout(Duration::from_millis(a.llm_timeout_ms))
            .build()
            .ok()?;
        Some(Self {
            http,
            url,
            model: a.llm_model.clone().unwrap_or_else(|| "gpt-4o-mini".into()),
            key: a.llm_api_key.clone(),
        })
    }

    pub fn model(&self) -> &str {
        &self.model
    }

    /// Asks the model for a narrative of `report`.
    pub async fn narrate(&self, report: &Value) -> Result<String, NarrativeError> {
        let body = json!({
            "model": self.model,
            "temperature": 0,
            "messages": [
                {"role": "system", "content": SYSTEM},
                {"role": "user", "content": report.to_string()},
            ],
        });
        let mut req = self.http.post(&self.url).json(&body);
        if let Some(k) = &self.key {
            req = req.bearer_auth(k.expose_secret());
        }
        let resp = req.send().await?;
        if !resp.status().is_success() {
            return Err(NarrativeError::Status(resp.status().as_u16()));
        }
        let v: Value = resp.json().await?;
        let text = v["choices"][0]["message"]["content"]
            .as_str()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or(NarrativeError::Shape)?;
        let mut end = text.len().min(MAX_CHARS);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        Ok(text[..end].to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::post;
    use axum::{Json, Router};
    use std::sync::{Arc, Mutex};

    /// A fake OpenAI-compatible server on 127.0.0.1:0; never the network.
    async fn fake(reply: Value) -> (String, Arc<Mutex<Vec<(Option<String>, Value)>>>) {
        let seen = Arc::new(Mutex::new(Vec::new()));
        let log = seen.clone();
        let app = Router::new().route(
            "/v1/chat/completions",
            post(
                move |headers: axum::http::HeaderMap, Json(body): Json<Value>| {
                    let log = log.clone();
                    let reply = reply.clone();
                    async move {
                        let auth = headers
                            .get("authorization")
                            .and_then(|v| v.to_str().ok())
                            .map(str::to_owned);
                        log.lock().expect("test mutex").push((auth, body));
                        Json(reply)
                    }
                },
            ),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        (format!("http://{addr}/v1"), seen)
    }

    fn settings(endpoint: Option<String>) -> AgentSettings {
        AgentSettings {
            llm_endpoint: endpoint,
            llm_model: Some("tiny".into()),
            llm_api_key: Some(SecretString::from("sk-test")),
            ..AgentSettings::default()
        }
    }

    #[tokio::test]
    async fn asks_the_endpoint_and_returns_the_text() {
        let (base, seen) = fake(
            json!({"choices": [{"message": {"role": "assistant", "content": " It went fine. "}}]}),
        )
        .await;
        let n = Narrator::from_settings(&settings(Some(base))).unwrap();
        let text = n
            .narrate(&json!({"headline": {"events": 7}}))
            .await
            .unwrap();
        assert_eq!(text, "It went fine.");
        let seen = seen.lock().unwrap();
        assert_eq!(seen[0].0.as_deref(), Some("Bearer sk-test"));
        assert_eq!(seen[0].1["model"], "tiny");
        assert!(seen[0].1["messages"][1]["content"]
            .as_str()
            .unwrap()
            .contains("\"events\":7"));
    }

    #[tokio::test]
    async fn a_malformed_answer_is_an_error_not_a_panic() {
        let (base, _) = fake(json!({"nope": true})).await;
        let n = Narrator::from_settings(&settings(Some(base))).unwrap();
        assert!(matches!(
            n.narrate(&json!({})).await,
            Err(NarrativeError::Shape)
        ));
    }

    #[test]
    fn off_by_default() {
        assert!(Narrator::from_settings(&AgentSettings::default()).is_none());
    }
}
