//! Sessions and personal access tokens: minting under the server's expiry
//! policy, authenticating, listing, disabling and revoking.

use std::fmt;

use mattermost_tokens::ids::{TokenId, UserId};
use serde::Serialize;

use super::{Data, User, new_id};
use crate::clock::{millis, now_ms};
use crate::error::AppError;

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
    pub(super) seq: u64,
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

/// The description of the admin's own personal access token.
const ADMIN_TOKEN_DESCRIPTION: &str = "stand-in admin token";

impl Data {
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
        Ok(self.insert_token(user_id, new_id(), description, expires_at))
    }

    /// The admin's credential as a personal access token with this value
    /// (kept when a restored state has it already), as a real deployment's
    /// admin token is: it stops working when tokens are disabled.
    pub fn ensure_admin_pat(&mut self, user_id: &UserId, value: &str) {
        // An admin token configured anew replaces the one saved before.
        let replaced: Vec<TokenId> = self
            .tokens_of(user_id)
            .filter(|t| t.description == ADMIN_TOKEN_DESCRIPTION && t.value != value)
            .map(|t| t.id.clone())
            .collect();
        for id in replaced {
            self.revoke_token(&id);
        }
        if !self.token_by_value.contains_key(value) {
            self.insert_token(user_id, value.to_owned(), ADMIN_TOKEN_DESCRIPTION, None);
        }
    }

    fn insert_token(
        &mut self,
        user_id: &UserId,
        value: String,
        description: &str,
        expires_at: Option<i64>,
    ) -> Token {
        let seq = self.next_seq;
        self.next_seq += 1;
        let token = Token {
            id: TokenId::new(new_id()),
            value,
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
        token
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
}
