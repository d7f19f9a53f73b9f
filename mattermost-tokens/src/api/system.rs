use crate::client::{Acting, Request};
use crate::error::Error;
use crate::models::{ClientConfig, Role, ServerLimits};

impl Acting {
    /// `GET /config/client?format=old`. With a valid token the answer includes
    /// `EnableUserAccessTokens`; see [`ClientConfig::user_access_tokens_enabled`].
    pub async fn client_config(&self) -> Result<ClientConfig, Error> {
        self.call(Request::get(&["config", "client"]).query("format", "old"))
            .await
    }

    /// `GET /config` (callers who may read the System Console, such as
    /// system admins; `api4/config.go`): whether
    /// `ServiceSettings.ExperimentalStrictCSRFEnforcement` is on. `Ok(None)`
    /// when the caller may not read the configuration (403).
    pub async fn strict_csrf_enforcement(&self) -> Result<Option<bool>, Error> {
        match self
            .call::<serde_json::Value>(Request::get(&["config"]))
            .await
        {
            Ok(config) => Ok(Some(
                config
                    .pointer("/ServiceSettings/ExperimentalStrictCSRFEnforcement")
                    .and_then(serde_json::Value::as_bool)
                    .unwrap_or(false),
            )),
            Err(e) if e.status() == Some(403) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `GET /limits/server` (`api4/limits.go`, system admins): the server's
    /// active-user limit. `Ok(None)` when the server does not say: servers
    /// that predate the endpoint answer 404, and some releases answer 403
    /// to a caller that is not a system admin.
    pub async fn server_limits(&self) -> Result<Option<ServerLimits>, Error> {
        match self.call(Request::get(&["limits", "server"])).await {
            Ok(l) => Ok(Some(l)),
            Err(e) if matches!(e.status(), Some(403 | 404)) => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// `POST /roles/names` (`api4/role.go`, any session): the roles of
    /// these names that exist, with their permissions. With the names in a
    /// user's `roles`, the union of the permissions is what the user may do
    /// (team and channel roles aside).
    pub async fn roles_by_names(&self, names: &[&str]) -> Result<Vec<Role>, Error> {
        self.call(
            Request::post(&["roles", "names"])
                .json(&names)?
                .idempotent(),
        )
        .await
    }
}
