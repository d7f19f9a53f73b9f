//! `verify`: does a user's stored token work, and if not, why. One user
//! through the lifecycle's verify; every user through a dry-run reconcile
//! (one listing of the server's tokens instead of a request per user).

use mattermost_tokens::{HostUserId, SyncOptions, UserSync, Verification};
use serde_json::json;

use super::{Common, open};
use crate::cli::{Ended, Format, Progress, emit, print, table};
use crate::setup::{self, Fatal, Schema};

/// Diagnose stored tokens: one user's, or everyone's.
#[derive(Debug, Clone, clap::Args)]
#[command(group(clap::ArgGroup::new("who").required(true).args(["user", "all"])))]
pub struct VerifyArgs {
    /// One user, by id: their token is tried live, and a refusal explained.
    #[arg(long, value_name = "ID")]
    pub user: Option<i64>,
    /// Every user: the store compared with the server's token listing
    /// (needs manage_system); each user that needs a repair is reported.
    #[arg(long)]
    pub all: bool,
    /// The app name the tokens were minted under (as `sync --app-name`).
    #[arg(long, default_value = "demo-app")]
    pub app_name: String,
}

/// What to do about a verdict.
fn advice(v: &Verification) -> &'static str {
    match v {
        Verification::Valid => "nothing",
        Verification::NoToken => "run `sync --user ID` (or `sync --missing`)",
        Verification::TokenRevoked | Verification::TokenExpired => {
            "run `sync --reconcile` (or `sync --user ID`) to mint a new one"
        }
        Verification::TokenDisabled => "enable the token in Mattermost, or rotate it",
        Verification::UserDeactivated => {
            "reactivate the account in Mattermost, or let `sync --reconcile` handle it"
        }
        Verification::AccountDeleted => "run `sync --user ID` to link the user again",
        Verification::TokensDisabled => {
            "enable personal access tokens (System Console > Integrations > Integration Management)"
        }
        Verification::WrongUser => "rotate the user's token; check who wrote the row",
        _ => "see the README's troubleshooting section",
    }
}

/// Runs `verify`.
pub async fn run(args: VerifyArgs, common: Common) -> Result<Ended, Fatal> {
    let setup = open(&common, Schema::Leave).await?;
    let server = setup::mattermost(&setup.env).await?;
    let opts = SyncOptions::new(args.app_name.clone()).dry_run(args.all);
    let sync = UserSync::new(server.client.clone(), setup.stores.tokens.clone(), opts)
        .map_err(setup::explain)?;
    let format = common.format;
    if let Some(id) = args.user {
        let user = HostUserId::Int(id);
        let v = sync.verify(&user, false).await.map_err(setup::explain)?;
        server.save();
        let ok = v == Verification::Valid;
        match format {
            Format::Json => emit(&json!({
                "type": "user",
                "user": user,
                "ok": ok,
                "verdict": v.name(),
                "advice": advice(&v),
            })),
            Format::Text => print(&format!(
                "user {user}: {}{}\n",
                v.name().replace('_', " "),
                if ok {
                    String::new()
                } else {
                    format!("; {}", advice(&v))
                }
            )),
        }
        return Ok(Ended::failed(u64::from(!ok)));
    }
    let progress = Progress::new(format, "users needing repair");
    let users = mattermost_tokens::host_table::stream(setup.stores.users.clone());
    let users = super::sync::stop_on_error(users, Default::default());
    let result = sync
        .reconcile(users, |r| {
            progress.user(&format!("needs repair: {r}"), true, || {
                json!({
                    "type": "user",
                    "user": r.user(),
                    "ok": false,
                    "repair": r.kind(),
                    "detail": r.to_string(),
                })
            })
        })
        .await;
    progress.finish();
    server.save();
    let report = result.map_err(setup::explain)?;
    let s = &report.summary;
    let needing = s.repairs;
    match format {
        Format::Json => emit(&json!({
            "type": "summary",
            "users": s.users,
            "tokens_listed": s.tokens_listed,
            "needing_repair": needing,
            "failed": s.failed,
        })),
        Format::Text => {
            let mut text = table(
                "Verify",
                &[
                    ("users", s.users.to_string()),
                    ("tokens_listed", s.tokens_listed.to_string()),
                    ("needing_repair", needing.to_string()),
                    ("failed", s.failed.to_string()),
                ],
            );
            if needing > 0 {
                text.push_str("  run `mattermost-tokens sync --reconcile` to repair\n");
            }
            print(&text);
        }
    }
    Ok(Ended::failed(needing + s.failed))
}
