//! `/users`: create, look up, list, patch, roles, (de)activate.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::response::Response;
use http::StatusCode;
use mattermost_tokens::ids::{TeamId, is_valid_mattermost_id};
use serde::Deserialize;
use serde_json::{Map, Value};

use super::{json, page_of, parse_body, query, status_ok};
use crate::auth::{Caller, MaybeCaller};
use crate::error::AppError;
use crate::model::{User, UserDraft, UserPatch};
use crate::server::Shared;

/// The body of `POST /users` (a `model.User`). No `Debug`: it holds the
/// password.
#[derive(Deserialize, Default)]
#[serde(default)]
struct CreateUserBody {
    email: Option<String>,
    username: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    nickname: Option<String>,
    position: Option<String>,
    password: Option<String>,
    auth_service: Option<String>,
    auth_data: Option<String>,
    locale: Option<String>,
    props: Option<Map<String, Value>>,
    notify_props: Option<Map<String, Value>>,
    email_verified: Option<bool>,
}

/// `POST /users`. Only an admin may create users: the stand-in's server runs
/// with `EnableOpenServer` off, as a stock server does.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    caller: MaybeCaller,
    body: Bytes,
) -> Result<Response, AppError> {
    let body: CreateUserBody = parse_body(&body, "user")?;
    let is_admin = caller.0.as_ref().is_some_and(Caller::is_admin);
    if !is_admin {
        return Err(AppError::new(
            403,
            "api.user.create_user.no_open_server",
            "This server does not allow open signups. Please speak with your Administrator to receive an invitation.",
        ));
    }
    let draft = UserDraft {
        email: body.email.unwrap_or_default(),
        username: body.username.unwrap_or_default(),
        first_name: body.first_name.unwrap_or_default(),
        last_name: body.last_name.unwrap_or_default(),
        nickname: body.nickname.unwrap_or_default(),
        position: body.position.unwrap_or_default(),
        password: body.password.unwrap_or_default(),
        auth_service: body.auth_service.unwrap_or_default(),
        auth_data: body.auth_data.unwrap_or_default(),
        locale: body.locale.unwrap_or_default(),
        props: body.props.unwrap_or_default(),
        notify_props: body.notify_props.unwrap_or_default(),
        // `SanitizeInput`: only an admin may set it.
        email_verified: is_admin && body.email_verified.unwrap_or(false),
        roles: None,
        // Bots are made through /bots, never here.
        is_bot: false,
        skip_password_policy: false,
    };
    let mut data = shared.data();
    data.check_room_for_new_user()?;
    let user = data.create_user(draft)?;
    Ok(json(StatusCode::CREATED, user))
}

/// `GET /users?page&per_page` (plus `in_team`, `active`, `inactive`), in
/// username order.
pub(crate) async fn list(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let q = query(raw.as_deref());
    let in_team = match q.get("in_team") {
        Some(t) if !is_valid_mattermost_id(t) => {
            return Err(AppError::invalid_url_param("in_team"));
        }
        Some(t) => Some(TeamId::new(t.clone())),
        None => None,
    };
    let active = q.get("active").map(|v| v == "true");
    let inactive = q.get("inactive").is_some_and(|v| v == "true");
    let data = shared.data();
    let users = data.users_in_order().filter(|u| {
        in_team
            .as_ref()
            .is_none_or(|t| data.is_team_member(t, &u.id))
            && active.is_none_or(|a| a == u.is_active())
            && (!inactive || !u.is_active())
    });
    let page: Vec<&User> = page_of(&q, users);
    Ok(json(StatusCode::OK, &page))
}

/// `GET /users/{user_id}` (`me` included).
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(user_id): Path<String>,
) -> Result<Response, AppError> {
    let id = caller.user_param(&user_id)?;
    let data = shared.data();
    let user = data.users.get(&id).ok_or_else(AppError::missing_account)?;
    Ok(json(StatusCode::OK, user))
}

/// `GET /users/email/{email}`.
pub(crate) async fn by_email(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    Path(email): Path<String>,
) -> Result<Response, AppError> {
    if !email.contains('@') || email.len() > 128 {
        return Err(AppError::invalid_url_param("email"));
    }
    let data = shared.data();
    let user = data
        .user_by_email(&email)
        .ok_or_else(AppError::missing_account)?;
    Ok(json(StatusCode::OK, user))
}

/// `GET /users/username/{username}`.
pub(crate) async fn by_username(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    Path(username): Path<String>,
) -> Result<Response, AppError> {
    if username.is_empty() || username.len() > 64 {
        return Err(AppError::invalid_url_param("username"));
    }
    let data = shared.data();
    let user = data.user_by_username(&username).ok_or_else(|| {
        AppError::new(
            404,
            "app.user.get_by_username.app_error",
            "Unable to find an existing account matching your username for this team. This team may require an invite from the team owner to join.",
        )
    })?;
    Ok(json(StatusCode::OK, user))
}

/// `POST /users/ids`: the users found, unknown ids skipped.
pub(crate) async fn by_ids(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    body: Bytes,
) -> Result<Response, AppError> {
    let ids: Vec<String> = parse_body(&body, "user_ids")?;
    if ids.is_empty() {
        return Err(AppError::invalid_body_param("user_ids"));
    }
    if ids.iter().any(|id| !is_valid_mattermost_id(id)) {
        return Err(AppError::invalid_body_param("user_id"));
    }
    let data = shared.data();
    let users: Vec<&User> = ids
        .iter()
        .filter_map(|id| {
            data.users
                .get(&mattermost_tokens::ids::UserId::new(id.as_str()))
        })
        .collect();
    Ok(json(StatusCode::OK, &users))
}

/// `POST /users/usernames`: the users found, unknown names skipped.
pub(crate) async fn by_usernames(
    State(shared): State<Arc<Shared>>,
    _caller: Caller,
    body: Bytes,
) -> Result<Response, AppError> {
    let names: Vec<String> = parse_body(&body, "usernames")?;
    if names.is_empty() {
        return Err(AppError::invalid_body_param("usernames"));
    }
    let data = shared.data();
    let users: Vec<&User> = names
        .iter()
        .filter_map(|n| data.user_by_username(n))
        .collect();
    Ok(json(StatusCode::OK, &users))
}

/// `PUT /users/{user_id}/patch`: oneself, or `edit_other_users`.
pub(crate) async fn patch(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    let id = caller.user_param(&user_id)?;
    let patch: UserPatch = parse_body(&body, "user")?;
    if !caller.can_act_on_user(&id) {
        return Err(AppError::permissions());
    }
    let mut data = shared.data();
    if let Some(target) = data.users.get(&id)
        && target.is_system_admin()
        && !caller.is_admin()
    {
        return Err(AppError::permissions());
    }
    let user = data.patch_user(&id, patch)?;
    Ok(json(StatusCode::OK, user))
}

#[derive(Deserialize)]
struct RolesBody {
    roles: String,
}

/// `PUT /users/{user_id}/roles`: needs `manage_roles`.
pub(crate) async fn roles(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    let id = caller.user_param(&user_id)?;
    let body: RolesBody = parse_body(&body, "roles")?;
    if !caller.is_admin() {
        return Err(AppError::permissions());
    }
    shared.data().set_roles(&id, &body.roles)?;
    Ok(status_ok())
}

/// Deactivating oneself needs `EnableUserDeactivation`, off by default.
fn check_may_change_active(
    caller: &Caller,
    id: &mattermost_tokens::ids::UserId,
) -> Result<(), AppError> {
    if caller.is_self(id) && !caller.is_admin() {
        return Err(AppError::new(
            401,
            "api.user.update_active.not_enable.app_error",
            "You cannot deactivate yourself because this feature is not enabled. Please contact your System Administrator.",
        ));
    }
    if !caller.can_act_on_user(id) {
        return Err(AppError::permissions());
    }
    Ok(())
}

/// `DELETE /users/{user_id}`: deactivates. `?permanent=true` needs
/// `EnableAPIUserDeletion`, off by default.
pub(crate) async fn deactivate(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(user_id): Path<String>,
    RawQuery(raw): RawQuery,
) -> Result<Response, AppError> {
    let id = caller.user_param(&user_id)?;
    check_may_change_active(&caller, &id)?;
    if query(raw.as_deref())
        .get("permanent")
        .is_some_and(|v| v == "true")
    {
        return Err(AppError::new(
            401,
            "api.user.delete_user.not_enabled.app_error",
            "Permanent delete feature is not enabled. Please contact your System Administrator.",
        ));
    }
    shared.data().set_active(&id, false)?;
    Ok(status_ok())
}

#[derive(Deserialize)]
struct ActiveBody {
    active: bool,
}

/// `PUT /users/{user_id}/active` `{"active": bool}`.
pub(crate) async fn active(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(user_id): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    let id = caller.user_param(&user_id)?;
    let body: ActiveBody = parse_body(&body, "active")?;
    check_may_change_active(&caller, &id)?;
    shared.data().set_active(&id, body.active)?;
    Ok(status_ok())
}
