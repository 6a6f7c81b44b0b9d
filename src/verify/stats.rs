//! The figures `Verifier.stats()` reports. The key cache bumps the `jwks_*`, `stale_served`,
//! `unknown_kid_rejected`, `unknown_kid_waited` and `refreshes_ahead` ones on the verifier's behalf.

crate::counters::counters! {
    /// Counters of one verifier and its key cache.
    pub struct VerifierStats {
        /// Tokens accepted, from the cache or not.
        verified,
        /// Tokens accepted from the verified-token cache.
        cache_hits,
        /// Tokens refused as invalid (not for an unavailable key set).
        rejected,
        /// Key-set requests made, failed ones included.
        jwks_fetches,
        /// Key-set requests that failed or returned no usable key.
        jwks_errors,
        /// Verifies served from a key set past its TTL (within `max_stale`).
        stale_served,
        /// Unknown kids refused without a request: the next allowed refetch was more than 5 s
        /// away, or (on the blocking path) enough callers were waiting for it already.
        unknown_kid_rejected,
        /// Unknown kids that waited for the next allowed refetch (at most 5 s).
        unknown_kid_waited,
        /// Background key-set refreshes started.
        refreshes_ahead,
        /// Tokens accepted that fail only a report-only check (audience, issuer).
        report_only_accepted,
    }
}
