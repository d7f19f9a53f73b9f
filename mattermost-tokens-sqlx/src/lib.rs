//! [`TokenStore`](mattermost_tokens::TokenStore) for
//! [`mattermost-tokens`](mattermost_tokens) on [sqlx](https://docs.rs/sqlx) 0.9:
//! PostgreSQL ([`PgTokenStore`]), MySQL and MariaDB ([`MySqlTokenStore`]),
//! SQLite ([`SqliteTokenStore`]); and the magic-link
//! [`CodeStore`](mattermost_tokens::magic_link::CodeStore) on the same
//! databases ([`PgCodeStore`], [`MySqlCodeStore`], [`SqliteCodeStore`]).
//!
//! The store keeps each user's Mattermost user id, personal access token,
//! token id and token expiry in four nullable columns of the host app's own
//! `users` table (`mattermost_user_id`, `mattermost_token`,
//! `mattermost_token_id`, and `mattermost_token_expires_at`: milliseconds
//! since the Unix epoch, NULL for a token that does not expire), using the
//! host's sqlx pool. [`migrate`](SqlxTokenStore::migrate) adds the columns;
//! the host calls it once at start-up. Queries are built at run
//! time: nothing is needed at build time (no `query!` macros, no
//! `DATABASE_URL`).
//!
//! ```
//! use mattermost_tokens::{AccessToken, HostUserId, NewToken, TokenId, TokenStore, UserId};
//! use mattermost_tokens_sqlx::SqliteTokenStore;
//! use mattermost_tokens_sqlx::sqlx::{self, sqlite::SqlitePoolOptions};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! // The host's pool and its own users table. (An in-memory database lives
//! // as long as its one connection.)
//! let pool = SqlitePoolOptions::new()
//!     .max_connections(1)
//!     .idle_timeout(None)
//!     .max_lifetime(None)
//!     .connect("sqlite::memory:")
//!     .await?;
//! sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, email TEXT NOT NULL)")
//!     .execute(&pool)
//!     .await?;
//! sqlx::query("INSERT INTO users (id, email) VALUES (1, 'ada@example.com')")
//!     .execute(&pool)
//!     .await?;
//!
//! // Set up once at start-up.
//! let store = SqliteTokenStore::new(pool).with_table_name("users")?;
//! store.migrate().await?;
//!
//! // Use it (the library's user sync does this).
//! let ada = HostUserId::Int(1);
//! let token = NewToken {
//!     mattermost_user_id: UserId::new("a1b2c3d4e5f6g7h8i9j0k1l2m3"),
//!     token: AccessToken::new("t0k3nt0k3nt0k3nt0k3nt0k3n"),
//!     token_id: TokenId::new("i1d2i3d4i5d6i7d8i9d0i1d2i3"),
//!     expires_at: None,
//! };
//! assert!(store.put_token_if_absent(&ada, &token).await?);
//! assert!(!store.put_token_if_absent(&ada, &token).await?); // one token per user
//! let record = store.get(&ada).await?.expect("user 1 exists");
//! assert_eq!(record.token_id, Some(token.token_id.clone()));
//! # Ok(()) }
//! ```
//!
//! # Configuration
//!
//! [`SqlxTokenStore::new`] assumes a table `users` with an integer key column
//! `id`. [`with_table_name`](SqlxTokenStore::with_table_name) and
//! [`with_key_column`](SqlxTokenStore::with_key_column) change the names
//! (validated as identifiers, since they are written into SQL),
//! [`with_key_type`](SqlxTokenStore::with_key_type) selects text or UUID
//! keys ([`KeyType`]), and
//! [`with_expiry_column`](SqlxTokenStore::with_expiry_column) names the
//! token expiry column ([`DEFAULT_EXPIRY_COLUMN`] by default; validated like
//! the key column, and refused when it is the key column or another of the
//! store's columns).
//!
//! # Migration
//!
//! [`migrate`](SqlxTokenStore::migrate) applies three steps to the users
//! table: [`MIGRATION_NAME`] adds the columns `mattermost_user_id`,
//! `mattermost_token` and `mattermost_token_id`, then
//! [`UNIQUE_INDEX_MIGRATION_NAME`] creates a unique index on
//! `mattermost_user_id` (named `<table>_mattermost_user_id_unique`, as
//! Laravel's `->unique()` would; see
//! [`user_id_index_name`](SqlxTokenStore::user_id_index_name)), then
//! [`EXPIRY_MIGRATION_NAME`] adds the expiry column (`BIGINT`, `INTEGER` on
//! SQLite). [`undo_migration`](SqlxTokenStore::undo_migration) reverts them
//! in reverse order. Both are idempotent, check the table before changing it
//! (a missing table or a clashing column type is a
//! [`StoreError::Schema`](mattermost_tokens::StoreError::Schema)), and
//! record each step in their own table, [`MIGRATIONS_TABLE`], so the host's
//! own sqlx migrations (`_sqlx_migrations`) are not disturbed. A database
//! migrated by an earlier version gets the steps it lacks (the index, the
//! expiry column) from its next `migrate()`; its rows are kept, with a NULL
//! expiry until their token is next written. The store's reads and writes
//! name the expiry column, so until that `migrate()` has run they fail with
//! `StoreError::Schema`. Why this does not use sqlx's `Migrator` is
//! explained in the [`migration`] module.
//!
//! What each step accepts, refuses and changes is the schema's
//! ([`mattermost_tokens::store::schema`]), shared with the diesel adapter:
//! both give the tables the same shape and the index the same name, and a
//! database migrated through one opens, migrates and works through the
//! other.
//!
//! The index is what keeps one Mattermost account to one host user (two
//! app users sharing an account could each act as the other): the
//! database refuses a write that would put a `mattermost_user_id` another
//! row holds, even when two syncs race, and the store returns
//! [`StoreError::AlreadyLinked`](mattermost_tokens::StoreError::AlreadyLinked)
//! with nothing written. If rows already share an id (written by hand, or
//! by the Laravel integration, which had no such index), `migrate()` fails
//! with `StoreError::Schema`, changing nothing, and says how many ids are
//! shared and the `GROUP BY ... HAVING COUNT(*) > 1` query that finds them:
//! unlink the wrong users, then run it again. A unique index on the column
//! that the host made already, of any name, is kept as it is.
//!
//! # Magic-link codes
//!
//! [`MagicLinks`](mattermost_tokens::MagicLinks) keeps its one-time codes
//! in a [`CodeStore`](mattermost_tokens::magic_link::CodeStore). The
//! in-memory one works for a single process only; [`PgCodeStore`],
//! [`MySqlCodeStore`] and [`SqliteCodeStore`] keep them in a table of the
//! host's database (`mattermost_magic_link_codes`, or any name given to
//! [`with_table_name`](SqlxCodeStore::with_table_name)), so a link issued by
//! one instance of the app can be redeemed on another. The table holds the
//! SHA-256 of each code, never the code; the user it logs in (key and kind,
//! so integer and text keys both come back as given); and the expiry in Unix
//! seconds. [`SqlxCodeStore::migrate`] creates it (the migration
//! [`CODES_MIGRATION_NAME`], recorded in [`MIGRATIONS_TABLE`] like the users
//! table's). A code is consumed exactly once, however many requests race
//! for it: by a single `DELETE ... RETURNING` on PostgreSQL and SQLite, by
//! a `SELECT ... FOR UPDATE` transaction on MySQL/MariaDB. Used codes are
//! deleted; expired ones stay until
//! [`MagicLinks::purge_expired`](mattermost_tokens::MagicLinks::purge_expired)
//! runs (call it now and then, say hourly).
//!
//! ```
//! use std::sync::Arc;
//! use mattermost_tokens::magic_link::{MagicLinkConfig, MagicLinks};
//! use mattermost_tokens::MattermostClient;
//! use mattermost_tokens_sqlx::{SqliteCodeStore, SqliteTokenStore};
//! use mattermost_tokens_sqlx::sqlx::sqlite::SqlitePoolOptions;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let pool = SqlitePoolOptions::new().max_connections(1).idle_timeout(None)
//! #     .max_lifetime(None).connect("sqlite::memory:").await?;
//! # mattermost_tokens_sqlx::sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY)")
//! #     .execute(&pool).await?;
//! let tokens = SqliteTokenStore::new(pool.clone());
//! tokens.migrate().await?;
//! let codes = SqliteCodeStore::new(pool);
//! codes.migrate().await?;
//! let links = MagicLinks::new(
//!     MattermostClient::new("https://chat.example.com", "admin-token")?,
//!     Arc::new(tokens),
//!     Arc::new(codes),
//!     MagicLinkConfig::one_time_code("https://app.example.com/mattermost/magic-link/redeem")
//!         .cookie_domain("example.com"),
//! )?;
//! # let _ = links;
//! # Ok(()) }
//! ```
//!
//! # Errors
//!
//! A database that cannot be reached (connection refused, pool timed out or
//! closed, connection lost) is
//! [`StoreError::Unavailable`](mattermost_tokens::StoreError::Unavailable);
//! a missing table or column is
//! [`StoreError::Schema`](mattermost_tokens::StoreError::Schema); a write
//! refused by a read-only database (a SQLite file opened `mode=ro`, a
//! PostgreSQL hot standby or read-only transaction, a MySQL/MariaDB server
//! or transaction in read-only mode) is
//! [`StoreError::ReadOnly`](mattermost_tokens::StoreError::ReadOnly); a
//! write refused by the unique index on `mattermost_user_id` (PostgreSQL
//! 23505, MySQL/MariaDB 1062, SQLite `SQLITE_CONSTRAINT_UNIQUE`) is
//! [`StoreError::AlreadyLinked`](mattermost_tokens::StoreError::AlreadyLinked).
//! No error carries a database URL, a token value or a code.
//!
//! # Features
//!
//! `postgres`, `mysql` and `sqlite` (all on by default) each enable one
//! token store and one code store. The sqlx features themselves come from
//! the workspace's sqlx dependency; the same sqlx is re-exported as
//! [`sqlx`], so hosts build their pools with the version the store expects.
#![deny(missing_docs)]
// docs.rs builds with `--cfg docsrs`: feature-gated items are labelled.
#![cfg_attr(docsrs, feature(doc_cfg))]
#![forbid(unsafe_code)]

pub use sqlx;

mod backend;
mod code_store;
mod error;
mod group_commit;
mod host_users;
pub mod migration;
mod store;

#[cfg(feature = "mysql")]
mod mysql_store;
#[cfg(feature = "postgres")]
mod postgres_store;
#[cfg(feature = "_sqlite")]
mod sqlite_store;

pub use backend::Backend;
pub use code_store::SqlxCodeStore;
pub use error::RedactedDriverError;
pub use host_users::SqlxHostUsers;
pub use mattermost_tokens::store::schema::{
    CLAIM_MIGRATION_NAME, CODES_MIGRATION_NAME, CODES_MIGRATION_VERSION, DEFAULT_CODES_TABLE,
    DEFAULT_EXPIRY_COLUMN, EXPIRY_MIGRATION_NAME, EXPIRY_MIGRATION_VERSION, KeyType,
    MIGRATION_NAME, MIGRATION_VERSION, MIGRATIONS_TABLE, UNIQUE_INDEX_MIGRATION_NAME,
    UNIQUE_INDEX_MIGRATION_VERSION,
};
pub use store::SqlxTokenStore;
#[cfg(feature = "mysql")]
pub use {
    host_users::MySqlHostUsers,
    mysql_store::{MySqlCodeStore, MySqlTokenStore},
};
#[cfg(feature = "postgres")]
pub use {
    host_users::PgHostUsers,
    postgres_store::{PgCodeStore, PgTokenStore},
};
#[cfg(feature = "_sqlite")]
pub use {
    host_users::SqliteHostUsers,
    sqlite_store::{SqliteCodeStore, SqliteTokenStore},
};

/// The README's code, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
