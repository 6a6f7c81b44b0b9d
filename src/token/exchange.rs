//! OAuth 2.0 Token Exchange (RFC 8693) as Keycloak's standard token exchange serves it: the
//! client trades a subject token (a caller's access token) for one minted for a downstream
//! audience, authenticating as it does for its own tokens (`endpoint`, `auth`).
//!
//! Issued tokens are cached per (subject token, audiences, scope, requested token type) in a
//! bounded `quick_cache` map, until their expiry less the refresh margin. The map's placeholder
//! guard is the single flight: concurrent callers with one key, on any thread or task, wait for
//! the one request. A failed exchange is remembered for [`FAILURE_HOLD`], so a burst of callers
//! (and the waiters of the failed request) share its error instead of asking one after another.
//!
//! The map is per process (`ForkLocal`): a child forked while a parent thread held a key's
//! placeholder would otherwise wait on it forever.
//!
//! The key is all four parts, the subject token included (held wiped-on-drop while its entry
//! lives), hashed by the map's own keyed hasher and compared in constant time. A SHA-256 digest
//! as the key would keep the subject token out of the map, but hashing a 1 KB token costs about
//! 0.9 µs on every call, which alone nearly spends issue 16's budget for a hit (a `get_token` hit
//! plus 1 µs). A lookup borrows the caller's subject token: nothing is copied on a hit.

use std::borrow::Cow;
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::constant_time::verify_slices_are_equal;
use quick_cache::sync::Cache;
use quick_cache::Equivalent;
use url::form_urlencoded::Serializer;
use zeroize::Zeroizing;

use crate::error::{Error, Result};
use crate::fork::ForkLocal;

use super::cache::Token;
use super::endpoint::{Endpoint, Grant};
use super::retry;
use super::stats::TokenStats;

pub(super) const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:token-exchange";
/// The only subject token type Keycloak's standard token exchange takes.
pub(super) const ACCESS_TOKEN_TYPE: &str = "urn:ietf:params:oauth:token-type:access_token";
/// The default of `exchange_cache_size`: exchanged tokens kept per client (and process); the
/// least recently used go first.
pub const EXCHANGE_CACHE_SIZE: usize = 1024;
/// How long a failed exchange answers for its key without a new request.
pub(super) const FAILURE_HOLD: Duration = Duration::from_secs(1);

/// One exchange to make: what the subject token is traded for. It borrows the subject token
/// (`into_owned` for a request that outlives the caller's string).
pub struct Exchange<'a> {
    subject_token: Cow<'a, str>,
    audiences: Vec<String>,
    scope: Option<String>,
    requested_token_type: Option<String>,
}

impl Drop for Exchange<'_> {
    fn drop(&mut self) {
        if let Cow::Owned(token) = &mut self.subject_token {
            zeroize::Zeroize::zeroize(token);
        }
    }
}

impl std::fmt::Debug for Exchange<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Exchange(audiences={:?}, scope={:?}, requested_token_type={:?})",
            self.audiences, self.scope, self.requested_token_type
        )
    }
}

impl<'a> Exchange<'a> {
    /// An exchange of `subject_token` for `audiences` (each sent as its own `audience`; none
    /// leaves the choice to the IdP), `scope` and `requested_token_type` (the IdP's default,
    /// an access token, when None). Duplicate audiences are dropped and the order does not
    /// matter. Fails with `Error::Config` naming the empty argument.
    pub fn new(
        subject_token: &'a str,
        mut audiences: Vec<String>,
        scope: Option<String>,
        requested_token_type: Option<String>,
    ) -> Result<Self> {
        if subject_token.is_empty() {
            return Err(Error::config("subject_token", "must not be empty"));
        }
        if audiences.iter().any(String::is_empty) {
            return Err(Error::config("audience", "must not be empty"));
        }
        if scope.as_deref().is_some_and(|s| s.trim().is_empty()) {
            return Err(Error::config("scope", "must not be empty"));
        }
        if requested_token_type.as_deref() == Some("") {
            return Err(Error::config("requested_token_type", "must not be empty"));
        }
        audiences.sort_unstable();
        audiences.dedup();
        Ok(Exchange {
            subject_token: Cow::Borrowed(subject_token),
            audiences,
            scope,
            requested_token_type,
        })
    }

    /// The same exchange, owning a copy of the subject token (wiped on drop).
    pub fn into_owned(mut self) -> Exchange<'static> {
        let token = std::mem::take(&mut self.subject_token).into_owned();
        Exchange {
            subject_token: Cow::Owned(token),
            audiences: std::mem::take(&mut self.audiences),
            scope: self.scope.take(),
            requested_token_type: self.requested_token_type.take(),
        }
    }

    fn key(&self) -> KeyRef<'_> {
        KeyRef {
            subject_token: &self.subject_token,
            audiences: &self.audiences,
            scope: self.scope.as_deref(),
            requested_token_type: self.requested_token_type.as_deref(),
        }
    }

    pub(super) fn subject_token(&self) -> &str {
        &self.subject_token
    }

    /// The `issued_token_type` the answer must carry: the requested one, else an access token.
    pub(super) fn expected_token_type(&self) -> &str {
        self.requested_token_type
            .as_deref()
            .unwrap_or(ACCESS_TOKEN_TYPE)
    }

    /// The grant's form parameters (the client's authentication is added by the endpoint).
    pub(super) fn append_to(&self, form: &mut Serializer<'_, &mut String>) {
        form.append_pair("grant_type", GRANT_TYPE);
        form.append_pair("subject_token", &self.subject_token);
        form.append_pair("subject_token_type", ACCESS_TOKEN_TYPE);
        for audience in &self.audiences {
            form.append_pair("audience", audience);
        }
        if let Some(scope) = &self.scope {
            form.append_pair("scope", scope);
        }
        if let Some(kind) = &self.requested_token_type {
            form.append_pair("requested_token_type", kind);
        }
    }
}

/// A key of the map: an exchange's parts, owned (made on a miss only).
#[derive(Clone)]
struct Key {
    subject_token: Zeroizing<String>,
    audiences: Vec<String>,
    scope: Option<String>,
    requested_token_type: Option<String>,
}

/// A key as a lookup sees it, borrowed from the `Exchange`.
#[derive(Clone, Copy)]
struct KeyRef<'k> {
    subject_token: &'k str,
    audiences: &'k [String],
    scope: Option<&'k str>,
    requested_token_type: Option<&'k str>,
}

impl KeyRef<'_> {
    fn owned(self) -> Key {
        Key {
            subject_token: Zeroizing::new(self.subject_token.to_owned()),
            audiences: self.audiences.to_vec(),
            scope: self.scope.map(str::to_owned),
            requested_token_type: self.requested_token_type.map(str::to_owned),
        }
    }

    fn matches(self, other: KeyRef<'_>) -> bool {
        // Constant time over the subject token: a lookup must not tell how much of another
        // caller's token it got right.
        verify_slices_are_equal(
            self.subject_token.as_bytes(),
            other.subject_token.as_bytes(),
        )
        .is_ok()
            && self.audiences == other.audiences
            && self.scope == other.scope
            && self.requested_token_type == other.requested_token_type
    }
}

impl Hash for KeyRef<'_> {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // `str`'s Hash ends each string with a marker: no two part lists hash the same bytes.
        self.subject_token.hash(state);
        self.audiences.hash(state);
        self.scope.hash(state);
        self.requested_token_type.hash(state);
    }
}

impl Key {
    fn as_ref(&self) -> KeyRef<'_> {
        KeyRef {
            subject_token: &self.subject_token,
            audiences: &self.audiences,
            scope: self.scope.as_deref(),
            requested_token_type: self.requested_token_type.as_deref(),
        }
    }
}

impl Hash for Key {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.as_ref().hash(state);
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.as_ref().matches(other.as_ref())
    }
}

impl Eq for Key {}

impl Equivalent<Key> for KeyRef<'_> {
    fn equivalent(&self, key: &Key) -> bool {
        self.matches(key.as_ref())
    }
}

#[derive(Clone)]
enum Slot {
    Issued(Arc<Token>),
    Failed { error: Error, until: Instant },
}

impl Slot {
    /// The answer this slot still gives at `now`, if any.
    fn answer(&self, now: Instant, margin: Duration) -> Option<Result<Arc<Token>>> {
        match self {
            Slot::Issued(token) if token.fresh(now, margin) => Some(Ok(token.clone())),
            Slot::Failed { error, until } if now < *until => Some(Err(error.clone())),
            _ => None,
        }
    }
}

type Slots = Arc<Cache<Key, Slot>>;

type MakeSlots = Box<dyn Fn() -> Slots + Send + Sync>;

pub(super) struct ExchangeCache {
    slots: ForkLocal<Slots, MakeSlots>,
    margin: Duration,
    stats: Arc<TokenStats>,
}

impl ExchangeCache {
    pub(super) fn new(margin: Duration, size: usize, stats: Arc<TokenStats>) -> Self {
        ExchangeCache {
            slots: ForkLocal::new(Box::new(move || Arc::new(Cache::new(size)))),
            margin,
            stats,
        }
    }

    /// The cached answer for `exchange`, without waiting: a token, or a failure still held.
    pub(super) fn lookup(&self, exchange: &Exchange<'_>) -> Option<Result<Arc<Token>>> {
        let answer = self
            .slots
            .get()
            .get(&exchange.key())?
            .answer(crate::clock::instant(), self.margin)?;
        self.stats.exchange_hits.bump();
        Some(answer)
    }

    /// The cached answer, else the outcome of the one request made for this key.
    pub(super) async fn get(
        &self,
        endpoint: &Endpoint,
        exchange: &Exchange<'_>,
    ) -> Result<Arc<Token>> {
        if let Some(answer) = self.lookup(exchange) {
            return answer;
        }
        let now = crate::clock::instant();
        let slots = self.slots.get();
        // A spent slot would be handed back as a value: drop it, unless it was just replaced.
        slots.remove_if(&exchange.key(), |slot| {
            slot.answer(now, self.margin).is_none()
        });
        let key = exchange.key().owned();
        let guard = match slots.get_value_or_guard_async(&key).await {
            Ok(slot) => {
                return match slot {
                    Slot::Issued(token) => Ok(token),
                    Slot::Failed { error, .. } => Err(error),
                }
            }
            Err(guard) => guard,
        };
        let slot = self.request(endpoint, exchange).await;
        let _ = guard.insert(slot.clone());
        match slot {
            Slot::Issued(token) => Ok(token),
            Slot::Failed { error, .. } => Err(error),
        }
    }

    async fn request(&self, endpoint: &Endpoint, exchange: &Exchange<'_>) -> Slot {
        let client_id = endpoint.auth().client_id();
        // Retries only what may pass on a second try: a refusal (an OAuth error) is final.
        match endpoint
            .request(retry::MAX_ATTEMPTS, &Grant::Exchange(exchange))
            .await
        {
            Ok(issued) => {
                let token = Token::from_issued(issued);
                log::info!(
                    "token exchange by client {client_id} for audience {:?} done, valid for {:.0}s",
                    exchange.audiences,
                    token.remaining(crate::clock::instant()).as_secs_f64()
                );
                Slot::Issued(Arc::new(token))
            }
            Err(failed) => {
                log::warn!(
                    "token exchange by client {client_id} for audience {:?} failed: {}",
                    exchange.audiences,
                    failed.failure.description
                );
                Slot::Failed {
                    error: failed.into_error(),
                    until: crate::clock::instant() + FAILURE_HOLD,
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(subject: &str, audiences: &[&str], scope: Option<&str>) -> Key {
        Exchange::new(
            subject,
            audiences.iter().map(|a| a.to_string()).collect(),
            scope.map(str::to_string),
            None,
        )
        .unwrap()
        .key()
        .owned()
    }

    fn hashed(key: &Key) -> u64 {
        let mut state = std::hash::DefaultHasher::new();
        key.hash(&mut state);
        state.finish()
    }

    #[test]
    fn the_key_covers_every_part_and_ignores_audience_order() {
        let base = key("t", &["a", "b"], None);
        let same = key("t", &["b", "a", "a"], None);
        assert!(base == same && hashed(&base) == hashed(&same));
        assert!(base != key("u", &["a", "b"], None));
        assert!(base != key("t", &["a"], None));
        assert!(base != key("t", &["a", "b"], Some("x")));
        // No shifting of bytes between parts gives the same key.
        for (one, other) in [
            (key("t", &["ab"], None), key("t", &["a", "b"], None)),
            (key("ta", &[], None), key("t", &["a"], None)),
        ] {
            assert!(one != other && hashed(&one) != hashed(&other));
        }
        // A lookup's borrowed key finds the owned one.
        let exchange = Exchange::new("t", vec!["b".into(), "a".into()], None, None).unwrap();
        assert!(exchange.key().equivalent(&base));
        let owned = exchange.into_owned();
        assert!(owned.key().equivalent(&base));
    }

    #[test]
    fn bad_arguments_name_themselves_and_debug_hides_the_subject() {
        let name = |e: Error| match e {
            Error::Config { setting, .. } => setting,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            name(Exchange::new("", vec![], None, None).unwrap_err()),
            "subject_token"
        );
        assert_eq!(
            name(Exchange::new("t", vec![String::new()], None, None).unwrap_err()),
            "audience"
        );
        let shown = format!(
            "{:?}",
            Exchange::new("secret-subject", vec!["a".into()], None, None).unwrap()
        );
        assert!(!shown.contains("secret-subject"), "{shown}");
    }
}
