//! What the stand-in's inspection and arrangement methods hand out and take:
//! snapshots of users, tokens, teams and channels, and new users.

use mattermost_tokens::ids::{AccessToken, ChannelId, TeamId, TokenId, UserId};
use serde_json::{Map, Value};

use crate::model::{Token, User};

/// A user as the stand-in holds it.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct UserSnapshot {
    /// The user's id.
    pub id: UserId,
    /// Lowercased username.
    pub username: String,
    /// Lowercased email.
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Nickname.
    pub nickname: String,
    /// Position.
    pub position: String,
    /// Space-separated system roles, e.g. `system_user`.
    pub roles: String,
    /// `""` for email/password users, else the SSO service.
    pub auth_service: String,
    /// Whether the email counts as verified.
    pub email_verified: bool,
    /// Deactivation time in ms since the epoch; `0` while active.
    pub delete_at: i64,
    /// Creation time in ms since the epoch.
    pub create_at: i64,
    /// Last update in ms since the epoch.
    pub update_at: i64,
    /// Locale, e.g. `en`.
    pub locale: String,
    /// Free-form props.
    pub props: Map<String, Value>,
    /// The user's id in the SSO service (never in API answers).
    pub auth_data: String,
    /// A bot account.
    pub is_bot: bool,
}

impl UserSnapshot {
    /// Not deactivated.
    pub fn is_active(&self) -> bool {
        self.delete_at == 0
    }
}

impl From<&User> for UserSnapshot {
    fn from(u: &User) -> Self {
        Self {
            id: u.id.clone(),
            username: u.username.clone(),
            email: u.email.clone(),
            first_name: u.first_name.clone(),
            last_name: u.last_name.clone(),
            nickname: u.nickname.clone(),
            position: u.position.clone(),
            roles: u.roles.clone(),
            auth_service: u.auth_service.clone(),
            email_verified: u.email_verified,
            delete_at: u.delete_at,
            create_at: u.create_at,
            update_at: u.update_at,
            locale: u.locale.clone(),
            props: u.props.clone(),
            auth_data: u.auth_data.clone(),
            is_bot: u.is_bot,
        }
    }
}

/// A personal access token as the stand-in holds it, without its secret
/// (see [`StandIn::token_value`](super::StandIn::token_value) for that).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TokenSnapshot {
    /// The token's id.
    pub id: TokenId,
    /// Its owner.
    pub user_id: UserId,
    /// The description given at creation.
    pub description: String,
    /// `false` once disabled.
    pub is_active: bool,
    /// When it expires (ms since the epoch); `None` when it does not.
    pub expires_at: Option<i64>,
}

impl From<&Token> for TokenSnapshot {
    fn from(t: &Token) -> Self {
        Self {
            id: t.id.clone(),
            user_id: t.user_id.clone(),
            description: t.description.clone(),
            is_active: t.is_active,
            expires_at: t.expires_at,
        }
    }
}

/// A token minted with [`StandIn::mint_token_directly`](super::StandIn::mint_token_directly). `Debug` hides the
/// secret.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct MintedToken {
    /// The token's id.
    pub id: TokenId,
    /// Its owner.
    pub user_id: UserId,
    /// The secret value.
    pub token: AccessToken,
}

/// A team as the stand-in holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TeamSnapshot {
    /// The team's id.
    pub id: TeamId,
    /// URL name, e.g. `demo`.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Open to anyone (`type` `O`), or invite-only (`I`).
    pub open: bool,
}

/// A channel as the stand-in holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct ChannelSnapshot {
    /// The channel's id.
    pub id: ChannelId,
    /// Its team.
    pub team_id: TeamId,
    /// URL name, e.g. `town-square`.
    pub name: String,
    /// Display name.
    pub display_name: String,
    /// Open (`O`) rather than private (`P`).
    pub open: bool,
    /// Who created it.
    pub creator_id: UserId,
}

/// A user to put straight into the stand-in with
/// [`StandIn::create_user_directly`](super::StandIn::create_user_directly): one that already exists in Mattermost
/// but is new to the app.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct NewUser {
    /// Username (lowercased; 3-22 characters, starting with a letter).
    pub username: String,
    /// Email (lowercased).
    pub email: String,
    /// First name.
    pub first_name: String,
    /// Last name.
    pub last_name: String,
    /// Nickname.
    pub nickname: String,
    /// SSO service (`""` for email/password users).
    pub auth_service: String,
    /// System roles; `None` is `system_user`.
    pub roles: Option<String>,
    /// Whether the email counts as verified.
    pub email_verified: bool,
    /// The user's id in the SSO service (with `auth_service`).
    pub auth_data: String,
    /// A bot account.
    pub is_bot: bool,
    /// Free-form string props.
    pub props: Vec<(String, String)>,
}

impl NewUser {
    /// A plain `system_user` with this username and email.
    pub fn new(username: impl Into<String>, email: impl Into<String>) -> Self {
        Self {
            username: username.into(),
            email: email.into(),
            ..Self::default()
        }
    }

    /// With these names.
    pub fn names(mut self, first_name: impl Into<String>, last_name: impl Into<String>) -> Self {
        self.first_name = first_name.into();
        self.last_name = last_name.into();
        self
    }

    /// With these system roles, e.g. `"system_user system_user_access_token"`.
    pub fn roles(mut self, roles: impl Into<String>) -> Self {
        self.roles = Some(roles.into());
        self
    }

    /// Signing in through `service` (`ldap`, `saml`, `gitlab`, ...) as `data`.
    pub fn auth(mut self, service: impl Into<String>, data: impl Into<String>) -> Self {
        self.auth_service = service.into();
        self.auth_data = data.into();
        self
    }

    /// A bot account.
    pub fn bot(mut self) -> Self {
        self.is_bot = true;
        self
    }

    /// With this prop.
    pub fn prop(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.props.push((key.into(), value.into()));
        self
    }
}
