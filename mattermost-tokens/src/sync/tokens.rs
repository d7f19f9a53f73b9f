//! Tokens: minting once, storing, revoking what cannot be stored, and the
//! descriptions that let the library find its own tokens.

use futures::stream::TryStreamExt;

use crate::error::Error;
use crate::ids::{HostUserId, TokenId, UserId, is_valid_mattermost_id};
use crate::models::{CreateToken, CreatedToken};
use crate::store::{NewToken, StoreError, TokenRecord, TokenStore};
use crate::time::{millis, unix_now, unix_now_ms};

use super::account::{hex_sha256, shared_account_error};
use super::claims::Hold;
use super::{RunState, SyncWarning, TokenOutcome, UserSync};
use crate::store::mint_nonce;

/// The prefix of every token description the library writes.
pub const DESCRIPTION_PREFIX: &str = "Minted by mattermost-tokens for ";

/// What the new token replaces.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Replacing<'a> {
    /// Nothing is stored: store only if still nothing is.
    Nothing,
    /// This token: store only if it is still the stored one, then revoke it.
    Token(&'a TokenId),
    /// A token whose id is unknown (a row another tool wrote).
    UnknownId,
    /// This token, known to be gone from the server: store only if it is
    /// still the stored one; nothing to revoke.
    Gone(&'a TokenId),
}

/// Who a mint is for, and what it replaces.
#[derive(Clone, Copy)]
struct MintFor<'a> {
    user: &'a HostUserId,
    mattermost_user: &'a UserId,
    created_now: bool,
    prior: Replacing<'a>,
    run: &'a RunState,
}

/// What [`UserSync::mint_and_store`] did.
#[derive(Debug)]
pub(crate) struct Minted {
    pub outcome: TokenOutcome,
    /// Orphaned library tokens revoked.
    pub orphans: u32,
    pub warnings: Vec<SyncWarning>,
}

impl UserSync {
    /// Whether the record's token expires within the renewal margin (or has
    /// expired): the sync then replaces it.
    pub(super) fn expiring(&self, record: &TokenRecord) -> bool {
        record.expires_within(unix_now_ms(), self.renew_before_ms)
    }

    /// How token descriptions and account marks name `user`: its key, or a
    /// hash of a long or ambiguous one.
    pub(super) fn host_key(&self, user: &HostUserId) -> String {
        let key = user.to_key_string();
        if key.chars().count() > 120 || key.contains(" at ") {
            format!("sha256:{}", hex_sha256(&key))
        } else {
            key
        }
    }

    /// The description of tokens minted for `user`.
    pub fn token_description(&self, user: &HostUserId) -> String {
        let key = self.host_key(user);
        let now = unix_now();
        format!(
            "{DESCRIPTION_PREFIX}{} user {key} at {now}",
            self.opts.app_name
        )
    }

    /// The description of a token minted under the intent `nonce`.
    fn intent_description(&self, user: &HostUserId, nonce: &str) -> String {
        format!("{} intent {nonce}", self.token_description(user))
    }

    /// Whether `description` is one this sync writes for `user`, and if so
    /// when the token was minted (seconds since the epoch; 0 when unreadable).
    pub fn parse_description(&self, description: &str, user: &HostUserId) -> Option<u64> {
        let (key, minted) = self.parse_any_description(description)?;
        let want = user.to_key_string();
        let matches = key == want || key.strip_prefix("sha256:") == Some(&hex_sha256(&want));
        matches.then_some(minted)
    }

    /// The host user key and mint time of a description this app's syncs
    /// write, for any host user.
    pub(super) fn parse_any_description<'d>(&self, description: &'d str) -> Option<(&'d str, u64)> {
        let rest = description
            .strip_prefix(DESCRIPTION_PREFIX)?
            .strip_prefix(self.opts.app_name.as_str())?
            .strip_prefix(" user ")?;
        let rest = rest.rsplit_once(" intent ").map_or(rest, |(r, _)| r);
        let (key, at) = rest.rsplit_once(" at ")?;
        Some((key, at.parse().unwrap_or(0)))
    }

    /// The library tokens on `mattermost_user` minted for `user`.
    pub(crate) async fn library_tokens(
        &self,
        user: &HostUserId,
        mattermost_user: &UserId,
    ) -> Result<Vec<(TokenId, u64)>, Error> {
        Ok(self
            .linked_tokens(user, mattermost_user)
            .await?
            .into_iter()
            .filter_map(|(id, owner, minted)| (owner.is_none()).then_some((id, minted)))
            .collect())
    }

    /// This app's library tokens on `mattermost_user`: (id, `None` when
    /// minted for `user` or `Some(other host key)`, mint time).
    pub(super) async fn linked_tokens(
        &self,
        user: &HostUserId,
        mattermost_user: &UserId,
    ) -> Result<Vec<(TokenId, Option<String>, u64)>, Error> {
        let tokens: Vec<_> = self
            .admin()
            .tokens(mattermost_user, crate::api::MAX_PER_PAGE)
            .try_collect()
            .await?;
        Ok(tokens
            .into_iter()
            .filter_map(|t| {
                if let Some(minted) = self.parse_description(&t.description, user) {
                    return Some((t.id, None, minted));
                }
                let (key, minted) = self.parse_any_description(&t.description)?;
                Some((t.id, Some(key.to_owned()), minted))
            })
            .collect())
    }

    /// The user's record; an error when the host has no such user.
    pub(crate) async fn record(&self, user: &HostUserId) -> Result<TokenRecord, Error> {
        Ok(self
            .store
            .get(user)
            .await?
            .ok_or_else(|| StoreError::UnknownUser(user.clone()))?)
    }

    /// Revokes a token, treating "already gone" as done.
    pub(crate) async fn revoke_quietly(&self, id: &TokenId) -> Result<(), Error> {
        match self.admin().revoke_token(id).await {
            Ok(()) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Mints a token and stores it, under `hold` (or a claim taken here,
    /// after which the row is read again: another sync may have stored a
    /// token meanwhile); see the crate docs for the crash and race rules
    /// this keeps.
    pub(crate) async fn mint_and_store(
        &self,
        user: &HostUserId,
        mattermost_user: &UserId,
        created_now: bool,
        prior: Replacing<'_>,
        run: &RunState,
        hold: Option<&Hold>,
    ) -> Result<Minted, Error> {
        let job = MintFor {
            user,
            mattermost_user,
            created_now,
            prior,
            run,
        };
        if let Some(hold) = hold {
            return self.mint_held(job, hold).await;
        }
        let hold = self.hold_one(user).await?;
        let record = self.record(user).await;
        let unchanged = record.as_ref().is_ok_and(|r| match prior {
            Replacing::Nothing => r.token.is_none(),
            Replacing::Token(old) | Replacing::Gone(old) => r.token_id.as_ref() == Some(old),
            Replacing::UnknownId => r.token.is_some() && r.token_id.is_none(),
        });
        let result = match record {
            Err(e) => Err(e),
            // Another sync stored (or replaced) the token meanwhile.
            Ok(_) if !unchanged => Ok(Minted {
                outcome: TokenOutcome::Kept,
                orphans: 0,
                warnings: Vec::new(),
            }),
            Ok(_) => self.mint_held(job, &hold).await,
        };
        self.let_go(&hold).await;
        result
    }

    async fn mint_held(&self, job: MintFor<'_>, hold: &Hold) -> Result<Minted, Error> {
        let MintFor {
            user,
            mattermost_user,
            created_now,
            prior,
            run,
        } = job;
        let replacing = !matches!(prior, Replacing::Nothing);
        let stored = match prior {
            Replacing::Token(id) | Replacing::Gone(id) => Some(id),
            Replacing::Nothing | Replacing::UnknownId => None,
        };
        // A dead holder's intent: its token may be live and unstored.
        let mut orphans = self
            .settle_dead_intent(hold, mattermost_user, stored)
            .await?;
        let listed = hold.swept();
        let mut young_left = false;
        if !listed && !created_now && !replacing && !run.orphans_listed {
            // An account without a stored token may carry library tokens
            // the store lost track of: minted by a crash before intents, a
            // row restored from a backup or cleared by hand. With shared
            // claims no other sync is minting for this user now: every one
            // of them is an orphan. Without, young ones may be a concurrent
            // sync's, about to be stored: those wait until this sync has
            // stored its own.
            let shared = self.store.claims_shared();
            let now = unix_now();
            let tokens = self.linked_tokens(user, mattermost_user).await?;
            if let Some((_, Some(other), _)) = tokens.iter().find(|(_, o, _)| o.is_some()) {
                // A store without the unique link (a host's own TokenStore)
                // still must not let two host users share one account.
                return Err(shared_account_error(user, mattermost_user, Some(other)));
            }
            for (id, _, minted) in tokens {
                if shared || now.saturating_sub(minted) >= self.opts.orphan_grace.as_secs() {
                    self.revoke_quietly(&id).await?;
                    tracing::info!(host_user = %user, token_id = %id, "revoked orphaned token");
                    orphans += 1;
                } else {
                    young_left = true;
                }
            }
        }
        let nonce = mint_nonce();
        self.record_intent(hold, &nonce).await?;
        let asked_expiry = self
            .opts
            .token_lifetime
            .map(|l| unix_now_ms().saturating_add(millis(l)));
        let minted: CreatedToken = match self
            .admin()
            .create_token(
                mattermost_user,
                &CreateToken {
                    description: self.intent_description(user, &nonce),
                    expires_at: asked_expiry,
                },
            )
            .await
        {
            Ok(t) => t,
            Err(e) => {
                // A refusal created nothing: the intent is settled. Without
                // an answer (a timeout, a dropped connection, a gateway's
                // 5xx) the token may exist: the intent stays for the next
                // holder, which lists the user's tokens.
                if e.status().is_some_and(|s| (400..500).contains(&s)) {
                    hold.set_unsettled(false);
                }
                if let Error::TokenExpiryPolicy { rule, error } = &e {
                    run.expiry_refusal(*rule, error);
                }
                return Err(e);
            }
        };
        if asked_expiry.is_some()
            && minted.expires_at.is_none()
            && !self
                .expiry
                .ignored_warned
                .swap(true, std::sync::atomic::Ordering::Relaxed)
        {
            tracing::warn!(
                "the Mattermost server ignored the token lifetime (it has no token expiry): minted tokens do not expire"
            );
        }
        if let Err(reason) = check_minted(&minted, mattermost_user) {
            // A success answer without a usable token (a proxy, a broken
            // server): storing it would leave the user with a token that
            // cannot work and that every later sync keeps. Revoke what can
            // be named; a token without a usable id is found by its
            // description at the user's next sync.
            if is_valid_mattermost_id(minted.id.as_str())
                && self.revoke_after_failure(user, &minted.id).await
            {
                hold.set_unsettled(false);
            }
            return Err(Error::BadResponse {
                status: 200,
                method: "POST".into(),
                url: format!(
                    "{}api/v4/users/{mattermost_user}/tokens",
                    self.client.server_url()
                ),
                reason,
                snippet: "[not shown: the response may hold a token]".into(),
            });
        }
        tracing::info!(host_user = %user, token_id = %minted.id, "minted token");
        let new = NewToken {
            mattermost_user_id: mattermost_user.clone(),
            token: minted.token.clone(),
            token_id: minted.id.clone(),
            expires_at: minted.expires_at,
        };
        let stored = match prior {
            Replacing::Nothing => self.store.put_token_if_absent(user, &new).await,
            Replacing::Token(old) | Replacing::Gone(old) => {
                self.store.replace_token(user, old, &new).await
            }
            Replacing::UnknownId => self.store.put_token(user, &new).await.map(|()| true),
        };
        match stored {
            Ok(true) => hold.set_unsettled(false),
            Ok(false) => {
                tracing::info!(host_user = %user, token_id = %minted.id, "another sync stored a token first; revoking this one");
                if self.revoke_after_failure(user, &minted.id).await {
                    hold.set_unsettled(false);
                }
                return Ok(Minted {
                    outcome: TokenOutcome::LostRace,
                    orphans,
                    warnings: Vec::new(),
                });
            }
            Err(e) => {
                if self.revoke_after_failure(user, &minted.id).await {
                    hold.set_unsettled(false);
                }
                return Err(e.into());
            }
        }
        if young_left {
            // Stored: no other library token of this user can be stored now.
            let cleanup = async {
                let mut revoked = 0u32;
                for (id, _) in self.library_tokens(user, mattermost_user).await? {
                    if id != minted.id {
                        self.revoke_quietly(&id).await?;
                        revoked += 1;
                    }
                }
                Ok::<u32, Error>(revoked)
            };
            match cleanup.await {
                Ok(revoked) => orphans += revoked,
                Err(e) => {
                    // A later sync keeps a stored token without listing the
                    // user's other tokens, so with the token left stored the
                    // orphans would stay live. Undo the store instead: the
                    // next sync then finds no stored token, lists the user's
                    // library tokens (this one among them) and revokes them
                    // once its own is stored.
                    self.unstore_after_failure(user, &minted.id).await;
                    return Err(e);
                }
            }
        }
        let mut warnings = Vec::new();
        if !replacing {
            return Ok(Minted {
                outcome: TokenOutcome::Minted,
                orphans,
                warnings,
            });
        }
        // The new token is stored: the old one must not be lost track of.
        match prior {
            Replacing::Nothing | Replacing::Gone(_) => {}
            Replacing::Token(old) => {
                if let Err(e) = self.revoke_quietly(old).await {
                    tracing::warn!(
                        host_user = %user, token_id = %old, error = %e,
                        "the replaced token could not be revoked; it stays live until the next sync of this user or revoke_orphans"
                    );
                    self.unrevoked.remember(user, old);
                    warnings.push(SyncWarning::OldTokenNotRevoked {
                        token_id: old.clone(),
                        reason: e.to_string(),
                    });
                }
            }
            Replacing::UnknownId if self.opts.revoke_unknown_on_replace => {
                match self.revoke_all_but(mattermost_user, &minted.id).await {
                    Ok(n) => {
                        tracing::info!(host_user = %user, revoked = n, "revoked the user's other tokens (the replaced one had no id)");
                    }
                    Err(e) => {
                        tracing::warn!(host_user = %user, error = %e, "could not revoke the user's other tokens");
                        warnings.push(SyncWarning::OldTokenIdUnknown);
                    }
                }
            }
            Replacing::UnknownId => {
                tracing::warn!(host_user = %user, "old token not revoked: its id is unknown");
                warnings.push(SyncWarning::OldTokenIdUnknown);
            }
        }
        Ok(Minted {
            outcome: TokenOutcome::Replaced,
            orphans,
            warnings,
        })
    }

    /// Revokes every active token of `mattermost_user` except `keep`.
    async fn revoke_all_but(&self, mattermost_user: &UserId, keep: &TokenId) -> Result<u32, Error> {
        let tokens: Vec<_> = self
            .admin()
            .tokens(mattermost_user, crate::api::MAX_PER_PAGE)
            .try_collect()
            .await?;
        let mut n = 0;
        for t in tokens.into_iter().filter(|t| t.is_active && t.id != *keep) {
            self.revoke_quietly(&t.id).await?;
            n += 1;
        }
        Ok(n)
    }

    /// Retries the revokes of replaced tokens that failed earlier in this
    /// process (of `only` when given); what still fails stays for the next
    /// time.
    pub(super) async fn retry_unrevoked(&self, only: Option<&HostUserId>) {
        for (user, id) in self.unrevoked.take(only) {
            match self.revoke_quietly(&id).await {
                Ok(()) => {
                    tracing::info!(host_user = %user, token_id = %id, "revoked a replaced token on retry")
                }
                Err(e) => {
                    tracing::warn!(host_user = %user, token_id = %id, error = %e, "a replaced token still could not be revoked");
                    self.unrevoked.remember(&user, &id);
                }
            }
        }
    }

    /// Clears `id` from the user's row if it is still the stored token, then
    /// revokes it (best effort: what is left is found by the next sync).
    pub(super) async fn unstore_after_failure(&self, user: &HostUserId, id: &TokenId) {
        let still_ours = match self.store.get(user).await {
            Ok(Some(rec)) => rec.token_id.as_ref() == Some(id),
            _ => false,
        };
        if !still_ours {
            return;
        }
        match self.store.clear_token(user).await {
            Ok(_) => {
                self.revoke_after_failure(user, id).await;
            }
            Err(e) => tracing::error!(
                host_user = %user, token_id = %id, error = %e,
                "could not clear a token whose orphans were not revoked; revoke_orphans revokes them"
            ),
        }
    }

    /// A minted token that is not stored must not stay live. `true` when
    /// it was revoked.
    pub(super) async fn revoke_after_failure(&self, user: &HostUserId, id: &TokenId) -> bool {
        match self.revoke_quietly(id).await {
            Ok(()) => true,
            Err(e) => {
                // The next sync of this user finds it by its description.
                tracing::error!(
                    host_user = %user, token_id = %id, error = %e,
                    "could not revoke a token that was not stored; the next sync of this user revokes it"
                );
                false
            }
        }
    }
}

/// Why a token creation answer cannot be stored, if it cannot: the token
/// needs an id (to be revoked), a value that fits an HTTP header, and the
/// owner it was minted for.
pub(super) fn check_minted(minted: &CreatedToken, owner: &UserId) -> Result<(), String> {
    let value = minted.token.expose_secret();
    if !is_valid_mattermost_id(minted.id.as_str()) {
        Err("the minted token has no valid id".into())
    } else if value.is_empty() || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("the minted token has no usable value".into())
    } else if minted.user_id != *owner {
        Err("the token was minted for another user than asked".into())
    } else {
        Ok(())
    }
}
