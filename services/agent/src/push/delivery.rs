//! The delivery worker: posts due webhook deliveries, signed, and records
//! each attempt.
//!
//! * **At least once.** A delivery is claimed with a lease (`FOR UPDATE
//!   SKIP LOCKED`, then not due until the lease ends), posted, and only
//!   then marked; a worker that dies in between leaves it to be posted
//!   again after the lease. Receivers drop repeats by `Achilles-Delivery`.
//! * **Retries.** A non-2xx answer, a timeout or a refused destination is
//!   retried after `push.webhook_backoff_ms × 2^(attempt−1)` (at most
//!   `push.webhook_backoff_max_ms`); after `push.webhook_max_attempts`
//!   attempts the delivery is `dead` and stays visible in
//!   `GET /v1/webhooks/{id}/deliveries`.
//! * **SSRF.** Every attempt resolves the destination again, checks every
//!   address against the policy and connects to exactly those addresses;
//!   redirects are not followed (a redirect could lead anywhere).
//!
//! Any number of agent processes may run the worker.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::join_all;
use serde_json::json;
use sqlx::PgPool;
use tokio::sync::{watch, Notify};

use achilles_core::config::PushSettings;
use achilles_core::db::push::{self, Attempt, DueDelivery};
use achilles_core::metrics;
use achilles_core::webhook::{self, AddressPolicy, DestinationError};

/// Longest error text kept per attempt.
const MAX_ERROR_CHARS: usize = 500;

pub struct DeliveryWorker {
    pub pool: PgPool,
    pub policy: AddressPolicy,
    pub settings: PushSettings,
    pub wake: Arc<Notify>,
}

impl DeliveryWorker {
    /// Delivers whatever is due whenever woken and every
    /// `push.webhook_poll_ms`, until `stop` turns true.
    pub async fn run(self, mut stop: watch::Receiver<bool>) {
        let poll = Duration::from_millis(self.settings.webhook_poll_ms);
        loop {
            loop {
                match self.round().await {
                    Ok(0) => break,
                    Ok(_) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "webhook deliveries: claiming failed; will retry");
                        break;
                    }
                }
            }
            let stopping = *stop.borrow();
            if stopping {
                break;
            }
            tokio::select! {
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep(poll) => {}
                _ = stop.changed() => {}
            }
        }
    }

    /// Claims one batch of due deliveries and attempts them concurrently;
    /// returns how many it attempted.
    pub async fn round(&self) -> Result<usize, sqlx::Error> {
        let s = &self.settings;
        // The lease outlasts an attempt, so a live worker never loses one.
        let lease = (s.webhook_timeout_ms * 2 + 5_000) as i64;
        let due = push::claim_due(&self.pool, s.webhook_batch, lease).await?;
        let n = due.len();
        let outcomes = join_all(due.iter().map(|d| self.attempt(d))).await;
        for (d, outcome) in due.iter().zip(outcomes) {
            push::finish_delivery(&self.pool, d.delivery_id, &outcome).await?;
        }
        Ok(n)
    }

    async fn attempt(&self, d: &DueDelivery) -> Attempt {
        let started = Instant::now();
        let sent = self.send(d).await;
        let attempt = d.attempts as u32 + 1;
        let (outcome, result) = match sent {
            Ok(status) if (200..300).contains(&status) => (
                "delivered",
                Attempt::Delivered {
                    status: status as i32,
                },
            ),
            failed => {
                let (label, status, error) = match failed {
                    Ok(status) => ("failed", Some(status as i32), format!("HTTP {status}")),
                    Err(SendError::Refused(e)) => ("refused", None, e.to_string()),
                    Err(SendError::Other(e)) => ("failed", None, e),
                };
                let retry_in_ms = (attempt < self.settings.webhook_max_attempts).then(|| {
                    webhook::backoff_ms(
                        attempt,
                        self.settings.webhook_backoff_ms,
                        self.settings.webhook_backoff_max_ms,
                    ) as i64
                });
                let label = if retry_in_ms.is_none() { "dead" } else { label };
                tracing::info!(delivery = %d.delivery_id, attempt, error = %error,
                    gave_up = retry_in_ms.is_none(), "webhook delivery failed");
                let error: String = error.chars().take(MAX_ERROR_CHARS).collect();
                (
                    label,
                    Attempt::Failed {
                        status,
                        error,
                        retry_in_ms,
                    },
                )
            }
        };
        metrics::WEBHOOK_DELIVERIES
            .with_label_values(&[outcome])
            .inc();
        metrics::WEBHOOK_LATENCY
            .with_label_values(&[outcome])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Posts one delivery; the HTTP status, or why there was none.
    async fn send(&self, d: &DueDelivery) -> Result<u16, SendError> {
        let url = webhook::parse_destination(&d.url).map_err(SendError::Refused)?;
        let addrs = webhook::resolve_checked(&url, &self.policy)
            .await
            .map_err(|e| match e {
                DestinationError::Unresolvable { .. } => SendError::Other(e.to_string()),
                e => SendError::Refused(e),
            })?;
        let host = url.host_str().unwrap_or_default().to_owned();
        let timeout = Duration::from_millis(self.settings.webhook_timeout_ms);
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve_to_addrs(&host, &addrs)
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| SendError::Other(format!("client: {e}")))?;
        let body = payload(d);
        let ts = Utc::now().timestamp();
        let resp = client
            .post(url)
            .header("content-type", "application/json")
            .header(
                "user-agent",
                concat!("achilles-webhooks/", env!("CARGO_PKG_VERSION")),
            )
            .header("achilles-delivery", d.delivery_id.to_string())
            .header(
                "achilles-event",
                format!("insight.{}", d.transition.transition),
            )
            .header("achilles-timestamp", ts.to_string())
            .header("achilles-signature", webhook::sign(&d.secret, ts, &body))
            .body(body)
            .send()
            .await
            .map_err(|e| SendError::Other(describe(&e)))?;
        Ok(resp.status().as_u16())
    }
}

enum SendError {
    Refused(DestinationError),
    Other(String),
}

fn describe(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connect() {
        format!("cannot connect: {e}")
    } else {
        e.to_string()
    }
}

/// The JSON body: what happened, to which insight, and the delivery's
/// identity (also in the headers, which the signature does not cover).
pub fn payload(d: &DueDelivery) -> Vec<u8> {
    let t = &d.transition;
    json!({
        "delivery_id": d.delivery_id,
        "event": format!("insight.{}", t.transition),
        "event_id": t.id,
        "tenant": t.tenant_id,
        "attempt": d.attempts + 1,
        "insight": t,
    })
    .to_string()
    .into_bytes()
}
