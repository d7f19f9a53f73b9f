//! The magic-link [`CodeStore`] in a table of the host's database:
//! [`DieselCodeStore`], written once for every backend.

use std::fmt;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use diesel::QueryableByName;
use diesel::sql_types::Text;
use mattermost_tokens::magic_link::{CodeHash, CodeStore};
use mattermost_tokens::store::validate_identifier;
use mattermost_tokens::{HostUserId, StoreError};

use crate::error::{ErrorContext, query_error};
use crate::migration::{CodeMigrations, Job};
use crate::pool::ConnectionPool;
use crate::store::{Bind, DEFAULT_ACQUIRE_TIMEOUT, Sql, StoreConnection, run_job, timed};

/// The code table a [`DieselCodeStore`] uses unless configured otherwise
/// (the sqlx adapter's default too).
pub const DEFAULT_CODES_TABLE: &str = "mattermost_magic_link_codes";

/// The longest text user key the `host_user_id` column holds (characters).
const MAX_USER_ID_CHARS: usize = 255;

/// The statements of one configured code store.
#[derive(Debug)]
pub struct CodeStatements {
    insert: String,
    /// `DELETE ... RETURNING` (PostgreSQL, SQLite).
    #[cfg_attr(not(any(feature = "postgres", feature = "_sqlite")), allow(dead_code))]
    pub(crate) consume: String,
    /// `SELECT ... FOR UPDATE`, then `delete` (MySQL/MariaDB).
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) lock: String,
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) delete: String,
    peek: String,
    purge: String,
}

impl CodeStatements {
    fn render<C: StoreConnection>(table: &str) -> Self {
        let p = C::placeholder;
        let live = format!("code_hash = {} AND expires_at > {}", p(1), p(2));
        CodeStatements {
            insert: format!(
                "INSERT INTO {table} (code_hash, host_user_id, host_user_kind, expires_at) \
                 VALUES ({}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4)
            ),
            consume: format!(
                "DELETE FROM {table} WHERE {live} RETURNING host_user_id, host_user_kind"
            ),
            lock: format!(
                "SELECT host_user_id, host_user_kind FROM {table} WHERE {live} FOR UPDATE"
            ),
            delete: format!("DELETE FROM {table} WHERE code_hash = {}", p(1)),
            peek: format!("SELECT host_user_id, host_user_kind FROM {table} WHERE {live}"),
            purge: format!("DELETE FROM {table} WHERE expires_at <= {}", p(1)),
        }
    }

    /// The binds of a statement on a live code: its hash and the time.
    pub(crate) fn live(statement: &str, hash: &str, now: i64) -> Sql {
        Sql::new(statement, vec![Bind::Text(hash.to_owned()), Bind::Int(now)])
    }

    /// `delete` for `hash`.
    #[cfg_attr(not(feature = "mysql"), allow(dead_code))]
    pub(crate) fn delete(&self, hash: &str) -> Sql {
        Sql::new(self.delete.clone(), vec![Bind::Text(hash.to_owned())])
    }
}

/// The user a code logs in, as stored.
#[derive(QueryableByName, Debug)]
pub struct CodeUserRow {
    #[diesel(sql_type = Text)]
    host_user_id: String,
    #[diesel(sql_type = Text)]
    host_user_kind: String,
}

/// [`consume_code`](crate::store::sealed::Connection::consume_code) by one
/// `DELETE ... RETURNING` (PostgreSQL, SQLite): of concurrent statements one
/// deletes the row and returns it, the others find nothing.
#[cfg_attr(not(any(feature = "postgres", feature = "_sqlite")), allow(dead_code))]
pub(crate) async fn consume_returning<C: StoreConnection>(
    conn: &mut C,
    statements: &CodeStatements,
    hash: String,
    now: i64,
) -> diesel::QueryResult<Option<CodeUserRow>> {
    let sql = CodeStatements::live(&statements.consume, &hash, now);
    Ok(conn.load_code_users(sql).await?.pop())
}

/// A [`CodeStore`] for one-time magic-link codes in a table of the host's
/// database (`mattermost_magic_link_codes` by default), so that a link
/// issued by one instance of the app can be redeemed on another. Use it
/// through its backend's name, [`PgCodeStore`](crate::postgres::PgCodeStore),
/// [`MysqlCodeStore`](crate::mysql::MysqlCodeStore) or
/// [`SqliteCodeStore`](crate::sqlite::SqliteCodeStore), over the same pool
/// as the token store; create the table once at start-up with
/// [`migrate`](Self::migrate). Cheap to clone.
///
/// # The table
///
/// | column           | type                    | holds                                |
/// |------------------|-------------------------|--------------------------------------|
/// | `code_hash`      | `VARCHAR(64)`, primary key | the code's SHA-256, lowercase hex |
/// | `host_user_id`   | `VARCHAR(255)`          | the host user key as text            |
/// | `host_user_kind` | `CHAR(1)`               | `i` (integer key) or `t` (text key)  |
/// | `expires_at`     | `BIGINT`, indexed       | Unix time in seconds                 |
///
/// Only the hash of a code is stored ([`CodeHash`]): whoever reads the table
/// cannot log anyone in. A consumed code is deleted; expired codes stay
/// until [`purge_expired`](CodeStore::purge_expired) (or
/// `MagicLinks::purge_expired`) runs. The table does not refer to the users
/// table: a text key is kept as given, an integer key in decimal, and the
/// kind column brings each back as it went in ([`HostUserId::Int`] or
/// [`HostUserId::Text`]). Text keys longer than 255 characters are refused
/// with [`StoreError::Config`].
///
/// Expiry times are kept in whole seconds, rounded down, so a code never
/// works past its `expires_at` (the links `MagicLinks` issues expire at
/// whole seconds anyway).
///
/// The table is the sqlx adapter's (same name, columns and meaning), so a
/// host moving between the adapters keeps its outstanding links.
///
/// # Consuming exactly once
///
/// On PostgreSQL and SQLite [`consume`](CodeStore::consume) is one
/// statement, `DELETE ... WHERE code_hash = ? AND expires_at > ?
/// RETURNING ...`. MySQL has no `DELETE ... RETURNING` (MariaDB's is not
/// used, so both behave alike): a transaction reads the row with
/// `SELECT ... FOR UPDATE` (concurrent ones wait for its lock, then find the
/// row gone) and deletes it; a transaction chosen as a deadlock victim,
/// rolled back with nothing consumed, is run again (up to 3 times).
pub struct DieselCodeStore<
    C: StoreConnection,
    P = diesel_async::pooled_connection::deadpool::Pool<C>,
> {
    pool: P,
    table: String,
    acquire_timeout: Duration,
    statements: Arc<CodeStatements>,
    _connection: PhantomData<fn() -> C>,
}

impl<C: StoreConnection, P: Clone> Clone for DieselCodeStore<C, P> {
    fn clone(&self) -> Self {
        DieselCodeStore {
            pool: self.pool.clone(),
            table: self.table.clone(),
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
            .field("backend", &C::BACKEND)
            .field("table", &self.table)
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
            table: DEFAULT_CODES_TABLE.to_owned(),
            acquire_timeout: DEFAULT_ACQUIRE_TIMEOUT,
            statements: Arc::new(CodeStatements::render::<C>(DEFAULT_CODES_TABLE)),
            _connection: PhantomData,
        }
    }

    /// Uses another table (`app_login_codes`, or `schema.codes`). Fails
    /// with [`StoreError::Config`] when `name` is not a plain SQL
    /// identifier.
    pub fn with_table_name(mut self, name: impl Into<String>) -> Result<Self, StoreError> {
        let name = name.into();
        validate_identifier(&name)?;
        self.statements = Arc::new(CodeStatements::render::<C>(&name));
        self.table = name;
        Ok(self)
    }

    /// How long an operation waits for a connection before failing with
    /// [`StoreError::Unavailable`] (default
    /// [`DEFAULT_ACQUIRE_TIMEOUT`](crate::DEFAULT_ACQUIRE_TIMEOUT)).
    pub fn with_acquire_timeout(mut self, timeout: Duration) -> Self {
        self.acquire_timeout = timeout;
        self
    }

    /// The pool the store takes its connections from.
    pub fn pool(&self) -> &P {
        &self.pool
    }

    /// The code table.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// The migration creating this store's table, to run through a diesel
    /// migration harness of the host's choosing (see [`CodeMigrations`]).
    pub fn migrations(&self) -> CodeMigrations {
        CodeMigrations::for_validated_table(&self.table)
    }

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
    pub async fn migrate(&self) -> Result<(), StoreError> {
        self.run_migrations(false).await
    }

    /// Reverts [`migrate`](Self::migrate): drops the code table (every
    /// outstanding link stops working) and forgets the migration. Does
    /// nothing when it was not applied; a table of that name without the
    /// code table's columns is not dropped ([`StoreError::Schema`]).
    pub async fn revert_migration(&self) -> Result<(), StoreError> {
        self.run_migrations(true).await
    }

    async fn run_migrations(&self, revert: bool) -> Result<(), StoreError> {
        let job = Job::Codes(self.migrations());
        run_job(&self.pool, self.acquire_timeout, job, revert).await
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

    /// The user of a stored row.
    fn decode_user(&self, row: CodeUserRow) -> Result<HostUserId, StoreError> {
        let corrupt = |why: &str| StoreError::Database {
            message: format!(
                "{}: a row of the code table {} {why}",
                C::BACKEND,
                self.table
            ),
            source: None,
        };
        match row.host_user_kind.trim() {
            "t" => Ok(HostUserId::Text(row.host_user_id)),
            "i" => row
                .host_user_id
                .trim()
                .parse()
                .map(HostUserId::Int)
                .map_err(|_| corrupt("has an integer host user id that is not an integer")),
            _ => Err(corrupt("has a host_user_kind other than 'i' or 't'")),
        }
    }
}

/// Unix seconds, rounded down.
fn unix_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

/// The stored form of a user: key as text, and its kind.
fn user_binds(user: &HostUserId) -> Result<(String, &'static str), StoreError> {
    match user {
        HostUserId::Int(i) => Ok((i.to_string(), "i")),
        HostUserId::Text(s) if s.chars().count() <= MAX_USER_ID_CHARS => Ok((s.clone(), "t")),
        HostUserId::Text(s) => Err(StoreError::Config(format!(
            "a text host user id of {} characters does not fit the code table's host_user_id \
             column (at most {MAX_USER_ID_CHARS})",
            s.chars().count()
        ))),
    }
}

#[async_trait]
impl<C: StoreConnection, P: ConnectionPool<C>> CodeStore for DieselCodeStore<C, P> {
    async fn insert(
        &self,
        hash: &CodeHash,
        user: &HostUserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        let (id, kind) = user_binds(user)?;
        let sql = Sql::new(
            self.statements.insert.clone(),
            vec![
                Bind::Text(hash.to_hex()),
                Bind::Text(id),
                Bind::Text(kind.to_owned()),
                Bind::Int(unix_secs(expires_at)),
            ],
        );
        let mut conn = self.connection().await?;
        C::execute_sql(&mut conn, sql)
            .await
            .map_err(|e| query_error(e, self.cx()))?;
        Ok(())
    }

    async fn consume(
        &self,
        hash: &CodeHash,
        now: DateTime<Utc>,
    ) -> Result<Option<HostUserId>, StoreError> {
        let mut conn = self.connection().await?;
        let row = C::consume_code(&mut conn, &self.statements, hash.to_hex(), unix_secs(now))
            .await
            .map_err(|e| query_error(e, self.cx()))?;
        row.map(|r| self.decode_user(r)).transpose()
    }

    async fn peek(&self, hash: &CodeHash, now: DateTime<Utc>) -> Result<bool, StoreError> {
        let sql = CodeStatements::live(&self.statements.peek, &hash.to_hex(), unix_secs(now));
        let mut conn = self.connection().await?;
        let rows = C::load_code_users(&mut conn, sql)
            .await
            .map_err(|e| query_error(e, self.cx()))?;
        Ok(!rows.is_empty())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        let sql = Sql::new(
            self.statements.purge.clone(),
            vec![Bind::Int(unix_secs(now))],
        );
        let mut conn = self.connection().await?;
        let n = C::execute_sql(&mut conn, sql)
            .await
            .map_err(|e| query_error(e, self.cx()))?;
        Ok(n as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_kinds() {
        assert_eq!(
            user_binds(&HostUserId::Int(-7)).unwrap(),
            ("-7".into(), "i")
        );
        assert_eq!(
            user_binds(&HostUserId::Text("ü".repeat(255))).unwrap().1,
            "t"
        );
        assert!(matches!(
            user_binds(&HostUserId::Text("x".repeat(256))),
            Err(StoreError::Config(_))
        ));
    }

    #[test]
    fn seconds_round_down() {
        let t = DateTime::from_timestamp(100, 999_000_000).unwrap();
        assert_eq!(unix_secs(t), 100);
    }
}
