//! The store itself, written once for every backend: [`DieselTokenStore`].
//!
//! The table, its key column and the token expiry column are configurable,
//! so every statement is SQL text built when the store is configured (from
//! validated identifiers only, by the schema's [`StoreStatements`]) and run
//! with `diesel::sql_query` and bound values. What differs between
//! databases (how a statement reaches the driver) is the
//! [`StoreConnection`] implementation of each backend.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use diesel::QueryableByName;
use diesel::backend::Backend;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::result::{DatabaseErrorKind, Error as DieselError};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Nullable, Text};
#[cfg(doc)]
use mattermost_tokens::TokenStore;
use mattermost_tokens::store::schema::{
    KeyPolicy, SqlTokenTable, StoreStatements, UsersTable, UuidKeys, Value, Written,
};
use mattermost_tokens::{AccessToken, StoreError, TokenId, TokenRecord, UserId};

use crate::error::query_error;
use crate::group_commit::DieselBatch;
use crate::migration::TokenMigrations;
use crate::pool::ConnectionPool;
use mattermost_tokens::store::schema::Dialect;

/// How long a store waits for a connection before it reports
/// [`StoreError::Unavailable`], unless set with
/// [`DieselTokenStore::with_acquire_timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The connection types a store can run on: `diesel_async::AsyncPgConnection`,
/// `diesel_async::AsyncMysqlConnection` and
/// `SyncConnectionWrapper<diesel::SqliteConnection>` (see [`crate::sqlite`]).
/// Sealed: the SQL each needs lives in this crate.
pub trait StoreConnection: sealed::Connection {}

pub(crate) mod sealed {
    use std::future::Future;

    use diesel::QueryResult;
    use mattermost_tokens::StoreError;
    use mattermost_tokens::store::schema::Dialect;

    use mattermost_tokens::TokenRecord;

    use super::Sql;
    use crate::migration::Steps;

    /// What a backend provides to the shared store code.
    pub trait Connection: diesel_async::AsyncConnection + Send + 'static {
        /// Which SQL the database speaks.
        const DIALECT: Dialect;

        /// Runs a statement, returning the number of rows it matched.
        fn execute_sql(&mut self, sql: Sql) -> impl Future<Output = QueryResult<usize>> + Send;

        /// Runs a query returning records (`mmt_key` and the record).
        fn load_records(
            &mut self,
            sql: Sql,
        ) -> impl Future<Output = QueryResult<Vec<(String, TokenRecord)>>> + Send;

        /// Runs a query returning keys (`mmt_key`).
        fn load_keys(&mut self, sql: Sql) -> impl Future<Output = QueryResult<Vec<String>>> + Send;

        /// Runs one of the core's host-user queries.
        fn load_host_users(
            &mut self,
            sql: Sql,
        ) -> impl Future<Output = QueryResult<Vec<crate::host_users::HostRow>>> + Send;

        /// Runs a query returning codes' users (`host_user_id`,
        /// `host_user_kind`).
        fn load_code_users(
            &mut self,
            sql: Sql,
        ) -> impl Future<Output = QueryResult<Vec<(Option<String>, Option<String>)>>> + Send;

        /// Runs (or with `revert`, reverts) a migration on an owned
        /// connection. Blocking: call it from `spawn_blocking`.
        fn run_migrations(self, job: Steps, revert: bool) -> Result<(), StoreError>;
    }
}

/// A statement and its bound values, in placeholder order.
pub struct Sql {
    text: String,
    binds: Vec<Value>,
}

impl fmt::Debug for Sql {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The bound values may include a token.
        f.debug_struct("Sql")
            .field("text", &self.text)
            .field("binds", &self.binds.len())
            .finish()
    }
}

impl Sql {
    pub(crate) fn new(text: impl Into<String>, binds: &[Value]) -> Self {
        Sql {
            text: text.into(),
            binds: binds.to_vec(),
        }
    }

    /// The statement as a boxed diesel query with its values bound.
    pub(crate) fn into_query<DB>(self) -> BoxedSqlQuery<'static, DB, SqlQuery>
    where
        DB: Backend + HasSqlType<BigInt> + HasSqlType<Text>,
        i64: ToSql<BigInt, DB>,
        String: ToSql<Text, DB>,
    {
        let mut q = diesel::sql_query(self.text).into_boxed::<DB>();
        for b in self.binds {
            q = match b {
                Value::Int(i) => q.bind::<BigInt, _>(i),
                Value::NullInt => q.bind::<Nullable<BigInt>, _>(None::<i64>),
                Value::Text(s) => q.bind::<Text, _>(s),
            };
        }
        q
    }
}

/// One user's row, with the key read as text.
#[derive(QueryableByName)]
pub(crate) struct RecordRow {
    #[diesel(sql_type = Text)]
    mmt_key: String,
    #[diesel(sql_type = Nullable<Text>)]
    mattermost_user_id: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mattermost_token: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    mattermost_token_id: Option<String>,
    /// The expiry column, whatever its configured name.
    #[diesel(sql_type = Nullable<BigInt>)]
    mmt_token_expires_at: Option<i64>,
}

impl RecordRow {
    pub(crate) fn into_record(self) -> (String, TokenRecord) {
        let record = TokenRecord {
            mattermost_user_id: self.mattermost_user_id.map(UserId::new),
            token: self.mattermost_token.map(AccessToken::new),
            token_id: self.mattermost_token_id.map(TokenId::new),
            token_expires_at: self.mmt_token_expires_at,
        };
        (self.mmt_key, record)
    }
}

/// A key read as text.
#[derive(QueryableByName)]
pub(crate) struct KeyRow {
    #[diesel(sql_type = Text)]
    pub(crate) mmt_key: String,
}

/// A [`TokenStore`] over the host's own users table, on any backend this
/// crate supports. Use it through its backend's name:
/// [`PgTokenStore`](crate::PgTokenStore),
/// [`MySqlTokenStore`](crate::MySqlTokenStore),
/// [`SqliteTokenStore`](crate::SqliteTokenStore).
///
/// `C` is the connection type, `P` the pool it comes from (diesel-async's
/// deadpool pool by default; any [`ConnectionPool`] works).
///
/// By default the table is `users`, its key column `id`, of type
/// [`KeyType::Integer`](crate::KeyType::Integer). The store reads and writes four nullable columns
/// that [`migrate`](Self::migrate) adds: `mattermost_user_id`,
/// `mattermost_token`, `mattermost_token_id` and the token's expiry in
/// milliseconds since the Unix epoch, `mattermost_token_expires_at`
/// (another name with [`with_expiry_column`](Self::with_expiry_column)),
/// and relies on the unique index on `mattermost_user_id` that it also
/// adds: a write that would link a Mattermost user to a second host user
/// fails with [`StoreError::AlreadyLinked`]. It never inserts or deletes
/// rows.
pub struct DieselTokenStore<
    C: StoreConnection,
    P = diesel_async::pooled_connection::deadpool::Pool<C>,
> {
    pool: Arc<P>,
    acquire_timeout: Duration,
    sql: Arc<StoreStatements>,
    /// SQLite's writes, batched (see `group_commit`); shared by clones.
    group: Option<crate::group_commit::Group>,
    _connection: PhantomData<fn() -> C>,
}

impl<C: StoreConnection, P> Clone for DieselTokenStore<C, P> {
    fn clone(&self) -> Self {
        DieselTokenStore {
            pool: Arc::clone(&self.pool),
            acquire_timeout: self.acquire_timeout,
            sql: Arc::clone(&self.sql),
            group: self.group.clone(),
            _connection: PhantomData,
        }
    }
}

impl<C: StoreConnection, P> fmt::Debug for DieselTokenStore<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool is left out: its configuration may hold a connection URL.
        let t = self.sql.users_table();
        f.debug_struct("DieselTokenStore")
            .field("backend", &C::DIALECT.name())
            .field("table", &t.table())
            .field("key_column", &t.key_column())
            .field("key_type", &t.key_type())
            .field("expiry_column", &t.expiry_column())
            .field("acquire_timeout", &self.acquire_timeout)
            .finish_non_exhaustive()
    }
}

impl<C: StoreConnection, P: ConnectionPool<C>> DieselTokenStore<C, P> {
    /// A store over `pool`, for table `users` keyed by `id` ([`KeyType::Integer`](crate::KeyType::Integer)).
    pub fn new(pool: P) -> Self {
        let pool = Arc::new(pool);
        // SQLite's writes that queue while one commits are committed together
        // (the batch waits DEFAULT_ACQUIRE_TIMEOUT for its connection).
        let group = (C::DIALECT == Dialect::Sqlite).then(|| {
            crate::group_commit::group(DieselBatch {
                pool: Arc::clone(&pool),
                acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
                _conn: PhantomData,
            })
        });
        DieselTokenStore {
            pool,
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            sql: Arc::new(StoreStatements::new(C::DIALECT, &UsersTable::default())),
            group,
            _connection: PhantomData,
        }
    }

    mattermost_tokens::users_table_methods!();

    fn rendered(mut self, t: UsersTable) -> Self {
        self.sql = Arc::new(StoreStatements::new(C::DIALECT, &t));
        self
    }

    /// The migrations for this store's table and expiry column, to run
    /// through a diesel migration harness of the host's choosing (see
    /// [`TokenMigrations`]).
    pub fn migrations(&self) -> TokenMigrations {
        TokenMigrations::for_store(self.users_table())
    }

    /// Adds the token columns to the users table unless present, then the
    /// unique index on `mattermost_user_id`, then the token expiry column
    /// (the migrations are recorded in diesel's
    /// `__diesel_schema_migrations`, see [`TokenMigrations`]). Call it once
    /// at start-up; running it again does nothing. A table migrated by an
    /// earlier version of this crate, or by the sqlx adapter, gets the
    /// migrations it lacks.
    ///
    /// Works on any tokio runtime: the blocking migration harness runs on
    /// tokio's blocking pool with a connection of its own.
    ///
    /// Errors: [`StoreError::Schema`] when the table does not exist, its key
    /// column does not suit the [`KeyType`](crate::KeyType), it has a column of one of
    /// those names whose type cannot hold the value (or that is
    /// `NOT NULL`), or it has rows sharing a `mattermost_user_id` (the index
    /// is not created then, the expiry column still is; the message says
    /// how many ids and how to find them); [`StoreError::Unavailable`] when
    /// the database cannot be reached; [`StoreError::ReadOnly`] when it
    /// refuses writes.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.run_migrations(false).await
    }

    /// Reverts [`migrate`](Self::migrate): drops the expiry column and the
    /// unique index if the migrations created them, then the token columns
    /// that the migration added (columns that were there before it ran,
    /// such as a Laravel `mattermost_token`, are kept) and forgets the
    /// migrations.
    pub async fn undo_migration(&self) -> Result<(), StoreError> {
        self.run_migrations(true).await
    }

    crate::pool::pooled_store_methods!();
}

#[async_trait]
impl<C: StoreConnection, P: ConnectionPool<C>> SqlTokenTable for DieselTokenStore<C, P> {
    fn statements(&self) -> &StoreStatements {
        &self.sql
    }

    // A key of the other kind, or a UUID key that is not one, names no row
    // of this table.
    const KEY_POLICY: KeyPolicy = KeyPolicy {
        text_uuids: UuidKeys::Checked,
        strict: false,
    };

    async fn write(
        &self,
        _what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Written, StoreError> {
        let result = match &self.group {
            Some(group) => match group((sql.to_owned(), params.to_vec())).await {
                Ok(n) => Ok(n),
                Err(f) => Err(f.into_store_error(C::DIALECT.name(), self.table_name())?),
            },
            None => {
                let mut conn = self.connection().await?;
                C::execute_sql(&mut conn, Sql::new(sql, params))
                    .await
                    .map(|n| n as u64)
            }
        };
        match result {
            Ok(n) => Ok(Written::Rows(n)),
            Err(DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, info)) => {
                let named = info.constraint_name().map(str::to_owned);
                Ok(Written::UniqueViolation(named))
            }
            Err(e) => Err(query_error(e, self.cx())),
        }
    }

    async fn read(
        &self,
        _what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<(String, TokenRecord)>, StoreError> {
        let mut conn = self.connection().await?;
        C::load_records(&mut conn, Sql::new(sql, params))
            .await
            .map_err(|e| query_error(e, self.cx()))
    }

    async fn read_keys(
        &self,
        _what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Vec<String>, StoreError> {
        let mut conn = self.connection().await?;
        C::load_keys(&mut conn, Sql::new(sql, params))
            .await
            .map_err(|e| query_error(e, self.cx()))
    }
}
