//! The shared token cache: one client-credentials token for every process that shares a Redis
//! (`TokenClient(shared_cache="redis://...")`), so N workers of M replicas make one token
//! request per token lifetime instead of N x M.
//!
//! It plugs in at the fetch step of the in-process cache (a local miss or a refresh-ahead),
//! inside the in-process single flight: a `get_token()` hit never reaches Redis, and a process
//! makes at most one shared-cache round and one token request per fetch.
//!
//! A round: read the entry; if it holds a token that is neither due for refresh nor the one
//! this process saw rejected (`invalidate`), use it. Else take the lock (SET NX PX, a random
//! value, released by compare-and-delete only by its holder, or by expiry if the holder dies),
//! read again (a holder may have finished in between), request a token, store it (sealed, with
//! a Redis TTL at its expiry), release. A process that finds the lock taken polls for the new
//! entry until the lock's lifetime runs out, then requests for itself.
//!
//! Redis failing (down, timing out) or an entry that does not open (another key) never fails a
//! call: the process requests its own token, `health()` says so, one warning per interval is
//! logged, and the next fetch tries Redis again.

mod connection;
mod seal;

use std::future::Future;
use std::time::Duration;

use aws_lc_rs::digest::{digest, Context, SHA256};
use parking_lot::Mutex;
use redis::aio::ConnectionManager;
use redis::{AsyncCommands, Client, RedisError, RedisResult};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use super::cache::Token;
use super::endpoint::Failed;
use crate::throttle::{self, LogThrottle};

use connection::Connection;
pub(crate) use seal::SealKey;

/// The environment variable `TokenClient.from_env` reads the shared cache's URL from.
pub(crate) const URL_VAR: &str = "TOKENWARD_SHARED_CACHE";
/// The environment variable holding the key (32 bytes, base64) entries are sealed with.
pub(crate) const KEY_VAR: &str = "TOKENWARD_SHARED_CACHE_KEY";

/// How often a process waiting for another one's token looks for it.
const POLL: Duration = Duration::from_millis(20);

/// Deletes the lock only if it still holds the caller's value: a holder whose lock expired
/// must not release the next holder's.
const RELEASE: &str = r#"if redis.call("GET", KEYS[1]) == ARGV[1] then
    return redis.call("DEL", KEYS[1])
end
return 0"#;

/// Validated shared-cache settings.
pub(crate) struct SharedSettings {
    pub(crate) client: Client,
    pub(crate) key: SealKey,
}

/// The shared cache's state, for `TokenClient::health` (no I/O).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SharedCacheHealth {
    /// The last shared-cache round reached Redis (false until the first one).
    pub connected: bool,
    /// What went wrong in the last round (Redis unreachable, an entry that does not decrypt);
    /// None after a clean one.
    pub last_error: Option<String>,
}

/// An entry's plaintext.
#[derive(Serialize, Deserialize)]
struct Entry<T> {
    token: T,
    expires_at: f64,
    lifetime: f64,
    held: f64,
}

enum Outcome {
    /// A token another process stored.
    Found(Token),
    /// This process holds the lock (its value) and requests the token.
    Holding(String),
    /// The lock stayed taken and no token came: this process requests its own.
    Alone,
}

/// Something wrong with Redis's answers that is not a connection failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Oddity {
    Undecryptable,
}

pub(super) struct SharedCache {
    connection: Connection,
    key: SealKey,
    /// The entry's Redis key (a digest of what identifies the token), also its sealing's AAD.
    name: String,
    lock_name: String,
    lock_ttl: Duration,
    /// The digest of the last token this process invalidated.
    rejected: Mutex<Option<[u8; 32]>>,
    state: Mutex<SharedCacheHealth>,
    unreachable: LogThrottle,
    undecryptable: LogThrottle,
}

impl SharedCache {
    /// The cache of the token identified by `identity` (token endpoint, client id, scope,
    /// audience); `lock_ttl` bounds how long a holder may take to get a token.
    pub(super) fn new(
        settings: SharedSettings,
        identity: &[Option<&str>],
        lock_ttl: Duration,
    ) -> Self {
        let name = format!("tokenward:token:v1:{}", hex(&identity_digest(identity)));
        SharedCache {
            connection: Connection::new(settings.client),
            key: settings.key,
            lock_name: format!("{name}:lock"),
            name,
            lock_ttl,
            rejected: Mutex::new(None),
            state: Mutex::new(SharedCacheHealth {
                connected: false,
                last_error: None,
            }),
            unreachable: LogThrottle::default(),
            undecryptable: LogThrottle::default(),
        }
    }

    pub(super) fn health(&self) -> SharedCacheHealth {
        self.state.lock().clone()
    }

    /// This process saw `token` refused: a shared entry holding it is not to be used.
    pub(super) fn reject(&self, token: &Token) {
        *self.rejected.lock() = Some(token_digest(token.value()));
    }

    /// A token for a fetch of the in-process cache: another process's from Redis, else one
    /// from `request` (shared through Redis when this process holds the lock).
    pub(super) async fn fetch<F, Fut>(&self, margin: Duration, request: F) -> Result<Token, Failed>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Token, Failed>>,
    {
        let mut oddity = None;
        let mut outcome = self.round(margin, &mut oddity).await;
        if let Err((_, reused)) = &outcome {
            self.connection.reset();
            // A connection that went stale while idle (Redis restarted) fails its first
            // command: one more try, on a new connection, tells that from Redis being down.
            if *reused {
                outcome = self.round(margin, &mut oddity).await;
                if outcome.is_err() {
                    self.connection.reset();
                }
            }
        }
        let outcome = outcome.map_err(|(e, _)| e);
        self.note(outcome.as_ref().err(), oddity);
        match outcome {
            Ok(Outcome::Found(token)) => {
                log::debug!("token read from the shared cache");
                Ok(token)
            }
            Ok(Outcome::Holding(lock)) => {
                let result = request().await;
                let stored = match &result {
                    Ok(token) => self.store(token).await,
                    Err(_) => Ok(()),
                };
                let released = self.release(&lock).await;
                if let Err(e) = stored.and(released) {
                    self.connection.reset();
                    self.note(Some(&e), None);
                }
                result
            }
            Ok(Outcome::Alone) => {
                log::warn!(
                    "no token appeared in the shared cache within {:.0}s of waiting for \
                     another process's request; requesting one here",
                    self.lock_ttl.as_secs_f64()
                );
                request().await
            }
            Err(_) => request().await,
        }
    }

    /// One round; a failure comes with whether it was on a connection used before.
    async fn round(
        &self,
        margin: Duration,
        oddity: &mut Option<Oddity>,
    ) -> Result<Outcome, (RedisError, bool)> {
        let (mut conn, fresh) = self.connection.get().map_err(|e| (e, false))?;
        self.round_on(&mut conn, margin, oddity)
            .await
            .map_err(|e| (e, !fresh))
    }

    async fn round_on(
        &self,
        conn: &mut ConnectionManager,
        margin: Duration,
        oddity: &mut Option<Oddity>,
    ) -> RedisResult<Outcome> {
        if let Some(token) = self.read(conn, margin, oddity).await? {
            return Ok(Outcome::Found(token));
        }
        let value = lock_value();
        let deadline = crate::clock::instant() + self.lock_ttl;
        loop {
            let taken: Option<String> = redis::cmd("SET")
                .arg(&self.lock_name)
                .arg(&value)
                .arg("NX")
                .arg("PX")
                .arg(millis(self.lock_ttl))
                .query_async(conn)
                .await?;
            if taken.is_some() {
                // The previous holder may have stored its token after our first read.
                if let Some(token) = self.read(conn, margin, oddity).await? {
                    self.release(&value).await?;
                    return Ok(Outcome::Found(token));
                }
                return Ok(Outcome::Holding(value));
            }
            tokio::time::sleep(POLL).await;
            if let Some(token) = self.read(conn, margin, oddity).await? {
                return Ok(Outcome::Found(token));
            }
            if crate::clock::instant() >= deadline {
                return Ok(Outcome::Alone);
            }
        }
    }

    /// The stored token, if it is one to use: it opens with our key under our name, is not
    /// due for refresh, and is not the one this process rejected.
    async fn read(
        &self,
        conn: &mut ConnectionManager,
        margin: Duration,
        oddity: &mut Option<Oddity>,
    ) -> RedisResult<Option<Token>> {
        let raw: Option<Vec<u8>> = conn.get(&self.name).await?;
        let Some(raw) = raw else {
            return Ok(None);
        };
        let entry = self
            .key
            .open(&raw, self.name.as_bytes())
            .and_then(|plain| serde_json::from_slice::<Entry<String>>(&plain).ok());
        let Some(entry) = entry else {
            *oddity = Some(Oddity::Undecryptable);
            return Ok(None);
        };
        let now = crate::clock::instant();
        let times = (entry.expires_at, entry.lifetime, entry.held);
        let value = Zeroizing::new(entry.token);
        let Some(token) =
            Token::from_wall_times(value, times, now, crate::clock::unix_seconds_f64())
        else {
            return Ok(None);
        };
        let rejected = *self.rejected.lock() == Some(token_digest(token.value()));
        Ok((!rejected && !token.due(now) && token.fresh(now, margin)).then_some(token))
    }

    async fn store(&self, token: &Token) -> RedisResult<()> {
        let now = crate::clock::instant();
        let ttl = millis(token.remaining(now));
        if ttl == 0 {
            return Ok(());
        }
        let (expires_at, lifetime, held) = token.wall_times(now, crate::clock::unix_seconds_f64());
        let entry = Entry {
            token: token.value(),
            expires_at,
            lifetime,
            held,
        };
        let Ok(plain) = serde_json::to_vec(&entry).map(Zeroizing::new) else {
            return Ok(());
        };
        let Some(sealed) = self.key.seal(&plain, self.name.as_bytes()) else {
            return Ok(());
        };
        let (mut conn, _) = self.connection.get()?;
        redis::cmd("SET")
            .arg(&self.name)
            .arg(sealed)
            .arg("PX")
            .arg(ttl)
            .query_async::<()>(&mut conn)
            .await
    }

    async fn release(&self, value: &str) -> RedisResult<()> {
        let (mut conn, _) = self.connection.get()?;
        redis::cmd("EVAL")
            .arg(RELEASE)
            .arg(1)
            .arg(&self.lock_name)
            .arg(value)
            .query_async::<i64>(&mut conn)
            .await
            .map(drop)
    }

    /// Records a round's outcome for `health`, and logs (outside the state's lock: a log
    /// record may take the GIL, which a thread in `health()` may hold) what went wrong.
    fn note(&self, failure: Option<&RedisError>, oddity: Option<Oddity>) {
        let error = match (failure, oddity) {
            (Some(e), _) => Some(format!("Redis unreachable: {}", describe(e))),
            (None, Some(Oddity::Undecryptable)) => Some(format!(
                "an entry that does not decrypt with {KEY_VAR} (written with another key?)"
            )),
            (None, None) => None,
        };
        let recovered = {
            let mut state = self.state.lock();
            let was_down = !state.connected && state.last_error.is_some();
            state.connected = failure.is_none();
            state.last_error = error.clone();
            was_down && failure.is_none()
        };
        match (failure, oddity) {
            (Some(_), _) => {
                if let Some(left_out) = self.unreachable.admit() {
                    log::warn!(
                        "shared token cache: {}; each process requests its own token until it \
                         is back{}",
                        error.unwrap_or_default(),
                        throttle::suffix(left_out)
                    );
                }
            }
            (None, Some(_)) => {
                if let Some(left_out) = self.undecryptable.admit() {
                    log::warn!(
                        "shared token cache: {}; requesting a new token{}",
                        error.unwrap_or_default(),
                        throttle::suffix(left_out)
                    );
                }
            }
            (None, None) => {}
        }
        if recovered {
            log::info!("shared token cache reachable again: tokens are shared");
        }
    }
}

/// A Redis error's kind and text, which name neither the URL nor its password.
fn describe(e: &RedisError) -> String {
    if e.is_timeout() {
        "timed out".into()
    } else if e.is_connection_refusal() {
        "connection refused".into()
    } else if e.is_io_error() || e.is_connection_dropped() || e.is_unrecoverable_error() {
        format!("connection failed ({:?})", e.kind())
    } else {
        format!("{:?}", e.kind())
    }
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

fn identity_digest(parts: &[Option<&str>]) -> [u8; 32] {
    let mut context = Context::new(&SHA256);
    for part in parts {
        // Length-prefixed (0 for absent), so no two identities hash alike by shifting text.
        match part {
            Some(text) => {
                context.update(&(text.len() as u64 + 1).to_le_bytes());
                context.update(text.as_bytes());
            }
            None => context.update(&0u64.to_le_bytes()),
        }
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(context.finish().as_ref());
    out
}

fn token_digest(token: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest(&SHA256, token.as_bytes()).as_ref());
    out
}

fn lock_value() -> String {
    let mut bytes = [0u8; 16];
    // A failed RNG leaves zeros: the lock still works, only less safely shared with a holder
    // whose value matches by chance, which zeros from two failed RNGs would.
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
