//! The operator's command line: sync, status, doctor, verify, rotate,
//! revoke, reencrypt, migrate, and the stand-in Mattermost as a server.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use mattermost_tokens_examples::cli;
use mattermost_tokens_examples::commands::{
    Common, doctor, migrate, reencrypt, revoke, rotate, stand_in, status, sync, verify,
};
use mattermost_tokens_examples::setup;

/// Operate mattermost-tokens: sync users into Mattermost, diagnose, rotate
/// and revoke their tokens, migrate the schema.
///
/// Environment (every command): MATTERMOST_URL (unset: start a stand-in
/// Mattermost), MATTERMOST_TOKEN (the admin's personal access token),
/// DATABASE_URL (default sqlite://mattermost-tokens-demo.sqlite;
/// postgres:// and mysql:// work too), MATTERMOST_TOKENS_KEY (base64 32-byte
/// key: tokens encrypted at rest), SQLITE_BUSY_TIMEOUT_MS, RUST_LOG,
/// HOST_INACTIVE_COLUMN, MATTERMOST_ALLOW_HTTP=1. The README's operations
/// section has examples.
#[derive(Debug, Parser)]
#[command(name = "mattermost-tokens", version, after_help = cli::EXIT_CODES)]
struct Args {
    #[command(subcommand)]
    command: Command,
    #[command(flatten)]
    common: Common,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Sync the app's users into Mattermost, one token each (as sync_users).
    Sync(sync::SyncArgs),
    /// Count users by token state, from the database alone.
    Status(status::StatusArgs),
    /// Check the server, the admin credential, the schema and the key; one
    /// line per check with its fix.
    Doctor(doctor::DoctorArgs),
    /// Diagnose stored tokens: one user's, or everyone's.
    Verify(verify::VerifyArgs),
    /// Replace tokens (after a leak): one user's, or all as a resumable
    /// campaign.
    Rotate(rotate::RotateArgs),
    /// Revoke one user's token and clear it.
    Revoke(revoke::RevokeArgs),
    /// Re-encrypt every stored token under the newest key.
    Reencrypt(reencrypt::ReencryptArgs),
    /// Apply (or undo, or print) the store's migrations.
    Migrate(migrate::MigrateArgs),
    /// Run the stand-in Mattermost as a standalone server.
    StandIn(stand_in::StandInArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    setup::init_logging();
    let Args { command, common } = Args::parse();
    let result = match command {
        Command::Sync(a) => sync::run(a, common).await,
        Command::Status(a) => status::run(a, common).await,
        Command::Doctor(a) => doctor::run(a, common).await,
        Command::Verify(a) => verify::run(a, common).await,
        Command::Rotate(a) => rotate::run(a, common).await,
        Command::Revoke(a) => revoke::run(a, common).await,
        Command::Reencrypt(a) => reencrypt::run(a, common).await,
        Command::Migrate(a) => migrate::run(a, common).await,
        Command::StandIn(a) => stand_in::run(a, common.format).await,
    };
    cli::finish(common.format, result)
}
