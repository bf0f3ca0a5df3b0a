//! A thin HTTP client for the Achilles API with the CLI's error mapping.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(
        "cannot reach the Achilles API at {url}: {source}\n  is it running? `make up` starts it"
    )]
    Connect { url: String, source: reqwest::Error },
    #[error("{status}: {code}: {message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
        details: Option<Value>,
    },
    #[error("{0}")]
    Input(String),
    #[error("{0}")]
    Other(String),
}

impl CliError {
    /// Exit codes: 1 the API said no, 2 bad input, 3 unreachable/unavailable.
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::Api { status, .. } if status.is_server_error() => 3,
            Self::Api { .. } | Self::Other(_) => 1,
            Self::Input(_) => 2,
            Self::Connect { .. } => 3,
        }
    }
}

pub struct Client {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Client {
    pub fn new(base: &str, key: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            // Building a client without TLS or proxies configured cannot fail.
            .expect("HTTP client builds");
        Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            key: key.to_owned(),
        }
    }

    /// Sends a request; returns the JSON body of a 2xx, else a `CliError`
    /// carrying the API's error code and message. `Ok(Err(secs))` is a 503
    /// with its `Retry-After`, for callers that retry.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<Result<Value, u64>, CliError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        let resp = req.send().await.map_err(|source| CliError::Connect {
            url: self.base.clone(),
            source,
        })?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let text = resp
            .text()
            .await
            .map_err(|e| CliError::Other(e.to_string()))?;
        let json: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if status.is_success() {
            return Ok(Ok(json));
        }
        if status == StatusCode::SERVICE_UNAVAILABLE {
            if let Some(secs) = retry_after {
                return Ok(Err(secs));
            }
        }
        let err = &json["error"];
        Err(CliError::Api {
            status,
            code: err["code"].as_str().unwrap_or("unknown").to_owned(),
            message: err["message"]
                .as_str()
                .map_or_else(|| json.to_string(), str::to_owned),
            details: err.get("details").cloned(),
        })
    }

    /// Opens a Server-Sent Events stream (no overall timeout), resuming
    /// after `last_event_id` when given.
    pub async fn stream(
        &self,
        path: &str,
        last_event_id: Option<&str>,
    ) -> Result<reqwest::Response, CliError> {
        let url = format!("{}{}", self.base, path);
        let mut req = reqwest::Client::new()
            .get(&url)
            .bearer_auth(&self.key)
            .header("accept", "text/event-stream");
        if let Some(id) = last_event_id {
            req = req.header("last-event-id", id);
        }
        let resp = req.send().await.map_err(|source| CliError::Connect {
            url: self.base.clone(),
            source,
        })?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let json: Value = resp.json().await.unwrap_or(Value::Null);
        Err(CliError::Api {
            status,
            code: json["error"]["code"]
                .as_str()
                .unwrap_or("unknown")
                .to_owned(),
            message: json["error"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_owned(),
            details: None,
        })
    }

    /// Like [`call`](Self::call) but retries 503s up to `attempts` times,
    /// honouring `Retry-After`.
    pub async fn call_retrying(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        attempts: u32,
    ) -> Result<Value, CliError> {
        for attempt in 1..=attempts {
            match self.call(method.clone(), path, body).await? {
                Ok(v) => return Ok(v),
                Err(secs) if attempt < attempts => {
                    eprintln!("API busy (503); retrying in {secs}s ({attempt}/{attempts})");
                    tokio::time::sleep(Duration::from_secs(secs.max(1))).await;
                }
                Err(_) => break,
            }
        }
        Err(CliError::Api {
            status: StatusCode::SERVICE_UNAVAILABLE,
            code: "unavailable".into(),
            message: format!("the API stayed unavailable after {attempts} attempts"),
            details: None,
        })
    }
}
