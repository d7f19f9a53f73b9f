//! Users: creating, patching, roles and (de)activation, with the checks of
//! `User.IsValid` and the password policy.

use mattermost_tokens::ids::UserId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::{Data, new_id};
use crate::clock::now_ms;
use crate::error::AppError;

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
    /// Bot accounts answer `"is_bot": true`; the field is left out for
    /// people (`omitempty`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub is_bot: bool,
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
    pub is_bot: bool,
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

fn user_invalid(field: &str) -> AppError {
    AppError::new(
        400,
        format!("model.user.is_valid.{field}.app_error"),
        format!("Invalid {field}."),
    )
}

impl Data {
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
            is_bot: draft.is_bot,
        };
        self.by_email.insert(email, id.clone());
        self.by_username.insert(username, id.clone());
        Ok(self.users.entry(id).or_insert(user))
    }

    /// `PUT /users/{id}/patch`.
    pub fn patch_user(&mut self, id: &UserId, patch: UserPatch) -> Result<&User, AppError> {
        let current = self.users.get(id).ok_or_else(AppError::missing_account)?;
        if let Some(field) = provider_conflict(current, &patch) {
            // api4/user.go patchUser, for every caller, admins included.
            return Err(AppError::new(
                409,
                "api.user.patch_user.login_provider_attribute_set.app_error",
                format!("{field} must be set through the user's login provider."),
            ));
        }
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

    /// Deletes a user and their tokens for good.
    pub fn delete_user(&mut self, id: &UserId) -> bool {
        let Some(user) = self.users.remove(id) else {
            return false;
        };
        self.by_email.remove(&user.email);
        self.by_username.remove(&user.username);
        let tokens: Vec<_> = self.tokens_of(id).map(|t| t.id.clone()).collect();
        for t in tokens {
            self.revoke_token(&t);
        }
        true
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
        let reactivating = active
            && self
                .users
                .get(id)
                .is_some_and(|u| !u.is_active() && !u.is_bot);
        if reactivating {
            self.check_room_for_reactivation()?;
        }
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
}

/// `App.CheckProviderAttributes` (`app/user.go`): the field a patch may not
/// change because the account's login provider sets it. Any provider owns
/// the username; LDAP and SAML own the attributes the server maps (here, as
/// on a server that maps them all: email, names, nickname, position); OAuth
/// providers own the first and last names.
fn provider_conflict(user: &User, patch: &UserPatch) -> Option<&'static str> {
    let changes =
        |current: &str, new: &Option<String>| new.as_deref().is_some_and(|n| n != current);
    if user.auth_service.is_empty() {
        return None;
    }
    if changes(&user.username, &patch.username) {
        return Some("username");
    }
    let names =
        changes(&user.first_name, &patch.first_name) || changes(&user.last_name, &patch.last_name);
    match user.auth_service.as_str() {
        "ldap" | "saml" => {
            if changes(&user.email, &patch.email) {
                Some("email")
            } else if names {
                Some("full name")
            } else if changes(&user.nickname, &patch.nickname) {
                Some("nickname")
            } else if changes(&user.position, &patch.position) {
                Some("position")
            } else {
                None
            }
        }
        "gitlab" | "google" | "office365" | "openid" if names => Some("full name"),
        _ => None,
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
}
