use futures::stream::{self, StreamExt};

use super::{Pages, check_id};
use crate::client::{Acting, Request};
use crate::error::Error;
use crate::ids::{TokenId, UserId};
use crate::models::{CreateToken, CreatedToken, PersonalAccessToken, StatusOk};

impl Acting {
    /// `POST /users/{user_id}/tokens`: mints a personal access token. The
    /// answer is the only time the token's value is ever sent: store it at
    /// once. The server emails the user about every new token. Accepts 200
    /// (what servers send) and 201 (what the API reference says).
    ///
    /// Not retried on 5xx or a broken connection: a repeat could mint twice.
    pub async fn create_token(
        &self,
        user: &UserId,
        request: &CreateToken,
    ) -> Result<CreatedToken, Error> {
        check_id("user id", user.as_str())?;
        let d = request.description.trim();
        if d.is_empty() || request.description.chars().count() > 255 {
            return Err(Error::InvalidInput(
                "a token description is required and must be at most 255 characters".into(),
            ));
        }
        let created: CreatedToken = self
            .call(
                Request::post(&["users", user.as_str(), "tokens"])
                    .json(request)?
                    .sensitive(),
            )
            .await?;
        crate::telemetry::minted();
        Ok(created)
    }

    /// `GET /users/{user_id}/tokens`, paged as a stream (values not included).
    pub fn tokens(&self, user: &UserId, per_page: u32) -> Pages<PersonalAccessToken> {
        if let Err(e) = check_id("user id", user.as_str()) {
            return stream::iter([Err(e)]).boxed();
        }
        // Listings carry no token values, but treat them like every other
        // `/tokens` answer: never quote their bodies.
        self.paged(
            vec!["users".into(), user.as_str().into(), "tokens".into()],
            per_page,
            true,
        )
    }

    /// `GET /users/tokens?page=&per_page=`: every personal access token on
    /// the server (values not included), paged as a stream. Needs
    /// `manage_system` (a 403 otherwise) and a server of 4.7 or later (older
    /// ones answer 404 or 405).
    pub fn all_tokens(&self, per_page: u32) -> Pages<PersonalAccessToken> {
        self.paged(vec!["users".into(), "tokens".into()], per_page, true)
    }

    /// `GET /users/tokens/{token_id}` (404 when it does not exist).
    pub async fn token(&self, id: &TokenId) -> Result<PersonalAccessToken, Error> {
        check_id("token id", id.as_str())?;
        self.call(Request::get(&["users", "tokens", id.as_str()]).sensitive())
            .await
    }

    /// `POST /users/tokens/revoke`: deletes the token and every session made
    /// from it.
    pub async fn revoke_token(&self, id: &TokenId) -> Result<(), Error> {
        self.token_op("revoke", id).await?;
        crate::telemetry::revoked();
        Ok(())
    }

    /// `POST /users/tokens/disable` (server 4.4+).
    pub async fn disable_token(&self, id: &TokenId) -> Result<(), Error> {
        self.token_op("disable", id).await
    }

    /// `POST /users/tokens/enable` (server 4.4+).
    pub async fn enable_token(&self, id: &TokenId) -> Result<(), Error> {
        self.token_op("enable", id).await
    }

    async fn token_op(&self, op: &str, id: &TokenId) -> Result<(), Error> {
        check_id("token id", id.as_str())?;
        let _: StatusOk = self
            .call(
                Request::post(&["users", "tokens", op])
                    .json(&serde_json::json!({ "token_id": id }))?
                    .idempotent()
                    .sensitive(),
            )
            .await?;
        Ok(())
    }
}
