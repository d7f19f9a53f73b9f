#![doc = include_str!("../README.md")]
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

pub use {diesel, diesel_async, diesel_migrations};

pub use code_store::DieselCodeStore;
pub use host_users::DieselHostUsers;
pub use mattermost_tokens::store::schema::{
    CLAIM_MIGRATION_NAME, CODES_MIGRATION_NAME, DEFAULT_CODES_TABLE, DEFAULT_EXPIRY_COLUMN,
    EXPIRY_MIGRATION_NAME, KeyType, MIGRATION_NAME, UNIQUE_INDEX_MIGRATION_NAME,
};
pub use migration::{CodeMigrations, MigrationBackend, TokenMigrations};
#[cfg(feature = "mysql")]
pub use mysql::{MySqlCodeStore, MySqlHostUsers, MySqlTokenStore};
pub use pool::ConnectionPool;
#[cfg(feature = "postgres")]
pub use postgres::{PgCodeStore, PgHostUsers, PgTokenStore};
#[cfg(feature = "_sqlite")]
pub use sqlite::{SqliteCodeStore, SqliteHostUsers, SqliteTokenStore};
pub use store::{DEFAULT_ACQUIRE_TIMEOUT, DieselTokenStore, StoreConnection};
