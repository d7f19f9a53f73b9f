//! [`DieselHostUsers`]: the host's users, read in keyset pages.

use std::fmt;
use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Text};
use futures::Stream;
use mattermost_tokens::host_table::{
    HostColumns, HostUserQueries, HostUserSource, HostUserTable, paged,
};
use mattermost_tokens::store::schema::{KeyType, Value};
use mattermost_tokens::{HostUser, HostUserId, StoreError};

use crate::error::{ErrorContext, query_error};
use crate::pool::ConnectionPool;
use crate::store::{DEFAULT_ACQUIRE_TIMEOUT, Sql, StoreConnection};

/// One row of the core's host-user statements, every column as text.
#[derive(QueryableByName, Debug)]
pub struct HostRow {
    #[diesel(sql_type = Nullable<Text>)]
    mmt_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mmt_email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mmt_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mmt_first: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mmt_last: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mmt_verified: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mmt_active: Option<String>,
}

impl HostRow {
    pub(crate) fn columns(self) -> HostColumns {
        [
            self.mmt_id,
            self.mmt_email,
            self.mmt_name,
            self.mmt_first,
            self.mmt_last,
            self.mmt_verified,
            self.mmt_active,
        ]
    }
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

    /// Sets the key column's type (integer by default), as for the token
    /// store.
    pub fn with_key_type(mut self, key_type: KeyType) -> Self {
        self.sql = Arc::new(self.table.queries(C::DIALECT, key_type));
        self
    }

    /// How long to wait for a pooled connection (default
    /// [`DEFAULT_ACQUIRE_TIMEOUT`]).
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The table description.
    pub fn table(&self) -> &HostUserTable {
        &self.table
    }

    /// Every user, in key order, a page at a time (see
    /// [`paged`](mattermost_tokens::host_table::paged)).
    pub fn stream(&self) -> impl Stream<Item = Result<HostUser, StoreError>> + Send + 'static {
        let this = self.clone();
        paged(self.table.page_size(), move |after, limit| {
            let this = this.clone();
            async move { this.page(after.as_ref(), limit).await }
        })
    }

    /// The six text columns of each row `sql` returns.
    async fn rows(&self, sql: String, params: Vec<Value>) -> Result<Vec<HostColumns>, StoreError> {
        let cx = ErrorContext {
            backend: C::DIALECT.name(),
            table: self.table.table(),
        };
        let mut conn = timed(
            self.acquire_timeout,
            C::DIALECT.name(),
            self.pool.connection(),
        )
        .await?;
        let rows = C::load_host_users(&mut conn, Sql::new(sql, &params))
            .await
            .map_err(|e| query_error(e, cx))?;
        Ok(rows.into_iter().map(HostRow::columns).collect())
    }
}

/// `fut` (getting a connection), failing with [`StoreError::Unavailable`]
/// after `timeout`.
async fn timed<T>(
    timeout: Duration,
    backend: &str,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Unavailable {
            message: format!("{backend}: no database connection within {timeout:?}"),
            source: None,
        }),
    }
}

#[async_trait::async_trait]
impl<C: StoreConnection, P: ConnectionPool<C>> HostUserSource for DieselHostUsers<C, P> {
    async fn page(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<Vec<HostUser>, StoreError> {
        self.sql
            .page(after, limit, |sql, p| self.rows(sql, p))
            .await
    }

    async fn by_ids(&self, ids: &[HostUserId]) -> Result<Vec<HostUser>, StoreError> {
        self.sql.by_ids(ids, |sql, p| self.rows(sql, p)).await
    }

    fn page_size(&self) -> u32 {
        self.table.page_size()
    }
}

/// The host's users in a PostgreSQL table; see [`DieselHostUsers`].
#[cfg(feature = "postgres")]
pub type PgHostUsers<P = crate::postgres::PgPool> =
    DieselHostUsers<diesel_async::AsyncPgConnection, P>;
/// The host's users in a MySQL or MariaDB table; see [`DieselHostUsers`].
#[cfg(feature = "mysql")]
pub type MySqlHostUsers<P = crate::mysql::MySqlPool> =
    DieselHostUsers<diesel_async::AsyncMysqlConnection, P>;
/// The host's users in a SQLite table; see [`DieselHostUsers`].
#[cfg(feature = "_sqlite")]
pub type SqliteHostUsers<P = crate::sqlite::SqlitePool> =
    DieselHostUsers<crate::sqlite::AsyncSqliteConnection, P>;
