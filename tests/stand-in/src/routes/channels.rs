//! Channels: create, get by id or name, add members, read a membership.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::response::Response;
use http::StatusCode;
use mattermost_tokens::ids::{ChannelId, TeamId, UserId, is_valid_mattermost_id};
use serde::Deserialize;
use serde_json::Value;

use super::{json, parse_body};
use crate::auth::{Caller, user_id_param};
use crate::error::AppError;
use crate::model::{Channel, ChannelDraft, Data, channel_member_json};
use crate::server::Shared;

/// Most user ids one `POST /channels/{id}/members` may carry.
const MAX_ADD_MEMBERS: usize = 1000;

fn channel_id_param(raw: &str) -> Result<ChannelId, AppError> {
    if is_valid_mattermost_id(raw) {
        Ok(ChannelId::new(raw))
    } else {
        Err(AppError::invalid_url_param("channel_id"))
    }
}

fn channel_not_found() -> AppError {
    AppError::new(
        404,
        "app.channel.get.existing.app_error",
        "Unable to find the existing channel.",
    )
}

/// `read_channel`: members and admins; open channels also every team
/// member.
fn can_see(data: &Data, caller: &Caller, channel: &Channel) -> bool {
    caller.is_admin()
        || data.is_channel_member(&channel.id, &caller.user_id)
        || (channel.is_open() && data.is_team_member(&channel.team_id, &caller.user_id))
}

#[derive(Deserialize)]
struct CreateChannelBody {
    #[serde(default)]
    team_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    display_name: String,
    #[serde(default, rename = "type")]
    kind: String,
    #[serde(default)]
    purpose: String,
    #[serde(default)]
    header: String,
}

/// `POST /channels`: 201; the creator becomes channel admin.
pub(crate) async fn create(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, AppError> {
    let body: CreateChannelBody = parse_body(&body, "channel")?;
    let kind = match body.kind.as_str() {
        "O" => 'O',
        "P" => 'P',
        _ => {
            return Err(AppError::new(
                400,
                "model.channel.is_valid.type.app_error",
                "Invalid type.",
            ));
        }
    };
    if !is_valid_mattermost_id(&body.team_id) {
        return Err(AppError::invalid_body_param("team_id"));
    }
    let team_id = TeamId::new(body.team_id);
    let mut data = shared.data();
    // `create_public_channel` / `create_private_channel` come with the
    // team_user role.
    if !caller.is_admin() && !data.is_team_member(&team_id, &caller.user_id) {
        return Err(AppError::permissions());
    }
    let channel = data.create_channel(
        ChannelDraft {
            team_id: &team_id,
            name: &body.name,
            display_name: &body.display_name,
            kind,
            purpose: &body.purpose,
            header: &body.header,
        },
        &caller.user_id,
    )?;
    Ok(json(StatusCode::CREATED, &channel.to_json()))
}

/// `GET /channels/{channel_id}`.
pub(crate) async fn get(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(channel_id): Path<String>,
) -> Result<Response, AppError> {
    let id = channel_id_param(&channel_id)?;
    let data = shared.data();
    let channel = data.channels.get(&id).ok_or_else(channel_not_found)?;
    if !can_see(&data, &caller, channel) {
        return Err(AppError::permissions());
    }
    Ok(json(StatusCode::OK, &channel.to_json()))
}

/// `GET /teams/{team_id}/channels/name/{channel_name}`: 404 when missing or
/// not visible to the caller.
pub(crate) async fn by_name(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path((team_id, name)): Path<(String, String)>,
) -> Result<Response, AppError> {
    if !is_valid_mattermost_id(&team_id) {
        return Err(AppError::invalid_url_param("team_id"));
    }
    let data = shared.data();
    let channel = data
        .channel_by_name(&TeamId::new(team_id), &name)
        .filter(|c| can_see(&data, &caller, c))
        .ok_or_else(|| {
            AppError::new(
                404,
                "app.channel.get_by_name.missing.app_error",
                "Channel does not exist.",
            )
        })?;
    Ok(json(StatusCode::OK, &channel.to_json()))
}

/// `POST /channels/{channel_id}/members` with `{"user_id"}` (201, one
/// member) or `{"user_ids": [...]}` (201, an array). Existing members are
/// returned as they are.
///
/// A user may add themselves to an open channel of a team they belong to
/// (`join_public_channels`). Adding anyone else takes a system admin or the
/// channel's admin.
pub(crate) async fn add_members(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path(channel_id): Path<String>,
    body: Bytes,
) -> Result<Response, AppError> {
    let channel_id = channel_id_param(&channel_id)?;
    let body: Value = parse_body(&body, "channel_member")?;
    let (user_ids, many) = match (body.get("user_ids"), body.get("user_id")) {
        (Some(Value::Array(ids)), _) => {
            if ids.is_empty() || ids.len() > MAX_ADD_MEMBERS {
                return Err(AppError::invalid_body_param("user_ids"));
            }
            let ids = ids
                .iter()
                .map(|v| match v.as_str() {
                    Some(id) if is_valid_mattermost_id(id) => Ok(UserId::new(id)),
                    _ => Err(AppError::invalid_body_param("user_id")),
                })
                .collect::<Result<Vec<_>, _>>()?;
            (ids, true)
        }
        (_, Some(Value::String(id))) if is_valid_mattermost_id(id) => {
            (vec![UserId::new(id.as_str())], false)
        }
        _ => return Err(AppError::invalid_body_param("user_id")),
    };
    let mut data = shared.data();
    let channel = data
        .channels
        .get(&channel_id)
        .ok_or_else(channel_not_found)?;
    let team_id = channel.team_id.clone();
    let only_self = user_ids.iter().all(|id| caller.is_self(id));
    let channel_admin = data
        .channel_members
        .get(&(channel_id.clone(), caller.user_id.clone()))
        .is_some_and(|m| m.scheme_admin);
    let may = caller.is_admin()
        || channel_admin
        || (only_self && channel.is_open() && data.is_team_member(&team_id, &caller.user_id));
    if !may {
        return Err(AppError::permissions());
    }
    for id in &user_ids {
        let user = data.users.get(id).ok_or_else(AppError::missing_account)?;
        if !user.is_active() {
            return Err(AppError::new(
                400,
                "api.channel.add_user.to.channel.failed.deleted.app_error",
                "Failed to add user to channel. User has been removed from Team.",
            ));
        }
        if !data.is_team_member(&team_id, id) {
            return Err(AppError::new(
                404,
                "app.team.get_member.missing.app_error",
                "No team member found for that user ID and team ID.",
            ));
        }
    }
    let members: Vec<Value> = user_ids
        .iter()
        .map(|id| {
            let member = data.add_channel_member(&channel_id, id).clone();
            channel_member_json(&channel_id, id, &member)
        })
        .collect();
    if many {
        Ok(json(StatusCode::CREATED, &members))
    } else {
        Ok(json(StatusCode::CREATED, &members[0]))
    }
}

/// `GET /channels/{channel_id}/members/{user_id}`.
pub(crate) async fn member(
    State(shared): State<Arc<Shared>>,
    caller: Caller,
    Path((channel_id, user_id)): Path<(String, String)>,
) -> Result<Response, AppError> {
    let channel_id = channel_id_param(&channel_id)?;
    let user_id = if user_id == "me" {
        caller.user_id.clone()
    } else {
        user_id_param(&user_id)?
    };
    let data = shared.data();
    let channel = data
        .channels
        .get(&channel_id)
        .ok_or_else(channel_not_found)?;
    if !can_see(&data, &caller, channel) {
        return Err(AppError::permissions());
    }
    let member = data
        .channel_members
        .get(&(channel_id.clone(), user_id.clone()))
        .ok_or_else(|| {
            AppError::new(
                404,
                "app.channel.get_member.missing.app_error",
                "No channel member found for that user ID and channel ID.",
            )
        })?;
    Ok(json(
        StatusCode::OK,
        &channel_member_json(&channel_id, &user_id, member),
    ))
}
