//! Reading a Server-Sent Events response in tests, event by event.

use std::time::Duration;

/// One event: its `id:`, `event:` and `data:` fields.
#[derive(Debug, Clone, PartialEq)]
pub struct SseEvent {
    pub id: Option<String>,
    pub event: Option<String>,
    pub data: String,
}

pub struct SseReader {
    resp: reqwest::Response,
    buf: String,
    /// Comment lines seen (heartbeats).
    pub comments: usize,
    /// The server ended the stream.
    pub ended: bool,
}

impl SseReader {
    pub fn new(resp: reqwest::Response) -> Self {
        Self {
            resp,
            buf: String::new(),
            comments: 0,
            ended: false,
        }
    }

    /// The next event, or `None` if none arrived within `wait` (or the
    /// stream ended: see [`Self::ended`]).
    pub async fn next(&mut self, wait: Duration) -> Option<SseEvent> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(e) = self.take_event() {
                return Some(e);
            }
            if self.ended {
                return None;
            }
            match tokio::time::timeout_at(deadline, self.resp.chunk()).await {
                Err(_) => return None,
                Ok(Ok(Some(bytes))) => self.buf.push_str(&String::from_utf8_lossy(&bytes)),
                Ok(Ok(None)) | Ok(Err(_)) => self.ended = true,
            }
        }
    }

    /// Events until none arrives for `quiet`.
    pub async fn drain(&mut self, quiet: Duration) -> Vec<SseEvent> {
        let mut out = Vec::new();
        while let Some(e) = self.next(quiet).await {
            out.push(e);
        }
        out
    }

    fn take_event(&mut self) -> Option<SseEvent> {
        loop {
            let end = self.buf.find("\n\n")?;
            let block: String = self.buf.drain(..end + 2).collect();
            let mut e = SseEvent {
                id: None,
                event: None,
                data: String::new(),
            };
            let mut fields = false;
            for line in block.lines() {
                if line.is_empty() {
                    continue;
                }
                if line.starts_with(':') {
                    self.comments += 1;
                    continue;
                }
                let (k, v) = line.split_once(':').unwrap_or((line, ""));
                let v = v.strip_prefix(' ').unwrap_or(v);
                fields = true;
                match k {
                    "id" => e.id = Some(v.to_owned()),
                    "event" => e.event = Some(v.to_owned()),
                    "data" => {
                        if !e.data.is_empty() {
                            e.data.push('\n');
                        }
                        e.data.push_str(v);
                    }
                    _ => {}
                }
            }
            if fields {
                return Some(e);
            }
        }
    }
}
