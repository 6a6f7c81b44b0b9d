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
//! The key is a SHA-256 digest over all four parts, so the map holds nothing of the subject
//! token; the token itself is kept (wiped on drop) only for the request that exchanges it.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_lc_rs::digest::{Context, SHA256};
use quick_cache::sync::Cache;
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

type Key = [u8; 32];

/// One exchange to make: what the subject token is traded for.
pub struct Exchange {
    key: Key,
    subject_token: Zeroizing<String>,
    audiences: Vec<String>,
    scope: Option<String>,
    requested_token_type: Option<String>,
}

impl std::fmt::Debug for Exchange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Exchange(audiences={:?}, scope={:?}, requested_token_type={:?})",
            self.audiences, self.scope, self.requested_token_type
        )
    }
}

impl Exchange {
    /// An exchange of `subject_token` for `audiences` (each sent as its own `audience`; none
    /// leaves the choice to the IdP), `scope` and `requested_token_type` (the IdP's default,
    /// an access token, when None). Duplicate audiences are dropped and the order does not
    /// matter. Fails with `Error::Config` naming the empty argument.
    pub fn new(
        subject_token: &str,
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
        let mut digest = Context::new(&SHA256);
        // Length-prefixed parts: no two different requests hash the same bytes.
        let mut part = |bytes: Option<&[u8]>| match bytes {
            Some(bytes) => {
                digest.update(&(bytes.len() as u64 + 1).to_le_bytes());
                digest.update(bytes);
            }
            None => digest.update(&0u64.to_le_bytes()),
        };
        part(Some(subject_token.as_bytes()));
        part(Some(&(audiences.len() as u64).to_le_bytes()));
        for audience in &audiences {
            part(Some(audience.as_bytes()));
        }
        part(scope.as_deref().map(str::as_bytes));
        part(requested_token_type.as_deref().map(str::as_bytes));
        let mut key = [0u8; 32];
        key.copy_from_slice(digest.finish().as_ref());
        Ok(Exchange {
            key,
            subject_token: Zeroizing::new(subject_token.to_owned()),
            audiences,
            scope,
            requested_token_type,
        })
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
    pub(super) fn lookup(&self, exchange: &Exchange) -> Option<Result<Arc<Token>>> {
        let answer = self
            .slots
            .get()
            .get(&exchange.key)?
            .answer(crate::clock::instant(), self.margin)?;
        self.stats.exchange_hits.bump();
        Some(answer)
    }

    /// The cached answer, else the outcome of the one request made for this key.
    pub(super) async fn get(&self, endpoint: &Endpoint, exchange: &Exchange) -> Result<Arc<Token>> {
        if let Some(answer) = self.lookup(exchange) {
            return answer;
        }
        let now = crate::clock::instant();
        let slots = self.slots.get();
        // A spent slot would be handed back as a value: drop it, unless it was just replaced.
        slots.remove_if(&exchange.key, |slot| {
            slot.answer(now, self.margin).is_none()
        });
        let guard = match slots.get_value_or_guard_async(&exchange.key).await {
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

    async fn request(&self, endpoint: &Endpoint, exchange: &Exchange) -> Slot {
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
        .key
    }

    #[test]
    fn the_key_covers_every_part_and_ignores_audience_order() {
        let base = key("t", &["a", "b"], None);
        assert_eq!(base, key("t", &["b", "a", "a"], None));
        assert_ne!(base, key("u", &["a", "b"], None));
        assert_ne!(base, key("t", &["a"], None));
        assert_ne!(base, key("t", &["a", "b"], Some("x")));
        // No shifting of bytes between parts gives the same key.
        assert_ne!(key("t", &["ab"], None), key("t", &["a", "b"], None));
        assert_ne!(key("ta", &[], None), key("t", &["a"], None));
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
