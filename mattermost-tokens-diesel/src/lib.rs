//! [`TokenStore`](mattermost_tokens::TokenStore) on diesel 2.3 through
//! diesel-async: each host user's Mattermost user id and personal access
//! token live in three nullable columns of the host's own users table.
//!
//! | database | store | connection | feature |
//! | --- | --- | --- | --- |
//! | PostgreSQL | [`postgres::PgTokenStore`] | `AsyncPgConnection` (tokio-postgres, pure Rust) | `postgres` |
//! | MySQL, MariaDB | [`mysql::MysqlTokenStore`] | `AsyncMysqlConnection` (mysql_async, pure Rust) | `mysql` |
//! | SQLite | [`sqlite::SqliteTokenStore`] | `SyncConnectionWrapper<SqliteConnection>` (bundled SQLite) | `sqlite` |
//!
//! No system library is linked (no libpq, no libmysqlclient). `diesel`,
//! `diesel_async` and `diesel_migrations` are re-exported so that the host
//! uses the same versions.
//!
//! # Set up, migrate, use
//!
//! ```
//! use mattermost_tokens::{AccessToken, HostUserId, NewToken, TokenId, TokenStore, UserId};
//! use mattermost_tokens_diesel::sqlite::SqliteTokenStore;
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
//! // Or PgTokenStore / MysqlTokenStore with a postgres:// or mysql:// URL.
//! let store = SqliteTokenStore::from_url(url)?.with_table_name("users")?;
//! store.migrate().await?; // adds the columns once; later calls do nothing
//!
//! let user = HostUserId::Int(1);
//! let token = NewToken {
//!     mattermost_user_id: UserId::new("8xqpzj5f1bnbmgzuyb4hs7rwxa"),
//!     token: AccessToken::new("h9x3k1m8p2q7w4e6r5t0y1u2i3"),
//!     token_id: TokenId::new("t3rgq7ze1pgxfcjaqfz1ak7amy"),
//! };
//! assert!(store.put_token_if_absent(&user, &token).await?); // compare-and-set
//! let record = store.get(&user).await?.expect("a host user");
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
//! [`KeyType::Uuid`] for text and UUID keys) and
//! [`with_acquire_timeout`](DieselTokenStore::with_acquire_timeout). Table
//! and column names must be plain identifiers: the builders refuse anything
//! else with [`StoreError::Config`](mattermost_tokens::StoreError::Config)
//! before it could reach SQL.
//!
//! # Pools
//!
//! A store takes its connections from a [`ConnectionPool`]:
//!
//! - diesel-async's **deadpool** pool
//!   (`diesel_async::pooled_connection::deadpool::Pool<C>`, aliased
//!   [`postgres::PgPool`], [`mysql::MysqlPool`], [`sqlite::SqlitePool`]):
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
//! [`TokenMigrations`] is a diesel `MigrationSource` rendered for the
//! configured table; [`DieselTokenStore::migrate`] runs it from the pool,
//! and it also runs through diesel-async's `AsyncMigrationHarness` or on a
//! plain `diesel::SqliteConnection`. Its version is chosen so it never
//! collides with, nor disturbs, the host's own diesel migrations: see the
//! [`migration`] module.
//!
//! # Errors
//!
//! Unreachable database, broken connection, timeout:
//! [`StoreError::Unavailable`](mattermost_tokens::StoreError::Unavailable).
//! A database that refuses writes (read-only SQLite file, PostgreSQL hot
//! standby or read-only session, MySQL `--read-only`):
//! [`StoreError::ReadOnly`](mattermost_tokens::StoreError::ReadOnly). Missing table or
//! columns, clashing column types:
//! [`StoreError::Schema`](mattermost_tokens::StoreError::Schema). Messages
//! never contain a connection URL's password or a token value.
#![deny(missing_docs)]
#![forbid(unsafe_code)]
// Without a backend feature the backend-specific helpers have no user.
#![cfg_attr(
    not(any(feature = "postgres", feature = "mysql", feature = "sqlite")),
    allow(dead_code, unused_macros, unused_imports)
)]

mod error;
pub mod migration;
mod pool;
mod store;

#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgres")]
pub mod postgres;
#[cfg(feature = "sqlite")]
pub mod sqlite;

pub use diesel;
pub use diesel_async;
pub use diesel_migrations;

pub use migration::{MigrationBackend, TokenMigrations};
pub use pool::ConnectionPool;
pub use store::{DEFAULT_ACQUIRE_TIMEOUT, DieselTokenStore, KeyType, StoreConnection};
