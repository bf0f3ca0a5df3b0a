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
    /// or 429 with its `Retry-After`, for callers that retry.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        idempotency_key: Option<&str>,
    ) -> Result<Result<Value, u64>, CliError> {
        let url = format!("{}{}", self.base, path);
        let mut req = self.http.request(method, &url).bearer_auth(&self.key);
        if let Some(b) = body {
            req = req.json(b);
        }
        if let Some(k) = idempotency_key {
            req = req.header("idempotency-key", k);
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
        if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::TOO_MANY_REQUESTS {
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

    /// Like [`call`](Self::call) but retries up to `attempts` times: 503s
    /// and 429s after their `Retry-After`, and requests whose response was
    /// lost (connection refused, reset or closed) after a short back-off.
    /// Every call the CLI makes is safe to repeat: events are deduplicated
    /// by their hash, and session start/end go through
    /// [`call_idempotent`](Self::call_idempotent).
    pub async fn call_retrying(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        attempts: u32,
    ) -> Result<Value, CliError> {
        self.call_idempotent(method, path, body, attempts, None)
            .await
    }

    /// [`call_retrying`](Self::call_retrying) sending the same
    /// `Idempotency-Key` on every attempt, so a retry after a lost response
    /// has no second effect (the API derives the session id and the start
    /// or end time from the key).
    pub async fn call_idempotent(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
        attempts: u32,
        key: Option<&str>,
    ) -> Result<Value, CliError> {
        for attempt in 1..=attempts {
            let last = attempt == attempts;
            match self.call(method.clone(), path, body, key).await {
                Ok(Ok(v)) => return Ok(v),
                Ok(Err(secs)) if !last => {
                    eprintln!("API busy; retrying in {secs}s ({attempt}/{attempts})");
                    tokio::time::sleep(Duration::from_secs(secs.max(1))).await;
                }
                Ok(Err(_)) => break,
                Err(CliError::Connect { source, .. }) if !last => {
                    let wait = Duration::from_millis(250 << attempt.min(4));
                    eprintln!("no answer from the API ({source}); retrying in {wait:?} ({attempt}/{attempts})");
                    tokio::time::sleep(wait).await;
                }
                Err(e) => return Err(e),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// Reads one HTTP request (headers and a Content-Length body).
    async fn read_request(sock: &mut tokio::net::TcpStream) -> String {
        let mut buf = Vec::new();
        let mut chunk = [0u8; 4096];
        loop {
            let n = sock.read(&mut chunk).await.unwrap();
            buf.extend_from_slice(&chunk[..n]);
            let text = String::from_utf8_lossy(&buf).to_string();
            if let Some(end) = text.find("\r\n\r\n") {
                let len = text
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse::<usize>().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= end + 4 + len || n == 0 {
                    return text;
                }
            }
            if n == 0 {
                return text;
            }
        }
    }

    fn header<'a>(req: &'a str, name: &str) -> Option<&'a str> {
        req.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }

    /// The first attempt reaches the server but its response is lost; the
    /// retry carries the same Idempotency-Key and the same body.
    #[tokio::test]
    async fn a_lost_response_is_retried_with_the_same_key_and_body() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            let mut seen = Vec::new();
            let (mut first, _) = listener.accept().await.unwrap();
            seen.push(read_request(&mut first).await);
            drop(first); // processed, but the answer never arrives
            let (mut second, _) = listener.accept().await.unwrap();
            seen.push(read_request(&mut second).await);
            let body =
                r#"{"session_id":"0190b3a2-7c1e-7a51-9d7e-2f1b8c7d6e5f","status":"accepted"}"#;
            let resp = format!(
                "HTTP/1.1 202 Accepted\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            second.write_all(resp.as_bytes()).await.unwrap();
            seen
        });
        let client = Client::new(&format!("http://{addr}"), "achilles-dev-key");
        let key = uuid::Uuid::now_v7().to_string();
        let body = json!({"agent_name": "claude-code"});
        let v = client
            .call_idempotent(
                Method::POST,
                "/v1/sessions/start",
                Some(&body),
                3,
                Some(&key),
            )
            .await
            .unwrap();
        assert_eq!(v["status"], "accepted");
        let seen = server.await.unwrap();
        assert_eq!(seen.len(), 2);
        for req in &seen {
            assert_eq!(header(req, "idempotency-key"), Some(key.as_str()), "{req}");
        }
        let body_of = |r: &str| r.split_once("\r\n\r\n").map(|(_, b)| b.to_owned());
        assert_eq!(body_of(&seen[0]), body_of(&seen[1]));
    }
}
