//! `status`: where the users stand, from the database alone (no Mattermost
//! call): host users, linked, with a token, expired or expiring, without a
//! token, and the failures of the last sync.

use futures::TryStreamExt;
use serde_json::{Value, json};

use super::{Common, open};
use crate::cli::{Ended, Format, emit, print, table};
use crate::setup::{Fatal, Schema};

/// Count the users by token state, reading only the database.
#[derive(Debug, Clone, clap::Args)]
pub struct StatusArgs {
    /// Tokens that expire within this many days count as expiring.
    #[arg(long, value_name = "DAYS", default_value_t = 7)]
    pub expiring_within_days: u32,
}

/// The counts `status` reports (the keys of its JSON document).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Rows of the users table.
    pub host_users: u64,
    /// With a Mattermost user id.
    pub linked: u64,
    /// With a stored token (expired ones included).
    pub with_token: u64,
    /// With a stored token past its expiry.
    pub expired: u64,
    /// With a stored token that expires within the margin (not yet expired).
    pub expiring: u64,
    /// Without a stored token.
    pub without_token: u64,
}

/// Reads the counts: the users table page by page, each page's rows in one
/// query. Tokens are not decrypted (no key needed).
pub async fn count(
    setup: &super::Setup,
    margin_ms: i64,
) -> Result<Counts, mattermost_tokens::StoreError> {
    let now = chrono::Utc::now().timestamp_millis();
    let mut c = Counts::default();
    let mut pages = std::pin::pin!(super::stored_rows(setup, 500));
    while let Some(page) = pages.try_next().await? {
        for (_, rec) in &page {
            c.host_users += 1;
            c.linked += u64::from(rec.mattermost_user_id.is_some());
            if rec.token.is_none() {
                c.without_token += 1;
                continue;
            }
            c.with_token += 1;
            if rec.expires_within(now, 0) {
                c.expired += 1;
            } else if rec.expires_within(now, margin_ms) {
                c.expiring += 1;
            }
        }
    }
    Ok(c)
}

/// The last sync's record (`sync` writes it), if any.
fn last_run() -> Option<Value> {
    let text = std::fs::read_to_string(super::sync::last_run_file()).ok()?;
    serde_json::from_str(&text).ok()
}

/// Runs `status`.
pub async fn run(args: StatusArgs, common: Common) -> Result<Ended, Fatal> {
    let setup = open(&common, Schema::Leave).await?;
    let margin_ms = i64::from(args.expiring_within_days) * 86_400_000;
    let c = count(&setup, margin_ms).await?;
    let last = last_run();
    let failed_last = last.as_ref().and_then(|l| l["failed"].as_u64());
    match common.format {
        Format::Json => emit(&json!({
            "host_users": c.host_users,
            "linked": c.linked,
            "with_token": c.with_token,
            "expired": c.expired,
            "expiring": c.expiring,
            "expiring_within_days": args.expiring_within_days,
            "without_token": c.without_token,
            "failed_last_run": failed_last,
            "failed_last_run_users": last.as_ref().map(|l| l["failed_users"].clone()),
            "last_run_at_ms": last.as_ref().and_then(|l| l["finished_at_ms"].as_i64()),
        })),
        Format::Text => {
            let rows = [
                ("host_users", c.host_users.to_string()),
                ("linked", c.linked.to_string()),
                ("with_token", c.with_token.to_string()),
                ("expired", c.expired.to_string()),
                (
                    "expiring",
                    format!("{} (within {} days)", c.expiring, args.expiring_within_days),
                ),
                ("without_token", c.without_token.to_string()),
                (
                    "failed_last_run",
                    failed_last.map_or("no sync recorded".into(), |n| n.to_string()),
                ),
            ];
            let mut text = table("Status (from the database; Mattermost not asked)", &rows);
            if c.without_token + c.expired > 0 {
                text.push_str("  run `mattermost-tokens sync --missing` to give the users without a working token one\n");
            }
            print(&text);
        }
    }
    Ok(Ended::OK)
}
