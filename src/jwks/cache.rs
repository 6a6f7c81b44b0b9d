//! The JWKS cache and its fetch policy (docs/architecture.md, "Key-set policy"):
//! - keys are served from an immutable snapshot, swapped whole after each fetch;
//! - past 80 % of the TTL one background refresh starts; callers never wait for it;
//! - an unknown kid triggers one shared refetch, then at most one per cooldown;
//! - a failed fetch keeps the last good keys, served up to `max_stale` past expiry.

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
/// so an IdP outage is not answered with a request per incoming call.
const FAILED_FETCH_BACKOFF: Duration = Duration::from_secs(5);

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
            cooldown: Duration::from_secs(30),
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
}

pub(crate) struct JwksCache {
    http: Http,
    source: Source,
    policy: JwksPolicy,
    snapshot: ArcSwapOption<Snapshot>,
    control: Mutex<Control>,
    /// A caller that queued behind a fetch sees it completed and skips its own.
    flight: SingleFlight,
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
            stats,
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

    pub(crate) fn lookup(self: &Arc<Self>, kid: Option<&str>) -> Lookup {
        let now = crate::clock::instant();
        // Read before the snapshot: a fetch stores its snapshot before it bumps the generation,
        // so a ticket never names a generation older than the keys this lookup saw.
        let seen = self.flight.observe();
        let ticket = |reason| Lookup::Fetch(Ticket { seen, reason });
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
        let control = self.control.lock();
        let cooling = control
            .last_unknown_refetch
            .is_some_and(|t| now.saturating_duration_since(t) < self.policy.cooldown);
        drop(control);
        if cooling {
            // The refetch that started the cooldown may have stored its keys after our load.
            if let Some(key) = self
                .snapshot
                .load()
                .as_ref()
                .and_then(|s| s.keys.get(kid).cloned())
            {
                return Lookup::Found(key);
            }
            self.stats.unknown_kid_rejected.bump();
            Lookup::Rejected(unknown_kid(kid))
        } else {
            ticket(Reason::UnknownKid)
        }
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
    pub(crate) async fn fetch(&self, ticket: Ticket) -> Result<()> {
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
        let mut control = self.control.lock();
        if reason == Reason::UnknownKid {
            control.last_unknown_refetch = Some(now);
        }
        let previous = self.snapshot.load_full();
        let outcome = match result {
            Ok(fetched) if fetched.keys.is_empty() && previous.is_some() => {
                Err("the JWKS holds no usable key".to_string())
            }
            Ok(fetched) => {
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
                let empty = fetched.keys.is_empty();
                self.snapshot.store(Some(Arc::new(Snapshot {
                    keys: Arc::new(fetched.keys),
                    fetched_at: now,
                    ttl,
                })));
                control.retry_after = None;
                if empty {
                    Err("the JWKS holds no usable key".to_string())
                } else {
                    Ok(())
                }
            }
            Err(e) => Err(e),
        };
        turn.completed();
        match outcome {
            Ok(()) => Ok(()),
            Err(message) => {
                self.stats.jwks_errors.bump();
                control.retry_after = Some(now + FAILED_FETCH_BACKOFF.min(self.policy.cooldown));
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
