//! The client-credentials token client: one cached token per client, refreshed ahead of expiry,
//! shared by any number of threads and tasks, resilient to IdP outages.
//!
//! - `config`: settings and the environment;
//! - `auth`: client authentication (secret post/basic, private_key_jwt, client_secret_jwt);
//! - `endpoint`: one token request, its classification, and retries within one call;
//! - `retry`: backoff, jitter, Retry-After;
//! - `cache`: the cached token, refresh-ahead, single-flight, backoff between calls;
//! - `exchange`: token exchange (RFC 8693), its bounded per-request cache and single flight;
//! - `shared`: the optional shared cache on Redis: one token for every process.

pub(crate) mod auth;
mod cache;
mod config;
pub(crate) mod endpoint;
mod exchange;
mod retry;
mod shared;
mod stats;

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::http::Http;

pub use auth::AuthMethod;
pub use cache::{Miss, Token, TokenHealth};
pub use config::TokenClientConfig;
pub use exchange::{Exchange, EXCHANGE_CACHE_SIZE};
pub use shared::SharedCacheHealth;
pub use stats::TokenStats;

use cache::{Mode, Source, TokenCache};
use endpoint::{Endpoint, Failed, Grant};
use exchange::ExchangeCache;
use shared::SharedCache;

struct Requester {
    endpoint: Endpoint,
    /// With a shared cache, a fetch first looks there (and shares what it requests).
    shared: Option<SharedCache>,
    margin: Duration,
}

impl Source for Requester {
    async fn fetch(&self, mode: Mode) -> Result<Token, Failed> {
        match &self.shared {
            Some(shared) => shared.fetch(self.margin, || self.request(mode)).await,
            None => self.request(mode).await,
        }
    }

    fn invalidated(&self, token: &Token) {
        if let Some(shared) = &self.shared {
            shared.reject(token);
        }
    }
}

impl Requester {
    async fn request(&self, mode: Mode) -> Result<Token, Failed> {
        let attempts = match mode {
            Mode::Once => 1,
            Mode::Retry => retry::MAX_ATTEMPTS,
        };
        let client_id = self.endpoint.auth().client_id();
        match self
            .endpoint
            .request(attempts, &Grant::ClientCredentials)
            .await
        {
            Ok(issued) => {
                let token = Token::from_issued(issued);
                log::info!(
                    "token for client {client_id} obtained, valid for {:.0}s",
                    token.remaining(crate::clock::instant()).as_secs_f64()
                );
                Ok(token)
            }
            Err(failed) => {
                log::warn!(
                    "token request for client {client_id} failed: {}",
                    failed.failure.description
                );
                Err(failed)
            }
        }
    }
}

/// Gets and keeps a client-credentials token. Cheap to clone; clones share the cache.
#[derive(Clone)]
pub struct TokenClient {
    cache: Arc<TokenCache<Requester>>,
    exchanges: Arc<ExchangeCache>,
    stats: Arc<TokenStats>,
}

impl std::fmt::Debug for TokenClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "TokenClient(client_id={:?}, auth_method={})",
            self.client_id(),
            self.auth_method()
        )
    }
}

impl TokenClient {
    /// A client for `config`; fails with `Error::Config` naming the bad setting. Makes no
    /// request: the first token is fetched on first use.
    pub fn new(config: TokenClientConfig) -> Result<Self> {
        let checked = config.validate()?;
        let stats = Arc::new(TokenStats::default());
        // The token endpoint, or the issuer whose discovery names it: known without a request.
        let endpoint_id = match (&checked.token_url, &checked.issuer) {
            (Some(url), _) => url.clone(),
            (None, issuer) => format!("issuer {}", issuer.as_deref().unwrap_or_default()),
        };
        let shared = checked.shared.map(|settings| {
            let identity = [
                Some(endpoint_id.as_str()),
                Some(checked.auth.client_id()),
                checked.scope.as_deref(),
                checked.audience.as_deref(),
            ];
            // Long enough for a holder's whole call: discovery, then its retries.
            let lock_ttl = checked.http.timeout * (retry::DEADLINE_TIMEOUTS + 1);
            SharedCache::new(settings, &identity, lock_ttl)
        });
        let endpoint = Endpoint::new(
            Http::new(checked.http)?,
            checked.token_url,
            checked.issuer,
            checked.auth,
            checked.scope,
            checked.audience,
            stats.clone(),
        );
        let exchanges = ExchangeCache::new(
            checked.refresh_margin,
            checked.exchange_cache_size,
            stats.clone(),
        );
        let cache = TokenCache::new(
            Requester {
                endpoint,
                shared,
                margin: checked.refresh_margin,
            },
            checked.refresh_margin,
            stats.clone(),
        );
        Ok(TokenClient {
            cache: Arc::new(cache),
            exchanges: Arc::new(exchanges),
            stats,
        })
    }

    fn endpoint(&self) -> &Endpoint {
        &self.cache.source().endpoint
    }

    /// The OAuth client id.
    pub fn client_id(&self) -> &str {
        self.endpoint().auth().client_id()
    }

    /// How the client authenticates.
    pub fn auth_method(&self) -> AuthMethod {
        self.endpoint().auth().method()
    }

    /// The algorithm of the client assertions (private_key_jwt, client_secret_jwt).
    pub fn assertion_alg(&self) -> Option<&'static str> {
        self.endpoint().auth().assertion_alg()
    }

    /// The key id of the private_key_jwt assertions.
    pub fn key_id(&self) -> Option<&str> {
        self.endpoint().auth().key_id()
    }

    /// The token endpoint, when known without a request (configured or already discovered).
    pub fn token_url(&self) -> Option<String> {
        self.endpoint().known_url()
    }

    /// This client's counters.
    pub fn stats(&self) -> &TokenStats {
        &self.stats
    }

    /// The state of the cached token, for readiness probes: no I/O.
    pub fn health(&self) -> TokenHealth {
        let mut health = self.cache.health();
        health.shared_cache = self.cache.source().shared.as_ref().map(SharedCache::health);
        health
    }

    /// A token usable now without any network wait, or None. A pure cache probe (it may start
    /// a background refresh), cheap enough to call holding an interpreter lock.
    pub fn cached_token(&self) -> Option<Arc<Token>> {
        self.cache.lookup().ok()
    }

    /// Like `cached_token`, but a miss comes back as a [`Miss`] for [`TokenClient::fetch`] or
    /// [`TokenClient::fetch_blocking`], which then do not look at the cache again. A binding
    /// probes with this while holding its interpreter lock and fetches after releasing it.
    pub fn lookup(&self) -> Result<Arc<Token>, Miss> {
        self.cache.lookup()
    }

    /// A valid token: the cached one, else one fetched (one request at a time per client).
    pub async fn get_token(&self) -> Result<Arc<Token>> {
        self.cache.get().await
    }

    /// Like `get_token`, blocking the calling thread only when a request is needed.
    pub fn get_token_blocking(&self) -> Result<Arc<Token>> {
        match self.cache.lookup() {
            Ok(token) => Ok(token),
            Err(miss) => self.fetch_blocking(miss),
        }
    }

    /// The rest of `get_token` after `lookup` missed.
    pub async fn fetch(&self, miss: Miss) -> Result<Arc<Token>> {
        self.cache.fetch(miss).await
    }

    /// The rest of `get_token_blocking` after `lookup` missed.
    pub fn fetch_blocking(&self, miss: Miss) -> Result<Arc<Token>> {
        crate::runtime::block_on(self.cache.fetch(miss))
    }

    /// A token exchanged for `exchange`, from the exchange cache only: None when a request is
    /// needed. Cheap enough to call holding an interpreter lock.
    pub fn exchange_cached(&self, exchange: &Exchange<'_>) -> Option<Result<Arc<Token>>> {
        self.exchanges.lookup(exchange)
    }

    /// The subject token of `exchange` traded for a new token (RFC 8693), authenticating as
    /// for `get_token`: cached until its expiry less the refresh margin, one request at a time
    /// per exchange. A refusal (an OAuth error) is final: `Error::TokenRequest` with its code.
    pub async fn exchange(&self, exchange: &Exchange<'_>) -> Result<Arc<Token>> {
        self.exchanges.get(self.endpoint(), exchange).await
    }

    /// Like `exchange`, blocking the calling thread only when a request is needed.
    pub fn exchange_blocking(&self, exchange: &Exchange<'_>) -> Result<Arc<Token>> {
        match self.exchange_cached(exchange) {
            Some(answer) => answer,
            None => crate::runtime::block_on(self.exchange(exchange)),
        }
    }

    /// Drops the cached token (with `Some(token)`: only if it is still that one).
    pub fn invalidate(&self, token: Option<&str>) -> bool {
        self.cache.invalidate(token)
    }
}

#[cfg(test)]
mod tests;
