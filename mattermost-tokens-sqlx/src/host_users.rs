//! [`SqlxHostUsers`]: the host's users, read in keyset pages.

use std::fmt;
use std::sync::Arc;

use futures::Stream;
use mattermost_tokens::host_table::{HostUserRow, HostUserSource, HostUserTable, paged};
use mattermost_tokens::{HostUser, HostUserId, StoreError};
use sqlx::{AssertSqlSafe, Pool, SqlSafeStr};

use crate::backend::{Backend, Bind};
use crate::config::KeyType;
use crate::error::from_sqlx;
use crate::key::{KeyValue, key_value};

/// The host's users, read from its own users table in keyset pages
/// (`WHERE id > ? ORDER BY id LIMIT n`) as [`UserSync`](mattermost_tokens::UserSync)
/// consumes them: each page is one short statement on a pooled connection
/// that goes back to the pool before the next, so no cursor, read
/// transaction or lock is held while the sync writes (an open read on a
/// SQLite file in its default journal mode would block every write; see
/// [`mattermost_tokens::host_table`]).
///
/// Use it through [`PgHostUsers`](crate::PgHostUsers),
/// [`MySqlHostUsers`](crate::MySqlHostUsers) or
/// [`SqliteHostUsers`](crate::SqliteHostUsers).
///
/// ```
/// use futures::TryStreamExt;
/// use mattermost_tokens::HostUserTable;
/// use mattermost_tokens_sqlx::SqliteHostUsers;
/// use mattermost_tokens_sqlx::sqlx::{self, sqlite::SqlitePoolOptions};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// # let pool = SqlitePoolOptions::new().max_connections(1).idle_timeout(None)
/// #     .max_lifetime(None).connect("sqlite::memory:").await?;
/// # sqlx::query("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT, email TEXT, \
/// #     email_verified_at TIMESTAMP NULL)").execute(&pool).await?;
/// # sqlx::query("INSERT INTO users VALUES (1, 'Ana López', 'ana@example.com', CURRENT_TIMESTAMP), \
/// #     (2, 'Bo', 'bo@example.com', NULL)").execute(&pool).await?;
/// // A Laravel `users` table, 500 rows a page.
/// let users = SqliteHostUsers::new(pool, HostUserTable::laravel());
/// let all: Vec<_> = users.stream().try_collect().await?;
/// assert_eq!(all.len(), 2);
/// assert_eq!(all[0].last_name, "López");
/// assert_eq!(all[0].email_verified, Some(true));
/// assert_eq!(all[1].email_verified, Some(false));
/// // Feed it to UserSync::sync_all (it takes a stream of HostUser: stop at,
/// // or skip, read errors as the host prefers).
/// # Ok(()) }
/// ```
pub struct SqlxHostUsers<DB: Backend> {
    pool: Pool<DB>,
    inner: Arc<Inner>,
}

struct Inner {
    table: HostUserTable,
    key_type: KeyType,
    first: String,
    after: String,
    by_id: String,
}

impl<DB: Backend> Clone for SqlxHostUsers<DB> {
    fn clone(&self) -> Self {
        SqlxHostUsers {
            pool: self.pool.clone(),
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<DB: Backend> fmt::Debug for SqlxHostUsers<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlxHostUsers")
            .field("database", &DB::NAME)
            .field("table", &self.inner.table)
            .field("key_type", &self.inner.key_type)
            .finish_non_exhaustive()
    }
}

impl<DB: Backend> SqlxHostUsers<DB> {
    /// The users of `table` over the host's pool, with an integer key.
    pub fn new(pool: Pool<DB>, table: HostUserTable) -> Self {
        Self::build(pool, table, KeyType::Integer)
    }

    /// Sets the key column's type (integer by default), as for the token
    /// store.
    pub fn with_key_type(self, key_type: KeyType) -> Self {
        Self::build(self.pool, self.inner.table.clone(), key_type)
    }

    fn build(pool: Pool<DB>, table: HostUserTable, key_type: KeyType) -> Self {
        let key = table.key_column();
        let select = format!(
            "SELECT {} FROM {}",
            table.select_list(&DB::key_select(key, key_type)),
            table.table()
        );
        let inner = Inner {
            first: format!("{select} ORDER BY {key} LIMIT {}", DB::placeholder(1)),
            after: format!(
                "{select} WHERE {key} > {} ORDER BY {key} LIMIT {}",
                DB::key_param(1, key_type),
                DB::placeholder(2)
            ),
            by_id: format!("{select} WHERE {key} = {}", DB::key_param(1, key_type)),
            table,
            key_type,
        };
        SqlxHostUsers {
            pool,
            inner: Arc::new(inner),
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
        let limit = i64::from(limit);
        match after {
            None => self.query(&self.inner.first, &[Bind::Int(limit)]).await,
            Some(a) => {
                let key = self.key(a)?;
                self.query(&self.inner.after, &[key.bind(), Bind::Int(limit)])
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
            out.extend(self.query(&self.inner.by_id, &[key.bind()]).await?);
        }
        Ok(out)
    }

    fn key(&self, id: &HostUserId) -> Result<KeyValue, StoreError> {
        key_value(self.inner.key_type, DB::NATIVE_UUID, id)?
            .ok_or_else(|| StoreError::UnknownUser(id.clone()))
    }

    async fn query(&self, sql: &str, binds: &[Bind<'_>]) -> Result<Vec<HostUser>, StoreError> {
        const WHAT: &str = "reading host users";
        let err = |e| from_sqlx::<DB>(WHAT, self.inner.table.table(), e);
        let mut conn = self.pool.acquire().await.map_err(err)?;
        let text = AssertSqlSafe(sql.to_owned()).into_sql_str();
        let rows = DB::fetch_on(&mut conn, text, binds).await.map_err(err)?;
        drop(conn);
        rows.iter()
            .map(|row| self.decode(row).map_err(err))
            .collect()
    }

    fn decode(&self, row: &DB::Row) -> Result<HostUser, sqlx::Error> {
        let id = match self.inner.key_type {
            KeyType::Integer => HostUserId::Int(DB::column_i64(row, 0)?),
            _ => HostUserId::Text(DB::column_text(row, 0)?.unwrap_or_default()),
        };
        Ok(HostUserRow {
            id,
            email: DB::column_text(row, 1)?,
            name: DB::column_text(row, 2)?,
            first_name: DB::column_text(row, 3)?,
            last_name: DB::column_text(row, 4)?,
            email_verified: DB::column_text(row, 5)?.as_deref() == Some("1"),
        }
        .into())
    }
}

/// The host's users in a PostgreSQL table; see [`SqlxHostUsers`].
#[cfg(feature = "postgres")]
pub type PgHostUsers = SqlxHostUsers<sqlx::Postgres>;
/// The host's users in a MySQL or MariaDB table; see [`SqlxHostUsers`].
#[cfg(feature = "mysql")]
pub type MySqlHostUsers = SqlxHostUsers<sqlx::MySql>;
/// The host's users in a SQLite table; see [`SqlxHostUsers`].
#[cfg(feature = "_sqlite")]
pub type SqliteHostUsers = SqlxHostUsers<sqlx::Sqlite>;

#[async_trait::async_trait]
impl<DB: Backend> HostUserSource for SqlxHostUsers<DB> {
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
