//! The rate limiter: Mattermost's (throttled's GCRA) token bucket, keyed by
//! the client's IP address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use tokio::time::Instant;

/// Rate-limit settings, as `RateLimitSettings` on a real server
/// (`PerSec`, `MaxBurst`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second that refill the bucket (at least 1).
    pub per_sec: u32,
    /// Requests allowed at once beyond the steady rate. `0` is allowed: every
    /// request then waits for its own refill.
    pub max_burst: u32,
}

impl RateLimit {
    /// A limit of `per_sec` requests per second with a burst of `max_burst`.
    /// The real server's defaults, when switched on, are `(10, 100)`.
    pub fn new(per_sec: u32, max_burst: u32) -> Self {
        Self {
            per_sec: per_sec.max(1),
            max_burst,
        }
    }
}

/// What the limiter decided for one request, and the header values.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Decision {
    pub limited: bool,
    pub limit: u32,
    pub remaining: u32,
    /// Seconds until the bucket is full again (`X-RateLimit-Reset`).
    pub reset_secs: u64,
    /// Seconds to wait before retrying (`Retry-After`), only when limited.
    pub retry_after_secs: u64,
}

/// The generic cell rate algorithm as the `throttled` library used by
/// Mattermost implements it: one "theoretical arrival time" per key.
#[derive(Debug)]
pub(crate) struct Limiter {
    settings: RateLimit,
    emission: Duration,
    tolerance: Duration,
    tats: HashMap<IpAddr, Instant>,
}

impl Limiter {
    pub fn new(settings: RateLimit) -> Self {
        let settings = RateLimit::new(settings.per_sec, settings.max_burst);
        let emission = Duration::from_secs(1) / settings.per_sec;
        let tolerance = emission * (settings.max_burst + 1);
        Self {
            settings,
            emission,
            tolerance,
            tats: HashMap::new(),
        }
    }

    pub fn settings(&self) -> RateLimit {
        self.settings
    }

    pub fn check(&mut self, key: IpAddr, now: Instant) -> Decision {
        let limit = self.settings.max_burst + 1;
        let tat = self.tats.get(&key).copied().unwrap_or(now).max(now);
        let new_tat = tat + self.emission;
        let until_new_tat = new_tat - now;
        if until_new_tat > self.tolerance {
            // Limited: the request would push the bucket past its capacity.
            let retry_after = until_new_tat - self.tolerance;
            return Decision {
                limited: true,
                limit,
                remaining: 0,
                reset_secs: ceil_secs(tat - now),
                retry_after_secs: ceil_secs(retry_after).max(1),
            };
        }
        self.tats.insert(key, new_tat);
        let headroom = self.tolerance - until_new_tat;
        let remaining = (headroom.as_nanos() / self.emission.as_nanos().max(1)) as u32;
        Decision {
            limited: false,
            limit,
            remaining,
            reset_secs: ceil_secs(until_new_tat),
            retry_after_secs: 0,
        }
    }
}

fn ceil_secs(d: Duration) -> u64 {
    d.as_nanos().div_ceil(1_000_000_000) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_limited_then_refilled() {
        let ip: IpAddr = [127, 0, 0, 1].into();
        let mut limiter = Limiter::new(RateLimit::new(10, 2));
        let t0 = Instant::now();
        let first = limiter.check(ip, t0);
        assert!(!first.limited);
        assert_eq!(first.limit, 3);
        assert_eq!(first.remaining, 2);
        assert!(!limiter.check(ip, t0).limited);
        let third = limiter.check(ip, t0);
        assert!(!third.limited);
        assert_eq!(third.remaining, 0);
        let fourth = limiter.check(ip, t0);
        assert!(fourth.limited);
        assert_eq!(fourth.retry_after_secs, 1);
        assert!(!limiter.check(ip, t0 + Duration::from_millis(100)).limited);
    }

    #[test]
    fn zero_burst_allows_one_per_interval() {
        let ip: IpAddr = [127, 0, 0, 1].into();
        let mut limiter = Limiter::new(RateLimit::new(2, 0));
        let t0 = Instant::now();
        assert!(!limiter.check(ip, t0).limited);
        let second = limiter.check(ip, t0);
        assert!(second.limited);
        assert_eq!(second.retry_after_secs, 1);
        assert!(!limiter.check(ip, t0 + Duration::from_millis(500)).limited);
    }
}
