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
    Mysql, AsyncMysqlConnection, Dialect::MySql, "MySQL or MariaDB", size: 10,
    store: MySqlTokenStore, codes: MySqlCodeStore, users: MySqlHostUsers, pool: MySqlPool,
    url: "`mysql://user:password@host:port/database`",
    manager: |url| AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(url),
);
