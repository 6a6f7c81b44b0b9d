//! Revocations shared through Redis: a channel for speed, a sorted set for late comers.
//!
//! Each process runs one task on the shared runtime (started on first use in that process, so a
//! forked worker starts its own): it subscribes to the channel, pushes the revocations made here
//! that Redis has not had yet, reads the stored set (members are the entries as JSON, scored by
//! their expiry; expired ones are trimmed), and then applies every message. When the
//! connection fails it reconnects with a short backoff and does the same again, so a gap is
//! caught up from the stored set. Verification never waits for any of it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use futures_util::StreamExt;
use parking_lot::Mutex;
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, AsyncTypedCommands};
use tokio::sync::mpsc;

use super::{Entry, Revocations};
use crate::error::{Error, Result};

/// One attempt to connect, and one command, may take this long.
const TIMEOUT: Duration = Duration::from_secs(2);
/// The connection is pinged this often, so a silent loss is noticed.
const PING_EVERY: Duration = Duration::from_secs(1);
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

/// The sharing's state, for `health()`.
#[derive(Debug, Clone)]
pub(crate) struct SharedHealth {
    pub connected: bool,
    /// Revocations made here that Redis has not had yet.
    pub pending: usize,
    pub last_error: Option<String>,
}

pub(crate) struct Shared {
    core: Arc<Core>,
    /// The second in which this process last made sure its task runs.
    checked_second: AtomicU64,
}

/// What the task holds: never the verifier itself, so dropping the verifier ends the task.
struct Core {
    client: redis::Client,
    key: String,
    channel: String,
    replay_prefix: String,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The process whose task this state describes (0: none started).
    pid: u32,
    connected: bool,
    last_error: Option<String>,
    pending: Vec<Entry>,
    conn: Option<MultiplexedConnection>,
    wake: Option<mpsc::UnboundedSender<()>>,
}

impl Shared {
    pub(super) fn new(url: &str, namespace: &str) -> Result<Self> {
        let scheme_ok = url.starts_with("redis://") || url.starts_with("rediss://");
        let client = scheme_ok
            .then(|| redis::Client::open(url).ok())
            .flatten()
            .ok_or_else(|| {
                Error::config("revocations", "must be None or a redis:// or rediss:// URL")
            })?;
        Ok(Shared {
            core: Arc::new(Core {
                client,
                key: format!("tokenward:revocations:{namespace}"),
                channel: format!("tokenward:revocations:{namespace}"),
                replay_prefix: format!("tokenward:logout-jti:{namespace}:"),
                state: Mutex::new(State::default()),
            }),
            checked_second: AtomicU64::new(u64::MAX),
        })
    }

    pub(super) fn start(&self, revocations: &Arc<Revocations>) {
        self.ensure_running(Arc::downgrade(revocations));
    }

    /// At most once a second (one relaxed load otherwise): starts this process's task if it
    /// has none, i.e. in a forked child.
    pub(super) fn ensure_running_at(&self, me: &Weak<Revocations>, now: u64) {
        // A load first: the common case writes nothing, so threads do not fight over the line.
        if self.checked_second.load(Ordering::Relaxed) != now
            && self.checked_second.swap(now, Ordering::Relaxed) != now
        {
            self.ensure_running(me.clone());
        }
    }

    fn ensure_running(&self, me: Weak<Revocations>) {
        let pid = crate::fork::pid();
        let receiver = {
            let mut state = self.core.state.lock();
            if state.pid == pid {
                return;
            }
            // A parent's connection and channel belong to its runtime, which this process does
            // not run: never touch them again (dropping them would).
            std::mem::forget(state.conn.take());
            std::mem::forget(state.wake.take());
            let (sender, receiver) = mpsc::unbounded_channel();
            state.pid = pid;
            state.connected = false;
            state.wake = Some(sender);
            receiver
        };
        crate::runtime::spawn(run(self.core.clone(), me, receiver));
    }

    /// Queues entries for Redis and wakes the task; they stay queued until Redis has them.
    pub(super) fn publish(&self, me: &Weak<Revocations>, entries: Vec<Entry>) {
        self.ensure_running(me.clone());
        let mut state = self.core.state.lock();
        state.pending.extend(entries);
        if let Some(wake) = &state.wake {
            let _ = wake.send(());
        }
    }

    pub(super) fn health(&self) -> SharedHealth {
        let state = self.core.state.lock();
        SharedHealth {
            connected: state.connected,
            pending: state.pending.len(),
            last_error: state.last_error.clone(),
        }
    }

    /// `SET NX` of a logout token's jti until `expires`: Some(first time?), None when Redis
    /// cannot answer now.
    pub(super) async fn first_use(&self, jti: &str, expires: u64, now: u64) -> Option<bool> {
        let mut conn = self.core.state.lock().conn.clone()?;
        let key = format!("{}{jti}", self.core.replay_prefix);
        let ttl = expires.saturating_sub(now).max(1);
        let set: redis::RedisResult<Option<String>> = redis::cmd("SET")
            .arg(&key)
            .arg(1)
            .arg("NX")
            .arg("EX")
            .arg(ttl)
            .query_async(&mut conn)
            .await;
        set.ok().map(|reply| reply.is_some())
    }
}

fn now() -> u64 {
    crate::clock::unix_seconds()
}

async fn run(core: Arc<Core>, me: Weak<Revocations>, mut wake: mpsc::UnboundedReceiver<()>) {
    let pid = crate::fork::pid();
    let mut backoff = MIN_BACKOFF;
    let mut was_connected = true;
    loop {
        let mut connected = false;
        let result = session(&core, &me, &mut wake, &mut connected).await;
        let Err(e) = result else { return };
        let text = e.to_string();
        let log_it = {
            let mut state = core.state.lock();
            if state.pid != pid {
                return;
            }
            state.connected = false;
            state.conn = None;
            let changed = state.last_error.as_deref() != Some(text.as_str());
            state.last_error = Some(text.clone());
            changed || connected
        };
        if connected || was_connected || log_it {
            log::warn!(
                "revocations: Redis unreachable ({text}); verifying with the revocations known, retrying"
            );
        }
        was_connected = false;
        if connected {
            backoff = MIN_BACKOFF;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
        if me.strong_count() == 0 {
            return;
        }
    }
}

/// One connection's life; Ok(()) when the verifier is gone.
async fn session(
    core: &Core,
    me: &Weak<Revocations>,
    wake: &mut mpsc::UnboundedReceiver<()>,
    connected: &mut bool,
) -> redis::RedisResult<()> {
    let config = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(TIMEOUT))
        .set_response_timeout(Some(TIMEOUT));
    let mut conn = core
        .client
        .get_multiplexed_async_connection_with_config(&config)
        .await?;
    let mut pubsub = tokio::time::timeout(TIMEOUT, core.client.get_async_pubsub())
        .await
        .map_err(timed_out)??;
    // Subscribed before the stored set is read: nothing published in between is missed.
    pubsub.subscribe(&core.channel).await?;
    let mut messages = pubsub.into_on_message();
    push_pending(core, &mut conn).await?;
    load(core, me, &mut conn).await?;
    {
        let mut state = core.state.lock();
        state.connected = true;
        state.last_error = None;
        state.conn = Some(conn.clone());
    }
    *connected = true;
    log::info!("revocations: subscribed to Redis");
    let mut ping = tokio::time::interval(PING_EVERY);
    loop {
        tokio::select! {
            message = messages.next() => {
                let Some(message) = message else {
                    return Err(closed());
                };
                let Some(revocations) = me.upgrade() else { return Ok(()) };
                match serde_json::from_slice::<Entry>(message.get_payload_bytes()) {
                    Ok(entry) => revocations.apply(&[entry], now()),
                    Err(e) => log::warn!("revocations: ignored a message that is not an entry: {e}"),
                }
            }
            woken = wake.recv() => {
                if woken.is_none() {
                    return Ok(());
                }
                push_pending(core, &mut conn).await?;
            }
            _ = ping.tick() => {
                if me.strong_count() == 0 {
                    return Ok(());
                }
                conn.ping().await?;
            }
        }
    }
}

/// Stores and publishes what was revoked here; what Redis took leaves the queue.
async fn push_pending(core: &Core, conn: &mut MultiplexedConnection) -> redis::RedisResult<()> {
    let batch = core.state.lock().pending.clone();
    if batch.is_empty() {
        return Ok(());
    }
    let mut pipe = redis::pipe();
    for entry in &batch {
        let member = serde_json::to_string(entry).unwrap_or_default();
        pipe.zadd(&core.key, &member, entry.expires)
            .ignore()
            .publish(&core.channel, &member)
            .ignore();
    }
    pipe.zrembyscore(&core.key, "-inf", now()).ignore();
    pipe.exec_async(conn).await?;
    let mut state = core.state.lock();
    let done = batch.len().min(state.pending.len());
    state.pending.drain(..done);
    Ok(())
}

/// Reads the stored set (trimming what has expired) into the rules.
async fn load(
    core: &Core,
    me: &Weak<Revocations>,
    conn: &mut MultiplexedConnection,
) -> redis::RedisResult<()> {
    let now = now();
    conn.zrembyscore(&core.key, "-inf", now).await?;
    let members: Vec<String> = conn.zrangebyscore(&core.key, now + 1, "+inf").await?;
    let entries: Vec<Entry> = members
        .iter()
        .filter_map(|m| serde_json::from_str(m).ok())
        .collect();
    if let Some(revocations) = me.upgrade() {
        revocations.apply(&entries, now);
    }
    Ok(())
}

fn timed_out(_: tokio::time::error::Elapsed) -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::TimedOut,
        "Redis did not answer in time",
    ))
}

fn closed() -> redis::RedisError {
    redis::RedisError::from(std::io::Error::new(
        std::io::ErrorKind::ConnectionAborted,
        "the subscription was closed",
    ))
}
