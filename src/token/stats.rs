//! Counters that `TokenClient.stats()` reports. Relaxed atomics: they are figures, not locks.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct TokenStats {
    /// Requests sent to the token endpoint, failed ones included.
    pub token_requests: AtomicU64,
    pub token_errors: AtomicU64,
    /// Calls answered from the cache.
    pub cache_hits: AtomicU64,
    pub refreshes_ahead: AtomicU64,
    /// Calls answered with a still-valid token because a refresh failed or is backing off.
    pub stale_served: AtomicU64,
    pub invalidations: AtomicU64,
}

impl TokenStats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("token_requests", get(&self.token_requests)),
            ("token_errors", get(&self.token_errors)),
            ("cache_hits", get(&self.cache_hits)),
            ("refreshes_ahead", get(&self.refreshes_ahead)),
            ("stale_served", get(&self.stale_served)),
            ("invalidations", get(&self.invalidations)),
        ]
    }
}
