//! Revocations: the sessions (`sid`), subjects (`sub`), clients (`azp`) and token ids (`jti`)
//! a verifier refuses with code `revoked`, and the check of them on the hot path.
//!
//! The rules live in an `ArcSwap` snapshot replaced whole on every change (changes are rare,
//! checks are not), and a generation number bumped after each swap. A verified-token cache entry
//! remembers the generation it was last checked against, so a cache hit with no revocation since
//! costs one atomic load; only after a change does it look its `sid`, `sub`, `azp` and `jti` up.
//!
//! A rule on `sid`, `sub` or `azp` refuses tokens issued at or before its time (`iat <= t`), or
//! before `not_before` (`iat < T`); a matching token without `iat` is refused. A rule expires
//! when no token it could match can still be valid: its time plus the horizon (the verifier's
//! `max_lifetime` when set, else `revocation_horizon`) plus the leeway. With a Redis URL the
//! rules are shared (`redis.rs`).

mod redis;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Code, Error, Result};

pub(crate) use self::redis::SharedHealth;

/// What a rule matches on: the claim of that name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Kind {
    Sid,
    Sub,
    Azp,
    Jti,
}

impl Kind {
    const ALL: [Kind; 4] = [Kind::Sid, Kind::Sub, Kind::Azp, Kind::Jti];

    fn claim(self) -> &'static str {
        match self {
            Kind::Sid => "sid",
            Kind::Sub => "sub",
            Kind::Azp => "azp",
            Kind::Jti => "jti",
        }
    }

    fn index(self) -> usize {
        self as usize
    }
}

/// One revocation, as kept in memory, in Redis's stored set and on its channel.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Entry {
    pub kind: Kind,
    pub value: String,
    /// Tokens issued before this time (or at it, when `inclusive`) are refused; a `jti` rule
    /// refuses its token whatever its `iat`.
    pub cutoff: f64,
    pub inclusive: bool,
    /// Unix seconds after which no token the rule could match is still valid.
    pub expires: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
struct Rule {
    cutoff: f64,
    inclusive: bool,
    expires: u64,
}

impl Rule {
    fn of(entry: &Entry) -> Self {
        Rule {
            cutoff: entry.cutoff,
            inclusive: entry.inclusive,
            expires: entry.expires,
        }
    }

    /// The rule that refuses what either refuses, until the later expiry.
    fn merged(self, other: Rule) -> Rule {
        let wider = other.cutoff > self.cutoff
            || (other.cutoff == self.cutoff && other.inclusive && !self.inclusive);
        let base = if wider { other } else { self };
        Rule {
            expires: self.expires.max(other.expires),
            ..base
        }
    }

    fn refuses(&self, kind: Kind, iat: Option<f64>) -> bool {
        if kind == Kind::Jti {
            return true;
        }
        match iat {
            None => true,
            Some(iat) => iat < self.cutoff || (self.inclusive && iat == self.cutoff),
        }
    }
}

/// The rules at one moment, one map per kind.
#[derive(Default, Clone)]
struct Snapshot {
    rules: [HashMap<Box<str>, Rule>; 4],
}

impl Snapshot {
    fn len(&self) -> usize {
        self.rules.iter().map(HashMap::len).sum()
    }

    fn find(&self, claims: &Map<String, Value>) -> Option<Kind> {
        let iat = claims.get("iat").and_then(Value::as_f64);
        Kind::ALL.into_iter().find(|kind| {
            let map = &self.rules[kind.index()];
            !map.is_empty()
                && claims
                    .get(kind.claim())
                    .and_then(Value::as_str)
                    .and_then(|v| map.get(v))
                    .is_some_and(|rule| rule.refuses(*kind, iat))
        })
    }

    /// Adds `entries`; true when any rule changed.
    fn apply(&mut self, entries: &[Entry], now: u64) -> bool {
        let mut changed = false;
        for entry in entries.iter().filter(|e| e.expires > now) {
            let map = &mut self.rules[entry.kind.index()];
            let new = Rule::of(entry);
            let rule = match map.get(entry.value.as_str()) {
                Some(old) => old.merged(new),
                None => new,
            };
            if map.get(entry.value.as_str()) != Some(&rule) {
                map.insert(entry.value.as_str().into(), rule);
                changed = true;
            }
        }
        changed
    }

    /// Drops expired rules; true when any was dropped.
    fn prune(&mut self, now: u64) -> bool {
        let before = self.len();
        for map in &mut self.rules {
            map.retain(|_, rule| rule.expires > now);
        }
        self.len() != before
    }
}

/// What `Verifier::revoke` is given: at least one of `sid`, `sub`, `azp`, `jti`.
#[derive(Debug, Clone, Default)]
pub struct Revocation {
    /// A session id (`sid`).
    pub sid: Option<String>,
    /// A subject (`sub`).
    pub sub: Option<String>,
    /// A client (`azp`).
    pub azp: Option<String>,
    /// A token id (`jti`).
    pub jti: Option<String>,
    /// Unix seconds: with `sub` or `azp` only, refuse what was issued before this time (else:
    /// what was issued up to now).
    pub not_before: Option<f64>,
}

/// The revocations of one verifier: the rules, their generation, and the sharing (if any).
pub(crate) struct Revocations {
    generation: AtomicU64,
    snapshot: ArcSwap<Snapshot>,
    /// Serialises writers: each copies the snapshot, changes it and swaps it in.
    write: Mutex<()>,
    /// Seconds a rule outlives its time (lifetime horizon plus leeway).
    horizon: u64,
    shared: Option<redis::Shared>,
    /// This, for the Redis task (which must not keep the verifier alive).
    me: Weak<Revocations>,
    /// Logout tokens' `jti`s seen here, with their expiry (replay refusal when not shared).
    replay: Mutex<HashMap<Box<str>, u64>>,
}

/// Logout-token ids remembered in-process at most; past it (after pruning) a new one is let
/// through unremembered: a replayed logout token only repeats a revocation.
const MAX_REPLAY: usize = 100_000;

impl Revocations {
    /// In-process rules, or shared through Redis at `url`; `namespace` keeps issuers apart in
    /// one Redis.
    pub(crate) fn new(horizon: u64, url: Option<&str>, namespace: &str) -> Result<Arc<Self>> {
        let shared = url.map(|u| redis::Shared::new(u, namespace)).transpose()?;
        let revocations = Arc::new_cyclic(|me| Revocations {
            generation: AtomicU64::new(0),
            snapshot: ArcSwap::from_pointee(Snapshot::default()),
            write: Mutex::new(()),
            horizon,
            shared,
            me: me.clone(),
            replay: Mutex::new(HashMap::new()),
        });
        if let Some(shared) = &revocations.shared {
            shared.start(&revocations);
        }
        Ok(revocations)
    }

    /// The generation now: a cache entry checked at this generation needs no look-up until it
    /// changes.
    pub(crate) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// The hot-path check. `seen` is the generation the caller last checked these claims
    /// against (a cache entry's); it is moved forward when they pass.
    pub(crate) fn check(
        &self,
        claims: &Map<String, Value>,
        seen: &AtomicU64,
        now: u64,
    ) -> Result<()> {
        if let Some(shared) = &self.shared {
            shared.ensure_running_at(&self.me, now);
        }
        let generation = self.generation();
        if seen.load(Ordering::Relaxed) == generation {
            return Ok(());
        }
        self.find(claims)?;
        seen.store(generation, Ordering::Relaxed);
        Ok(())
    }

    /// The check of a token not in the cache.
    pub(crate) fn check_now(&self, claims: &Map<String, Value>, now: u64) -> Result<()> {
        if let Some(shared) = &self.shared {
            shared.ensure_running_at(&self.me, now);
        }
        self.find(claims)
    }

    fn find(&self, claims: &Map<String, Value>) -> Result<()> {
        match self.snapshot.load().find(claims) {
            None => Ok(()),
            Some(kind) => Err(Error::invalid(
                Code::Revoked,
                format!("the token's {} is revoked", kind.claim()),
            )),
        }
    }

    /// The entries a `revoke` call makes, at `now`.
    pub(crate) fn entries(&self, revocation: Revocation, now: u64) -> Result<Vec<Entry>> {
        let Revocation {
            sid,
            sub,
            azp,
            jti,
            not_before,
        } = revocation;
        if let Some(t) = not_before {
            if !t.is_finite() || t < 0.0 {
                return Err(Error::config(
                    "not_before",
                    "must be a time in Unix seconds",
                ));
            }
            if sid.is_some() || jti.is_some() || (sub.is_none() && azp.is_none()) {
                return Err(Error::config(
                    "not_before",
                    "applies to sub or azp only; revoke a sid or jti without it",
                ));
            }
        }
        let (cutoff, inclusive) = match not_before {
            Some(t) => (t, false),
            None => (now as f64, true),
        };
        let expires = (cutoff.max(now as f64).ceil() as u64).saturating_add(self.horizon);
        let mut entries = Vec::new();
        for (kind, value) in [
            (Kind::Sid, sid),
            (Kind::Sub, sub),
            (Kind::Azp, azp),
            (Kind::Jti, jti),
        ] {
            let Some(value) = value else { continue };
            if value.is_empty() {
                return Err(Error::config(kind.claim(), "must not be empty"));
            }
            entries.push(Entry {
                kind,
                value,
                cutoff,
                inclusive,
                expires,
            });
        }
        if entries.is_empty() {
            return Err(Error::config(
                "revoke",
                "name at least one of sid, sub, azp, jti",
            ));
        }
        Ok(entries)
    }

    /// Applies a `revoke` here at once, then shares it (pushed later if Redis is away).
    pub(crate) fn revoke(&self, revocation: Revocation, now: u64) -> Result<()> {
        let entries = self.entries(revocation, now)?;
        self.apply(&entries, now);
        if let Some(shared) = &self.shared {
            shared.publish(&self.me, entries);
        }
        Ok(())
    }

    /// Adds entries (from `revoke` or from Redis); expired ones are dropped on the way.
    pub(crate) fn apply(&self, entries: &[Entry], now: u64) {
        let _writer = self.write.lock();
        let mut next = Snapshot::clone(&self.snapshot.load());
        let pruned = next.prune(now);
        if next.apply(entries, now) || pruned {
            self.snapshot.store(Arc::new(next));
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Rules held now (expired ones until the next change drops them).
    pub(crate) fn len(&self) -> usize {
        self.snapshot.load().len()
    }

    /// The state of the sharing; None when in-process.
    pub(crate) fn shared_health(&self) -> Option<SharedHealth> {
        self.shared.as_ref().map(|s| s.health())
    }

    /// Records a logout token's `jti` until `expires`: true the first time it is seen (in
    /// this process, and in Redis when shared and reachable).
    pub(crate) async fn first_use(&self, jti: &str, expires: u64, now: u64) -> bool {
        if let Some(shared) = &self.shared {
            if let Some(first) = shared.first_use(jti, expires, now).await {
                return first;
            }
        }
        self.seen_local(jti, expires, now)
    }

    fn seen_local(&self, jti: &str, expires: u64, now: u64) -> bool {
        let mut replay = self.replay.lock();
        if replay.len() >= MAX_REPLAY {
            replay.retain(|_, until| *until > now);
        }
        if replay.get(jti).is_some_and(|until| *until > now) {
            return false;
        }
        if replay.len() < MAX_REPLAY {
            replay.insert(jti.into(), expires);
        }
        true
    }
}

#[cfg(test)]
mod tests;
