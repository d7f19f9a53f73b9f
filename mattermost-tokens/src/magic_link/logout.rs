//! Signing out: expiring the cookies a redeem set.
//!
//! Mattermost's own logout revokes its session and expires a host-only
//! `MMAUTHTOKEN`; a cookie the app set for the parent domain (`Domain=`)
//! survives it, and the browser keeps sending the user's personal access
//! token, which opens a fresh session. So the app offers its own way out,
//! expiring all three cookies with the same `Domain` and `Path` they were
//! set with (a browser matches a removal on name, domain and path).

use super::{AUTH_COOKIE, CSRF_COOKIE, MagicLinks, USER_ID_COOKIE};
use crate::error::Error;

impl MagicLinks {
    /// The `Set-Cookie` values that sign the browser out of the Mattermost
    /// session a redeem started: `MMAUTHTOKEN`, `MMUSERID` and `MMCSRF`
    /// with an empty value, `Max-Age=0` and the redeem's `Domain`, `Path`
    /// and `Secure`. Serve them from an app route on a host under the
    /// cookie domain (`MagicLinks::router` does, at
    /// [`LOGOUT_PATH`](super::LOGOUT_PATH)), and point Mattermost's users
    /// at it (for example from the app's own logout).
    ///
    /// [`Error::InvalidConfig`] in the token-in-URL mode, which sets no
    /// cookies.
    pub fn logout_cookies(&self) -> Result<Vec<String>, Error> {
        let mode = self.code_mode()?;
        Ok([AUTH_COOKIE, USER_ID_COOKIE, CSRF_COOKIE]
            .into_iter()
            .map(|name| mode.removal(name).to_string())
            .collect())
    }

    /// Where the logout route sends the browser: the Mattermost page a
    /// redeem redirects to, which now shows Mattermost's sign-in.
    pub fn logout_redirect(&self) -> Result<&url::Url, Error> {
        Ok(&self.code_mode()?.redirect_url)
    }
}
