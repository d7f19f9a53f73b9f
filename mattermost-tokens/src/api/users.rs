use futures::stream::{self, StreamExt};
use serde::de::DeserializeOwned;

use super::{Pages, check_id};
use crate::client::{Acting, Request};
use crate::error::Error;
use crate::ids::UserId;
use crate::models::{CreateUser, StatusOk, User, UserPatch};

/// The largest page Mattermost serves; larger `per_page` values are cut to it.
pub const MAX_PER_PAGE: u32 = 200;

impl Acting {
    /// `POST /users`: creates a user (201).
    pub async fn create_user(&self, user: &CreateUser) -> Result<User, Error> {
        self.call(Request::post(&["users"]).json(user)?).await
    }

    /// `GET /users/{user_id}`.
    pub async fn user(&self, id: &UserId) -> Result<User, Error> {
        check_id("user id", id.as_str())?;
        self.call(Request::get(&["users", id.as_str()])).await
    }

    /// `GET /users/me`: the user the acting token belongs to.
    pub async fn me(&self) -> Result<User, Error> {
        self.call(Request::get(&["users", "me"])).await
    }

    /// `GET /users/email/{email}` (404 when no such user; 403 when privacy
    /// settings hide emails from the caller).
    pub async fn user_by_email(&self, email: &str) -> Result<User, Error> {
        self.call(Request::get(&["users", "email", email])).await
    }

    /// `GET /users/username/{username}`.
    pub async fn user_by_username(&self, username: &str) -> Result<User, Error> {
        self.call(Request::get(&["users", "username", username]))
            .await
    }

    /// `POST /users/ids`: the users with these ids (unknown ids are left out).
    pub async fn users_by_ids(&self, ids: &[UserId]) -> Result<Vec<User>, Error> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        self.call(Request::post(&["users", "ids"]).json(&ids)?.idempotent())
            .await
    }

    /// `POST /users/usernames`: the users with these usernames.
    pub async fn users_by_usernames(&self, usernames: &[String]) -> Result<Vec<User>, Error> {
        if usernames.is_empty() {
            return Ok(Vec::new());
        }
        self.call(
            Request::post(&["users", "usernames"])
                .json(&usernames)?
                .idempotent(),
        )
        .await
    }

    /// `GET /users` page by page, as a stream that ends after the first short
    /// page. `per_page` is capped at [`MAX_PER_PAGE`].
    pub fn users(&self, per_page: u32) -> Pages<User> {
        self.paged(vec!["users".into()], per_page, false)
    }

    /// `PUT /users/{user_id}/patch`: changes only the fields set in `patch`.
    pub async fn patch_user(&self, id: &UserId, patch: &UserPatch) -> Result<User, Error> {
        check_id("user id", id.as_str())?;
        self.call(Request::put(&["users", id.as_str(), "patch"]).json(patch)?)
            .await
    }

    /// `PUT /users/{user_id}/roles` with space-separated roles.
    pub async fn update_roles(&self, id: &UserId, roles: &str) -> Result<(), Error> {
        check_id("user id", id.as_str())?;
        let _: StatusOk = self
            .call(
                Request::put(&["users", id.as_str(), "roles"])
                    .json(&serde_json::json!({ "roles": roles }))?,
            )
            .await?;
        Ok(())
    }

    /// `DELETE /users/{user_id}`: deactivates the user, ending their sessions
    /// and stopping their tokens from working.
    pub async fn deactivate_user(&self, id: &UserId) -> Result<(), Error> {
        check_id("user id", id.as_str())?;
        let _: StatusOk = self.call(Request::delete(&["users", id.as_str()])).await?;
        Ok(())
    }

    /// `PUT /users/{user_id}/active` with `{"active": ...}`: reactivates or
    /// deactivates the user. Repeating it changes nothing more.
    pub async fn set_active(&self, id: &UserId, active: bool) -> Result<(), Error> {
        check_id("user id", id.as_str())?;
        let _: StatusOk = self
            .call(
                Request::put(&["users", id.as_str(), "active"])
                    .json(&serde_json::json!({ "active": active }))?
                    .idempotent(),
            )
            .await?;
        Ok(())
    }

    /// Pages `GET {path}?page=&per_page=` until a short page.
    pub(crate) fn paged<T: DeserializeOwned + Send + 'static>(
        &self,
        path: Vec<String>,
        per_page: u32,
        sensitive: bool,
    ) -> Pages<T> {
        let per_page = per_page.clamp(1, MAX_PER_PAGE);
        let this = self.clone();
        stream::unfold(Some(0u32), move |page| {
            let this = this.clone();
            let path = path.clone();
            async move {
                let page = page?;
                let segs: Vec<&str> = path.iter().map(String::as_str).collect();
                let mut req = Request::get(&segs)
                    .query("page", page)
                    .query("per_page", per_page);
                if sensitive {
                    req = req.sensitive();
                }
                let res: Result<Vec<T>, Error> = this.call(req).await;
                match res {
                    Ok(items) => {
                        let next = (items.len() as u32 >= per_page).then_some(page + 1);
                        Some((stream::iter(items.into_iter().map(Ok)).left_stream(), next))
                    }
                    Err(e) => Some((stream::iter([Err(e)]).right_stream(), None)),
                }
            }
        })
        .flatten()
        .boxed()
    }
}
