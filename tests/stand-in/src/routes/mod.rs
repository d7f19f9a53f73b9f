//! The modelled endpoints of `/api/v4`, one module per API area.

mod channels;
mod system;
mod teams;
mod tokens;
mod users;

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use http::{StatusCode, header};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::AppError;
use crate::server::Shared;

/// Every route the stand-in serves. The templates double as the keys of the
/// request counts (`"{METHOD} {template}"`).
pub(crate) fn router() -> Router<Arc<Shared>> {
    Router::new()
        .route("/", get(system::home))
        .route("/api/v4/system/ping", get(system::ping))
        .route("/api/v4/config/client", get(system::client_config))
        .route("/api/v4/config", get(system::config))
        .route("/api/v4/roles/names", post(system::roles_by_names))
        .route("/api/v4/limits/server", get(system::server_limits))
        .route("/api/v4/users", post(users::create).get(users::list))
        .route("/api/v4/users/ids", post(users::by_ids))
        .route("/api/v4/users/usernames", post(users::by_usernames))
        .route("/api/v4/users/email/{email}", get(users::by_email))
        .route("/api/v4/users/username/{username}", get(users::by_username))
        .route(
            "/api/v4/users/{user_id}",
            get(users::get).delete(users::deactivate),
        )
        .route("/api/v4/users/{user_id}/patch", put(users::patch))
        .route("/api/v4/users/{user_id}/roles", put(users::roles))
        .route("/api/v4/users/{user_id}/active", put(users::active))
        .route(
            "/api/v4/users/{user_id}/tokens",
            post(tokens::create).get(tokens::list_for_user),
        )
        .route("/api/v4/users/tokens", get(tokens::list_all))
        .route("/api/v4/users/tokens/{token_id}", get(tokens::get))
        .route("/api/v4/users/tokens/revoke", post(tokens::revoke))
        .route("/api/v4/users/tokens/disable", post(tokens::disable))
        .route("/api/v4/users/tokens/enable", post(tokens::enable))
        .route("/api/v4/users/tokens/search", post(tokens::search))
        .route("/api/v4/teams/name/{name}", get(teams::by_name))
        .route("/api/v4/teams/{team_id}", get(teams::get))
        .route("/api/v4/teams/{team_id}/members", post(teams::add_member))
        .route(
            "/api/v4/teams/{team_id}/members/{user_id}",
            get(teams::member),
        )
        .route(
            "/api/v4/teams/{team_id}/channels/name/{channel_name}",
            get(channels::by_name),
        )
        .route("/api/v4/channels", post(channels::create))
        .route("/api/v4/channels/{channel_id}", get(channels::get))
        .route(
            "/api/v4/channels/{channel_id}/members",
            post(channels::add_members),
        )
        .route(
            "/api/v4/channels/{channel_id}/members/{user_id}",
            get(channels::member),
        )
}

/// A JSON answer.
pub(crate) fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => (status, [(header::CONTENT_TYPE, "application/json")], body).into_response(),
        Err(_) => {
            AppError::new(500, "api.marshal_error", "Unable to marshal the answer.").into_response()
        }
    }
}

/// `ReturnStatusOK`: `{"status":"OK"}`.
pub(crate) fn status_ok() -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"OK"}"#,
    )
        .into_response()
}

/// Decodes a JSON body; anything unreadable is the server's
/// `invalid_body_param` for `name`.
pub(crate) fn parse_body<T: DeserializeOwned>(body: &[u8], name: &str) -> Result<T, AppError> {
    serde_json::from_slice(body).map_err(|_| AppError::invalid_body_param(name))
}

/// The query string as a map (last value wins).
pub(crate) fn query(raw: Option<&str>) -> HashMap<String, String> {
    raw.map(|q| {
        url::form_urlencoded::parse(q.as_bytes())
            .into_owned()
            .collect()
    })
    .unwrap_or_default()
}

/// The page of `items` that `page`/`per_page` in `q` select.
pub(crate) fn page_of<'a, T: 'a>(
    q: &HashMap<String, String>,
    items: impl Iterator<Item = T>,
) -> Vec<T> {
    let (page, per_page) = super::model::paging(
        q.get("page").map(String::as_str),
        q.get("per_page").map(String::as_str),
    );
    items
        .skip(page.saturating_mul(per_page))
        .take(per_page)
        .collect()
}
