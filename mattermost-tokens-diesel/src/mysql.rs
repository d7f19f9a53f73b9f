//! MySQL and MariaDB: [`MySqlTokenStore`] on diesel-async's
//! `AsyncMysqlConnection` (mysql_async, pure Rust; no libmysqlclient).
//!
//! ```no_run
//! use mattermost_tokens_diesel::MySqlTokenStore;
//!
//! # async fn demo() -> Result<(), mattermost_tokens::StoreError> {
//! let store = MySqlTokenStore::from_url("mysql://app@localhost:3306/app")?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```
//!
//! MySQL reports, by default, the rows an `UPDATE` *changed*, not those it
//! matched. diesel-async's connections ask for matched rows
//! (`CLIENT_FOUND_ROWS`), and the store does not rely on it either: when an
//! update reports no row it reads the row to tell a missing user, a lost
//! compare-and-set and a write of identical values apart.
//!
//! The migration adds the columns as `utf8mb4` with a binary collation, so
//! any token value round-trips byte for byte and ids compare exactly,
//! whatever the table's default character set. UUID keys are expected as
//! text (`CHAR(36)`); `BINARY(16)` keys are not supported.

use diesel::mysql::Mysql;
use diesel_async::AsyncMysqlConnection;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use mattermost_tokens::store::schema::Dialect;

crate::backend::backend!(
    Mysql, AsyncMysqlConnection, Dialect::MySql, "MySQL or MariaDB",
    store: MySqlTokenStore, codes: MySqlCodeStore, pool: MySqlPool, size: 10,
    url: "`mysql://user:password@host:port/database`",
    manager: |url| AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url),
);

/// The MySQL token store, as earlier releases spelled it.
#[deprecated(note = "renamed to `MySqlTokenStore`, as in the sqlx adapter")]
pub type MysqlTokenStore<P = MySqlPool> = MySqlTokenStore<P>;

/// The MySQL code store, as earlier releases spelled it.
#[deprecated(note = "renamed to `MySqlCodeStore`, as in the sqlx adapter")]
pub type MysqlCodeStore<P = MySqlPool> = MySqlCodeStore<P>;

/// The MySQL pool, as earlier releases spelled it.
#[deprecated(note = "renamed to `MySqlPool`")]
pub type MysqlPool = MySqlPool;
