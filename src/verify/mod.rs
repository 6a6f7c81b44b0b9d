//! The verifier: policy, keys, and the verified-token cache put together.

mod cache;
mod config;
mod jws;
mod policy;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};
use crate::http::Http;
use crate::jwks::{JwksCache, Lookup};
use crate::stats::Stats;

pub use config::{VerifierConfig, ASYMMETRIC_ALGORITHMS};
pub use policy::Policy;

use cache::{Entry, TokenCache};

pub type Claims = Arc<Map<String, Value>>;

/// How many key fetches one verify may cause: the first lookup, and once more after a refetch.
const MAX_FETCHES_PER_VERIFY: usize = 2;

pub struct Verifier {
    policy: Policy,
    algorithms: Vec<Algorithm>,
    max_token_bytes: usize,
    jwks: Arc<JwksCache>,
    cache: Option<TokenCache>,
    stats: Arc<Stats>,
}

enum Step {
    Done(Claims),
    Fetch(crate::jwks::Lookup),
}

fn now() -> u64 {
    crate::clock::unix_seconds()
}

impl Verifier {
    pub fn new(config: VerifierConfig) -> Result<Self> {
        let checked = config.validate()?;
        let stats = Arc::new(Stats::default());
        let http = Http::new(checked.http)?;
        let jwks = Arc::new(JwksCache::new(
            http,
            &checked.policy.issuer,
            checked.jwks_uri,
            checked.jwks_policy,
            stats.clone(),
        ));
        Ok(Verifier {
            policy: checked.policy,
            algorithms: checked.algorithms,
            max_token_bytes: checked.max_token_bytes,
            jwks,
            cache: (checked.cache_size > 0).then(|| TokenCache::new(checked.cache_size)),
            stats,
        })
    }

    pub fn issuer(&self) -> &str {
        &self.policy.issuer
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Verifies without ever waiting on the network: `Ok(None)` means a key fetch is needed
    /// first. Lets callers on an event loop do the common case inline.
    pub fn verify_now(&self, token: &str) -> Result<Option<Claims>> {
        match self.attempt(token) {
            Ok(Step::Done(claims)) => Ok(Some(claims)),
            Ok(Step::Fetch(_)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Verifies, blocking the calling thread while keys are fetched.
    pub fn verify_blocking(&self, token: &str) -> Result<Claims> {
        crate::runtime::block_on(self.verify(token))
    }

    pub async fn verify(&self, token: &str) -> Result<Claims> {
        for _ in 0..MAX_FETCHES_PER_VERIFY {
            match self.attempt(token)? {
                Step::Done(claims) => return Ok(claims),
                Step::Fetch(Lookup::Fetch(ticket)) => self.jwks.fetch(ticket).await?,
                Step::Fetch(_) => unreachable!("attempt only defers on Lookup::Fetch"),
            }
        }
        // Keys changed under us twice in one call: answer as a plain unknown kid.
        self.reject(Error::invalid(
            Code::UnknownKid,
            "the token's kid is not in the key set",
        ))
    }

    /// Fetches the key set now. Fails with `KeySetUnavailable` when the fetch fails (the keys
    /// already held stay in use).
    pub async fn refresh_keys(&self) -> Result<()> {
        self.jwks.refresh().await
    }

    fn reject<T>(&self, e: Error) -> Result<T> {
        if matches!(e, Error::InvalidToken { .. }) {
            Stats::bump(&self.stats.rejected);
        }
        Err(e)
    }

    fn attempt(&self, token: &str) -> Result<Step> {
        match self.attempt_inner(token) {
            Err(e) => self.reject(e),
            ok => ok,
        }
    }

    fn attempt_inner(&self, token: &str) -> Result<Step> {
        if token.len() > self.max_token_bytes {
            return Err(Error::invalid(
                Code::TooLarge,
                format!("the token is longer than {} bytes", self.max_token_bytes),
            ));
        }
        let now = now();
        if let Some(cache) = &self.cache {
            if let Some(hit) = cache.get(token) {
                let published = self.jwks.published_fingerprint(hit.kid.as_deref());
                if published == Some(hit.key_fingerprint)
                    && (now as f64) < hit.exp + self.policy.leeway as f64
                {
                    self.policy.check(&hit.claims, now)?;
                    Stats::bump(&self.stats.cache_hits);
                    Stats::bump(&self.stats.verified);
                    return Ok(Step::Done(hit.claims.clone()));
                }
                cache.remove(token);
            }
        }
        let parts = jws::split(token, &self.algorithms)?;
        let key = match self.jwks.lookup(parts.header.kid.as_deref()) {
            Lookup::Found(key) => key,
            Lookup::Rejected(e) => return Err(e),
            fetch @ Lookup::Fetch(_) => return Ok(Step::Fetch(fetch)),
        };
        let alg = parts.header.alg;
        if !key.kind.accepts(alg) || key.alg.is_some_and(|a| a != alg) {
            return Err(Error::invalid(
                Code::AlgNotAllowed,
                "the token's alg does not match its key",
            ));
        }
        let valid = jsonwebtoken::crypto::verify(
            parts.signature,
            parts.signing_input.as_bytes(),
            &key.key,
            alg,
        )
        .unwrap_or(false);
        if !valid {
            return Err(Error::invalid(
                Code::BadSignature,
                "the signature does not verify",
            ));
        }
        let claims = jws::decode_payload(parts.payload)?;
        self.policy.check(&claims, now)?;
        let claims = Arc::new(claims);
        if let Some(cache) = &self.cache {
            // Only tokens with an exp are cached: the entry must never outlive the token.
            if let Some(exp) = claims.get("exp").and_then(Value::as_f64) {
                cache.insert(
                    token,
                    Entry {
                        claims: claims.clone(),
                        exp,
                        kid: parts.header.kid.clone(),
                        key_fingerprint: key.fingerprint,
                    },
                );
            }
        }
        Stats::bump(&self.stats.verified);
        Ok(Step::Done(claims))
    }
}
