//! [`SyncOptions`]: how a [`UserSync`](super::UserSync) works.

use std::time::Duration;

#[cfg(doc)]
use super::{SyncReport, UserSync};

/// How [`UserSync`] works.
#[derive(Clone, Debug)]
pub struct SyncOptions {
    /// Names the host app in token descriptions, so users and admins can tell
    /// where a token came from and orphans can be found. Letters, digits,
    /// `.`, `_` and `-`, at most 64 characters.
    pub app_name: String,
    /// Users synced at once (default 8).
    pub concurrency: usize,
    /// Users read from the store and fetched from Mattermost per batch
    /// (default 200, the server's page limit).
    pub batch_size: usize,
    /// For hosts using single sign-on: the `auth_service` new users get
    /// (`gitlab`, `saml`, `openid`, ...). Without it new users get a long
    /// random password nobody knows.
    pub auth_service: Option<String>,
    /// Mint a new token even when one is stored, revoking the old one after
    /// the new one is stored. Off by default: Mattermost emails the user at
    /// every mint, and a stored token is meant to be reused.
    pub replace_tokens: bool,
    /// Report what would happen without changing Mattermost or the store.
    pub dry_run: bool,
    /// Library tokens younger than this, found on a user who has no stored
    /// token, may belong to a sync running elsewhere right now; they are
    /// revoked only after this sync has stored its own (default 2 minutes).
    pub orphan_grace: Duration,
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

impl Default for SyncOptions {
    fn default() -> Self {
        SyncOptions {
            app_name: "app".into(),
            concurrency: 8,
            batch_size: 200,
            auth_service: None,
            replace_tokens: false,
            dry_run: false,
            orphan_grace: Duration::from_secs(120),
            token_lifetime: None,
            renew_before: None,
            max_failures_kept: DEFAULT_REPORT_LIMIT,
        }
    }
}
