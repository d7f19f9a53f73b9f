//! Request and response types of the Mattermost API (v4).
//!
//! Response types accept unknown fields and default the missing ones (the
//! server omits empty fields); ids are required.

use std::collections::HashMap;
use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize, Serializer};

use crate::ids::{AccessToken, ChannelId, TeamId, TokenId, UserId};

/// A Mattermost user.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct User {
    /// The user id.
    pub id: UserId,
    /// Lowercase username.
    #[serde(default)]
    pub username: String,
    /// Lowercase email (may be empty when privacy settings hide it).
    #[serde(default)]
    pub email: String,
    /// First name.
    #[serde(default)]
    pub first_name: String,
    /// Last name.
    #[serde(default)]
    pub last_name: String,
    /// Nickname.
    #[serde(default)]
    pub nickname: String,
    /// Position.
    #[serde(default)]
    pub position: String,
    /// Space-separated roles, e.g. `system_user` or `system_admin system_user`.
    #[serde(default)]
    pub roles: String,
    /// The external auth service (`gitlab`, `saml`, ...), empty for email login.
    #[serde(default)]
    pub auth_service: String,
    /// Whether the email is verified.
    #[serde(default)]
    pub email_verified: bool,
    /// Locale.
    #[serde(default)]
    pub locale: String,
    /// Deactivation time in ms since the epoch; 0 while active.
    #[serde(default)]
    pub delete_at: i64,
    /// Creation time in ms since the epoch.
    #[serde(default)]
    pub create_at: i64,
    /// Last update in ms since the epoch.
    #[serde(default)]
    pub update_at: i64,
    /// Whether the account is a bot's.
    #[serde(default)]
    pub is_bot: bool,
    /// Free-form string properties (`props`). The library marks accounts it
    /// creates here (see [`UserSync`](crate::UserSync)). Values that are
    /// not strings are left out.
    #[serde(default, deserialize_with = "de_string_map")]
    pub props: HashMap<String, String>,
}

impl User {
    /// The account's system roles (`roles` split on whitespace).
    pub fn roles(&self) -> impl Iterator<Item = &str> {
        self.roles.split_whitespace()
    }

    /// Whether the user has been deactivated.
    pub fn is_deactivated(&self) -> bool {
        self.delete_at != 0
    }

    /// Whether `roles` contains `system_admin`.
    pub fn is_system_admin(&self) -> bool {
        self.roles().any(|r| r == "system_admin")
    }
}

/// A string map that tolerates `null` and leaves out non-string values.
fn de_string_map<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<HashMap<String, String>, D::Error> {
    let raw: Option<HashMap<String, serde_json::Value>> = Option::deserialize(d)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(k, v)| match v {
            serde_json::Value::String(s) => Some((k, s)),
            _ => None,
        })
        .collect())
}

fn ser_secret_opt<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(p) => s.serialize_str(p.expose_secret()),
        None => s.serialize_none(),
    }
}

/// Body of `POST /users`.
#[derive(Clone, Default, Serialize)]
pub struct CreateUser {
    /// Email (required).
    pub email: String,
    /// Username (required).
    pub username: String,
    /// First name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub first_name: String,
    /// Last name.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_name: String,
    /// Nickname.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nickname: String,
    /// Password; required when `auth_service` is empty.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "ser_secret_opt"
    )]
    pub password: Option<SecretString>,
    /// External auth service for SSO users (`gitlab`, `saml`, `openid`, ...).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_service: String,
    /// The user's id in the external auth service.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub auth_data: String,
    /// Mark the email verified (admins only).
    pub email_verified: bool,
    /// Locale.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub locale: String,
    /// Free-form string properties stored on the account.
    #[serde(skip_serializing_if = "HashMap::is_empty")]
    pub props: HashMap<String, String>,
}

impl fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CreateUser")
            .field("email", &self.email)
            .field("username", &self.username)
            .field("first_name", &self.first_name)
            .field("last_name", &self.last_name)
            .field("nickname", &self.nickname)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("auth_service", &self.auth_service)
            .field("auth_data", &self.auth_data)
            .field("email_verified", &self.email_verified)
            .field("locale", &self.locale)
            .field("props", &self.props)
            .finish()
    }
}

/// Body of `PUT /users/{user_id}/patch`: only the fields that are `Some` change.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct UserPatch {
    /// New username.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// New email.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    /// New first name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_name: Option<String>,
    /// New last name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_name: Option<String>,
    /// New nickname.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nickname: Option<String>,
    /// New position.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub position: Option<String>,
    /// New locale.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub locale: Option<String>,
}

impl UserPatch {
    /// Whether the patch changes nothing.
    pub fn is_empty(&self) -> bool {
        self == &UserPatch::default()
    }
}

/// A personal access token as listed (without its secret value, which the
/// server returns only once, at creation).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct PersonalAccessToken {
    /// The token's id.
    pub id: TokenId,
    /// The owner.
    pub user_id: UserId,
    /// The description given at creation.
    #[serde(default)]
    pub description: String,
    /// Whether the token is enabled.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// When the token expires, in ms since the epoch; `None` (or absent, on
    /// servers without token expiry) when it does not.
    #[serde(
        default,
        deserialize_with = "expiry",
        skip_serializing_if = "Option::is_none"
    )]
    pub expires_at: Option<i64>,
}

/// Mattermost writes `0` (or nothing) for a token that does not expire.
fn expiry<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
    Ok(Option::<i64>::deserialize(d)?.filter(|ms| *ms > 0))
}

fn yes() -> bool {
    true
}

/// A freshly minted personal access token, with its secret value.
#[derive(Clone, Debug, Deserialize)]
pub struct CreatedToken {
    /// The token's id.
    pub id: TokenId,
    /// The secret value: store it now, it cannot be read back later.
    pub token: AccessToken,
    /// The owner.
    pub user_id: UserId,
    /// The description given at creation.
    #[serde(default)]
    pub description: String,
    /// Whether the token is enabled.
    #[serde(default = "yes")]
    pub is_active: bool,
    /// When the token expires, in ms since the epoch. `None` when it does not
    /// expire, or when the server does not support expiry (it then ignores
    /// an `expires_at` asked for and the token does not expire).
    #[serde(default, deserialize_with = "expiry")]
    pub expires_at: Option<i64>,
}

/// Body of `POST /users/{user_id}/tokens`.
#[derive(Clone, Debug, Serialize)]
pub struct CreateToken {
    /// Required, at most 255 characters.
    pub description: String,
    /// Expiry in ms since the epoch; only newer servers accept it, omit it
    /// otherwise.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// A team.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct Team {
    /// The team id.
    pub id: TeamId,
    /// URL name.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// `O` open or `I` invite-only.
    #[serde(rename = "type")]
    pub team_type: String,
}

/// A user's membership in a team.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct TeamMember {
    /// The team.
    pub team_id: TeamId,
    /// The user.
    pub user_id: UserId,
    /// Space-separated team roles.
    pub roles: String,
}

/// Channel type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub enum ChannelType {
    /// Open (public) channel.
    #[serde(rename = "O")]
    Open,
    /// Private channel.
    #[serde(rename = "P")]
    Private,
    /// Direct message.
    #[serde(rename = "D")]
    Direct,
    /// Group message.
    #[serde(rename = "G")]
    Group,
}

/// A channel.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
pub struct Channel {
    /// The channel id.
    pub id: ChannelId,
    /// The team it belongs to (empty for direct and group messages).
    #[serde(default)]
    pub team_id: TeamId,
    /// URL name.
    #[serde(default)]
    pub name: String,
    /// Display name.
    #[serde(default)]
    pub display_name: String,
    /// Type.
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// Purpose.
    #[serde(default)]
    pub purpose: String,
    /// Header.
    #[serde(default)]
    pub header: String,
}

/// Body of `POST /channels`.
#[derive(Clone, Debug, Serialize)]
pub struct CreateChannel {
    /// The team.
    pub team_id: TeamId,
    /// URL name: lowercase letters, digits, `-` and `_`, at most 64.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// [`ChannelType::Open`] or [`ChannelType::Private`].
    #[serde(rename = "type")]
    pub channel_type: ChannelType,
    /// Purpose.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub purpose: String,
    /// Header.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub header: String,
}

/// A user's membership in a channel.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
pub struct ChannelMember {
    /// The channel.
    pub channel_id: ChannelId,
    /// The user.
    pub user_id: UserId,
    /// Space-separated channel roles.
    pub roles: String,
}

/// `{"status": "OK"}` answers.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(default)]
pub struct StatusOk {
    /// `OK` on success.
    pub status: String,
}

/// The client configuration (`GET /config/client?format=old`): string values
/// by key.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(transparent)]
pub struct ClientConfig(pub HashMap<String, serde_json::Value>);

impl ClientConfig {
    /// A value as string.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.as_str())
    }

    /// `EnableUserAccessTokens`: `Some(true/false)` when the key is present
    /// (it is only sent to authenticated callers).
    pub fn user_access_tokens_enabled(&self) -> Option<bool> {
        self.get("EnableUserAccessTokens").map(|v| v == "true")
    }

    /// The server version reported in the config, if any.
    pub fn version(&self) -> Option<&str> {
        self.get("Version")
    }
}

/// The server's active-user limit (`GET /limits/server`; camelCase on the
/// wire; 0 means no limit). Unlicensed servers cap active users at a
/// constant that differs by release; licensed servers with seat enforcement
/// at their seats. Bots do not count.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "camelCase", default)]
#[non_exhaustive]
pub struct ServerLimits {
    /// The soft limit (0: none).
    pub max_users_limit: u64,
    /// The hard limit, where creates and reactivations are refused (0:
    /// none).
    pub max_users_hard_limit: u64,
    /// Active users now (bots aside).
    pub active_user_count: u64,
}

impl ServerLimits {
    /// The limit that refuses new users: the hard one, else the soft one;
    /// `None` without a limit.
    pub fn limit(&self) -> Option<u64> {
        [self.max_users_hard_limit, self.max_users_limit]
            .into_iter()
            .find(|l| *l > 0)
    }

    /// How many more users fit; `None` without a limit.
    pub fn room(&self) -> Option<u64> {
        self.limit()
            .map(|l| l.saturating_sub(self.active_user_count))
    }
}

impl fmt::Display for ServerLimits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.limit() {
            Some(l) => write!(f, "active {} of {l}", self.active_user_count),
            None => write!(f, "active {}, no limit", self.active_user_count),
        }
    }
}

/// A role and its permissions (`POST /roles/names`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default)]
#[non_exhaustive]
pub struct Role {
    /// Its name (`system_admin`, `system_user`, ...).
    pub name: String,
    /// The permissions it grants (`manage_system`, `edit_other_users`, ...).
    pub permissions: Vec<String>,
}
