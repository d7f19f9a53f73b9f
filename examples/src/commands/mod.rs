//! The operator's commands (`mattermost-tokens <command>`), each with its
//! arguments and its `run`. They share one set-up: the environment
//! ([`Env`]), `--store`, the database and the encryption key.

use anyhow::Context as _;

use crate::cli::Format;
use crate::demo_db::HostDb;
use crate::setup::{self, Env, Fatal, Schema, StoreKind, Stores};

pub mod doctor;
pub mod migrate;
pub mod reencrypt;
pub mod revoke;
pub mod rotate;
pub mod stand_in;
pub mod status;
pub mod sync;
pub mod verify;

/// Options every command takes.
#[derive(Clone, Copy, Debug, clap::Args)]
pub struct Common {
    /// Where tokens are stored: the sqlx or diesel adapter on DATABASE_URL,
    /// or memory (not kept after the run).
    #[arg(long, value_enum, default_value_t = StoreKind::Sqlx, global = true)]
    pub store: StoreKind,
    /// Output for people (text) or machines (json).
    #[arg(long, value_enum, default_value_t = Format::Text, global = true)]
    pub format: Format,
}

/// The set-up a command works with: environment, host database, stores.
#[derive(Debug)]
pub struct Setup {
    /// The environment.
    pub env: Env,
    /// The host database.
    pub host: HostDb,
    /// The token, code and host-user stores.
    pub stores: Stores,
}

/// Connects to `DATABASE_URL` and opens the stores of `--store`, changing
/// the schema as `schema` says: the sync migrates (as `sync_users` always
/// did), `migrate` migrates or undoes, every other command leaves it alone
/// (`doctor` reports what is missing). Migrating first fills a missing or
/// empty users table with the demo's users.
pub async fn open(common: &Common, schema: Schema) -> Result<Setup, Fatal> {
    let env = Env::from_env();
    let host = HostDb::connect(&env.database_url)
        .await
        .context("check DATABASE_URL")?;
    if schema == Schema::Migrate {
        // The demo: a missing or empty users table gets demo users.
        let seeded = host.ensure_demo_users().await?;
        if seeded > 0 {
            eprintln!("created a users table with {seeded} demo users");
        }
    }
    let stores = setup::stores(common.store, &env, &host, schema).await?;
    Ok(Setup { env, host, stores })
}
