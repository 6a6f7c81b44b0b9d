//! Single flight and refresh-ahead, for the two caches that fetch from an IdP (the key set and
//! the client-credentials token): however many callers find the cache stale at once, one fetch
//! runs and the others take its result; a cache that is merely ageing is refreshed by one
//! background task per process, and no caller waits for it.
//!
//! The protocol, which both caches follow:
//! 1. read the generation ([`SingleFlight::observe`]) *before* loading the cached snapshot;
//! 2. to fetch, take the gate ([`SingleFlight::turn`]); if the generation moved since step 1
//!    ([`Turn::moved_since`]), a fetch completed while this caller queued or looked: use its
//!    result instead of fetching again;
//! 3. a fetch stores its result first, then marks itself done ([`Turn::completed`]), so a
//!    caller that sees the generation moved also sees what the fetch stored.
//!
//! Fork safety: the gate is rebuilt in a child process (a parent thread may have held it at
//! fork time), and the background-refresh claim of a parent means nothing in the child, whose
//! copy of that task never runs.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::fork::{ForkLocal, ProcessClaim};

/// What one caller saw of the generation, before it looked at the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Seen(u64);

/// The coordination state of one cache.
pub(crate) struct SingleFlight {
    /// Completed fetches, failed ones included.
    generation: AtomicU64,
    gate: ForkLocal<Arc<Mutex<()>>>,
    /// The pid of the process whose background refresh is running, or 0.
    refreshing: ProcessClaim,
}

/// The right to fetch: held while the fetch runs, released on drop.
pub(crate) struct Turn<'a> {
    generation: &'a AtomicU64,
    _gate: OwnedMutexGuard<()>,
}

/// A cache that refreshes itself ahead of expiry.
pub(crate) trait RefreshAhead: Send + Sync + 'static {
    /// This cache's coordination state.
    fn flight(&self) -> &SingleFlight;

    /// The background refresh's fetch, run holding `turn`; failures are the cache's to log.
    fn refresh_ahead_locked(&self, turn: &Turn<'_>) -> impl Future<Output = ()> + Send;
}

impl SingleFlight {
    pub(crate) fn new() -> Self {
        SingleFlight {
            generation: AtomicU64::new(0),
            gate: ForkLocal::new(|| Arc::new(Mutex::new(()))),
            refreshing: ProcessClaim::new(),
        }
    }

    /// Step 1: call before loading the snapshot the decision to fetch is based on.
    pub(crate) fn observe(&self) -> Seen {
        Seen(self.generation.load(Ordering::SeqCst))
    }

    /// Step 2: waits for any fetch in progress, then holds the gate.
    pub(crate) async fn turn(&self) -> Turn<'_> {
        Turn {
            generation: &self.generation,
            _gate: self.gate.get().lock_owned().await,
        }
    }
}

impl Turn<'_> {
    /// Whether a fetch completed since `seen` was observed.
    pub(crate) fn moved_since(&self, seen: Seen) -> bool {
        self.generation.load(Ordering::SeqCst) != seen.0
    }

    /// Step 3: call once the fetch's result is stored.
    pub(crate) fn completed(&self) {
        self.generation.fetch_add(1, Ordering::SeqCst);
    }
}

/// Starts one background refresh of `cache` unless this process already runs one; `started`
/// runs first when it does (to count it). The refresh skips its fetch if another one completes
/// between now and its turn.
pub(crate) fn refresh_ahead<C: RefreshAhead>(cache: &Arc<C>, started: impl FnOnce()) {
    let flight = cache.flight();
    if !flight.refreshing.try_claim() {
        return;
    }
    started();
    let seen = flight.observe();
    let cache = Arc::clone(cache);
    crate::runtime::spawn(async move {
        {
            let turn = cache.flight().turn().await;
            if !turn.moved_since(seen) {
                cache.refresh_ahead_locked(&turn).await;
            }
        }
        cache.flight().refreshing.release();
    });
}
