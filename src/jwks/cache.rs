//! The JWKS cache and its fetch policy (docs/architecture.md, "Key-set policy"):
//! - keys are served from an immutable snapshot, swapped whole after each fetch;
//! - past 80 % of the TTL one background refresh starts; callers never wait for it;
//! - an unknown kid triggers one shared refetch, then at most one per cooldown (5 s); an unknown
//!   kid inside the cooldown waits for the next allowed refetch (at most [`MAX_KEY_WAIT`]) and
//!   joins it, so a stream of forged kids cannot hold a real rotation back for longer than that;
//! - a request whose kid is known never waits for anything;
//! - a failed fetch keeps the last good keys, served up to `max_stale` past expiry; with nothing
//!   usable, fetches are retried after a short backoff that grows to [`FAILED_FETCH_BACKOFF_MAX`].

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use arc_swap::ArcSwapOption;
use parking_lot::Mutex;

use crate::error::{Code, Error, Result};
use crate::http::Http;
use crate::single_flight::{self, RefreshAhead, Seen, SingleFlight, Turn};
use crate::verify::VerifierStats;

use super::fetch::{KeySetLocation, Source};
use super::key::{KeySet, VerifyingKey};

const MIN_TTL: Duration = Duration::from_secs(60);
const MAX_TTL: Duration = Duration::from_secs(24 * 3600);
/// After a failed fetch, scheduled and empty-cache fetches wait this long (at most the cooldown)
/// so an IdP outage is not answered with a request per incoming call; the wait doubles with each
/// failure in a row up to the maximum. Small at first, so a short outage ends for callers within
/// a fraction of a second of the IdP healing; at most 0.75 s, so a long one still ends for them
/// within 1 s (the step, then one round trip), while a dead IdP gets about a request a second
/// (at most 1.33).
const FAILED_FETCH_BACKOFF_FIRST: Duration = Duration::from_millis(100);
pub(crate) const FAILED_FETCH_BACKOFF_MAX: Duration = Duration::from_millis(750);
/// The longest a caller waits for the next allowed unknown-kid refetch. A kid arriving with the
/// next refetch further away (a cooldown configured above 5 s) is refused at once.
pub(crate) const MAX_KEY_WAIT: Duration = Duration::from_secs(5);
/// How many blocking (sync) callers may wait for an unknown-kid refetch at once, per verifier.
/// A sync route runs in a thread pool (Starlette's has 40 threads): forged kids must not hold
/// more than a few of them. 8 is more than a forged kid a second can fill (each waits at most
/// 5 s and all of a window's waiters are released together), so a real rotation still gets a
/// place; beyond it, an unknown kid on the sync path is refused at once with `unknown_kid`.
pub(crate) const MAX_BLOCKING_WAITERS: usize = 8;

#[derive(Debug, Clone)]
pub(crate) struct JwksPolicy {
    /// Freshness when the server sends no `Cache-Control: max-age`.
    pub default_ttl: Duration,
    pub cooldown: Duration,
    pub max_stale: Duration,
}

impl Default for JwksPolicy {
    fn default() -> Self {
        JwksPolicy {
            default_ttl: Duration::from_secs(300),
            cooldown: Duration::from_secs(5),
            max_stale: Duration::from_secs(86400),
        }
    }
}

struct Snapshot {
    keys: Arc<KeySet>,
    fetched_at: Instant,
    ttl: Duration,
}

#[derive(Default)]
struct Control {
    last_unknown_refetch: Option<Instant>,
    /// No scheduled or empty-cache fetch before this instant (set by a failed fetch).
    retry_after: Option<Instant>,
    /// Failed fetches in a row, for the backoff.
    failures: u32,
    /// Why the last fetch failed; None once one succeeds.
    last_error: Option<String>,
    /// When the last fetch succeeded (Unix seconds).
    last_success: Option<f64>,
}

/// The state of a key cache, for `Verifier::health` (no I/O, one lock taken briefly).
#[derive(Debug, Clone, PartialEq)]
pub struct KeySetHealth {
    /// A non-empty key set within `max_stale` of its freshness is held.
    pub ready: bool,
    /// Keys in the set held (0 with none).
    pub keys: usize,
    /// Seconds since the set held was fetched.
    pub age: Option<f64>,
    /// The set held is past its freshness (its refetch has not succeeded) and still served.
    pub stale: bool,
    /// Why the last fetch failed; None once one succeeds. Names URLs, never credentials.
    pub last_error: Option<String>,
    /// When the last fetch succeeded (Unix seconds).
    pub last_success: Option<f64>,
}

fn failed_fetch_backoff(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(16);
    FAILED_FETCH_BACKOFF_FIRST
        .saturating_mul(1 << doublings)
        .min(FAILED_FETCH_BACKOFF_MAX)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reason {
    /// Nothing usable cached (never fetched, emptied, or past `max_stale`).
    NoKeys,
    UnknownKid,
    Scheduled,
    Explicit,
}

/// What the verifier must do next for a kid.
pub(crate) enum Lookup {
    Found(Arc<VerifyingKey>),
    /// Fetch (single-flight) with this ticket, then look up again.
    Fetch(Ticket),
    Rejected(Error),
}

pub(crate) struct Ticket {
    seen: Seen,
    reason: Reason,
    /// For an unknown kid inside the cooldown: when the next refetch is allowed. The fetch
    /// waits until then (at most `MAX_KEY_WAIT` from the lookup) before joining it.
    not_before: Option<Instant>,
}

impl Ticket {
    /// When the fetch this ticket asks for may start, if it must wait.
    pub(crate) fn not_before(&self) -> Option<Instant> {
        self.not_before
    }

    /// Whether it is the refetch of an unknown kid (a verify needs at most one).
    pub(crate) fn for_unknown_kid(&self) -> bool {
        self.reason == Reason::UnknownKid
    }
}

/// A blocking caller's place among the `MAX_BLOCKING_WAITERS`; given back on drop.
pub(crate) struct WaiterSlot<'a>(&'a AtomicUsize);

impl Drop for WaiterSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

pub(crate) struct JwksCache {
    http: Http,
    source: Source,
    policy: JwksPolicy,
    snapshot: ArcSwapOption<Snapshot>,
    control: Mutex<Control>,
    /// A caller that queued behind a fetch sees it completed and skips its own.
    flight: SingleFlight,
    /// Blocking callers now waiting for an unknown-kid refetch. Not reset by a fork: a thread
    /// that holds a slot across `fork()` does not exist in the child, and the cost is at most a
    /// few slots of a bound that only protects the thread pool.
    blocking_waiters: AtomicUsize,
    stats: Arc<VerifierStats>,
}

impl JwksCache {
    pub(crate) fn new(
        http: Http,
        issuer: &str,
        jwks_uri: KeySetLocation,
        policy: JwksPolicy,
        stats: Arc<VerifierStats>,
    ) -> Self {
        JwksCache {
            http,
            source: Source::new(issuer, jwks_uri),
            policy,
            snapshot: ArcSwapOption::const_empty(),
            control: Mutex::new(Control::default()),
            flight: SingleFlight::new(),
            blocking_waiters: AtomicUsize::new(0),
            stats,
        }
    }

    /// A place for a blocking caller to wait for keys, unless `MAX_BLOCKING_WAITERS` are
    /// waiting already (then the caller is refused, and counted as such).
    pub(crate) fn blocking_waiter(&self) -> Option<WaiterSlot<'_>> {
        let taken = self
            .blocking_waiters
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < MAX_BLOCKING_WAITERS).then_some(n + 1)
            });
        match taken {
            Ok(_) => Some(WaiterSlot(&self.blocking_waiters)),
            Err(_) => {
                self.stats.unknown_kid_rejected.bump();
                None
            }
        }
    }

    /// The fingerprint of the key now published under `kid`, if any, for a verified-token cache
    /// hit. Keeps refresh-ahead going for services that only ever see cached tokens.
    pub(crate) fn published_fingerprint(self: &Arc<Self>, kid: Option<&str>) -> Option<u64> {
        let guard = self.snapshot.load();
        let snap = guard.as_ref()?;
        let now = crate::clock::instant();
        let age = now.saturating_duration_since(snap.fetched_at);
        if age > snap.ttl + self.policy.max_stale {
            return None;
        }
        if age >= snap.ttl.mul_f64(0.8) {
            self.refresh_ahead(now);
        }
        snap.keys.get(kid).map(|k| k.fingerprint)
    }

    pub(crate) fn health(&self) -> KeySetHealth {
        let now = crate::clock::instant();
        let (last_error, last_success) = {
            let control = self.control.lock();
            (control.last_error.clone(), control.last_success)
        };
        let guard = self.snapshot.load();
        let held = guard.as_ref().map(|snap| {
            let age = now.saturating_duration_since(snap.fetched_at);
            let usable = !snap.keys.is_empty() && age <= snap.ttl + self.policy.max_stale;
            (snap.keys.len(), age, usable, usable && age > snap.ttl)
        });
        let (keys, age, ready, stale) = match held {
            Some((keys, age, usable, stale)) => (keys, Some(age.as_secs_f64()), usable, stale),
            None => (0, None, false, false),
        };
        KeySetHealth {
            ready,
            keys,
            age,
            stale,
            last_error,
            last_success,
        }
    }

    pub(crate) fn lookup(self: &Arc<Self>, kid: Option<&str>) -> Lookup {
        let now = crate::clock::instant();
        // Read before the snapshot: a fetch stores its snapshot before it bumps the generation,
        // so a ticket never names a generation older than the keys this lookup saw.
        let seen = self.flight.observe();
        let ticket = |reason| {
            Lookup::Fetch(Ticket {
                seen,
                reason,
                not_before: None,
            })
        };
        let guard = self.snapshot.load();
        let Some(snap) = guard.as_ref() else {
            return self.unless_backing_off(now, ticket(Reason::NoKeys));
        };
        let age = now.saturating_duration_since(snap.fetched_at);
        if age > snap.ttl + self.policy.max_stale || snap.keys.is_empty() {
            return self.unless_backing_off(now, ticket(Reason::NoKeys));
        }
        if age >= snap.ttl.mul_f64(0.8) {
            if age > snap.ttl {
                self.stats.stale_served.bump();
            }
            self.refresh_ahead(now);
        }
        if let Some(key) = snap.keys.get(kid) {
            return Lookup::Found(key.clone());
        }
        let opens_at = self
            .control
            .lock()
            .last_unknown_refetch
            .map(|t| t + self.policy.cooldown)
            .filter(|at| now < *at);
        let Some(opens_at) = opens_at else {
            return ticket(Reason::UnknownKid);
        };
        // The refetch that started the cooldown may have stored its keys after our load.
        if let Some(key) = self
            .snapshot
            .load()
            .as_ref()
            .and_then(|s| s.keys.get(kid).cloned())
        {
            return Lookup::Found(key);
        }
        if opens_at - now > MAX_KEY_WAIT {
            self.stats.unknown_kid_rejected.bump();
            return Lookup::Rejected(unknown_kid(kid));
        }
        // Wait for the next allowed refetch rather than refuse: the kid may be a real rotation
        // that a forged kid's refetch just missed.
        Lookup::Fetch(Ticket {
            seen,
            reason: Reason::UnknownKid,
            not_before: Some(opens_at),
        })
    }

    fn unless_backing_off(&self, now: Instant, next: Lookup) -> Lookup {
        match self.control.lock().retry_after {
            Some(t) if now < t => Lookup::Rejected(Error::KeySetUnavailable(
                "the last JWKS fetch failed; retrying shortly".into(),
            )),
            _ => next,
        }
    }

    /// Runs the fetch a `Lookup::Fetch` asked for. Concurrent callers share one request: whoever
    /// gets the gate second finds the generation moved and returns at once.
    /// A ticket with `not_before` first sleeps until then (real time: the test clock only moves
    /// the reads of "now"); every caller woken at the window's opening then queues on the gate,
    /// and the first one fetches for all of them.
    pub(crate) async fn fetch(&self, ticket: Ticket) -> Result<()> {
        if let Some(at) = ticket.not_before {
            self.stats.unknown_kid_waited.bump();
            let wait = at.saturating_duration_since(crate::clock::instant());
            tokio::time::sleep(wait.min(MAX_KEY_WAIT)).await;
        }
        let turn = self.flight.turn().await;
        if turn.moved_since(ticket.seen) {
            return Ok(());
        }
        self.fetch_locked(&turn, ticket.reason).await
    }

    /// Fetches now, whatever the cache holds (`Verifier.refresh_keys`).
    pub(crate) async fn refresh(&self) -> Result<()> {
        let turn = self.flight.turn().await;
        self.fetch_locked(&turn, Reason::Explicit).await
    }

    async fn fetch_locked(&self, turn: &Turn<'_>, reason: Reason) -> Result<()> {
        self.stats.jwks_fetches.bump();
        let result = self.source.fetch(&self.http).await;
        let now = crate::clock::instant();
        let previous = self.snapshot.load_full();
        // Logged before `control` is taken and after it is let go, never under it: a record
        // takes the GIL (the bridge reads Python's levels), and a thread holding the GIL may be
        // waiting for `control` in `health()` or a lookup.
        let ttl = match &result {
            Ok(fetched) if !(fetched.keys.is_empty() && previous.is_some()) => {
                let ttl = fetched
                    .max_age
                    .map(|d| d.clamp(MIN_TTL, MAX_TTL))
                    .unwrap_or(self.policy.default_ttl);
                if let Some(prev) = &previous {
                    for kid in prev.keys.keys.keys() {
                        if !fetched.keys.keys.contains_key(kid) {
                            log::info!("JWKS: key {kid:?} left the set");
                        }
                    }
                }
                log::debug!(
                    "JWKS: {} usable keys, fresh for {ttl:?}",
                    fetched.keys.len()
                );
                Some(ttl)
            }
            _ => None,
        };
        let mut control = self.control.lock();
        if reason == Reason::UnknownKid {
            control.last_unknown_refetch = Some(now);
        }
        let outcome = match (result, ttl) {
            (Ok(fetched), Some(ttl)) => {
                let empty = fetched.keys.is_empty();
                self.snapshot.store(Some(Arc::new(Snapshot {
                    keys: Arc::new(fetched.keys),
                    fetched_at: now,
                    ttl,
                })));
                control.retry_after = None;
                control.failures = 0;
                control.last_success = Some(crate::clock::unix_seconds_f64());
                control.last_error = empty.then(|| "the JWKS holds no usable key".to_string());
                if empty {
                    Err("the JWKS holds no usable key".to_string())
                } else {
                    Ok(())
                }
            }
            (Ok(_), None) => Err("the JWKS holds no usable key".to_string()),
            (Err(e), _) => Err(e),
        };
        turn.completed();
        match outcome {
            Ok(()) => Ok(()),
            Err(message) => {
                self.stats.jwks_errors.bump();
                control.failures = control.failures.saturating_add(1);
                let backoff = failed_fetch_backoff(control.failures).min(self.policy.cooldown);
                control.retry_after = Some(now + backoff);
                control.last_error = Some(message.clone());
                drop(control);
                let usable = previous.is_some_and(|p| {
                    !p.keys.is_empty()
                        && now.saturating_duration_since(p.fetched_at)
                            <= p.ttl + self.policy.max_stale
                });
                if usable {
                    log::warn!("JWKS fetch failed, serving the last good keys: {message}");
                }
                if usable && reason != Reason::Explicit {
                    Ok(())
                } else {
                    Err(Error::KeySetUnavailable(message))
                }
            }
        }
    }

    fn refresh_ahead(self: &Arc<Self>, now: Instant) {
        if self.control.lock().retry_after.is_some_and(|t| now < t) {
            return;
        }
        single_flight::refresh_ahead(self, || self.stats.refreshes_ahead.bump());
    }
}

impl RefreshAhead for JwksCache {
    fn flight(&self) -> &SingleFlight {
        &self.flight
    }

    async fn refresh_ahead_locked(&self, turn: &Turn<'_>) {
        if let Err(e) = self.fetch_locked(turn, Reason::Scheduled).await {
            log::warn!("background JWKS refresh failed: {e}");
        }
    }
}

fn unknown_kid(kid: Option<&str>) -> Error {
    match kid {
        Some(_) => Error::invalid(Code::UnknownKid, "the token's kid is not in the key set"),
        None => Error::invalid(
            Code::UnknownKid,
            "the token has no kid and the key set has several keys",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_failed_fetch_backoff_starts_small_and_stays_under_a_second() {
        let steps: Vec<u128> = (1..=7)
            .map(|n| failed_fetch_backoff(n).as_millis())
            .collect();
        assert_eq!(steps, [100, 200, 400, 750, 750, 750, 750]);
        assert_eq!(failed_fetch_backoff(u32::MAX), FAILED_FETCH_BACKOFF_MAX);
    }
}
