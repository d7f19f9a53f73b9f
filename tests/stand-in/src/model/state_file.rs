//! The whole state to and from the [state file](crate::state).

use mattermost_tokens::ids::UserId;

use super::{Channel, ChannelMember, Data, Team, TeamMember, Token};
use crate::state::{
    AdminRecord, ChannelMemberRecord, FORMAT, StateFile, TeamMemberRecord, TokenRecord, VERSION,
};

impl Data {
    /// Everything the state file holds, the admin's session included. Token
    /// records come in creation order; the rest is sorted so that saving the
    /// same state twice writes the same file.
    pub fn to_state(&self, admin_user_id: &UserId, admin_token: &str) -> StateFile {
        let mut teams: Vec<Team> = self.teams.values().cloned().collect();
        teams.sort_by(|a, b| a.name.cmp(&b.name));
        let mut team_members: Vec<TeamMemberRecord> = self
            .team_members
            .iter()
            .map(|((team_id, user_id), m)| TeamMemberRecord {
                team_id: team_id.clone(),
                user_id: user_id.clone(),
                scheme_admin: m.scheme_admin,
                create_at: m.create_at,
            })
            .collect();
        team_members.sort_by(|a, b| (&a.team_id, &a.user_id).cmp(&(&b.team_id, &b.user_id)));
        let mut channels: Vec<Channel> = self.channels.values().cloned().collect();
        channels.sort_by(|a, b| (&a.team_id, &a.name).cmp(&(&b.team_id, &b.name)));
        let mut channel_members: Vec<ChannelMemberRecord> = self
            .channel_members
            .iter()
            .map(|((channel_id, user_id), m)| ChannelMemberRecord {
                channel_id: channel_id.clone(),
                user_id: user_id.clone(),
                scheme_admin: m.scheme_admin,
                last_update_at: m.last_update_at,
            })
            .collect();
        channel_members
            .sort_by(|a, b| (&a.channel_id, &a.user_id).cmp(&(&b.channel_id, &b.user_id)));
        StateFile {
            format: FORMAT.to_owned(),
            version: VERSION,
            tokens_enabled: self.tokens_enabled,
            admin: AdminRecord {
                user_id: admin_user_id.clone(),
                token: admin_token.to_owned(),
            },
            users: self.users_in_order().cloned().collect(),
            tokens: self
                .all_tokens()
                .map(|t| TokenRecord {
                    id: t.id.clone(),
                    token: t.value.clone(),
                    user_id: t.user_id.clone(),
                    description: t.description.clone(),
                    is_active: t.is_active,
                    expires_at: t.expires_at,
                })
                .collect(),
            teams,
            team_members,
            channels,
            channel_members,
        }
    }

    /// Rebuilds the state, indexes included, from a state file. Returns the
    /// admin user's id and the admin token value, which the caller turns
    /// into the admin session (or replaces). Refuses a file whose parts do
    /// not fit together: duplicate ids, emails, usernames, token values or
    /// names, or records pointing at users, teams or channels that are not
    /// there. Messages name ids, never token values.
    pub fn from_state(state: StateFile) -> Result<(Data, UserId, String), String> {
        let mut data = Data::new(state.tokens_enabled);
        for user in state.users {
            let email = user.email.trim().to_lowercase();
            let username = user.username.trim().to_lowercase();
            if data.users.contains_key(&user.id) {
                return Err(format!("user {} appears twice", user.id));
            }
            if email.is_empty() || data.by_email.contains_key(&email) {
                return Err(format!("user {} has an empty or duplicate email", user.id));
            }
            if username.is_empty() || data.by_username.contains_key(&username) {
                return Err(format!(
                    "user {} has an empty or duplicate username",
                    user.id
                ));
            }
            data.by_email.insert(email, user.id.clone());
            data.by_username.insert(username, user.id.clone());
            data.users.insert(user.id.clone(), user);
        }
        for record in state.tokens {
            if data.tokens.contains_key(&record.id) {
                return Err(format!("token {} appears twice", record.id));
            }
            if record.token.is_empty() || data.token_by_value.contains_key(&record.token) {
                return Err(format!(
                    "token {} has an empty value or the value of another token",
                    record.id
                ));
            }
            if !data.users.contains_key(&record.user_id) {
                return Err(format!(
                    "token {} belongs to user {}, who is not in the file",
                    record.id, record.user_id
                ));
            }
            let seq = data.next_seq;
            data.next_seq += 1;
            data.token_by_value
                .insert(record.token.clone(), record.id.clone());
            data.tokens_by_user
                .entry(record.user_id.clone())
                .or_default()
                .push(record.id.clone());
            data.token_order.insert(seq, record.id.clone());
            data.tokens.insert(
                record.id.clone(),
                Token {
                    id: record.id,
                    value: record.token,
                    user_id: record.user_id,
                    description: record.description,
                    is_active: record.is_active,
                    expires_at: record.expires_at,
                    seq,
                },
            );
        }
        for team in state.teams {
            if data.teams.contains_key(&team.id) {
                return Err(format!("team {} appears twice", team.id));
            }
            if team.name.is_empty() || data.team_by_name.contains_key(&team.name) {
                return Err(format!("team {} has an empty or duplicate name", team.id));
            }
            data.team_by_name.insert(team.name.clone(), team.id.clone());
            data.teams.insert(team.id.clone(), team);
        }
        for m in state.team_members {
            if !data.teams.contains_key(&m.team_id) || !data.users.contains_key(&m.user_id) {
                return Err(format!(
                    "team membership of user {} in team {} names an unknown team or user",
                    m.user_id, m.team_id
                ));
            }
            let member = TeamMember {
                scheme_admin: m.scheme_admin,
                create_at: m.create_at,
            };
            if data
                .team_members
                .insert((m.team_id.clone(), m.user_id.clone()), member)
                .is_some()
            {
                return Err(format!(
                    "team membership of user {} in team {} appears twice",
                    m.user_id, m.team_id
                ));
            }
        }
        for channel in state.channels {
            if data.channels.contains_key(&channel.id) {
                return Err(format!("channel {} appears twice", channel.id));
            }
            if !data.teams.contains_key(&channel.team_id) {
                return Err(format!(
                    "channel {} is in team {}, which is not in the file",
                    channel.id, channel.team_id
                ));
            }
            if !matches!(channel.kind, 'O' | 'P') {
                return Err(format!("channel {} has an unknown kind", channel.id));
            }
            let key = (channel.team_id.clone(), channel.name.clone());
            if channel.name.is_empty() || data.channel_by_name.contains_key(&key) {
                return Err(format!(
                    "channel {} has an empty name or the name of another channel in its team",
                    channel.id
                ));
            }
            data.channel_by_name.insert(key, channel.id.clone());
            data.channels.insert(channel.id.clone(), channel);
        }
        for m in state.channel_members {
            if !data.channels.contains_key(&m.channel_id) || !data.users.contains_key(&m.user_id) {
                return Err(format!(
                    "channel membership of user {} in channel {} names an unknown channel or user",
                    m.user_id, m.channel_id
                ));
            }
            let member = ChannelMember {
                scheme_admin: m.scheme_admin,
                last_update_at: m.last_update_at,
            };
            if data
                .channel_members
                .insert((m.channel_id.clone(), m.user_id.clone()), member)
                .is_some()
            {
                return Err(format!(
                    "channel membership of user {} in channel {} appears twice",
                    m.user_id, m.channel_id
                ));
            }
        }
        if !data.users.contains_key(&state.admin.user_id) {
            return Err(format!(
                "the admin, user {}, is not in the file",
                state.admin.user_id
            ));
        }
        if state.admin.token.is_empty() {
            return Err("the admin token is empty".to_owned());
        }
        Ok((data, state.admin.user_id, state.admin.token))
    }
}
