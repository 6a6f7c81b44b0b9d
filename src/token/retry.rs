//! When to try the token endpoint again: exponential backoff with jitter, inside one call and
//! between calls, and the server's `Retry-After`.

use std::time::{Duration, SystemTime};

/// Requests one call may make when it has no valid token to fall back on.
pub(super) const MAX_ATTEMPTS: u32 = 3;
/// The whole retry sequence of one call ends within this many request timeouts.
pub(super) const DEADLINE_TIMEOUTS: u32 = 3;
/// The first pause between attempts inside one call; doubles each time.
const FIRST_DELAY: Duration = Duration::from_millis(500);
const MAX_DELAY: Duration = Duration::from_secs(8);
/// After a failed refresh, no request before this much time has passed (doubling per
/// consecutive failure): an outage is not answered with one request per caller.
const FIRST_WINDOW: Duration = Duration::from_secs(1);
const MAX_WINDOW: Duration = Duration::from_secs(60);
/// A `Retry-After` longer than this is cut short: an agent must not go silent for hours.
pub(super) const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);

fn exponential(first: Duration, cap: Duration, step: u32) -> Duration {
    first.saturating_mul(1u32 << step.min(16)).min(cap)
}

/// Between half and all of `d`: spreads out the retries of many clients that failed together.
pub(super) fn jitter(d: Duration) -> Duration {
    let mut bytes = [0u8; 4];
    let fraction = match aws_lc_rs::rand::fill(&mut bytes) {
        Ok(()) => f64::from(u32::from_le_bytes(bytes)) / f64::from(u32::MAX),
        Err(_) => 1.0,
    };
    d.mul_f64(0.5 + 0.5 * fraction)
}

/// The pause after failed attempt number `attempt` (1-based) of one call.
pub(super) fn delay(attempt: u32) -> Duration {
    jitter(exponential(
        FIRST_DELAY,
        MAX_DELAY,
        attempt.saturating_sub(1),
    ))
}

/// How long callers wait before the next request after `failures` consecutive failed
/// refreshes, at least what the server asked for.
pub(super) fn window(failures: u32, retry_after: Option<Duration>) -> Duration {
    let ours = jitter(exponential(
        FIRST_WINDOW,
        MAX_WINDOW,
        failures.saturating_sub(1),
    ));
    ours.max(retry_after.unwrap_or_default().min(MAX_RETRY_AFTER))
}

/// `Retry-After`: delta-seconds or an HTTP-date (RFC 9110 10.2.3).
pub(super) fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(when.duration_since(now).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_grow_with_jitter_and_stay_bounded() {
        for attempt in 1..=3u32 {
            let full = FIRST_DELAY * (1 << (attempt - 1));
            for _ in 0..50 {
                let d = delay(attempt);
                assert!(d >= full / 2 && d <= full, "attempt {attempt}: {d:?}");
            }
        }
        assert!(delay(40) <= MAX_DELAY);
        assert!(window(1, None) <= FIRST_WINDOW && window(1, None) >= FIRST_WINDOW / 2);
        assert!(window(100, None) <= MAX_WINDOW);
        assert!(window(1, Some(Duration::from_secs(20))) >= Duration::from_secs(20));
        assert_eq!(window(1, Some(Duration::from_secs(86400))), MAX_RETRY_AFTER);
    }

    #[test]
    fn reads_retry_after() {
        let now = httpdate::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT").unwrap();
        assert_eq!(parse_retry_after(" 7 ", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:50:07 GMT", now),
            Some(Duration::from_secs(30))
        );
        assert_eq!(
            parse_retry_after("Sun, 06 Nov 1994 08:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
        assert_eq!(parse_retry_after("-3", now), None);
    }
}
