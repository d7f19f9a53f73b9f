//! [`TokenStore`](mattermost_tokens::TokenStore) and
//! [`CodeStore`](mattermost_tokens::magic_link::CodeStore) on diesel 2.3
//! through diesel-async, in the host's own users table and a code table of
//! the same database.
//!
//! | database | token / code store | connection | feature |
//! | --- | --- | --- | --- |
//! | PostgreSQL | [`PgTokenStore`], [`PgCodeStore`] | `AsyncPgConnection` (pure Rust) | `postgres` |
//! | MySQL, MariaDB | [`MySqlTokenStore`], [`MySqlCodeStore`] | `AsyncMysqlConnection` (pure Rust) | `mysql` |
//! | SQLite | [`SqliteTokenStore`], [`SqliteCodeStore`] | `SyncConnectionWrapper<SqliteConnection>` | `sqlite` |
//!
//! The names, tables, columns, migration steps and errors are the sqlx
//! adapter's: what they mean is written once, in the core's
//! [`schema`](mattermost_tokens::store::schema) module, and a database
//! migrated through one adapter opens, migrates and works through the
//! other. Each backend's module ([`postgres`], [`mysql`], [`sqlite`]) has
//! its pool type and a `pool(url, size)` constructor. No system library is
//! linked; `diesel`, `diesel_async` and `diesel_migrations` are re-exported
//! so that the host uses the same versions.
//!
//! ```
//! use mattermost_tokens::{AccessToken, HostUserId, NewToken, TokenId, TokenStore, UserId};
//! use mattermost_tokens_diesel::{SqliteCodeStore, SqliteTokenStore};
//! # use mattermost_tokens_diesel::diesel_async::SimpleAsyncConnection;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let path = std::env::temp_dir().join(format!("mmt-diesel-doc-{}.db", std::process::id()));
//! # let _ = std::fs::remove_file(&path);
//! # let url = path.to_str().unwrap();
//! # SqliteTokenStore::from_url(url)?.pool().get().await?.batch_execute(
//! #     "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT); INSERT INTO users (id) VALUES (1)",
//! # ).await?;
//! // Or PgTokenStore / MySqlTokenStore with a postgres:// or mysql:// URL.
//! let store = SqliteTokenStore::from_url(url)?.with_table_name("users")?;
//! store.migrate().await?; // adds the columns once; later calls do nothing
//! let codes = SqliteCodeStore::new(store.pool().clone()); // magic-link codes, same pool
//! codes.migrate().await?;
//!
//! let user = HostUserId::Int(1);
//! let token = NewToken {
//!     mattermost_user_id: UserId::new("8xqpzj5f1bnbmgzuyb4hs7rwxa"),
//!     token: AccessToken::new("h9x3k1m8p2q7w4e6r5t0y1u2i3"),
//!     token_id: TokenId::new("t3rgq7ze1pgxfcjaqfz1ak7amy"),
//!     expires_at: Some(4_102_444_800_000), // milliseconds since the Unix epoch
//! };
//! assert!(store.put_token_if_absent(&user, &token).await?); // compare-and-set
//! let record = store.get(&user).await?.expect("a host user");
//! assert_eq!(record.token_id, Some(token.token_id));
//! # let _ = std::fs::remove_file(&path);
//! # Ok(())
//! # }
//! ```
//!
//! # Configuration and pools
//!
//! Every store is a [`DieselTokenStore`]: `new(pool)` or `from_url(url)`,
//! then the builders of
//! [`UsersTable`](mattermost_tokens::store::schema::UsersTable) (table, key
//! column, [`KeyType`], expiry column; identifiers are validated before
//! they reach SQL) and
//! [`with_acquire_timeout`](DieselTokenStore::with_acquire_timeout). A
//! store takes its connections from a [`ConnectionPool`]: diesel-async's
//! deadpool pool (what `from_url` builds; hand a host's own to `new`), its
//! bb8 pool (feature `bb8`), or any pool wrapped in a newtype implementing
//! the trait. Every wait for a connection is bounded by the acquire
//! timeout ([`DEFAULT_ACQUIRE_TIMEOUT`]), so an unreachable database is a
//! quick [`StoreError::Unavailable`](mattermost_tokens::StoreError::Unavailable).
//!
//! # Migrations
//!
//! [`DieselTokenStore::migrate`] runs the schema's steps on the users table
//! and [`undo_migration`](DieselTokenStore::undo_migration) reverts them;
//! the steps are also a diesel `MigrationSource` ([`TokenMigrations`],
//! [`CodeMigrations`]) recorded in diesel's own table under versions that
//! never collide with the host's (see the [`migration`] module).
//!
//! # Errors
//!
//! As in the sqlx adapter: `Unavailable` (unreachable, broken, timed out,
//! locked), `ReadOnly`, `Schema` (missing table or columns, clashing types,
//! duplicate links found by the index migration), `AlreadyLinked` (a write
//! the unique index refuses; nothing written). Messages never contain a
//! connection URL's password, a token value or a code.
#![deny(missing_docs)]
// docs.rs builds with `--cfg docsrs`: feature-gated items are labelled.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]
// Without a backend feature the backend-specific helpers have no user.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "_sqlite")),
    allow(dead_code, unused_macros, unused_imports)
)]

mod backend;
mod code_store;
mod error;
mod group_commit;
mod host_users;
pub mod migration;
mod pool;
mod store;

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "_sqlite")]
pub mod sqlite;

pub use diesel;
pub use diesel_async;
pub use diesel_migrations;

pub use code_store::DieselCodeStore;
pub use host_users::DieselHostUsers;
#[cfg(feature = "mysql")]
pub use host_users::MySqlHostUsers;
#[cfg(feature = "postgres")]
pub use host_users::PgHostUsers;
#[cfg(feature = "_sqlite")]
pub use host_users::SqliteHostUsers;
pub use mattermost_tokens::store::schema::{
    CLAIM_MIGRATION_NAME, CODES_MIGRATION_NAME, DEFAULT_CODES_TABLE, DEFAULT_EXPIRY_COLUMN,
    EXPIRY_MIGRATION_NAME, KeyType, MIGRATION_NAME, UNIQUE_INDEX_MIGRATION_NAME,
};
pub use migration::{CodeMigrations, MigrationBackend, TokenMigrations};
#[cfg(feature = "mysql")]
pub use mysql::{MySqlCodeStore, MySqlTokenStore};
pub use pool::ConnectionPool;
#[cfg(feature = "postgres")]
pub use postgres::{PgCodeStore, PgTokenStore};
#[cfg(feature = "_sqlite")]
pub use sqlite::{SqliteCodeStore, SqliteTokenStore};
pub use store::{DEFAULT_ACQUIRE_TIMEOUT, DieselTokenStore, StoreConnection};

/// The README's code, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
