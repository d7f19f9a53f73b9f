//! [`UserSync`]: put host users into Mattermost and give each one token.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::stream::{self, Stream, StreamExt, TryStreamExt};
use rand::Rng;
use secrecy::SecretString;

use crate::client::{Acting, MattermostClient};
use crate::error::{ApiError, Error, ExpiryRule};
use crate::host::HostUser;
use crate::ids::{HostUserId, TokenId, UserId, is_valid_mattermost_id};
use crate::models::{CreateToken, CreateUser, CreatedToken, User, UserPatch};
use crate::rate_limit::ServerVersion;
use crate::store::{NewToken, StoreError, TokenRecord, TokenStore};

/// The prefix of every token description the library writes.
pub const DESCRIPTION_PREFIX: &str = "Minted by mattermost-tokens for ";

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

/// What happened to the user's Mattermost account.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AccountOutcome {
    /// Created (or, in a dry run, would be).
    Created,
    /// Existed and its details were patched (or would be).
    Updated,
    /// Existed with the right details.
    Unchanged,
}

/// What happened to the user's token.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenOutcome {
    /// A token was minted and stored.
    Minted,
    /// The stored token was kept.
    Kept,
    /// A new token replaced the stored one, which was revoked.
    Replaced,
    /// Another sync stored a token first; the one minted here was revoked.
    LostRace,
    /// Dry run: a token would be minted.
    WouldMint,
    /// The user was skipped (it already has a token and only users without
    /// one were asked for).
    Skipped,
}

/// The result for one user.
#[derive(Clone, Debug, PartialEq, Eq)]
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
}

/// A user that could not be synced, and why.
#[derive(Debug)]
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
    /// Orphaned library tokens revoked.
    pub orphans_revoked: u64,
}

/// What a bulk sync did. Per-user outcomes go to the progress callback as
/// they happen; the report keeps the counts and the failures, so memory stays
/// bounded however many users are synced.
#[derive(Debug, Default)]
pub struct SyncReport {
    /// Counts.
    pub summary: SyncSummary,
    /// The first failed users with their errors, up to
    /// [`SyncOptions::max_failures_kept`]; `summary.failed` counts them all
    /// (see [`failures_not_kept`](Self::failures_not_kept)).
    pub failures: Vec<UserFailure>,
    /// Wall time of the run.
    pub elapsed: Duration,
}

impl SyncReport {
    /// Failures counted in `summary.failed` but not kept in `failures`.
    pub fn failures_not_kept(&self) -> u64 {
        self.summary.failed - self.failures.len() as u64
    }

    fn record(&mut self, r: UserResult, keep: usize) {
        let s = &mut self.summary;
        s.total += 1;
        match r {
            Ok(o) => {
                if o.token == TokenOutcome::Skipped {
                    s.skipped += 1;
                    return;
                }
                match o.account {
                    AccountOutcome::Created => s.created += 1,
                    AccountOutcome::Updated => s.updated += 1,
                    AccountOutcome::Unchanged => s.unchanged += 1,
                }
                match o.token {
                    TokenOutcome::Minted | TokenOutcome::Replaced | TokenOutcome::WouldMint => {
                        s.minted += 1
                    }
                    TokenOutcome::Kept | TokenOutcome::LostRace => s.kept += 1,
                    TokenOutcome::Skipped => {}
                }
                s.orphans_revoked += u64::from(o.orphans_revoked);
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
pub struct ServerCheck {
    /// The server version, when it sends one.
    pub version: Option<ServerVersion>,
    /// The admin token's username.
    pub admin_username: String,
    /// Whether the admin token's user is a system admin.
    pub admin_is_system_admin: bool,
}

/// Syncs host users into Mattermost: creates or updates each account, mints
/// one personal access token per user with the admin token and keeps it in
/// the [`TokenStore`].
///
/// ```no_run
/// # async fn demo() -> Result<(), mattermost_tokens::Error> {
/// use std::sync::Arc;
/// use mattermost_tokens::{HostUser, MattermostClient, MemoryStore, SyncOptions, UserSync};
///
/// let client = MattermostClient::new("https://chat.example.com", "admin-token")?;
/// let store = Arc::new(MemoryStore::with_users([1.into()]));
/// let sync = UserSync::new(client, store, SyncOptions { app_name: "shop".into(), ..Default::default() })?;
/// let outcome = sync.sync_user(&HostUser::new(1, "ana@example.com", "Ana López")).await?;
/// println!("{:?} / {:?}", outcome.account, outcome.token);
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct UserSync {
    client: MattermostClient,
    store: Arc<dyn TokenStore>,
    opts: Arc<SyncOptions>,
    seen: Arc<Seen>,
    /// Stored tokens expiring within this many ms are replaced.
    renew_before_ms: i64,
    expiry: Arc<ExpiryState>,
}

/// What the server has shown of its token expiry support.
#[derive(Debug, Default)]
struct ExpiryState {
    /// The server's lifetime policy refused a mint: every later mint with
    /// the same options would be refused too, so they fail at once.
    refused: std::sync::OnceLock<(ExpiryRule, ApiError)>,
    /// An expiry was asked for and the answer had none: warned once.
    ignored_warned: std::sync::atomic::AtomicBool,
}

/// How unlinked users turned out so far: new to Mattermost, or already there.
/// Creating first costs a new user nothing extra and an existing one a failed
/// create; looking up first is the reverse. Whichever case has been more
/// common so far goes first, so either population costs its minimum plus a
/// constant.
#[derive(Debug, Default)]
struct Seen {
    fresh: std::sync::atomic::AtomicU64,
    existing: std::sync::atomic::AtomicU64,
}

impl Seen {
    fn lookup_first(&self) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        self.existing.load(Relaxed) > self.fresh.load(Relaxed)
    }

    fn record(&self, existed: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        let c = if existed { &self.existing } else { &self.fresh };
        c.fetch_add(1, Relaxed);
    }
}

impl fmt::Debug for UserSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSync")
            .field("client", &self.client)
            .field("store", &self.store)
            .field("options", &self.opts)
            .finish()
    }
}

struct Prepared {
    user: HostUser,
    record: Option<TokenRecord>,
    /// The account fetched in bulk: `Some(None)` = asked and absent.
    account: Option<Option<User>>,
}

impl UserSync {
    /// A sync over `client` and `store`.
    pub fn new(
        client: MattermostClient,
        store: Arc<dyn TokenStore>,
        options: SyncOptions,
    ) -> Result<Self, Error> {
        let app = &options.app_name;
        if app.is_empty()
            || app.len() > 64
            || !app
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
        {
            return Err(Error::InvalidInput(format!(
                "app name {app:?} must be 1-64 letters, digits, '.', '_' or '-'"
            )));
        }
        if options.concurrency == 0 || options.batch_size == 0 {
            return Err(Error::InvalidInput(
                "concurrency and batch size must be at least 1".into(),
            ));
        }
        const DAY: Duration = Duration::from_secs(86_400);
        if let Some(l) = options.token_lifetime
            && !(Duration::from_secs(60)..=DAY * 365 * 100).contains(&l)
        {
            return Err(Error::InvalidInput(format!(
                "token lifetime {l:?} must be between one minute and 100 years"
            )));
        }
        if let (Some(l), Some(r)) = (options.token_lifetime, options.renew_before)
            && r >= l
        {
            return Err(Error::InvalidInput(format!(
                "renew_before ({r:?}) must be shorter than the token lifetime ({l:?}), or every sync would replace every token"
            )));
        }
        let mut options = options;
        options.batch_size = options.batch_size.min(crate::api::MAX_PER_PAGE as usize);
        let renew_before = options
            .renew_before
            .unwrap_or_else(|| options.token_lifetime.map_or(DAY, |l| (l / 4).min(DAY)));
        Ok(UserSync {
            client,
            store,
            renew_before_ms: millis(renew_before),
            opts: Arc::new(options),
            seen: Arc::default(),
            expiry: Arc::default(),
        })
    }

    /// The client.
    pub fn client(&self) -> &MattermostClient {
        &self.client
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.store
    }

    /// The options.
    pub fn options(&self) -> &SyncOptions {
        &self.opts
    }

    pub(crate) fn admin(&self) -> Acting {
        self.client.as_admin()
    }

    /// Checks once, before bulk work, that the server is reachable, the admin
    /// token is valid, and personal access tokens are enabled; so a
    /// misconfiguration fails with one clear error instead of one per user.
    pub async fn check_server(&self) -> Result<ServerCheck, Error> {
        self.client.ping().await?;
        let admin = self.admin();
        let me = admin.me().await?;
        if !me.is_system_admin() {
            tracing::warn!(
                admin = %me.username,
                "the admin token's user is not a system admin; creating users and minting tokens may be refused"
            );
        }
        let config = admin.client_config().await?;
        if config.user_access_tokens_enabled() == Some(false) {
            return Err(Error::TokensDisabled(Box::new(ApiError {
                status: 501,
                id: "app.user_access_token.disabled".into(),
                message: "EnableUserAccessTokens is false in the server's configuration".into(),
                detailed_error: String::new(),
                request_id: None,
                method: "GET".into(),
                url: format!("{}api/v4/config/client", self.client.server_url()),
            })));
        }
        Ok(ServerCheck {
            version: self.client.server_version(),
            admin_is_system_admin: me.is_system_admin(),
            admin_username: me.username,
        })
    }

    /// Syncs one user: creates the account if needed (or finds it by email),
    /// patches details that differ, and mints and stores a token if none is
    /// stored.
    pub async fn sync_user(&self, user: &HostUser) -> Result<UserOutcome, Error> {
        let record = self.record(&user.id).await?;
        self.sync_prepared(Prepared {
            user: user.clone(),
            record: Some(record),
            account: None,
        })
        .await
    }

    /// Syncs every user of `users` with bounded concurrency. Checks the
    /// server first and returns its error without syncing anyone when the
    /// check fails; after that, per-user errors are collected in the report
    /// and do not stop the run. `on_result` sees each user's result as it
    /// comes.
    pub async fn sync_all<S, F>(&self, users: S, on_result: F) -> Result<SyncReport, Error>
    where
        S: Stream<Item = HostUser> + Send,
        F: FnMut(&UserResult) + Send,
    {
        self.run(users, false, on_result).await
    }

    /// Like [`sync_all`](Self::sync_all), for the users of `users` that have
    /// no stored token; the others are skipped without any request.
    pub async fn sync_missing<S, F>(&self, users: S, on_result: F) -> Result<SyncReport, Error>
    where
        S: Stream<Item = HostUser> + Send,
        F: FnMut(&UserResult) + Send,
    {
        self.run(users, true, on_result).await
    }

    async fn run<S, F>(
        &self,
        users: S,
        only_missing: bool,
        mut on_result: F,
    ) -> Result<SyncReport, Error>
    where
        S: Stream<Item = HostUser> + Send,
        F: FnMut(&UserResult) + Send,
    {
        let started = Instant::now();
        self.check_server().await?;
        let mut report = SyncReport::default();
        let results = users
            .chunks(self.opts.batch_size)
            .then(|batch| self.prepare_batch(batch, only_missing))
            .flat_map(stream::iter)
            .map(|p| async move {
                let id = p.user.id.clone();
                match p {
                    Prepared {
                        record: Some(ref r),
                        ..
                    } if only_missing && r.token.is_some() => Ok(UserOutcome {
                        user: id,
                        mattermost_user_id: r.mattermost_user_id.clone(),
                        account: AccountOutcome::Unchanged,
                        token: TokenOutcome::Skipped,
                        orphans_revoked: 0,
                    }),
                    p => self
                        .sync_prepared(p)
                        .await
                        .map_err(|error| UserFailure { user: id, error }),
                }
            })
            .buffer_unordered(self.opts.concurrency);
        let mut results = std::pin::pin!(results);
        while let Some(r) = results.next().await {
            if let Err(f) = &r {
                tracing::warn!(host_user = %f.user, error = %f.error, "user sync failed");
            }
            on_result(&r);
            report.record(r, self.opts.max_failures_kept);
        }
        report.elapsed = started.elapsed();
        tracing::info!(
            total = report.summary.total,
            created = report.summary.created,
            updated = report.summary.updated,
            minted = report.summary.minted,
            failed = report.summary.failed,
            elapsed_ms = report.elapsed.as_millis() as u64,
            "sync finished"
        );
        Ok(report)
    }

    /// Reads a batch's records in one store query and fetches the linked
    /// accounts in one request. Failures here are not fatal: the users are
    /// then read and fetched one by one, and fail one by one if they must.
    async fn prepare_batch(&self, batch: Vec<HostUser>, only_missing: bool) -> Vec<Prepared> {
        let ids: Vec<HostUserId> = batch.iter().map(|u| u.id.clone()).collect();
        let mut records = match self.store.get_many(&ids).await {
            Ok(r) => Some(r),
            Err(e) => {
                tracing::warn!(error = %e, "batch read from the token store failed; reading users one by one");
                None
            }
        };
        // In batch order, so the request is the same on every run.
        let wanted: Vec<UserId> = match &records {
            Some(m) => batch
                .iter()
                .filter_map(|u| m.get(&u.id))
                .filter(|r| !(only_missing && r.token.is_some()))
                .filter_map(|r| r.mattermost_user_id.clone())
                .collect(),
            None => Vec::new(),
        };
        let mut accounts: Option<HashMap<UserId, User>> = None;
        if !wanted.is_empty() {
            match self.admin().users_by_ids(&wanted).await {
                Ok(list) => accounts = Some(list.into_iter().map(|u| (u.id.clone(), u)).collect()),
                Err(e) => {
                    tracing::warn!(error = %e, "bulk user fetch failed; fetching users one by one")
                }
            }
        }
        batch
            .into_iter()
            .map(|user| {
                let record = match records.as_mut() {
                    Some(m) => Some(m.remove(&user.id).ok_or(())),
                    None => None,
                };
                let (record, account) = match record {
                    // Not in the store's table: sync_prepared reports it.
                    Some(Err(())) => (None, None),
                    Some(Ok(r)) => {
                        let account = match (&r.mattermost_user_id, &accounts) {
                            (Some(id), Some(a)) => Some(a.get(id).cloned()),
                            _ => None,
                        };
                        (Some(r), account)
                    }
                    None => (None, None),
                };
                Prepared {
                    user,
                    record,
                    account,
                }
            })
            .collect()
    }

    async fn sync_prepared(&self, p: Prepared) -> Result<UserOutcome, Error> {
        let user = &p.user;
        let invalid = |reason: String| Error::InvalidHostUser {
            user: user.id.clone(),
            reason,
        };
        let email = user.normalized_email().map_err(invalid)?;
        let record = match p.record {
            Some(r) => r,
            None => self.record(&user.id).await?,
        };
        let expiring = self.expiring(&record);
        if (record.token.is_none() || self.opts.replace_tokens || expiring)
            && !self.opts.dry_run
            && let Some(e) = self.expiry_refused()
        {
            // The server's lifetime policy refused an earlier mint of this
            // sync: this one would be refused too.
            return Err(e);
        }

        // 1. The account.
        let existing = match (&record.mattermost_user_id, p.account) {
            (None, _) => None,
            (Some(_), Some(fetched)) => fetched,
            (Some(id), None) => match self.admin().user(id).await {
                // The answer must be the account asked for: its id is
                // written to the store below.
                Ok(u) if u.id != *id => {
                    return Err(self.malformed("GET", &format!("users/{id}"), 200, &u.id));
                }
                Ok(u) => Some(u),
                Err(e) if e.is_not_found() => None,
                Err(e) => return Err(e),
            },
        };
        // The Mattermost id the store holds for this user, as it changes below.
        let mut linked = record.mattermost_user_id.clone();
        let (account, outcome, created_now) = match existing {
            Some(u) => {
                let (u, o) = self.update_account(user, &email, u).await?;
                (Some(u), o, false)
            }
            None => match self.find_or_create(user, &email).await? {
                (Some(u), true) => (Some(u), AccountOutcome::Created, true),
                (Some(u), false) => {
                    // Found by email: link it first, so an account that is
                    // another host user's (same email) is refused by the
                    // store before anything of it is changed.
                    if !self.opts.dry_run && linked.as_ref() != Some(&u.id) {
                        match self.store.set_mattermost_user_id(&user.id, &u.id).await {
                            Ok(()) => linked = Some(u.id.clone()),
                            Err(StoreError::AlreadyLinked { .. }) => {
                                return Err(self.shared_account(&user.id, &u.id).await);
                            }
                            Err(e) => return Err(e.into()),
                        }
                    }
                    let (u, o) = self.update_account(user, &email, u).await?;
                    (Some(u), o, false)
                }
                (None, _) => (None, AccountOutcome::Created, true),
            },
        };
        let Some(account) = account else {
            // Dry run for a user that does not exist yet.
            return Ok(UserOutcome {
                user: user.id.clone(),
                mattermost_user_id: None,
                account: outcome,
                token: TokenOutcome::WouldMint,
                orphans_revoked: 0,
            });
        };
        if account.is_deactivated() {
            return Err(Error::UserDeactivated {
                user: user.id.clone(),
                mattermost_user_id: account.id,
            });
        }
        if !self.opts.dry_run && linked.as_ref() != Some(&account.id) {
            // Linked before the mint: a crash after this point leaves a
            // user the next run finds without a lookup.
            match self
                .store
                .set_mattermost_user_id(&user.id, &account.id)
                .await
            {
                Ok(()) => {}
                Err(StoreError::AlreadyLinked { .. }) => {
                    return Err(self.shared_account(&user.id, &account.id).await);
                }
                Err(e) => return Err(e.into()),
            }
        }

        // 2. The token.
        let replacing = record.token.is_some();
        let (token, orphans_revoked) = if replacing && !self.opts.replace_tokens && !expiring {
            (TokenOutcome::Kept, 0)
        } else if self.opts.dry_run {
            (TokenOutcome::WouldMint, 0)
        } else {
            let old = replacing.then_some(record.token_id.as_ref()).flatten();
            self.mint_and_store(&user.id, &account.id, created_now, replacing, old)
                .await?
        };
        Ok(UserOutcome {
            user: user.id.clone(),
            mattermost_user_id: Some(account.id),
            account: outcome,
            token,
            orphans_revoked,
        })
    }

    /// Creates the account, or finds it by email when it already exists.
    /// Returns the account (None in a dry run for a new user) and whether
    /// this call created it.
    async fn find_or_create(
        &self,
        user: &HostUser,
        email: &str,
    ) -> Result<(Option<User>, bool), Error> {
        let admin = self.admin();
        if self.opts.dry_run {
            return match admin.user_by_email(email).await {
                Ok(u) => Ok((Some(u), false)),
                Err(e) if e.is_not_found() => Ok((None, true)),
                Err(e) => Err(e),
            };
        }
        let candidates = user
            .username_candidates()
            .map_err(|reason| Error::InvalidHostUser {
                user: user.id.clone(),
                reason,
            })?;
        if self.seen.lookup_first() {
            match admin.user_by_email(email).await {
                Ok(u) if !is_valid_mattermost_id(u.id.as_str()) => {
                    return Err(self.malformed("GET", &format!("users/email/{email}"), 200, &u.id));
                }
                Ok(u) => {
                    self.seen.record(true);
                    return Ok((Some(u), false));
                }
                Err(e) if e.is_not_found() => {}
                Err(e) => return Err(e),
            }
        }
        for username in &candidates {
            let req = self.create_request(user, email, username);
            match admin.create_user(&req).await {
                Ok(u) if !is_valid_mattermost_id(u.id.as_str()) => {
                    return Err(self.malformed("POST", "users", 201, &u.id));
                }
                Ok(u) => {
                    tracing::info!(host_user = %user.id, mattermost_user = %u.id, "created Mattermost user");
                    self.seen.record(false);
                    return Ok((Some(u), true));
                }
                Err(e) if e.is_email_exists() => {
                    // Exists already (made by someone else, or by a sync
                    // racing with this one): carry on with it.
                    self.seen.record(true);
                    let u = admin.user_by_email(email).await?;
                    if !is_valid_mattermost_id(u.id.as_str()) {
                        return Err(self.malformed(
                            "GET",
                            &format!("users/email/{email}"),
                            200,
                            &u.id,
                        ));
                    }
                    return Ok((Some(u), false));
                }
                Err(e) if e.is_username_exists() => {
                    tracing::debug!(host_user = %user.id, username, "username taken; trying the next");
                    continue;
                }
                Err(e) => return Err(e),
            }
        }
        Err(Error::InvalidHostUser {
            user: user.id.clone(),
            reason: format!(
                "every username tried is taken in Mattermost ({}); set an explicit username",
                candidates.join(", ")
            ),
        })
    }

    fn create_request(&self, user: &HostUser, email: &str, username: &str) -> CreateUser {
        let (password, auth_service, auth_data) = match &self.opts.auth_service {
            Some(service) => (None, service.clone(), email.to_owned()),
            None => (Some(random_password()), String::new(), String::new()),
        };
        CreateUser {
            email: email.to_owned(),
            username: username.to_owned(),
            first_name: user.first_name_clamped(),
            last_name: user.last_name_clamped(),
            nickname: user.nickname_clamped().unwrap_or_default(),
            password,
            auth_service,
            auth_data,
            email_verified: true,
            locale: String::new(),
        }
    }

    /// Patches the fields that differ from the host's data.
    async fn update_account(
        &self,
        user: &HostUser,
        email: &str,
        account: User,
    ) -> Result<(User, AccountOutcome), Error> {
        let mut patch = UserPatch::default();
        if account.email.to_lowercase() != email {
            patch.email = Some(email.to_owned());
        }
        let first = user.first_name_clamped();
        if account.first_name != first {
            patch.first_name = Some(first);
        }
        let last = user.last_name_clamped();
        if account.last_name != last {
            patch.last_name = Some(last);
        }
        if let Some(n) = user.nickname_clamped()
            && account.nickname != n
        {
            patch.nickname = Some(n);
        }
        if let Some(u) = &user.username {
            let u = u.trim().to_lowercase();
            if account.username != u {
                patch.username = Some(u);
            }
        }
        if patch.is_empty() {
            return Ok((account, AccountOutcome::Unchanged));
        }
        if self.opts.dry_run || account.is_deactivated() {
            return Ok((account, AccountOutcome::Updated));
        }
        let updated = self.admin().patch_user(&account.id, &patch).await?;
        tracing::info!(host_user = %user.id, mattermost_user = %updated.id, "updated Mattermost user");
        Ok((updated, AccountOutcome::Updated))
    }

    /// The error for a host user whose email leads to a Mattermost account
    /// another host user is linked to, naming that user when its token says
    /// who it is.
    async fn shared_account(&self, user: &HostUserId, account: &UserId) -> Error {
        let other = match self.linked_tokens(user, account).await {
            Ok(tokens) => tokens.into_iter().find_map(|(_, owner, _)| owner),
            Err(_) => None,
        };
        shared_account_error(user, account, other.as_deref())
    }

    /// The error for a success answer whose user id is not a Mattermost id
    /// (`{"id": ""}`, a proxy's made-up JSON): such an id must not reach the
    /// store, where every later sync of the user would trip over it.
    fn malformed(&self, method: &str, path: &str, status: u16, id: &UserId) -> Error {
        Error::BadResponse {
            status,
            method: method.into(),
            url: format!("{}api/v4/{path}", self.client.server_url()),
            reason: "the answer does not carry the user's Mattermost id".into(),
            snippet: format!("id {:?}", crate::error::snippet(id.as_str().as_bytes())),
        }
    }

    /// Whether the record's token expires within the renewal margin (or has
    /// expired): the sync then replaces it.
    fn expiring(&self, record: &TokenRecord) -> bool {
        record.expires_within(unix_now_ms(), self.renew_before_ms)
    }

    /// The refusal of an earlier mint by the server's lifetime policy.
    fn expiry_refused(&self) -> Option<Error> {
        self.expiry
            .refused
            .get()
            .map(|(rule, error)| Error::TokenExpiryPolicy {
                rule: *rule,
                error: Box::new(error.clone()),
            })
    }

    /// The description of tokens minted for `user`.
    pub fn token_description(&self, user: &HostUserId) -> String {
        let key = user.to_key_string();
        let key = if key.chars().count() > 120 || key.contains(" at ") {
            format!("sha256:{}", hex_sha256(&key))
        } else {
            key
        };
        let now = unix_now();
        format!(
            "{DESCRIPTION_PREFIX}{} user {key} at {now}",
            self.opts.app_name
        )
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
    fn parse_any_description<'d>(&self, description: &'d str) -> Option<(&'d str, u64)> {
        let rest = description
            .strip_prefix(DESCRIPTION_PREFIX)?
            .strip_prefix(self.opts.app_name.as_str())?
            .strip_prefix(" user ")?;
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
    async fn linked_tokens(
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

    /// Mints a token and stores it; see the crate docs for the crash and race
    /// rules this keeps.
    pub(crate) async fn mint_and_store(
        &self,
        user: &HostUserId,
        mattermost_user: &UserId,
        created_now: bool,
        replacing: bool,
        old: Option<&TokenId>,
    ) -> Result<(TokenOutcome, u32), Error> {
        let mut orphans = 0u32;
        let mut young_left = false;
        if !created_now && !replacing {
            // Orphans of a crash (minted, never stored). Young ones may be a
            // concurrent sync's, about to be stored: leave those until this
            // sync has stored its own.
            let now = unix_now();
            let tokens = self.linked_tokens(user, mattermost_user).await?;
            if let Some((_, Some(other), _)) = tokens.iter().find(|(_, o, _)| o.is_some()) {
                // A store without the unique link (a host's own TokenStore)
                // still must not let two host users share one account.
                return Err(shared_account_error(user, mattermost_user, Some(other)));
            }
            for (id, _, minted) in tokens {
                if now.saturating_sub(minted) >= self.opts.orphan_grace.as_secs() {
                    self.revoke_quietly(&id).await?;
                    tracing::info!(host_user = %user, token_id = %id, "revoked orphaned token");
                    orphans += 1;
                } else {
                    young_left = true;
                }
            }
        }
        let asked_expiry = self
            .opts
            .token_lifetime
            .map(|l| unix_now_ms().saturating_add(millis(l)));
        let minted: CreatedToken = match self
            .admin()
            .create_token(
                mattermost_user,
                &CreateToken {
                    description: self.token_description(user),
                    expires_at: asked_expiry,
                },
            )
            .await
        {
            Ok(t) => t,
            Err(Error::TokenExpiryPolicy { rule, error }) => {
                let _ = self.expiry.refused.set((rule, (*error).clone()));
                return Err(Error::TokenExpiryPolicy { rule, error });
            }
            Err(e) => return Err(e),
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
            if is_valid_mattermost_id(minted.id.as_str()) {
                self.revoke_after_failure(user, &minted.id).await;
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
        let stored = match (replacing, old) {
            (false, _) => self.store.put_token_if_absent(user, &new).await,
            (true, Some(old)) => self.store.replace_token(user, old, &new).await,
            (true, None) => self.store.put_token(user, &new).await.map(|()| true),
        };
        match stored {
            Ok(true) => {}
            Ok(false) => {
                tracing::info!(host_user = %user, token_id = %minted.id, "another sync stored a token first; revoking this one");
                self.revoke_after_failure(user, &minted.id).await;
                return Ok((TokenOutcome::LostRace, orphans));
            }
            Err(e) => {
                self.revoke_after_failure(user, &minted.id).await;
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
        if let Some(old) = old {
            self.revoke_quietly(old).await?;
            return Ok((TokenOutcome::Replaced, orphans));
        }
        Ok((
            if replacing {
                TokenOutcome::Replaced
            } else {
                TokenOutcome::Minted
            },
            orphans,
        ))
    }

    /// Clears `id` from the user's row if it is still the stored token, then
    /// revokes it (best effort: what is left is found by the next sync).
    async fn unstore_after_failure(&self, user: &HostUserId, id: &TokenId) {
        let still_ours = match self.store.get(user).await {
            Ok(Some(rec)) => rec.token_id.as_ref() == Some(id),
            _ => false,
        };
        if !still_ours {
            return;
        }
        match self.store.clear_token(user).await {
            Ok(_) => self.revoke_after_failure(user, id).await,
            Err(e) => tracing::error!(
                host_user = %user, token_id = %id, error = %e,
                "could not clear a token whose orphans were not revoked; revoke_orphans revokes them"
            ),
        }
    }

    /// A minted token that is not stored must not stay live.
    async fn revoke_after_failure(&self, user: &HostUserId, id: &TokenId) {
        if let Err(e) = self.revoke_quietly(id).await {
            // The next sync of this user finds it by its description.
            tracing::error!(
                host_user = %user, token_id = %id, error = %e,
                "could not revoke a token that was not stored; the next sync of this user revokes it"
            );
        }
    }
}

/// Why a token creation answer cannot be stored, if it cannot: the token
/// needs an id (to be revoked), a value that fits an HTTP header, and the
/// owner it was minted for.
fn check_minted(minted: &CreatedToken, owner: &UserId) -> Result<(), String> {
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

/// Two app users would share one Mattermost account, each able to act as
/// the other: refused.
fn shared_account_error(user: &HostUserId, account: &UserId, other: Option<&str>) -> Error {
    let other = other.map_or_else(
        || "another host user".to_owned(),
        |o| format!("host user {o}"),
    );
    Error::InvalidHostUser {
        user: user.clone(),
        reason: format!(
            "its Mattermost account {account} is already linked to {other} (same email?); \
             two app users cannot share one Mattermost account"
        ),
    }
}

pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// Milliseconds since the epoch, Mattermost's unit for `expires_at`.
pub(crate) fn unix_now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, millis)
}

/// `d` in whole milliseconds, saturating at `i64::MAX`.
pub(crate) fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

fn hex_sha256(s: &str) -> String {
    use sha2::{Digest, Sha256};
    crate::ids::hex_lower(&Sha256::digest(s.as_bytes()))
}

/// 32 random characters with every class a password policy may ask for.
fn random_password() -> SecretString {
    const LOWER: &[u8] = b"abcdefghijkmnopqrstuvwxyz";
    const UPPER: &[u8] = b"ABCDEFGHJKLMNPQRSTUVWXYZ";
    const DIGIT: &[u8] = b"23456789";
    const SYMBOL: &[u8] = b"!#%+-.:=?@^_~";
    let mut rng = rand::rng();
    let all: Vec<u8> = [LOWER, UPPER, DIGIT, SYMBOL].concat();
    let mut p: Vec<u8> = (0..28)
        .map(|_| all[rng.random_range(0..all.len())])
        .collect();
    for class in [LOWER, UPPER, DIGIT, SYMBOL] {
        let at = rng.random_range(0..=p.len());
        p.insert(at, class[rng.random_range(0..class.len())]);
    }
    SecretString::from(String::from_utf8(p).unwrap_or_default())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_are_strong() {
        use secrecy::ExposeSecret;
        let p = random_password();
        let s = p.expose_secret();
        assert_eq!(s.len(), 32);
        assert!(s.chars().any(|c| c.is_ascii_lowercase()));
        assert!(s.chars().any(|c| c.is_ascii_uppercase()));
        assert!(s.chars().any(|c| c.is_ascii_digit()));
        assert!(s.chars().any(|c| !c.is_ascii_alphanumeric()));
        assert_ne!(s, random_password().expose_secret());
    }
}
