//! Syncs the host app's users into Mattermost and gives each one a personal
//! access token, stored in the app's `users` table: the Rust counterpart of
//! `php artisan mattermost:sync-users`.
//!
//! With no `MATTERMOST_URL` it starts a stand-in Mattermost; with no
//! `DATABASE_URL` it uses `mattermost-tokens-demo.sqlite` in the working
//! directory, creating a Laravel-shaped `users` table with demo users.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use anyhow::{Context, anyhow};
use clap::{ArgGroup, Parser};
use futures::{Stream, StreamExt};
use indicatif::{ProgressBar, ProgressStyle};
use mattermost_tokens::{
    HostUser, HostUserId, HostUserSource, LeaverPolicy, LinkPolicy, ReconcileReport, StoreError,
    SyncOptions, SyncReport, TokenOutcome, UserResult, UserSync,
};
use mattermost_tokens_examples::demo_db::HostDb;
use mattermost_tokens_examples::setup::{self, Env, Fatal, StoreKind};

/// Sync the app's users into Mattermost, minting one personal access token per
/// user (once) and storing it in the app's users table.
///
/// Environment: MATTERMOST_URL (unset: start a stand-in Mattermost),
/// MATTERMOST_TOKEN (the admin's personal access token), DATABASE_URL
/// (default sqlite://mattermost-tokens-demo.sqlite; postgres:// and mysql://
/// work too), MATTERMOST_TOKENS_KEY (optional base64 32-byte key: encrypt
/// tokens at rest), SQLITE_BUSY_TIMEOUT_MS (how long a SQLite write waits
/// for another connection's lock; default 5000), RUST_LOG (log filter, e.g.
/// mattermost_tokens=debug), HOST_INACTIVE_COLUMN (a users column whose
/// non-NULL value means the user left the app, e.g. deleted_at),
/// MATTERMOST_ALLOW_HTTP=1 (accept a plain http:// MATTERMOST_URL on another
/// host; tokens then cross the network in clear).
///
/// Exit codes: 0 all users synced, 1 some users failed, 2 configuration or
/// server error, 3 users left out because the Mattermost server is at its
/// user limit (and none failed otherwise).
#[derive(Debug, Parser)]
#[command(
    version,
    group(ArgGroup::new("which").required(true).args(["all", "missing", "user", "reconcile"]))
)]
struct Args {
    /// Sync every user of the users table.
    #[arg(long)]
    all: bool,
    /// Compare the store with the server and repair the difference: dead
    /// tokens replaced, missing ones minted, deactivated accounts handled,
    /// orphans revoked (with --dry-run: print the repairs only). Needs an
    /// admin with manage_system and Mattermost 4.7+.
    #[arg(long)]
    reconcile: bool,
    /// Revoke (and clear) the tokens of users who left the app (the column in
    /// HOST_INACTIVE_COLUMN is not NULL); `--prune-leavers=deactivate` also
    /// deactivates their Mattermost accounts.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "revoke", value_name = "HOW")]
    prune_leavers: Option<PruneArg>,
    /// With --reconcile: users whose rows were deleted from the users table
    /// are leavers too (their tokens are revoked in any case; with
    /// --prune-leavers=deactivate their accounts are deactivated).
    #[arg(long, requires = "reconcile")]
    prune_absent: bool,
    /// Sync only users without a stored token.
    #[arg(long)]
    missing: bool,
    /// Sync one user, by id.
    #[arg(long, value_name = "ID")]
    user: Option<i64>,
    /// Users synced at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    concurrency: u16,
    /// Where tokens are stored: the sqlx or diesel adapter on DATABASE_URL, or
    /// memory (not kept after the run).
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlx)]
    store: StoreKind,
    /// Show what would happen without changing Mattermost or the database.
    #[arg(long)]
    dry_run: bool,
    /// The app name written into token descriptions.
    #[arg(long, default_value = "demo-app")]
    app_name: String,
    /// When an existing Mattermost account has a host user's email: link it
    /// only if the host verified the email (`verified`, the default), always,
    /// or never. Admin and bot accounts are never linked.
    #[arg(long, value_enum, default_value_t = LinkArg::Verified)]
    link_policy: LinkArg,
    /// Mint tokens that expire after this many days (servers with token
    /// expiry); stored tokens close to expiry are renewed. Without it tokens
    /// do not expire.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    token_lifetime_days: Option<u32>,
    /// How long this run's claims on users last (other instances leave the
    /// users it holds alone; a killed run's claims run out after this).
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    claim_ttl: u32,
}

/// `--prune-leavers`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum PruneArg {
    Revoke,
    Deactivate,
}

/// `--link-policy`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum LinkArg {
    Never,
    Verified,
    Always,
}

impl From<LinkArg> for LinkPolicy {
    fn from(a: LinkArg) -> Self {
        match a {
            LinkArg::Never => LinkPolicy::Never,
            LinkArg::Verified => LinkPolicy::VerifiedEmail,
            LinkArg::Always => LinkPolicy::Always,
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    setup::init_logging();
    let args = Args::parse();
    match run(args).await {
        Ok(Ended {
            failed: 0,
            left_out: 0,
        }) => ExitCode::SUCCESS,
        Ok(Ended { failed: 0, .. }) => ExitCode::from(3),
        Ok(_) => ExitCode::from(1),
        Err(f) => f.report(),
    }
}

/// How a run ended: users that failed, users left out because the server
/// is full.
struct Ended {
    failed: u64,
    left_out: u64,
}

/// Runs the sync (or reconcile) asked for.
async fn run(args: Args) -> Result<Ended, Fatal> {
    let env = Env::from_env();
    let host = HostDb::connect(&env.database_url)
        .await
        .context("check DATABASE_URL")?;
    let seeded = host.ensure_demo_users().await?;
    if seeded > 0 {
        eprintln!("created a users table with {seeded} demo users");
    }
    let stores = setup::stores(args.store, &env, &host).await?;
    let (store, source) = (stores.tokens, stores.users);
    let server = setup::mattermost(&env).await?;
    let sync = UserSync::new(server.client.clone(), store.clone(), {
        let mut o = SyncOptions::new(args.app_name.clone())
            .concurrency(usize::from(args.concurrency))
            .dry_run(args.dry_run)
            .claim_ttl(std::time::Duration::from_secs(u64::from(args.claim_ttl)))
            .link_policy(args.link_policy.into())
            .leavers(match args.prune_leavers {
                None => LeaverPolicy::Keep,
                Some(PruneArg::Revoke) => LeaverPolicy::Revoke,
                Some(PruneArg::Deactivate) => LeaverPolicy::RevokeAndDeactivate,
            });
        o.absent_are_leavers = args.prune_absent;
        o.token_lifetime = args
            .token_lifetime_days
            .map(|d| std::time::Duration::from_secs(u64::from(d) * 86_400));
        o
    })
    .map_err(setup::explain)?;

    let read_error: Arc<Mutex<Option<anyhow::Error>>> = Arc::default();
    if args.reconcile {
        let users = stop_on_error(
            mattermost_tokens::host_table::stream(source.clone()),
            read_error.clone(),
        );
        let verb = if args.dry_run {
            "would repair"
        } else {
            "repaired"
        };
        let result = sync
            .reconcile(users, |repair| eprintln!("{verb}: {repair}"))
            .await;
        server.save();
        let report = result.map_err(setup::explain)?;
        print_reconcile_summary(&report, args.dry_run);
        if let Some(e) = read_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(e
                .context("reading host users stopped the reconcile early")
                .into());
        }
        return Ok(Ended {
            failed: report.summary.failed,
            left_out: 0,
        });
    }
    let progress = Progress::new();
    let on_result = |r: &UserResult| progress.record(r);
    let result = if let Some(id) = args.user {
        let users = source.by_ids(&[HostUserId::Int(id)]).await?;
        if users.is_empty() {
            return Err(anyhow!("no user with id {id} in the users table").into());
        }
        sync.sync_all(futures::stream::iter(users), on_result).await
    } else if args.missing {
        let users = missing_users(source.as_ref(), store.as_ref()).await?;
        progress.set_len(users.len());
        sync.sync_missing(futures::stream::iter(users), on_result)
            .await
    } else {
        let users = stop_on_error(
            mattermost_tokens::host_table::stream(source.clone()),
            read_error.clone(),
        );
        sync.sync_all(users, on_result).await
    };
    progress.finish();
    server.save();
    let report = result.map_err(setup::explain)?;
    if let Some(e) = read_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        print_summary(&report, args.dry_run);
        return Err(e
            .context("reading host users stopped the sync early")
            .into());
    }
    print_summary(&report, args.dry_run);
    Ok(Ended {
        failed: report.summary.failed,
        left_out: report.summary.left_out,
    })
}

/// Users without a stored token, read page by page from the store.
async fn missing_users(
    source: &dyn HostUserSource,
    store: &dyn mattermost_tokens::TokenStore,
) -> anyhow::Result<Vec<HostUser>> {
    let mut out = Vec::new();
    let mut after: Option<HostUserId> = None;
    loop {
        let page = store.list_missing(after.as_ref(), 500).await?;
        out.extend(source.by_ids(&page.users).await?);
        match page.next {
            Some(n) => after = Some(n),
            None => return Ok(out),
        }
    }
}

/// Ends the stream at the first read error, keeping the error.
fn stop_on_error<'a>(
    users: impl Stream<Item = Result<HostUser, StoreError>> + Send + 'a,
    slot: Arc<Mutex<Option<anyhow::Error>>>,
) -> impl Stream<Item = HostUser> + Send + 'a {
    users
        .map(move |r| match r {
            Ok(u) => Some(u),
            Err(e) => {
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(e.into());
                None
            }
        })
        .take_while(|u| std::future::ready(u.is_some()))
        .filter_map(std::future::ready)
}

/// A progress bar on a terminal, a line per user otherwise.
struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    fn new() -> Self {
        let bar = std::io::stderr().is_terminal().then(|| {
            let b = ProgressBar::new_spinner();
            b.set_style(
                ProgressStyle::with_template("{spinner} {pos} users synced {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_spinner()),
            );
            b
        });
        Progress { bar }
    }

    fn set_len(&self, n: usize) {
        if let Some(b) = &self.bar {
            b.set_length(n as u64);
            b.set_style(
                ProgressStyle::with_template("{bar:40} {pos}/{len} users {wide_msg}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar()),
            );
        }
    }

    fn record(&self, r: &UserResult) {
        let line = match r {
            Ok(o) => {
                format!(
                    "user {}: {}, token {}",
                    o.user,
                    o.account.name(),
                    match o.token {
                        TokenOutcome::LostRace => "kept (another sync stored one first)",
                        TokenOutcome::WouldMint => "would be minted",
                        TokenOutcome::Skipped => "present (skipped)",
                        t => t.name(),
                    }
                ) + &o
                    .warnings
                    .iter()
                    .map(|w| format!("; warning: {w}"))
                    .collect::<String>()
            }
            Err(f) if matches!(f.error, mattermost_tokens::Error::UserLimitReached { .. }) => {
                format!("user {}: not created (the summary says why)", f.user)
            }
            Err(f) => format!("user {}: FAILED: {}", f.user, f.error),
        };
        match &self.bar {
            Some(b) => {
                b.inc(1);
                if r.as_ref().map_or(true, |o| !o.warnings.is_empty()) {
                    b.println(line);
                }
            }
            None => eprintln!("{line}"),
        }
    }

    fn finish(&self) {
        if let Some(b) = &self.bar {
            b.finish_and_clear();
        }
    }
}

/// Prints the reconcile's summary table.
fn print_reconcile_summary(r: &ReconcileReport, dry_run: bool) {
    use std::io::Write;
    let s = &r.summary;
    let mut text = String::from(if dry_run {
        "Reconcile (dry run: nothing was changed)\n"
    } else {
        "Reconcile\n"
    });
    for (label, n) in [
        ("users", s.users),
        ("tokens listed", s.tokens_listed),
        ("repairs", s.repairs),
        ("minted", s.minted),
        ("reminted", s.reminted),
        ("relinked", s.relinked),
        ("reactivated", s.reactivated),
        ("deactivated", s.deactivated_cleared),
        ("leavers", s.leavers),
        ("orphans revoked", s.orphans_revoked),
        ("failed", s.failed),
    ] {
        text.push_str(&format!("  {label:<16}{n:>8}\n"));
    }
    text.push_str(&format!("  {:<16}{:>8.1?}\n", "time", r.elapsed));
    if dry_run {
        // Every mint makes Mattermost e-mail the user.
        text.push_str(&format!(
            "  mints (each e-mails its user): {}\n",
            s.minted + s.reminted + s.relinked
        ));
    }
    for f in &r.failures {
        text.push_str(&format!("  user {}: {}\n", f.user, f.error));
    }
    let _ = std::io::stdout().lock().write_all(text.as_bytes());
}

/// Prints the summary table; a closed stdout (`| head`) is not an error.
fn print_summary(r: &SyncReport, dry_run: bool) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    let s = &r.summary;
    let title = if dry_run {
        "Summary (dry run: nothing was changed)"
    } else {
        "Summary"
    };
    let mut text = format!("{title}\n");
    for (label, n) in [
        ("created", s.created),
        ("updated", s.updated),
        ("unchanged", s.unchanged),
        ("minted", s.minted),
        ("kept", s.kept),
        ("skipped", s.skipped),
        ("held elsewhere", s.held_elsewhere),
        ("orphans revoked", s.orphans_revoked),
        ("left out", s.left_out),
        ("failed", s.failed),
    ] {
        text.push_str(&format!("  {label:<16}{n:>8}\n"));
    }
    text.push_str(&format!("  {:<16}{:>8.1?}\n", "time", r.elapsed));
    if let Some(hit) = &r.user_limit {
        text.push_str(&format!(
            "{hit}: raise the limit, deactivate users who left, or license seats; then run --missing\n"
        ));
    }
    if dry_run {
        // Every mint makes Mattermost e-mail the user.
        text.push_str(&format!("  mints (each e-mails its user): {}\n", s.minted));
        if let (Some(l), Some(fit)) = (r.server_limits, r.creates_that_fit()) {
            text.push_str(&format!(
                "  server users: {l}; {} of {} planned creates fit\n",
                fit, s.created
            ));
        }
    }
    if !r.failures.is_empty() {
        text.push_str("Failures\n");
        for f in &r.failures {
            text.push_str(&format!("  user {}: {}\n", f.user, f.error));
        }
        let more = r.failures_not_kept();
        if more > 0 {
            text.push_str(&format!(
                "  ... and {more} more (each was logged as it happened)\n"
            ));
        }
    }
    let _ = out.write_all(text.as_bytes());
}
