use super::check_id;
use crate::client::{Acting, Request};
use crate::error::Error;
use crate::ids::{ChannelId, TeamId, UserId};
use crate::models::{Channel, ChannelMember, CreateChannel, Team, TeamMember};

impl Acting {
    /// `POST /teams/{team_id}/members`: adds a user to a team (an existing
    /// member is returned without error).
    pub async fn add_team_member(&self, team: &TeamId, user: &UserId) -> Result<TeamMember, Error> {
        check_id("team id", team.as_str())?;
        check_id("user id", user.as_str())?;
        self.call(
            Request::post(&["teams", team.as_str(), "members"])
                .json(&serde_json::json!({ "team_id": team, "user_id": user }))?
                .idempotent(),
        )
        .await
    }

    /// `GET /teams/name/{name}`.
    pub async fn team_by_name(&self, name: &str) -> Result<Team, Error> {
        self.call(Request::get(&["teams", "name", name])).await
    }

    /// `POST /channels`: creates a channel; the acting user becomes its admin.
    pub async fn create_channel(&self, channel: &CreateChannel) -> Result<Channel, Error> {
        check_id("team id", channel.team_id.as_str())?;
        self.call(Request::post(&["channels"]).json(channel)?).await
    }

    /// `GET /channels/{channel_id}` (404 when missing or not visible to the
    /// acting user).
    pub async fn channel(&self, id: &ChannelId) -> Result<Channel, Error> {
        check_id("channel id", id.as_str())?;
        self.call(Request::get(&["channels", id.as_str()])).await
    }

    /// `GET /teams/{team_id}/channels/name/{channel_name}` (404 when missing
    /// or not visible to the acting user).
    pub async fn channel_by_name(&self, team: &TeamId, name: &str) -> Result<Channel, Error> {
        check_id("team id", team.as_str())?;
        self.call(Request::get(&[
            "teams",
            team.as_str(),
            "channels",
            "name",
            name,
        ]))
        .await
    }

    /// `POST /channels/{channel_id}/members` with one user. Acting as a user
    /// with their own id, this is "join the channel", attributed to them.
    pub async fn add_channel_member(
        &self,
        channel: &ChannelId,
        user: &UserId,
    ) -> Result<ChannelMember, Error> {
        check_id("channel id", channel.as_str())?;
        check_id("user id", user.as_str())?;
        self.call(
            Request::post(&["channels", channel.as_str(), "members"])
                .json(&serde_json::json!({ "user_id": user }))?
                .idempotent(),
        )
        .await
    }

    /// `POST /channels/{channel_id}/members` with up to 1000 users.
    pub async fn add_channel_members(
        &self,
        channel: &ChannelId,
        users: &[UserId],
    ) -> Result<Vec<ChannelMember>, Error> {
        check_id("channel id", channel.as_str())?;
        if users.is_empty() || users.len() > 1000 {
            return Err(Error::InvalidInput(
                "add between 1 and 1000 users at once".into(),
            ));
        }
        self.call(
            Request::post(&["channels", channel.as_str(), "members"])
                .json(&serde_json::json!({ "user_ids": users }))?
                .idempotent(),
        )
        .await
    }
}
