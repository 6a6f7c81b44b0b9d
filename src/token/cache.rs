//! The cached token: reuse while fresh, refresh ahead in its last third, single-flight fetches,
//! a still-valid token served through an outage, and backoff between failed refreshes.
//! Time is `crate::clock`'s, so tests can move it forward instead of waiting.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use parking_lot::Mutex;
use serde_json::Value;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::single_flight::{self, RefreshAhead, Seen, SingleFlight, Turn};

use super::endpoint::{Failed, Issued};
use super::retry;
use super::stats::TokenStats;

/// Lifetime assumed when neither `expires_in` nor the token's `exp` says.
pub(super) const DEFAULT_LIFETIME: Duration = Duration::from_secs(300);

/// An access token and when it expires and falls due for refresh.
pub struct Token {
    value: Zeroizing<String>,
    expires_at: Instant,
    /// The start of the last third of the token's life.
    refresh_at: Instant,
    /// The validity the token had left when it arrived (its lifetime, unless a broker handed
    /// it out late): the refresh margin is capped at a third of it.
    held: Duration,
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let left = self
            .expires_at
            .saturating_duration_since(crate::clock::instant());
        write!(f, "Token(expires in {:.0}s)", left.as_secs_f64())
    }
}

impl Token {
    pub(crate) fn from_issued(issued: Issued) -> Token {
        let claims = jwt_times(&issued.access_token);
        let (remaining, lifetime) = timing(issued.expires_in, claims, issued.received_unix);
        let expires_at = issued.received_at + remaining;
        Token {
            refresh_at: expires_at
                .checked_sub(lifetime / 3)
                .unwrap_or(issued.received_at),
            expires_at,
            held: remaining,
            value: issued.access_token,
        }
    }

    /// The access token itself, for an `Authorization: Bearer` header.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Seconds of validity left.
    pub fn remaining(&self, now: Instant) -> Duration {
        self.expires_at.saturating_duration_since(now)
    }

    /// Handed out until `margin` before expiry, but never refused in the first two thirds of
    /// the time it was held: a margin as long as the lifetime (a 30 s margin on 15 s tokens)
    /// would otherwise make every call a token request.
    pub(super) fn fresh(&self, now: Instant, margin: Duration) -> bool {
        now + margin.min(self.held / 3) < self.expires_at
    }

    fn valid(&self, now: Instant) -> bool {
        now < self.expires_at
    }

    /// In the last third of its life: a refresh is due.
    pub(super) fn due(&self, now: Instant) -> bool {
        now >= self.refresh_at
    }

    /// (Unix expiry, lifetime, held) in seconds: the token's times on the wall clock, for the
    /// shared cache (processes share no `Instant`).
    pub(super) fn wall_times(&self, now: Instant, now_unix: f64) -> (f64, f64, f64) {
        let left = self.remaining(now).as_secs_f64();
        let lifetime = 3.0
            * self
                .expires_at
                .saturating_duration_since(self.refresh_at)
                .as_secs_f64();
        (now_unix + left, lifetime, self.held.as_secs_f64())
    }

    /// A token from another process's `wall_times`; None once expired (or for nonsense times).
    pub(super) fn from_wall_times(
        value: Zeroizing<String>,
        (expires_unix, lifetime, held): (f64, f64, f64),
        now: Instant,
        now_unix: f64,
    ) -> Option<Token> {
        let seconds = |v: f64| (0.0..1e9).contains(&v).then(|| Duration::from_secs_f64(v));
        let left = seconds(expires_unix - now_unix).filter(|d| !d.is_zero())?;
        let expires_at = now + left;
        Some(Token {
            refresh_at: expires_at
                .checked_sub(seconds(lifetime)? / 3)
                .unwrap_or(now),
            expires_at,
            held: seconds(held)?,
            value,
        })
    }
}

/// `exp` and `iat` of a JWT access token, read without verification: only our own scheduling
/// depends on them. None for opaque tokens.
fn jwt_times(token: &str) -> Option<(Option<f64>, Option<f64>)> {
    let payload = token.split('.').nth(1)?;
    let bytes = Zeroizing::new(URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?);
    let claims: Value = serde_json::from_slice(&bytes).ok()?;
    let number = |name: &str| {
        claims
            .get(name)
            .and_then(Value::as_f64)
            .filter(|v| v.is_finite())
    };
    Some((number("exp"), number("iat")))
}

/// (time left, whole lifetime). Time left comes from `expires_in`, else from `exp` against our
/// clock, else the default. The lifetime is `exp - iat` when the token says (both are the
/// server's clock, so skew cannot distort it), which also covers a token handed out some time
/// after it was issued (a caching broker): it may then be in its last third at once.
fn timing(
    expires_in: Option<f64>,
    claims: Option<(Option<f64>, Option<f64>)>,
    now_unix: f64,
) -> (Duration, Duration) {
    let (exp, iat) = claims.unwrap_or((None, None));
    let remaining = match (expires_in, exp) {
        (Some(seconds), _) => seconds,
        (None, Some(exp)) if exp > now_unix => exp - now_unix,
        (None, Some(_)) => {
            log::warn!(
                "the token's exp is already past by this machine's clock (clock skew?); \
                 assuming {}s",
                DEFAULT_LIFETIME.as_secs()
            );
            DEFAULT_LIFETIME.as_secs_f64()
        }
        (None, None) => DEFAULT_LIFETIME.as_secs_f64(),
    }
    .min(1e9);
    let lifetime = match (exp, iat) {
        (Some(exp), Some(iat)) if exp - iat > remaining => (exp - iat).min(1e9),
        _ => remaining,
    };
    (
        Duration::from_secs_f64(remaining),
        Duration::from_secs_f64(lifetime),
    )
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Mode {
    /// One request: a still-valid token is there to fall back on.
    Once,
    /// Retries with backoff: the caller has nothing else.
    Retry,
}

/// Where new tokens come from (the token endpoint; a fake in tests).
pub(super) trait Source: Send + Sync + 'static {
    fn fetch(&self, mode: Mode) -> impl Future<Output = Result<Token, Failed>> + Send;

    /// `token` was invalidated (a 401 for it): the source must not hand it out again.
    fn invalidated(&self, _token: &Token) {}
}

#[derive(Default)]
struct Backoff {
    failures: u32,
    /// No request before this instant.
    until: Option<Instant>,
    last_error: Option<Error>,
}

/// The state of a token cache, for `TokenClient::health` (no I/O).
#[derive(Debug, Clone, PartialEq)]
pub struct TokenHealth {
    /// A token valid now is held.
    pub ready: bool,
    /// Seconds until the held token expires (None with none held; 0 once expired).
    pub expires_in: Option<f64>,
    /// Why the last token request failed; None once one succeeds. Never the credential.
    pub last_error: Option<String>,
    /// When the last token request succeeded (Unix seconds).
    pub last_success: Option<f64>,
    /// The shared cache's state; None without one.
    pub shared_cache: Option<super::shared::SharedCacheHealth>,
}

/// A look at the cache that found no usable token; spent by [`TokenCache::fetch`].
#[must_use = "a miss is spent by fetching"]
#[derive(Debug)]
pub struct Miss {
    seen: Seen,
}

pub(super) struct TokenCache<S> {
    source: S,
    margin: Duration,
    current: ArcSwapOption<Token>,
    /// A caller that queued behind a fetch sees it completed and takes its outcome.
    flight: SingleFlight,
    outcome: Mutex<Option<Result<Arc<Token>, Error>>>,
    backoff: Mutex<Backoff>,
    /// When the last request succeeded (Unix seconds), for `health`.
    last_success: Mutex<Option<f64>>,
    stats: Arc<TokenStats>,
}

impl<S: Source> TokenCache<S> {
    pub(super) fn new(source: S, margin: Duration, stats: Arc<TokenStats>) -> Self {
        TokenCache {
            source,
            margin,
            current: ArcSwapOption::const_empty(),
            flight: SingleFlight::new(),
            outcome: Mutex::new(None),
            backoff: Mutex::new(Backoff::default()),
            last_success: Mutex::new(None),
            stats,
        }
    }

    pub(super) fn source(&self) -> &S {
        &self.source
    }

    /// A token usable now without waiting on the network, or the [`Miss`] to hand to
    /// [`TokenCache::fetch`]. May start a background refresh. The one look at the cache a call
    /// makes: the miss carries what a fetch needs to know of it.
    pub(super) fn lookup(self: &Arc<Self>) -> Result<Arc<Token>, Miss> {
        // Read before the cache: a fetch that completes after this point is seen as moved.
        let miss = Miss {
            seen: self.flight.observe(),
        };
        let now = crate::clock::instant();
        let Some(token) = self.current.load_full() else {
            return Err(miss);
        };
        if token.fresh(now, self.margin) {
            if now >= token.refresh_at {
                self.refresh_ahead(now);
            }
            self.stats.cache_hits.bump();
            return Ok(token);
        }
        if token.valid(now) && self.backing_off(now) {
            self.stats.stale_served.bump();
            return Ok(token);
        }
        Err(miss)
    }

    pub(super) fn health(&self) -> TokenHealth {
        let now = crate::clock::instant();
        let current = self.current.load();
        TokenHealth {
            ready: current.as_ref().is_some_and(|t| t.valid(now)),
            expires_in: current.as_ref().map(|t| t.remaining(now).as_secs_f64()),
            last_error: self
                .backoff
                .lock()
                .last_error
                .as_ref()
                .map(|e| e.to_string()),
            last_success: *self.last_success.lock(),
            shared_cache: None,
        }
    }

    fn backing_off(&self, now: Instant) -> bool {
        self.backoff.lock().until.is_some_and(|t| now < t)
    }

    /// A token, fetched if the cache has none usable.
    pub(super) async fn get(self: &Arc<Self>) -> Result<Arc<Token>> {
        match self.lookup() {
            Ok(token) => Ok(token),
            Err(miss) => self.fetch(miss).await,
        }
    }

    /// After a miss: the last error while backing off, else the outcome of a fetch that
    /// completed since the miss, else a fetch of our own (one at a time).
    pub(super) async fn fetch(self: &Arc<Self>, miss: Miss) -> Result<Arc<Token>> {
        {
            let backoff = self.backoff.lock();
            if backoff.until.is_some_and(|t| crate::clock::instant() < t) {
                if let Some(e) = &backoff.last_error {
                    return Err(e.clone());
                }
            }
        }
        let turn = self.flight.turn().await;
        if turn.moved_since(miss.seen) {
            if let Some(shared) = self.shared_outcome() {
                return shared;
            }
        }
        self.fetch_locked(&turn).await
    }

    /// The outcome of the fetch a caller waited for, if it still holds: its token unless that
    /// was invalidated since, its error unless a valid token is there.
    fn shared_outcome(&self) -> Option<Result<Arc<Token>>> {
        let outcome = self.outcome.lock().clone()?;
        let current = self.current.load_full();
        match outcome {
            Ok(token) => current.filter(|c| Arc::ptr_eq(c, &token)).map(Ok),
            Err(e) => Some(match current.filter(|c| c.valid(crate::clock::instant())) {
                Some(token) => {
                    self.stats.stale_served.bump();
                    Ok(token)
                }
                None => Err(e),
            }),
        }
    }

    async fn fetch_locked(&self, turn: &Turn<'_>) -> Result<Arc<Token>> {
        let has_fallback = self
            .current
            .load()
            .as_ref()
            .is_some_and(|t| t.valid(crate::clock::instant()));
        let mode = if has_fallback {
            Mode::Once
        } else {
            Mode::Retry
        };
        let outcome = match self.source.fetch(mode).await {
            Ok(token) => {
                let token = Arc::new(token);
                self.current.store(Some(token.clone()));
                *self.backoff.lock() = Backoff::default();
                *self.last_success.lock() = Some(crate::clock::unix_seconds_f64());
                Ok(token)
            }
            Err(failed) => {
                let retry_after = failed.retry_after;
                let error = failed.into_error();
                let (failures, window) = {
                    let mut backoff = self.backoff.lock();
                    backoff.failures += 1;
                    let window = retry::window(backoff.failures, retry_after);
                    backoff.until = Some(crate::clock::instant() + window);
                    backoff.last_error = Some(error.clone());
                    (backoff.failures, window)
                };
                // Not under `backoff`: a log record takes the GIL, and a thread holding the GIL
                // may be waiting for `backoff` in `health()`.
                log::debug!(
                    "token refresh failed {failures} time(s) in a row; next attempt in {:.1}s at \
                     the earliest",
                    window.as_secs_f64()
                );
                Err(error)
            }
        };
        *self.outcome.lock() = Some(outcome.clone());
        turn.completed();
        match outcome {
            Ok(token) => Ok(token),
            Err(e) => {
                let now = crate::clock::instant();
                match self.current.load_full().filter(|t| t.valid(now)) {
                    Some(token) => {
                        log::warn!(
                            "token refresh failed, serving the cached token (valid for another \
                             {:.0}s): {e}",
                            token.remaining(now).as_secs_f64()
                        );
                        self.stats.stale_served.bump();
                        Ok(token)
                    }
                    None => Err(e),
                }
            }
        }
    }

    fn refresh_ahead(self: &Arc<Self>, now: Instant) {
        if self.backing_off(now) {
            return;
        }
        single_flight::refresh_ahead(self, || self.stats.refreshes_ahead.bump());
    }

    /// Drops the cached token: any token with None, else only if `token` is still the cached
    /// one (so a burst of 401s for one token causes one refresh). True if something was dropped.
    pub(super) fn invalidate(&self, token: Option<&str>) -> bool {
        let previous = self.current.rcu(|current| match (current, token) {
            (Some(t), Some(value)) if t.value() != value => Some(t.clone()),
            _ => None,
        });
        let dropped = match (&previous, token) {
            (Some(t), Some(value)) => t.value() == value,
            (Some(_), None) => true,
            (None, _) => false,
        };
        if dropped {
            if let Some(token) = &previous {
                self.source.invalidated(token);
            }
            self.stats.invalidations.bump();
            log::debug!("cached token invalidated");
        }
        dropped
    }
}

impl<S: Source> RefreshAhead for TokenCache<S> {
    fn flight(&self) -> &SingleFlight {
        &self.flight
    }

    async fn refresh_ahead_locked(&self, turn: &Turn<'_>) {
        // Failures are logged and backed off inside; the old token stays in use.
        let _ = self.fetch_locked(turn).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::TokenRequestFailure;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

    fn secs(d: Duration) -> f64 {
        d.as_secs_f64()
    }

    #[test]
    fn timing_prefers_expires_in_then_exp_then_default() {
        let (left, life) = timing(Some(120.0), None, 1000.0);
        assert_eq!((secs(left), secs(life)), (120.0, 120.0));
        let (left, life) = timing(None, Some((Some(1300.0), Some(1000.0))), 1000.0);
        assert_eq!((secs(left), secs(life)), (300.0, 300.0));
        let (left, _) = timing(None, Some((Some(900.0), None)), 1000.0);
        assert_eq!(
            secs(left),
            300.0,
            "an exp in the past falls back to the default"
        );
        let (left, life) = timing(None, None, 1000.0);
        assert_eq!((secs(left), secs(life)), (300.0, 300.0));
        // Handed out 200 s after it was issued: lifetime 300, 100 left, last third already.
        let (left, life) = timing(Some(100.0), Some((Some(1300.0), Some(1000.0))), 1200.0);
        assert_eq!((secs(left), secs(life)), (100.0, 300.0));
    }

    #[test]
    fn reads_jwt_times_without_verifying() {
        let payload = URL_SAFE_NO_PAD.encode(br#"{"exp":2000,"iat":1700}"#);
        let token = format!("e30.{payload}.sig");
        assert_eq!(jwt_times(&token), Some((Some(2000.0), Some(1700.0))));
        assert_eq!(jwt_times("opaque-token"), None);
    }

    /// A source that hands out numbered tokens of `lifetime` seconds, received `age` seconds
    /// ago, or fails while `failing` is set; counts calls and signals each completed fetch.
    struct Fake {
        calls: AtomicU64,
        failing: AtomicBool,
        lifetime: AtomicU64,
        age: AtomicU64,
        done: tokio::sync::Notify,
    }

    impl Source for Fake {
        async fn fetch(&self, _mode: Mode) -> Result<Token, Failed> {
            let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
            tokio::task::yield_now().await;
            let result = if self.failing.load(Ordering::SeqCst) {
                Err(Failed {
                    failure: TokenRequestFailure {
                        status: None,
                        error: None,
                        description: "down".into(),
                        retryable: true,
                        transport: None,
                    },
                    retry_after: None,
                })
            } else {
                Ok(Token::from_issued(Issued {
                    access_token: Zeroizing::new(format!("token-{n}")),
                    expires_in: Some(self.lifetime.load(Ordering::SeqCst) as f64),
                    received_at: crate::clock::instant()
                        - Duration::from_secs(self.age.load(Ordering::SeqCst)),
                    received_unix: 0.0,
                }))
            };
            self.done.notify_one();
            result
        }
    }

    fn cache(lifetime: u64, margin: u64) -> Arc<TokenCache<Fake>> {
        let fake = Fake {
            calls: AtomicU64::new(0),
            failing: AtomicBool::new(false),
            lifetime: AtomicU64::new(lifetime),
            age: AtomicU64::new(0),
            done: tokio::sync::Notify::new(),
        };
        Arc::new(TokenCache::new(
            fake,
            Duration::from_secs(margin),
            Arc::default(),
        ))
    }

    fn calls(cache: &TokenCache<Fake>) -> u64 {
        cache.source.calls.load(Ordering::SeqCst)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_callers_on_a_stale_token_share_one_fetch() {
        // Received 20 s ago with 20 s to live: the first token needs replacing at once.
        let cache = cache(20, 30);
        cache.source.age.store(20, Ordering::SeqCst);
        let stale = cache.get().await.unwrap();
        cache.source.age.store(0, Ordering::SeqCst);
        cache.source.lifetime.store(300, Ordering::SeqCst);
        let barrier = Arc::new(tokio::sync::Barrier::new(64));
        let tasks: Vec<_> = (0..64)
            .map(|_| {
                let (cache, barrier) = (cache.clone(), barrier.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    cache.get().await.map(|t| t.value().to_string())
                })
            })
            .collect();
        for task in tasks {
            assert_eq!(task.await.unwrap().unwrap(), "token-2");
        }
        assert_eq!(stale.value(), "token-1");
        assert_eq!(calls(&cache), 2);
    }

    #[tokio::test]
    async fn invalidate_only_drops_the_token_it_names() {
        let cache = cache(300, 30);
        let first = cache.get().await.unwrap();
        assert!(!cache.invalidate(Some("not-it")));
        assert!(Arc::ptr_eq(&cache.get().await.unwrap(), &first));
        assert!(cache.invalidate(Some(first.value())));
        assert!(
            !cache.invalidate(Some(first.value())),
            "a second 401 for it is a no-op"
        );
        assert_eq!(cache.get().await.unwrap().value(), "token-2");
        assert!(cache.invalidate(None));
        assert_eq!(calls(&cache), 2);
    }

    #[tokio::test]
    async fn a_valid_token_is_served_through_failures_with_backoff() {
        // 5 s left of 20: inside the margin (capped at a third of 20 s).
        let cache = cache(20, 30);
        cache.source.age.store(15, Ordering::SeqCst);
        let first = cache.get().await.unwrap();
        cache.source.failing.store(true, Ordering::SeqCst);
        // In the margin, the refresh fails: the still-valid token is served instead.
        assert!(Arc::ptr_eq(&cache.get().await.unwrap(), &first));
        assert_eq!(calls(&cache), 2);
        // Inside the backoff window: served at once, no request.
        for _ in 0..10 {
            assert!(Arc::ptr_eq(&cache.get().await.unwrap(), &first));
        }
        assert_eq!(calls(&cache), 2);
        // Without a token, the window answers with the last error, also without a request.
        cache.invalidate(None);
        let e = cache.get().await.unwrap_err();
        assert!(matches!(e, Error::TokenRequest(ref f) if f.retryable));
        assert_eq!(calls(&cache), 2);
    }

    #[tokio::test]
    async fn last_third_refreshes_in_the_background() {
        let cache = cache(300, 0);
        let issued = Issued {
            access_token: Zeroizing::new(format!(
                "e30.{}.sig",
                URL_SAFE_NO_PAD.encode(br#"{"iat":1000,"exp":2000}"#)
            )),
            expires_in: Some(300.0),
            received_at: crate::clock::instant(),
            received_unix: 1700.0,
        };
        // Lifetime 1000 s with 300 s left: in its last third from the start.
        cache
            .current
            .store(Some(Arc::new(Token::from_issued(issued))));
        let old = cache.get().await.unwrap();
        assert!(
            old.value().starts_with("e30."),
            "the current token is returned at once"
        );
        // The refresh holds the gate until the new token is stored.
        cache.source.done.notified().await;
        drop(cache.flight.turn().await);
        assert_eq!(calls(&cache), 1);
        assert_eq!(cache.get().await.unwrap().value(), "token-1");
        assert_eq!(cache.stats.refreshes_ahead.get(), 1);
    }

    #[tokio::test]
    async fn a_margin_longer_than_the_lifetime_is_capped_at_a_third_of_it() {
        // 15 s tokens, 30 s margin: handed out for their first 10 s, not a request per call.
        let cache = cache(15, 30);
        let first = cache.get().await.unwrap();
        for _ in 0..200 {
            assert!(Arc::ptr_eq(&cache.get().await.unwrap(), &first));
        }
        assert_eq!(calls(&cache), 1);
        // Received 11 s ago (4 s left): in its last third, so no longer handed out.
        cache.source.age.store(11, Ordering::SeqCst);
        cache.invalidate(None);
        let late = cache.get().await.unwrap();
        assert_eq!(calls(&cache), 2);
        cache.source.age.store(0, Ordering::SeqCst);
        assert!(!Arc::ptr_eq(&cache.get().await.unwrap(), &late));
        assert_eq!(calls(&cache), 3);
        // A short margin is kept as it is: a 300 s token goes on to its last 30 s.
        let long = Token::from_issued(Issued {
            access_token: Zeroizing::new("t".into()),
            expires_in: Some(300.0),
            received_at: crate::clock::instant(),
            received_unix: 0.0,
        });
        let now = crate::clock::instant();
        let margin = Duration::from_secs(30);
        assert!(long.fresh(now + Duration::from_secs(269), margin));
        assert!(!long.fresh(now + Duration::from_secs(270), margin));
        assert!(long.fresh(now + Duration::from_secs(9), Duration::from_secs(300)));
        assert!(!long.fresh(now + Duration::from_secs(200), Duration::from_secs(300)));
    }
}
