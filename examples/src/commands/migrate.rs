//! `migrate`: the store's schema changes, run explicitly (or undone, or
//! printed).

use serde_json::json;

use super::{Common, open};
use crate::cli::{Ended, Format, emit, print};
use crate::demo_db::HostDb;
use crate::setup::{self, Env, Fatal, Schema};

/// Apply the store's migrations to the users table and create the
/// magic-link code table (or undo them, or print their SQL).
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateArgs {
    /// Undo the migrations: drops the token columns (every stored token
    /// with them: revoke them in Mattermost first) and the code table.
    #[arg(long)]
    pub undo: bool,
    /// Print the SQL the step would run now, and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Runs `migrate`.
pub async fn run(args: MigrateArgs, common: Common) -> Result<Ended, Fatal> {
    let direction = if args.undo { "undo" } else { "up" };
    if args.dry_run {
        let env = Env::from_env();
        let host = HostDb::connect(&env.database_url).await?;
        let sql = setup::migration_sql(&env, &host, args.undo).await?;
        match common.format {
            Format::Json => emit(&json!({
                "direction": direction,
                "dry_run": true,
                "statements": sql,
            })),
            Format::Text if sql.is_empty() => print("-- nothing to do\n"),
            Format::Text => print(&(sql.join(";\n") + ";\n")),
        }
        return Ok(Ended::OK);
    }
    let schema = if args.undo {
        Schema::Undo
    } else {
        Schema::Migrate
    };
    open(&common, schema).await?;
    match common.format {
        Format::Json => emit(&json!({
            "direction": direction,
            "dry_run": false,
            "done": true,
        })),
        Format::Text if args.undo => print("migrations undone\n"),
        Format::Text => print("migrations applied\n"),
    }
    Ok(Ended::OK)
}
