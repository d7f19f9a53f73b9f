use crate::client::{Acting, Request};
use crate::error::Error;
use crate::models::ClientConfig;

impl Acting {
    /// `GET /config/client?format=old`. With a valid token the answer includes
    /// `EnableUserAccessTokens`; see [`ClientConfig::user_access_tokens_enabled`].
    pub async fn client_config(&self) -> Result<ClientConfig, Error> {
        self.call(Request::get(&["config", "client"]).query("format", "old"))
            .await
    }
}
