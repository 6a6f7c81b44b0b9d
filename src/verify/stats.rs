//! The figures `Verifier.stats()` reports. The key cache bumps the `jwks_*`, `stale_served`,
//! `unknown_kid_rejected`, `unknown_kid_waited` and `refreshes_ahead` ones on the verifier's behalf.

use crate::Code;

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
        // `rejected` by `InvalidToken.code`, one per `Code` (`rejected_for` picks it), for the
        // metrics' rejection-code label: one relaxed increment beside `rejected`'s.
        /// Tokens rejected with code `malformed`.
        rejected_malformed,
        /// Tokens rejected with code `too_large`.
        rejected_too_large,
        /// Tokens rejected with code `bad_signature`.
        rejected_bad_signature,
        /// Tokens rejected with code `alg_not_allowed`.
        rejected_alg_not_allowed,
        /// Tokens rejected with code `unknown_kid`.
        rejected_unknown_kid,
        /// Tokens rejected with code `expired`.
        rejected_expired,
        /// Tokens rejected with code `not_yet_valid`.
        rejected_not_yet_valid,
        /// Tokens rejected with code `bad_issuer`.
        rejected_bad_issuer,
        /// Tokens rejected with code `bad_audience`.
        rejected_bad_audience,
        /// Tokens rejected with code `azp_not_allowed`.
        rejected_azp_not_allowed,
        /// Tokens rejected with code `wrong_token_type`.
        rejected_wrong_token_type,
        /// Tokens rejected with code `missing_claim`.
        rejected_missing_claim,
        /// Tokens rejected with code `bad_claim`.
        rejected_bad_claim,
        /// Tokens rejected with code `lifetime_too_long`.
        rejected_lifetime_too_long,
        /// Tokens rejected with code `revoked`.
        rejected_revoked,
    }
}

impl VerifierStats {
    /// The counter of rejections with `code`.
    pub(crate) fn rejected_for(&self, code: Code) -> &crate::counters::Counter {
        match code {
            Code::Malformed => &self.rejected_malformed,
            Code::TooLarge => &self.rejected_too_large,
            Code::BadSignature => &self.rejected_bad_signature,
            Code::AlgNotAllowed => &self.rejected_alg_not_allowed,
            Code::UnknownKid => &self.rejected_unknown_kid,
            Code::Expired => &self.rejected_expired,
            Code::NotYetValid => &self.rejected_not_yet_valid,
            Code::BadIssuer => &self.rejected_bad_issuer,
            Code::BadAudience => &self.rejected_bad_audience,
            Code::AzpNotAllowed => &self.rejected_azp_not_allowed,
            Code::WrongTokenType => &self.rejected_wrong_token_type,
            Code::MissingClaim => &self.rejected_missing_claim,
            Code::BadClaim => &self.rejected_bad_claim,
            Code::LifetimeTooLong => &self.rejected_lifetime_too_long,
            Code::Revoked => &self.rejected_revoked,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_has_its_own_counter_named_after_it() {
        let stats = VerifierStats::default();
        let codes = [
            Code::Malformed,
            Code::TooLarge,
            Code::BadSignature,
            Code::AlgNotAllowed,
            Code::UnknownKid,
            Code::Expired,
            Code::NotYetValid,
            Code::BadIssuer,
            Code::BadAudience,
            Code::AzpNotAllowed,
            Code::WrongTokenType,
            Code::MissingClaim,
            Code::BadClaim,
            Code::LifetimeTooLong,
            Code::Revoked,
        ];
        for code in codes {
            stats.rejected_for(code).bump();
        }
        let snapshot = stats.snapshot();
        for code in codes {
            let name = format!("rejected_{}", code.as_str());
            assert_eq!(
                snapshot.iter().find(|(n, _)| *n == name).map(|(_, v)| *v),
                Some(1),
                "{name}"
            );
        }
    }
}
