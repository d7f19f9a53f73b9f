//! Whether the sessions a redeem starts can write: Mattermost's CSRF rules
//! for cookie sessions, as they apply to a session made from a personal
//! access token (see the module docs' "No `MMCSRF`").

use super::MagicLinks;
use crate::error::Error;

impl MagicLinks {
    /// Checks the Mattermost server's settings against this configuration,
    /// once at start-up. With `ServiceSettings.ExperimentalStrictCSRFEnforcement`
    /// on, Mattermost refuses a cookie session's write whose `X-CSRF-Token`
    /// header does not match the session (none, for a personal access
    /// token). A redeem removes the `MMCSRF` cookie the web app takes the
    /// header from, but with a [cookie domain](super::MagicLinkConfig::cookie_domain)
    /// it reaches only the cookie of that domain: a host-only `MMCSRF` that
    /// Mattermost's own sign-in left on its host stays, and the user's writes
    /// would fail with 401 until it is gone. So that combination is refused
    /// with [`Error::InvalidConfig`]; serve the redeem route on Mattermost's
    /// own host instead (no cookie domain, see the README), or turn strict
    /// enforcement off.
    ///
    /// `Ok(())` as well when the admin credential may not read the server's
    /// configuration (the check is skipped, with a warning). The token-in-URL
    /// mode sets no cookies and passes.
    pub async fn check_server(&self) -> Result<(), Error> {
        let Ok(mode) = self.code_mode() else {
            return Ok(());
        };
        match self.inner.client.as_admin().strict_csrf_enforcement().await? {
            Some(true) if mode.cookie_domain.is_some() => Err(Error::InvalidConfig(
                "Mattermost enforces CSRF strictly (ServiceSettings.ExperimentalStrictCSRFEnforcement) \
                 and magic links set their cookies for a parent domain: a host-only MMCSRF cookie \
                 from Mattermost's own sign-in would make the user's writes fail. Serve the redeem \
                 route on Mattermost's host (no cookie domain), or turn strict enforcement off"
                    .into(),
            )),
            Some(_) => Ok(()),
            None => {
                tracing::warn!(
                    "cannot read the Mattermost configuration with the admin credential: the strict CSRF check is skipped"
                );
                Ok(())
            }
        }
    }
}
