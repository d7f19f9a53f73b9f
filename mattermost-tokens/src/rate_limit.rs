//! What the server said about its rate limit and its version.

use std::time::{Duration, Instant};

use reqwest::header::HeaderMap;

/// The latest `X-RateLimit-*` values seen on any response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RateLimitStatus {
    /// `X-RateLimit-Limit`: the bucket size (the server's `MaxBurst` + 1).
    pub limit: u32,
    /// `X-RateLimit-Remaining`: requests left in the bucket.
    pub remaining: u32,
    /// `X-RateLimit-Reset`: time until the bucket is full again (the real
    /// server sends seconds from now, not an epoch time).
    pub reset: Duration,
    /// When the response carrying these values arrived.
    pub observed_at: Instant,
}

impl RateLimitStatus {
    pub(crate) fn from_headers(h: &HeaderMap) -> Option<Self> {
        let limit = header_u64(h, "x-ratelimit-limit")?;
        let remaining = header_u64(h, "x-ratelimit-remaining")?;
        let reset = header_u64(h, "x-ratelimit-reset").unwrap_or(0);
        Some(RateLimitStatus {
            limit: u32::try_from(limit).unwrap_or(u32::MAX),
            remaining: u32::try_from(remaining).unwrap_or(u32::MAX),
            reset: Duration::from_secs(reset),
            observed_at: Instant::now(),
        })
    }
}

pub(crate) fn header_u64(h: &HeaderMap, name: &str) -> Option<u64> {
    h.get(name)?.to_str().ok()?.trim().parse().ok()
}

/// The wait a 429 asks for: `Retry-After` (seconds), else `X-RateLimit-Reset`,
/// else one second.
pub(crate) fn retry_after(h: &HeaderMap) -> Duration {
    header_u64(h, "retry-after")
        .or_else(|| retry_after_date(h))
        .or_else(|| header_u64(h, "x-ratelimit-reset"))
        .map(|s| Duration::from_secs(s.clamp(1, 3600)))
        .unwrap_or(Duration::from_secs(1))
}

/// `Retry-After` in its HTTP-date form (RFC 9110: a proxy in front of the
/// server may send `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`), as seconds
/// from now; a date already past reads as 0 (and so waits the minimum).
fn retry_after_date(h: &HeaderMap) -> Option<u64> {
    let raw = h.get("retry-after")?.to_str().ok()?;
    let at = httpdate::parse_http_date(raw.trim()).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .map_or(0, |d| d.as_secs_f64().ceil() as u64),
    )
}

/// The Mattermost server version, from `X-Version-Id`
/// (`{version}.{build}.{confighash}.{licensed}`, e.g.
/// `10.6.0.13685270376.215f100adf6ccda09afcaaa84ac4bfbd.true`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerVersion {
    /// Major version.
    pub major: u32,
    /// Minor version.
    pub minor: u32,
    /// Patch version.
    pub patch: u32,
}

impl ServerVersion {
    /// Parses an `X-Version-Id` header value; `None` when its first three
    /// dot-separated parts are not numbers.
    pub fn parse(header: &str) -> Option<Self> {
        let mut it = header.trim().split('.');
        let major = it.next()?.parse().ok()?;
        let minor = it.next()?.parse().ok()?;
        let patch = it.next()?.parse().ok()?;
        Some(ServerVersion {
            major,
            minor,
            patch,
        })
    }

    /// Whether personal access tokens exist on this version (4.1 and later).
    pub fn supports_personal_access_tokens(&self) -> bool {
        (self.major, self.minor) >= (4, 1)
    }
}

impl std::fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_in_its_http_date_form() {
        use reqwest::header::{HeaderMap, HeaderValue};
        let at = std::time::SystemTime::now() + Duration::from_secs(30);
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(at)).unwrap(),
        );
        let wait = retry_after(&h);
        assert!((29..=31).contains(&wait.as_secs()), "{wait:?}");
        // A date in the past waits the minimum; a far one is clamped.
        let past = std::time::SystemTime::now() - Duration::from_secs(600);
        h.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(past)).unwrap(),
        );
        assert_eq!(retry_after(&h), Duration::from_secs(1));
        let far = std::time::SystemTime::now() + Duration::from_secs(86_400 * 30);
        h.insert(
            "retry-after",
            HeaderValue::from_str(&httpdate::fmt_http_date(far)).unwrap(),
        );
        assert_eq!(retry_after(&h), Duration::from_secs(3600));
        // Neither seconds nor a date: X-RateLimit-Reset, then one second.
        h.insert("retry-after", HeaderValue::from_static("soon"));
        assert_eq!(retry_after(&h), Duration::from_secs(1));
    }

    #[test]
    fn version_parsing() {
        let v = ServerVersion::parse("10.6.0.13685270376.215f100adf6ccda09afcaaa84ac4bfbd.true")
            .unwrap();
        assert_eq!((v.major, v.minor, v.patch), (10, 6, 0));
        assert_eq!(v.to_string(), "10.6.0");
        assert!(v.supports_personal_access_tokens());
        assert!(
            !ServerVersion::parse("4.0.1")
                .unwrap()
                .supports_personal_access_tokens()
        );
        assert_eq!(ServerVersion::parse("garbage"), None);
        assert_eq!(ServerVersion::parse("10.x.0"), None);
        assert_eq!(ServerVersion::parse(""), None);
    }
}
