//! [`DieselHostUsers`]: the host's users, read in keyset pages.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use diesel::QueryableByName;
use diesel::sql_types::{Nullable, Text};
use futures::Stream;
use mattermost_tokens::host_table::{HostUserRow, HostUserSource, HostUserTable, paged};
use mattermost_tokens::{HostUser, HostUserId, StoreError};

use crate::error::{ErrorContext, query_error};
use crate::pool::ConnectionPool;
use crate::store::{Bind, DEFAULT_ACQUIRE_TIMEOUT, KeyType, Sql, StoreConnection, timed};

/// One row of [`HostUserTable::select_list`], the key read as text.
#[derive(QueryableByName, Debug)]
pub struct HostRow {
    #[diesel(sql_type = Text)]
    mmt_id: String,
    #[diesel(sql_type = Nullable<Text>)]
    mmt_email: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mmt_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mmt_first: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mmt_last: Option<String>,
    #[diesel(sql_type = Text)]
    mmt_verified: String,
}

/// The host's users, read from its own users table in keyset pages
/// (`WHERE id > ? ORDER BY id LIMIT n`) as
/// [`UserSync`](mattermost_tokens::UserSync) consumes them: each page is one
/// short statement on a pooled connection that goes back to the pool before
/// the next, so no cursor, read transaction or lock is held while the sync
/// writes (see [`mattermost_tokens::host_table`]).
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
    inner: Arc<Inner>,
    acquire_timeout: Duration,
    _conn: PhantomData<fn() -> C>,
}

struct Inner {
    table: HostUserTable,
    key_type: KeyType,
    first: String,
    after: String,
    by_id: String,
}

impl<C: StoreConnection, P: ConnectionPool<C>> Clone for DieselHostUsers<C, P> {
    fn clone(&self) -> Self {
        DieselHostUsers {
            pool: Arc::clone(&self.pool),
            inner: Arc::clone(&self.inner),
            acquire_timeout: self.acquire_timeout,
            _conn: PhantomData,
        }
    }
}

impl<C: StoreConnection, P: ConnectionPool<C>> fmt::Debug for DieselHostUsers<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DieselHostUsers")
            .field("backend", &C::BACKEND)
            .field("table", &self.inner.table)
            .field("key_type", &self.inner.key_type)
            .finish_non_exhaustive()
    }
}

impl<C: StoreConnection, P: ConnectionPool<C>> DieselHostUsers<C, P> {
    /// The users of `table` over `pool`, with an integer key.
    pub fn new(pool: P, table: HostUserTable) -> Self {
        Self::build(Arc::new(pool), table, KeyType::Integer)
    }

    /// Sets the key column's type (integer by default), as for the token
    /// store.
    pub fn with_key_type(self, key_type: KeyType) -> Self {
        let mut s = Self::build(self.pool, self.inner.table.clone(), key_type);
        s.acquire_timeout = self.acquire_timeout;
        s
    }

    /// How long to wait for a pooled connection (default
    /// [`DEFAULT_ACQUIRE_TIMEOUT`]).
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    fn build(pool: Arc<P>, table: HostUserTable, key_type: KeyType) -> Self {
        let key = table.key_column();
        let select = format!(
            "SELECT {} FROM {}",
            table.select_list(&C::key_as_text(key)),
            table.table()
        );
        let param = |n| C::key_param(C::placeholder(n), key_type);
        let inner = Inner {
            first: format!("{select} ORDER BY {key} LIMIT {}", C::placeholder(1)),
            after: format!(
                "{select} WHERE {key} > {} ORDER BY {key} LIMIT {}",
                param(1),
                C::placeholder(2)
            ),
            by_id: format!("{select} WHERE {key} = {}", param(1)),
            table,
            key_type,
        };
        DieselHostUsers {
            pool,
            inner: Arc::new(inner),
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            _conn: PhantomData,
        }
    }

    /// The table description.
    pub fn table(&self) -> &HostUserTable {
        &self.inner.table
    }

    /// Every user, in key order, a page at a time (see
    /// [`paged`](mattermost_tokens::host_table::paged)).
    pub fn stream(&self) -> impl Stream<Item = Result<HostUser, StoreError>> + Send + 'static {
        let this = self.clone();
        paged(self.inner.table.page_size(), move |after, limit| {
            let this = this.clone();
            async move { this.page(after.as_ref(), limit).await }
        })
    }

    /// Up to `limit` users with a key greater than `after` (from the first
    /// when `None`), in key order.
    pub async fn page(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<Vec<HostUser>, StoreError> {
        let limit = Bind::Int(i64::from(limit));
        match after {
            None => {
                self.query(Sql::new(self.inner.first.clone(), vec![limit]))
                    .await
            }
            Some(a) => {
                let key = self.key(a)?;
                self.query(Sql::new(self.inner.after.clone(), vec![key, limit]))
                    .await
            }
        }
    }

    /// The users with these keys that exist, in the order asked (one short
    /// statement each).
    pub async fn by_ids(&self, ids: &[HostUserId]) -> Result<Vec<HostUser>, StoreError> {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            let key = self.key(id)?;
            out.extend(
                self.query(Sql::new(self.inner.by_id.clone(), vec![key]))
                    .await?,
            );
        }
        Ok(out)
    }

    fn key(&self, id: &HostUserId) -> Result<Bind, StoreError> {
        match (self.inner.key_type, id) {
            (KeyType::Integer, HostUserId::Int(i)) => Ok(Bind::Int(*i)),
            (KeyType::Text | KeyType::Uuid, HostUserId::Text(s)) => Ok(Bind::Text(s.clone())),
            _ => Err(StoreError::Config(format!(
                "host user key {id} is not of the configured key type {:?}",
                self.inner.key_type
            ))),
        }
    }

    async fn query(&self, sql: Sql) -> Result<Vec<HostUser>, StoreError> {
        let cx = ErrorContext {
            backend: C::BACKEND,
            table: self.inner.table.table(),
        };
        let rows = {
            let mut conn = timed::<C, _>(self.acquire_timeout, self.pool.connection()).await?;
            C::load_host_users(&mut conn, sql)
                .await
                .map_err(|e| query_error(e, cx))?
        };
        rows.into_iter().map(|r| self.decode(r)).collect()
    }

    fn decode(&self, r: HostRow) -> Result<HostUser, StoreError> {
        let id = match self.inner.key_type {
            KeyType::Integer => r.mmt_id.trim().parse().map(HostUserId::Int).map_err(|_| {
                StoreError::Config(format!(
                    "{}: key column {}.{} holds a non-integer value; configure KeyType::Text",
                    C::BACKEND,
                    self.inner.table.table(),
                    self.inner.table.key_column()
                ))
            })?,
            _ => HostUserId::Text(r.mmt_id),
        };
        Ok(HostUserRow {
            id,
            email: r.mmt_email,
            name: r.mmt_name,
            first_name: r.mmt_first,
            last_name: r.mmt_last,
            email_verified: r.mmt_verified == "1",
        }
        .into())
    }
}

/// The host's users in a PostgreSQL table; see [`DieselHostUsers`].
#[cfg(feature = "postgres")]
pub type PgHostUsers<P = crate::postgres::PgPool> =
    DieselHostUsers<diesel_async::AsyncPgConnection, P>;
/// The host's users in a MySQL or MariaDB table; see [`DieselHostUsers`].
#[cfg(feature = "mysql")]
pub type MySqlHostUsers<P = crate::mysql::MysqlPool> =
    DieselHostUsers<diesel_async::AsyncMysqlConnection, P>;
/// The host's users in a SQLite table; see [`DieselHostUsers`].
#[cfg(feature = "_sqlite")]
pub type SqliteHostUsers<P = crate::sqlite::SqlitePool> =
    DieselHostUsers<crate::sqlite::AsyncSqliteConnection, P>;

#[async_trait::async_trait]
impl<C: StoreConnection, P: ConnectionPool<C>> HostUserSource for DieselHostUsers<C, P> {
    async fn page(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<Vec<HostUser>, StoreError> {
        Self::page(self, after, limit).await
    }

    async fn by_ids(&self, ids: &[HostUserId]) -> Result<Vec<HostUser>, StoreError> {
        Self::by_ids(self, ids).await
    }

    fn page_size(&self) -> u32 {
        self.inner.table.page_size()
    }
}
