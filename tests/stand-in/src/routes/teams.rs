//! Teams: get by id or name, add a member, read a membership.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use mattermost_tokens::ids::{TeamId, UserId, is_valid_mattermost_id};
use serde::Deserialize;

use super::{json, parse_body};
use crate::auth::{Caller, user_id_param};
use crate::error::AppError;
use crate::model::{Data, Team, team_member_json};
use crate::server::Shared;

fn team_id_param(raw: &str) -> Result<TeamId, AppError> {
    if is_valid_mattermost_id(raw) {
        Ok(TeamId::new(raw))
    } else {
        Err(AppError::invalid_url_param("team_id"))
    }
}

fn team_not_found() -> AppError {
    AppError::new(
        404,
        "app.team.get.find.app_error",
        "Unable to find the existing team.",
    )
}

/// `view_team`: open teams are visible to all, others to members and
/// admins.
fn check_can_view(data: &Data, caller: &Caller, team: &Team) -> Result<(), AppError> {
    if team.open || caller.is_admin() || data.is_team_member(&team.id, &caller.user_id) {
        Ok(())
    } else {
        Err(AppError::permissions())
    }
}

/// `GET /teams/name/{name}`.
pub(crate) async fn by_name(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Response, AppError> {
    let data = shared.data();
    let team = data.team_by_name(&name).ok_or_else(|| {
        AppError::new(
            404,
            "app.team.get_by_name.missing.app_error",
            "Unable to find the existing team.",
        )
    })?;
    check_can_view(&data, &caller, team)?;
    Ok(json(StatusCode::OK, &team.to_json()))
}

/// `GET /teams/{team_id}`.
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(team_id): Path<String>,
) -> Result<Response, AppError> {
    let id = team_id_param(&team_id)?;
    let data = shared.data();
    let team = data.teams.get(&id).ok_or_else(team_not_found)?;
    check_can_view(&data, &caller, team)?;
    Ok(json(StatusCode::OK, &team.to_json()))
}

#[derive(Deserialize)]
struct MemberBody {
    #[serde(default)]
    team_id: String,
    #[serde(default)]
    user_id: String,
}

/// `POST /teams/{team_id}/members` `{"team_id", "user_id"}`: 201 with the
/// membership, also when it already existed. An admin (or team admin) may
/// add anyone; a user may add themselves to an open team.
pub(crate) async fn add_member(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(team_id): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    let team_id = team_id_param(&team_id)?;
    let body: MemberBody = parse_body(&body, "team_member")?;
    if body.team_id != team_id.as_str() {
        return Err(AppError::invalid_body_param("team_id"));
    }
    if !is_valid_mattermost_id(&body.user_id) {
        return Err(AppError::invalid_body_param("user_id"));
    }
    let user_id = UserId::new(body.user_id);
    let mut data = shared.data();
    let team = data.teams.get(&team_id).ok_or_else(team_not_found)?;
    let team_admin = data
        .team_members
        .get(&(team_id.clone(), caller.user_id.clone()))
        .is_some_and(|m| m.scheme_admin);
    let may = caller.is_admin() || team_admin || (caller.is_self(&user_id) && team.open);
    if !may {
        return Err(AppError::permissions());
    }
    if !data.users.contains_key(&user_id) {
        return Err(AppError::missing_account());
    }
    let member = data.add_team_member(&team_id, &user_id, false).clone();
    Ok(json(
        StatusCode::CREATED,
        &team_member_json(&team_id, &user_id, &member),
    ))
}

/// `GET /teams/{team_id}/members/{user_id}`.
pub(crate) async fn member(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path((team_id, user_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let team_id = team_id_param(&team_id)?;
    let user_id = if user_id == "me" {
        caller.user_id.clone()
    } else {
        user_id_param(&user_id)?
    };
    let data = shared.data();
    if !caller.is_admin() && !data.is_team_member(&team_id, &caller.user_id) {
        return Err(AppError::permissions());
    }
    let member = data
        .team_members
        .get(&(team_id.clone(), user_id.clone()))
        .ok_or_else(|| {
            AppError::new(
                404,
                "app.team.get_member.missing.app_error",
                "No team member found for that user ID and team ID.",
            )
        })?;
    Ok(json(
        StatusCode::OK,
        &team_member_json(&team_id, &user_id, member),
    ))
}
