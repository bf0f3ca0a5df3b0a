//! Shared state handed to every handler.

use std::sync::Arc;

use achilles_core::auth::KeyStore;
use achilles_core::config::Settings;
use achilles_core::publisher::Publisher;
use achilles_core::quota::Quotas;
use achilles_core::scrub::Scrubber;
use achilles_core::webhook::AddressPolicy;
use sqlx::PgPool;

use crate::otlp::memory::OtlpMemory;
use crate::ready::ReadyCache;
use crate::recent::RecentHashes;
use crate::stream::StreamHub;

#[derive(Clone)]
pub struct AppState {
    pub(crate) inner: Arc<Inner>,
}

pub(crate) struct Inner {
    pub settings: Settings,
    pub pool: PgPool,
    pub publisher: Publisher,
    pub keys: KeyStore,
    pub recent: RecentHashes,
    pub quotas: Quotas,
    pub ready: ReadyCache,
    pub otlp: OtlpMemory,
    pub stream: Arc<StreamHub>,
    pub address_policy: AddressPolicy,
    /// `[scrub]`, compiled once at start-up.
    pub scrubber: Scrubber,
}

impl AppState {
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    pub fn pool(&self) -> &PgPool {
        &self.inner.pool
    }

    pub fn publisher(&self) -> &Publisher {
        &self.inner.publisher
    }

    pub fn keys(&self) -> &KeyStore {
        &self.inner.keys
    }

    pub fn recent(&self) -> &RecentHashes {
        &self.inner.recent
    }

    pub fn quotas(&self) -> &Quotas {
        &self.inner.quotas
    }

    pub fn ready(&self) -> &ReadyCache {
        &self.inner.ready
    }

    pub(crate) fn otlp(&self) -> &OtlpMemory {
        &self.inner.otlp
    }

    pub(crate) fn stream(&self) -> &Arc<StreamHub> {
        &self.inner.stream
    }

    pub fn scrubber(&self) -> &Scrubber {
        &self.inner.scrubber
    }

    pub(crate) fn address_policy(&self) -> &AddressPolicy {
        &self.inner.address_policy
    }
}
