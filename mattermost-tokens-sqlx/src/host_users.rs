//! [`SqlxHostUsers`]: the host's users, read in keyset pages.

use std::fmt;
use std::sync::Arc;

use mattermost_tokens::StoreError;
use mattermost_tokens::host_table::{
    HostColumns, HostUserQueries, HostUserTable, SqlHostUserTable,
};
use mattermost_tokens::store::schema::{KeyType, Value};
use sqlx::Pool;

use crate::backend::{Backend, binds, built_sql};
use crate::error::from_sqlx;

/// The host's users, read from its own users table in keyset pages
/// (`WHERE id > ? ORDER BY id LIMIT n`) as [`UserSync`](mattermost_tokens::UserSync)
/// consumes them: each page is one short statement on a pooled connection
/// that goes back to the pool before the next, so no cursor, read
/// transaction or lock is held while the sync writes (an open read on a
/// SQLite file in its default journal mode would block every write; see
/// [`mattermost_tokens::host_table`]). The statements are the core's
/// ([`HostUserTable::queries`]).
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
/// # Ok(()) }
/// ```
pub struct SqlxHostUsers<DB: Backend> {
    pool: Pool<DB>,
    table: Arc<HostUserTable>,
    sql: Arc<HostUserQueries>,
}

impl<DB: Backend> Clone for SqlxHostUsers<DB> {
    fn clone(&self) -> Self {
        SqlxHostUsers {
            pool: self.pool.clone(),
            table: Arc::clone(&self.table),
            sql: Arc::clone(&self.sql),
        }
    }
}

impl<DB: Backend> fmt::Debug for SqlxHostUsers<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlxHostUsers")
            .field("table", &self.table)
            .field("key_type", &self.sql.key_type())
            .finish_non_exhaustive()
    }
}

impl<DB: Backend> SqlxHostUsers<DB> {
    /// The users of `table` over the host's pool, with an integer key.
    pub fn new(pool: Pool<DB>, table: HostUserTable) -> Self {
        let sql = Arc::new(table.queries(DB::DIALECT, KeyType::Integer));
        SqlxHostUsers {
            pool,
            table: Arc::new(table),
            sql,
        }
    }

    mattermost_tokens::host_users_methods!(DB::DIALECT);
}

#[async_trait::async_trait]
impl<DB: Backend> SqlHostUserTable for SqlxHostUsers<DB> {
    fn host_queries(&self) -> &HostUserQueries {
        &self.sql
    }

    async fn host_rows(
        &self,
        sql: String,
        params: Vec<Value>,
    ) -> Result<Vec<HostColumns>, StoreError> {
        let err = |e| from_sqlx::<DB>("reading host users", self.table.table(), e);
        let rows = {
            let mut conn = self.pool.acquire().await.map_err(err)?;
            DB::fetch_on(&mut conn, built_sql(sql), &binds(&params))
                .await
                .map_err(err)?
        };
        rows.iter()
            .map(|row| {
                let col = |i| DB::column_text(row, i).map_err(err);
                Ok([
                    col(0)?,
                    col(1)?,
                    col(2)?,
                    col(3)?,
                    col(4)?,
                    col(5)?,
                    col(6)?,
                ])
            })
            .collect()
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
