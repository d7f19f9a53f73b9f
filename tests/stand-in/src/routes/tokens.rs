//! Personal access tokens: create, list, get, search, revoke, disable,
//! enable.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use http::StatusCode;
use mattermost_tokens::ids::{TokenId, is_valid_mattermost_id};
use serde::Deserialize;
use serde_json::Value;

use super::{json, page_of, parse_body, query, status_ok};
use crate::auth::Caller;
use crate::error::AppError;
use crate::model::{Token, TokenView};
use crate::server::Shared;

/// `POST /users/{user_id}/tokens`, in the order of the real handler and
/// `App.CreateUserAccessToken`: the user id (400), the body and its
/// description (400), the caller's permissions (403), the user (404), the
/// `EnableUserAccessTokens` setting (501), the description's length (400).
/// Answers 200, not the 201 the OpenAPI text promises.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    let id = caller.user_param(&user_id)?;
    let body: Value = parse_body(&body, "user_access_token")?;
    let description = match body.get("description") {
        None | Some(Value::Null) => "",
        Some(Value::String(s)) => s.as_str(),
        Some(_) => return Err(AppError::invalid_body_param("user_access_token")),
    };
    if description.is_empty() {
        return Err(AppError::invalid_body_param("Description"));
    }
    let expires_at = match body.get("expires_at") {
        None | Some(Value::Null) => None,
        Some(v) => match v.as_i64() {
            Some(0) => None,
            Some(ms) => Some(ms),
            None => return Err(AppError::invalid_body_param("expires_at")),
        },
    };
    if !caller.can_manage_own_tokens() || !caller.can_act_on_user(&id) {
        return Err(AppError::permissions());
    }
    let mut data = shared.data();
    let target = data.users.get(&id).ok_or_else(AppError::missing_account)?;
    if target.is_system_admin() && !caller.is_admin() {
        return Err(AppError::permissions());
    }
    let token = data.mint_token(&id, description, expires_at, true)?;
    Ok(json(StatusCode::OK, &token.created()))
}

/// `GET /users/{user_id}/tokens`: paged, without the secrets.
pub(crate) async fn list_for_user(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(user_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let id = caller.user_param(&user_id)?;
    if !caller.can_manage_own_tokens() || !caller.can_act_on_user(&id) {
        return Err(AppError::permissions());
    }
    let data = shared.data();
    let page: Vec<TokenView<'_>> =
        page_of(&query(raw.as_deref()), data.tokens_of(&id).map(Token::view));
    Ok(json(StatusCode::OK, &page))
}

/// `GET /users/tokens`: every token on the server; needs `manage_system`.
pub(crate) async fn list_all(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    if !caller.is_admin() {
        return Err(AppError::permissions());
    }
    let data = shared.data();
    let page: Vec<TokenView<'_>> =
        page_of(&query(raw.as_deref()), data.all_tokens().map(Token::view));
    Ok(json(StatusCode::OK, &page))
}

/// `GET /users/tokens/{token_id}`: without the secret; 404 when missing.
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(token_id): Path<String>,
) -> Result<Response, AppError> {
    if !is_valid_mattermost_id(&token_id) {
        return Err(AppError::invalid_url_param("token_id"));
    }
    if !caller.can_manage_own_tokens() {
        return Err(AppError::permissions());
    }
    let data = shared.data();
    let token = data.token(&TokenId::new(token_id))?;
    if !caller.can_act_on_user(&token.user_id) {
        return Err(AppError::permissions());
    }
    Ok(json(StatusCode::OK, &token.view()))
}

#[derive(Deserialize)]
struct TokenIdBody {
    #[serde(default)]
    token_id: Option<String>,
}

/// What revoke, disable and enable do to a token.
enum Change {
    Revoke,
    SetActive(bool),
}

/// Shared by revoke, disable and enable: `token_id` (400), permission (403),
/// the token (404), the token's owner (403).
fn change_token(
    shared: &Shared,
    caller: &Caller,
    body: &[u8],
    change: Change,
) -> Result<Response, AppError> {
    let body: TokenIdBody = parse_body(body, "token_id")?;
    let token_id = body
        .token_id
        .filter(|id| is_valid_mattermost_id(id))
        .ok_or_else(|| AppError::invalid_body_param("token_id"))?;
    if !caller.can_manage_own_tokens() {
        return Err(AppError::permissions());
    }
    let token_id = TokenId::new(token_id);
    let mut data = shared.data();
    let owner = data.token(&token_id)?.user_id.clone();
    if !caller.can_act_on_user(&owner) {
        return Err(AppError::permissions());
    }
    match change {
        Change::Revoke => {
            data.revoke_token(&token_id);
        }
        Change::SetActive(active) => {
            data.set_token_active(&token_id, active);
        }
    }
    Ok(status_ok())
}

/// `POST /users/tokens/revoke`: deletes the token.
pub(crate) async fn revoke(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, AppError> {
    change_token(&shared, &caller, &body, Change::Revoke)
}

/// `POST /users/tokens/disable`.
pub(crate) async fn disable(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, AppError> {
    change_token(&shared, &caller, &body, Change::SetActive(false))
}

/// `POST /users/tokens/enable`.
pub(crate) async fn enable(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, AppError> {
    change_token(&shared, &caller, &body, Change::SetActive(true))
}

#[derive(Deserialize)]
struct SearchBody {
    #[serde(default)]
    term: String,
}

/// `POST /users/tokens/search` `{"term"}`: tokens whose id or owner id is
/// the term, or whose owner's username starts with it; needs
/// `manage_system`.
pub(crate) async fn search(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, AppError> {
    let body: SearchBody = parse_body(&body, "term")?;
    if body.term.is_empty() {
        return Err(AppError::invalid_body_param("term"));
    }
    if !caller.is_admin() {
        return Err(AppError::permissions());
    }
    let term = body.term.to_lowercase();
    let data = shared.data();
    let found: Vec<TokenView<'_>> = data
        .all_tokens()
        .filter(|t| {
            t.id.as_str() == term
                || t.user_id.as_str() == term
                || data
                    .users
                    .get(&t.user_id)
                    .is_some_and(|u| u.username.starts_with(&term))
        })
        .take(1000)
        .map(Token::view)
        .collect();
    Ok(json(StatusCode::OK, &found))
}
