//! The magic-link [`CodeStore`] in a table of the host's database:
//! [`DieselCodeStore`], written once for every backend.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use mattermost_tokens::StoreError;
use mattermost_tokens::store::schema::errors::ErrorClass;
use mattermost_tokens::store::schema::{
    CodeStatements, DEFAULT_CODES_TABLE, SqlCodeTable, Take, Value,
};
use mattermost_tokens::store::validate_identifier;
#[cfg(doc)]
use mattermost_tokens::{
    HostUserId,
    magic_link::{CodeHash, CodeStore},
};

use crate::error::query_error;
use crate::migration::CodeMigrations;
use crate::pool::ConnectionPool;
use crate::store::{DEFAULT_ACQUIRE_TIMEOUT, Sql, StoreConnection};

crate::backend::text_rows! {
    /// The user a code logs in, as stored.
    CodeUserRow { host_user_id, host_user_kind }
}

/// A [`CodeStore`] for one-time magic-link codes in a table of the host's
/// database (`mattermost_magic_link_codes` by default), so that a link
/// issued by one instance of the app can be redeemed on another; the
/// schema's table ([`SqlCodeTable`]), the sqlx adapter's too. Use it as
/// `PgCodeStore`, `MySqlCodeStore` or `SqliteCodeStore` over the token
/// store's pool; [`migrate`](Self::migrate) once at start-up.
pub struct DieselCodeStore<
    C: StoreConnection,
    P = diesel_async::pooled_connection::deadpool::Pool<C>,
> {
    pool: P,
    acquire_timeout: Duration,
    statements: Arc<CodeStatements>,
    _connection: PhantomData<fn() -> C>,
}

impl<C: StoreConnection, P: Clone> Clone for DieselCodeStore<C, P> {
    fn clone(&self) -> Self {
        DieselCodeStore {
            pool: self.pool.clone(),
            acquire_timeout: self.acquire_timeout,
            statements: Arc::clone(&self.statements),
            _connection: PhantomData,
        }
    }
}

impl<C: StoreConnection, P> fmt::Debug for DieselCodeStore<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool is left out: its configuration may hold a connection URL.
        f.debug_struct("DieselCodeStore")
            .field("backend", &C::DIALECT.name())
            .field("table", &self.statements.table())
            .field("acquire_timeout", &self.acquire_timeout)
            .finish_non_exhaustive()
    }
}

impl<C: StoreConnection, P: ConnectionPool<C>> DieselCodeStore<C, P> {
    /// A code store over `pool` (typically the token store's pool, cloned),
    /// in the table [`DEFAULT_CODES_TABLE`].
    pub fn new(pool: P) -> Self {
        DieselCodeStore {
            pool,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            statements: Arc::new(CodeStatements::new(C::DIALECT, DEFAULT_CODES_TABLE)),
            _connection: PhantomData,
        }
    }

    /// Uses another table (`app_login_codes`, or `schema.codes`). Fails
    /// with [`StoreError::Config`] when `name` is not a plain SQL
    /// identifier.
    pub fn with_table_name(mut self, name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        validate_identifier(&name)?;
        self.statements = Arc::new(CodeStatements::new(C::DIALECT, &name));
        Ok(self)
    }

    /// The code table.
    pub fn table_name(&self) -> &str {
        self.statements.table()
    }

    /// The migration creating this store's table, to run through a diesel
    /// migration harness of the host's choosing (see [`CodeMigrations`]).
    pub fn migrations(&self) -> CodeMigrations {
        CodeMigrations::new(self.table_name()).expect("a validated table name")
    }

    crate::pool::pooled_store_methods! {
        /// Creates the code table and its index on `expires_at` unless present
        /// (the migration
        /// [`create_mattermost_magic_link_codes_table`](crate::CODES_MIGRATION_NAME),
        /// recorded in diesel's `__diesel_schema_migrations`, see
        /// [`CodeMigrations`]). Call it once at start-up; running it again does
        /// nothing. Works on any tokio runtime.
        ///
        /// Errors: [`StoreError::Schema`], changing nothing, when a table of
        /// that name exists without the code table's columns;
        /// [`StoreError::Unavailable`] when the database cannot be reached;
        /// [`StoreError::ReadOnly`] when it refuses writes.
        migrate,
        /// Reverts [`migrate`](Self::migrate): drops the code table (every
        /// outstanding link stops working) and forgets the migration. Does
        /// nothing when it was not applied; a table of that name without the
        /// code table's columns is not dropped ([`StoreError::Schema`]).
        undo
    }
}

#[async_trait]
impl<C: StoreConnection, P: ConnectionPool<C>> SqlCodeTable for DieselCodeStore<C, P> {
    fn code_statements(&self) -> &CodeStatements {
        &self.statements
    }

    async fn code_write(
        &self,
        _what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<u64, StoreError> {
        let mut conn = self.connection().await?;
        let n = C::execute_sql(&mut conn, Sql::new(sql, params))
            .await
            .map_err(|e| query_error(e, self.cx()))?;
        Ok(n as u64)
    }

    async fn code_users(
        &self,
        _what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<(Option<String>, Option<String>)>, StoreError> {
        let mut conn = self.connection().await?;
        C::load_code_users(&mut conn, Sql::new(sql, params))
            .await
            .map_err(|e| query_error(e, self.cx()))
    }

    async fn take_locked(&self, _what: &'static str, params: &[Value]) -> Result<Take, StoreError> {
        let mut conn = self.connection().await?;
        let lock = Sql::new(self.statements.lock.as_str(), params);
        let delete = Sql::new(self.statements.delete.as_str(), &params[..1]);
        let result: diesel::QueryResult<_> = (*conn)
            .transaction(async move |conn: &mut C| {
                let Some(row) = conn.load_code_users(lock).await?.pop() else {
                    return Ok(None);
                };
                conn.execute_sql(delete).await?;
                Ok(Some(row))
            })
            .await;
        match result {
            Err(e) if ErrorClass::of_message(&e.to_string()) == ErrorClass::Deadlock => {
                Ok(Take::Deadlock)
            }
            other => other.map(Take::Done).map_err(|e| query_error(e, self.cx())),
        }
    }
}
