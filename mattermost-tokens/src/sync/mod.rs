//! [`UserSync`]: put host users into Mattermost and give each one token.

mod account;
mod capacity;
mod claims;
mod leavers;
mod options;
mod reconcile;
mod report;
mod tokens;

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::stream::{self, Stream, StreamExt};
use tracing::Instrument;

use crate::client::{Acting, MattermostClient};
use crate::error::{ApiError, Error, ExpiryRule};
use crate::host::HostUser;
use crate::ids::{HostUserId, TokenId, UserId};
use crate::models::User;
use crate::store::{TokenRecord, TokenStore};
use crate::time::millis;

pub(crate) use options::push_bounded;
pub use options::{DEFAULT_REPORT_LIMIT, DeactivatedPolicy, LeaverPolicy, LinkPolicy, SyncOptions};
pub use reconcile::{DeadToken, ReconcileReport, ReconcileSummary, Repair};
pub use report::{
    AccountOutcome, ServerCheck, SyncReport, SyncSummary, SyncWarning, TokenOutcome, UserFailure,
    UserLimitHit, UserOutcome, UserResult,
};
pub use tokens::DESCRIPTION_PREFIX;
pub(crate) use tokens::Replacing;

/// The `props` key of the mark on accounts the sync creates: the app
/// identity ([`SyncOptions::app_name`]). With [`MARK_USER_PROP`] it lets a
/// later sync recognise an account it created for the same host user (a
/// create whose answer was lost, a concurrent sync) and link it whatever the
/// [`LinkPolicy`]. The mark is not a secret and grants nothing alone.
pub const MARK_APP_PROP: &str = "mattermost_tokens_app";
/// The `props` key of the host user's key in the mark (see
/// [`MARK_APP_PROP`]).
pub const MARK_USER_PROP: &str = "mattermost_tokens_user";

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
/// let sync = UserSync::new(client, store, SyncOptions::new("shop"))?;
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
    unrevoked: Arc<Unrevoked>,
}

/// What the server has shown of its token expiry support.
#[derive(Debug, Default)]
struct ExpiryState {
    /// An expiry was asked for and the answer had none: warned once.
    ignored_warned: std::sync::atomic::AtomicBool,
}

/// What one run (one `sync_all`, one `sync_user`) learned that its later
/// users need. It ends with the run: a policy change on the server, or one
/// refusal caused by clock skew, does not stop later runs.
#[derive(Debug, Default)]
pub(crate) struct RunState {
    /// The server's lifetime policy refused a mint: every later mint of the
    /// run, with the same options, would be refused too, so they fail at
    /// once.
    expiry_refused: std::sync::OnceLock<(ExpiryRule, ApiError)>,
    /// The run lists every token on the server itself (reconcile) and
    /// revokes orphans from that listing: no per-user listing before a
    /// mint.
    orphans_listed: bool,
    /// A bulk run (`sync_all`, `sync_missing`, `reconcile`): it reads the
    /// server's user limit once before its first create.
    bulk: bool,
    /// What the run knows of the server's room for users.
    capacity: capacity::Capacity,
}

impl RunState {
    pub(crate) fn expiry_refusal(&self, rule: ExpiryRule, error: &ApiError) {
        let _ = self.expiry_refused.set((rule, error.clone()));
    }

    fn expiry_refused(&self) -> Option<Error> {
        self.expiry_refused
            .get()
            .map(|(rule, error)| Error::TokenExpiryPolicy {
                rule: *rule,
                error: Box::new(error.clone()),
            })
    }
}

/// Replaced tokens whose revoke failed, retried by later runs of this
/// `UserSync` (bounded; each is also found by the orphan sweep).
#[derive(Debug, Default)]
struct Unrevoked(std::sync::Mutex<Vec<(HostUserId, TokenId)>>);

impl Unrevoked {
    const LIMIT: usize = 10_000;

    fn remember(&self, user: &HostUserId, id: &TokenId) {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if list.len() < Self::LIMIT {
            list.push((user.clone(), id.clone()));
        }
    }

    fn take(&self, only: Option<&HostUserId>) -> Vec<(HostUserId, TokenId)> {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        match only {
            None => std::mem::take(&mut *list),
            Some(u) => {
                let (mine, rest) = std::mem::take(&mut *list)
                    .into_iter()
                    .partition(|(owner, _)| owner == u);
                *list = rest;
                mine
            }
        }
    }
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

/// What a batch's claim took, and what another sync holds.
#[derive(Default)]
struct Holds {
    held: HashMap<HostUserId, claims::Hold>,
    elsewhere: std::collections::HashSet<HostUserId>,
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
    /// The claim the batch took on the user, if it took one; released by
    /// the run when the user is done.
    hold: Option<Arc<claims::Hold>>,
    /// Another sync holds the user: nothing is done for it.
    held_elsewhere: bool,
}

impl Prepared {
    fn new(user: HostUser, record: Option<TokenRecord>) -> Self {
        Prepared {
            user,
            record,
            account: None,
            hold: None,
            held_elsewhere: false,
        }
    }
}

impl UserSync {
    /// A sync over `client` and `store`.
    pub fn new(
        client: MattermostClient,
        store: Arc<dyn TokenStore>,
        options: SyncOptions,
    ) -> Result<Self, Error> {
        let app = &options.app_name;
        if app.is_empty() {
            return Err(Error::InvalidInput(
                "the app identity is required: SyncOptions::new(app_name), a name only this deployment uses on the Mattermost server".into(),
            ));
        }
        if app.len() > 64
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
            unrevoked: Arc::default(),
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
    ///
    /// Over a store that shares claims it first claims the user, waiting up
    /// to [`SyncOptions::claim_wait`] while another sync (a sign-up hook on
    /// another web server, a bulk run) works on it, then reads what that
    /// one stored: concurrent calls for one user mint once.
    pub async fn sync_user(&self, user: &HostUser) -> Result<UserOutcome, Error> {
        let hold = match self.opts.dry_run {
            true => None,
            false => Some(Arc::new(self.hold_one(&user.id).await?)),
        };
        let result = async {
            let record = self.record(&user.id).await?;
            self.retry_unrevoked(Some(&user.id)).await;
            let mut p = Prepared::new(user.clone(), Some(record));
            p.hold = hold.clone();
            self.sync_prepared(p, &RunState::default()).await
        }
        .await;
        if let Some(h) = &hold {
            self.let_go(h).await;
        }
        result
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

    async fn run(
        &self,
        users: impl Stream<Item = HostUser> + Send,
        only_missing: bool,
        mut on_result: impl FnMut(&UserResult) + Send,
    ) -> Result<SyncReport, Error> {
        let started = Instant::now();
        self.check_server().await?;
        self.retry_unrevoked(None).await;
        let run = RunState {
            bulk: true,
            ..RunState::default()
        };
        let run = &run;
        let mut report = SyncReport::default();
        let results = users
            .chunks(self.opts.batch_size)
            .then(|batch| self.prepare_batch(batch, only_missing))
            .flat_map(stream::iter)
            .map(|p| {
                // One span per user: its host id and, once known, the
                // outcome (never a token).
                let span = tracing::info_span!(
                    "sync_user",
                    host_user = %p.user.id,
                    outcome = tracing::field::Empty,
                );
                async move {
                    let id = p.user.id.clone();
                    let hold = p.hold.clone();
                    let r = match p {
                        Prepared {
                            held_elsewhere: true,
                            ref record,
                            ..
                        } => Ok(UserOutcome::new(
                            id,
                            record.as_ref().and_then(|r| r.mattermost_user_id.clone()),
                            AccountOutcome::Unchanged,
                            TokenOutcome::HeldElsewhere,
                        )),
                        Prepared {
                            record: Some(ref r),
                            ..
                        } if only_missing && r.token.is_some() => Ok(UserOutcome::new(
                            id,
                            r.mattermost_user_id.clone(),
                            AccountOutcome::Unchanged,
                            TokenOutcome::Skipped,
                        )),
                        p => match self.sync_prepared(p, run).await {
                            // The claim ran out and another sync took the
                            // user over before this one minted.
                            Err(Error::UserBusy { .. }) => Ok(UserOutcome::new(
                                id,
                                None,
                                AccountOutcome::Unchanged,
                                TokenOutcome::HeldElsewhere,
                            )),
                            r => r.map_err(|error| UserFailure { user: id, error }),
                        },
                    };
                    if let Some(h) = &hold {
                        self.let_go(h).await;
                    }
                    let outcome = match &r {
                        Ok(o) => o.token.name(),
                        Err(_) => "failed",
                    };
                    tracing::Span::current().record("outcome", outcome);
                    r
                }
                .instrument(span)
            })
            .buffer_unordered(self.opts.concurrency);
        let mut results = std::pin::pin!(results);
        while let Some(r) = results.next().await {
            match &r {
                // Said once, when the run saw the server full.
                Err(UserFailure {
                    error: Error::UserLimitReached { .. },
                    ..
                }) => {}
                Err(f) => tracing::warn!(host_user = %f.user, error = %f.error, "user sync failed"),
                Ok(o) => {
                    for w in &o.warnings {
                        tracing::warn!(host_user = %o.user, warning = %w, "user synced with a warning");
                    }
                }
            }
            on_result(&r);
            report.record(r, self.opts.max_failures_kept);
        }
        report.elapsed = started.elapsed();
        report.server_limits = run.capacity.limits();
        if let Some(hit) = &report.user_limit {
            tracing::warn!("{hit}");
        }
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
        let mut holds = match records.as_mut() {
            Some(records) => self.hold_batch(records, only_missing).await,
            None => Holds::default(),
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
                    held_elsewhere: holds.elsewhere.contains(&user.id),
                    hold: holds.held.remove(&user.id).map(Arc::new),
                    user,
                    record,
                    account,
                }
            })
            .collect()
    }

    /// Claims the users of a batch that may need a token written (none
    /// stored, or one to replace), then reads their rows again: a row read
    /// before the claim may predate another sync's store. The users
    /// another sync holds are left out of `records`.
    async fn hold_batch(
        &self,
        records: &mut HashMap<HostUserId, TokenRecord>,
        only_missing: bool,
    ) -> Holds {
        let mut holds = Holds::default();
        if self.opts.dry_run || !self.store.claims_shared() {
            return holds;
        }
        let wanted: Vec<HostUserId> = records
            .iter()
            .filter(|(_, r)| {
                r.token.is_none()
                    || (!only_missing && (self.opts.replace_tokens || self.expiring(r)))
            })
            .map(|(u, _)| u.clone())
            .collect();
        if wanted.is_empty() {
            return holds;
        }
        let got = match self.hold_many(&wanted).await {
            Ok(got) => got,
            Err(e) => {
                // Each user then claims for itself before it mints.
                tracing::warn!(error = %e, "claiming a batch failed; claiming users one by one");
                return holds;
            }
        };
        holds.held = got.into_iter().map(|h| (h.user.clone(), h)).collect();
        for u in wanted {
            if !holds.held.contains_key(&u) {
                records.remove(&u);
                holds.elsewhere.insert(u);
            }
        }
        let mine: Vec<HostUserId> = holds.held.keys().cloned().collect();
        match self.store.get_many(&mine).await {
            Ok(fresh) => records.extend(fresh),
            Err(e) => {
                tracing::warn!(error = %e, "reading claimed users failed; reading them one by one");
                for u in &mine {
                    records.remove(u);
                }
            }
        }
        holds
    }
}
