//! A stand-in Mattermost server, run in-process for the tests, examples and
//! benchmarks of `mattermost-tokens`. Not published.
//!
//! [`StandIn`] is a stateful HTTP server on `127.0.0.1` that answers the part
//! of the Mattermost REST API v4 that `mattermost-tokens` uses the way a
//! Mattermost 11 server does (`shared/mattermost-api.md` is the contract):
//! users, personal access tokens, teams, channels, `/system/ping` and
//! `/config/client`. It keeps the server's status codes and error ids
//! (`AppError` JSON bodies with a request id), answers 200 (not 201) on token
//! creation, shows a token's secret only in the create response, checks
//! permissions on the caller, sends `X-Request-Id` and `X-Version-Id` on
//! every answer, and turns away `?access_token=` in the query string.
//!
//! Switches, on the [`StandInBuilder`] and at run time on [`StandIn`]:
//! - token expiry ([`TokenExpiry`]): like an older server (`expires_at`
//!   ignored), optional (the default: honoured when given), or a lifetime
//!   policy that requires it; expired tokens are refused with a 401;
//! - personal access tokens on or off ([`StandIn::set_tokens_enabled`]): off,
//!   minting answers 501 and every call made with an existing personal
//!   access token answers 401, as on a server whose
//!   `EnableUserAccessTokens` is false;
//! - the rate limiter ([`RateLimit`]): a token bucket per client IP, so one
//!   backend shares one budget; `X-RateLimit-*` headers on every answer, a
//!   plain-text `429` with `Retry-After`;
//! - added latency per request;
//! - injected faults ([`FaultRule`]): an error status, a proxy's HTML error
//!   page or a dropped connection, on the n-th request to an endpoint or on
//!   a seeded random fraction, striking before the handler (nothing changed)
//!   or after it (the change is made, the answer lost).
//!
//! Every request is counted per route key (`"POST /api/v4/users"`,
//! `"POST /api/v4/users/{user_id}/tokens"`: the method, a space, the route
//! template), faulted and rate-limited attempts included; see
//! [`StandIn::requests`]. State can be read and arranged directly
//! ([`StandIn::users`], [`StandIn::create_user_directly`],
//! [`StandIn::mint_token_directly`], ...).
//!
//! At start the server holds one system admin (`sysadmin`) owning the admin
//! token, and one open team, `demo` (with `town-square` and `off-topic`),
//! whose admin it is.
//!
//! # What it deliberately does not model
//! - Logging in: there is no `/users/login`, no passwords are kept, and the
//!   only session is the admin token. That token behaves like a session or
//!   bot token: it keeps working when personal access tokens are switched
//!   off (an admin token that is itself a personal access token would not,
//!   on a real server).
//! - OAuth, bots, guests, SSO, MFA, email
//!   privacy settings, posts, websockets, plugins, licensing, HTTP/2, TLS.
//! - The permission system: only the `system_admin`, `system_user` and
//!   `system_user_access_token` roles matter, plus team and channel admin
//!   flags. On a stock server any channel member may add others to a
//!   channel; here that takes a system admin or the channel's admin.
//! - The e-mails a real server sends (one per minted token).
//! - A database: the state lives in memory. It outlives the server only
//!   when saved to a JSON file ([`StandIn::save_state`]) and loaded again
//!   at the next start ([`StandInBuilder::state_file`]); counts, switches
//!   other than `tokens_enabled`, the rate limiter and faults are not kept.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use mattermost_tokens_stand_in::StandIn;
//!
//! let server = StandIn::builder().rate_limit(10, 100).start().await?;
//! let me: serde_json::Value = reqwest::Client::new()
//!     .get(format!("{}/api/v4/users/me", server.url()))
//!     .bearer_auth(server.admin_token().expose_secret())
//!     .send()
//!     .await?
//!     .json()
//!     .await?;
//! assert!(me["roles"].as_str().unwrap_or("").contains("system_admin"));
//! # Ok(())
//! # }
//! ```
#![deny(missing_docs)]
#![forbid(unsafe_code)]

mod auth;
mod builder;
mod clock;
mod error;
mod faults;
mod model;
mod rate_limit;
mod records;
mod routes;
mod server;
mod state;

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use mattermost_tokens::ids::{AccessToken, ChannelId, TeamId, TokenId, UserId};
use tokio::task::AbortHandle;

pub use builder::{AdminCredential, StandInBuilder};
pub use error::AppError;
pub use faults::{Fault, FaultPoint, FaultRule};
pub use model::TokenExpiry;
pub use rate_limit::RateLimit;
pub use records::{
    ChannelSnapshot, MintedToken, NewUser, TeamSnapshot, TokenSnapshot, UserSnapshot,
};

use model::UserDraft;
use rate_limit::Limiter;
use server::Shared;

/// The version a stand-in reports unless told otherwise (in `X-Version-Id`
/// and the client config).
pub const DEFAULT_VERSION: &str = "11.0.0";

/// The route template under which requests to unknown paths are counted,
/// e.g. `"GET (unmatched)"`.
pub const UNMATCHED_ROUTE: &str = "(unmatched)";

/// The name of the team every stand-in starts with.
pub const DEFAULT_TEAM: &str = "demo";

/// A running stand-in Mattermost server.
///
/// A cheap handle: clones share the server. The server stops when
/// [`StandIn::shutdown`] is called or the last handle is dropped.
#[derive(Clone)]
pub struct StandIn {
    inner: Arc<Handle>,
}

struct Handle {
    shared: Arc<Shared>,
    addr: SocketAddr,
    url: String,
    admin_token: AccessToken,
    admin_user_id: UserId,
    default_team_id: TeamId,
    state_file: Option<PathBuf>,
    task: AbortHandle,
}

impl Drop for Handle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl fmt::Debug for StandIn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StandIn")
            .field("url", &self.inner.url)
            .field("admin_token", &"[REDACTED]")
            .field("admin_user_id", &self.inner.admin_user_id)
            .finish_non_exhaustive()
    }
}

impl StandIn {
    /// A builder with the defaults: `127.0.0.1` on a free port, a random
    /// admin token, tokens enabled, no rate limit, no latency, no faults.
    pub fn builder() -> StandInBuilder {
        StandInBuilder::default()
    }

    /// Starts a stand-in with the defaults.
    pub async fn start() -> io::Result<StandIn> {
        Self::builder().start().await
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    /// The base URL, e.g. `http://127.0.0.1:41234` (without `/api/v4`).
    pub fn url(&self) -> &str {
        &self.inner.url
    }

    /// The address the server listens on.
    pub fn addr(&self) -> SocketAddr {
        self.inner.addr
    }

    /// The admin token (a `system_admin` session).
    pub fn admin_token(&self) -> AccessToken {
        self.inner.admin_token.clone()
    }

    /// The admin user's id.
    pub fn admin_user_id(&self) -> UserId {
        self.inner.admin_user_id.clone()
    }

    /// The id of the [`DEFAULT_TEAM`].
    pub fn default_team_id(&self) -> TeamId {
        self.inner.default_team_id.clone()
    }

    /// The state file given to [`StandInBuilder::state_file`], if any.
    pub fn state_file(&self) -> Option<&Path> {
        self.inner.state_file.as_deref()
    }

    /// Writes the current state to the [state file](StandInBuilder::state_file),
    /// for the next [`start`](StandInBuilder::start) to pick up. Fails with
    /// [`io::ErrorKind::InvalidInput`] if none was configured; see
    /// [`save_state_to`](Self::save_state_to) for the rest.
    ///
    /// **The file holds secrets**: every personal access token's value and
    /// the admin token, in plain text.
    pub fn save_state(&self) -> io::Result<()> {
        let path = self.inner.state_file.as_deref().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                "no stand-in state file configured (StandInBuilder::state_file)",
            )
        })?;
        self.save_state_to(path)
    }

    /// Writes the current state to `path` as JSON: users, personal access
    /// tokens, teams, channels, memberships, `tokens_enabled`, the admin
    /// user and the admin token. Request counts, latency, the rate limiter
    /// and faults are not saved.
    ///
    /// The write is atomic: a new file next to `path` (mode `0600` on unix),
    /// flushed, then renamed over `path`, so a reader sees the old state or
    /// the new one, never half of one. The state is copied under the lock
    /// and written after it is released; requests are held up only for the
    /// copy.
    ///
    /// **The file holds secrets**: the value of every personal access token
    /// and of the admin token, in plain text, because a restored server must
    /// accept them again. It is a test or demo server's database; keep it
    /// private and out of version control. Its contents are never logged.
    pub fn save_state_to(&self, path: impl AsRef<Path>) -> io::Result<()> {
        let state = self.shared().data().to_state(
            &self.inner.admin_user_id,
            self.inner.admin_token.expose_secret(),
        );
        state::save(path.as_ref(), &state)
    }

    /// Stops accepting connections and ends the open ones. Dropping the last
    /// handle does the same.
    pub fn shutdown(&self) {
        self.inner.task.abort();
    }

    // ---- switches ----

    /// Sets the fixed delay added to every request.
    pub fn set_latency(&self, latency: Duration) {
        self.shared().control().latency = latency;
    }

    /// Switches the rate limiter on (with a fresh bucket) or off.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        self.shared().control().limiter = limit.map(Limiter::new);
    }

    /// The current rate limit, if on.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.shared()
            .control()
            .limiter
            .as_ref()
            .map(Limiter::settings)
    }

    /// Switches personal access tokens on or off
    /// (`ServiceSettings.EnableUserAccessTokens`).
    pub fn set_tokens_enabled(&self, enabled: bool) {
        self.shared().data().tokens_enabled = enabled;
    }

    /// Sets `ServiceSettings.ExperimentalStrictCSRFEnforcement` (off by
    /// default, as on a real server): on, a cookie session's write whose
    /// `X-CSRF-Token` does not match is refused even with
    /// `X-Requested-With: XMLHttpRequest`.
    pub fn set_strict_csrf(&self, strict: bool) {
        self.shared().data().strict_csrf = strict;
    }

    /// Caps active users (bots aside) at `limit`, as an unlicensed or
    /// seat-enforcing server does (`None`: no cap). At the cap, `POST /users`
    /// and reactivations answer 400 with the server's user-limit ids.
    pub fn set_user_limit(&self, limit: Option<u32>) {
        self.shared().data().user_limit = limit;
    }

    /// Active users counting against the limit (bots aside).
    pub fn active_user_count(&self) -> u64 {
        self.shared().data().active_user_count()
    }

    /// How the server treats `expires_at` on new tokens from now on.
    pub fn set_token_expiry(&self, expiry: TokenExpiry) {
        self.shared().data().token_expiry = expiry;
    }

    /// Whether personal access tokens are enabled.
    pub fn tokens_enabled(&self) -> bool {
        self.shared().data().tokens_enabled
    }

    /// Installs a fault rule.
    pub fn add_fault(&self, rule: FaultRule) {
        self.shared().control().faults.add(rule);
    }

    /// Removes every fault rule.
    pub fn clear_faults(&self) {
        self.shared().control().faults.clear();
    }

    /// How many faults were injected so far.
    pub fn faults_injected(&self) -> u64 {
        self.shared().faults_injected.load(Ordering::Relaxed)
    }

    // ---- counts ----

    /// Requests per route key, e.g. `"POST /api/v4/users/{user_id}/tokens"`
    /// (the method, a space, the route template; unknown paths count under
    /// `"{METHOD} (unmatched)"`). Every attempt counts, faulted and
    /// rate-limited ones included.
    pub fn requests(&self) -> BTreeMap<String, u64> {
        self.shared()
            .control()
            .counts
            .iter()
            .map(|(k, v)| (k.clone(), *v))
            .collect()
    }

    /// The count for one route key (0 if never requested).
    pub fn request_count(&self, route_key: &str) -> u64 {
        self.shared()
            .control()
            .counts
            .get(route_key)
            .copied()
            .unwrap_or(0)
    }

    /// All requests counted.
    pub fn total_requests(&self) -> u64 {
        self.shared().total.load(Ordering::Relaxed)
    }

    /// How many requests were answered 429.
    pub fn rate_limited_count(&self) -> u64 {
        self.shared().rate_limited.load(Ordering::Relaxed)
    }

    /// Zeroes the per-route counts, the total, the 429 count and the fault
    /// count.
    pub fn reset_counts(&self) {
        self.shared().control().counts.clear();
        self.shared().total.store(0, Ordering::Relaxed);
        self.shared().rate_limited.store(0, Ordering::Relaxed);
        self.shared().faults_injected.store(0, Ordering::Relaxed);
    }

    // ---- inspection ----

    /// Every user, in username order.
    pub fn users(&self) -> Vec<UserSnapshot> {
        self.shared()
            .data()
            .users_in_order()
            .map(UserSnapshot::from)
            .collect()
    }

    /// One user by id.
    pub fn user(&self, id: &UserId) -> Option<UserSnapshot> {
        self.shared().data().users.get(id).map(UserSnapshot::from)
    }

    /// One user by email (case-insensitive).
    pub fn user_by_email(&self, email: &str) -> Option<UserSnapshot> {
        self.shared()
            .data()
            .user_by_email(email)
            .map(UserSnapshot::from)
    }

    /// One user by username (case-insensitive).
    pub fn user_by_username(&self, username: &str) -> Option<UserSnapshot> {
        self.shared()
            .data()
            .user_by_username(username)
            .map(UserSnapshot::from)
    }

    /// Every existing (not revoked) token, disabled ones included, in
    /// creation order.
    pub fn tokens(&self) -> Vec<TokenSnapshot> {
        self.shared()
            .data()
            .all_tokens()
            .map(TokenSnapshot::from)
            .collect()
    }

    /// The tokens that would authenticate a request right now: not revoked,
    /// not disabled, owner active, personal access tokens enabled.
    pub fn live_tokens(&self) -> Vec<TokenSnapshot> {
        let data = self.shared().data();
        data.all_tokens()
            .filter(|t| data.token_is_live(&t.value))
            .map(TokenSnapshot::from)
            .collect()
    }

    /// A user's existing tokens (disabled ones included), in creation order.
    pub fn tokens_of(&self, user_id: &UserId) -> Vec<TokenSnapshot> {
        self.shared()
            .data()
            .tokens_of(user_id)
            .map(TokenSnapshot::from)
            .collect()
    }

    /// One token by id, if it exists.
    pub fn token(&self, id: &TokenId) -> Option<TokenSnapshot> {
        self.shared().data().tokens.get(id).map(TokenSnapshot::from)
    }

    /// Whether this token value would authenticate a request right now (the
    /// admin token included).
    pub fn token_is_live(&self, token: &str) -> bool {
        self.shared().data().authenticate(token).is_ok()
    }

    /// The id of the token with this secret value, if it exists.
    pub fn token_id_of(&self, token: &str) -> Option<TokenId> {
        self.shared().data().token_id_by_value(token).cloned()
    }

    /// A token's secret value. A real server cannot give it back; a test can
    /// use this to arrange a state (say, a stored token that has been
    /// revoked).
    pub fn token_value(&self, id: &TokenId) -> Option<AccessToken> {
        self.shared()
            .data()
            .tokens
            .get(id)
            .map(|t| AccessToken::new(t.value.clone()))
    }

    /// A team by name.
    pub fn team_by_name(&self, name: &str) -> Option<TeamSnapshot> {
        self.shared()
            .data()
            .team_by_name(name)
            .map(|t| TeamSnapshot {
                id: t.id.clone(),
                name: t.name.clone(),
                display_name: t.display_name.clone(),
                open: t.open,
            })
    }

    /// A channel by team and name.
    pub fn channel_by_name(&self, team_id: &TeamId, name: &str) -> Option<ChannelSnapshot> {
        self.shared()
            .data()
            .channel_by_name(team_id, name)
            .map(|c| ChannelSnapshot {
                id: c.id.clone(),
                team_id: c.team_id.clone(),
                name: c.name.clone(),
                display_name: c.display_name.clone(),
                open: c.is_open(),
                creator_id: c.creator_id.clone(),
            })
    }

    /// Whether the user is a member of the team.
    pub fn is_team_member(&self, team_id: &TeamId, user_id: &UserId) -> bool {
        self.shared().data().is_team_member(team_id, user_id)
    }

    /// Whether the user is a member of the channel.
    pub fn is_channel_member(&self, channel_id: &ChannelId, user_id: &UserId) -> bool {
        self.shared().data().is_channel_member(channel_id, user_id)
    }

    /// The members of a channel (in no particular order).
    pub fn channel_members(&self, channel_id: &ChannelId) -> Vec<UserId> {
        self.shared()
            .data()
            .channel_members
            .keys()
            .filter(|(c, _)| c == channel_id)
            .map(|(_, u)| u.clone())
            .collect()
    }

    // ---- arranging states ----

    /// Creates a user without going through HTTP: someone who already
    /// exists in Mattermost. The username and email rules and uniqueness
    /// apply; the password policy does not (no password is set).
    pub fn create_user_directly(&self, user: NewUser) -> Result<UserId, AppError> {
        let mut data = self.shared().data();
        let created = data.create_user(UserDraft {
            email: user.email,
            username: user.username,
            first_name: user.first_name,
            last_name: user.last_name,
            nickname: user.nickname,
            auth_service: user.auth_service,
            auth_data: user.auth_data,
            roles: user.roles,
            email_verified: user.email_verified,
            is_bot: user.is_bot,
            props: user
                .props
                .into_iter()
                .map(|(k, v)| (k, serde_json::Value::String(v)))
                .collect(),
            skip_password_policy: true,
            ..UserDraft::default()
        })?;
        Ok(created.id.clone())
    }

    /// Deletes a user for good (as `DELETE /users/{id}?permanent=true`):
    /// the account and its tokens are gone, and its email and username are
    /// free again. Returns `false` for an unknown user.
    pub fn delete_user_directly(&self, id: &UserId) -> bool {
        self.shared().data().delete_user(id)
    }

    /// Deactivates a user (as `DELETE /users/{id}`); their tokens then get
    /// 401. Returns `false` for an unknown user.
    pub fn deactivate_user(&self, id: &UserId) -> bool {
        self.shared().data().set_active(id, false).is_ok()
    }

    /// Reactivates a user; their tokens work again.
    pub fn reactivate_user(&self, id: &UserId) -> bool {
        self.shared().data().set_active(id, true).is_ok()
    }

    /// Replaces a user's system roles (as `PUT /users/{id}/roles`).
    pub fn set_roles_directly(&self, id: &UserId, roles: &str) -> Result<(), AppError> {
        self.shared().data().set_roles(id, roles)
    }

    /// Mints a token for a user without going through HTTP, whether or not
    /// tokens are enabled (so a test can arrange tokens and then switch the
    /// feature off).
    pub fn mint_token_directly(
        &self,
        user_id: &UserId,
        description: &str,
    ) -> Result<MintedToken, AppError> {
        let token = self
            .shared()
            .data()
            .mint_token(user_id, description, None, false)?;
        Ok(MintedToken {
            id: token.id,
            user_id: token.user_id,
            token: AccessToken::new(token.value),
        })
    }

    /// Revokes (deletes) a token. Returns `false` if it did not exist.
    pub fn revoke_token_directly(&self, id: &TokenId) -> bool {
        self.shared().data().revoke_token(id)
    }

    /// Disables or re-enables a token. Returns `false` if it does not exist.
    pub fn set_token_active(&self, id: &TokenId, active: bool) -> bool {
        self.shared().data().set_token_active(id, active)
    }

    /// Adds a team (or returns the id of the team with that name); the admin
    /// becomes its admin.
    pub fn add_team(&self, name: &str, display_name: &str, open: bool) -> TeamId {
        let mut data = self.shared().data();
        let id = data.add_team(name, display_name, open);
        data.add_team_member(&id, &self.inner.admin_user_id, true);
        id
    }

    /// Makes a user a team member. Returns `false` if the team or user is
    /// unknown.
    pub fn add_team_member_directly(&self, team_id: &TeamId, user_id: &UserId) -> bool {
        let mut data = self.shared().data();
        if !data.teams.contains_key(team_id) || !data.users.contains_key(user_id) {
            return false;
        }
        data.add_team_member(team_id, user_id, false);
        true
    }
}
