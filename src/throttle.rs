//! Rate-limited log lines: a warning that would repeat on every request (an outage, a
//! report-only mismatch) is written at most once per interval, with the count of those left
//! out since the last one. The one helper of this kind: the Python side uses it through
//! `tokenward._native._LogThrottle`.

use std::time::{Duration, Instant};

use parking_lot::Mutex;

/// The default interval between two lines of one kind.
pub(crate) const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct LogThrottle {
    interval: Duration,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    last: Option<Instant>,
    suppressed: u64,
}

impl LogThrottle {
    pub(crate) fn new(interval: Duration) -> Self {
        LogThrottle {
            interval,
            state: Mutex::new(State::default()),
        }
    }

    /// `Some(n)` when a line may be written now (n: the lines left out since the last one),
    /// else `None`, and this one is counted as left out.
    pub(crate) fn admit(&self) -> Option<u64> {
        let now = crate::clock::instant();
        let mut state = self.state.lock();
        match state.last {
            Some(last) if now.saturating_duration_since(last) < self.interval => {
                state.suppressed += 1;
                None
            }
            _ => {
                state.last = Some(now);
                Some(std::mem::take(&mut state.suppressed))
            }
        }
    }
}

impl Default for LogThrottle {
    fn default() -> Self {
        LogThrottle::new(DEFAULT_INTERVAL)
    }
}

/// " (N more like it since the last line)" for a non-zero count, else "".
pub(crate) fn suffix(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} more like it since the last line)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count_left_out() {
        let throttle = LogThrottle::new(Duration::from_secs(3600));
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        let zero = LogThrottle::new(Duration::ZERO);
        assert_eq!(zero.admit(), Some(0));
        assert_eq!(zero.admit(), Some(0));
        assert_eq!(suffix(2), " (2 more like it since the last line)");
        assert_eq!(suffix(0), "");
    }
}
