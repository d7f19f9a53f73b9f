//! The sync's side of claims (see [`Lease`]): a bulk run claims each batch
//! of users that may need a token before reading their rows; single-user
//! operations claim their user, waiting briefly for another holder; every
//! mint records its intent first; recovery settles what a dead holder left.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::Error;
use crate::ids::{HostUserId, TokenId, UserId};
use crate::store::{Lease, StoreError};
use crate::time::{millis, unix_now_ms};

use super::UserSync;

/// A claim this sync holds on one user.
#[derive(Debug)]
pub(crate) struct Hold {
    pub(crate) user: HostUserId,
    lease: Lease,
    /// A previous holder recorded a mint intent and never settled it.
    pending: AtomicBool,
    /// This holder recorded an intent that is not settled yet (the mint's
    /// answer was lost, or its token could be neither stored nor revoked).
    unsettled: AtomicBool,
    /// The user's unstored library tokens were revoked under this hold.
    swept: AtomicBool,
}

impl Hold {
    fn new(user: HostUserId, lease: Lease, pending: bool) -> Self {
        Hold {
            user,
            lease,
            pending: AtomicBool::new(pending),
            unsettled: AtomicBool::new(false),
            swept: AtomicBool::new(false),
        }
    }

    /// Whether a previous holder left an intent unsettled.
    pub(crate) fn pending(&self) -> bool {
        self.pending.load(Ordering::Relaxed)
    }

    /// The previous holder's intent is settled (its tokens are dealt with).
    pub(crate) fn settle_pending(&self) {
        self.pending.store(false, Ordering::Relaxed);
    }

    /// Whether the user's unstored library tokens were revoked under this
    /// hold already.
    pub(crate) fn swept(&self) -> bool {
        self.swept.load(Ordering::Relaxed)
    }

    /// This holder's own intent: recorded (`true`) or settled (`false`).
    pub(crate) fn set_unsettled(&self, on: bool) {
        self.unsettled.store(on, Ordering::Relaxed);
    }
}

impl UserSync {
    /// A new lease for this sync's claims.
    fn lease(&self) -> Lease {
        Lease::new(self.opts.claim_ttl)
    }

    /// Claims `users` in one go; the holds of those this sync got.
    pub(crate) async fn hold_many(&self, users: &[HostUserId]) -> Result<Vec<Hold>, StoreError> {
        let lease = self.lease();
        Ok(self
            .store
            .claim(users, &lease)
            .await?
            .into_iter()
            .map(|c| Hold::new(c.user, lease.clone(), c.pending_intent))
            .collect())
    }

    /// Claims one user, waiting up to [`SyncOptions::claim_wait`](super::SyncOptions::claim_wait)
    /// while another sync holds it; [`Error::UserBusy`] after that.
    pub(crate) async fn hold_one(&self, user: &HostUserId) -> Result<Hold, Error> {
        let deadline = tokio::time::Instant::now() + self.opts.claim_wait;
        let mut pause = Duration::from_millis(20);
        loop {
            if let Some(h) = self.hold_many(std::slice::from_ref(user)).await?.pop() {
                return Ok(h);
            }
            if self.store.get(user).await?.is_none() {
                return Err(StoreError::UnknownUser(user.clone()).into());
            }
            if tokio::time::Instant::now() + pause > deadline {
                return Err(Error::UserBusy { user: user.clone() });
            }
            tokio::time::sleep(pause).await;
            pause = (pause * 2).min(Duration::from_millis(500));
        }
    }

    /// Records the intent to mint the token `nonce` names, extending the
    /// claim; [`Error::UserBusy`] when the claim ran out and another sync
    /// took the user over (nothing is minted then).
    pub(crate) async fn record_intent(&self, hold: &Hold, nonce: &str) -> Result<(), Error> {
        let mut lease = hold.lease.clone();
        lease.until_ms = unix_now_ms().saturating_add(millis(self.opts.claim_ttl));
        if !self.store.record_intent(&hold.user, &lease, nonce).await? {
            return Err(Error::UserBusy {
                user: hold.user.clone(),
            });
        }
        hold.set_unsettled(true);
        Ok(())
    }

    /// Ends a hold. An unsettled intent (of this holder or a previous one)
    /// stays for the next holder to settle.
    pub(crate) async fn let_go(&self, hold: &Hold) {
        let settled = !hold.unsettled.load(Ordering::Relaxed) && !hold.pending();
        if let Err(e) = self.store.release(&hold.user, &hold.lease, settled).await {
            // It runs out by itself after claim_ttl.
            tracing::warn!(host_user = %hold.user, error = %e, "could not release a claim");
        }
    }

    /// Settles what a dead holder left: every library token of `user` on
    /// `account` that the store does not hold is revoked, whatever its age
    /// (no other sync can be minting for the user: this one holds it).
    pub(crate) async fn settle_dead_intent(
        &self,
        hold: &Hold,
        account: &UserId,
        stored: Option<&TokenId>,
    ) -> Result<u32, Error> {
        if !hold.pending() {
            return Ok(0);
        }
        let mut revoked = 0;
        for (id, _) in self.library_tokens(&hold.user, account).await? {
            if Some(&id) != stored {
                self.revoke_quietly(&id).await?;
                tracing::info!(host_user = %hold.user, token_id = %id, "revoked a token a dead sync minted and never stored");
                revoked += 1;
            }
        }
        hold.settle_pending();
        hold.swept.store(true, Ordering::Relaxed);
        Ok(revoked)
    }
}
