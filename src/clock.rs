//! The time the verifier and the key cache read. Tests can move it forward (never back) to
//! exercise expiry, refresh-ahead and stale serving without waiting; in production the skew is
//! zero and reading it costs one relaxed atomic load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static SKEW_MILLIS: AtomicU64 = AtomicU64::new(0);

fn skew() -> Duration {
    Duration::from_millis(SKEW_MILLIS.load(Ordering::Relaxed))
}

/// A monotonic instant, moved forward by the test skew.
pub fn instant() -> Instant {
    Instant::now() + skew()
}

/// Seconds since the Unix epoch, moved forward by the test skew.
pub fn unix_seconds() -> u64 {
    (SystemTime::now() + skew())
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Moves this process's clock forward (for tests of time-dependent behaviour).
pub fn advance(by: Duration) {
    let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
    SKEW_MILLIS.fetch_add(millis, Ordering::Relaxed);
}

/// Back to the real time.
pub fn reset() {
    SKEW_MILLIS.store(0, Ordering::Relaxed);
}
