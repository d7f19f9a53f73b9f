//! Client-side pacing against Mattermost's rate limiter.
//!
//! Mattermost's limiter (when enabled) is a token bucket per client address:
//! `X-RateLimit-Limit` is the bucket size, `X-RateLimit-Remaining` the tokens
//! left, `X-RateLimit-Reset` the whole seconds (rounded up) until the bucket
//! is full again. The refill rate is not sent, but each answer bounds it:
//! `missing = limit - remaining` tokens refill in `reset` seconds rounded up,
//! so `missing / reset <= rate`. The pacer keeps the best lower bound, mirrors
//! the bucket locally (the server's `remaining`, less the requests still in
//! flight) and makes each request reserve a token, sleeping until it refills.
//! Bulk work then runs at the server's rate without a storm of 429s. Without
//! rate-limit headers (the server's default) it never waits.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::rate_limit::RateLimitStatus;

#[derive(Debug, Default)]
pub(crate) struct Pacer {
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Estimated tokens available now (negative: reserved ahead).
    level: f64,
    capacity: f64,
    /// Lower bound on the refill rate, tokens per second.
    rate: Option<f64>,
    last: Option<Instant>,
    in_flight: u32,
    known: bool,
}

impl State {
    fn refill(&mut self, now: Instant) {
        if let (Some(rate), Some(last)) = (self.rate, self.last) {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.level = (self.level + rate * dt).min(self.capacity);
        }
        self.last = Some(now);
    }
}

/// Marks one request as in flight until dropped.
pub(crate) struct InFlight<'a>(&'a Pacer);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut s = self.0.lock();
        s.in_flight = s.in_flight.saturating_sub(1);
    }
}

impl Pacer {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Waits until the bucket (as estimated) has a token for this request.
    pub(crate) async fn before_request(&self) -> InFlight<'_> {
        let wait = {
            let mut s = self.lock();
            s.in_flight += 1;
            match (s.known, s.rate) {
                (true, Some(rate)) if rate > 0.0 => {
                    s.refill(Instant::now());
                    s.level -= 1.0;
                    (s.level < 0.0).then(|| Duration::from_secs_f64(-s.level / rate))
                }
                _ => None,
            }
        };
        if let Some(w) = wait {
            tokio::time::sleep(w).await;
        }
        InFlight(self)
    }

    /// Takes in the server's view of the bucket from a response.
    pub(crate) fn observe(&self, st: &RateLimitStatus) {
        let mut s = self.lock();
        let now = Instant::now();
        s.refill(now);
        s.capacity = f64::from(st.limit);
        let missing = f64::from(st.limit.saturating_sub(st.remaining));
        let reset = st.reset.as_secs_f64();
        if reset > 0.0 && missing > 0.0 {
            let bound = missing / reset;
            s.rate = Some(s.rate.map_or(bound, |r| r.max(bound)));
        }
        // Requests sent but not yet answered will take tokens the server has
        // not counted in this answer. Reservations already made stay made.
        let others = f64::from(s.in_flight.saturating_sub(1));
        let server_level = f64::from(st.remaining) - others;
        if !s.known || server_level < s.level {
            s.level = server_level;
        }
        s.known = true;
    }

    /// A 429 means the bucket is empty now.
    pub(crate) fn on_rate_limited(&self, _retry_after: Duration) {
        let mut s = self.lock();
        s.refill(Instant::now());
        if s.level > 0.0 {
            s.level = 0.0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(limit: u32, remaining: u32, reset: u64) -> RateLimitStatus {
        RateLimitStatus {
            limit,
            remaining,
            reset: Duration::from_secs(reset),
            observed_at: std::time::Instant::now(),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn no_headers_no_wait() {
        let p = Pacer::default();
        let t = tokio::time::Instant::now();
        for _ in 0..100 {
            drop(p.before_request().await);
        }
        assert_eq!(t.elapsed(), Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn learns_rate_and_waits_when_empty() {
        let p = Pacer::default();
        // 100 of 101 tokens used, full again in 10 s: rate >= 10/s.
        drop(p.before_request().await);
        p.observe(&status(101, 1, 10));
        let t = tokio::time::Instant::now();
        // One token left; the next ten must be spread at 10/s.
        for _ in 0..11 {
            drop(p.before_request().await);
        }
        let e = t.elapsed();
        assert!(
            e >= Duration::from_millis(990) && e <= Duration::from_millis(1100),
            "{e:?}"
        );
    }

    #[tokio::test(start_paused = true)]
    async fn full_bucket_goes_at_once() {
        let p = Pacer::default();
        drop(p.before_request().await);
        p.observe(&status(101, 100, 1));
        let t = tokio::time::Instant::now();
        for _ in 0..50 {
            drop(p.before_request().await);
        }
        assert_eq!(t.elapsed(), Duration::ZERO);
    }
}
