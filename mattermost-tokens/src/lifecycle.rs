//! The token lifecycle: revoke, rotate, verify, and sweeping orphans.

use crate::error::Error;
use crate::ids::{HostUserId, TokenId};
use crate::sync::{AccountOutcome, Replacing, RunState, TokenOutcome, UserOutcome, UserSync};

/// What [`UserSync::revoke`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Revoked {
    /// The token id revoked in Mattermost; `None` when the stored row had a
    /// token without an id (written by another tool), which then could only
    /// be cleared locally.
    pub token_id: Option<TokenId>,
    /// Whether a token was stored.
    pub had_token: bool,
}

/// Why a stored token does or does not work, from [`UserSync::verify`].
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verification {
    /// `GET /users/me` with the token answered, as the right user.
    Valid,
    /// No token is stored.
    NoToken,
    /// The token no longer exists in Mattermost (revoked).
    TokenRevoked,
    /// The token has expired (it was minted with a lifetime).
    TokenExpired,
    /// The token exists but is disabled.
    TokenDisabled,
    /// The user is deactivated in Mattermost.
    UserDeactivated,
    /// The linked Mattermost account no longer exists (deleted, perhaps
    /// recreated with the same email). [`UserSync::sync_user`] re-links the
    /// user: it finds or creates their account by email, revokes and clears
    /// the old token, and mints one for the new account.
    AccountDeleted,
    /// Personal access tokens are disabled on the server.
    TokensDisabled,
    /// The token answered for another Mattermost user than the stored one.
    WrongUser,
    /// The token is refused and the admin could not tell why.
    Rejected,
    /// The token was revoked, expired or missing and a new one was minted and
    /// stored (only with `remint`).
    Reminted,
}

impl Verification {
    /// A short name in snake case, for logs and machine-readable output:
    /// `valid`, `no_token`, `token_revoked`, `token_expired`,
    /// `token_disabled`, `user_deactivated`, `account_deleted`,
    /// `tokens_disabled`, `wrong_user`, `rejected`, `reminted`.
    pub fn name(&self) -> &'static str {
        match self {
            Verification::Valid => "valid",
            Verification::NoToken => "no_token",
            Verification::TokenRevoked => "token_revoked",
            Verification::TokenExpired => "token_expired",
            Verification::TokenDisabled => "token_disabled",
            Verification::UserDeactivated => "user_deactivated",
            Verification::AccountDeleted => "account_deleted",
            Verification::TokensDisabled => "tokens_disabled",
            Verification::WrongUser => "wrong_user",
            Verification::Rejected => "rejected",
            Verification::Reminted => "reminted",
        }
    }
}

impl UserSync {
    /// Revokes the user's token in Mattermost and clears it from the store.
    /// A token already gone from Mattermost counts as revoked.
    #[tracing::instrument(name = "revoke_user", skip_all, fields(host_user = %user))]
    pub async fn revoke(&self, user: &HostUserId) -> Result<Revoked, Error> {
        let rec = self.record(user).await?;
        if let Some(id) = &rec.token_id {
            self.revoke_quietly(id).await?;
        } else if rec.token.is_some() {
            tracing::warn!(host_user = %user, "stored token has no id; clearing it locally only");
        }
        let had_token = self.store().clear_token(user).await?;
        tracing::info!(host_user = %user, token_id = ?rec.token_id, "revoked token");
        Ok(Revoked {
            token_id: rec.token_id,
            had_token,
        })
    }

    /// Replaces the user's token: mints a new one, stores it, then revokes
    /// the old one, so there is no moment without a working token. Two
    /// rotations racing cannot both win: the loser's token is revoked. An
    /// old token that could not be revoked, or whose id is unknown, is named
    /// in the outcome's warnings.
    #[tracing::instrument(name = "rotate_user", skip_all, fields(host_user = %user))]
    pub async fn rotate(&self, user: &HostUserId) -> Result<UserOutcome, Error> {
        let rec = self.record(user).await?;
        self.rotate_record(user, rec).await
    }

    /// [`rotate`](Self::rotate) with the user's record already read.
    pub(crate) async fn rotate_record(
        &self,
        user: &HostUserId,
        rec: crate::store::TokenRecord,
    ) -> Result<UserOutcome, Error> {
        let mm = rec
            .mattermost_user_id
            .clone()
            .ok_or_else(|| Error::NotSynced { user: user.clone() })?;
        if rec.token.is_none() {
            return Err(Error::NoUserToken { user: user.clone() });
        }
        let minted = self
            .mint_and_store(
                user,
                &mm,
                true,
                match &rec.token_id {
                    Some(old) => Replacing::Token(old),
                    None => Replacing::UnknownId,
                },
                &RunState::default(),
                None,
            )
            .await?;
        let mut o = UserOutcome::new(
            user.clone(),
            Some(mm),
            AccountOutcome::Unchanged,
            minted.outcome,
        );
        o.warnings = minted.warnings;
        Ok(o)
    }

    /// Checks the stored token with `GET /users/me`. On a 401 it asks, with
    /// the admin token, why: tokens disabled on the server, the user
    /// deactivated, the token expired, or the token gone. With `remint`, a
    /// revoked, expired or missing token is replaced by a new one (the stored
    /// value is cleared first; an expired one is also revoked).
    #[tracing::instrument(name = "verify_user", skip_all, fields(host_user = %user))]
    pub async fn verify(&self, user: &HostUserId, remint: bool) -> Result<Verification, Error> {
        let rec = self.record(user).await?;
        let Some(token) = rec.token.clone() else {
            return Ok(Verification::NoToken);
        };
        let why = match self.client().as_user(token).me().await {
            Ok(me) => {
                return Ok(match &rec.mattermost_user_id {
                    Some(id) if *id != me.id => Verification::WrongUser,
                    _ => Verification::Valid,
                });
            }
            Err(Error::Unauthorized(_)) => self.diagnose(&rec).await?,
            Err(e) => return Err(e),
        };
        tracing::warn!(host_user = %user, verdict = ?why, "stored token does not work");
        if remint && matches!(why, Verification::TokenRevoked | Verification::TokenExpired) {
            let mm = rec
                .mattermost_user_id
                .clone()
                .ok_or_else(|| Error::NotSynced { user: user.clone() })?;
            // Another process may have replaced the token meanwhile: clear
            // only the one that was checked.
            let current = self.store().get(user).await?.and_then(|r| r.token_id);
            if current != rec.token_id {
                return Ok(why);
            }
            self.store().clear_token(user).await?;
            if let (Verification::TokenExpired, Some(id)) = (&why, &rec.token_id) {
                self.revoke_quietly(id).await?;
            }
            let minted = self
                .mint_and_store(
                    user,
                    &mm,
                    false,
                    Replacing::Nothing,
                    &RunState::default(),
                    None,
                )
                .await?;
            if minted.outcome == TokenOutcome::Minted {
                return Ok(Verification::Reminted);
            }
        }
        Ok(why)
    }

    async fn diagnose(&self, rec: &crate::store::TokenRecord) -> Result<Verification, Error> {
        let admin = self.admin();
        let config = admin.client_config().await?;
        if config.user_access_tokens_enabled() == Some(false) {
            return Ok(Verification::TokensDisabled);
        }
        if let Some(id) = &rec.mattermost_user_id {
            match admin.user(id).await {
                Ok(u) if u.is_deactivated() => return Ok(Verification::UserDeactivated),
                Ok(_) => {}
                Err(e) if e.is_not_found() => return Ok(Verification::AccountDeleted),
                Err(e) => return Err(e),
            }
        }
        let now = crate::time::unix_now_ms();
        if rec.expires_within(now, 0) {
            return Ok(Verification::TokenExpired);
        }
        if let Some(id) = &rec.token_id {
            return match admin.token(id).await {
                Ok(t) if t.expires_at.is_some_and(|at| at <= now) => Ok(Verification::TokenExpired),
                Ok(t) if !t.is_active => Ok(Verification::TokenDisabled),
                Ok(_) => Ok(Verification::Rejected),
                Err(e) if e.is_not_found() => Ok(Verification::TokenRevoked),
                Err(e) => Err(e),
            };
        }
        Ok(Verification::Rejected)
    }

    /// Revokes every token this library minted for `user` other than the
    /// stored one (tokens left by crashes). Returns how many were revoked.
    /// Over a store that shares claims it holds the user's claim meanwhile,
    /// so a mint in flight elsewhere is not taken for an orphan.
    #[tracing::instrument(name = "revoke_orphans", skip_all, fields(host_user = %user))]
    pub async fn revoke_orphans(&self, user: &HostUserId) -> Result<u32, Error> {
        let hold = match self.store().claims_shared() {
            true => Some(self.hold_one(user).await?),
            false => None,
        };
        let result = self.revoke_orphans_held(user).await;
        if let Some(h) = &hold {
            self.let_go(h).await;
        }
        result
    }

    async fn revoke_orphans_held(&self, user: &HostUserId) -> Result<u32, Error> {
        let rec = self.record(user).await?;
        let Some(mm) = rec.mattermost_user_id else {
            return Ok(0);
        };
        let mut n = 0;
        for (id, _) in self.library_tokens(user, &mm).await? {
            if rec.token_id.as_ref() != Some(&id) {
                self.revoke_quietly(&id).await?;
                n += 1;
            }
        }
        Ok(n)
    }
}
