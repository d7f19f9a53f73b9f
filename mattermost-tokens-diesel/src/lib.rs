//! [`TokenStore`](mattermost_tokens::TokenStore) on diesel 2.3 through
//! diesel-async: each host user's Mattermost user id and personal access
//! token (its value, id and expiry) live in four nullable columns of the
//! host's own users table. And
//! [`CodeStore`](mattermost_tokens::magic_link::CodeStore) for magic-link
//! codes, in a table of the same database ([`DieselCodeStore`]).
//!
//! | database | store | connection | feature |
//! | --- | --- | --- | --- |
//! | PostgreSQL | [`PgTokenStore`] | `AsyncPgConnection` (tokio-postgres, pure Rust) | `postgres` |
//! | MySQL, MariaDB | [`MySqlTokenStore`] | `AsyncMysqlConnection` (mysql_async, pure Rust) | `mysql` |
//! | SQLite | [`SqliteTokenStore`] | `SyncConnectionWrapper<SqliteConnection>` (bundled SQLite) | `sqlite` |
//!
//! The code stores are [`PgCodeStore`], [`MySqlCodeStore`] and
//! [`SqliteCodeStore`], on the same connections and pools. The names are
//! the sqlx adapter's, and so are the tables: a database migrated through
//! one adapter opens, migrates and works through the other. Each
//! backend's module ([`postgres`], [`mysql`], [`sqlite`]) also has its pool
//! type and a `pool(url, size)` constructor.
//!
//! No system library is linked (no libpq, no libmysqlclient). `diesel`,
//! `diesel_async` and `diesel_migrations` are re-exported so that the host
//! uses the same versions.
//!
//! # Set up, migrate, use
//!
//! ```
//! use mattermost_tokens::{AccessToken, HostUserId, NewToken, TokenId, TokenStore, UserId};
//! use mattermost_tokens_diesel::SqliteTokenStore;
//! # use mattermost_tokens_diesel::diesel_async::SimpleAsyncConnection;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let path = std::env::temp_dir().join(format!("mmt-diesel-doc-{}.db", std::process::id()));
//! # let _ = std::fs::remove_file(&path);
//! # let url = path.to_str().unwrap();
//! # let store = SqliteTokenStore::from_url(url)?;
//! # store.pool().get().await?.batch_execute(
//! #     "CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT); INSERT INTO users (id) VALUES (1)",
//! # ).await?;
//! // Or PgTokenStore / MySqlTokenStore with a postgres:// or mysql:// URL.
//! let store = SqliteTokenStore::from_url(url)?.with_table_name("users")?;
//! store.migrate().await?; // adds the columns once; later calls do nothing
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
//! assert_eq!(record.token_expires_at, token.expires_at);
//! assert_eq!(record.token_id, Some(token.token_id));
//! # let _ = std::fs::remove_file(&path);
//! # Ok(())
//! # }
//! ```
//!
//! # Configuration
//!
//! Every store is a [`DieselTokenStore`]: `new(pool)` or `from_url(url)`,
//! then [`with_table_name`](DieselTokenStore::with_table_name) (default
//! `users`), [`with_key_column`](DieselTokenStore::with_key_column)
//! (default `id`), [`with_key_type`](DieselTokenStore::with_key_type)
//! ([`KeyType::Integer`] by default; [`KeyType::Text`] and
//! [`KeyType::Uuid`] for text and UUID keys),
//! [`with_expiry_column`](DieselTokenStore::with_expiry_column)
//! (default `mattermost_token_expires_at`, [`DEFAULT_EXPIRY_COLUMN`])
//! and [`with_acquire_timeout`](DieselTokenStore::with_acquire_timeout).
//! Table and column names must be plain identifiers: the builders refuse
//! anything else with
//! [`StoreError::Config`](mattermost_tokens::StoreError::Config) before it
//! could reach SQL.
//!
//! The columns are `mattermost_user_id`, `mattermost_token` and
//! `mattermost_token_id` (text), and the token's expiry in milliseconds
//! since the Unix epoch (Mattermost's unit), a `BIGINT` (`INTEGER` on
//! SQLite), `NULL` for a token that does not expire. Every write of a token
//! writes its expiry in the same statement, and
//! [`clear_token`](mattermost_tokens::TokenStore::clear_token) clears it
//! with the token.
//!
//! # Pools
//!
//! A store takes its connections from a [`ConnectionPool`]:
//!
//! - diesel-async's **deadpool** pool
//!   (`diesel_async::pooled_connection::deadpool::Pool<C>`, aliased
//!   [`postgres::PgPool`], [`mysql::MySqlPool`], [`sqlite::SqlitePool`]):
//!   always supported, and what `from_url` builds; hand a host's existing
//!   pool to `new`;
//! - diesel-async's **bb8** pool
//!   (`diesel_async::pooled_connection::bb8::Pool<C>`): with this crate's
//!   `bb8` feature;
//! - **mobc**, or a pool of the host's own: wrap it in a newtype that
//!   implements [`ConnectionPool`] (check a connection out; hand out an owned
//!   one for migrations).
//!
//! Every wait for a connection is bounded by the store's acquire timeout
//! ([`DEFAULT_ACQUIRE_TIMEOUT`], 5 s), so an unreachable database is a
//! quick [`StoreError::Unavailable`](mattermost_tokens::StoreError::Unavailable)
//! even when the pool itself has no timeouts configured.
//!
//! # Migrations
//!
//! [`DieselTokenStore::migrate`] runs the schema's three steps on the
//! users table (undone, newest first, by
//! [`undo_migration`](DieselTokenStore::undo_migration)): the token columns
//! ([`MIGRATION_NAME`]), a unique index on `mattermost_user_id`
//! ([`UNIQUE_INDEX_MIGRATION_NAME`], named
//! [`user_id_index_name`](DieselTokenStore::user_id_index_name)), so that
//! the database itself keeps a Mattermost user linked to one host user at
//! most, however concurrent syncs race, and the token expiry column
//! ([`EXPIRY_MIGRATION_NAME`]). What each step accepts, refuses and
//! changes is the schema's, shared with the sqlx adapter
//! ([`mattermost_tokens::store::schema`]); a database migrated by an
//! earlier release, or by the sqlx adapter, gets the steps it lacks. The
//! steps are a diesel `MigrationSource` too ([`TokenMigrations`]), with
//! versions that never collide with the host's own: see the [`migration`]
//! module.
//!
//! # Magic-link codes
//!
//! [`MagicLinks`](mattermost_tokens::MagicLinks) keeps its one-time codes in
//! a [`CodeStore`](mattermost_tokens::magic_link::CodeStore). The in-memory
//! one serves a single process only; a [`DieselCodeStore`] keeps them in a
//! table of the host's database (the sqlx adapter's table, column for
//! column), over the pool the token store uses, so a link issued by one
//! instance of the app can be redeemed on another. Its
//! [`migrate`](DieselCodeStore::migrate) creates the table
//! ([`CODES_MIGRATION_NAME`], a [`CodeMigrations`] source).
//!
//! ```
//! use std::sync::Arc;
//! use mattermost_tokens::MattermostClient;
//! use mattermost_tokens::magic_link::{MagicLinkConfig, MagicLinks};
//! use mattermost_tokens_diesel::{SqliteCodeStore, SqliteTokenStore};
//! # use mattermost_tokens_diesel::diesel_async::SimpleAsyncConnection;
//!
//! # #[tokio::main]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let path = std::env::temp_dir().join(format!("mmt-diesel-codes-doc-{}.db", std::process::id()));
//! # let _ = std::fs::remove_file(&path);
//! # let url = path.to_str().unwrap();
//! # SqliteTokenStore::from_url(url)?.pool().get().await?
//! #     .batch_execute("CREATE TABLE users (id INTEGER PRIMARY KEY)").await?;
//! let tokens = SqliteTokenStore::from_url(url)?;
//! tokens.migrate().await?;
//! let codes = SqliteCodeStore::new(tokens.pool().clone()); // the same pool
//! codes.migrate().await?;
//! let links = MagicLinks::new(
//!     MattermostClient::new("https://chat.example.com", "admin-token")?,
//!     Arc::new(tokens),
//!     Arc::new(codes),
//!     MagicLinkConfig::one_time_code("https://app.example.com/mattermost/magic-link/redeem")
//!         .cookie_domain("example.com"),
//! )?;
//! # let _ = links;
//! # let _ = std::fs::remove_file(&path);
//! # Ok(())
//! # }
//! ```
//!
//! # Errors
//!
//! Unreachable database, broken connection, timeout:
//! [`StoreError::Unavailable`](mattermost_tokens::StoreError::Unavailable).
//! A database that refuses writes (read-only SQLite file, PostgreSQL hot
//! standby or read-only session, MySQL `--read-only`):
//! [`StoreError::ReadOnly`](mattermost_tokens::StoreError::ReadOnly). Missing table or
//! columns, clashing column types, duplicate links found by the unique index
//! migration: [`StoreError::Schema`](mattermost_tokens::StoreError::Schema).
//! A write that would link a Mattermost user already linked to another host
//! user (`set_mattermost_user_id`, `put_token_if_absent`, `put_token`,
//! `replace_token`), refused by the unique index:
//! [`StoreError::AlreadyLinked`](mattermost_tokens::StoreError::AlreadyLinked),
//! nothing written; `put_token_if_absent` on a user that already has a
//! token still answers `Ok(false)`, as before. The code
//! stores map errors the same way. Messages never contain a connection
//! URL's password, a token value or a code.
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
    CODES_MIGRATION_NAME, DEFAULT_CODES_TABLE, DEFAULT_EXPIRY_COLUMN, EXPIRY_MIGRATION_NAME,
    KeyType, MIGRATION_NAME, UNIQUE_INDEX_MIGRATION_NAME,
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
