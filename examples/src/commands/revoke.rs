//! `revoke`: one user's token revoked in Mattermost and cleared from the
//! store.

use mattermost_tokens::{HostUserId, SyncOptions, UserSync};
use serde_json::json;

use super::{Common, open};
use crate::cli::{Ended, Format, emit, print};
use crate::setup::{self, Fatal, Schema};

/// Revoke a user's token and clear it from the store.
#[derive(Debug, Clone, clap::Args)]
pub struct RevokeArgs {
    /// The user, by id.
    #[arg(long, value_name = "ID")]
    pub user: i64,
}

/// Runs `revoke`.
pub async fn run(args: RevokeArgs, common: Common) -> Result<Ended, Fatal> {
    let setup = open(&common, Schema::Leave).await?;
    let server = setup::mattermost(&setup.env).await?;
    let sync = UserSync::new(
        server.client.clone(),
        setup.stores.tokens.clone(),
        SyncOptions::new("demo-app"),
    )
    .map_err(setup::explain)?;
    let user = HostUserId::Int(args.user);
    let r = sync.revoke(&user).await.map_err(setup::explain)?;
    server.save();
    match common.format {
        Format::Json => emit(&json!({
            "user": user,
            "had_token": r.had_token,
            "token_id": r.token_id,
        })),
        Format::Text => print(&match (&r.token_id, r.had_token) {
            (Some(id), _) => format!("user {user}: token {id} revoked and cleared\n"),
            (None, true) => {
                format!("user {user}: token cleared (it had no id, so it could not be revoked)\n")
            }
            (None, false) => format!("user {user}: had no token\n"),
        }),
    }
    Ok(Ended::OK)
}
