//! The operator's commands (`mattermost-tokens <command>`), each with its
//! arguments and its `run`. They share one set-up: the environment
//! ([`Env`]), `--store`, the database and the encryption key.

use anyhow::Context as _;
use futures::{Stream, TryStreamExt};
use mattermost_tokens::{HostUserId, StoreError, TokenRecord};

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
/// the schema as `schema` says: `migrate` migrates or undoes, every other
/// command but the sync leaves it alone (`doctor` reports what is missing).
pub async fn open(common: &Common, schema: Schema) -> Result<Setup, Fatal> {
    open_with(common, schema, false).await
}

/// The sync's set-up, as `sync_users` always did it: a missing or empty
/// users table gets the demo's users, then the migrations are applied.
pub async fn open_for_sync(common: &Common) -> Result<Setup, Fatal> {
    open_with(common, Schema::Migrate, true).await
}

async fn open_with(common: &Common, schema: Schema, demo_users: bool) -> Result<Setup, Fatal> {
    let env = Env::from_env();
    let host = HostDb::connect(&env.database_url)
        .await
        .context("check DATABASE_URL")?;
    if demo_users {
        let seeded = host.ensure_demo_users().await?;
        if seeded > 0 {
            eprintln!("created a users table with {seeded} demo users");
        }
    }
    let stores = setup::stores(common.store, &env, &host, schema).await?;
    Ok(Setup { env, host, stores })
}

/// The host users' rows in the store, a page of `page` users at a time, in
/// the users table's order; tokens as the table holds them (not decrypted:
/// no key needed). One query for the users and one for their rows a page.
pub fn stored_rows(
    setup: &Setup,
    page: usize,
) -> impl Stream<Item = Result<Vec<(HostUserId, TokenRecord)>, StoreError>> + Send + '_ {
    mattermost_tokens::host_table::stream(setup.stores.users.clone())
        .map_ok(|u| u.id)
        .try_chunks(page)
        .map_err(|e| e.1)
        .and_then(move |ids| async move {
            let mut rows = setup.stores.plain.get_many(&ids).await?;
            Ok(ids
                .into_iter()
                .filter_map(|u| rows.remove(&u).map(|r| (u, r)))
                .collect())
        })
}
