//! The verifier: policy, keys, and the verified-token cache put together.

mod cache;
mod config;
mod jws;
mod policy;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::sync::{Arc, OnceLock};

use jsonwebtoken::Algorithm;
use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};
use crate::http::Http;
use crate::jwks::{JwksCache, Lookup, Ticket};
use crate::stats::Stats;

pub use config::{VerifierConfig, ASYMMETRIC_ALGORITHMS};
pub use policy::Policy;

use cache::{Entry, TokenCache};

/// A verified token's claims, shared by the verified-token cache and every caller it serves.
pub type Claims = Arc<VerifiedClaims>;

/// The claims (a JSON object; derefs to it), plus one slot where a language binding may keep
/// its own converted form, built once per cached token instead of once per call.
pub struct VerifiedClaims {
    map: Map<String, Value>,
    converted: OnceLock<Box<dyn Any + Send + Sync>>,
}

impl VerifiedClaims {
    pub fn new(map: Map<String, Value>) -> Self {
        VerifiedClaims {
            map,
            converted: OnceLock::new(),
        }
    }

    pub fn map(&self) -> &Map<String, Value> {
        &self.map
    }

    /// The converted form a binding stored, if any (and if it is a `T`).
    pub fn converted<T: Any>(&self) -> Option<&T> {
        self.converted.get()?.downcast_ref::<T>()
    }

    /// Stores a converted form unless one is there already; returns the one kept. Never
    /// blocks: two threads converting at once both succeed, and one result is kept.
    pub fn set_converted<T: Any + Send + Sync>(&self, value: T) -> Option<&T> {
        let _ = self.converted.set(Box::new(value));
        self.converted::<T>()
    }
}

impl std::ops::Deref for VerifiedClaims {
    type Target = Map<String, Value>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl std::fmt::Debug for VerifiedClaims {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.map.fmt(f)
    }
}

/// How many key fetches one verify may cause: one for an empty cache, one for an unknown kid.
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
    /// Keys must be fetched first; then try again.
    Fetch(Ticket),
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
        // Known keys need no runtime: only a fetch goes through it.
        match self.attempt(token)? {
            Step::Done(claims) => Ok(claims),
            Step::Fetch(_) => crate::runtime::block_on(self.verify(token)),
        }
    }

    /// The verified-token cache alone: `Ok(Some)` for a hit that still passes the policy,
    /// `Ok(None)` for a miss (or no cache), `Err` for a cached token that no longer passes (it
    /// has expired). No signature check, no lock held for long, no I/O: cheap enough to call
    /// before anything else, e.g. without releasing an interpreter lock.
    pub fn cached(&self, token: &str) -> Result<Option<Claims>> {
        match self.lookup_cache(token, now()) {
            Err(e) => self.reject(e),
            ok => ok,
        }
    }

    pub async fn verify(&self, token: &str) -> Result<Claims> {
        for _ in 0..MAX_FETCHES_PER_VERIFY {
            match self.attempt(token)? {
                Step::Done(claims) => return Ok(claims),
                Step::Fetch(ticket) => self.jwks.fetch(ticket).await?,
            }
        }
        match self.attempt(token)? {
            Step::Done(claims) => Ok(claims),
            // Keys changed under us on every try: answer as a plain unknown kid.
            Step::Fetch(_) => self.reject(Error::invalid(
                Code::UnknownKid,
                "the token's kid is not in the key set",
            )),
        }
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

    fn check_size(&self, token: &str) -> Result<()> {
        if token.len() > self.max_token_bytes {
            return Err(Error::invalid(
                Code::TooLarge,
                format!("the token is longer than {} bytes", self.max_token_bytes),
            ));
        }
        Ok(())
    }

    fn lookup_cache(&self, token: &str, now: u64) -> Result<Option<Claims>> {
        let Some(cache) = &self.cache else {
            return Ok(None);
        };
        self.check_size(token)?;
        let Some(hit) = cache.get(token) else {
            return Ok(None);
        };
        let published = self.jwks.published_fingerprint(hit.kid.as_deref());
        if published == Some(hit.key_fingerprint)
            && (now as f64) < hit.exp + self.policy.leeway as f64
        {
            self.policy.check(&hit.claims, now)?;
            Stats::bump(&self.stats.cache_hits);
            Stats::bump(&self.stats.verified);
            return Ok(Some(hit.claims.clone()));
        }
        cache.remove(token);
        Ok(None)
    }

    fn attempt_inner(&self, token: &str) -> Result<Step> {
        self.check_size(token)?;
        let now = now();
        if let Some(claims) = self.lookup_cache(token, now)? {
            return Ok(Step::Done(claims));
        }
        let parts = jws::split(token, &self.algorithms)?;
        let key = match self.jwks.lookup(parts.header.kid.as_deref()) {
            Lookup::Found(key) => key,
            Lookup::Rejected(e) => return Err(e),
            Lookup::Fetch(ticket) => return Ok(Step::Fetch(ticket)),
        };
        let alg = parts.header.alg;
        if !key.kind.accepts(alg) || key.alg.is_some_and(|a| a != alg) {
            return Err(Error::invalid(
                Code::AlgNotAllowed,
                "the token's alg does not match its key",
            ));
        }
        if !key.verify(alg, parts.signing_input.as_bytes(), parts.signature) {
            return Err(Error::invalid(
                Code::BadSignature,
                "the signature does not verify",
            ));
        }
        let claims = jws::decode_payload(parts.payload)?;
        self.policy.check(&claims, now)?;
        let claims = Arc::new(VerifiedClaims::new(claims));
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
