//! [`SyncOptions`]: how a [`UserSync`](super::UserSync) works.

use std::time::Duration;

use crate::ids::UserId;

#[cfg(doc)]
use super::{SyncReport, UserSync};
#[cfg(doc)]
use crate::HostUser;

/// How [`UserSync`] works. Built with [`SyncOptions::new`] and the setters
/// (or by assigning the public fields of a value from `new`):
///
/// ```
/// use mattermost_tokens::{LinkPolicy, SyncOptions};
///
/// let options = SyncOptions::new("shop-production")
///     .concurrency(4)
///     .link_policy(LinkPolicy::Never);
/// assert_eq!(options.app_name, "shop-production");
/// ```
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct SyncOptions {
    /// The app's identity on the Mattermost server: it names the app in
    /// token descriptions and in the marks on accounts the sync creates, so
    /// users and admins can tell where a token came from and a sync only
    /// ever touches its own tokens. Two deployments that share one
    /// Mattermost server (staging and production, two products) must use
    /// two names. Letters, digits, `.`, `_` and `-`, at most 64 characters;
    /// required (there is no default).
    pub app_name: String,
    /// When a host user with no linked account has an email that an
    /// existing Mattermost account (one this app did not create for them)
    /// already uses: link it or refuse. Default
    /// [`LinkPolicy::VerifiedEmail`].
    pub link_policy: LinkPolicy,
    /// System roles an existing account may have and still be linked by
    /// email (default `system_user`, `system_guest` and
    /// `system_user_access_token`, which only lets a user make tokens for
    /// themselves). An account with any
    /// other role (`system_admin`, `system_manager`, ...) or a bot account is
    /// never linked, whatever the [`link_policy`](Self::link_policy), unless
    /// it is listed in [`link_privileged`](Self::link_privileged).
    pub allowed_roles: Vec<String>,
    /// Mattermost accounts the host opts in to link even though they have a
    /// role outside [`allowed_roles`](Self::allowed_roles) or are bots (the
    /// link policy still applies to them).
    pub link_privileged: Vec<UserId>,
    /// What a sync or reconcile does for host users who left the app
    /// ([`HostUser::active`] false). Default [`LeaverPolicy::Keep`].
    pub leavers: LeaverPolicy,
    /// What a sync or reconcile does with a linked account that was
    /// deactivated in Mattermost while its host user is active. Default
    /// [`DeactivatedPolicy::ClearToken`].
    pub deactivated: DeactivatedPolicy,
    /// In a full [`UserSync::reconcile`], treat host users the library has
    /// tokens for but the host no longer lists (their rows deleted) as
    /// leavers. Off by default.
    pub absent_are_leavers: bool,
    /// When replacing a stored token whose id is unknown (a row written by
    /// another integration, or by hand), also revoke the user's other
    /// active tokens once the new one is stored. Off by default: the old
    /// token cannot be told apart from tokens the user made themselves.
    pub revoke_unknown_on_replace: bool,
    /// Users synced at once (default 8).
    pub concurrency: usize,
    /// Users read from the store and fetched from Mattermost per batch
    /// (default 200, the server's page limit).
    pub batch_size: usize,
    /// For hosts using single sign-on: the `auth_service` new users get
    /// (`gitlab`, `saml`, `openid`, ...), with each user's
    /// [`HostUser::auth_data`]; a user without `auth_data` is refused before
    /// any request. Without it new users get a long random password nobody
    /// knows.
    pub auth_service: Option<String>,
    /// Mint a new token even when one is stored, revoking the old one after
    /// the new one is stored. Off by default: Mattermost emails the user at
    /// every mint, and a stored token is meant to be reused.
    pub replace_tokens: bool,
    /// Report what would happen without changing Mattermost or the store.
    pub dry_run: bool,
    /// Only over a store without shared claims
    /// ([`TokenStore::claims_shared`](crate::TokenStore::claims_shared) is
    /// `false`, such as a host's own store that keeps the trait's defaults):
    /// library tokens younger than this, found on a user who has no stored
    /// token, may belong to a sync running elsewhere right now; they are
    /// revoked only after this sync has stored its own (default 2 minutes).
    /// The adapters' stores and [`MemoryStore`](crate::MemoryStore) share
    /// claims, and their syncs revoke such tokens whatever their age.
    pub orphan_grace: Duration,
    /// How long a claim on a user lasts ([`Lease`](crate::store::Lease);
    /// default 60 s). A sync extends its claim while it works on the user;
    /// the claims of a process that died run out after this long, and
    /// another sync may then take its users over.
    pub claim_ttl: Duration,
    /// How long [`UserSync::sync_user`] (and the other single-user
    /// operations) wait for another sync that holds the user to finish
    /// (default 10 s). After that they fail with [`Error::UserBusy`](crate::Error::UserBusy).
    pub claim_wait: Duration,
    /// Mint tokens that expire this long after they are minted (servers with
    /// token expiry; a server whose lifetime policy requires expiry refuses
    /// tokens without it). `None` (the default): tokens do not expire. A
    /// server without token expiry ignores it, and its tokens do not expire;
    /// the sync then stores no expiry and warns once.
    pub token_lifetime: Option<Duration>,
    /// A stored token that expires within this margin is replaced by the
    /// next sync ([`UserSync::sync_all`], [`UserSync::sync_user`]; not
    /// [`UserSync::sync_missing`], which only fills in missing tokens).
    /// `None` (the default): a quarter of `token_lifetime`, at most one day
    /// (one day without a lifetime). Must be shorter than `token_lifetime`.
    pub renew_before: Option<Duration>,
    /// Failures kept with their errors in the [`SyncReport`] (default
    /// [`DEFAULT_REPORT_LIMIT`]); later ones are counted only, so a sync of
    /// a million users keeps a bounded report. Every failure still reaches
    /// the progress callback and the log.
    pub max_failures_kept: usize,
}

/// Details (failures, skips) a report keeps by default; the rest are
/// counted only.
pub const DEFAULT_REPORT_LIMIT: usize = 100;

/// Pushes `item` unless `list` holds `limit` items already.
pub(crate) fn push_bounded<T>(list: &mut Vec<T>, item: T, limit: usize) {
    if list.len() < limit {
        list.push(item);
    }
}

/// Whether an existing Mattermost account found by a host user's email may
/// be linked to that host user.
///
/// Linking gives the host user a token for the account, so an app that lets
/// people sign up without verifying their email must not link by email: a
/// sign-up with someone else's address would get that person's Mattermost
/// account. Accounts this app created itself for the same host user (their
/// mark names the app and the user) are linked whatever the policy; accounts
/// with roles outside [`SyncOptions::allowed_roles`] and bots never are.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkPolicy {
    /// Never link an existing account: such users fail with
    /// [`LinkRefusal::PolicyNever`](crate::LinkRefusal::PolicyNever).
    Never,
    /// Link only when the host says the email is verified
    /// ([`HostUser::email_verified`] is `Some(true)`).
    #[default]
    VerifiedEmail,
    /// Link on a matching email alone (hosts whose emails all come verified,
    /// from a directory or single sign-on).
    Always,
}

/// What happens to the token (and account) of a host user who left the app.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeaverPolicy {
    /// Nothing: the user is skipped and their token stays.
    #[default]
    Keep,
    /// Revoke the token and clear it from the store; the account stays
    /// active (it may be used elsewhere).
    Revoke,
    /// Revoke and clear the token, and deactivate the Mattermost account.
    RevokeAndDeactivate,
}

/// What happens when a linked Mattermost account was deactivated in
/// Mattermost while its host user is still active.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum DeactivatedPolicy {
    /// Revoke and clear the stored token and report the user: someone
    /// deactivated the account on purpose.
    #[default]
    ClearToken,
    /// Reactivate the account (the host is the source of truth, as a
    /// directory is for LDAP sync).
    Reactivate,
}

impl SyncOptions {
    /// Options for the app named `app_name` (see
    /// [`app_name`](Self::app_name)), with every other setting at its
    /// default.
    pub fn new(app_name: impl Into<String>) -> Self {
        SyncOptions {
            app_name: app_name.into(),
            ..Self::defaults()
        }
    }

    /// Sets [`concurrency`](Self::concurrency).
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = n;
        self
    }

    /// Sets [`batch_size`](Self::batch_size).
    pub fn batch_size(mut self, n: usize) -> Self {
        self.batch_size = n;
        self
    }

    /// Sets [`link_policy`](Self::link_policy).
    pub fn link_policy(mut self, policy: LinkPolicy) -> Self {
        self.link_policy = policy;
        self
    }

    /// Sets [`leavers`](Self::leavers).
    pub fn leavers(mut self, policy: LeaverPolicy) -> Self {
        self.leavers = policy;
        self
    }

    /// Sets [`deactivated`](Self::deactivated).
    pub fn deactivated(mut self, policy: DeactivatedPolicy) -> Self {
        self.deactivated = policy;
        self
    }

    /// Sets [`auth_service`](Self::auth_service).
    pub fn auth_service(mut self, service: impl Into<String>) -> Self {
        self.auth_service = Some(service.into());
        self
    }

    /// Sets [`replace_tokens`](Self::replace_tokens).
    pub fn replace_tokens(mut self, on: bool) -> Self {
        self.replace_tokens = on;
        self
    }

    /// Sets [`claim_ttl`](Self::claim_ttl).
    pub fn claim_ttl(mut self, ttl: Duration) -> Self {
        self.claim_ttl = ttl;
        self
    }

    /// Sets [`claim_wait`](Self::claim_wait).
    pub fn claim_wait(mut self, wait: Duration) -> Self {
        self.claim_wait = wait;
        self
    }

    /// Sets [`dry_run`](Self::dry_run).
    pub fn dry_run(mut self, on: bool) -> Self {
        self.dry_run = on;
        self
    }

    /// Sets [`token_lifetime`](Self::token_lifetime).
    pub fn token_lifetime(mut self, lifetime: Duration) -> Self {
        self.token_lifetime = Some(lifetime);
        self
    }

    /// Sets [`renew_before`](Self::renew_before).
    pub fn renew_before(mut self, margin: Duration) -> Self {
        self.renew_before = Some(margin);
        self
    }

    /// Sets [`max_failures_kept`](Self::max_failures_kept).
    pub fn max_failures_kept(mut self, n: usize) -> Self {
        self.max_failures_kept = n;
        self
    }

    fn defaults() -> Self {
        SyncOptions {
            app_name: String::new(),
            link_policy: LinkPolicy::VerifiedEmail,
            allowed_roles: vec![
                "system_user".into(),
                "system_guest".into(),
                "system_user_access_token".into(),
            ],
            link_privileged: Vec::new(),
            revoke_unknown_on_replace: false,
            leavers: LeaverPolicy::Keep,
            deactivated: DeactivatedPolicy::ClearToken,
            absent_are_leavers: false,
            concurrency: 8,
            batch_size: 200,
            auth_service: None,
            replace_tokens: false,
            dry_run: false,
            orphan_grace: Duration::from_secs(120),
            claim_ttl: Duration::from_secs(60),
            claim_wait: Duration::from_secs(10),
            token_lifetime: None,
            renew_before: None,
            max_failures_kept: DEFAULT_REPORT_LIMIT,
        }
    }
}
