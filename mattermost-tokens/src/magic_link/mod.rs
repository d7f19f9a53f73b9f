//! Magic links: one click takes a signed-in user of the host app into
//! Mattermost, as themselves.
//!
//! # How a link works (one-time code, the default)
//! 1. The host app's own authenticated route calls [`MagicLinks::issue`] and
//!    answers with the [`MagicLink`] as JSON, the shape the Laravel
//!    integration returns: `{"url": "...", "expires_at": "2026-01-26T12:05:00Z"}`,
//!    and with its [`binding_cookie`](MagicLink::binding_cookie): the link
//!    works only in the browser holding that cookie (see `binding`).
//! 2. The URL points at the host app's redeem route with a single-use code
//!    (`?code=`). Opening it (GET) shows a confirm page
//!    ([`MagicLinks::confirm_page`]) and uses nothing up.
//! 3. The page's button POSTs the code back; [`MagicLinks::redeem`] consumes
//!    it and the answer sets Mattermost's session cookies for the domain the
//!    app and Mattermost share (`MMAUTHTOKEN` = the user's own personal
//!    access token, and `MMUSERID`; `MMCSRF` is removed, see below) and
//!    redirects (303) into Mattermost, which accepts a personal access token
//!    as `MMAUTHTOKEN`.
//!
//! With the `axum` feature, `MagicLinks::router` serves steps 2 and 3. The
//! route that issues links stays in the host app, behind its own login.
//!
//! # Why it is built this way
//! - **One-time codes, not the token in the URL.** The Laravel integration
//!   put the user's token into `{server}/login?token=...`. A stock
//!   Mattermost reads no `token` parameter on `/login` (and refuses
//!   `?access_token=` for such tokens), so that link logs nobody in; and it
//!   writes a credential that never expires into browser history, proxy and
//!   server logs, and `Referer` headers. A code is 256 random bits, works
//!   once, expires after a few minutes (5 by default) and is stored only as a
//!   SHA-256 hash ([`CodeHash`]): a leaked link, log or code table is worth
//!   little. The old mode is still there, opt-in and warned about:
//!   [`MagicLinkConfig::token_in_url`].
//! - **A confirm step.** Mail scanners, chat link previewers and browsers'
//!   prefetchers open links. If opening spent the code, the user would find
//!   it used up; worse, the scanner would have received the session cookies.
//!   GET only shows a form; the code is spent by the POST the user's click
//!   sends. The pages carry `Referrer-Policy: no-referrer` and
//!   `Cache-Control: no-store` ([`RESPONSE_HEADERS`]), so the code leaks
//!   neither to the next site nor into a cache, and they cannot be framed.
//! - **Never the admin token.** The [`TokenSelector`](crate::TokenSelector)
//!   may fall back to the admin token for a user without one; magic links
//!   never do, whatever the policy: the cookie would hand the user's browser
//!   a system administrator's session, a privilege escalation. A user
//!   without a stored token gets [`Error::NoUserToken`].
//! - **The cookie domain.** A browser sends a cookie only to the domain it
//!   was set for, so the host app can set Mattermost's cookies only when
//!   both live under one parent domain (`app.example.com` and
//!   `chat.example.com` share `example.com`; configure
//!   [`MagicLinkConfig::cookie_domain`]), or on the same host name.
//!   Everything under that domain receives the token cookie: do not share it
//!   with hosts you do not trust. This is checked when [`MagicLinks`] is
//!   built.
//! - **No `MMCSRF`.** Mattermost checks a cookie session's writes
//!   (`checkCSRFToken` in `server/channels/web/handlers.go`): a request
//!   other than `GET` passes when its `X-CSRF-Token` header equals the
//!   session's CSRF value, or else, unless
//!   `ServiceSettings.ExperimentalStrictCSRFEnforcement` is on, when it
//!   carries `X-Requested-With: XMLHttpRequest`. A session Mattermost makes
//!   from a personal access token has no CSRF value (an empty one), and its
//!   web app sends `X-CSRF-Token` only when an `MMCSRF` cookie holds one. So
//!   the redeem sets no `MMCSRF` and removes any it can reach: the web app
//!   then sends no header, which matches, and its writes work under strict
//!   enforcement too. Any value in `MMCSRF` could never match: it would leave
//!   writes to the `X-Requested-With` path, which strict enforcement closes.
//!   The flip side is Mattermost's, not the cookie's: a personal-access-token
//!   session has no CSRF secret at all, so a page on a host of the same site
//!   can make the browser post with it (see the README's security section).
//!   [`MagicLinks::check_server`] refuses the one setup where a stale
//!   `MMCSRF` would still break writes.
//! - **The official alternative.** Mattermost's own single sign-on (OpenID
//!   Connect, SAML) needs a paid Mattermost plan; these links work on every
//!   edition.
//!
//! Codes, tokens and the links that hold them are never logged, at any
//! level; log lines name the host user and the outcome only.

mod binding;
mod clock;
mod code_store;
mod config;
mod csrf;
mod logout;
mod page;
#[cfg(feature = "axum")]
mod router;

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, SecondsFormat, Utc};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde::ser::SerializeStruct;
use url::Url;

pub use binding::{BINDING_COOKIE, binding_from_cookie_header};
pub use clock::{Clock, ManualClock, SystemClock};
pub use code_store::{CodeHash, CodeStore, MemoryCodeStore, StoredCode};
pub use config::{
    DEFAULT_COOKIE_MAX_AGE, DEFAULT_TTL, DEFAULT_URL_TEMPLATE, LOGOUT_PATH, LinkMode, MAX_TTL,
    MagicLinkConfig, REDEEM_PATH,
};
/// The `cookie` crate, whose [`Cookie`](cookie::Cookie) type
/// [`Redemption::cookies`] returns.
pub use cookie;
pub use page::{ConfirmPage, INVALID_LINK_PAGE, PAGE_HEADERS, RESPONSE_HEADERS};

use crate::client::{MattermostClient, is_loopback_host};
use crate::error::Error;
use crate::ids::{AccessToken, HostUserId, UserId};
use crate::store::{StoreError, TokenStore};
use config::ModeConfig;

/// The name of Mattermost's session cookie; it holds the user's token.
pub const AUTH_COOKIE: &str = "MMAUTHTOKEN";
/// The name of the cookie holding the Mattermost user id (read by the web
/// app).
pub const USER_ID_COOKIE: &str = "MMUSERID";
/// The name of the cookie from which Mattermost's web app takes the
/// `X-CSRF-Token` header it sends. A redeem removes it (see the module
/// docs: a session from a personal access token matches only no header).
pub const CSRF_COOKIE: &str = "MMCSRF";

/// Random bytes in a code: 256 bits.
const CODE_BYTES: usize = 32;
/// Length of a code in base64url without padding.
const CODE_CHARS: usize = 43;

pub use crate::error::InvalidLinkReason;

/// A link that takes one user into Mattermost, and when it stops working.
///
/// Serializes to the JSON the Laravel integration answered with:
/// `{"url": "...", "expires_at": "2026-01-26T12:05:00Z"}` (RFC 3339, UTC,
/// whole seconds). The URL holds a code or a token: `Debug` shows it with
/// that part replaced by `REDACTED`.
#[derive(Clone)]
pub struct MagicLink {
    url: SecretString,
    redacted_url: String,
    expires_at: DateTime<Utc>,
    binding_cookie: Option<SecretString>,
}

impl MagicLink {
    /// The URL to open. It is a credential until it expires (in
    /// token-in-URL mode, for good): hand it to the user, do not log it.
    pub fn url(&self) -> &str {
        self.url.expose_secret()
    }

    /// The URL with its code or token replaced by `REDACTED`, for logs.
    pub fn redacted_url(&self) -> &str {
        &self.redacted_url
    }

    /// The `Set-Cookie` value binding the link to the browser that asked
    /// for it (`None` when links are not bound, or in token-in-URL mode).
    /// Send it with the answer that hands the link to that browser (the
    /// host's own route, called by its front end): without the cookie the
    /// link works nowhere. It is a secret, like the link.
    pub fn binding_cookie(&self) -> Option<&str> {
        self.binding_cookie.as_ref().map(|c| c.expose_secret())
    }

    /// When the link stops working (whole seconds).
    pub fn expires_at(&self) -> DateTime<Utc> {
        self.expires_at
    }
}

impl fmt::Debug for MagicLink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MagicLink")
            .field("url", &self.redacted_url)
            .field("expires_at", &rfc3339(self.expires_at))
            .finish()
    }
}

impl Serialize for MagicLink {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut st = s.serialize_struct("MagicLink", 2)?;
        st.serialize_field("url", self.url())?;
        st.serialize_field("expires_at", &rfc3339(self.expires_at))?;
        st.end()
    }
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A redeemed code: the cookies to set and where to send the browser.
///
/// Answer with `303 See Other` to [`redirect_url`](Self::redirect_url), one
/// `Set-Cookie` header per entry of
/// [`set_cookie_headers`](Self::set_cookie_headers), and the
/// [`RESPONSE_HEADERS`]. The cookie values hold the user's token: `Debug`
/// shows the cookie names only.
pub struct Redemption {
    user: HostUserId,
    mattermost_user_id: UserId,
    cookies: Vec<cookie::Cookie<'static>>,
    /// Removes the used link's binding cookie (bound links).
    binding_removal: Option<String>,
    redirect_url: Url,
}

impl fmt::Debug for Redemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Redemption")
            .field("user", &self.user)
            .field("mattermost_user_id", &self.mattermost_user_id)
            .field(
                "cookies",
                &self.cookies.iter().map(|c| c.name()).collect::<Vec<_>>(),
            )
            .field("redirect_url", &self.redirect_url.as_str())
            .finish()
    }
}

impl Redemption {
    /// The host user the code was issued for.
    pub fn user(&self) -> &HostUserId {
        &self.user
    }

    /// Their Mattermost user id.
    pub fn mattermost_user_id(&self) -> &UserId {
        &self.mattermost_user_id
    }

    /// The cookies: `MMAUTHTOKEN` (the token; `HttpOnly`) and `MMUSERID`
    /// (readable by Mattermost's web app), each `Path=/`, `SameSite=Lax`,
    /// `Secure` unless turned off, and `Domain` when a cookie domain is
    /// configured; then the removal of `MMCSRF` with the same attributes.
    pub fn cookies(&self) -> &[cookie::Cookie<'static>] {
        &self.cookies
    }

    /// The cookies as `Set-Cookie` header values (they hold the token),
    /// and, for a bound link, the removal of its binding cookie.
    pub fn set_cookie_headers(&self) -> Vec<String> {
        let mut out: Vec<String> = self.cookies.iter().map(|c| c.to_string()).collect();
        out.extend(self.binding_removal.clone());
        out
    }

    /// Where to redirect the browser.
    pub fn redirect_url(&self) -> &Url {
        &self.redirect_url
    }
}

struct CodeMode {
    /// Links are bound to the browser that asked ([`binding`]).
    bind: bool,
    redeem_url: Url,
    /// The redeem URL's path and query, the confirm form's target.
    form_action: String,
    cookie_domain: Option<String>,
    redirect_url: Url,
    secure: bool,
    max_age: Duration,
}

enum Mode {
    OneTimeCode(Box<CodeMode>),
    TokenInUrl { template: String },
}

struct Inner {
    client: MattermostClient,
    store: Arc<dyn TokenStore>,
    codes: Arc<dyn CodeStore>,
    ttl: chrono::Duration,
    clock: Arc<dyn Clock>,
    mode: Mode,
    check_token: bool,
}

/// Issues and redeems magic links (see the [module docs](self) for the flow
/// and the reasoning). Cheap to clone.
///
/// ```no_run
/// # async fn demo(client: mattermost_tokens::MattermostClient,
/// #               store: std::sync::Arc<dyn mattermost_tokens::TokenStore>) -> Result<(), mattermost_tokens::Error> {
/// use std::sync::Arc;
/// use mattermost_tokens::HostUserId;
/// use mattermost_tokens::magic_link::{MagicLinkConfig, MagicLinks, MemoryCodeStore};
///
/// let links = MagicLinks::new(
///     client,
///     store,
///     Arc::new(MemoryCodeStore::new()),
///     MagicLinkConfig::one_time_code("https://app.example.com/mattermost/magic-link/redeem")
///         .cookie_domain("example.com"),
/// )?;
/// // In the host's authenticated route:
/// let link = links.issue(&HostUserId::Int(42)).await?;
/// let body = serde_json::to_string(&link).unwrap(); // {"url":"https://app.example.com/...","expires_at":"..."}
/// # let _ = body;
/// // With the `axum` feature: app.merge(links.router())
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct MagicLinks {
    inner: Arc<Inner>,
}

impl fmt::Debug for MagicLinks {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("MagicLinks");
        d.field("mode", &self.mode())
            .field("ttl_secs", &self.inner.ttl.num_seconds());
        if let Mode::OneTimeCode(c) = &self.inner.mode {
            d.field("redeem_url", &c.redeem_url.as_str())
                .field("cookie_domain", &c.cookie_domain)
                .field("redirect_url", &c.redirect_url.as_str())
                .field("secure_cookies", &c.secure);
        }
        d.field("store", &self.inner.store)
            .field("codes", &self.inner.codes)
            .finish()
    }
}

fn config_error(message: impl fmt::Display) -> Error {
    Error::InvalidConfig(format!("magic links: {message}"))
}

fn invalid(reason: InvalidLinkReason) -> Error {
    Error::InvalidMagicLink { reason }
}

/// Whether a cookie for `domain` reaches `host`.
fn domain_matches(host: &str, domain: &str) -> bool {
    host == domain
        || host
            .strip_suffix(domain)
            .is_some_and(|rest| rest.ends_with('.'))
}

fn parse_http_url(what: &str, s: &str) -> Result<Url, Error> {
    let url = Url::parse(s).map_err(|e| config_error(format!("{what} {s:?} is not a URL: {e}")))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(config_error(format!(
            "{what} {s:?} must be an absolute http(s) URL"
        )));
    }
    if url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(config_error(format!(
            "{what} {s:?} must not carry a fragment or credentials"
        )));
    }
    Ok(url)
}

/// Whole seconds: the JSON shows whole seconds, and the stored expiry must be
/// the one shown.
fn whole_seconds(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp(t.timestamp(), 0).unwrap_or(t)
}

fn new_code() -> SecretString {
    let bytes: [u8; CODE_BYTES] = rand::random();
    SecretString::from(URL_SAFE_NO_PAD.encode(bytes))
}

/// The hash of a code of the issued shape, or `None` for anything else.
/// The stored hash a well-formed code stands for (with the browser's
/// binding, for bound links): a malformed code, or a bound link without
/// its binding (it cannot be redeemed here), is refused.
fn parse_code(
    mode: &CodeMode,
    code: &str,
    binding: Option<&str>,
) -> Result<CodeHash, InvalidLinkReason> {
    if !well_formed(code) {
        return Err(InvalidLinkReason::Malformed);
    }
    binding::stored_hash(mode, code, binding).ok_or(InvalidLinkReason::NotRedeemable)
}

/// Whether `code` has the shape of the codes this module issues.
fn well_formed(code: &str) -> bool {
    code.len() == CODE_CHARS
        && URL_SAFE_NO_PAD
            .decode(code)
            .is_ok_and(|b| b.len() == CODE_BYTES)
}

fn with_code(base: &Url, code: &str) -> Url {
    let mut url = base.clone();
    url.query_pairs_mut().append_pair("code", code);
    url
}

fn fill_template(template: &str, server: &Url, token: &str) -> String {
    let server = server.as_str().trim_end_matches('/');
    let token: String = url::form_urlencoded::byte_serialize(token.as_bytes()).collect();
    template
        .replace("{server}", server)
        .replace("{token}", &token)
}

impl MagicLinks {
    /// Magic links for the users of `store`, on the Mattermost server of
    /// `client`, keeping one-time codes in `codes`. Checks the
    /// configuration: the redeem URL, the cookie domain against the app's and
    /// Mattermost's host names, `Secure` cookies against `http://` URLs, the
    /// lifetime, the token-in-URL template.
    pub fn new(
        client: MattermostClient,
        store: Arc<dyn TokenStore>,
        codes: Arc<dyn CodeStore>,
        config: MagicLinkConfig,
    ) -> Result<Self, Error> {
        if config.ttl < Duration::from_secs(1) || config.ttl > MAX_TTL {
            return Err(config_error(format!(
                "link lifetime {:?} must be between 1 second and {} hours",
                config.ttl,
                MAX_TTL.as_secs() / 3600
            )));
        }
        let ttl = chrono::Duration::seconds(config.ttl.as_secs() as i64);
        let server = client.server_url().clone();
        let mode = match &config.mode {
            ModeConfig::OneTimeCode { redeem_url } => Mode::OneTimeCode(Box::new(
                Self::check_code_mode(&config, &server, redeem_url)?,
            )),
            ModeConfig::TokenInUrl { template } => {
                if !template.contains("{token}") {
                    return Err(config_error(format!(
                        "URL template {template:?} has no {{token}} placeholder"
                    )));
                }
                parse_http_url("URL template", &fill_template(template, &server, "x"))?;
                tracing::warn!(
                    "magic links put each user's personal access token into the URL \
                     (token-in-URL mode): a stock Mattermost ignores `token` on /login, and \
                     the token, which never expires, ends up in browser history, proxy logs \
                     and Referer headers; prefer the one-time code mode"
                );
                Mode::TokenInUrl {
                    template: template.clone(),
                }
            }
        };
        Ok(MagicLinks {
            inner: Arc::new(Inner {
                client,
                store,
                codes,
                ttl,
                clock: config.clock,
                mode,
                check_token: config.check_token,
            }),
        })
    }

    fn check_code_mode(
        config: &MagicLinkConfig,
        server: &Url,
        redeem_url: &str,
    ) -> Result<CodeMode, Error> {
        let redeem = parse_http_url("redeem URL", redeem_url)?;
        if redeem.query_pairs().any(|(k, _)| k == "code") {
            return Err(config_error(
                "the redeem URL must not have a `code` parameter",
            ));
        }
        let redirect = match &config.redirect_url {
            Some(u) => parse_http_url("redirect URL", u)?,
            None => server.clone(),
        };
        // The cookies must reach the Mattermost the browser is sent to,
        // which may be another URL than the one this process calls (an
        // internal address behind the public one).
        let app_host = redeem.host_str().unwrap_or_default().to_ascii_lowercase();
        let mm_host = redirect.host_str().unwrap_or_default().to_ascii_lowercase();
        let cookie_domain = match &config.cookie_domain {
            Some(d) => {
                let d = d.trim().trim_start_matches('.').to_ascii_lowercase();
                if d.is_empty() || d.contains(['/', ':', ' ', ';', ',']) {
                    return Err(config_error(format!(
                        "cookie domain {d:?} is not a domain name"
                    )));
                }
                for (what, host) in [("app", &app_host), ("Mattermost", &mm_host)] {
                    if !domain_matches(host, &d) {
                        return Err(config_error(format!(
                            "the {what} host {host:?} is not under the cookie domain {d:?}; \
                             the app and Mattermost must share a parent domain for the \
                             session cookies to reach Mattermost"
                        )));
                    }
                }
                Some(d)
            }
            None if app_host == mm_host => None,
            None => {
                return Err(config_error(format!(
                    "the app ({app_host}) and Mattermost ({mm_host}) have different host names: \
                     configure the parent domain they share as the cookie domain"
                )));
            }
        };
        for (what, url) in [("redeem URL", &redeem), ("Mattermost URL", &redirect)] {
            let host = url.host_str().unwrap_or_default();
            if config.secure_cookies && url.scheme() == "http" && !is_loopback_host(host) {
                return Err(config_error(format!(
                    "the {what} is http://, where browsers neither set nor send Secure \
                     cookies; use https, or insecure_cookies() for a local demo"
                )));
            }
            if !config.secure_cookies && !is_loopback_host(host) {
                // The session cookie carries the user's token.
                return Err(config_error(format!(
                    "insecure_cookies() is for a local demo only, and the {what} is on {host}, \
                     not this machine: serve the app and Mattermost over https"
                )));
            }
        }
        if !config.secure_cookies {
            tracing::warn!(
                "magic-link cookies are set without the Secure attribute: the Mattermost \
                 session cookie (the user's token) may travel unencrypted; only for local demos"
            );
        }
        let mut form_action = redeem.path().to_owned();
        if let Some(q) = redeem.query() {
            form_action.push('?');
            form_action.push_str(q);
        }
        Ok(CodeMode {
            bind: config.bind_browser,
            redeem_url: redeem,
            form_action,
            cookie_domain,
            redirect_url: redirect,
            secure: config.secure_cookies,
            max_age: config.cookie_max_age,
        })
    }

    /// The mode links are issued in.
    pub fn mode(&self) -> LinkMode {
        match self.inner.mode {
            Mode::OneTimeCode(_) => LinkMode::OneTimeCode,
            Mode::TokenInUrl { .. } => LinkMode::TokenInUrl,
        }
    }

    /// How long a link works.
    pub fn ttl(&self) -> Duration {
        Duration::from_secs(self.inner.ttl.num_seconds() as u64)
    }

    /// The redeem route's URL (one-time-code mode only).
    pub fn redeem_url(&self) -> Option<&Url> {
        match &self.inner.mode {
            Mode::OneTimeCode(c) => Some(&c.redeem_url),
            Mode::TokenInUrl { .. } => None,
        }
    }

    /// A link for `user`, valid for the configured lifetime.
    ///
    /// Errors: [`Error::NotSynced`] when the user has no Mattermost id
    /// stored, [`Error::NoUserToken`] when they have no token (never the
    /// admin token instead: see the [module docs](self)),
    /// [`Error::UserTokenExpired`] when it has expired, a
    /// [`StoreError`] (such as [`StoreError::UnknownUser`]) from the stores.
    pub async fn issue(&self, user: &HostUserId) -> Result<MagicLink, Error> {
        let result = self.issue_inner(user).await;
        match &result {
            Ok(link) => tracing::info!(
                host_user = %user, mode = ?self.mode(), expires_at = %rfc3339(link.expires_at),
                "issued magic link"
            ),
            Err(e) => tracing::info!(host_user = %user, error = %e, "magic link not issued"),
        }
        result
    }

    async fn issue_inner(&self, user: &HostUserId) -> Result<MagicLink, Error> {
        let (_, token) = self.credentials(user).await?;
        let expires_at = whole_seconds(self.inner.clock.now()) + self.inner.ttl;
        match &self.inner.mode {
            Mode::OneTimeCode(c) => {
                drop(token);
                let code = new_code();
                let binding = c.bind.then(binding::new_binding);
                let b = binding.as_ref().map(|b| b.expose_secret());
                let hash = binding::stored_hash(c, code.expose_secret(), b)
                    .expect("a bound link has its binding");
                self.inner.codes.insert(&hash, user, expires_at).await?;
                let ttl = self.inner.ttl.num_seconds();
                Ok(MagicLink {
                    url: with_code(&c.redeem_url, code.expose_secret())
                        .to_string()
                        .into(),
                    redacted_url: with_code(&c.redeem_url, "REDACTED").to_string(),
                    expires_at,
                    binding_cookie: b.map(|b| binding::binding_cookie(c, b, ttl).into()),
                })
            }
            Mode::TokenInUrl { template } => {
                let server = self.inner.client.server_url();
                Ok(MagicLink {
                    url: fill_template(template, server, token.expose_secret()).into(),
                    redacted_url: fill_template(template, server, "REDACTED"),
                    expires_at,
                    binding_cookie: None,
                })
            }
        }
    }

    /// The user's Mattermost id and own token; never the admin's.
    async fn credentials(&self, user: &HostUserId) -> Result<(UserId, AccessToken), Error> {
        let record = self
            .inner
            .store
            .get(user)
            .await?
            .ok_or_else(|| StoreError::UnknownUser(user.clone()))?;
        let expired = record.expires_within(self.inner.clock.now().timestamp_millis(), 0);
        let mm = record
            .mattermost_user_id
            .ok_or_else(|| Error::NotSynced { user: user.clone() })?;
        let token = record
            .token
            .ok_or_else(|| Error::NoUserToken { user: user.clone() })?;
        if expired {
            // Signing in with it would give a session Mattermost refuses.
            return Err(Error::UserTokenExpired { user: user.clone() });
        }
        Ok((mm, token))
    }

    /// `GET /users/me` with the user's token; a dead token is forgotten.
    async fn check_token(
        &self,
        user: &HostUserId,
        mm: &UserId,
        token: &AccessToken,
    ) -> Result<(), Error> {
        let client = &self.inner.client;
        match client.as_user(token.clone()).me().await {
            Ok(me) if me.id == *mm => Ok(()),
            Ok(_) => Err(Error::InvalidHostUser {
                user: user.clone(),
                reason: "the stored token belongs to another Mattermost account than the linked one; run a sync".into(),
            }),
            Err(Error::Unauthorized(e)) => {
                let store = self.inner.store.as_ref();
                if crate::refused::forget_if_dead(client, store, user, token).await? {
                    Err(Error::NoUserToken { user: user.clone() })
                } else {
                    Err(Error::Unauthorized(e))
                }
            }
            Err(e) => Err(e),
        }
    }

    fn code_mode(&self) -> Result<&CodeMode, Error> {
        match &self.inner.mode {
            Mode::OneTimeCode(c) => Ok(c),
            Mode::TokenInUrl { .. } => Err(config_error(
                "links are issued in token-in-URL mode; there are no codes to redeem",
            )),
        }
    }

    /// The confirm page for `code` (answer to the GET of the link). Checks
    /// the code without using it up: mail scanners and link previewers open
    /// links too. `binding` is the request's [`BINDING_COOKIE`] (see
    /// [`binding_from_cookie_header`]); a bound link without it, or with
    /// another browser's, is an invalid code. An invalid code gives
    /// [`Error::InvalidMagicLink`].
    pub async fn confirm_page(
        &self,
        code: &str,
        binding: Option<&str>,
    ) -> Result<ConfirmPage, Error> {
        let mode = self.code_mode()?;
        let hash = parse_code(mode, code, binding).map_err(|reason| {
            tracing::info!(%reason, "magic link confirm refused");
            invalid(reason)
        })?;
        if !self.inner.codes.peek(&hash, self.inner.clock.now()).await? {
            tracing::info!(reason = %InvalidLinkReason::NotRedeemable, "magic link confirm refused");
            return Err(invalid(InvalidLinkReason::NotRedeemable));
        }
        tracing::debug!("magic link confirm page served");
        Ok(ConfirmPage::new(&mode.form_action, code))
    }

    /// Redeems `code` (answer to the POST of the confirm form), with the
    /// request's [`BINDING_COOKIE`] as `binding`: uses it up, atomically
    /// and once, and returns the cookies and redirect that sign the user in
    /// to Mattermost (and the removal of the binding cookie). Serve the
    /// answer with [`RESPONSE_HEADERS`].
    ///
    /// Errors: [`Error::InvalidMagicLink`] for a malformed, unknown, expired
    /// or used code; [`Error::NotSynced`], [`Error::NoUserToken`] or
    /// [`Error::UserTokenExpired`] when the user's record lost its
    /// Mattermost id or token (or the token expired) since the link was
    /// issued (the code is used up all the same).
    pub async fn redeem(&self, code: &str, binding: Option<&str>) -> Result<Redemption, Error> {
        let mode = self.code_mode()?;
        let hash = parse_code(mode, code, binding).map_err(|reason| {
            tracing::info!(%reason, "magic link refused");
            invalid(reason)
        })?;
        let now = self.inner.clock.now();
        let Some(user) = self.inner.codes.consume(&hash, now).await? else {
            tracing::info!(reason = %InvalidLinkReason::NotRedeemable, "magic link refused");
            return Err(invalid(InvalidLinkReason::NotRedeemable));
        };
        let (mm, token) = self.credentials(&user).await.inspect_err(|e| {
            tracing::warn!(host_user = %user, error = %e, "magic link valid but the user cannot be signed in");
        })?;
        if self.inner.check_token {
            self.check_token(&user, &mm, &token).await?;
        }
        let cookies = vec![
            mode.cookie(AUTH_COOKIE, token.expose_secret().to_owned(), true),
            mode.cookie(USER_ID_COOKIE, mm.as_str().to_owned(), false),
            mode.removal(CSRF_COOKIE),
        ];
        tracing::info!(host_user = %user, mattermost_user = %mm, "magic link redeemed");
        Ok(Redemption {
            user,
            mattermost_user_id: mm,
            cookies,
            binding_removal: mode.bind.then(|| binding::binding_removal(mode)),
            redirect_url: mode.redirect_url.clone(),
        })
    }

    /// Deletes expired codes from the code store; returns how many. Run it
    /// now and then (a store keeps expired codes until purged).
    pub async fn purge_expired(&self) -> Result<u64, Error> {
        Ok(self
            .inner
            .codes
            .purge_expired(self.inner.clock.now())
            .await?)
    }
}

impl CodeMode {
    fn cookie(
        &self,
        name: &'static str,
        value: String,
        http_only: bool,
    ) -> cookie::Cookie<'static> {
        let mut b = cookie::Cookie::build((name, value))
            .path("/")
            .secure(self.secure)
            .http_only(http_only)
            .same_site(cookie::SameSite::Lax);
        if let Some(d) = &self.cookie_domain {
            b = b.domain(d.clone());
        }
        b = b.max_age(cookie::time::Duration::seconds(
            i64::try_from(self.max_age.as_secs()).unwrap_or(i64::MAX),
        ));
        b.build()
    }

    /// The removal of cookie `name` as this mode sets cookies (a browser
    /// matches a removal on name, domain and path).
    fn removal(&self, name: &'static str) -> cookie::Cookie<'static> {
        let mut c = self.cookie(name, String::new(), name == AUTH_COOKIE);
        c.make_removal();
        c
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_have_the_issued_shape() {
        let c = new_code();
        assert_eq!(c.expose_secret().len(), CODE_CHARS);
        assert!(well_formed(c.expose_secret()));
        assert!(!well_formed(&c.expose_secret()[1..]));
        assert!(!well_formed(&format!("{}=", &c.expose_secret()[1..])));
        assert!(!well_formed(""));
    }

    #[test]
    fn domains() {
        assert!(domain_matches("app.example.com", "example.com"));
        assert!(domain_matches("example.com", "example.com"));
        assert!(!domain_matches("badexample.com", "example.com"));
        assert!(!domain_matches("example.org", "example.com"));
    }
}
