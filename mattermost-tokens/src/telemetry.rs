//! Metrics through the [`metrics`](https://docs.rs/metrics) facade (feature
//! `metrics`, on by default).
//!
//! The library records; the host chooses where the figures go by installing
//! a recorder (`metrics-exporter-prometheus`, StatsD, ...). Without one,
//! each record is a check of a global that finds no recorder: no cost worth
//! measuring. Without the feature, nothing is compiled.
//!
//! | name | kind | labels | counts |
//! |---|---|---|---|
//! | `mattermost_tokens_mints_total` | counter | | tokens created (`POST /users/{id}/tokens` answered with a token) |
//! | `mattermost_tokens_revokes_total` | counter | | tokens revoked (`POST /users/tokens/revoke` answered OK) |
//! | `mattermost_tokens_admin_fallbacks_total` | counter | | calls made with the admin token for a user without a usable token ([`Policy::FallbackToAdmin`](crate::Policy::FallbackToAdmin)) |
//! | `mattermost_tokens_user_token_unauthorized_total` | counter | | answers 401 to a request made with a user's token |
//! | `mattermost_tokens_rate_limited_total` | counter | | answers 429 |
//! | `mattermost_tokens_retries_total` | counter | `reason` (`rate_limited`, `server_error`, `transport`) | requests sent again |
//! | `mattermost_tokens_request_duration_seconds` | histogram | `method`, `endpoint` (a template: `/api/v4/users/{}/tokens`), `status` (`2xx`, ..., `error` without an answer) | each attempt's latency |
//!
//! Labels never carry a token, an id or an email: endpoints are templates.

/// The metric names, for dashboards and tests.
pub mod names {
    /// Tokens created.
    pub const MINTS: &str = "mattermost_tokens_mints_total";
    /// Tokens revoked.
    pub const REVOKES: &str = "mattermost_tokens_revokes_total";
    /// Calls made with the admin token on behalf of a user.
    pub const ADMIN_FALLBACKS: &str = "mattermost_tokens_admin_fallbacks_total";
    /// 401 answers to a user's token.
    pub const USER_TOKEN_UNAUTHORIZED: &str = "mattermost_tokens_user_token_unauthorized_total";
    /// 429 answers.
    pub const RATE_LIMITED: &str = "mattermost_tokens_rate_limited_total";
    /// Requests sent again.
    pub const RETRIES: &str = "mattermost_tokens_retries_total";
    /// Request latency, by method, endpoint and status class.
    pub const REQUEST_DURATION: &str = "mattermost_tokens_request_duration_seconds";
}

/// Why a request is sent again.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Retry {
    RateLimited,
    ServerError,
    Transport,
}

#[cfg(feature = "metrics")]
mod imp {
    use super::{Retry, names};
    use std::time::Duration;

    pub(crate) fn minted() {
        metrics::counter!(names::MINTS).increment(1);
    }
    pub(crate) fn revoked() {
        metrics::counter!(names::REVOKES).increment(1);
    }
    pub(crate) fn admin_fallback() {
        metrics::counter!(names::ADMIN_FALLBACKS).increment(1);
    }
    pub(crate) fn user_token_unauthorized() {
        metrics::counter!(names::USER_TOKEN_UNAUTHORIZED).increment(1);
    }
    pub(crate) fn rate_limited() {
        metrics::counter!(names::RATE_LIMITED).increment(1);
    }
    pub(crate) fn retry(why: Retry) {
        let reason = match why {
            Retry::RateLimited => "rate_limited",
            Retry::ServerError => "server_error",
            Retry::Transport => "transport",
        };
        metrics::counter!(names::RETRIES, "reason" => reason).increment(1);
    }
    pub(crate) fn request(
        method: &str,
        endpoint: impl FnOnce() -> String,
        status: Option<u16>,
        took: Duration,
    ) {
        let class = match status {
            Some(100..=199) => "1xx",
            Some(200..=299) => "2xx",
            Some(300..=399) => "3xx",
            Some(400..=499) => "4xx",
            Some(_) => "5xx",
            None => "error",
        };
        metrics::histogram!(
            names::REQUEST_DURATION,
            "method" => method.to_owned(),
            "endpoint" => endpoint(),
            "status" => class,
        )
        .record(took.as_secs_f64());
    }
}

#[cfg(not(feature = "metrics"))]
mod imp {
    use super::Retry;
    use std::time::Duration;

    pub(crate) fn minted() {}
    pub(crate) fn revoked() {}
    pub(crate) fn admin_fallback() {}
    pub(crate) fn user_token_unauthorized() {}
    pub(crate) fn rate_limited() {}
    pub(crate) fn retry(_: Retry) {}
    pub(crate) fn request(_: &str, _: impl FnOnce() -> String, _: Option<u16>, _: Duration) {}
}

/// Each function records one event; `request` builds its endpoint label
/// only when the feature is on.
pub(crate) use imp::*;
