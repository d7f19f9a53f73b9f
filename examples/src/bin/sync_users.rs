//! Syncs the host app's users into Mattermost and gives each one a personal
//! access token, stored in the app's `users` table: the Rust counterpart of
//! `php artisan mattermost:sync-users`. The same as `mattermost-tokens sync`.
//!
//! With no `MATTERMOST_URL` it starts a stand-in Mattermost; with no
//! `DATABASE_URL` it uses `mattermost-tokens-demo.sqlite` in the working
//! directory, creating a Laravel-shaped `users` table with demo users.

use std::process::ExitCode;

use clap::Parser;
use mattermost_tokens_examples::cli;
use mattermost_tokens_examples::commands::{Common, sync};
use mattermost_tokens_examples::setup;

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
#[command(version)]
struct Args {
    #[command(flatten)]
    sync: sync::SyncArgs,
    #[command(flatten)]
    common: Common,
}

#[tokio::main]
async fn main() -> ExitCode {
    setup::init_logging();
    let args = Args::parse();
    let format = args.common.format;
    match sync::run(args.sync, args.common).await {
        Ok(e) if e.failed == 0 && e.left_out > 0 => ExitCode::from(3),
        r => cli::finish(format, r),
    }
}
