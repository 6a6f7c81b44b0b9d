//! Counters that `Verifier.stats()` reports. Relaxed atomics: they are figures, not locks.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default, Debug)]
pub struct Stats {
    pub verified: AtomicU64,
    pub cache_hits: AtomicU64,
    pub rejected: AtomicU64,
    pub jwks_fetches: AtomicU64,
    pub jwks_errors: AtomicU64,
    pub stale_served: AtomicU64,
    pub unknown_kid_rejected: AtomicU64,
    pub refreshes_ahead: AtomicU64,
}

impl Stats {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        vec![
            ("verified", get(&self.verified)),
            ("cache_hits", get(&self.cache_hits)),
            ("rejected", get(&self.rejected)),
            ("jwks_fetches", get(&self.jwks_fetches)),
            ("jwks_errors", get(&self.jwks_errors)),
            ("stale_served", get(&self.stale_served)),
            ("unknown_kid_rejected", get(&self.unknown_kid_rejected)),
            ("refreshes_ahead", get(&self.refreshes_ahead)),
        ]
    }
}
