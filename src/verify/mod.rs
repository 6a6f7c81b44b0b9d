//! The verifier: policy, keys, and the verified-token cache put together.
//!
//! A verify asks each question once: one size check, one read of the time and one look at the
//! verified-token cache ([`Verifier::lookup`]); on a miss, one split of the JWS; then the key,
//! the signature and the policy, which alone are asked again after a key fetch. The entry
//! points differ only in how they wait for a fetch:
//!
//! | token only        | after `lookup` missed        | a key fetch is needed      |
//! |-------------------|------------------------------|----------------------------|
//! | `verify`          | `verify_uncached`            | awaited                    |
//! | `verify_blocking` | `verify_uncached_blocking`   | blocks the calling thread  |
//! | `verify_now`      | `verify_uncached_now`        | `Ok(None)`, nothing waits  |
//!
//! An unknown kid inside the refetch cooldown waits for the next allowed refetch, at most
//! `MAX_KEY_WAIT` (5 s) from the first fetch it needed: awaited on the runtime by `verify`, and
//! by `verify_blocking` only while fewer than `MAX_BLOCKING_WAITERS` (8) blocking callers of
//! this verifier wait (the others are refused at once with `unknown_kid`), so forged kids cannot
//! occupy a sync server's thread pool. A known kid never waits.
//!
//! A binding that must not block while holding an interpreter lock calls `lookup` (or `cached`)
//! with the lock held, which is a pure cache probe, and on a miss hands the [`Uncached`] to one
//! of the second column after releasing it, so the cache is not looked at twice.

pub(crate) mod azp;
mod cache;
mod claims;
mod config;
pub(crate) mod jws;
pub(crate) mod policy;
mod report_only;
mod stats;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use jsonwebtoken::Algorithm;
use serde_json::Value;

use crate::error::{Code, Error, Result};
use crate::http::Http;
use crate::jwks::{self, JwksCache, Ticket, MAX_KEY_WAIT};
use crate::revoke::{Revocation, Revocations, SharedHealth};

pub use claims::{Claims, VerifiedClaims};
pub use config::VerifierConfig;
pub(crate) use config::ASYMMETRIC_ALGORITHMS;
pub use stats::VerifierStats;

use cache::{Entry, TokenCache};
use jws::Parts;
use policy::Policy;
use report_only::ReportOnly;

/// How many key fetches one verify may queue for: one for an empty cache, one for an unknown
/// kid (made, or joined after waiting for the cooldown; never a second one).
const MAX_FETCHES_PER_VERIFY: usize = 2;

/// Verifies bearer JWTs offline against one issuer's key set. Share one per issuer: it holds
/// the key cache and the verified-token cache.
pub struct Verifier {
    policy: Policy,
    report_only: Option<ReportOnly>,
    algorithms: Vec<Algorithm>,
    max_token_bytes: usize,
    jwks: Arc<JwksCache>,
    cache: Option<TokenCache>,
    stats: Arc<VerifierStats>,
    revocations: Arc<Revocations>,
    /// False for a logout-token verifier: it shares the revocations (for replay refusal) but
    /// a logout token of a revoked session is not itself refused.
    enforce_revocations: bool,
}

/// The revocations' state, for `health()`.
#[derive(Debug, Clone)]
pub struct RevocationsHealth {
    /// Whether revocations are shared through Redis.
    pub shared: bool,
    /// Shared: whether Redis is reachable now. In-process: None.
    pub connected: Option<bool>,
    /// Revocation rules held.
    pub entries: usize,
    /// Revocations made here that Redis has not had yet.
    pub pending: usize,
    /// Why Redis was last unreachable (None since it answered again).
    pub last_error: Option<String>,
}

/// What the verified-token cache says of one token.
#[derive(Debug)]
pub enum Lookup<'t> {
    /// Verified before, and its claims still pass the policy.
    Hit(Claims),
    /// Not in the cache (or there is no cache): verify it with a `verify_uncached*`.
    Miss(Uncached<'t>),
}

/// A token the verified-token cache does not hold: size-checked, with the time its lookup read.
#[must_use = "an uncached token is verified with a verify_uncached*"]
pub struct Uncached<'t> {
    token: &'t str,
    now: u64,
}

/// Never shows the token: Debug output ends up in logs.
impl std::fmt::Debug for Uncached<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Uncached({} bytes)", self.token.len())
    }
}

/// A token split and its header checked: what a check after a key fetch starts from.
struct Split<'t> {
    token: &'t str,
    parts: Parts<'t>,
}

enum Step {
    Done(Claims),
    /// Keys must be fetched first; then check again.
    Fetch(Ticket),
}

/// How the caller of `fetching` waits.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Waiting {
    /// A task on the runtime: waiting costs no thread.
    Async,
    /// A blocked thread: it waits for the cooldown only with one of the few waiter places.
    Blocking,
}

fn now() -> u64 {
    crate::clock::unix_seconds()
}

impl Verifier {
    /// A verifier for `config`; fails with `Error::Config` naming the bad setting.
    pub fn new(config: VerifierConfig) -> Result<Self> {
        let checked = config.validate()?;
        let stats = Arc::new(VerifierStats::default());
        let revocations = Revocations::new(
            checked.revocation_horizon,
            checked.revocations.as_deref(),
            &checked.policy.issuer,
        )?;
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
            report_only: checked.report_only,
            algorithms: checked.algorithms,
            max_token_bytes: checked.max_token_bytes,
            jwks,
            cache: (checked.cache_size > 0).then(|| TokenCache::new(checked.cache_size)),
            stats,
            revocations,
            enforce_revocations: true,
        })
    }

    /// A verifier of this issuer's back-channel logout tokens (OpenID Connect Back-Channel
    /// Logout 1.0) sent to `client_id`: the same key set, algorithms and revocations, `aud`
    /// must be `client_id`, `iat`, `exp`, `jti` and `events` are required, a `typ` claim (as
    /// Keycloak's) must be "Logout" (so an access token is never taken for one), no `azp` or
    /// lifetime rule, no cache. The remaining rules (`events`, `nonce`, `sid`/`sub`, a recent
    /// `iat`, replay) are the receiver's.
    pub fn logout_verifier(&self, client_id: &str) -> Result<Verifier> {
        if client_id.is_empty() {
            return Err(Error::config("client_id", "must not be empty"));
        }
        let policy = Policy {
            audience: vec![client_id.to_string()],
            allowed_azp: None,
            required_claims: ["iat", "exp", "jti", "events"].map(String::from).to_vec(),
            token_types: Some(vec!["Logout".to_string()]),
            max_lifetime: None,
            ..self.policy.clone()
        };
        Ok(Verifier {
            policy,
            report_only: None,
            algorithms: self.algorithms.clone(),
            max_token_bytes: self.max_token_bytes,
            jwks: self.jwks.clone(),
            cache: None,
            stats: Arc::new(VerifierStats::default()),
            revocations: self.revocations.clone(),
            enforce_revocations: false,
        })
    }

    /// The trusted issuer, without a trailing `/`.
    pub fn issuer(&self) -> &str {
        &self.policy.issuer
    }

    /// This verifier's counters.
    pub fn stats(&self) -> &VerifierStats {
        &self.stats
    }

    /// The state of the key set, for readiness probes: no I/O.
    pub fn health(&self) -> jwks::KeySetHealth {
        self.jwks.health()
    }

    /// Revokes a session, subject, client or token id (`Code::Revoked` from now on, cached
    /// tokens included); shared through Redis when configured. Fails with `Error::Config` when
    /// the arguments name nothing or combine `not_before` with `sid`/`jti`.
    pub fn revoke(&self, revocation: Revocation) -> Result<()> {
        self.revocations.revoke(revocation, now())
    }

    /// The state of the revocations, for `health()`: no I/O.
    pub fn revocations_health(&self) -> RevocationsHealth {
        let shared: Option<SharedHealth> = self.revocations.shared_health();
        RevocationsHealth {
            shared: shared.is_some(),
            connected: shared.as_ref().map(|s| s.connected),
            entries: self.revocations.len(),
            pending: shared.as_ref().map_or(0, |s| s.pending),
            last_error: shared.and_then(|s| s.last_error),
        }
    }

    /// Records a logout token's `jti` until `expires` (Unix seconds): true the first time
    /// (replay refusal, shared through Redis when revocations are and Redis answers).
    pub async fn first_use(&self, jti: &str, expires: u64) -> bool {
        self.revocations.first_use(jti, expires, now()).await
    }

    /// Fetches the key set unless a usable one is held (start-up, before traffic): with the
    /// timeout, and fails with `KeySetUnavailable` when no usable key set can be had.
    pub async fn warm(&self) -> Result<()> {
        if self.jwks.health().ready {
            return Ok(());
        }
        self.jwks.refresh().await
    }

    /// The size check and the verified-token cache alone: `Hit` for a cached token that still
    /// passes the policy, `Miss` otherwise, `Err` for a token too large or a cached token that
    /// no longer passes (it has expired). No signature check, no lock held for long, no I/O:
    /// cheap enough to call before anything else, e.g. without releasing an interpreter lock.
    pub fn lookup<'t>(&self, token: &'t str) -> Result<Lookup<'t>> {
        self.counted(self.probe(token))
    }

    /// `lookup` as an option: `Ok(None)` for a miss.
    pub fn cached(&self, token: &str) -> Result<Option<Claims>> {
        Ok(match self.lookup(token)? {
            Lookup::Hit(claims) => Some(claims),
            Lookup::Miss(_) => None,
        })
    }

    /// Verifies without ever waiting on the network: `Ok(None)` means a key fetch is needed
    /// first. Lets callers on an event loop do the common case inline.
    pub fn verify_now(&self, token: &str) -> Result<Option<Claims>> {
        self.counted(match self.probe(token) {
            Ok(Lookup::Hit(claims)) => Ok(Some(claims)),
            Ok(Lookup::Miss(uncached)) => self.uncached_now(uncached),
            Err(e) => Err(e),
        })
    }

    /// Verifies, blocking the calling thread while keys are fetched.
    pub fn verify_blocking(&self, token: &str) -> Result<Claims> {
        self.counted(match self.probe(token) {
            Ok(Lookup::Hit(claims)) => Ok(claims),
            Ok(Lookup::Miss(uncached)) => self.uncached_blocking(uncached),
            Err(e) => Err(e),
        })
    }

    /// Verifies, awaiting key fetches.
    pub async fn verify(&self, token: &str) -> Result<Claims> {
        let result = match self.probe(token) {
            Ok(Lookup::Hit(claims)) => Ok(claims),
            Ok(Lookup::Miss(uncached)) => self.uncached(uncached).await,
            Err(e) => Err(e),
        };
        self.counted(result)
    }

    /// `verify_now` after `lookup` missed.
    pub fn verify_uncached_now(&self, uncached: Uncached<'_>) -> Result<Option<Claims>> {
        self.counted(self.uncached_now(uncached))
    }

    /// `verify_blocking` after `lookup` missed.
    pub fn verify_uncached_blocking(&self, uncached: Uncached<'_>) -> Result<Claims> {
        self.counted(self.uncached_blocking(uncached))
    }

    /// `verify` after `lookup` missed.
    pub async fn verify_uncached(&self, uncached: Uncached<'_>) -> Result<Claims> {
        let result = self.uncached(uncached).await;
        self.counted(result)
    }

    /// Fetches the key set now. Fails with `KeySetUnavailable` when the fetch fails (the keys
    /// already held stay in use).
    pub async fn refresh_keys(&self) -> Result<()> {
        self.jwks.refresh().await
    }

    /// Every public entry point passes its result through here once, so each rejected token
    /// is counted once however many steps it went through.
    fn counted<T>(&self, result: Result<T>) -> Result<T> {
        if let Err(Error::InvalidToken { code, .. }) = &result {
            self.stats.rejected.bump();
            self.stats.rejected_for(*code).bump();
        }
        result
    }

    /// The claim rules, with the report-only checks (if any) reported rather than enforced.
    fn check_policy(&self, claims: &serde_json::Map<String, Value>, now: u64) -> Result<()> {
        match (self.policy.check(claims, now), &self.report_only) {
            (Err(e), Some(report_only)) => report_only.recheck(claims, now, e, &self.stats),
            (result, _) => result,
        }
    }

    fn probe<'t>(&self, token: &'t str) -> Result<Lookup<'t>> {
        if token.len() > self.max_token_bytes {
            return Err(Error::invalid(
                Code::TooLarge,
                format!("the token is longer than {} bytes", self.max_token_bytes),
            ));
        }
        let now = now();
        let miss = Lookup::Miss(Uncached { token, now });
        let Some(cache) = &self.cache else {
            return Ok(miss);
        };
        let Some(hit) = cache.get(token) else {
            return Ok(miss);
        };
        let published = self.jwks.published_fingerprint(hit.kid.as_deref());
        if published == Some(hit.key_fingerprint)
            && (now as f64) < hit.exp + self.policy.leeway as f64
        {
            self.check_policy(&hit.claims, now)?;
            self.revocations
                .check(&hit.claims, &hit.revocations_checked, now)?;
            self.stats.cache_hits.bump();
            self.stats.verified.bump();
            return Ok(Lookup::Hit(hit.claims.clone()));
        }
        cache.remove(token);
        Ok(miss)
    }

    fn split<'t>(&self, token: &'t str) -> Result<Split<'t>> {
        let parts = jws::split(token, &self.algorithms)?;
        Ok(Split { token, parts })
    }

    fn uncached_now(&self, uncached: Uncached<'_>) -> Result<Option<Claims>> {
        let split = self.split(uncached.token)?;
        match self.check(&split, uncached.now)? {
            Step::Done(claims) => Ok(Some(claims)),
            Step::Fetch(_) => Ok(None),
        }
    }

    fn uncached_blocking(&self, uncached: Uncached<'_>) -> Result<Claims> {
        let split = self.split(uncached.token)?;
        // Known keys need no runtime: only a fetch goes through it.
        match self.check(&split, uncached.now)? {
            Step::Done(claims) => Ok(claims),
            Step::Fetch(ticket) => {
                crate::runtime::block_on(self.fetching(&split, ticket, Waiting::Blocking))
            }
        }
    }

    async fn uncached(&self, uncached: Uncached<'_>) -> Result<Claims> {
        let split = self.split(uncached.token)?;
        match self.check(&split, uncached.now)? {
            Step::Done(claims) => Ok(claims),
            Step::Fetch(ticket) => self.fetching(&split, ticket, Waiting::Async).await,
        }
    }

    /// Fetches keys and checks again, up to `MAX_FETCHES_PER_VERIFY` times, waiting for the
    /// cooldown no later than `MAX_KEY_WAIT` after the first fetch was needed.
    async fn fetching(
        &self,
        split: &Split<'_>,
        mut ticket: Ticket,
        waiting: Waiting,
    ) -> Result<Claims> {
        let deadline = crate::clock::instant() + MAX_KEY_WAIT;
        let mut slot = None;
        let mut refetched = false;
        for _ in 0..MAX_FETCHES_PER_VERIFY {
            if ticket.for_unknown_kid() {
                // The unknown-kid refetch this verify made or joined did not bring the kid, or
                // the window opens too late: the kid is unknown, and waiting again would let
                // one token spend several refetches.
                if refetched || ticket.not_before().is_some_and(|at| at > deadline) {
                    self.stats.unknown_kid_rejected.bump();
                    return Err(unknown_kid());
                }
                refetched = true;
            }
            if ticket.not_before().is_some() && waiting == Waiting::Blocking && slot.is_none() {
                slot = Some(self.jwks.blocking_waiter().ok_or_else(unknown_kid)?);
            }
            self.jwks.fetch(ticket).await?;
            match self.check(split, now())? {
                Step::Done(claims) => return Ok(claims),
                Step::Fetch(next) => ticket = next,
            }
        }
        // Keys changed under us on every try: answer as a plain unknown kid.
        Err(unknown_kid())
    }

    /// The key, the signature and the policy; caches what passes.
    fn check(&self, split: &Split<'_>, now: u64) -> Result<Step> {
        let Parts {
            header,
            signing_input,
            payload,
            signature,
        } = &split.parts;
        let key = match self.jwks.lookup(header.kid.as_deref()) {
            jwks::Lookup::Found(key) => key,
            jwks::Lookup::Rejected(e) => return Err(e),
            jwks::Lookup::Fetch(ticket) => return Ok(Step::Fetch(ticket)),
        };
        let alg = header.alg;
        if !key.kind.accepts(alg) || key.alg.is_some_and(|a| a != alg) {
            return Err(Error::invalid(
                Code::AlgNotAllowed,
                "the token's alg does not match its key",
            ));
        }
        if !key.verify(alg, signing_input.as_bytes(), signature) {
            return Err(Error::invalid(
                Code::BadSignature,
                "the signature does not verify",
            ));
        }
        let claims = jws::decode_payload(payload)?;
        self.check_policy(&claims, now)?;
        // Read before the check: a revocation made meanwhile makes the first hit look again.
        let generation = self.revocations.generation();
        if self.enforce_revocations {
            self.revocations.check_now(&claims, now)?;
        }
        let claims = Arc::new(VerifiedClaims::new(claims));
        if let Some(cache) = &self.cache {
            // Only tokens with an exp are cached: the entry must never outlive the token.
            if let Some(exp) = claims.get("exp").and_then(Value::as_f64) {
                cache.insert(
                    split.token,
                    Entry {
                        claims: claims.clone(),
                        exp,
                        kid: header.kid.clone(),
                        key_fingerprint: key.fingerprint,
                        revocations_checked: generation.into(),
                    },
                );
            }
        }
        self.stats.verified.bump();
        Ok(Step::Done(claims))
    }
}

fn unknown_kid() -> Error {
    Error::invalid(Code::UnknownKid, "the token's kid is not in the key set")
}
