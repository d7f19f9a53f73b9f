//! When and how often the client repeats a failed request.

use std::time::Duration;

use rand::Rng;

/// The retry policy of a [`MattermostClient`](crate::MattermostClient).
///
/// - 429 (rate limited) is retried on any method, after the server's
///   `Retry-After` (else `X-RateLimit-Reset`).
/// - 5xx answers and broken connections are retried only for requests that
///   are safe to repeat (reads, patches, revokes, membership adds); a
///   repeated create could make a duplicate. A connection that could not be
///   opened at all is retried on any method: the request never left.
/// - 401, 403, 501 and other 4xx are never retried.
///
/// Attempts are bounded, backoff is exponential with jitter, and the total
/// time spent waiting is capped.
#[derive(Clone, Debug, PartialEq)]
pub struct RetryPolicy {
    /// Attempts in all (first try included) for 5xx and connection errors.
    pub max_attempts: u32,
    /// Attempts in all for rate-limited (429) answers.
    pub max_rate_limited_attempts: u32,
    /// First backoff delay.
    pub base_delay: Duration,
    /// Largest single backoff delay.
    pub max_delay: Duration,
    /// Cap on the total time one call spends waiting between attempts.
    pub max_total_wait: Duration,
    /// Randomise each backoff delay between half and all of it.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 4,
            max_rate_limited_attempts: 30,
            base_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(5),
            max_total_wait: Duration::from_secs(120),
            jitter: true,
        }
    }
}

impl RetryPolicy {
    /// No retries at all: every error is returned at once.
    pub fn none() -> Self {
        RetryPolicy {
            max_attempts: 1,
            max_rate_limited_attempts: 1,
            ..RetryPolicy::default()
        }
    }

    /// The wait before repeating a rate-limited request: what the server
    /// asked for, plus up to a quarter more with jitter, so that requests
    /// limited together do not all come back in the same instant.
    pub(crate) fn rate_limited_wait(&self, asked: Duration) -> Duration {
        if self.jitter {
            asked + asked.mul_f64(rand::rng().random_range(0.0..=0.25))
        } else {
            asked
        }
    }

    /// The backoff before attempt `attempt + 1` (attempt counts from 1).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32 << attempt.saturating_sub(1).min(16));
        let d = exp.min(self.max_delay);
        if self.jitter && !d.is_zero() {
            let f: f64 = rand::rng().random_range(0.5..=1.0);
            d.mul_f64(f)
        } else {
            d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            jitter: false,
            ..RetryPolicy::default()
        };
        assert_eq!(p.backoff(1), Duration::from_millis(200));
        assert_eq!(p.backoff(2), Duration::from_millis(400));
        assert_eq!(p.backoff(10), Duration::from_secs(5));
        let j = RetryPolicy::default();
        for _ in 0..50 {
            let d = j.backoff(2);
            assert!(d >= Duration::from_millis(200) && d <= Duration::from_millis(400));
        }
    }
}
