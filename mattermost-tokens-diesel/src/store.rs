//! The store itself, written once for every backend: [`DieselTokenStore`].
//! Its statements are the schema's ([`StoreStatements`]), run with
//! `diesel::sql_query` and bound values through each backend's
//! [`StoreConnection`].

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
    Dialect, KeyPolicy, SqlTokenTable, StoreStatements, UsersTable, UuidKeys, Value, Written,
};
use mattermost_tokens::{AccessToken, StoreError, TokenId, TokenRecord, UserId};

use crate::error::query_error;
use crate::group_commit::DieselBatch;
use crate::migration::TokenMigrations;
use crate::pool::ConnectionPool;

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
    use crate::migration::TokenMigrations;

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
        fn run_migrations(self, job: TokenMigrations, revert: bool) -> Result<(), StoreError>;
    }
}

/// A statement and its bound values, in placeholder order (`Value`'s
/// `Debug` shows no text: a value may be a token).
#[derive(Debug)]
pub struct Sql {
    text: String,
    binds: Vec<Value>,
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

crate::backend::text_rows! {
    /// A key read as text.
    KeyRow { mmt_key }
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
/// [`KeyType::Integer`](crate::KeyType::Integer). The store reads and
/// writes the nullable columns [`migrate`](Self::migrate) adds (see
/// [`schema`](mattermost_tokens::store::schema)); a write that would link a
/// Mattermost user to a second host user fails with
/// [`StoreError::AlreadyLinked`]. It never inserts or deletes rows.
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
        f.debug_struct("DieselTokenStore")
            .field("backend", &C::DIALECT.name())
            .field("table", self.sql.users_table())
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

    crate::pool::pooled_store_methods! {
        /// Runs the [`migrations`](Self::migrations) this table lacks (see
        /// [`TokenMigrations::run`] for what each does and how it fails),
        /// under the database's migration lock, with a connection of its own
        /// on tokio's blocking pool (any tokio runtime). Call it once at
        /// start-up; running it again does nothing. A table migrated by an
        /// earlier version, or by the sqlx adapter, gets only what it lacks.
        /// Also [`StoreError::Unavailable`] when the database cannot be
        /// reached and [`StoreError::ReadOnly`] when it refuses writes.
        migrate,
        /// Reverts [`migrate`](Self::migrate) (see
        /// [`TokenMigrations::revert`]): columns that were there before it
        /// ran, such as a Laravel `mattermost_token`, are kept.
        undo
    }
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
        what: &'static str,
        sql: &str,
        params: &[Value],
    ) -> Result<Written, StoreError> {
        let result = match &self.group {
            Some(group) => match group((sql.to_owned(), params.to_vec())).await {
                Ok(n) => Ok(n),
                Err(f) => Err(f.statement_error(what, C::DIALECT.name(), self.table_name())?),
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
