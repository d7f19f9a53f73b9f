//! SQLite: [`SqliteTokenStore`] on bundled SQLite, made async by
//! diesel-async's `SyncConnectionWrapper` (each query runs on tokio's
//! blocking pool).
//!
//! Concurrent writers wait for SQLite's write lock instead of failing
//! with `database is locked`: connections made by [`pool`] and
//! [`establish`] set `PRAGMA busy_timeout` ([`BUSY_TIMEOUT_MS`]). A host
//! that builds its own pool should do the same (see [`establish`]). The
//! store does not change the database's journal mode. An in-memory
//! database (`:memory:`) exists once per connection: use a file.

use std::time::Duration;

use diesel::{ConnectionError, ConnectionResult, sqlite::Sqlite};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use mattermost_tokens::store::schema::Dialect;

/// How long (in milliseconds) a connection made here waits for another
/// connection's write to finish before failing.
pub const BUSY_TIMEOUT_MS: u32 = 5_000;

/// diesel's sync `SqliteConnection` made async by diesel-async.
pub type AsyncSqliteConnection = SyncConnectionWrapper<diesel::SqliteConnection>;

/// Opens `url` (a file path, or a `file:` URI such as `file:app.db?mode=ro`)
/// with [`BUSY_TIMEOUT_MS`] set. Use it as a pool's
/// `ManagerConfig::custom_setup` when building a pool by hand.
pub async fn establish(url: &str) -> ConnectionResult<AsyncSqliteConnection> {
    establish_with_busy_timeout(url, Duration::from_millis(BUSY_TIMEOUT_MS.into())).await
}

/// Like [`establish`], waiting up to `busy_timeout` for another
/// connection's lock. Only the connection's own setting changes: the
/// database's journal mode and other persistent settings stay the host's.
pub async fn establish_with_busy_timeout(
    url: &str,
    busy_timeout: Duration,
) -> ConnectionResult<AsyncSqliteConnection> {
    let mut conn = AsyncSqliteConnection::establish(url).await?;
    let ms = busy_timeout.as_millis().min(i32::MAX as u128);
    conn.batch_execute(&format!("PRAGMA busy_timeout = {ms}"))
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// Like [`pool`], each connection waiting up to `busy_timeout` for another
/// connection's lock (a write that still cannot get it fails with
/// [`StoreError::Unavailable`](mattermost_tokens::StoreError::Unavailable)
/// saying the database is locked).
pub fn pool_with_busy_timeout(
    url: &str,
    max_size: usize,
    busy_timeout: Duration,
) -> Result<SqlitePool, mattermost_tokens::StoreError> {
    let pool = SqlitePool::builder(manager(url, busy_timeout))
        .max_size(max_size)
        .build();
    crate::backend::built(pool, Dialect::Sqlite)
}

/// Opens each connection of a pool with [`establish_with_busy_timeout`].
fn manager(
    url: &str,
    busy_timeout: Duration,
) -> AsyncDieselConnectionManager<AsyncSqliteConnection> {
    let mut config = ManagerConfig::<AsyncSqliteConnection>::default();
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        Box::pin(async move { establish_with_busy_timeout(&url, busy_timeout).await })
    });
    AsyncDieselConnectionManager::new_with_config(url, config)
}

crate::backend::backend!(
    Sqlite, AsyncSqliteConnection, Dialect::Sqlite, "SQLite", size: 8,
    store: SqliteTokenStore, codes: SqliteCodeStore, users: SqliteHostUsers, pool: SqlitePool,
    url: "a file path, or a `file:` URI; each connection opened with [`establish`]",
    manager: |url| manager(url, Duration::from_millis(BUSY_TIMEOUT_MS.into())),
    also: diesel::SqliteConnection,
);
