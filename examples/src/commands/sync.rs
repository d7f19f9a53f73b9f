//! `sync`: the app's users into Mattermost, one token each, minted once and
//! stored in the users table (also the `sync_users` example's whole job).

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use anyhow::anyhow;
use clap::ArgGroup;
use futures::{Stream, StreamExt};
use mattermost_tokens::{
    HostUser, HostUserId, HostUserSource, LeaverPolicy, LinkPolicy, ReconcileReport, StoreError,
    SyncOptions, SyncReport, TokenOutcome, UserFailure, UserResult, UserSync,
};
use serde_json::json;

use super::{Common, open_for_sync};
use crate::cli::{Ended, Format, Progress, emit, print, summary_json, summary_table};
use crate::setup::{self, Fatal};

/// Sync the app's users into Mattermost, minting one personal access token
/// per user (once) and storing it in the app's users table.
#[derive(Debug, Clone, clap::Args)]
#[command(group(ArgGroup::new("which").required(true).args(["all", "missing", "user", "reconcile"])))]
pub struct SyncArgs {
    /// Sync every user of the users table.
    #[arg(long)]
    pub all: bool,
    /// Compare the store with the server and repair the difference: dead
    /// tokens replaced, missing ones minted, deactivated accounts handled,
    /// orphans revoked (with --dry-run: print the repairs only). Needs an
    /// admin with manage_system and Mattermost 4.7+.
    #[arg(long)]
    pub reconcile: bool,
    /// Revoke (and clear) the tokens of users who left the app (the column in
    /// HOST_INACTIVE_COLUMN is not NULL); `--prune-leavers=deactivate` also
    /// deactivates their Mattermost accounts.
    #[arg(long, value_enum, num_args = 0..=1, default_missing_value = "revoke", value_name = "HOW")]
    pub prune_leavers: Option<PruneArg>,
    /// With --reconcile: users whose rows were deleted from the users table
    /// are leavers too (their tokens are revoked in any case; with
    /// --prune-leavers=deactivate their accounts are deactivated).
    #[arg(long, requires = "reconcile")]
    pub prune_absent: bool,
    /// Sync only users without a stored token.
    #[arg(long)]
    pub missing: bool,
    /// Sync one user, by id.
    #[arg(long, value_name = "ID")]
    pub user: Option<i64>,
    /// Users synced at once.
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// Show what would happen without changing Mattermost or the database.
    #[arg(long)]
    pub dry_run: bool,
    /// The app name written into token descriptions.
    #[arg(long, default_value = "demo-app")]
    pub app_name: String,
    /// When an existing Mattermost account has a host user's email: link it
    /// only if the host verified the email (`verified`, the default), always,
    /// or never. Admin and bot accounts are never linked.
    #[arg(long, value_enum, default_value_t = LinkArg::Verified)]
    pub link_policy: LinkArg,
    /// Mint tokens that expire after this many days (servers with token
    /// expiry); stored tokens close to expiry are renewed. Without it tokens
    /// do not expire.
    #[arg(long, value_name = "DAYS", value_parser = clap::value_parser!(u32).range(1..=36_500))]
    pub token_lifetime_days: Option<u32>,
    /// How long this run's claims on users last (other instances leave the
    /// users it holds alone; a killed run's claims run out after this).
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub claim_ttl: u32,
}

/// `--prune-leavers`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum PruneArg {
    /// Revoke and clear their tokens.
    Revoke,
    /// Also deactivate their accounts.
    Deactivate,
}

/// `--link-policy`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum LinkArg {
    /// Never link an existing account.
    Never,
    /// Link when the host verified the email.
    Verified,
    /// Always link.
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

/// Where a sync records its last run (read by `status`).
pub fn last_run_file() -> PathBuf {
    std::env::var_os("MATTERMOST_TOKENS_LAST_RUN")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("mattermost-tokens-last-sync.json"))
}

/// Runs the sync (or reconcile) asked for.
pub async fn run(args: SyncArgs, common: Common) -> Result<Ended, Fatal> {
    let setup = open_for_sync(&common).await?;
    let (store, source) = (setup.stores.tokens.clone(), setup.stores.users.clone());
    let server = setup::mattermost(&setup.env).await?;
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
    let format = common.format;

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
            .reconcile(users, |repair| match format {
                Format::Json => emit(&json!({
                    "type": "repair",
                    "user": repair.user(),
                    "repair": repair.kind(),
                    "detail": repair.to_string(),
                    "dry_run": args.dry_run,
                })),
                Format::Text => eprintln!("{verb}: {repair}"),
            })
            .await;
        server.save();
        let report = result.map_err(setup::explain)?;
        print_reconcile_summary(format, &report, args.dry_run);
        if let Some(e) = read_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
            return Err(e
                .context("reading host users stopped the reconcile early")
                .into());
        }
        return Ok(Ended::failed(report.summary.failed));
    }
    let progress = Progress::new(format, "users synced");
    let on_result = |r: &UserResult| record(&progress, r);
    let result = if let Some(id) = args.user {
        let users = source.by_ids(&[HostUserId::Int(id)]).await?;
        if users.is_empty() {
            return Err(anyhow!("no user with id {id} in the users table").into());
        }
        sync.sync_all(futures::stream::iter(users), on_result).await
    } else if args.missing {
        let users = missing_users(source.as_ref(), store.as_ref()).await?;
        progress.set_len(users.len() as u64);
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
    print_summary(format, &report, args.dry_run);
    if !args.dry_run {
        save_last_run(&report);
    }
    if let Some(e) = read_error.lock().unwrap_or_else(|e| e.into_inner()).take() {
        return Err(e
            .context("reading host users stopped the sync early")
            .into());
    }
    Ok(Ended {
        failed: report.summary.failed,
        left_out: report.summary.left_out,
    })
}

/// Records the run's failures for `status` (best effort).
fn save_last_run(report: &SyncReport) {
    let doc = json!({
        "finished_at_ms": chrono::Utc::now().timestamp_millis(),
        "failed": report.summary.failed,
        "failed_users": report.failures.iter().map(|f| &f.user).collect::<Vec<_>>(),
    });
    let path = last_run_file();
    if let Err(e) = std::fs::write(&path, doc.to_string()) {
        tracing::warn!(path = %path.display(), error = %e, "could not record the last run");
    }
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
pub fn stop_on_error<'a>(
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

/// One user's result, for people and machines.
fn record(progress: &Progress, r: &UserResult) {
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
    let notable = r.as_ref().map_or(true, |o| !o.warnings.is_empty());
    progress.user(&line, notable, || match r {
        Ok(o) => json!({
            "type": "user",
            "user": o.user,
            "ok": true,
            "mattermost_user_id": o.mattermost_user_id,
            "account": o.account.name(),
            "token": o.token.name(),
            "warnings": o.warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
        }),
        Err(f) => json!({
            "type": "user",
            "user": f.user,
            "ok": false,
            "error": f.error.to_string(),
        }),
    });
}

/// The failures kept in a report, as JSON.
fn failures_json(failures: &[UserFailure]) -> Vec<serde_json::Value> {
    failures
        .iter()
        .map(|f| json!({"user": f.user, "error": f.error.to_string()}))
        .collect()
}

/// Prints the reconcile's summary.
fn print_reconcile_summary(format: Format, r: &ReconcileReport, dry_run: bool) {
    let s = &r.summary;
    let rows = [
        ("users", s.users),
        ("tokens_listed", s.tokens_listed),
        ("repairs", s.repairs),
        ("minted", s.minted),
        ("reminted", s.reminted),
        ("relinked", s.relinked),
        ("reactivated", s.reactivated),
        ("deactivated", s.deactivated_cleared),
        ("leavers", s.leavers),
        ("orphans_revoked", s.orphans_revoked),
        ("failed", s.failed),
    ];
    if format == Format::Json {
        let extra = json!({"dry_run": dry_run, "failures": failures_json(&r.failures)});
        return emit(&summary_json(&rows, r.elapsed, extra));
    }
    let title = if dry_run {
        "Reconcile (dry run: nothing was changed)"
    } else {
        "Reconcile"
    };
    let mut text = summary_table(title, &rows, r.elapsed);
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
    print(&text);
}

/// Prints the sync's summary.
fn print_summary(format: Format, r: &SyncReport, dry_run: bool) {
    let s = &r.summary;
    let rows = [
        ("created", s.created),
        ("updated", s.updated),
        ("unchanged", s.unchanged),
        ("minted", s.minted),
        ("kept", s.kept),
        ("skipped", s.skipped),
        ("held_elsewhere", s.held_elsewhere),
        ("orphans_revoked", s.orphans_revoked),
        ("left_out", s.left_out),
        ("failed", s.failed),
    ];
    if format == Format::Json {
        let extra = json!({
            "dry_run": dry_run,
            "user_limit": r.user_limit.as_ref().map(ToString::to_string),
            "failures": failures_json(&r.failures),
        });
        return emit(&summary_json(&rows, r.elapsed, extra));
    }
    let title = if dry_run {
        "Summary (dry run: nothing was changed)"
    } else {
        "Summary"
    };
    let mut text = summary_table(title, &rows, r.elapsed);
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
    print(&text);
}
