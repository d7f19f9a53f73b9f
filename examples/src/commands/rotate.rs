//! `rotate`: every token replaced, the incident response after a leak of
//! the database (or of one user's token). Each old token is revoked only
//! after its replacement is stored; `--all` runs as a campaign journaled in
//! a file, so a killed run continues where it stopped when run again, and
//! no user is rotated twice (see `mattermost_tokens::rotation`).

use std::path::PathBuf;

use anyhow::anyhow;
use futures::TryStreamExt;
use mattermost_tokens::rotation::{Rotated, RotationCampaign, RotationResult};
use mattermost_tokens::{HostUserId, SyncOptions, UserSync};
use serde_json::json;

use super::{Common, open};
use crate::cli::{Ended, Format, Progress, emit, print, summary_json, summary_table};
use crate::setup::{self, Fatal, Schema};

/// Replace tokens: one user's, or everyone's as a resumable campaign.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["user", "all"])))]
pub struct RotateArgs {
    /// One user, by id.
    #[arg(long, value_name = "ID")]
    pub user: Option<i64>,
    /// Every user with a stored token: begins a campaign, or continues the
    /// unfinished one in --campaign.
    #[arg(long)]
    pub all: bool,
    /// The campaign's journal file.
    #[arg(
        long,
        value_name = "FILE",
        default_value = "mattermost-tokens-rotation.jsonl"
    )]
    pub campaign: PathBuf,
    /// Abandon an unfinished campaign and begin a new one (its users that
    /// were done are rotated again).
    #[arg(long, requires = "all")]
    pub restart: bool,
    /// Users rotated at once (the server's rate limit paces them).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub concurrency: u16,
    /// The app name written into token descriptions (as `sync --app-name`).
    #[arg(long, default_value = "demo-app")]
    pub app_name: String,
    /// How long this run's claims on users last (a killed run's claims run
    /// out after this; a re-run waits for them).
    #[arg(long, value_name = "SECS", default_value_t = 60, value_parser = clap::value_parser!(u32).range(1..=86_400))]
    pub claim_ttl: u32,
}

/// Runs `rotate`.
pub async fn run(args: RotateArgs, common: Common) -> Result<Ended, Fatal> {
    let setup = open(&common, Schema::Leave).await?;
    let server = setup::mattermost(&setup.env).await?;
    let ttl = std::time::Duration::from_secs(u64::from(args.claim_ttl));
    let opts = SyncOptions::new(args.app_name.clone())
        .claim_ttl(ttl)
        .claim_wait(ttl + std::time::Duration::from_secs(5));
    let sync = UserSync::new(server.client.clone(), setup.stores.tokens.clone(), opts)
        .map_err(setup::explain)?;
    let format = common.format;
    if let Some(id) = args.user {
        let user = HostUserId::Int(id);
        let o = sync.rotate(&user).await.map_err(setup::explain)?;
        server.save();
        let warnings: Vec<String> = o.warnings.iter().map(ToString::to_string).collect();
        match format {
            Format::Json => emit(&json!({
                "type": "user",
                "user": user,
                "ok": true,
                "outcome": o.token.name(),
                "warnings": warnings,
            })),
            Format::Text => print(&format!(
                "user {user}: token {}{}\n",
                o.token.name(),
                warnings
                    .iter()
                    .map(|w| format!("; warning: {w}"))
                    .collect::<String>()
            )),
        }
        return Ok(Ended::OK);
    }
    let resumed = if args.restart {
        None
    } else {
        RotationCampaign::resume(&args.campaign)?
    };
    let mut campaign = match resumed {
        Some(c) => {
            eprintln!(
                "continuing rotation campaign {} ({} of {} users done; journal {})",
                c.id(),
                c.done(),
                c.total(),
                c.path().display()
            );
            c
        }
        None => {
            let users =
                mattermost_tokens::host_table::stream(setup.stores.users.clone()).map_ok(|u| u.id);
            let c = RotationCampaign::begin(&args.campaign, setup.stores.tokens.as_ref(), users)
                .await?;
            eprintln!(
                "began rotation campaign {}: {} users with a token (journal {})",
                c.id(),
                c.total(),
                c.path().display()
            );
            c
        }
    };
    let progress = Progress::new(format, "users rotated");
    progress.set_len((campaign.total() - campaign.done()) as u64);
    let report = sync
        .rotate_campaign(
            &mut campaign,
            usize::from(args.concurrency),
            |r: &RotationResult| {
                let (line, kind) = match &r.outcome {
                    Ok(Rotated::Replaced) => (format!("user {}: rotated", r.user), "replaced"),
                    Ok(Rotated::AlreadyReplaced) => (
                        format!("user {}: old token revoked (already replaced)", r.user),
                        "already_replaced",
                    ),
                    Ok(_) => (format!("user {}: done", r.user), "done"),
                    Err(e) => (format!("user {}: FAILED: {e}", r.user), "failed"),
                };
                progress.user(&line, r.outcome.is_err(), || match &r.outcome {
                    Ok(_) => json!({"type": "user", "user": r.user, "ok": true, "outcome": kind}),
                    Err(e) => {
                        json!({"type": "user", "user": r.user, "ok": false, "error": e.to_string()})
                    }
                });
            },
        )
        .await?;
    progress.finish();
    server.save();
    let counts = [
        ("total", report.total),
        ("done_before", report.done_before),
        ("replaced", report.replaced),
        ("already_replaced", report.already_replaced),
        ("failed", report.failed),
    ];
    match format {
        Format::Json => emit(&summary_json(
            &counts,
            report.elapsed,
            json!({"campaign": campaign.id(), "finished": report.finished}),
        )),
        Format::Text => {
            let title = format!("Rotation campaign {}", campaign.id());
            let mut text = summary_table(&title, &counts, report.elapsed);
            text.push_str(if report.finished {
                "  finished: every token of the snapshot is revoked\n"
            } else {
                "  not finished: run the same command again to continue\n"
            });
            print(&text);
        }
    }
    if report.failed > 0 && report.replaced + report.already_replaced == 0 {
        return Err(anyhow!("no user could be rotated (see the lines above)").into());
    }
    Ok(Ended::failed(report.failed))
}
