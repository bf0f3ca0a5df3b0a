//! API keys and the tenants they stand for.
//!
//! The store keeps only SHA-256 digests of keys, so a heap dump or a debug
//! print never shows a usable key, and lookups compare digests (a timing
//! side channel on a digest lookup reveals nothing about the key itself).
//! Both the HTTP API and the intake gate authenticate through it.

use std::collections::HashMap;

use secrecy::ExposeSecret;
use sha2::{Digest, Sha256};

use crate::config::AuthSettings;
use crate::model::TenantId;

#[derive(Clone, Default)]
pub struct KeyStore {
    by_digest: HashMap<[u8; 32], TenantId>,
}

impl std::fmt::Debug for KeyStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyStore({} keys)", self.by_digest.len())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum KeyConfigError {
    #[error("auth.keys entry {0} is not of the form tenant=key")]
    Malformed(usize),
    #[error("auth.keys entry {index}: {reason}")]
    BadTenant { index: usize, reason: String },
    #[error("auth.keys entry {0}: keys must be at least {MIN_KEY_CHARS} characters")]
    TooShort(usize),
    #[error("auth.dev_api_key must be at least {MIN_KEY_CHARS} characters (or empty: off)")]
    DevKeyTooShort,
    #[error("the same key is configured for two tenants")]
    Duplicate,
}

/// The shortest key accepted anywhere, the dev key included: short keys
/// can be guessed.
pub const MIN_KEY_CHARS: usize = 16;

fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

impl KeyStore {
    pub fn from_settings(s: &AuthSettings) -> Result<Self, KeyConfigError> {
        let mut store = Self::default();
        let keys = s.keys.expose_secret();
        for (index, entry) in keys.split(',').map(str::trim).enumerate() {
            if entry.is_empty() {
                continue;
            }
            let (tenant, key) = entry
                .split_once('=')
                .ok_or(KeyConfigError::Malformed(index))?;
            let tenant = TenantId::parse(tenant.trim())
                .map_err(|reason| KeyConfigError::BadTenant { index, reason })?;
            let key = key.trim();
            if key.chars().count() < MIN_KEY_CHARS {
                return Err(KeyConfigError::TooShort(index));
            }
            store.insert(key, tenant)?;
        }
        let dev = s.dev_api_key.expose_secret().trim();
        if !dev.is_empty() {
            if dev.chars().count() < MIN_KEY_CHARS {
                return Err(KeyConfigError::DevKeyTooShort);
            }
            let tenant =
                TenantId::parse(&s.dev_tenant).map_err(|reason| KeyConfigError::BadTenant {
                    index: usize::MAX,
                    reason,
                })?;
            store.insert(dev, tenant)?;
        }
        Ok(store)
    }

    fn insert(&mut self, key: &str, tenant: TenantId) -> Result<(), KeyConfigError> {
        match self.by_digest.insert(digest(key), tenant.clone()) {
            Some(prev) if prev != tenant => Err(KeyConfigError::Duplicate),
            _ => Ok(()),
        }
    }

    /// The tenant a presented key belongs to, if any.
    pub fn tenant_for(&self, presented: &str) -> Option<&TenantId> {
        self.by_digest.get(&digest(presented))
    }

    /// Every tenant that has a key (repeated if it has several).
    pub fn tenants(&self) -> impl Iterator<Item = &TenantId> {
        self.by_digest.values()
    }

    pub fn len(&self) -> usize {
        self.by_digest.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_digest.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::SecretString;

    fn settings(keys: &str, dev: &str) -> AuthSettings {
        AuthSettings {
            keys: SecretString::from(keys),
            dev_api_key: SecretString::from(dev),
            dev_tenant: "dev".into(),
        }
    }

    #[test]
    fn resolves_keys_to_tenants() {
        let s = KeyStore::from_settings(&settings(
            "acme=acme-key-0123456789, globex=globex-key-0123456789",
            "achilles-dev-key",
        ))
        .unwrap();
        assert_eq!(
            s.tenant_for("acme-key-0123456789").unwrap().as_str(),
            "acme"
        );
        assert_eq!(
            s.tenant_for("globex-key-0123456789").unwrap().as_str(),
            "globex"
        );
        assert_eq!(s.tenant_for("achilles-dev-key").unwrap().as_str(), "dev");
        assert!(s.tenant_for("nope").is_none());
        assert!(!format!("{s:?}").contains("acme-key"));
    }

    #[test]
    fn empty_dev_key_disables_it() {
        let s = KeyStore::from_settings(&settings("", "")).unwrap();
        assert!(s.is_empty());
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            KeyStore::from_settings(&settings("acme", "")).unwrap_err(),
            KeyConfigError::Malformed(0)
        );
        assert_eq!(
            KeyStore::from_settings(&settings("acme=short", "")).unwrap_err(),
            KeyConfigError::TooShort(0)
        );
        assert_eq!(
            KeyStore::from_settings(&settings("a=same-key-0123456789,b=same-key-0123456789", ""))
                .unwrap_err(),
            KeyConfigError::Duplicate
        );
        assert_eq!(
            KeyStore::from_settings(&settings("", "dev-key-short")).unwrap_err(),
            KeyConfigError::DevKeyTooShort
        );
        // Characters, not bytes: eight two-byte characters are too short.
        assert_eq!(
            KeyStore::from_settings(&settings("acme=éééééééé", "")).unwrap_err(),
            KeyConfigError::TooShort(0)
        );
    }
}
