//! The client's error type.

use std::fmt;
use std::time::Duration;

use serde::Deserialize;

/// How many characters of an unexpected response body an error keeps.
pub(crate) const SNIPPET_CHARS: usize = 200;

/// An error answer from Mattermost: the HTTP status and, when the body was
/// Mattermost's JSON error object, its fields.
///
/// The URL is kept as path only (no query string); for calls whose response
/// carries a token the body is never kept.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiError {
    /// The HTTP status code.
    pub status: u16,
    /// Mattermost's error id, such as `app.user_access_token.disabled`; empty
    /// when the body was not Mattermost's error JSON.
    pub id: String,
    /// Mattermost's human-readable message (or a short snippet of a non-JSON
    /// body).
    pub message: String,
    /// Mattermost's `detailed_error`, filled only in developer mode.
    pub detailed_error: String,
    /// The request id (`request_id` in the body, else the `X-Request-Id`
    /// header), to find the request in the server's logs.
    pub request_id: Option<String>,
    /// The HTTP method of the failed request.
    pub method: String,
    /// The request URL without query string.
    pub url: String,
}

impl fmt::Debug for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiError")
            .field("status", &self.status)
            .field("id", &self.id)
            .field("message", &self.message)
            .field("detailed_error", &self.detailed_error)
            .field("request_id", &self.request_id)
            .field("method", &self.method)
            .field("url", &self.url)
            .finish()
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} answered {}", self.method, self.url, self.status)?;
        if !self.id.is_empty() {
            write!(f, " ({})", self.id)?;
        }
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(r) = &self.request_id {
            write!(f, " [request id {r}]")?;
        }
        Ok(())
    }
}

/// Mattermost's error body. Unknown fields (such as `is_oauth`) are ignored.
#[derive(Deserialize)]
pub(crate) struct AppErrorBody {
    #[serde(default)]
    pub id: String,
    #[serde(default)]
    pub message: String,
    #[serde(default)]
    pub detailed_error: String,
    #[serde(default)]
    pub request_id: String,
}

/// The server's personal access token lifetime rules (newer servers).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExpiryRule {
    /// Tokens must expire: a token without `expires_at` is refused.
    Required,
    /// The expiry asked for is further away than the server allows.
    TooFar,
    /// The expiry asked for has already passed.
    InPast,
}

impl ExpiryRule {
    /// The rule an error id names, if it names one.
    pub(crate) fn from_error_id(id: &str) -> Option<Self> {
        if id.contains("expires_at_required") {
            Some(ExpiryRule::Required)
        } else if id.contains("expires_at_too_far") {
            Some(ExpiryRule::TooFar)
        } else if id.contains("expires_at_in_past") {
            Some(ExpiryRule::InPast)
        } else {
            None
        }
    }

    /// What the rule means for the caller, and what to change.
    pub fn advice(self) -> &'static str {
        match self {
            ExpiryRule::Required => {
                "the Mattermost server requires personal access tokens to expire; set a token lifetime (SyncOptions::token_lifetime, or CreateToken::expires_at)"
            }
            ExpiryRule::TooFar => {
                "the token lifetime asked for is longer than the Mattermost server allows; set a shorter SyncOptions::token_lifetime"
            }
            ExpiryRule::InPast => {
                "the token expiry asked for is already in the past; check this machine's clock and the token lifetime"
            }
        }
    }
}

/// Everything that can go wrong talking to Mattermost.
///
/// Branch on the variant, not on the message: the named variants are the
/// cases callers act on. No variant's `Display` or `Debug` holds a token or
/// the body of a `/tokens` response.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Personal access tokens are disabled on the server
    /// (`ServiceSettings.EnableUserAccessTokens` is false, the server's
    /// default): 501 `app.user_access_token.disabled`.
    #[error(
        "personal access tokens are disabled on the Mattermost server; enable them in System Console > Integrations > Integration Management (ServiceSettings.EnableUserAccessTokens): {0}"
    )]
    TokensDisabled(Box<ApiError>),
    /// 400 from a token create: the server's token lifetime policy refused
    /// the expiry asked for (newer servers; error ids ending in
    /// `expires_at_required`, `expires_at_too_far`, `expires_at_in_past`).
    #[error("{}: {error}", rule.advice())]
    TokenExpiryPolicy {
        /// Which rule refused it.
        rule: ExpiryRule,
        /// The answer.
        error: Box<ApiError>,
    },
    /// 401: the token is invalid, revoked or expired, its user deactivated,
    /// or personal access tokens are disabled on the server (which stops an
    /// admin's personal access token too).
    #[error(
        "not authorized (the token is invalid, revoked or expired, its user is deactivated, or personal access tokens are disabled on the server: ServiceSettings.EnableUserAccessTokens, which stops an admin's personal access token too): {0}"
    )]
    Unauthorized(Box<ApiError>),
    /// 403: the acting identity lacks a permission.
    #[error("permission denied: {0}")]
    PermissionDenied(Box<ApiError>),
    /// 404: the user, token, team or channel does not exist (or is hidden).
    #[error("not found: {0}")]
    NotFound(Box<ApiError>),
    /// 400 with a user-limit id: the server is at its cap of active users,
    /// so it refuses new users (`api.user.create_user.user_limits.exceeded`,
    /// `...license_user_limits.exceeded`) and reactivations
    /// (`app.user.update_active.user_limit.exceeded`,
    /// `...license_user_limit.exceeded`). Raise the limit, deactivate users
    /// who left, or license more seats.
    #[error("{}", user_limit_message(*active, *limit))]
    UserLimitReached {
        /// Active users, when the server said.
        active: Option<u64>,
        /// The limit, when the server said.
        limit: Option<u64>,
        /// The server's answer; `None` when the sync stopped before asking
        /// (an earlier answer of the same run, or the limits it read, showed
        /// the server full).
        error: Option<Box<ApiError>>,
    },
    /// 400 with an `*_exists` id: the email, username or channel name is taken.
    #[error("already exists: {0}")]
    AlreadyExists(Box<ApiError>),
    /// 429 after the retry policy gave up.
    #[error("rate limited by Mattermost; retry after {retry_after:?}: {error}")]
    RateLimited {
        /// How long the server asked to wait.
        retry_after: Duration,
        /// The answer.
        error: Box<ApiError>,
    },
    /// Any other error status with Mattermost's JSON error body.
    #[error("Mattermost error: {0}")]
    Api(Box<ApiError>),
    /// The server could not be reached (connection refused, DNS, TLS).
    #[error("could not reach Mattermost for {method} {url}: {source}")]
    Unreachable {
        /// The HTTP method.
        method: String,
        /// The URL without query string.
        url: String,
        /// The transport error (its URL removed).
        #[source]
        source: reqwest::Error,
    },
    /// The request timed out.
    #[error("request to Mattermost timed out: {method} {url}")]
    Timeout {
        /// The HTTP method.
        method: String,
        /// The URL without query string.
        url: String,
    },
    /// The connection failed during the exchange (reset, closed early).
    #[error("connection to Mattermost failed during {method} {url}: {source}")]
    Transport {
        /// The HTTP method.
        method: String,
        /// The URL without query string.
        url: String,
        /// The transport error (its URL removed).
        #[source]
        source: reqwest::Error,
    },
    /// The answer was not what the API promises: a non-JSON body (an HTML
    /// page from a proxy, an empty body), truncated or wrongly shaped JSON, or
    /// a body over the size limit.
    #[error(
        "bad response from Mattermost to {method} {url} (status {status}): {reason}; body starts: {snippet:?}"
    )]
    BadResponse {
        /// The HTTP status code.
        status: u16,
        /// The HTTP method.
        method: String,
        /// The URL without query string.
        url: String,
        /// What was wrong with it.
        reason: String,
        /// The first characters of the body (at most 200), or a placeholder
        /// for responses that may carry a token.
        snippet: String,
    },
    /// The client's configuration is invalid (bad server URL, bad header).
    #[error("invalid client configuration: {0}")]
    InvalidConfig(String),
    /// An argument was rejected before any request was made.
    #[error("invalid input: {0}")]
    InvalidInput(String),
    /// The token store failed.
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    /// The host's data for a user cannot be used in Mattermost (bad email, an
    /// invalid explicit username, every derived username taken).
    #[error("host user {user} cannot be synced: {reason}")]
    InvalidHostUser {
        /// The host user.
        user: crate::ids::HostUserId,
        /// Why, in words a person can act on.
        reason: String,
    },
    /// The user has no stored token and the policy does not allow acting
    /// for them with the admin token.
    #[error("host user {user} has no Mattermost token; run a sync for them first")]
    NoUserToken {
        /// The host user.
        user: crate::ids::HostUserId,
    },
    /// A user-scoped operation the admin token would do for a user who has
    /// no usable token, but that the user could not do with their own (such
    /// as joining a private channel): refused instead of done with admin
    /// rights.
    #[error("not done with the admin token for host user {user}: {reason}")]
    FallbackRefused {
        /// The host user.
        user: crate::ids::HostUserId,
        /// What the user could not do themself.
        reason: String,
    },
    /// The user's stored token has expired (it was minted with a lifetime
    /// and not renewed in time).
    #[error(
        "the Mattermost token of host user {user} has expired; run a sync (it renews tokens before they expire) or UserSync::verify(user, true)"
    )]
    UserTokenExpired {
        /// The host user.
        user: crate::ids::HostUserId,
    },
    /// The user has not been synced to Mattermost (no stored Mattermost id).
    #[error("host user {user} is not linked to a Mattermost user; run a sync for them first")]
    NotSynced {
        /// The host user.
        user: crate::ids::HostUserId,
    },
    /// Another sync (in this or another process) holds a claim on the user
    /// and did not finish within [`SyncOptions::claim_wait`](crate::SyncOptions::claim_wait).
    /// Nothing was changed; try again later.
    #[error("host user {user} is being synced by another process; try again later")]
    UserBusy {
        /// The host user.
        user: crate::ids::HostUserId,
    },
    /// A magic-link code cannot be redeemed: malformed, unknown, expired or
    /// already used. Answer every reason alike (see
    /// [`crate::magic_link`]); the reason carries nothing of the code.
    #[error("magic link is invalid, expired or already used ({reason})")]
    InvalidMagicLink {
        /// Why, for logs and metrics.
        reason: InvalidLinkReason,
    },
    /// An existing Mattermost account matched the host user's email, and a
    /// link rule refused to give the host user a token for it.
    #[error(
        "host user {user} was not linked to the existing Mattermost account {mattermost_user_id} (same email): {reason}"
    )]
    LinkRefused {
        /// The host user.
        user: crate::ids::HostUserId,
        /// The account found by email.
        mattermost_user_id: crate::ids::UserId,
        /// The rule that held.
        reason: LinkRefusal,
    },
    /// The user's Mattermost account is deactivated (its stored token, which
    /// no longer works, was revoked and cleared).
    #[error(
        "the Mattermost account {mattermost_user_id} of host user {user} is deactivated; reactivate it in Mattermost (System Console > Users), or let the sync do it (DeactivatedPolicy::Reactivate)"
    )]
    UserDeactivated {
        /// The host user.
        user: crate::ids::HostUserId,
        /// Their Mattermost id.
        mattermost_user_id: crate::ids::UserId,
    },
}

impl Error {
    /// The Mattermost error answer inside this error, if it is one.
    pub fn api_error(&self) -> Option<&ApiError> {
        match self {
            Error::TokensDisabled(e)
            | Error::TokenExpiryPolicy { error: e, .. }
            | Error::Unauthorized(e)
            | Error::PermissionDenied(e)
            | Error::NotFound(e)
            | Error::AlreadyExists(e)
            | Error::Api(e)
            | Error::UserLimitReached { error: Some(e), .. }
            | Error::RateLimited { error: e, .. } => Some(e),
            _ => None,
        }
    }

    /// The HTTP status of the answer, when there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            Error::BadResponse { status, .. } => Some(*status),
            _ => self.api_error().map(|e| e.status),
        }
    }

    /// Whether the error is a 404.
    pub fn is_not_found(&self) -> bool {
        matches!(self, Error::NotFound(_))
    }

    /// Whether the server could not be reached or did not answer in time.
    pub fn is_transport(&self) -> bool {
        matches!(
            self,
            Error::Unreachable { .. } | Error::Timeout { .. } | Error::Transport { .. }
        )
    }

    /// `AlreadyExists` for a duplicate email.
    pub fn is_email_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists(e) if e.id.contains("email_exists"))
    }

    /// `AlreadyExists` for a duplicate username.
    pub fn is_username_exists(&self) -> bool {
        matches!(self, Error::AlreadyExists(e) if e.id.contains("username_exists"))
    }
}

fn user_limit_message(active: Option<u64>, limit: Option<u64>) -> String {
    let count = match (active, limit) {
        (Some(a), Some(l)) => format!(" (active {a} of {l})"),
        (_, Some(l)) => format!(" (limit {l})"),
        _ => String::new(),
    };
    format!(
        "the Mattermost server is at its limit of active users{count}: raise the limit, deactivate users who left, or license more seats"
    )
}

/// Whether `id` is one of the server's user-limit error ids
/// (`app/user.go`, `createUserOrGuest` and `UpdateActive`).
pub(crate) fn is_user_limit_id(id: &str) -> bool {
    id.ends_with("user_limits.exceeded") || id.ends_with("user_limit.exceeded")
}

/// A short, char-boundary-safe prefix of a body for error messages.
pub(crate) fn snippet(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let mut s: String = text.chars().take(SNIPPET_CHARS).collect();
    if text.chars().count() > SNIPPET_CHARS {
        s.push('…');
    }
    s
}

/// Which rule refused to link an existing Mattermost account to a host
/// user ([`Error::LinkRefused`]).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkRefusal {
    /// The link policy is `LinkPolicy::Never`.
    PolicyNever,
    /// The link policy asks for a verified email and the host did not say
    /// the email is verified.
    EmailNotVerified,
    /// The account has a role outside the allowed roles.
    Role(String),
    /// The account is a bot.
    Bot,
}

impl fmt::Display for LinkRefusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkRefusal::PolicyNever => f.write_str(
                "the link policy is Never (SyncOptions::link_policy); link it by hand or change the policy",
            ),
            LinkRefusal::EmailNotVerified => f.write_str(
                "the host has not verified the user's email (HostUser::email_verified), and the link policy asks for it",
            ),
            LinkRefusal::Role(role) => write!(
                f,
                "the account has the role {role:?}, which is not in SyncOptions::allowed_roles; list the account in SyncOptions::link_privileged to link it anyway"
            ),
            LinkRefusal::Bot => f.write_str(
                "the account is a bot; list it in SyncOptions::link_privileged to link it anyway",
            ),
        }
    }
}

/// Why a code was refused. Carries nothing of the code. Answer every reason
/// alike (the router does): telling them apart helps only an attacker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum InvalidLinkReason {
    /// Not of the shape the library issues (missing, wrong length or
    /// characters).
    Malformed,
    /// Well formed, but unknown, expired or already used. The code store
    /// does not say which: a store may delete a code when it is used.
    NotRedeemable,
}

impl fmt::Display for InvalidLinkReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            InvalidLinkReason::Malformed => "malformed code",
            InvalidLinkReason::NotRedeemable => "unknown, expired or used code",
        })
    }
}
