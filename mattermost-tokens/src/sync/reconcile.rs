//! [`UserSync::reconcile`]: the store and Mattermost agree again after
//! anyone changed either (an admin revoking tokens or deactivating users in
//! the System Console, users leaving the app, a crash).

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::time::{Duration, Instant};

use futures::stream::{self, Stream, StreamExt, TryStreamExt};

use crate::error::Error;
use crate::host::HostUser;
use crate::ids::{HostUserId, TokenId, UserId};
use crate::models::{PersonalAccessToken, User};
use crate::store::TokenStore;
use crate::time::{unix_now, unix_now_ms};

use super::options::push_bounded;
use super::tokens::Replacing;
use super::{
    AccountOutcome, LeaverPolicy, Prepared, RunState, TokenOutcome, UserFailure, UserOutcome,
    UserSync,
};

/// Why a stored token no longer works, as the server's token listing shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeadToken {
    /// Not on the server any more (revoked).
    Revoked,
    /// Disabled.
    Disabled,
    /// Past its expiry.
    Expired,
    /// It belongs to another account than the linked one.
    OtherAccount,
}

/// One difference a reconcile repaired (or, in a dry run, would repair).
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Repair {
    /// The user had no token (or no account): one was minted.
    Minted {
        /// The host user.
        user: HostUserId,
    },
    /// The stored token was dead: cleared and a new one minted.
    Reminted {
        /// The host user.
        user: HostUserId,
        /// The dead token.
        token_id: TokenId,
        /// Why it was dead.
        why: DeadToken,
    },
    /// The linked account was gone: the user was linked to their account
    /// again (found or created by email) and given a token for it.
    Relinked {
        /// The host user.
        user: HostUserId,
        /// The account that was gone.
        previous: UserId,
    },
    /// The account had been deactivated in Mattermost: reactivated.
    Reactivated {
        /// The host user.
        user: HostUserId,
        /// The account.
        account: UserId,
    },
    /// The account had been deactivated in Mattermost: its token was
    /// revoked and cleared, and the user is left out until the account is
    /// active again.
    DeactivatedCleared {
        /// The host user.
        user: HostUserId,
        /// The account.
        account: UserId,
    },
    /// The host user left the app: their token revoked and cleared, their
    /// account deactivated when the leaver policy says so.
    Leaver {
        /// The host user.
        user: HostUserId,
        /// Whether the account was deactivated too.
        deactivated: bool,
    },
    /// A library token of this app that the store does not hold: revoked.
    OrphanRevoked {
        /// The host user its description names, when the store has them.
        user: Option<HostUserId>,
        /// The token.
        token_id: TokenId,
        /// Its account.
        account: UserId,
    },
}

impl Repair {
    /// The host user repaired, when the repair is of one.
    pub fn user(&self) -> Option<&HostUserId> {
        match self {
            Repair::Minted { user }
            | Repair::Reminted { user, .. }
            | Repair::Relinked { user, .. }
            | Repair::Reactivated { user, .. }
            | Repair::DeactivatedCleared { user, .. }
            | Repair::Leaver { user, .. } => Some(user),
            Repair::OrphanRevoked { user, .. } => user.as_ref(),
        }
    }

    /// The repair's kind in snake case (`minted`, `reminted`, `relinked`,
    /// `reactivated`, `deactivated_cleared`, `leaver`, `orphan_revoked`),
    /// for machine-readable output.
    pub fn kind(&self) -> &'static str {
        match self {
            Repair::Minted { .. } => "minted",
            Repair::Reminted { .. } => "reminted",
            Repair::Relinked { .. } => "relinked",
            Repair::Reactivated { .. } => "reactivated",
            Repair::DeactivatedCleared { .. } => "deactivated_cleared",
            Repair::Leaver { .. } => "leaver",
            Repair::OrphanRevoked { .. } => "orphan_revoked",
        }
    }
}

impl fmt::Display for Repair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Repair::Minted { user } => write!(f, "user {user}: no token; mint one"),
            Repair::Reminted {
                user,
                token_id,
                why,
            } => {
                write!(
                    f,
                    "user {user}: stored token {token_id} is {why:?}; clear it and mint a new one"
                )
            }
            Repair::Relinked { user, previous } => write!(
                f,
                "user {user}: account {previous} is gone; link the user's account again and mint"
            ),
            Repair::Reactivated { user, account } => {
                write!(
                    f,
                    "user {user}: account {account} is deactivated; reactivate it"
                )
            }
            Repair::DeactivatedCleared { user, account } => write!(
                f,
                "user {user}: account {account} is deactivated; revoke and clear its token"
            ),
            Repair::Leaver { user, deactivated } => write!(
                f,
                "user {user}: left the app; revoke and clear the token{}",
                if *deactivated {
                    " and deactivate the account"
                } else {
                    ""
                }
            ),
            Repair::OrphanRevoked {
                user,
                token_id,
                account,
            } => match user {
                Some(u) => write!(
                    f,
                    "user {u}: token {token_id} on {account} is not stored; revoke it"
                ),
                None => write!(
                    f,
                    "token {token_id} on {account} is of no stored user; revoke it"
                ),
            },
        }
    }
}

/// Counts over a reconcile.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileSummary {
    /// Host users looked at.
    pub users: u64,
    /// Tokens on the server (all of them, every app's).
    pub tokens_listed: u64,
    /// Repairs made (or, in a dry run, found).
    pub repairs: u64,
    /// Tokens minted for users without one.
    pub minted: u64,
    /// Dead stored tokens replaced.
    pub reminted: u64,
    /// Users linked again to a recreated account.
    pub relinked: u64,
    /// Accounts reactivated.
    pub reactivated: u64,
    /// Deactivated accounts whose token was cleared.
    pub deactivated_cleared: u64,
    /// Leavers pruned.
    pub leavers: u64,
    /// Orphaned library tokens revoked.
    pub orphans_revoked: u64,
    /// Users whose repair failed.
    pub failed: u64,
}

/// What [`UserSync::reconcile`] did.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// Counts.
    pub summary: ReconcileSummary,
    /// The first failed users with their errors, up to
    /// [`SyncOptions::max_failures_kept`](super::SyncOptions::max_failures_kept).
    pub failures: Vec<UserFailure>,
    /// Wall time.
    pub elapsed: Duration,
}

impl ReconcileReport {
    fn record(&mut self, repair: &Repair) {
        let s = &mut self.summary;
        s.repairs += 1;
        match repair {
            Repair::Minted { .. } => s.minted += 1,
            Repair::Reminted { .. } => s.reminted += 1,
            Repair::Relinked { .. } => s.relinked += 1,
            Repair::Reactivated { .. } => s.reactivated += 1,
            Repair::DeactivatedCleared { .. } => s.deactivated_cleared += 1,
            Repair::Leaver { .. } => s.leavers += 1,
            Repair::OrphanRevoked { .. } => s.orphans_revoked += 1,
        }
    }
}

/// The server's tokens of this app, by the host key their description
/// names, and every token by id.
struct Listing {
    by_id: HashMap<TokenId, PersonalAccessToken>,
    /// This app's library tokens: host key -> (token id, mint time).
    by_key: HashMap<String, Vec<(TokenId, u64)>>,
}

impl UserSync {
    /// One pass that compares the store with the server and repairs the
    /// difference, for every host user of `users` (pass them all: the host
    /// users table). The server side comes from the global token listing
    /// (`GET /users/tokens`, 200 a page; needs `manage_system` and a 4.7+
    /// server, else one clear error up front) and the bulk user fetch.
    ///
    /// For each host user: a stored token revoked, disabled, expired or on
    /// another account is replaced; a user without a token gets one; an
    /// account gone is linked again; a deactivated account is reactivated or
    /// its token cleared ([`SyncOptions::deactivated`]); a leaver is pruned
    /// ([`SyncOptions::leavers`]). Then every library token of this app the
    /// store does not hold, minted longer than
    /// [`SyncOptions::orphan_grace`] ago, is revoked. With
    /// [`SyncOptions::dry_run`] the repairs are reported and nothing
    /// changes. `on_repair` sees each repair as it is made.
    ///
    /// Cost: (tokens on the server)/200 + (host users)/200 requests, one or
    /// two per repair (a mint; a revoke first for a disabled or expired
    /// token), and the server check.
    ///
    /// [`SyncOptions::deactivated`]: super::SyncOptions::deactivated
    /// [`SyncOptions::leavers`]: super::SyncOptions::leavers
    /// [`SyncOptions::orphan_grace`]: super::SyncOptions::orphan_grace
    /// [`SyncOptions::dry_run`]: super::SyncOptions::dry_run
    pub async fn reconcile<S, F>(
        &self,
        users: S,
        mut on_repair: F,
    ) -> Result<ReconcileReport, Error>
    where
        S: Stream<Item = HostUser> + Send,
        F: FnMut(&Repair) + Send,
    {
        let started = Instant::now();
        self.check_server().await?;
        let listing = self.listing().await?;
        let mut report = ReconcileReport::default();
        report.summary.tokens_listed = listing.by_id.len() as u64;
        let run = RunState {
            orphans_listed: true,
            bulk: true,
            ..RunState::default()
        };
        let (listing, run) = (&listing, &run);
        let mut held: HashSet<TokenId> = HashSet::new();
        let mut seen_keys: HashSet<String> = HashSet::new();
        let results = users
            .chunks(self.opts.batch_size)
            .then(|batch| self.prepare_batch(batch, false))
            .flat_map(stream::iter)
            .filter(|p| std::future::ready(!p.held_elsewhere))
            .map(|p| async move {
                let id = p.user.id.clone();
                let hold = p.hold.clone();
                let r = self
                    .reconcile_user(p, listing, run)
                    .await
                    .map_err(|error| UserFailure { user: id, error });
                if let Some(h) = &hold {
                    self.let_go(h).await;
                }
                r
            })
            .buffer_unordered(self.opts.concurrency);
        let mut results = std::pin::pin!(results);
        while let Some(r) = results.next().await {
            report.summary.users += 1;
            match r {
                Ok((user, stored, repairs)) => {
                    seen_keys.insert(self.host_key(&user));
                    held.extend(stored);
                    for repair in repairs {
                        on_repair(&repair);
                        report.record(&repair);
                    }
                }
                Err(f) => {
                    tracing::warn!(host_user = %f.user, error = %f.error, "reconcile of a user failed");
                    seen_keys.insert(self.host_key(&f.user));
                    report.summary.failed += 1;
                    push_bounded(&mut report.failures, f, self.opts.max_failures_kept);
                }
            }
        }
        for repair in self.unseen_orphans(listing, &seen_keys, &held).await? {
            on_repair(&repair);
            report.record(&repair);
        }
        report.elapsed = started.elapsed();
        tracing::info!(
            users = report.summary.users,
            repairs = report.summary.repairs,
            failed = report.summary.failed,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "reconcile finished"
        );
        Ok(report)
    }

    /// Every token on the server, indexed.
    async fn listing(&self) -> Result<Listing, Error> {
        let tokens: Vec<PersonalAccessToken> = self
            .admin()
            .all_tokens(crate::api::MAX_PER_PAGE)
            .try_collect()
            .await
            .map_err(|e| match e {
                Error::PermissionDenied(api) => Error::InvalidConfig(format!(
                    "reconcile lists every token on the server, which needs the manage_system permission (a system admin's token): {api}"
                )),
                e if matches!(e.status(), Some(404 | 405)) => Error::InvalidConfig(format!(
                    "this Mattermost server cannot list all tokens (it needs 4.7 or later); use UserSync::verify per user: {e}"
                )),
                e => e,
            })?;
        let mut by_key: HashMap<String, Vec<(TokenId, u64)>> = HashMap::new();
        for t in &tokens {
            if let Some((key, minted)) = self.parse_any_description(&t.description) {
                by_key
                    .entry(key.to_owned())
                    .or_default()
                    .push((t.id.clone(), minted));
            }
        }
        Ok(Listing {
            by_id: tokens.into_iter().map(|t| (t.id.clone(), t)).collect(),
            by_key,
        })
    }

    /// One host user: the user, the token ids the store holds for them
    /// afterwards, and the repairs.
    async fn reconcile_user(
        &self,
        p: Prepared,
        listing: &Listing,
        run: &RunState,
    ) -> Result<(HostUserId, Vec<TokenId>, Vec<Repair>), Error> {
        let user = p.user.clone();
        let record = match p.record.clone() {
            Some(r) => r,
            None => self.record(&user.id).await?,
        };
        let mut repairs = Vec::new();
        let linked = record.mattermost_user_id.clone().filter(|_| user.active);
        let account: Option<Option<User>> = match (&linked, p.account.clone()) {
            (None, _) => None,
            (Some(_), Some(fetched)) => Some(fetched),
            (Some(id), None) => Some(match self.admin().user(id).await {
                Ok(u) => Some(u),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            }),
        };
        let needs_sync = record.token.is_none()
            || match &account {
                None | Some(None) => true,
                Some(Some(a)) => a.is_deactivated(),
            };
        if needs_sync {
            // Missing token or account, a leaver, a deactivated account:
            // the sync's own path, which knows each rule.
            let r = self
                .sync_prepared(
                    Prepared {
                        user: user.clone(),
                        record: Some(record.clone()),
                        account,
                        hold: p.hold.clone(),
                        held_elsewhere: false,
                    },
                    run,
                )
                .await;
            repairs.extend(Self::repairs_of(&user, &record, r)?);
        } else if let (Some(Some(account)), Some(id)) = (&account, &record.token_id) {
            let now = unix_now_ms();
            let why = match listing.by_id.get(id) {
                None => Some(DeadToken::Revoked),
                Some(t) if t.user_id != account.id => Some(DeadToken::OtherAccount),
                Some(t) if !t.is_active => Some(DeadToken::Disabled),
                Some(t) if t.expires_at.is_some_and(|at| at <= now) => Some(DeadToken::Expired),
                Some(_) => None,
            };
            if let Some(why) = why {
                if !self.opts.dry_run {
                    let prior = match why {
                        DeadToken::Revoked => Replacing::Gone(id),
                        _ => Replacing::Token(id),
                    };
                    self.mint_and_store(&user.id, &account.id, true, prior, run, p.hold.as_deref())
                        .await?;
                }
                repairs.push(Repair::Reminted {
                    user: user.id.clone(),
                    token_id: id.clone(),
                    why,
                });
            }
        }
        // Orphans of this user: library tokens named for them that the store
        // does not hold (as it stands now), minted before the grace window;
        // younger ones too once this pass stored a token of its own for the
        // user (no other can be stored now: the store's writes are
        // compare-and-set), which is what clears a mint whose process died
        // before its store write.
        let stored_now = repairs.iter().any(|r| {
            matches!(
                r,
                Repair::Minted { .. } | Repair::Reminted { .. } | Repair::Relinked { .. }
            )
        }) && !self.opts.dry_run;
        let tokens = listing.by_key.get(&self.host_key(&user.id));
        // Over a store with shared claims, a user this pass holds has no
        // mint in flight elsewhere: its unstored tokens are orphans whatever
        // their age. Without a hold, one is taken for the revokes.
        let mut own_hold = None;
        let claimed = self.store.claims_shared()
            && !self.opts.dry_run
            && (p.hold.is_some()
                || tokens
                    .is_none_or(|t| t.iter().all(|(id, _)| Some(id) == record.token_id.as_ref()))
                || match self.hold_many(std::slice::from_ref(&user.id)).await?.pop() {
                    Some(h) => {
                        own_hold = Some(h);
                        true
                    }
                    None => false,
                });
        let stored = self.store.get(&user.id).await?.and_then(|r| r.token_id);
        let grace = self.opts.orphan_grace.as_secs();
        let now = unix_now();
        let young_kept = !claimed && !stored_now;
        for (id, minted) in tokens.into_iter().flatten() {
            {
                if Some(id) == stored.as_ref()
                    || Some(id) == record.token_id.as_ref()
                    || (young_kept && now.saturating_sub(*minted) < grace)
                    || (self.store.claims_shared() && !claimed && !self.opts.dry_run)
                {
                    continue;
                }
                let Some(t) = listing.by_id.get(id) else {
                    continue;
                };
                if !self.opts.dry_run {
                    self.revoke_quietly(id).await?;
                }
                repairs.push(Repair::OrphanRevoked {
                    user: Some(user.id.clone()),
                    token_id: id.clone(),
                    account: t.user_id.clone(),
                });
            }
        }
        if let Some(h) = &own_hold {
            self.let_go(h).await;
        }
        Ok((user.id, stored.into_iter().collect(), repairs))
    }

    /// The repairs the sync's path made for a user, from its result.
    fn repairs_of(
        user: &HostUser,
        record: &crate::store::TokenRecord,
        r: Result<UserOutcome, Error>,
    ) -> Result<Vec<Repair>, Error> {
        let id = user.id.clone();
        let o = match r {
            Ok(o) => o,
            Err(Error::UserDeactivated {
                mattermost_user_id, ..
            }) => {
                // A repair only when there was a token to clear: the next
                // pass finds nothing to do for this user.
                return Ok(record
                    .token
                    .is_some()
                    .then_some(Repair::DeactivatedCleared {
                        user: id,
                        account: mattermost_user_id,
                    })
                    .into_iter()
                    .collect());
            }
            Err(e) => return Err(e),
        };
        let mut repairs = Vec::new();
        if let (AccountOutcome::Reactivated, Some(account)) = (o.account, &o.mattermost_user_id) {
            repairs.push(Repair::Reactivated {
                user: id.clone(),
                account: account.clone(),
            });
        }
        match o.token {
            TokenOutcome::Revoked | TokenOutcome::WouldRevoke => repairs.push(Repair::Leaver {
                user: id,
                deactivated: o.account == AccountOutcome::Deactivated,
            }),
            TokenOutcome::Minted | TokenOutcome::WouldMint | TokenOutcome::Replaced => repairs
                .push(match o.previous_mattermost_user_id {
                    Some(previous) => Repair::Relinked { user: id, previous },
                    None => Repair::Minted { user: id },
                }),
            _ => {}
        }
        Ok(repairs)
    }

    /// Library tokens of this app named for host users this pass did not
    /// see: revoked unless the store holds them (a user the stream left
    /// out), or their host user is unknown (a hashed key). Tokens of users
    /// whose rows are gone are orphans; with
    /// [`SyncOptions::absent_are_leavers`](super::SyncOptions::absent_are_leavers)
    /// and [`LeaverPolicy::RevokeAndDeactivate`] their accounts are
    /// deactivated too.
    async fn unseen_orphans(
        &self,
        listing: &Listing,
        seen: &HashSet<String>,
        held: &HashSet<TokenId>,
    ) -> Result<Vec<Repair>, Error> {
        let grace = self.opts.orphan_grace.as_secs();
        let now = unix_now();
        let unseen: Vec<(HostUserId, &Vec<(TokenId, u64)>)> = listing
            .by_key
            .iter()
            .filter(|(key, _)| !seen.contains(*key) && !key.starts_with("sha256:"))
            .map(|(key, tokens)| (HostUserId::from_key_string(key), tokens))
            .collect();
        let mut repairs = Vec::new();
        let deactivate =
            self.opts.absent_are_leavers && self.opts.leavers == LeaverPolicy::RevokeAndDeactivate;
        // With shared claims: users with a row are claimed first (a sync
        // holding one may be about to store its token), then read again;
        // their unstored tokens, and those of users without a row, are
        // orphans whatever their age.
        let shared = self.store.claims_shared() && !self.opts.dry_run;
        for chunk in unseen.chunks(crate::api::MAX_PER_PAGE as usize) {
            let ids: Vec<HostUserId> = chunk.iter().map(|(u, _)| u.clone()).collect();
            let mut records = self.store.get_many(&ids).await?;
            let mut holds = Vec::new();
            if shared && !records.is_empty() {
                let with_rows: Vec<HostUserId> = records.keys().cloned().collect();
                holds = self.hold_many(&with_rows).await?;
                records = self.store.get_many(&ids).await?;
            }
            let mine: HashSet<&HostUserId> = holds.iter().map(|h| &h.user).collect();
            for (user, tokens) in chunk {
                let record = records.get(user);
                for (id, minted) in tokens.iter() {
                    let stored = record.and_then(|r| r.token_id.as_ref()) == Some(id);
                    let wait = match shared {
                        true => record.is_some() && !mine.contains(user),
                        false => now.saturating_sub(*minted) < grace,
                    };
                    if stored || held.contains(id) || wait {
                        continue;
                    }
                    let Some(t) = listing.by_id.get(id) else {
                        continue;
                    };
                    if !self.opts.dry_run {
                        self.revoke_quietly(id).await?;
                        if deactivate && record.is_none() {
                            match self.admin().deactivate_user(&t.user_id).await {
                                Ok(()) => {}
                                Err(e) if e.is_not_found() => {}
                                Err(e) => return Err(e),
                            }
                        }
                    }
                    repairs.push(Repair::OrphanRevoked {
                        user: record.is_some().then(|| user.clone()),
                        token_id: id.clone(),
                        account: t.user_id.clone(),
                    });
                }
            }
            for h in &holds {
                self.let_go(h).await;
            }
        }
        Ok(repairs)
    }
}
