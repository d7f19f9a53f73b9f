//! [`SqlxCodeStore`]: the magic-link [`CodeStore`] in a table of the host's
//! database, for every [`Backend`]. What it does is the schema's
//! ([`SqlCodeTable`]); here, running the statements on sqlx.

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use mattermost_tokens::StoreError;
#[cfg(doc)]
use mattermost_tokens::magic_link::{CodeHash, CodeStore};
use mattermost_tokens::store::schema::errors::ErrorClass;
use mattermost_tokens::store::schema::plan::Direction;
use mattermost_tokens::store::schema::{
    CodeStatements, DEFAULT_CODES_TABLE, SqlCodeTable, Take, Value,
};
use mattermost_tokens::store::validate_identifier;
use sqlx::error::DatabaseError;
use sqlx::{Connection, Pool};

use crate::backend::{Backend, PoolSize, binds, built_sql};
use crate::error::from_sqlx;
use crate::migration::{self, Job};

/// A user as the code table holds it.
type CodeUser = (Option<String>, Option<String>);

/// A [`CodeStore`] for one-time magic-link codes in a table of the host's
/// database (`mattermost_magic_link_codes` by default), through the host's
/// sqlx pool, so that a code issued by one instance of the app can be
/// redeemed on another.
///
/// Use it through its per-database names, [`PgCodeStore`](crate::PgCodeStore),
/// [`MySqlCodeStore`](crate::MySqlCodeStore) and
/// [`SqliteCodeStore`](crate::SqliteCodeStore); create the table once at
/// start-up with [`migrate`](Self::migrate). Cheap to clone.
///
/// The table, its columns and how a code is consumed exactly once are the
/// schema's ([`SqlCodeTable`]); it is the other adapter's table too, so a
/// host moving between the adapters keeps its outstanding links.
pub struct SqlxCodeStore<DB: Backend> {
    pool: Pool<DB>,
    sql: Arc<CodeStatements>,
}

impl<DB: Backend> Clone for SqlxCodeStore<DB> {
    fn clone(&self) -> Self {
        SqlxCodeStore {
            pool: self.pool.clone(),
            sql: Arc::clone(&self.sql),
        }
    }
}

impl<DB: Backend> fmt::Debug for SqlxCodeStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlxCodeStore")
            .field("database", &DB::NAME)
            .field("table", &self.table_name())
            .field("pool", &PoolSize(&self.pool))
            .finish()
    }
}

impl<DB: Backend> SqlxCodeStore<DB> {
    /// A code store in the table [`DEFAULT_CODES_TABLE`]
    /// (`mattermost_magic_link_codes`), using the host's pool.
    pub fn new(pool: Pool<DB>) -> Self {
        Self::build(pool, DEFAULT_CODES_TABLE.to_owned())
    }

    fn build(pool: Pool<DB>, table: String) -> Self {
        let sql = Arc::new(CodeStatements::new(DB::DIALECT, &table));
        SqlxCodeStore { pool, sql }
    }

    /// Uses another table (`app_magic_codes`, or `schema.codes`). The name
    /// goes into SQL, so it must be an identifier: letters, digits and `_`,
    /// optionally one `schema.` prefix; anything else is
    /// [`StoreError::Config`].
    pub fn with_table_name(self, table: impl Into<String>) -> Result<Self, StoreError> {
        let table = table.into();
        validate_identifier(&table)?;
        Ok(Self::build(self.pool, table))
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The code table, as configured.
    pub fn table_name(&self) -> &str {
        self.sql.table()
    }

    /// Applies the migration
    /// [`create_mattermost_magic_link_codes_table`](crate::CODES_MIGRATION_NAME):
    /// creates the code table and its index on `expires_at`, and records it
    /// in [`MIGRATIONS_TABLE`](crate::MIGRATIONS_TABLE). Call it once at
    /// start-up; running it again is fine (and writes nothing, so it also
    /// works on a read-only replica of a migrated database).
    ///
    /// Fails with [`StoreError::Schema`], changing nothing, when a table of
    /// that name exists without the code table's columns.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migration::run(&self.pool, Job::CodeTable(self.table_name()), Direction::Up).await
    }

    /// Reverts [`migrate`](Self::migrate): drops the code table (every
    /// outstanding link stops working) and removes the migration's record.
    /// Running it when the table is gone is fine; a table of that name
    /// without the code table's columns is not dropped
    /// ([`StoreError::Schema`]).
    pub async fn undo_migration(&self) -> Result<(), StoreError> {
        migration::run(
            &self.pool,
            Job::CodeTable(self.table_name()),
            Direction::Down,
        )
        .await
    }

    /// The SQL [`migrate`](Self::migrate) (or, with `undo`,
    /// [`undo_migration`](Self::undo_migration)) would run now, without
    /// changing anything: empty when there is nothing to do.
    pub async fn migration_sql(&self, undo: bool) -> Result<Vec<String>, StoreError> {
        let dir = if undo { Direction::Down } else { Direction::Up };
        migration::plan(&self.pool, Job::CodeTable(self.table_name()), dir).await
    }

    fn err<'a>(&'a self, what: &'a str) -> impl Fn(sqlx::Error) -> StoreError + 'a {
        move |e| from_sqlx::<DB>(what, self.table_name(), e)
    }

    /// A transaction locking the row, then deleting it.
    async fn lock_and_delete(
        &self,
        conn: &mut DB::Connection,
        params: &[Value],
    ) -> Result<Option<CodeUser>, sqlx::Error> {
        let mut tx = Connection::begin(conn).await?;
        let rows = DB::fetch_on(&mut tx, built_sql(self.sql.lock.as_str()), &binds(params)).await?;
        let Some(row) = rows.first() else {
            tx.rollback().await?;
            return Ok(None);
        };
        let user = (DB::column_text(row, 0)?, DB::column_text(row, 1)?);
        let delete = built_sql(self.sql.delete.as_str());
        DB::execute_on(&mut tx, delete, &binds(&params[..1])).await?;
        tx.commit().await?;
        Ok(Some(user))
    }
}

#[async_trait]
impl<DB: Backend> SqlCodeTable for SqlxCodeStore<DB> {
    fn code_statements(&self) -> &CodeStatements {
        &self.sql
    }

    async fn code_write(
        &self,
        what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<u64, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(self.err(what))?;
        let result = DB::execute_on(&mut conn, built_sql(sql), &binds(params))
            .await
            .map_err(self.err(what))?;
        Ok(DB::rows_affected(&result))
    }

    async fn code_users(
        &self,
        what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<CodeUser>, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(self.err(what))?;
        let rows = DB::fetch_on(&mut conn, built_sql(sql), &binds(params))
            .await
            .map_err(self.err(what))?;
        let user = |r: &DB::Row| Ok((DB::column_text(r, 0)?, DB::column_text(r, 1)?));
        rows.iter()
            .map(user)
            .collect::<Result<_, _>>()
            .map_err(self.err(what))
    }

    async fn take_locked(&self, what: &'static str, params: &[Value]) -> Result<Take, StoreError> {
        let mut conn = self.pool.acquire().await.map_err(self.err(what))?;
        match self.lock_and_delete(&mut conn, params).await {
            Err(sqlx::Error::Database(e))
                if DB::classify(e.as_ref() as &dyn DatabaseError) == ErrorClass::Deadlock =>
            {
                Ok(Take::Deadlock)
            }
            other => other.map(Take::Done).map_err(self.err(what)),
        }
    }
}
