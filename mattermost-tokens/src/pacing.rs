//! Client-side pacing against Mattermost's rate limiter.
//!
//! Mattermost's limiter (when enabled) is a token bucket per client address:
//! `X-RateLimit-Limit` is the bucket size, `X-RateLimit-Remaining` the tokens
//! left, `X-RateLimit-Reset` the whole seconds (rounded up) until the bucket
//! is full again. The refill rate is not sent, but each answer bounds it:
//! `missing = limit - remaining` tokens refill in `reset` seconds rounded up,
//! so `missing / reset <= rate`, and once `reset >= 2` also
//! `rate < missing / (reset - 1)`. The pacer keeps the best lower bound,
//! mirrors the bucket locally (the server's `remaining`, less the requests
//! still in flight) and makes each request reserve a token, sleeping until it
//! refills. Bulk work then runs at the server's rate without a storm of 429s.
//!
//! The bucket is the server's, not this client's: other processes of the
//! app (several instances of a job, every web server) spend from it too,
//! and the server's `remaining` shows it. Where an answer's `remaining` is
//! below what the mirror predicted by more than rounding, the difference
//! over the time since the previous comparison is what the others spent;
//! the pacer keeps a smoothed estimate of that rate and refills its mirror
//! only with what is left of the rate, so N clients share the budget
//! instead of each spending all of it.
//!
//! A server with no burst (bucket of one) only ever answers `reset = 1`,
//! which bounds the rate from below by 1/s and not at all from above. Then
//! the pacer probes: while requests wait on it and no 429 comes, it doubles
//! its rate every second; a 429 halves it. Without rate-limit headers (the
//! server's default) it never waits.

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
    /// Tokens taken by requests so far, reservations included.
    consumed: f64,
    /// Tokens the bucket has supplied so far (as estimated): the level is
    /// `supplied - consumed`, negative while requests wait. A request that
    /// took token number `n` may go once `supplied >= n`, so a waiting
    /// request sees rate changes as they happen.
    supplied: f64,
    capacity: f64,
    /// Lower bound on the refill rate, tokens per second.
    rate: Option<f64>,
    /// Whether some answer also bounded the rate from above (`reset >= 2`),
    /// making the lower bound a good estimate.
    bounded: bool,
    /// The probing rate, used while the rate is not bounded from above.
    probe: f64,
    /// When the probing rate last changed.
    probe_changed: Option<Instant>,
    last: Option<Instant>,
    in_flight: u32,
    known: bool,
    /// What other clients of the same bucket spend, tokens per second
    /// (smoothed).
    others: f64,
    /// When the server's level was last taken in for `others`, that level,
    /// and `sent` then.
    compared: Option<(Instant, f64, f64)>,
    /// Requests this client let go so far.
    sent: f64,
}

impl State {
    /// The rate the pacer spends tokens at.
    fn effective_rate(&self) -> Option<f64> {
        let lower = self.rate?;
        Some(if self.bounded {
            lower
        } else {
            self.probe.max(lower)
        })
    }

    /// The rate this client's mirror refills at: the bucket's, less what
    /// the other clients spend (never below a twentieth of it).
    fn spend_rate(&self) -> Option<f64> {
        self.effective_rate()
            .map(|r| (r - self.others).max(r / 20.0))
    }

    fn level(&self) -> f64 {
        self.supplied - self.consumed
    }

    fn set_level(&mut self, level: f64) {
        self.supplied = self.consumed + level;
    }

    /// Measures, at most once a second (a shorter window would be mostly
    /// rounding), what other clients spent: the bucket refilled
    /// `rate * dt`, this client sent `mine`, and its level moved by
    /// `server_level - before`; the rest was theirs. Not while the bucket
    /// is (nearly) full, where refill is lost and says nothing.
    fn learn_others(&mut self, now: Instant, server_level: f64) {
        const WINDOW: Duration = Duration::from_secs(1);
        let rate = self.effective_rate().unwrap_or(0.0);
        let full = |level: f64| level >= self.capacity - 1.0;
        if let Some((since, before, sent_before)) = self.compared {
            let dt = now.saturating_duration_since(since);
            if dt < WINDOW {
                return;
            }
            if !full(before) && !full(server_level) {
                let mine = self.sent - sent_before;
                let theirs = rate * dt.as_secs_f64() - mine - (server_level - before);
                let observed = (theirs / dt.as_secs_f64()).max(0.0);
                self.others = (0.5 * self.others + 0.5 * observed).clamp(0.0, rate);
            }
        }
        self.compared = Some((now, server_level, self.sent));
    }

    fn refill(&mut self, now: Instant) {
        if let (Some(rate), Some(last)) = (self.spend_rate(), self.last) {
            let dt = now.saturating_duration_since(last).as_secs_f64();
            self.supplied = (self.supplied + rate * dt).min(self.consumed + self.capacity);
        }
        self.last = Some(now);
    }
}

/// The longest `X-RateLimit-Reset` taken as a refill time, like the
/// longest `Retry-After` honoured.
pub(crate) const MAX_RESET: Duration = Duration::from_secs(3600);

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

    /// Waits until the bucket (as estimated) has a token for this request,
    /// at most `budget`; returns how long it waited.
    pub(crate) async fn before_request(&self, budget: Duration) -> (InFlight<'_>, Duration) {
        let started = Instant::now();
        let ticket = {
            let mut s = self.lock();
            s.in_flight += 1;
            s.sent += 1.0;
            let Some(rate) = s.effective_rate().filter(|r| *r > 0.0 && s.known) else {
                return (InFlight(self), Duration::ZERO);
            };
            let now = Instant::now();
            s.refill(now);
            s.consumed += 1.0;
            if s.supplied + 1e-6 >= s.consumed {
                return (InFlight(self), Duration::ZERO);
            }
            if !s.bounded {
                // Held back by a guess: raise it while no 429 says it is too
                // high.
                let since = s.probe_changed.map_or(Duration::MAX, |t| now - t);
                if since >= Duration::from_secs(1) {
                    s.probe = (rate * 2.0).min(10_000.0);
                    s.probe_changed = Some(now);
                }
            }
            s.consumed
        };
        loop {
            let left = budget.saturating_sub(started.elapsed());
            if left.is_zero() {
                tracing::warn!(
                    waited_ms = started.elapsed().as_millis() as u64,
                    "rate-limit pacing used the request's whole wait budget; sending it unpaced"
                );
                break;
            }
            let wait = {
                let mut s = self.lock();
                s.refill(Instant::now());
                match s.spend_rate() {
                    // (The epsilon keeps a rounding remainder from becoming a
                    // zero-length sleep that never lets time pass; an absurd
                    // estimate cannot overflow the duration.)
                    Some(rate) if rate > 0.0 && s.supplied + 1e-6 < ticket => {
                        Duration::try_from_secs_f64((ticket - s.supplied) / rate)
                            .unwrap_or(Duration::MAX)
                            .max(Duration::from_micros(100))
                    }
                    _ => break,
                }
            };
            // In slices, so a faster rate learnt meanwhile takes effect.
            tokio::time::sleep(wait.min(Duration::from_millis(100)).min(left)).await;
        }
        (InFlight(self), started.elapsed())
    }

    /// Takes in the server's view of the bucket from a response.
    pub(crate) fn observe(&self, st: &RateLimitStatus) {
        let mut s = self.lock();
        let now = Instant::now();
        s.refill(now);
        s.capacity = f64::from(st.limit);
        let missing = f64::from(st.limit.saturating_sub(st.remaining));
        let reset = st.reset.as_secs_f64();
        // A reset beyond what any bucket takes to refill (an epoch time from
        // a proxy, garbage) says nothing about the rate: ignored, so one
        // absurd answer cannot slow every later request.
        if reset > 0.0 && reset <= MAX_RESET.as_secs_f64() && missing > 0.0 {
            let bound = missing / reset;
            s.rate = Some(s.rate.map_or(bound, |r| r.max(bound)));
            if reset >= 2.0 {
                s.bounded = true;
            }
        }
        // Requests sent but not yet answered will take tokens the server has
        // not counted in this answer. Reservations already made stay made.
        let others = f64::from(s.in_flight.saturating_sub(1));
        let server_level = f64::from(st.remaining) - others;
        if s.known && s.bounded {
            s.learn_others(now, server_level);
        }
        if !s.known || server_level < s.level() {
            s.set_level(server_level);
        }
        s.known = true;
    }

    /// A 429 means the bucket is empty now, and a probing rate too high.
    pub(crate) fn on_rate_limited(&self, _retry_after: Duration) {
        let mut s = self.lock();
        // The refused request took no token.
        s.sent -= 1.0;
        let now = Instant::now();
        s.refill(now);
        if s.level() > 0.0 {
            s.set_level(0.0);
        }
        if !s.bounded
            && let Some(rate) = s.effective_rate()
        {
            s.probe = (rate / 2.0).max(s.rate.unwrap_or(1.0));
            s.probe_changed = Some(now);
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

    /// Told that 100 of 101 requests are used and the bucket is full again
    /// in 10 s (10/s), `p` spreads the next eleven requests (one left, then
    /// ten) over a second, give or take `slack_ms`.
    async fn assert_paces_ten_per_second(p: &Pacer, slack_ms: u64) {
        p.observe(&status(101, 1, 10));
        let e = time_of(p, 11).await;
        let (lo, hi) = (1_000 - slack_ms, 1_000 + slack_ms);
        assert!(
            e >= Duration::from_millis(lo) && e <= Duration::from_millis(hi),
            "{e:?}"
        );
    }

    /// A pacer that has let one request through.
    async fn started() -> Pacer {
        let p = Pacer::default();
        drop(p.before_request(Duration::from_secs(60)).await.0);
        p
    }

    /// A pacer whose one request was answered with `first`.
    async fn answered(first: RateLimitStatus) -> Pacer {
        let p = started().await;
        p.observe(&first);
        p
    }

    /// How long `n` requests take through `p` (virtual time).
    async fn time_of(p: &Pacer, n: usize) -> Duration {
        let t = tokio::time::Instant::now();
        for _ in 0..n {
            drop(p.before_request(Duration::from_secs(60)).await.0);
        }
        t.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn an_epoch_style_reset_neither_stalls_nor_panics_and_the_rate_recovers() {
        // A proxy's epoch time, then garbage at the top of the range.
        let p = answered(status(101, 1, 1_764_780_000)).await;
        p.observe(&status(101, 0, u64::MAX / 2));
        let e = time_of(&p, 5).await;
        assert!(e < Duration::from_secs(2), "{e:?}");
        // A sane answer afterwards paces as usual.
        assert_paces_ten_per_second(&p, 100).await;
    }

    #[tokio::test(start_paused = true)]
    async fn a_wait_never_exceeds_the_requests_budget() {
        // Two requests an hour: the next would wait half an hour.
        let p = answered(status(2, 0, 3600)).await;
        let t = tokio::time::Instant::now();
        let (_slot, waited) = p.before_request(Duration::from_secs(5)).await;
        assert!(
            t.elapsed() <= Duration::from_millis(5_100),
            "{:?}",
            t.elapsed()
        );
        assert!(waited >= Duration::from_secs(5), "{waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn no_headers_no_wait() {
        let p = Pacer::default();
        let e = time_of(&p, 100).await;
        assert_eq!(e, Duration::ZERO);
    }

    /// A bucket of 100 refilled at 10/s, from which another client takes
    /// 5/s: this pacer learns the others' share from `remaining` and sends
    /// about 5/s, instead of 10/s and a stream of 429s.
    #[tokio::test(start_paused = true)]
    async fn shares_the_bucket_with_other_clients() {
        let p = Pacer::default();
        let start = tokio::time::Instant::now();
        let (mut level, mut last, mut sent, mut refused) = (100.0f64, start, 0u32, 0u32);
        while start.elapsed() < Duration::from_secs(60) {
            drop(p.before_request(Duration::from_secs(60)).await.0);
            let now = tokio::time::Instant::now();
            let dt = (now - last).as_secs_f64();
            last = now;
            level = (level + 10.0 * dt - 5.0 * dt).min(100.0);
            if level >= 1.0 {
                level -= 1.0;
                sent += 1;
            } else {
                refused += 1;
                p.on_rate_limited(Duration::from_secs(1));
            }
            let missing = (100.0 - level).max(0.0);
            p.observe(&status(
                100,
                level.max(0.0) as u32,
                (missing / 10.0).ceil() as u64,
            ));
        }
        // 100 of burst, then about 5/s for the rest of the minute.
        assert!((350..=430).contains(&sent), "sent {sent}");
        assert!(refused <= 20, "{refused} answered 429");
    }

    #[tokio::test(start_paused = true)]
    async fn learns_rate_and_waits_when_empty() {
        let p = started().await;
        assert_paces_ten_per_second(&p, 10).await;
    }

    #[tokio::test(start_paused = true)]
    async fn no_burst_probes_up_and_backs_off_on_429() {
        // A bucket of one: every answer says 0 left, full again within 1 s.
        let p = answered(status(1, 0, 1)).await;
        let t = tokio::time::Instant::now();
        let mut n = 0;
        while t.elapsed() < Duration::from_secs(5) {
            drop(p.before_request(Duration::from_secs(60)).await.0);
            n += 1;
        }
        // At a fixed 1/s this would be 5; doubling each second gives far more.
        assert!(n > 20, "{n} requests in 5 s");
        let before = p.lock().effective_rate().unwrap();
        p.on_rate_limited(Duration::from_secs(1));
        let after = p.lock().effective_rate().unwrap();
        assert!(after < before, "{after} >= {before}");
        // Once an answer bounds the rate from above, no more probing.
        p.observe(&status(101, 1, 10));
        assert!(p.lock().bounded);
        assert_eq!(p.lock().effective_rate(), Some(10.0));
    }

    #[tokio::test(start_paused = true)]
    async fn full_bucket_goes_at_once() {
        let p = answered(status(101, 100, 1)).await;
        let e = time_of(&p, 50).await;
        assert_eq!(e, Duration::ZERO);
    }
}
