//! [`SqlxTokenStore`]: the [`TokenStore`] over a host's users table, for
//! every [`Backend`]. What it does is the schema's
//! ([`SqlTokenTable`]); here, running the statements on sqlx.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use mattermost_tokens::store::schema::plan::Direction;
use mattermost_tokens::store::schema::{
    KeyPolicy, SqlTokenTable, StoreStatements, UsersTable, UuidKeys, Value, Written,
};
use mattermost_tokens::{AccessToken, StoreError, TokenId, TokenRecord, UserId};
#[cfg(doc)]
use mattermost_tokens::{HostUserId, TokenStore};
use sqlx::Pool;

use crate::backend::{Backend, binds, built_sql};
use crate::error::from_sqlx;
use crate::group_commit::SqlxBatch;
use crate::migration::{self, Job};
use mattermost_tokens::store::group_commit::GroupCommit;
use mattermost_tokens::store::schema::Dialect;

/// A [`TokenStore`] keeping each user's Mattermost user id, token, token
/// id and token expiry in four nullable columns of the host's own users
/// table, through the host's sqlx pool.
///
/// The columns are `mattermost_user_id`, `mattermost_token`,
/// `mattermost_token_id` and `mattermost_token_expires_at` (the expiry in
/// milliseconds since the Unix epoch, NULL for a token that does not
/// expire; its name is set by [`with_expiry_column`](Self::with_expiry_column)).
/// A token's value, id and expiry are always written together, by one
/// statement, and [`clear_token`](TokenStore::clear_token) sets all three
/// to NULL.
///
/// Use it through its per-database names, [`PgTokenStore`](crate::PgTokenStore),
/// [`MySqlTokenStore`](crate::MySqlTokenStore) and
/// [`SqliteTokenStore`](crate::SqliteTokenStore). It is cheap to clone (the
/// pool and the prepared SQL are shared).
///
/// Every method is one statement (two when an update matched no row and the
/// store must tell "no such user" from "nothing to change"), and the
/// compare-and-set methods are single `UPDATE ... WHERE` statements, so they
/// are atomic without transactions or locks.
///
/// A Mattermost user id is linked to one host user at most: the unique
/// index [`migrate`](Self::migrate) creates makes the database refuse a
/// write that would put a `mattermost_user_id` another row holds, however
/// many writers race, and the store returns that as
/// [`StoreError::AlreadyLinked`] (nothing is written). Writing the id a row
/// already holds is fine. A compare-and-set that does not apply writes no
/// row and so violates nothing: [`put_token_if_absent`](TokenStore::put_token_if_absent)
/// on a user that has a token, or [`replace_token`](TokenStore::replace_token)
/// with another token id, returns `Ok(false)` whatever the id.
pub struct SqlxTokenStore<DB: Backend> {
    pool: Pool<DB>,
    sql: Arc<StoreStatements>,
    /// SQLite's writes, batched (see `group_commit`); shared by clones.
    group: Option<Arc<GroupCommit<SqlxBatch<DB>>>>,
}

impl<DB: Backend> Clone for SqlxTokenStore<DB> {
    fn clone(&self) -> Self {
        SqlxTokenStore {
            pool: self.pool.clone(),
            sql: Arc::clone(&self.sql),
            group: self.group.clone(),
        }
    }
}

impl<DB: Backend> fmt::Debug for SqlxTokenStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool is shown by its size only: its options are the host's.
        f.debug_struct("SqlxTokenStore")
            .field("database", &DB::NAME)
            .field("table", &self.table_name())
            .field("key_column", &self.key_column())
            .field("key_type", &self.key_type())
            .field("expiry_column", &self.expiry_column())
            .field("pool", &crate::backend::PoolSize(&self.pool))
            .finish()
    }
}

impl<DB: Backend> SqlxTokenStore<DB> {
    /// A store over the host's `users` table with an integer key column
    /// `id`, using the host's pool.
    pub fn new(pool: Pool<DB>) -> Self {
        Self::build(pool, UsersTable::default())
    }

    fn build(pool: Pool<DB>, target: UsersTable) -> Self {
        let sql = Arc::new(StoreStatements::new(DB::DIALECT, &target));
        let group = (DB::DIALECT == Dialect::Sqlite).then(|| {
            GroupCommit::new(SqlxBatch {
                pool: pool.clone(),
                begin: "BEGIN IMMEDIATE",
            })
        });
        SqlxTokenStore { pool, sql, group }
    }

    mattermost_tokens::users_table_methods!();

    fn rendered(self, target: UsersTable) -> Self {
        Self::build(self.pool, target)
    }

    /// The rows of a read, each as `row` reads it.
    async fn fetch<T>(
        &self,
        what: &'static str,
        sql: &str,
        params: &[Value],
        row: impl Fn(&DB::Row) -> Result<T, sqlx::Error>,
    ) -> Result<Vec<T>, StoreError> {
        let err = |e| from_sqlx::<DB>(what, self.table_name(), e);
        let mut conn = self.pool.acquire().await.map_err(err)?;
        let rows = DB::fetch_on(&mut conn, built_sql(sql), &binds(params))
            .await
            .map_err(err)?;
        rows.iter().map(row).collect::<Result<_, _>>().map_err(err)
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// Applies the users table's three migrations, recording each in
    /// [`MIGRATIONS_TABLE`](crate::MIGRATIONS_TABLE):
    ///
    /// 1. [`add_mattermost_token_to_users_table`](crate::MIGRATION_NAME)
    ///    adds the nullable columns `mattermost_user_id` (`VARCHAR(26)`),
    ///    `mattermost_token` (`TEXT`) and `mattermost_token_id`
    ///    (`VARCHAR(26)`) to the users table;
    /// 2. [`add_unique_mattermost_user_id_index`](crate::UNIQUE_INDEX_MIGRATION_NAME)
    ///    creates the unique index [`user_id_index_name`](Self::user_id_index_name)
    ///    on `mattermost_user_id` (NULLs may repeat), so that the database
    ///    itself refuses to link one Mattermost account to two users;
    /// 3. [`add_mattermost_token_expires_at_column`](crate::EXPIRY_MIGRATION_NAME)
    ///    adds the nullable column [`expiry_column`](Self::expiry_column)
    ///    (`BIGINT`; `INTEGER` on SQLite), the token's expiry in
    ///    milliseconds since the Unix epoch.
    ///
    /// Call it once at start-up; running it again, or over columns (and a
    /// unique index on `mattermost_user_id`, of any name) that a Laravel or
    /// hand-written migration already added with compatible types, is fine.
    /// A database migrated by an earlier version gets only the steps it
    /// lacks; its rows keep their values, with a NULL expiry until their
    /// token is next written. An expiry column that exists already must be
    /// a signed 64-bit integer (`BIGINT`; on SQLite, any integer type).
    /// On PostgreSQL the index is built inside the migration's transaction,
    /// which holds off writes to the table while it builds; on a very large
    /// table, create it beforehand with `CREATE UNIQUE INDEX CONCURRENTLY`
    /// and `migrate()` takes it as is.
    ///
    /// Fails with [`StoreError::Schema`], changing nothing, when the users
    /// table or its key column is missing, the key column does not suit the
    /// [`KeyType`](crate::KeyType), a column of one of those names has a clashing type, or
    /// rows already share a `mattermost_user_id` (the message says how many
    /// and how to find and fix them).
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migration::run(
            &self.pool,
            Job::UsersTable(self.users_table()),
            Direction::Up,
        )
        .await
    }

    /// Reverts [`migrate`](Self::migrate), in reverse order: drops the
    /// expiry column, then the unique index (when it is the one `migrate()`
    /// creates), then exactly the three other columns (and with them every
    /// stored token: revoke the tokens in Mattermost first), and removes
    /// the three records. Running it when they are gone is fine.
    pub async fn undo_migration(&self) -> Result<(), StoreError> {
        migration::run(
            &self.pool,
            Job::UsersTable(self.users_table()),
            Direction::Down,
        )
        .await
    }

    /// The SQL [`migrate`](Self::migrate) (or, with `undo`,
    /// [`undo_migration`](Self::undo_migration)) would run now, checked as
    /// they check, without changing anything: empty when there is nothing
    /// to do. The writes to the tracking table are not listed.
    pub async fn migration_sql(&self, undo: bool) -> Result<Vec<String>, StoreError> {
        let dir = if undo { Direction::Down } else { Direction::Up };
        migration::plan(&self.pool, Job::UsersTable(self.users_table()), dir).await
    }
}

#[async_trait]
impl<DB: Backend> SqlTokenTable for SqlxTokenStore<DB> {
    fn statements(&self) -> &StoreStatements {
        &self.sql
    }

    const KEY_POLICY: KeyPolicy = KeyPolicy {
        text_uuids: UuidKeys::AsText,
        strict: true,
    };

    /// "Matched" relies on the affected-rows count meaning matched rows. It
    /// does on PostgreSQL and SQLite; MySQL by default counts changed rows
    /// only, but sqlx always connects with `CLIENT_FOUND_ROWS`, which makes
    /// it count matched rows too.
    async fn write(
        &self,
        what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Written, StoreError> {
        let err = |e| from_sqlx::<DB>(what, self.table_name(), e);
        let result = match &self.group {
            Some(group) => match group.execute((sql.to_owned(), params.to_vec())).await {
                Ok(n) => Ok(n),
                Err(f) => Err(f.statement_error(what, DB::NAME, self.table_name())?),
            },
            None => {
                let mut conn = self.pool.acquire().await.map_err(err)?;
                DB::execute_on(&mut conn, built_sql(sql), &binds(params))
                    .await
                    .map(|r| DB::rows_affected(&r))
            }
        };
        match result {
            Ok(n) => Ok(Written::Rows(n)),
            Err(sqlx::Error::Database(d)) if DB::unique_violation(d.as_ref()).is_some() => {
                Ok(Written::UniqueViolation(DB::unique_violation(d.as_ref())))
            }
            Err(e) => Err(err(e)),
        }
    }

    async fn read(
        &self,
        what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<(String, TokenRecord)>, StoreError> {
        let record = |row: &DB::Row| -> Result<(String, TokenRecord), sqlx::Error> {
            let key = DB::column_text(row, 0)?.unwrap_or_default();
            let record = TokenRecord {
                mattermost_user_id: DB::column_text(row, 1)?.map(UserId::new),
                token: DB::column_text(row, 2)?.map(AccessToken::new),
                token_id: DB::column_text(row, 3)?.map(TokenId::new),
                token_expires_at: DB::column_opt_i64(row, 4)?,
            };
            Ok((key, record))
        };
        self.fetch(what, sql, params, record).await
    }

    async fn read_keys(
        &self,
        what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<String>, StoreError> {
        let key = |r: &DB::Row| DB::column_text(r, 0).map(Option::unwrap_or_default);
        self.fetch(what, sql, params, key).await
    }
}
