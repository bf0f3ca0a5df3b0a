//! The Achilles HTTP API.
//!
//! Write path: authenticate (API key → tenant), validate and hash with
//! `achilles-core`, publish to Kafka, answer `202` only once the broker
//! acknowledged every accepted record. The API never writes to Postgres;
//! the raw sink does. Read path: tenant-scoped queries on Postgres.
//!
//! [`Application::build`] binds the listener (port 0 works, for tests) and
//! [`Application::run_until`] serves until the given shutdown future
//! resolves, then drains in-flight requests and flushes the producer.

mod accept;
mod auth;
mod error;
mod idempotency;
mod observe;
mod openapi;
mod otlp;
mod ready;
mod recent;
mod routes;
mod state;
mod stream;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use achilles_core::auth::KeyStore;
use achilles_core::config::Settings;
use achilles_core::publisher::Publisher;
use achilles_core::quota::Quotas;
use achilles_core::topics::Topics;
use achilles_core::{db, kafka};
use tokio::net::TcpListener;

pub use error::ApiError;
pub use state::AppState;

pub struct Application {
    listener: TcpListener,
    state: AppState,
}

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("{0}")]
    Config(#[from] achilles_core::config::ConfigError),
    #[error("quotas: {0}")]
    Quotas(#[from] achilles_core::quota::QuotaConfigError),
    #[error("cannot bind {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("invalid API keys: {0}")]
    Keys(#[from] achilles_core::auth::KeyConfigError),
    #[error("database settings: {0}")]
    Database(#[from] sqlx::Error),
    #[error("kafka: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
    #[error("push settings: {0}")]
    Push(String),
    #[error("scrub settings: {0}")]
    Scrub(#[from] achilles_core::scrub::ScrubError),
}

impl Application {
    /// Wires everything up. Postgres is connected lazily and topics are
    /// created best-effort, so the API starts (and reports not-ready on
    /// `/readyz`) while its dependencies are still coming up.
    pub async fn build(settings: Settings) -> Result<Self, StartupError> {
        achilles_core::metrics::init_series(&[]);
        settings.check()?;
        let keys = KeyStore::from_settings(&settings.auth)?;
        let quotas = Quotas::new(&settings.quotas, keys.tenants())?;
        let scrubber = settings.scrub.compile()?;
        if keys.is_empty() {
            tracing::warn!("no API keys configured: every request will get 401");
        }
        let pool = db::connect_lazy(&settings.database)?;
        let topics = Topics::new(settings.kafka.topic_prefix.clone());
        if settings.kafka.create_topics {
            if let Err(e) = kafka::ensure_topics(&settings.kafka, &topics).await {
                tracing::warn!(error = %e, "could not create topics yet; publishing will retry");
            }
        }
        let publisher = Publisher::new(kafka::producer(&settings.kafka)?, &topics);
        let listener = TcpListener::bind(&settings.api.listen)
            .await
            .map_err(|source| StartupError::Bind {
                addr: settings.api.listen.clone(),
                source,
            })?;
        let recent = recent::RecentHashes::new(settings.api.recent_hashes);
        let ready = ready::ReadyCache::new(Duration::from_millis(settings.api.ready_cache_ms));
        // Sessions and calls are far fewer than events; a tenth is plenty.
        let otlp = otlp::memory::OtlpMemory::new((settings.api.recent_hashes / 10).max(10_000));
        let address_policy = achilles_core::webhook::AddressPolicy::from_settings(&settings.push)
            .map_err(StartupError::Push)?;
        let stream = Arc::new(stream::StreamHub::new(&settings.push));
        let state = AppState {
            inner: Arc::new(state::Inner {
                recent,
                quotas,
                ready,
                otlp,
                stream,
                address_policy,
                scrubber,
                settings,
                pool,
                publisher,
                keys,
            }),
        };
        Ok(Self { listener, state })
    }

    pub fn local_addr(&self) -> SocketAddr {
        // A bound TCP listener always has a local address.
        self.listener
            .local_addr()
            .expect("bound listener has an address")
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Serves until `shutdown` resolves, then stops accepting, lets
    /// in-flight requests finish and flushes the producer.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> std::io::Result<()> {
        let router = routes::router(self.state.clone());
        axum::serve(self.listener, router)
            .with_graceful_shutdown(shutdown)
            .await?;
        self.state.publisher().flush(Duration::from_secs(5));
        Ok(())
    }
}
