//! [`MagicLinkConfig`]: how magic links are built and redeemed.

use std::sync::Arc;
use std::time::Duration;

use super::clock::{Clock, SystemClock};

/// How long a link works unless configured otherwise: 5 minutes.
pub const DEFAULT_TTL: Duration = Duration::from_secs(5 * 60);

/// The longest lifetime [`MagicLinkConfig::ttl`] accepts: one day. A
/// one-time login code is meant to be used right away.
pub const MAX_TTL: Duration = Duration::from_secs(24 * 60 * 60);

/// How long the browser keeps the Mattermost cookies unless configured
/// otherwise ([`MagicLinkConfig::cookie_max_age`]): 12 hours. The session
/// cookie holds the user's personal access token, which does not expire by
/// itself; on a shared computer a short life limits who comes after.
pub const DEFAULT_COOKIE_MAX_AGE: Duration = Duration::from_secs(12 * 60 * 60);

/// The path of the logout route served by `MagicLinks::router` (feature
/// `axum`): it expires the cookies a redeem set (see
/// `MagicLinks::logout_cookies`).
pub const LOGOUT_PATH: &str = "/mattermost/magic-link/logout";

/// The path of the redeem route served by
/// `MagicLinks::router` (feature `axum`): configure the redeem
/// URL as the app's origin followed by this path.
pub const REDEEM_PATH: &str = "/mattermost/magic-link/redeem";

/// The URL template of the token-in-URL mode, as the Laravel integration
/// built it.
pub const DEFAULT_URL_TEMPLATE: &str = "{server}/login?token={token}";

/// Which kind of link [`MagicLinks::issue`](super::MagicLinks::issue) builds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkMode {
    /// A single-use code pointing at the host app's redeem route (the
    /// default).
    OneTimeCode,
    /// The user's token in a Mattermost URL (opt-in; see
    /// [`MagicLinkConfig::token_in_url`]).
    TokenInUrl,
}

#[derive(Clone, Debug)]
pub(super) enum ModeConfig {
    OneTimeCode { redeem_url: String },
    TokenInUrl { template: String },
}

/// How [`MagicLinks`](super::MagicLinks) builds and redeems links. Checked
/// when the `MagicLinks` is built.
///
/// ```
/// use mattermost_tokens::magic_link::MagicLinkConfig;
///
/// let config = MagicLinkConfig::one_time_code("https://app.example.com/mattermost/magic-link/redeem")
///     .cookie_domain("example.com")
///     .ttl(std::time::Duration::from_secs(120));
/// # let _ = config;
/// ```
#[derive(Clone, Debug)]
pub struct MagicLinkConfig {
    pub(super) mode: ModeConfig,
    pub(super) ttl: Duration,
    pub(super) cookie_domain: Option<String>,
    pub(super) redirect_url: Option<String>,
    pub(super) secure_cookies: bool,
    pub(super) cookie_max_age: Duration,
    pub(super) check_token: bool,
    pub(super) bind_browser: bool,
    pub(super) clock: Arc<dyn Clock>,
}

impl MagicLinkConfig {
    fn with_mode(mode: ModeConfig) -> Self {
        MagicLinkConfig {
            mode,
            ttl: DEFAULT_TTL,
            cookie_domain: None,
            redirect_url: None,
            secure_cookies: true,
            cookie_max_age: DEFAULT_COOKIE_MAX_AGE,
            check_token: false,
            bind_browser: true,
            clock: Arc::new(SystemClock),
        }
    }

    /// One-time codes (the default mode): links point at `redeem_url`, the
    /// host app's redeem route (such as
    /// `https://app.example.com/mattermost/magic-link/redeem`, see
    /// [`REDEEM_PATH`]), with the code in the `code` query parameter.
    pub fn one_time_code(redeem_url: impl Into<String>) -> Self {
        Self::with_mode(ModeConfig::OneTimeCode {
            redeem_url: redeem_url.into(),
        })
    }

    /// The Laravel integration's links: `{server}/login?token={token}` with
    /// the user's personal access token in the URL. Opt-in, and warned about
    /// once when the `MagicLinks` is built: a stock Mattermost ignores
    /// `token` on `/login`, and the never-expiring token lands in browser
    /// history, proxy logs and `Referer` headers. Only for a Mattermost
    /// behind a proxy or plugin that consumes the parameter.
    pub fn token_in_url() -> Self {
        Self::with_mode(ModeConfig::TokenInUrl {
            template: DEFAULT_URL_TEMPLATE.to_owned(),
        })
    }

    /// The URL template of the token-in-URL mode, with `{server}` (the
    /// Mattermost URL without trailing `/`) and `{token}` (the user's token,
    /// URL-encoded) placeholders. Ignored in one-time-code mode.
    pub fn url_template(mut self, template: impl Into<String>) -> Self {
        if let ModeConfig::TokenInUrl { template: t } = &mut self.mode {
            *t = template.into();
        }
        self
    }

    /// How long a link works (default 5 minutes, at most [`MAX_TTL`]). Whole
    /// seconds count. In token-in-URL mode it only sets the `expires_at`
    /// reported: the token in the URL does not expire.
    pub fn ttl(mut self, ttl: Duration) -> Self {
        self.ttl = ttl;
        self
    }

    /// The domain the Mattermost cookies are set for: the parent domain the
    /// host app and Mattermost share (`example.com` for
    /// `app.example.com` and `chat.example.com`). Every host under it
    /// receives the cookies. Without it the cookies are host-only, which
    /// works only when the app and Mattermost have the same host name
    /// (different ports are fine).
    pub fn cookie_domain(mut self, domain: impl Into<String>) -> Self {
        self.cookie_domain = Some(domain.into());
        self
    }

    /// Where a redeemed link sends the browser (default: the Mattermost
    /// server URL), such as a team's URL.
    pub fn redirect_url(mut self, url: impl Into<String>) -> Self {
        self.redirect_url = Some(url.into());
        self
    }

    /// Sets cookies without the `Secure` attribute, for demos over plain
    /// `http://` on a development machine. Logged as a warning when the
    /// `MagicLinks` is built: without `Secure` the token cookie travels over
    /// unencrypted connections.
    pub fn insecure_cookies(mut self) -> Self {
        self.secure_cookies = false;
        self
    }

    /// How long the browser keeps the Mattermost cookies (`Max-Age`;
    /// default [`DEFAULT_COOKIE_MAX_AGE`], 12 hours). The session cookie
    /// holds the user's token: keep it short, and offer the logout route
    /// (`MagicLinks::logout_cookies`).
    pub fn cookie_max_age(mut self, max_age: Duration) -> Self {
        self.cookie_max_age = max_age;
        self
    }

    /// Bind each link to the browser that asked for it (on by default): the
    /// host sends [`MagicLink::binding_cookie`](super::MagicLink::binding_cookie)
    /// with the answer that hands out the link, and only a browser holding
    /// that cookie can use the link, so a forwarded or logged link signs in
    /// nobody. Turn it off only for clients that cannot keep a cookie between
    /// asking for a link and opening it (a native app that opens links in
    /// the system browser), accepting that whoever holds the link can use
    /// it until it expires.
    pub fn browser_binding(mut self, on: bool) -> Self {
        self.bind_browser = on;
        self
    }

    /// Check the user's token with Mattermost (`GET /users/me`, one request)
    /// before signing them in. A token the server refused and reports dead
    /// (revoked, disabled, expired) is cleared from the store, so the next
    /// sync or reconcile mints a new one, and the redeem fails with
    /// [`Error::NoUserToken`](crate::Error::NoUserToken) instead of setting
    /// a cookie Mattermost would refuse. Off by default.
    pub fn check_token(mut self, on: bool) -> Self {
        self.check_token = on;
        self
    }

    /// The clock (default [`SystemClock`]); tests pass a
    /// [`ManualClock`](super::ManualClock).
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// The mode configured.
    pub fn mode(&self) -> LinkMode {
        match self.mode {
            ModeConfig::OneTimeCode { .. } => LinkMode::OneTimeCode,
            ModeConfig::TokenInUrl { .. } => LinkMode::TokenInUrl,
        }
    }
}
