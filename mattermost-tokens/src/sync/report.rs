//! What a sync did: per-user outcomes and the run's report.

#[cfg(doc)]
use super::{SyncOptions, UserSync};
use std::time::Duration;

use std::fmt;

use crate::error::Error;
use crate::ids::{HostUserId, TokenId, UserId};
use crate::models::ServerLimits;
use crate::rate_limit::ServerVersion;

use super::options::push_bounded;

/// What happened to the user's Mattermost account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AccountOutcome {
    /// Created (or, in a dry run, would be).
    Created,
    /// Existed and its details were patched (or would be).
    Updated,
    /// Existed with the right details (or a patch was refused; see the
    /// outcome's warnings).
    Unchanged,
    /// Was deactivated in Mattermost and has been reactivated
    /// ([`DeactivatedPolicy::Reactivate`](super::DeactivatedPolicy::Reactivate)).
    Reactivated,
    /// Deactivated because its host user left the app
    /// ([`LeaverPolicy::RevokeAndDeactivate`](super::LeaverPolicy::RevokeAndDeactivate)).
    Deactivated,
}

impl AccountOutcome {
    /// A short name for logs: `created`, `updated`, `unchanged`.
    pub fn name(self) -> &'static str {
        match self {
            AccountOutcome::Created => "created",
            AccountOutcome::Updated => "updated",
            AccountOutcome::Unchanged => "unchanged",
            AccountOutcome::Reactivated => "reactivated",
            AccountOutcome::Deactivated => "deactivated",
        }
    }
}

/// What happened to the user's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum TokenOutcome {
    /// A token was minted and stored.
    Minted,
    /// The stored token was kept.
    Kept,
    /// A new token replaced the stored one. The old one was revoked unless
    /// the outcome's warnings say otherwise
    /// ([`SyncWarning::OldTokenNotRevoked`], [`SyncWarning::OldTokenIdUnknown`]).
    Replaced,
    /// Another sync stored a token first; the one minted here was revoked.
    LostRace,
    /// Dry run: a token would be minted.
    WouldMint,
    /// The user was skipped (it already has a token and only users without
    /// one were asked for, or it left the app and leavers are kept).
    Skipped,
    /// The user left the app: the token was revoked and cleared.
    Revoked,
    /// Dry run: the token would be revoked and cleared.
    WouldRevoke,
    /// Another sync (in this or another process) holds a claim on the
    /// user and is working on it: this run left it alone.
    HeldElsewhere,
}

impl TokenOutcome {
    /// A short name for logs and spans: `minted`, `kept`, `replaced`,
    /// `lost_race`, `would_mint`, `skipped`.
    pub fn name(self) -> &'static str {
        match self {
            TokenOutcome::Minted => "minted",
            TokenOutcome::Kept => "kept",
            TokenOutcome::Replaced => "replaced",
            TokenOutcome::LostRace => "lost_race",
            TokenOutcome::WouldMint => "would_mint",
            TokenOutcome::Skipped => "skipped",
            TokenOutcome::Revoked => "revoked",
            TokenOutcome::WouldRevoke => "would_revoke",
            TokenOutcome::HeldElsewhere => "held_elsewhere",
        }
    }
}

/// Something that went wrong for a user without stopping the sync of that
/// user: the token was still minted, stored or kept.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SyncWarning {
    /// Mattermost refused the profile patch (for example 409
    /// `api.user.patch_user.login_provider_attribute_set.app_error`: a
    /// field that LDAP or SAML manages). The account keeps its details.
    PatchRefused {
        /// The HTTP status.
        status: u16,
        /// Mattermost's error id.
        id: String,
    },
    /// The replaced token could not be revoked: it stays live until a later
    /// sync of this user, [`UserSync::revoke_orphans`] or a revoke by hand
    /// removes it. Its description names this app, so both find it.
    OldTokenNotRevoked {
        /// The token left live.
        token_id: TokenId,
        /// Why the revoke failed.
        reason: String,
    },
    /// The replaced token was stored without its id (by another
    /// integration, or by hand), so it could not be revoked; see
    /// [`SyncOptions::revoke_unknown_on_replace`].
    OldTokenIdUnknown,
}

impl fmt::Display for SyncWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SyncWarning::PatchRefused { status, id } => write!(
                f,
                "profile not updated: Mattermost refused the patch ({status} {id}); the token was still handled"
            ),
            SyncWarning::OldTokenNotRevoked { token_id, reason } => write!(
                f,
                "old token {token_id} not revoked ({reason}); it stays live until the next sync of this user or UserSync::revoke_orphans"
            ),
            SyncWarning::OldTokenIdUnknown => f.write_str(
                "old token not revoked: its id is unknown (set SyncOptions::revoke_unknown_on_replace to revoke the user's other tokens)",
            ),
        }
    }
}

/// The result for one user.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserOutcome {
    /// The host user.
    pub user: HostUserId,
    /// Their Mattermost id (`None` only in a dry run for a user to be created).
    pub mattermost_user_id: Option<UserId>,
    /// The account outcome.
    pub account: AccountOutcome,
    /// The token outcome.
    pub token: TokenOutcome,
    /// Orphaned library tokens revoked on this user.
    pub orphans_revoked: u32,
    /// The Mattermost account the user was linked to before, when this sync
    /// linked them to another one (their account was deleted and recreated,
    /// or found anew by email). The old account's token was revoked (best
    /// effort) and cleared.
    pub previous_mattermost_user_id: Option<UserId>,
    /// What went wrong without stopping this user's sync.
    pub warnings: Vec<SyncWarning>,
}

impl UserOutcome {
    pub(crate) fn new(
        user: HostUserId,
        mattermost_user_id: Option<UserId>,
        account: AccountOutcome,
        token: TokenOutcome,
    ) -> Self {
        UserOutcome {
            user,
            mattermost_user_id,
            account,
            token,
            orphans_revoked: 0,
            previous_mattermost_user_id: None,
            warnings: Vec::new(),
        }
    }
}

/// A user that could not be synced, and why.
#[derive(Debug)]
#[non_exhaustive]
pub struct UserFailure {
    /// The host user.
    pub user: HostUserId,
    /// The error.
    pub error: Error,
}

/// One user's result, as passed to the progress callback.
pub type UserResult = Result<UserOutcome, UserFailure>;

/// Counts over a sync run.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SyncSummary {
    /// Users processed.
    pub total: u64,
    /// Accounts created.
    pub created: u64,
    /// Accounts patched.
    pub updated: u64,
    /// Accounts already right.
    pub unchanged: u64,
    /// Tokens minted and stored (replacements included).
    pub minted: u64,
    /// Stored tokens kept (lost races included).
    pub kept: u64,
    /// Users skipped.
    pub skipped: u64,
    /// Users that failed.
    pub failed: u64,
    /// Users another sync was working on, left to it
    /// ([`TokenOutcome::HeldElsewhere`]).
    pub held_elsewhere: u64,
    /// Orphaned library tokens revoked.
    pub orphans_revoked: u64,
    /// Tokens of leavers revoked (or, in a dry run, to be revoked).
    pub revoked: u64,
    /// Accounts reactivated.
    pub reactivated: u64,
    /// Accounts of leavers deactivated.
    pub deactivated: u64,
    /// Users whose outcome carries warnings.
    pub warned: u64,
    /// Users left out because the server is at its user limit (counted
    /// here, not in `failed`; see [`SyncReport::user_limit`]).
    pub left_out: u64,
}

/// A run that stopped creating accounts because the server reached its
/// limit of active users: one outcome for the run, not one per user.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct UserLimitHit {
    /// Active users, when known.
    pub active: Option<u64>,
    /// The limit, when known.
    pub limit: Option<u64>,
    /// Users left out.
    pub left_out: u64,
}

impl fmt::Display for UserLimitHit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not created: server user limit")?;
        match (self.active, self.limit) {
            (Some(a), Some(l)) => write!(f, " (active {a} of {l})")?,
            (None, Some(l)) => write!(f, " (limit {l})")?,
            _ => {}
        }
        write!(f, ", {} users left out", self.left_out)
    }
}

/// What a bulk sync did. Per-user outcomes go to the progress callback as
/// they happen; the report keeps the counts and the failures, so memory stays
/// bounded however many users are synced.
#[derive(Debug, Default)]
#[non_exhaustive]
pub struct SyncReport {
    /// Counts.
    pub summary: SyncSummary,
    /// The first failed users with their errors, up to
    /// [`SyncOptions::max_failures_kept`]; `summary.failed` counts them all
    /// (see [`failures_not_kept`](Self::failures_not_kept)).
    pub failures: Vec<UserFailure>,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// Set when the server reached its user limit during the run.
    pub user_limit: Option<UserLimitHit>,
    /// The server's limits, when the run read them (a run that creates, or
    /// plans to in a dry run, reads them once).
    pub server_limits: Option<ServerLimits>,
}

impl SyncReport {
    /// Of the accounts a dry run would create, how many fit under the
    /// server's user limit (`None` without a known limit).
    pub fn creates_that_fit(&self) -> Option<u64> {
        self.server_limits?
            .room()
            .map(|room| room.min(self.summary.created))
    }

    /// Failures counted in `summary.failed` but not kept in `failures`.
    pub fn failures_not_kept(&self) -> u64 {
        self.summary.failed - self.failures.len() as u64
    }

    pub(super) fn record(&mut self, r: UserResult, keep: usize) {
        let s = &mut self.summary;
        s.total += 1;
        match r {
            Ok(o) => {
                if o.token == TokenOutcome::Skipped {
                    s.skipped += 1;
                    return;
                }
                if o.token == TokenOutcome::HeldElsewhere {
                    s.held_elsewhere += 1;
                    return;
                }
                match o.account {
                    AccountOutcome::Created => s.created += 1,
                    AccountOutcome::Updated => s.updated += 1,
                    AccountOutcome::Unchanged => s.unchanged += 1,
                    AccountOutcome::Reactivated => s.reactivated += 1,
                    AccountOutcome::Deactivated => s.deactivated += 1,
                }
                match o.token {
                    TokenOutcome::Minted | TokenOutcome::Replaced | TokenOutcome::WouldMint => {
                        s.minted += 1
                    }
                    TokenOutcome::Kept | TokenOutcome::LostRace => s.kept += 1,
                    TokenOutcome::Revoked | TokenOutcome::WouldRevoke => s.revoked += 1,
                    TokenOutcome::Skipped | TokenOutcome::HeldElsewhere => {}
                }
                s.orphans_revoked += u64::from(o.orphans_revoked);
                if !o.warnings.is_empty() {
                    s.warned += 1;
                }
            }
            Err(UserFailure {
                error: Error::UserLimitReached { active, limit, .. },
                ..
            }) => {
                s.left_out += 1;
                let hit = self.user_limit.get_or_insert(UserLimitHit {
                    active,
                    limit,
                    left_out: 0,
                });
                hit.left_out += 1;
            }
            Err(f) => {
                s.failed += 1;
                push_bounded(&mut self.failures, f, keep);
            }
        }
    }
}

/// What [`UserSync::check_server`] found.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct ServerCheck {
    /// The server version, when it sends one.
    pub version: Option<ServerVersion>,
    /// The admin token's username.
    pub admin_username: String,
    /// Whether the admin token's user is a system admin.
    pub admin_is_system_admin: bool,
}
