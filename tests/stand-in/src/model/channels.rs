//! Channels and channel memberships, with the checks of `Channel.IsValid`.

use mattermost_tokens::ids::{ChannelId, TeamId, UserId};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Data, new_id};
use crate::clock::now_ms;
use crate::error::AppError;

/// A channel. The state file holds it as is; the API sees
/// [`Channel::to_json`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Channel {
    pub id: ChannelId,
    pub team_id: TeamId,
    pub name: String,
    pub display_name: String,
    /// `O` (open) or `P` (private).
    pub kind: char,
    pub purpose: String,
    pub header: String,
    pub creator_id: UserId,
    pub create_at: i64,
}

impl Channel {
    pub fn is_open(&self) -> bool {
        self.kind == 'O'
    }

    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "create_at": self.create_at,
            "update_at": self.create_at,
            "delete_at": 0,
            "team_id": self.team_id,
            "type": self.kind.to_string(),
            "display_name": self.display_name,
            "name": self.name,
            "header": self.header,
            "purpose": self.purpose,
            "last_post_at": 0,
            "total_msg_count": 0,
            "extra_update_at": 0,
            "creator_id": self.creator_id,
            "scheme_id": null,
            "props": null,
            "group_constrained": null,
            "shared": null,
            "total_msg_count_root": 0,
            "policy_id": null,
            "last_root_post_at": 0,
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct ChannelMember {
    pub scheme_admin: bool,
    pub last_update_at: i64,
}

pub(crate) fn channel_member_json(
    channel_id: &ChannelId,
    user_id: &UserId,
    m: &ChannelMember,
) -> Value {
    json!({
        "channel_id": channel_id,
        "user_id": user_id,
        "roles": if m.scheme_admin { "channel_user channel_admin" } else { "channel_user" },
        "last_viewed_at": 0,
        "msg_count": 0,
        "mention_count": 0,
        "mention_count_root": 0,
        "urgent_mention_count": 0,
        "msg_count_root": 0,
        "notify_props": {
            "desktop": "default",
            "email": "default",
            "ignore_channel_mentions": "default",
            "mark_unread": "all",
            "push": "default",
        },
        "last_update_at": m.last_update_at,
        "scheme_guest": false,
        "scheme_user": true,
        "scheme_admin": m.scheme_admin,
        "explicit_roles": "",
    })
}

/// What a new channel is made from.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ChannelDraft<'a> {
    pub team_id: &'a TeamId,
    pub name: &'a str,
    pub display_name: &'a str,
    /// `O` (open) or `P` (private).
    pub kind: char,
    pub purpose: &'a str,
    pub header: &'a str,
}

/// Channel names: `^[a-z0-9]+([a-z\-_0-9]+|(__)?)[a-z0-9]*$`, which comes down
/// to a lowercase letter or digit followed by letters, digits, `-` and `_`.
fn valid_channel_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

impl Data {
    pub fn channel_by_name(&self, team_id: &TeamId, name: &str) -> Option<&Channel> {
        self.channel_by_name
            .get(&(team_id.clone(), name.to_owned()))
            .and_then(|id| self.channels.get(id))
    }

    pub fn is_channel_member(&self, channel_id: &ChannelId, user_id: &UserId) -> bool {
        self.channel_members
            .contains_key(&(channel_id.clone(), user_id.clone()))
    }

    /// `POST /channels` after the permission checks: `Channel.IsValid`, the
    /// team, then the unique name. The creator becomes channel admin.
    pub fn create_channel(
        &mut self,
        draft: ChannelDraft<'_>,
        creator: &UserId,
    ) -> Result<&Channel, AppError> {
        let ChannelDraft {
            team_id,
            name,
            display_name,
            kind,
            purpose,
            header,
        } = draft;
        if !self.teams.contains_key(team_id) {
            return Err(AppError::new(
                404,
                "app.team.get.find.app_error",
                "Unable to find the existing team.",
            ));
        }
        if name.chars().count() > 64 {
            return Err(AppError::new(
                400,
                "model.channel.is_valid.name.app_error",
                "Invalid channel name. User ids are not permitted in channel name for non-direct message channels.",
            ));
        }
        if !valid_channel_name(name) {
            return Err(AppError::new(
                400,
                "model.channel.is_valid.2_or_more.app_error",
                "Name must be 2 or more lowercase alphanumeric characters.",
            ));
        }
        if display_name.is_empty() || display_name.chars().count() > 64 {
            return Err(AppError::new(
                400,
                "model.channel.is_valid.display_name.app_error",
                "Invalid display name.",
            ));
        }
        if purpose.chars().count() > 250 {
            return Err(AppError::new(
                400,
                "model.channel.is_valid.purpose.app_error",
                "Invalid purpose.",
            ));
        }
        if header.chars().count() > 1024 {
            return Err(AppError::new(
                400,
                "model.channel.is_valid.header.app_error",
                "Invalid header.",
            ));
        }
        let key = (team_id.clone(), name.to_owned());
        if self.channel_by_name.contains_key(&key) {
            return Err(AppError::new(
                400,
                "store.sql_channel.save_channel.exists.app_error",
                "A channel with that name already exists on the same team.",
            ));
        }
        let now = now_ms();
        let id = ChannelId::new(new_id());
        self.channel_by_name.insert(key, id.clone());
        self.channel_members.insert(
            (id.clone(), creator.clone()),
            ChannelMember {
                scheme_admin: true,
                last_update_at: now,
            },
        );
        Ok(self.channels.entry(id.clone()).or_insert(Channel {
            id,
            team_id: team_id.clone(),
            name: name.to_owned(),
            display_name: display_name.to_owned(),
            kind,
            purpose: purpose.to_owned(),
            header: header.to_owned(),
            creator_id: creator.clone(),
            create_at: now,
        }))
    }

    /// Adds a channel member, or returns the existing membership.
    pub fn add_channel_member(
        &mut self,
        channel_id: &ChannelId,
        user_id: &UserId,
    ) -> &ChannelMember {
        self.channel_members
            .entry((channel_id.clone(), user_id.clone()))
            .or_insert_with(|| ChannelMember {
                scheme_admin: false,
                last_update_at: now_ms(),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names() {
        assert!(valid_channel_name("town-square"));
        assert!(valid_channel_name("a"));
        assert!(valid_channel_name("off__topic"));
        assert!(!valid_channel_name("-lead"));
        assert!(!valid_channel_name("Upper"));
        assert!(!valid_channel_name(""));
    }
}
