//! The figures `TokenClient.stats()` reports.

crate::counters::counters! {
    /// Counters of one token client.
    pub struct TokenStats {
        /// Requests sent to the token endpoint, failed ones included.
        token_requests,
        /// Requests that failed.
        token_errors,
        /// Calls answered from the cache.
        cache_hits,
        /// Token exchanges answered from the exchange cache (a held failure included).
        exchange_hits,
        /// Background refreshes started.
        refreshes_ahead,
        /// Calls answered with a still-valid token because a refresh failed or is backing off.
        stale_served,
        /// Cached tokens dropped by `invalidate`.
        invalidations,
    }
}
