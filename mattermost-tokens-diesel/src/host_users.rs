//! [`DieselHostUsers`]: the host's users, read in keyset pages.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use mattermost_tokens::StoreError;
use mattermost_tokens::host_table::{
    HostColumns, HostUserQueries, HostUserTable, SqlHostUserTable,
};
use mattermost_tokens::store::schema::{KeyType, Value};

use crate::error::{ErrorContext, query_error};
use crate::pool::ConnectionPool;
use crate::store::{DEFAULT_ACQUIRE_TIMEOUT, Sql, StoreConnection};

crate::backend::text_rows! {
    /// One row of the core's host-user statements, every column as text.
    HostRow { mmt_id, mmt_email, mmt_name, mmt_first, mmt_last, mmt_verified, mmt_active }
}

/// The host's users, read from its own users table in keyset pages
/// (`WHERE id > ? ORDER BY id LIMIT n`) as
/// [`UserSync`](mattermost_tokens::UserSync) consumes them: each page is one
/// short statement on a pooled connection that goes back to the pool before
/// the next, so no cursor, read transaction or lock is held while the sync
/// writes (see [`mattermost_tokens::host_table`]). The statements are the
/// core's ([`HostUserTable::queries`]).
///
/// Use it through [`PgHostUsers`](crate::PgHostUsers),
/// [`MySqlHostUsers`](crate::MySqlHostUsers) or
/// [`SqliteHostUsers`](crate::SqliteHostUsers), over the same pool as the
/// token store:
///
/// ```no_run
/// use futures::TryStreamExt;
/// use mattermost_tokens::HostUserTable;
/// use mattermost_tokens_diesel::SqliteHostUsers;
///
/// # async fn demo() -> Result<(), mattermost_tokens::StoreError> {
/// let pool = mattermost_tokens_diesel::sqlite::pool("app.sqlite", 4)?;
/// let users = SqliteHostUsers::new(pool, HostUserTable::laravel());
/// let mut stream = std::pin::pin!(users.stream());
/// while let Some(user) = stream.try_next().await? {
///     println!("{}", user.id);
/// }
/// # Ok(()) }
/// ```
pub struct DieselHostUsers<C: StoreConnection, P: ConnectionPool<C>> {
    pool: Arc<P>,
    table: Arc<HostUserTable>,
    sql: Arc<HostUserQueries>,
    acquire_timeout: Duration,
    _conn: PhantomData<fn() -> C>,
}

impl<C: StoreConnection, P: ConnectionPool<C>> Clone for DieselHostUsers<C, P> {
    fn clone(&self) -> Self {
        DieselHostUsers {
            pool: Arc::clone(&self.pool),
            table: Arc::clone(&self.table),
            sql: Arc::clone(&self.sql),
            acquire_timeout: self.acquire_timeout,
            _conn: PhantomData,
        }
    }
}

impl<C: StoreConnection, P: ConnectionPool<C>> fmt::Debug for DieselHostUsers<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselHostUsers")
            .field("backend", &C::DIALECT.name())
            .field("table", &self.table)
            .field("key_type", &self.sql.key_type())
            .finish_non_exhaustive()
    }
}

impl<C: StoreConnection, P: ConnectionPool<C>> DieselHostUsers<C, P> {
    /// The users of `table` over `pool`, with an integer key.
    pub fn new(pool: P, table: HostUserTable) -> Self {
        DieselHostUsers {
            pool: Arc::new(pool),
            sql: Arc::new(table.queries(C::DIALECT, KeyType::Integer)),
            table: Arc::new(table),
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            _conn: PhantomData,
        }
    }

    mattermost_tokens::host_users_methods!(C::DIALECT);

    /// How long to wait for a pooled connection (default
    /// [`DEFAULT_ACQUIRE_TIMEOUT`]).
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }
}

#[async_trait::async_trait]
impl<C: StoreConnection, P: ConnectionPool<C>> SqlHostUserTable for DieselHostUsers<C, P> {
    fn host_queries(&self) -> &HostUserQueries {
        &self.sql
    }

    async fn host_rows(
        &self,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Vec<HostColumns>, StoreError> {
        let cx = ErrorContext {
            backend: C::DIALECT.name(),
            table: self.table.table(),
        };
        let timeout = self.acquire_timeout;
        let mut conn =
            crate::pool::timed(timeout, C::DIALECT.name(), self.pool.connection()).await?;
        let rows = C::load_host_users(&mut conn, Sql::new(sql, &params))
            .await
            .map_err(|e| query_error(e, cx))?;
        Ok(rows.into_iter().map(HostRow::into_array).collect())
    }
}
