//! The store itself, written once for every backend: [`DieselTokenStore`].
//!
//! The table, its key column and the token expiry column are configurable,
//! so every statement is SQL text built when the store is configured (from
//! validated identifiers only) and run with `diesel::sql_query` and bound
//! values. What differs between databases (placeholders, casts, how a
//! statement reaches the driver) is the [`StoreConnection`] implementation
//! in each backend's module.

use std::collections::HashMap;
use std::fmt;
use std::marker::PhantomData;
use std::time::Duration;

use async_trait::async_trait;
use diesel::QueryableByName;
use diesel::backend::Backend;
use diesel::query_builder::{BoxedSqlQuery, SqlQuery};
use diesel::serialize::ToSql;
use diesel::sql_types::{BigInt, HasSqlType, Nullable, Text};
use mattermost_tokens::store::{validate_column_name, validate_identifier};
use mattermost_tokens::{
    AccessToken, HostUserId, MissingPage, NewToken, StoreError, TokenId, TokenRecord, TokenStore,
    UserId,
};

use crate::error::{ErrorContext, is_unique_violation, query_error};
use crate::migration::{DEFAULT_EXPIRY_COLUMN, Job, TokenMigrations, validate_expiry_column};
use crate::pool::ConnectionPool;

/// How many keys one `IN (...)` list of [`TokenStore::get_many`] holds. Far
/// below every backend's bind limit (SQLite 32766, PostgreSQL and MySQL
/// 65535), small enough for a quick plan.
const GET_MANY_CHUNK: usize = 500;

/// How long a store waits for a connection before it reports
/// [`StoreError::Unavailable`], unless set with
/// [`DieselTokenStore::with_acquire_timeout`].
pub const DEFAULT_ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);

/// The SQL type of the host's user key column.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum KeyType {
    /// An integer key (`BIGINT`, `INTEGER`, `SERIAL`, Laravel's
    /// `BIGINT UNSIGNED`): users are [`HostUserId::Int`]. The default.
    #[default]
    Integer,
    /// A text key (`TEXT`, `VARCHAR`, MySQL `CHAR(36)` UUIDs): users are
    /// [`HostUserId::Text`].
    Text,
    /// A PostgreSQL `uuid` column: users are [`HostUserId::Text`] holding a
    /// UUID, and the store casts it. On MySQL and SQLite, where UUIDs are
    /// stored as text, this is [`KeyType::Text`] that also checks the shape.
    Uuid,
}

/// The connection types a store can run on: `diesel_async::AsyncPgConnection`,
/// `diesel_async::AsyncMysqlConnection` and
/// `SyncConnectionWrapper<diesel::SqliteConnection>` (see [`crate::sqlite`]).
/// Sealed: the SQL each needs lives in this crate.
pub trait StoreConnection: sealed::Connection {}

pub(crate) mod sealed {
    use std::future::Future;

    use diesel::QueryResult;
    use mattermost_tokens::StoreError;

    use super::{KeyRow, KeyType, RecordRow, Sql};
    use crate::code_store::{CodeStatements, CodeUserRow};
    use crate::migration::Job;

    /// What a backend provides to the shared store code.
    pub trait Connection: diesel_async::AsyncConnection + Send + 'static {
        /// The database's name in messages.
        const BACKEND: &'static str;

        /// The placeholder of the `n`-th bound value (1-based).
        fn placeholder(n: usize) -> String;

        /// An expression reading `column` (the key) as text.
        fn key_as_text(column: &str) -> String;

        /// The expression comparing a key against `placeholder`.
        fn key_param(placeholder: String, key_type: KeyType) -> String {
            let _ = key_type;
            placeholder
        }

        /// Runs a statement, returning the number of rows it matched.
        fn execute_sql(&mut self, sql: Sql) -> impl Future<Output = QueryResult<usize>> + Send;

        /// Runs a query returning records.
        fn load_records(
            &mut self,
            sql: Sql,
        ) -> impl Future<Output = QueryResult<Vec<RecordRow>>> + Send;

        /// Runs a query returning keys.
        fn load_keys(&mut self, sql: Sql) -> impl Future<Output = QueryResult<Vec<KeyRow>>> + Send;

        /// Runs a query returning host users.
        fn load_host_users(
            &mut self,
            sql: Sql,
        ) -> impl Future<Output = QueryResult<Vec<crate::host_users::HostRow>>> + Send;

        /// Runs a query returning a code's user.
        fn load_code_users(
            &mut self,
            sql: Sql,
        ) -> impl Future<Output = QueryResult<Vec<CodeUserRow>>> + Send;

        /// Deletes the code with hash `hash` if `expires_at > now`, returning
        /// its user: atomically, so that of any number of concurrent calls
        /// at most one sees the user.
        fn consume_code(
            &mut self,
            statements: &CodeStatements,
            hash: String,
            now: i64,
        ) -> impl Future<Output = QueryResult<Option<CodeUserRow>>> + Send;

        /// Runs (or with `revert`, reverts) a migration on an owned
        /// connection. Blocking: call it from `spawn_blocking`.
        fn run_migrations(self, job: Job, revert: bool) -> Result<(), StoreError>;
    }
}

/// A statement and its bound values, in placeholder order.
pub struct Sql {
    text: String,
    binds: Vec<Bind>,
}

/// A value bound to a placeholder (possibly a token: no `Debug`).
#[derive(Clone)]
pub(crate) enum Bind {
    Int(i64),
    /// A nullable `BIGINT` (`NULL` for `None`).
    OptInt(Option<i64>),
    Text(String),
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
    pub(crate) fn new(text: impl Into<String>, binds: Vec<Bind>) -> Self {
        Sql {
            text: text.into(),
            binds,
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
                Bind::Int(i) => q.bind::<BigInt, _>(i),
                Bind::OptInt(i) => q.bind::<Nullable<BigInt>, _>(i),
                Bind::Text(s) => q.bind::<Text, _>(s),
            };
        }
        q
    }
}

/// One user's row, with the key read as text (it holds a token: no
/// `Debug`).
#[derive(QueryableByName)]
pub struct RecordRow {
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

impl fmt::Debug for RecordRow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecordRow")
            .field("mmt_key", &self.mmt_key)
            .field("mattermost_user_id", &self.mattermost_user_id)
            .field(
                "mattermost_token",
                &self.mattermost_token.as_ref().map(|_| "[REDACTED]"),
            )
            .field("mattermost_token_id", &self.mattermost_token_id)
            .field("mmt_token_expires_at", &self.mmt_token_expires_at)
            .finish()
    }
}

impl RecordRow {
    fn into_record(self) -> TokenRecord {
        TokenRecord {
            mattermost_user_id: self.mattermost_user_id.map(UserId::new),
            token: self.mattermost_token.map(AccessToken::new),
            token_id: self.mattermost_token_id.map(TokenId::new),
            token_expires_at: self.mmt_token_expires_at,
        }
    }
}

/// A key read as text.
#[derive(QueryableByName, Debug)]
pub struct KeyRow {
    #[diesel(sql_type = Text)]
    mmt_key: String,
}

/// The statements of one configured store.
#[derive(Clone, Debug)]
struct Statements {
    select_prefix: String,
    get: String,
    set_user_id: String,
    put_if_absent: String,
    put: String,
    replace: String,
    clear: String,
    clear_orphan_id: String,
    list_first: String,
    list_after: String,
}

impl Statements {
    /// The statements for `table`, keyed by `key` of type `key_type`, with
    /// the token's expiry in column `expires_at`.
    fn render<C: StoreConnection>(
        table: &str,
        key: &str,
        key_type: KeyType,
        expires_at: &str,
    ) -> Self {
        let p = C::placeholder;
        let k = |n| C::key_param(C::placeholder(n), key_type);
        let select_prefix = format!(
            "SELECT {} AS mmt_key, mattermost_user_id, mattermost_token, mattermost_token_id, \
             {expires_at} AS mmt_token_expires_at FROM {table} WHERE {key}",
            C::key_as_text(key)
        );
        // The token, its id and its expiry in one statement: a write that
        // its condition refuses changes none of them.
        let set_all = format!(
            "UPDATE {table} SET mattermost_user_id = {}, mattermost_token = {}, mattermost_token_id = {}, \
             {expires_at} = {} WHERE {key} = {}",
            p(1),
            p(2),
            p(3),
            p(4),
            k(5)
        );
        let list = format!(
            "SELECT {} AS mmt_key FROM {table} WHERE mattermost_token IS NULL",
            C::key_as_text(key)
        );
        Statements {
            get: format!("{select_prefix} = {}", k(1)),
            select_prefix,
            set_user_id: format!(
                "UPDATE {table} SET mattermost_user_id = {} WHERE {key} = {}",
                p(1),
                k(2)
            ),
            put_if_absent: format!("{set_all} AND mattermost_token IS NULL"),
            replace: format!("{set_all} AND mattermost_token_id = {}", p(6)),
            put: set_all,
            clear: format!(
                "UPDATE {table} SET mattermost_token = NULL, mattermost_token_id = NULL, {expires_at} = NULL \
                 WHERE {key} = {} AND mattermost_token IS NOT NULL",
                k(1)
            ),
            clear_orphan_id: format!(
                "UPDATE {table} SET mattermost_token_id = NULL, {expires_at} = NULL \
                 WHERE {key} = {} AND mattermost_token IS NULL",
                k(1)
            ),
            list_first: format!("{list} ORDER BY {key}"),
            list_after: format!("{list} AND {key} > {} ORDER BY {key}", k(1)),
        }
    }

    fn get_many<C: StoreConnection>(&self, n: usize, key_type: KeyType) -> String {
        let list: Vec<String> = (1..=n)
            .map(|i| C::key_param(C::placeholder(i), key_type))
            .collect();
        format!("{} IN ({})", self.select_prefix, list.join(", "))
    }
}

/// A [`TokenStore`] over the host's own users table, on any backend this
/// crate supports. Use it through its backend's name:
/// [`PgTokenStore`](crate::postgres::PgTokenStore),
/// [`MysqlTokenStore`](crate::mysql::MysqlTokenStore),
/// [`SqliteTokenStore`](crate::sqlite::SqliteTokenStore).
///
/// `C` is the connection type, `P` the pool it comes from (diesel-async's
/// deadpool pool by default; any [`ConnectionPool`] works).
///
/// By default the table is `users`, its key column `id`, of type
/// [`KeyType::Integer`]. The store reads and writes four nullable columns
/// that [`migrate`](Self::migrate) adds: `mattermost_user_id`,
/// `mattermost_token`, `mattermost_token_id` and the token's expiry in
/// milliseconds since the Unix epoch, `mattermost_token_expires_at`
/// (another name with [`with_expiry_column`](Self::with_expiry_column)),
/// and relies on the unique index on `mattermost_user_id` that it also
/// adds: a write that would link
/// a Mattermost user to a second host user fails with
/// [`StoreError::AlreadyLinked`]. It never inserts or deletes rows.
pub struct DieselTokenStore<
    C: StoreConnection,
    P = diesel_async::pooled_connection::deadpool::Pool<C>,
> {
    pool: P,
    table: String,
    key_column: String,
    key_type: KeyType,
    expiry_column: String,
    acquire_timeout: Duration,
    statements: Statements,
    _connection: PhantomData<fn() -> C>,
}

impl<C: StoreConnection, P: Clone> Clone for DieselTokenStore<C, P> {
    fn clone(&self) -> Self {
        DieselTokenStore {
            pool: self.pool.clone(),
            table: self.table.clone(),
            key_column: self.key_column.clone(),
            key_type: self.key_type,
            expiry_column: self.expiry_column.clone(),
            acquire_timeout: self.acquire_timeout,
            statements: self.statements.clone(),
            _connection: PhantomData,
        }
    }
}

impl<C: StoreConnection, P> fmt::Debug for DieselTokenStore<C, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The pool is left out: its configuration may hold a connection URL.
        f.debug_struct("DieselTokenStore")
            .field("backend", &C::BACKEND)
            .field("table", &self.table)
            .field("key_column", &self.key_column)
            .field("key_type", &self.key_type)
            .field("expiry_column", &self.expiry_column)
            .field("acquire_timeout", &self.acquire_timeout)
            .finish_non_exhaustive()
    }
}

impl<C: StoreConnection, P: ConnectionPool<C>> DieselTokenStore<C, P> {
    /// A store over `pool`, for table `users` keyed by `id` ([`KeyType::Integer`]).
    pub fn new(pool: P) -> Self {
        DieselTokenStore {
            pool,
            table: "users".to_owned(),
            key_column: "id".to_owned(),
            key_type: KeyType::Integer,
            expiry_column: DEFAULT_EXPIRY_COLUMN.to_owned(),
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            statements: Statements::render::<C>(
                "users",
                "id",
                KeyType::Integer,
                DEFAULT_EXPIRY_COLUMN,
            ),
            _connection: PhantomData,
        }
    }

    /// Uses another users table (`app_users`, or `schema.users`). Fails with
    /// [`StoreError::Config`] when `name` is not a plain SQL identifier.
    pub fn with_table_name(mut self, name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        validate_identifier(&name)?;
        self.table = name;
        Ok(self.rerender())
    }

    /// Uses another key column than `id`. Fails with [`StoreError::Config`]
    /// when `name` is not a plain SQL identifier (no `schema.` prefix), or
    /// is the expiry column.
    pub fn with_key_column(mut self, name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        validate_column_name(&name)?;
        if name.eq_ignore_ascii_case(&self.expiry_column) {
            return Err(StoreError::Config(format!(
                "key column {name:?} is the token expiry column"
            )));
        }
        self.key_column = name;
        Ok(self.rerender())
    }

    /// Uses another column than `mattermost_token_expires_at`
    /// ([`DEFAULT_EXPIRY_COLUMN`](crate::DEFAULT_EXPIRY_COLUMN)) for
    /// when the stored token expires (a nullable `BIGINT` of milliseconds
    /// since the Unix epoch), for reads, writes and
    /// [`migrate`](Self::migrate) alike. Fails with [`StoreError::Config`]
    /// when `name` is not a plain SQL identifier (no `schema.` prefix), or
    /// names one of the three token columns or the key column.
    pub fn with_expiry_column(mut self, name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        validate_expiry_column(&name)?;
        if name.eq_ignore_ascii_case(&self.key_column) {
            return Err(StoreError::Config(format!(
                "expiry column {name:?} is the key column"
            )));
        }
        self.expiry_column = name;
        Ok(self.rerender())
    }

    /// Sets the SQL type of the key column (default [`KeyType::Integer`]).
    pub fn with_key_type(mut self, key_type: KeyType) -> Self {
        self.key_type = key_type;
        self.rerender()
    }

    /// How long an operation waits for a connection before failing with
    /// [`StoreError::Unavailable`] (default [`DEFAULT_ACQUIRE_TIMEOUT`]).
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The pool the store takes its connections from.
    pub fn pool(&self) -> &P {
        &self.pool
    }

    /// The users table this store works on.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The key column of the users table.
    pub fn key_column(&self) -> &str {
        &self.key_column
    }

    /// The SQL type of the key column.
    pub fn key_type(&self) -> KeyType {
        self.key_type
    }

    /// The column holding when the stored token expires.
    pub fn expiry_column(&self) -> &str {
        &self.expiry_column
    }

    /// The migrations for this store's table and expiry column, to run
    /// through a diesel migration harness of the host's choosing (see
    /// [`TokenMigrations`]).
    pub fn migrations(&self) -> TokenMigrations {
        TokenMigrations::for_validated(&self.table, &self.expiry_column)
    }

    /// Adds the token columns to the users table unless present, then the
    /// unique index on `mattermost_user_id`, then the token expiry column
    /// (the migrations are recorded in diesel's
    /// `__diesel_schema_migrations`, see [`TokenMigrations`]). Call it once
    /// at start-up; running it again does nothing. A table migrated by an
    /// earlier version of this crate gets the migrations it lacks.
    ///
    /// Works on any tokio runtime: the blocking migration harness runs on
    /// tokio's blocking pool with a connection of its own.
    ///
    /// Errors: [`StoreError::Schema`] when the table does not exist, has a
    /// column of one of those names whose type cannot hold the value (or
    /// that is `NOT NULL`), or has rows sharing a `mattermost_user_id` (the
    /// index is not created then, the expiry column still is; the message
    /// says how many ids and how to find them);
    /// [`StoreError::Unavailable`] when the database cannot be reached;
    /// [`StoreError::ReadOnly`] when it refuses writes.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.run_migrations(false).await
    }

    /// Reverts [`migrate`](Self::migrate): drops the expiry column and the
    /// unique index if the migrations created them, then the token columns
    /// that the migration added (columns that were there before it ran,
    /// such as a Laravel `mattermost_token`, are kept) and forgets the
    /// migrations.
    pub async fn revert_migration(&self) -> Result<(), StoreError> {
        self.run_migrations(true).await
    }

    async fn run_migrations(&self, revert: bool) -> Result<(), StoreError> {
        run_job(
            &self.pool,
            self.acquire_timeout,
            Job::Tokens(self.migrations()),
            revert,
        )
        .await
    }

    fn rerender(mut self) -> Self {
        self.statements = Statements::render::<C>(
            &self.table,
            &self.key_column,
            self.key_type,
            &self.expiry_column,
        );
        self
    }

    fn cx(&self) -> ErrorContext<'_> {
        ErrorContext {
            backend: C::BACKEND,
            table: &self.table,
        }
    }

    async fn connection(&self) -> Result<P::Connection, StoreError> {
        timed::<C, _>(self.acquire_timeout, self.pool.connection()).await
    }

    /// The bound value for a user's key, or `None` when the key cannot be in
    /// this table (an integer key in a text-keyed table, text in an integer
    /// one, a malformed UUID): such users do not exist.
    fn key_bind(&self, user: &HostUserId) -> Option<Bind> {
        match (self.key_type, user) {
            (KeyType::Integer, HostUserId::Int(i)) => Some(Bind::Int(*i)),
            (KeyType::Text, HostUserId::Text(s)) => Some(Bind::Text(s.clone())),
            // Bound as given: PostgreSQL's cast reads any UUID spelling, and
            // MySQL/SQLite compare the text as stored.
            (KeyType::Uuid, HostUserId::Text(s)) => {
                canonical_uuid(s).map(|_| Bind::Text(s.clone()))
            }
            _ => None,
        }
    }

    /// The form in which a requested key and a key read back are matched
    /// (UUIDs: canonical, whatever the spelling).
    fn match_key(&self, text: &str) -> String {
        match self.key_type {
            KeyType::Uuid => canonical_uuid(text).unwrap_or_else(|| text.to_owned()),
            _ => text.to_owned(),
        }
    }

    fn parse_key(&self, text: String) -> Result<HostUserId, StoreError> {
        match self.key_type {
            KeyType::Integer => text.trim().parse().map(HostUserId::Int).map_err(|_| {
                StoreError::Database {
                    message: format!(
                        "{}: key column {}.{} holds a non-integer value; configure KeyType::Text",
                        C::BACKEND,
                        self.table,
                        self.key_column
                    ),
                    source: None,
                }
            }),
            KeyType::Text | KeyType::Uuid => Ok(HostUserId::Text(text)),
        }
    }

    async fn execute(&self, conn: &mut P::Connection, sql: Sql) -> Result<usize, StoreError> {
        C::execute_sql(conn, sql)
            .await
            .map_err(|e| query_error(e, self.cx()))
    }

    async fn fetch(
        &self,
        conn: &mut P::Connection,
        key: Bind,
    ) -> Result<Option<TokenRecord>, StoreError> {
        let rows = C::load_records(conn, Sql::new(self.statements.get.clone(), vec![key]))
            .await
            .map_err(|e| query_error(e, self.cx()))?;
        Ok(rows.into_iter().next().map(RecordRow::into_record))
    }

    /// Runs an update of one user's row; when it matched no row, tells an
    /// unknown user from one whose row the condition excluded (by reading
    /// the row, which `decide` then judges).
    ///
    /// `links` is the Mattermost user id the statement writes, if any: the
    /// unique index refusing it (another row holds it) is
    /// [`StoreError::AlreadyLinked`], and the statement changed nothing.
    #[allow(clippy::too_many_arguments)]
    async fn update_row<T>(
        &self,
        user: &HostUserId,
        statement: &str,
        mut binds: Vec<Bind>,
        key_position: usize,
        links: Option<&UserId>,
        on_match: T,
        decide: impl FnOnce(&TokenRecord) -> T,
    ) -> Result<(T, TokenRecord), StoreError> {
        let key = self
            .key_bind(user)
            .ok_or_else(|| StoreError::UnknownUser(user.clone()))?;
        binds.insert(key_position, key.clone());
        let mut conn = self.connection().await?;
        let n = match C::execute_sql(&mut conn, Sql::new(statement.to_owned(), binds)).await {
            Ok(n) => n,
            Err(e) => {
                return Err(match links {
                    // Only the token columns are written, so the unique index
                    // the statement hit is the one on mattermost_user_id (or
                    // a host's own index on it).
                    Some(mattermost_user_id) if is_unique_violation(&e) => {
                        StoreError::AlreadyLinked {
                            user: user.clone(),
                            mattermost_user_id: mattermost_user_id.clone(),
                        }
                    }
                    _ => query_error(e, self.cx()),
                });
            }
        };
        if n > 0 {
            return Ok((on_match, TokenRecord::default()));
        }
        // No row matched. MySQL/MariaDB may also say 0 for a row that matched
        // but already held the values (when the connection does not ask for
        // found rows), so `decide` looks at what is stored.
        match self.fetch(&mut conn, key).await? {
            None => Err(StoreError::UnknownUser(user.clone())),
            Some(rec) => Ok((decide(&rec), rec)),
        }
    }
}

/// `fut` (getting a connection), failing with [`StoreError::Unavailable`]
/// after `timeout`.
pub(crate) async fn timed<C: StoreConnection, T>(
    timeout: Duration,
    fut: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match tokio::time::timeout(timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err(StoreError::Unavailable {
            message: format!("{}: no database connection within {timeout:?}", C::BACKEND),
            source: None,
        }),
    }
}

/// Runs (or reverts) a migration with a connection of its own from `pool`,
/// on tokio's blocking pool (diesel's migration harness blocks).
pub(crate) async fn run_job<C: StoreConnection, P: ConnectionPool<C>>(
    pool: &P,
    acquire_timeout: Duration,
    job: Job,
    revert: bool,
) -> Result<(), StoreError> {
    let conn = timed::<C, _>(acquire_timeout, pool.dedicated()).await?;
    tokio::task::spawn_blocking(move || conn.run_migrations(job, revert))
        .await
        .map_err(|e| {
            StoreError::database(
                format!("{}: the migration task failed", C::BACKEND),
                crate::error::Internal(e.to_string()),
            )
        })?
}

/// Where the key goes among [`token_binds`] in the statements that write a
/// token: after the four values.
const TOKEN_KEY_POSITION: usize = 4;

/// The values a token write binds, in placeholder order: user id, token,
/// token id, expiry (`NULL` when the token does not expire).
fn token_binds(t: &NewToken) -> Vec<Bind> {
    vec![
        Bind::Text(t.mattermost_user_id.as_str().to_owned()),
        Bind::Text(t.token.expose_secret().to_owned()),
        Bind::Text(t.token_id.as_str().to_owned()),
        Bind::OptInt(t.expires_at),
    ]
}

fn holds(rec: &TokenRecord, t: &NewToken) -> bool {
    rec.mattermost_user_id.as_ref() == Some(&t.mattermost_user_id)
        && rec.token_id.as_ref() == Some(&t.token_id)
        && rec.token_expires_at == t.expires_at
        && rec.token.as_ref().is_some_and(|v| v.ct_eq(&t.token))
}

/// `s` as a lowercase hyphenated UUID, or `None` when it is not one
/// (PostgreSQL would reject it with an error instead of finding no user).
fn canonical_uuid(s: &str) -> Option<String> {
    let inner = s
        .strip_prefix('{')
        .and_then(|x| x.strip_suffix('}'))
        .unwrap_or(s);
    let hex: String = inner.chars().filter(|c| *c != '-').collect();
    if hex.len() != 32 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    let h = hex.to_ascii_lowercase();
    Some(format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    ))
}

#[async_trait]
impl<C: StoreConnection, P: ConnectionPool<C>> TokenStore for DieselTokenStore<C, P> {
    async fn get(&self, user: &HostUserId) -> Result<Option<TokenRecord>, StoreError> {
        let Some(key) = self.key_bind(user) else {
            return Ok(None);
        };
        let mut conn = self.connection().await?;
        self.fetch(&mut conn, key).await
    }

    async fn get_many(
        &self,
        users: &[HostUserId],
    ) -> Result<HashMap<HostUserId, TokenRecord>, StoreError> {
        // Distinct binds, each remembering which requested ids it answers.
        let mut wanted: HashMap<String, Vec<&HostUserId>> = HashMap::new();
        let mut binds = Vec::new();
        for u in users {
            if let Some(b) = self.key_bind(u) {
                let text = match &b {
                    Bind::Int(i) => i.to_string(),
                    Bind::Text(s) => self.match_key(s),
                    // Keys are never nullable.
                    Bind::OptInt(i) => i.map(|i| i.to_string()).unwrap_or_default(),
                };
                let entry = wanted.entry(text).or_default();
                if entry.is_empty() {
                    binds.push(b);
                }
                entry.push(u);
            }
        }
        let mut out = HashMap::with_capacity(binds.len());
        if binds.is_empty() {
            return Ok(out);
        }
        let mut conn = self.connection().await?;
        for chunk in binds.chunks(GET_MANY_CHUNK) {
            let sql = Sql::new(
                self.statements.get_many::<C>(chunk.len(), self.key_type),
                chunk.to_vec(),
            );
            let rows = C::load_records(&mut conn, sql)
                .await
                .map_err(|e| query_error(e, self.cx()))?;
            for row in rows {
                let key = self.match_key(&row.mmt_key);
                // A case-insensitive collation (MySQL's default) can return
                // a key spelled otherwise than asked: match it loosely then.
                let asked = match wanted.get(&key) {
                    Some(a) => a.clone(),
                    None => wanted
                        .iter()
                        .filter(|(k, _)| k.eq_ignore_ascii_case(&key))
                        .flat_map(|(_, v)| v.iter().copied())
                        .collect(),
                };
                let rec = row.into_record();
                for u in asked {
                    out.entry(u.clone()).or_insert_with(|| rec.clone());
                }
            }
        }
        Ok(out)
    }

    async fn set_mattermost_user_id(
        &self,
        user: &HostUserId,
        mattermost_user_id: &UserId,
    ) -> Result<(), StoreError> {
        let binds = vec![Bind::Text(mattermost_user_id.as_str().to_owned())];
        self.update_row(
            user,
            &self.statements.set_user_id,
            binds,
            1,
            Some(mattermost_user_id),
            (),
            |_| (),
        )
        .await
        .map(|_| ())
    }

    async fn put_token_if_absent(
        &self,
        user: &HostUserId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        // Setting a NULL token always changes the row, so 0 rows means a
        // token was there (or no such user).
        let (won, _) = self
            .update_row(
                user,
                &self.statements.put_if_absent,
                token_binds(token),
                TOKEN_KEY_POSITION,
                Some(&token.mattermost_user_id),
                true,
                |_| false,
            )
            .await?;
        Ok(won)
    }

    async fn put_token(&self, user: &HostUserId, token: &NewToken) -> Result<(), StoreError> {
        self.update_row(
            user,
            &self.statements.put,
            token_binds(token),
            TOKEN_KEY_POSITION,
            Some(&token.mattermost_user_id),
            (),
            |_| (),
        )
        .await
        .map(|_| ())
    }

    async fn replace_token(
        &self,
        user: &HostUserId,
        expected: &TokenId,
        token: &NewToken,
    ) -> Result<bool, StoreError> {
        let mut binds = token_binds(token);
        binds.push(Bind::Text(expected.as_str().to_owned()));
        let (replaced, _) = self
            .update_row(
                user,
                &self.statements.replace,
                binds,
                TOKEN_KEY_POSITION,
                Some(&token.mattermost_user_id),
                true,
                |rec| {
                    // Matched but unchanged (same values written again).
                    rec.token_id.as_ref() == Some(expected) && holds(rec, token)
                },
            )
            .await?;
        Ok(replaced)
    }

    async fn clear_token(&self, user: &HostUserId) -> Result<bool, StoreError> {
        let (cleared, rec) = self
            .update_row(
                user,
                &self.statements.clear,
                Vec::new(),
                0,
                None,
                true,
                |_| false,
            )
            .await?;
        if !cleared && (rec.token_id.is_some() || rec.token_expires_at.is_some()) {
            // A token id or expiry without a token (written by another
            // tool): clear them too, as the contract says they go with the
            // token.
            let key = self
                .key_bind(user)
                .ok_or_else(|| StoreError::UnknownUser(user.clone()))?;
            let mut conn = self.connection().await?;
            self.execute(
                &mut conn,
                Sql::new(self.statements.clear_orphan_id.clone(), vec![key]),
            )
            .await?;
        }
        Ok(cleared)
    }

    async fn list_missing(
        &self,
        after: Option<&HostUserId>,
        limit: u32,
    ) -> Result<MissingPage, StoreError> {
        let limit = limit.max(1);
        let sql = match after {
            None => Sql::new(
                format!("{} LIMIT {limit}", self.statements.list_first),
                Vec::new(),
            ),
            Some(a) => {
                let key = self.key_bind(a).ok_or_else(|| {
                    StoreError::Config(format!(
                        "list_missing: {a:?} is not a key of the {:?} column {}.{}",
                        self.key_type, self.table, self.key_column
                    ))
                })?;
                Sql::new(
                    format!("{} LIMIT {limit}", self.statements.list_after),
                    vec![key],
                )
            }
        };
        let mut conn = self.connection().await?;
        let rows = C::load_keys(&mut conn, sql)
            .await
            .map_err(|e| query_error(e, self.cx()))?;
        let users = rows
            .into_iter()
            .map(|r| self.parse_key(r.mmt_key))
            .collect::<Result<Vec<_>, _>>()?;
        let next = if users.len() == limit as usize {
            users.last().cloned()
        } else {
            None
        };
        Ok(MissingPage { users, next })
    }
}

#[cfg(test)]
mod tests {
    use super::canonical_uuid;

    #[test]
    fn uuids() {
        assert_eq!(
            canonical_uuid("7F1C2A9E-0000-4000-8000-000000000001").as_deref(),
            Some("7f1c2a9e-0000-4000-8000-000000000001")
        );
        assert_eq!(
            canonical_uuid("{7f1c2a9e000040008000000000000001}").as_deref(),
            Some("7f1c2a9e-0000-4000-8000-000000000001")
        );
        assert_eq!(canonical_uuid("no-such-user"), None);
        assert_eq!(canonical_uuid("7f1c2a9e-0000-4000-8000-00000000000g"), None);
    }
}
