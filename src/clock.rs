//! The one source of "now" for the core: every read of the time goes through here (clippy's
//! `disallowed-methods` refuses `Instant::now` and `SystemTime::now` elsewhere). Tests can move
//! it forward (never back) to exercise expiry, refresh-ahead, stale serving and retry deadlines
//! without waiting; in production the skew is zero and reading it costs one relaxed atomic
//! load. Waiting (`tokio::time::sleep`) stays in real time: only the reads of "now" move.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

static SKEW_MILLIS: AtomicU64 = AtomicU64::new(0);

fn skew() -> Duration {
    Duration::from_millis(SKEW_MILLIS.load(Ordering::Relaxed))
}

/// A monotonic instant, moved forward by the test skew.
#[allow(
    clippy::disallowed_methods,
    reason = "the one place that reads the real clock"
)]
pub(crate) fn instant() -> Instant {
    Instant::now() + skew()
}

/// The wall-clock time, moved forward by the test skew.
#[allow(
    clippy::disallowed_methods,
    reason = "the one place that reads the real clock"
)]
pub(crate) fn system_time() -> SystemTime {
    SystemTime::now() + skew()
}

/// Seconds since the Unix epoch, moved forward by the test skew.
pub(crate) fn unix_seconds() -> u64 {
    system_time()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Seconds since the Unix epoch with a fraction, moved forward by the test skew.
pub(crate) fn unix_seconds_f64() -> f64 {
    system_time()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Moves this process's clock forward (for tests of time-dependent behaviour).
#[cfg_attr(
    not(feature = "python"),
    allow(dead_code, reason = "the bindings' test hook")
)]
pub(crate) fn advance(by: Duration) {
    let millis = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
    SKEW_MILLIS.fetch_add(millis, Ordering::Relaxed);
}

/// Back to the real time.
#[cfg_attr(
    not(feature = "python"),
    allow(dead_code, reason = "the bindings' test hook")
)]
pub(crate) fn reset() {
    SKEW_MILLIS.store(0, Ordering::Relaxed);
}
