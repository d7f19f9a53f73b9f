//! Host users who left the app, and accounts deactivated in Mattermost.

use crate::error::Error;
use crate::host::HostUser;
use crate::ids::HostUserId;
use crate::models::User;
use crate::store::{TokenRecord, TokenStore};

use super::{
    AccountOutcome, DeactivatedPolicy, LeaverPolicy, RunState, TokenOutcome, UserOutcome, UserSync,
};

impl UserSync {
    /// A host user who left the app, as [`SyncOptions::leavers`] says:
    /// nothing, or the token revoked and cleared (and the account
    /// deactivated). Nothing is created or minted for them.
    ///
    /// [`SyncOptions::leavers`]: super::SyncOptions::leavers
    pub(super) async fn leave(
        &self,
        user: &HostUser,
        record: &TokenRecord,
    ) -> Result<UserOutcome, Error> {
        let mut o = UserOutcome::new(
            user.id.clone(),
            record.mattermost_user_id.clone(),
            AccountOutcome::Unchanged,
            TokenOutcome::Skipped,
        );
        if self.opts.leavers == LeaverPolicy::Keep {
            return Ok(o);
        }
        if record.token.is_some() {
            o.token = if self.opts.dry_run {
                TokenOutcome::WouldRevoke
            } else {
                self.revoke_stored(&user.id, record).await?;
                tracing::info!(host_user = %user.id, "revoked the token of a user who left");
                TokenOutcome::Revoked
            };
        }
        // Deactivated with the first prune, when the token goes: a later
        // pass costs nothing.
        if self.opts.leavers == LeaverPolicy::RevokeAndDeactivate
            && record.token.is_some()
            && let Some(id) = &record.mattermost_user_id
        {
            if !self.opts.dry_run {
                match self.admin().deactivate_user(id).await {
                    Ok(()) => {}
                    Err(e) if e.is_not_found() => {}
                    Err(e) => return Err(e),
                }
            }
            o.account = AccountOutcome::Deactivated;
        }
        Ok(o)
    }

    /// Revokes the stored token (when its id is known; a token already gone
    /// counts as revoked) and clears it from the store.
    pub(super) async fn revoke_stored(
        &self,
        user: &HostUserId,
        record: &TokenRecord,
    ) -> Result<(), Error> {
        if let Some(id) = &record.token_id {
            self.revoke_quietly(id).await?;
        }
        self.store.clear_token(user).await?;
        Ok(())
    }

    /// A linked account that is deactivated in Mattermost while its host
    /// user is active: reactivated (by [`DeactivatedPolicy::Reactivate`],
    /// or when leavers are deactivated, since the library may have done
    /// it), else its stored token is revoked and cleared and the user fails
    /// with [`Error::UserDeactivated`].
    pub(super) async fn deactivated_account(
        &self,
        user: &HostUser,
        record: &TokenRecord,
        account: &User,
        run: &RunState,
    ) -> Result<AccountOutcome, Error> {
        let reactivate = self.opts.deactivated == DeactivatedPolicy::Reactivate
            || self.opts.leavers == LeaverPolicy::RevokeAndDeactivate;
        if reactivate {
            if !self.opts.dry_run {
                // At the user limit, reactivating is refused like creating:
                // once known, no more attempts in this run.
                self.check_room(run).await?;
                self.admin()
                    .set_active(&account.id, true)
                    .await
                    .map_err(|e| self.on_user_limit(run, e))?;
                tracing::info!(host_user = %user.id, mattermost_user = %account.id, "reactivated the Mattermost account");
            }
            return Ok(AccountOutcome::Reactivated);
        }
        if record.token.is_some() && !self.opts.dry_run {
            self.revoke_stored(&user.id, record).await?;
        }
        Err(Error::UserDeactivated {
            user: user.id.clone(),
            mattermost_user_id: account.id.clone(),
        })
    }
}
