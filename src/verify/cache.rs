//! The verified-token cache: token -> claims, bounded, and never past the token's `exp`.

use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use super::Claims;
use quick_cache::sync::Cache;

pub(super) struct Entry {
    pub claims: Claims,
    pub exp: f64,
    pub kid: Option<String>,
    /// The key that verified it: a hit is void once that key is no longer published.
    pub key_fingerprint: u64,
    /// The revocations' generation these claims last passed (`revoke::Revocations::check`).
    pub revocations_checked: AtomicU64,
}

pub(super) struct TokenCache {
    inner: Cache<Box<str>, Arc<Entry>>,
}

impl TokenCache {
    pub(super) fn new(capacity: usize) -> Self {
        TokenCache {
            inner: Cache::new(capacity),
        }
    }

    pub(super) fn get(&self, token: &str) -> Option<Arc<Entry>> {
        self.inner.get(token)
    }

    pub(super) fn insert(&self, token: &str, entry: Entry) {
        self.inner.insert(token.into(), Arc::new(entry));
    }

    pub(super) fn remove(&self, token: &str) {
        self.inner.remove(token);
    }
}
