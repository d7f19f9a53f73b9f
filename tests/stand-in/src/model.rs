//! The stand-in's state: users, personal access tokens, sessions, teams,
//! channels and memberships, with the indexes that keep lookups O(1), and
//! the rules Mattermost applies when they change.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use mattermost_tokens::ids::{ChannelId, TeamId, TokenId, UserId};
use rand::Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::clock::{millis, now_ms};
use crate::error::AppError;
use crate::state::{
    AdminRecord, ChannelMemberRecord, FORMAT, StateFile, TeamMemberRecord, TokenRecord, VERSION,
};

/// The stand-in's maps: keys are ids and names the stand-in serves, so a
/// fast hash is enough (it is a test server on the loopback interface).
pub(crate) type FastMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// Mattermost's id alphabet (`model.NewId`: base32 with its own encoding).
const ID_ALPHABET: &[u8; 32] = b"ybndrfg8ejkmcpqxot1uwisza345h769";

/// A new 26-character id, as `model.NewId()` makes.
pub(crate) fn new_id() -> String {
    let mut rng = rand::rng();
    (0..26)
        .map(|_| ID_ALPHABET[rng.random_range(0..ID_ALPHABET.len())] as char)
        .collect()
}

const RESERVED_USERNAMES: [&str; 4] = ["all", "channel", "matterbot", "system"];
/// Roles `PUT /users/{id}/roles` accepts.
const KNOWN_SYSTEM_ROLES: [&str; 9] = [
    "system_user",
    "system_admin",
    "system_guest",
    "system_user_access_token",
    "system_post_all",
    "system_post_all_public",
    "system_read_only_admin",
    "system_manager",
    "system_user_manager",
];

/// A Mattermost user. Serialises as the API's `User` object (no password is
/// kept at all); the state file holds the same object.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct User {
    pub id: UserId,
    pub create_at: i64,
    pub update_at: i64,
    pub delete_at: i64,
    pub username: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub auth_data: String,
    pub auth_service: String,
    pub email: String,
    pub email_verified: bool,
    pub nickname: String,
    pub first_name: String,
    pub last_name: String,
    pub position: String,
    pub roles: String,
    pub props: Map<String, Value>,
    pub notify_props: Map<String, Value>,
    pub last_password_update: i64,
    pub locale: String,
    pub timezone: Map<String, Value>,
    pub disable_welcome_email: bool,
}

impl User {
    pub fn is_active(&self) -> bool {
        self.delete_at == 0
    }

    pub fn has_role(&self, role: &str) -> bool {
        self.roles.split_whitespace().any(|r| r == role)
    }

    pub fn is_system_admin(&self) -> bool {
        self.has_role("system_admin")
    }
}

/// How the stand-in treats `expires_at` on new personal access tokens.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenExpiry {
    /// Like a server without token expiry: `expires_at` is ignored, answers
    /// carry none, and tokens never expire.
    Unsupported,
    /// Expiry is optional: an `expires_at` given is kept (refused when in
    /// the past) and the token stops working then.
    Optional,
    /// A lifetime policy: every new token must expire, at most
    /// `max_lifetime` from now.
    Required {
        /// The longest lifetime allowed.
        max_lifetime: std::time::Duration,
    },
}

/// A personal access token, with its secret value.
#[derive(Clone)]
pub(crate) struct Token {
    pub id: TokenId,
    pub value: String,
    pub user_id: UserId,
    pub description: String,
    pub is_active: bool,
    /// Ms since the epoch; `None` when the token does not expire.
    pub expires_at: Option<i64>,
    seq: u64,
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Token")
            .field("id", &self.id)
            .field("value", &"[REDACTED]")
            .field("user_id", &self.user_id)
            .field("description", &self.description)
            .field("is_active", &self.is_active)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// The token object as list/get answers show it: without the secret.
#[derive(Serialize)]
pub(crate) struct TokenView<'a> {
    pub id: &'a TokenId,
    pub user_id: &'a UserId,
    pub description: &'a str,
    pub is_active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// The token object the create answer shows: with the secret.
#[derive(Serialize)]
pub(crate) struct CreatedView<'a> {
    pub id: &'a TokenId,
    pub token: &'a str,
    pub user_id: &'a UserId,
    pub description: &'a str,
    pub is_active: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

impl Token {
    pub fn view(&self) -> TokenView<'_> {
        TokenView {
            id: &self.id,
            user_id: &self.user_id,
            description: &self.description,
            is_active: self.is_active,
            expires_at: self.expires_at,
        }
    }

    /// The create response, the only place the secret is ever shown.
    pub fn created(&self) -> CreatedView<'_> {
        CreatedView {
            id: &self.id,
            token: &self.value,
            user_id: &self.user_id,
            description: &self.description,
            is_active: self.is_active,
            expires_at: self.expires_at,
        }
    }
}

/// A team. The state file holds it as is; the API sees [`Team::to_json`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) struct Team {
    pub id: TeamId,
    pub name: String,
    pub display_name: String,
    pub open: bool,
    pub create_at: i64,
    pub invite_id: String,
}

impl Team {
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "create_at": self.create_at,
            "update_at": self.create_at,
            "delete_at": 0,
            "display_name": self.display_name,
            "name": self.name,
            "description": "",
            "email": "",
            "type": if self.open { "O" } else { "I" },
            "company_name": "",
            "allowed_domains": "",
            "invite_id": self.invite_id,
            "allow_open_invite": self.open,
            "scheme_id": null,
            "group_constrained": false,
            "policy_id": null,
        })
    }
}

#[derive(Clone, Debug)]
pub(crate) struct TeamMember {
    pub scheme_admin: bool,
    pub create_at: i64,
}

pub(crate) fn team_member_json(team_id: &TeamId, user_id: &UserId, m: &TeamMember) -> Value {
    json!({
        "team_id": team_id,
        "user_id": user_id,
        "roles": if m.scheme_admin { "team_user team_admin" } else { "team_user" },
        "delete_at": 0,
        "scheme_guest": false,
        "scheme_user": true,
        "scheme_admin": m.scheme_admin,
        "explicit_roles": "",
        "create_at": m.create_at,
    })
}

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

/// Everything a new user is made from, by the HTTP API or directly.
#[derive(Clone, Default)]
pub(crate) struct UserDraft {
    pub email: String,
    pub username: String,
    pub first_name: String,
    pub last_name: String,
    pub nickname: String,
    pub position: String,
    pub password: String,
    pub auth_service: String,
    pub auth_data: String,
    pub locale: String,
    pub props: Map<String, Value>,
    pub notify_props: Map<String, Value>,
    pub email_verified: bool,
    pub roles: Option<String>,
    /// Users arranged directly by a test skip the password policy, as users
    /// created by other means (SSO, another tool) would have.
    pub skip_password_policy: bool,
}

/// The fields `PUT /users/{id}/patch` may change.
#[derive(Clone, Debug, Default, serde::Deserialize)]
#[serde(default)]
pub(crate) struct UserPatch {
    pub username: Option<String>,
    pub nickname: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub position: Option<String>,
    pub email: Option<String>,
    pub props: Option<Map<String, Value>>,
    pub notify_props: Option<Map<String, Value>>,
    pub locale: Option<String>,
    pub timezone: Option<Map<String, Value>>,
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

/// The stand-in's whole state. Held behind one mutex; never across an await.
pub(crate) struct Data {
    pub users: FastMap<UserId, User>,
    by_email: FastMap<String, UserId>,
    by_username: BTreeMap<String, UserId>,
    pub tokens: FastMap<TokenId, Token>,
    token_by_value: FastMap<String, TokenId>,
    tokens_by_user: FastMap<UserId, Vec<TokenId>>,
    token_order: BTreeMap<u64, TokenId>,
    next_seq: u64,
    sessions: FastMap<String, UserId>,
    pub teams: FastMap<TeamId, Team>,
    team_by_name: FastMap<String, TeamId>,
    pub team_members: FastMap<(TeamId, UserId), TeamMember>,
    pub channels: FastMap<ChannelId, Channel>,
    channel_by_name: FastMap<(TeamId, String), ChannelId>,
    pub channel_members: FastMap<(ChannelId, UserId), ChannelMember>,
    pub tokens_enabled: bool,
    pub token_expiry: TokenExpiry,
}

impl fmt::Debug for Data {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Data")
            .field("users", &self.users.len())
            .field("tokens", &self.tokens.len())
            .field("teams", &self.teams.len())
            .field("channels", &self.channels.len())
            .field("tokens_enabled", &self.tokens_enabled)
            .finish_non_exhaustive()
    }
}

fn valid_username(name: &str, max: usize) -> bool {
    let mut chars = name.chars();
    name.len() >= 3
        && name.len() <= max
        && chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '-' | '_'))
        && !RESERVED_USERNAMES.contains(&name)
}

fn valid_email(email: &str) -> bool {
    let Some((local, domain)) = email.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !domain.is_empty()
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && !email.chars().any(|c| {
            c.is_whitespace() || c.is_control() || matches!(c, '<' | '>' | ',' | '"' | '(' | ')')
        })
}

/// Channel names: `^[a-z0-9]+([a-z\-_0-9]+|(__)?)[a-z0-9]*$`, which comes down
/// to a lowercase letter or digit followed by letters, digits, `-` and `_`.
pub(crate) fn valid_channel_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
}

fn user_invalid(field: &str) -> AppError {
    AppError::new(
        400,
        format!("model.user.is_valid.{field}.app_error"),
        format!("Invalid {field}."),
    )
}

/// Clamps page parameters as the server does: bad values fall back to the
/// defaults, `per_page` above 200 is cut to 200.
pub(crate) fn paging(page: Option<&str>, per_page: Option<&str>) -> (usize, usize) {
    let page = page.and_then(|p| p.parse::<usize>().ok()).unwrap_or(0);
    let per_page = per_page
        .and_then(|p| p.parse::<usize>().ok())
        .unwrap_or(60)
        .min(200);
    (page, per_page)
}

impl Data {
    pub fn new(tokens_enabled: bool) -> Self {
        Self {
            users: FastMap::default(),
            by_email: FastMap::default(),
            by_username: BTreeMap::new(),
            tokens: FastMap::default(),
            token_by_value: FastMap::default(),
            tokens_by_user: FastMap::default(),
            token_order: BTreeMap::new(),
            next_seq: 0,
            sessions: FastMap::default(),
            teams: FastMap::default(),
            team_by_name: FastMap::default(),
            team_members: FastMap::default(),
            channels: FastMap::default(),
            channel_by_name: FastMap::default(),
            channel_members: FastMap::default(),
            tokens_enabled,
            token_expiry: TokenExpiry::Optional,
        }
    }

    // ---- users ----

    pub fn user_by_email(&self, email: &str) -> Option<&User> {
        self.by_email
            .get(&email.trim().to_lowercase())
            .and_then(|id| self.users.get(id))
    }

    pub fn user_by_username(&self, username: &str) -> Option<&User> {
        self.by_username
            .get(&username.to_lowercase())
            .and_then(|id| self.users.get(id))
    }

    /// Users in username order, the order `GET /users` pages through.
    pub fn users_in_order(&self) -> impl Iterator<Item = &User> {
        self.by_username
            .values()
            .filter_map(|id| self.users.get(id))
    }

    /// `POST /users`: the password policy, `User.IsValid`, then uniqueness.
    pub fn create_user(&mut self, draft: UserDraft) -> Result<&User, AppError> {
        let email = draft.email.trim().to_lowercase();
        let username = draft.username.trim().to_lowercase();
        if draft.auth_service.is_empty() && !draft.skip_password_policy {
            if draft.password.chars().count() < 8 {
                return Err(AppError::new(
                    400,
                    "model.user.is_valid.pwd.app_error",
                    "Your password must contain at least 8 characters.",
                ));
            }
            if draft.password.len() > 72 {
                return Err(user_invalid("password_limit"));
            }
        }
        if !valid_username(&username, 22) {
            return Err(user_invalid("username"));
        }
        validate_profile(
            &email,
            &draft.nickname,
            &draft.first_name,
            &draft.last_name,
            &draft.position,
        )?;
        if !draft.auth_data.is_empty() && !draft.password.is_empty() {
            return Err(user_invalid("auth_data_pwd"));
        }
        if !draft.auth_data.is_empty() && draft.auth_service.is_empty() {
            return Err(user_invalid("auth_data_type"));
        }
        if draft.auth_data.len() > 128 {
            return Err(user_invalid("auth_data"));
        }
        if self.by_email.contains_key(&email) {
            return Err(AppError::new(
                400,
                "app.user.save.email_exists.app_error",
                "An account with that email already exists.",
            ));
        }
        if self.by_username.contains_key(&username) {
            return Err(AppError::new(
                400,
                "app.user.save.username_exists.app_error",
                "An account with that username already exists.",
            ));
        }
        let now = now_ms();
        let id = UserId::new(new_id());
        let user = User {
            id: id.clone(),
            create_at: now,
            update_at: now,
            delete_at: 0,
            username: username.clone(),
            auth_data: draft.auth_data,
            auth_service: draft.auth_service,
            email: email.clone(),
            email_verified: draft.email_verified,
            nickname: draft.nickname,
            first_name: draft.first_name,
            last_name: draft.last_name,
            position: draft.position,
            roles: draft.roles.unwrap_or_else(|| "system_user".to_owned()),
            props: draft.props,
            notify_props: if draft.notify_props.is_empty() {
                default_notify_props()
            } else {
                draft.notify_props
            },
            last_password_update: if draft.password.is_empty() { 0 } else { now },
            locale: if draft.locale.is_empty() {
                "en".to_owned()
            } else {
                draft.locale
            },
            timezone: default_timezone(),
            disable_welcome_email: false,
        };
        self.by_email.insert(email, id.clone());
        self.by_username.insert(username, id.clone());
        Ok(self.users.entry(id).or_insert(user))
    }

    /// `PUT /users/{id}/patch`.
    pub fn patch_user(&mut self, id: &UserId, patch: UserPatch) -> Result<&User, AppError> {
        let current = self.users.get(id).ok_or_else(AppError::missing_account)?;
        let mut next = current.clone();
        if let Some(v) = patch.username {
            next.username = v.trim().to_lowercase();
        }
        if let Some(v) = patch.email {
            next.email = v.trim().to_lowercase();
        }
        if let Some(v) = patch.nickname {
            next.nickname = v;
        }
        if let Some(v) = patch.first_name {
            next.first_name = v;
        }
        if let Some(v) = patch.last_name {
            next.last_name = v;
        }
        if let Some(v) = patch.position {
            next.position = v;
        }
        if let Some(v) = patch.props {
            next.props = v;
        }
        if let Some(v) = patch.notify_props {
            next.notify_props = v;
        }
        if let Some(v) = patch.locale {
            next.locale = v;
        }
        if let Some(v) = patch.timezone {
            next.timezone = v;
        }
        // The model accepts up to 64 characters; the 22 limit is for sign-up.
        if next.username != current.username && !valid_username(&next.username, 64) {
            return Err(user_invalid("username"));
        }
        validate_profile(
            &next.email,
            &next.nickname,
            &next.first_name,
            &next.last_name,
            &next.position,
        )?;
        if next.email != current.email && self.by_email.contains_key(&next.email) {
            return Err(AppError::new(
                400,
                "app.user.save.email_exists.app_error",
                "An account with that email already exists.",
            ));
        }
        if next.username != current.username && self.by_username.contains_key(&next.username) {
            return Err(AppError::new(
                400,
                "app.user.save.username_exists.app_error",
                "An account with that username already exists.",
            ));
        }
        let (old_email, old_username) = (current.email.clone(), current.username.clone());
        if next.email != old_email {
            self.by_email.remove(&old_email);
            self.by_email.insert(next.email.clone(), id.clone());
        }
        if next.username != old_username {
            self.by_username.remove(&old_username);
            self.by_username.insert(next.username.clone(), id.clone());
        }
        next.update_at = now_ms();
        let slot = self
            .users
            .get_mut(id)
            .ok_or_else(AppError::missing_account)?;
        *slot = next;
        Ok(slot)
    }

    /// `PUT /users/{id}/roles`.
    pub fn set_roles(&mut self, id: &UserId, roles: &str) -> Result<(), AppError> {
        let parts: Vec<&str> = roles.split_whitespace().collect();
        let valid = !parts.is_empty()
            && parts.iter().all(|r| KNOWN_SYSTEM_ROLES.contains(r))
            && (parts.contains(&"system_user") || parts.contains(&"system_guest"));
        if !valid {
            return Err(AppError::invalid_body_param("roles"));
        }
        let user = self
            .users
            .get_mut(id)
            .ok_or_else(AppError::missing_account)?;
        user.roles = parts.join(" ");
        user.update_at = now_ms();
        Ok(())
    }

    /// Deactivates (`active == false`) or reactivates a user. Deactivation
    /// ends the user's sessions; their tokens stay but stop working until
    /// the user is active again.
    pub fn set_active(&mut self, id: &UserId, active: bool) -> Result<(), AppError> {
        let user = self
            .users
            .get_mut(id)
            .ok_or_else(AppError::missing_account)?;
        let now = now_ms();
        if active {
            user.delete_at = 0;
        } else if user.delete_at == 0 {
            user.delete_at = now;
        }
        user.update_at = now;
        Ok(())
    }

    // ---- sessions and tokens ----

    pub fn add_session(&mut self, token: String, user_id: UserId) {
        self.sessions.insert(token, user_id);
    }

    /// The user a token value authenticates right now, or the 401 a real
    /// server gives: unknown or revoked token, disabled token, personal
    /// access tokens switched off, deactivated owner.
    pub fn authenticate(&self, token: &str) -> Result<&User, AppError> {
        let user_id = if let Some(user_id) = self.sessions.get(token) {
            user_id
        } else {
            let t = self
                .token_by_value
                .get(token)
                .and_then(|id| self.tokens.get(id))
                .ok_or_else(AppError::session_expired)?;
            if !t.is_active || !self.tokens_enabled || t.expires_at.is_some_and(|at| at <= now_ms())
            {
                return Err(AppError::session_expired());
            }
            &t.user_id
        };
        match self.users.get(user_id) {
            Some(user) if user.is_active() => Ok(user),
            _ => Err(AppError::session_expired()),
        }
    }

    /// `App.CreateUserAccessToken`: the owner must exist (404), the feature
    /// must be on (501, checked after the owner), the description valid.
    pub fn mint_token(
        &mut self,
        user_id: &UserId,
        description: &str,
        expires_at: Option<i64>,
        enforce_enabled: bool,
    ) -> Result<Token, AppError> {
        if !self.users.contains_key(user_id) {
            return Err(AppError::missing_account());
        }
        if enforce_enabled && !self.tokens_enabled {
            return Err(AppError::new(
                501,
                "app.user_access_token.disabled",
                "Personal access tokens are disabled on this server. Please contact your system administrator for details.",
            ));
        }
        if description.chars().count() > 255 {
            return Err(AppError::new(
                400,
                "model.user_access_token.is_valid.description.app_error",
                "Invalid description, must be 255 or less characters.",
            ));
        }
        let expires_at = if enforce_enabled {
            self.expiry_policy(expires_at)?
        } else {
            expires_at
        };
        let seq = self.next_seq;
        self.next_seq += 1;
        let token = Token {
            id: TokenId::new(new_id()),
            value: new_id(),
            user_id: user_id.clone(),
            description: description.to_owned(),
            is_active: true,
            expires_at,
            seq,
        };
        self.token_by_value
            .insert(token.value.clone(), token.id.clone());
        self.tokens_by_user
            .entry(user_id.clone())
            .or_default()
            .push(token.id.clone());
        self.token_order.insert(seq, token.id.clone());
        self.tokens.insert(token.id.clone(), token.clone());
        Ok(token)
    }

    /// The expiry a new token gets under the server's lifetime policy.
    fn expiry_policy(&self, asked: Option<i64>) -> Result<Option<i64>, AppError> {
        let refuse = |id: &'static str, message: &'static str| AppError::new(400, id, message);
        let now = now_ms();
        match (self.token_expiry, asked) {
            (TokenExpiry::Unsupported, _) => Ok(None),
            (_, Some(at)) if at <= now => Err(refuse(
                "app.user_access_token.expires_at_in_past",
                "The token expiry must be in the future.",
            )),
            (TokenExpiry::Optional, asked) => Ok(asked),
            (TokenExpiry::Required { .. }, None) => Err(refuse(
                "app.user_access_token.expires_at_required",
                "Personal access tokens on this server must have an expiry.",
            )),
            (TokenExpiry::Required { max_lifetime }, Some(at)) => {
                let max = millis(max_lifetime);
                if at - now > max {
                    Err(refuse(
                        "app.user_access_token.expires_at_too_far",
                        "The token expiry is further away than this server allows.",
                    ))
                } else {
                    Ok(Some(at))
                }
            }
        }
    }

    pub fn token(&self, id: &TokenId) -> Result<&Token, AppError> {
        self.tokens.get(id).ok_or_else(|| {
            AppError::new(
                404,
                "app.user_access_token.get_by_user.app_error",
                "Unable to get user access tokens by user.",
            )
        })
    }

    pub fn token_id_by_value(&self, value: &str) -> Option<&TokenId> {
        self.token_by_value.get(value)
    }

    /// The user's tokens in creation order.
    pub fn tokens_of(&self, user_id: &UserId) -> impl Iterator<Item = &Token> {
        self.tokens_by_user
            .get(user_id)
            .into_iter()
            .flatten()
            .filter_map(|id| self.tokens.get(id))
    }

    /// Every token in creation order.
    pub fn all_tokens(&self) -> impl Iterator<Item = &Token> {
        self.token_order
            .values()
            .filter_map(|id| self.tokens.get(id))
    }

    /// Revoking deletes the token (and with it every session made from it).
    pub fn revoke_token(&mut self, id: &TokenId) -> bool {
        let Some(token) = self.tokens.remove(id) else {
            return false;
        };
        self.token_by_value.remove(&token.value);
        self.token_order.remove(&token.seq);
        if let Some(list) = self.tokens_by_user.get_mut(&token.user_id) {
            list.retain(|t| t != id);
        }
        true
    }

    pub fn set_token_active(&mut self, id: &TokenId, active: bool) -> bool {
        match self.tokens.get_mut(id) {
            Some(t) => {
                t.is_active = active;
                true
            }
            None => false,
        }
    }

    /// Whether a token value would authenticate a request right now.
    pub fn token_is_live(&self, value: &str) -> bool {
        self.token_by_value.contains_key(value) && self.authenticate(value).is_ok()
    }

    // ---- teams ----

    pub fn add_team(&mut self, name: &str, display_name: &str, open: bool) -> TeamId {
        if let Some(id) = self.team_by_name.get(name) {
            return id.clone();
        }
        let id = TeamId::new(new_id());
        self.teams.insert(
            id.clone(),
            Team {
                id: id.clone(),
                name: name.to_owned(),
                display_name: display_name.to_owned(),
                open,
                create_at: now_ms(),
                invite_id: new_id(),
            },
        );
        self.team_by_name.insert(name.to_owned(), id.clone());
        id
    }

    pub fn team_by_name(&self, name: &str) -> Option<&Team> {
        self.team_by_name
            .get(name)
            .and_then(|id| self.teams.get(id))
    }

    pub fn is_team_member(&self, team_id: &TeamId, user_id: &UserId) -> bool {
        self.team_members
            .contains_key(&(team_id.clone(), user_id.clone()))
    }

    /// Adds a team member, or returns the existing membership.
    pub fn add_team_member(
        &mut self,
        team_id: &TeamId,
        user_id: &UserId,
        admin: bool,
    ) -> &TeamMember {
        self.team_members
            .entry((team_id.clone(), user_id.clone()))
            .or_insert_with(|| TeamMember {
                scheme_admin: admin,
                create_at: now_ms(),
            })
    }

    // ---- channels ----

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

    // ---- the state file ----

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

fn validate_profile(
    email: &str,
    nickname: &str,
    first_name: &str,
    last_name: &str,
    position: &str,
) -> Result<(), AppError> {
    if email.is_empty() || email.len() > 128 || !valid_email(email) {
        return Err(user_invalid("email"));
    }
    if nickname.chars().count() > 64 {
        return Err(user_invalid("nickname"));
    }
    if position.chars().count() > 128 {
        return Err(user_invalid("position"));
    }
    if first_name.chars().count() > 64 {
        return Err(user_invalid("first_name"));
    }
    if last_name.chars().count() > 64 {
        return Err(user_invalid("last_name"));
    }
    Ok(())
}

fn default_notify_props() -> Map<String, Value> {
    let mut m = Map::new();
    for (k, v) in [
        ("channel", "true"),
        ("comments", "never"),
        ("desktop", "mention"),
        ("desktop_sound", "true"),
        ("email", "true"),
        ("first_name", "false"),
        ("mention_keys", ""),
        ("push", "mention"),
        ("push_status", "away"),
    ] {
        m.insert(k.to_owned(), Value::String(v.to_owned()));
    }
    m
}

fn default_timezone() -> Map<String, Value> {
    let mut m = Map::new();
    m.insert("automaticTimezone".to_owned(), Value::String(String::new()));
    m.insert("manualTimezone".to_owned(), Value::String(String::new()));
    m.insert(
        "useAutomaticTimezone".to_owned(),
        Value::String("true".to_owned()),
    );
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn username_rules() {
        assert!(valid_username("alice", 22));
        assert!(valid_username("a.b-c_d9", 22));
        assert!(!valid_username("al", 22));
        assert!(!valid_username("9lives", 22));
        assert!(!valid_username("system", 22));
        assert!(!valid_username("a23456789012345678901234", 22));
        assert!(valid_username("a23456789012345678901234", 64));
        assert!(!valid_username("bad name", 22));
    }

    #[test]
    fn channel_names() {
        assert!(valid_channel_name("town-square"));
        assert!(valid_channel_name("a"));
        assert!(valid_channel_name("off__topic"));
        assert!(!valid_channel_name("-lead"));
        assert!(!valid_channel_name("Upper"));
        assert!(!valid_channel_name(""));
    }

    #[test]
    fn ids_have_mattermost_shape() {
        assert!(mattermost_tokens::ids::is_valid_mattermost_id(&new_id()));
    }
}
