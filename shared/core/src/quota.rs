//! Per-tenant rate limits: token buckets for requests and for events.
//!
//! Without them one noisy producer fills the shared producer queue and
//! every tenant gets 503. Each tenant (the API key decides the tenant, so
//! all of a tenant's keys share its buckets) has two buckets, refilled
//! continuously at `*_per_sec` and holding at most `*_burst` tokens:
//!
//! * **requests**: one token per authenticated API request;
//! * **events**: one token per event submitted to `/v1/events/batch`, and
//!   per record the intake gate republishes.
//!
//! The API answers an empty bucket with `429` and `Retry-After` (the time
//! until enough tokens are back); the intake gate *waits* for the tokens
//! instead, so an over-quota producer is slowed down, never dropped.
//!
//! Buckets live in each process's memory: limits are **per replica**
//! (three API replicas admit three times the configured rate). There is no
//! shared store; set the per-replica value to the tenant's limit divided by
//! the replica count. Tenants are known at start-up (from the keys), so the
//! buckets are built once and never allocated on the request path.

use std::collections::{BTreeMap, HashMap};
use std::num::NonZeroU32;
use std::time::Duration;

use governor::clock::{Clock, DefaultClock};
use governor::middleware::StateInformationMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};
use serde::Deserialize;

use crate::metrics;
use crate::model::TenantId;

/// `[quotas]`: defaults for every tenant, and overrides per tenant.
#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct QuotaSettings {
    /// API requests per second and tenant (0: unlimited) ...
    pub requests_per_sec: u32,
    /// ... of which this many may come at once.
    pub requests_burst: u32,
    /// Events per second and tenant, over the API and the intake gate
    /// (0: unlimited) ...
    pub events_per_sec: u32,
    /// ... of which this many may come at once; a batch larger than this
    /// can never pass and is answered 413.
    pub events_burst: u32,
    /// Tenants named in the per-tenant metrics (alphabetically first);
    /// the rest share the label `other`, which bounds the label set.
    pub metric_tenants: usize,
    /// Overrides by tenant id, e.g. `[quotas.tenants.acme]`.
    pub tenants: BTreeMap<String, TenantQuota>,
}

impl Default for QuotaSettings {
    fn default() -> Self {
        Self {
            requests_per_sec: 2_000,
            requests_burst: 4_000,
            events_per_sec: 20_000,
            events_burst: 40_000,
            metric_tenants: 50,
            tenants: BTreeMap::new(),
        }
    }
}

/// One tenant's overrides; absent fields take the defaults.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct TenantQuota {
    pub requests_per_sec: Option<u32>,
    pub requests_burst: Option<u32>,
    pub events_per_sec: Option<u32>,
    pub events_burst: Option<u32>,
}

/// Which bucket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Requests,
    Events,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requests => "requests",
            Self::Events => "events",
        }
    }
}

/// A refusal, with what the client needs to back off (the 429 headers).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("over the {} quota of {per_sec}/s (burst {burst}); retry in {} ms",
    kind.as_str(), retry_after.as_millis())]
pub struct Throttled {
    pub kind: Kind,
    pub per_sec: u32,
    pub burst: u32,
    /// Until enough tokens are back; zero when they never will be
    /// (`n` larger than the burst).
    pub retry_after: Duration,
    /// `n` exceeds the burst: waiting cannot help.
    pub never: bool,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum QuotaConfigError {
    #[error("quotas.tenants.{0}: no API key is configured for this tenant")]
    UnknownTenant(String),
}

type Limiter = RateLimiter<NotKeyed, InMemoryState, DefaultClock, StateInformationMiddleware>;

struct Bucket {
    limiter: Limiter,
    per_sec: u32,
    burst: u32,
}

impl Bucket {
    /// `None` when unlimited (a rate of 0).
    fn new(per_sec: u32, burst: u32) -> Option<Self> {
        let rate = NonZeroU32::new(per_sec)?;
        // A burst of 0 means "one second's worth".
        let burst = NonZeroU32::new(burst).unwrap_or(rate);
        let limiter =
            RateLimiter::direct(Quota::per_second(rate).allow_burst(burst)).with_middleware();
        Some(Self {
            limiter,
            per_sec: rate.get(),
            burst: burst.get(),
        })
    }

    fn try_take(&self, kind: Kind, n: NonZeroU32) -> Result<(), Throttled> {
        let refused = |retry_after, never| Throttled {
            kind,
            per_sec: self.per_sec,
            burst: self.burst,
            retry_after,
            never,
        };
        match self.limiter.check_n(n) {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(not_until)) => Err(refused(
                not_until.wait_time_from(self.limiter.clock().now()),
                false,
            )),
            Err(_) => Err(refused(Duration::ZERO, true)),
        }
    }

    /// Waits until `n` tokens were taken, in chunks of at most the burst.
    async fn take(&self, mut n: u32) {
        while let Some(chunk) = NonZeroU32::new(n.min(self.burst)) {
            // A chunk never exceeds the burst, so this cannot fail.
            let _ = self.limiter.until_n_ready(chunk).await;
            n -= chunk.get();
        }
    }
}

struct TenantBuckets {
    requests: Option<Bucket>,
    events: Option<Bucket>,
    /// The tenant's metric label: its id, or `other`.
    label: String,
}

/// Every tenant's buckets. Tenants without buckets (none were known at
/// start-up) are not limited.
pub struct Quotas {
    by_tenant: HashMap<TenantId, TenantBuckets>,
}

impl std::fmt::Debug for Quotas {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Quotas({} tenants)", self.by_tenant.len())
    }
}

impl Quotas {
    /// Buckets for `tenants` (every tenant that has a key).
    pub fn new<'a>(
        s: &QuotaSettings,
        tenants: impl IntoIterator<Item = &'a TenantId>,
    ) -> Result<Self, QuotaConfigError> {
        let mut tenants: Vec<&TenantId> = tenants.into_iter().collect();
        tenants.sort();
        tenants.dedup();
        if let Some(unknown) = s
            .tenants
            .keys()
            .find(|t| !tenants.iter().any(|k| k.as_str() == t.as_str()))
        {
            return Err(QuotaConfigError::UnknownTenant(unknown.clone()));
        }
        let by_tenant = tenants
            .into_iter()
            .enumerate()
            .map(|(i, t)| {
                let o = s.tenants.get(t.as_str()).cloned().unwrap_or_default();
                let label = if i < s.metric_tenants {
                    t.as_str().to_owned()
                } else {
                    "other".to_owned()
                };
                let buckets = TenantBuckets {
                    requests: Bucket::new(
                        o.requests_per_sec.unwrap_or(s.requests_per_sec),
                        o.requests_burst.unwrap_or(s.requests_burst),
                    ),
                    events: Bucket::new(
                        o.events_per_sec.unwrap_or(s.events_per_sec),
                        o.events_burst.unwrap_or(s.events_burst),
                    ),
                    label,
                };
                (t.clone(), buckets)
            })
            .collect();
        Ok(Self { by_tenant })
    }

    fn bucket(&self, tenant: &TenantId, kind: Kind) -> Option<(&Bucket, &str)> {
        let t = self.by_tenant.get(tenant)?;
        let b = match kind {
            Kind::Requests => t.requests.as_ref(),
            Kind::Events => t.events.as_ref(),
        }?;
        Some((b, &t.label))
    }

    /// The tenant's metric label (`other` beyond `metric_tenants`).
    pub fn label<'a>(&'a self, tenant: &TenantId) -> &'a str {
        self.by_tenant.get(tenant).map_or("other", |t| &t.label)
    }

    /// Takes `n` tokens now, or says how long to wait.
    pub fn try_take(&self, tenant: &TenantId, kind: Kind, n: u32) -> Result<(), Throttled> {
        let (Some((bucket, label)), Some(n)) = (self.bucket(tenant, kind), NonZeroU32::new(n))
        else {
            return Ok(());
        };
        let result = bucket.try_take(kind, n);
        let outcome = if result.is_ok() {
            "admitted"
        } else {
            "throttled"
        };
        metrics::QUOTA_DECISIONS
            .with_label_values(&[label, kind.as_str(), outcome])
            .inc_by(u64::from(n.get()));
        result
    }

    /// Takes `n` tokens, waiting as long as it takes (the intake gate:
    /// over-quota records wait, they are not dropped). Returns how long it
    /// waited.
    pub async fn take(&self, tenant: &TenantId, kind: Kind, n: u32) -> Duration {
        let Some((bucket, label)) = self.bucket(tenant, kind) else {
            return Duration::ZERO;
        };
        let started = std::time::Instant::now();
        let outcome = match NonZeroU32::new(n) {
            Some(n1) if bucket.try_take(kind, n1).is_ok() => "admitted",
            Some(_) => {
                bucket.take(n).await;
                "waited"
            }
            None => return Duration::ZERO,
        };
        let waited = started.elapsed();
        metrics::QUOTA_DECISIONS
            .with_label_values(&[label, kind.as_str(), outcome])
            .inc_by(u64::from(n));
        metrics::QUOTA_WAIT
            .with_label_values(&[label, kind.as_str()])
            .inc_by(waited.as_secs_f64());
        waited
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tenant(s: &str) -> TenantId {
        TenantId::parse(s).unwrap()
    }

    fn settings(per_sec: u32, burst: u32) -> QuotaSettings {
        QuotaSettings {
            requests_per_sec: per_sec,
            requests_burst: burst,
            events_per_sec: per_sec,
            events_burst: burst,
            ..QuotaSettings::default()
        }
    }

    #[test]
    fn a_bucket_admits_its_burst_then_says_when_to_retry() {
        let (a, b) = (tenant("acme"), tenant("globex"));
        let q = Quotas::new(&settings(10, 20), [&a, &b]).unwrap();
        for _ in 0..20 {
            q.try_take(&a, Kind::Requests, 1).unwrap();
        }
        let t = q.try_take(&a, Kind::Requests, 1).unwrap_err();
        assert_eq!(
            (t.kind, t.per_sec, t.burst, t.never),
            (Kind::Requests, 10, 20, false)
        );
        assert!(t.retry_after > Duration::ZERO && t.retry_after <= Duration::from_millis(100));
        // Another tenant, and another bucket of the same tenant, are untouched.
        q.try_take(&b, Kind::Requests, 20).unwrap();
        q.try_take(&a, Kind::Events, 20).unwrap();
        // More than the burst can never pass.
        assert!(q.try_take(&b, Kind::Events, 21).unwrap_err().never);
    }

    #[test]
    fn zero_is_unlimited_and_overrides_apply_per_tenant() {
        let (a, b) = (tenant("acme"), tenant("globex"));
        let mut s = settings(0, 0);
        s.tenants.insert(
            "acme".into(),
            TenantQuota {
                events_per_sec: Some(5),
                events_burst: Some(5),
                ..TenantQuota::default()
            },
        );
        let q = Quotas::new(&s, [&a, &b]).unwrap();
        q.try_take(&b, Kind::Events, u32::MAX).unwrap();
        q.try_take(&a, Kind::Requests, u32::MAX).unwrap();
        q.try_take(&a, Kind::Events, 5).unwrap();
        assert!(q.try_take(&a, Kind::Events, 1).is_err());
        s.tenants.insert("initech".into(), TenantQuota::default());
        assert_eq!(
            Quotas::new(&s, [&a, &b]).unwrap_err(),
            QuotaConfigError::UnknownTenant("initech".into())
        );
    }

    #[test]
    fn metric_labels_are_bounded() {
        let ts: Vec<TenantId> = ["c", "a", "b"].iter().map(|t| tenant(t)).collect();
        let s = QuotaSettings {
            metric_tenants: 2,
            ..QuotaSettings::default()
        };
        let q = Quotas::new(&s, &ts).unwrap();
        let labels: Vec<&str> = ts.iter().map(|t| q.label(t)).collect();
        assert_eq!(labels, ["other", "a", "b"]);
        assert_eq!(q.label(&tenant("unknown")), "other");
    }

    #[tokio::test]
    async fn take_waits_for_tokens_instead_of_refusing() {
        let a = tenant("acme");
        let q = Quotas::new(&settings(50, 10), [&a]).unwrap();
        let started = std::time::Instant::now();
        // 10 at once, then 40 more at 50/s: about 0.8 s, in burst-sized chunks.
        q.take(&a, Kind::Events, 50).await;
        let took = started.elapsed();
        assert!(
            took >= Duration::from_millis(700) && took < Duration::from_secs(3),
            "{took:?}"
        );
    }
}
