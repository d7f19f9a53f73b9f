//! SQLite: [`SqliteTokenStore`] on bundled SQLite, made async by
//! diesel-async's `SyncConnectionWrapper` (each query runs on tokio's
//! blocking pool).
//!
//! Concurrent writers wait for SQLite's write lock instead of failing
//! with `database is locked`: connections made by [`pool`] and
//! [`establish`] set `PRAGMA busy_timeout` ([`BUSY_TIMEOUT_MS`]). A host
//! that builds its own pool should do the same (see [`establish`]). The
//! store does not change the database's journal mode; WAL lets readers and
//! the writer proceed together and is worth setting for a busy app.
//!
//! An in-memory database (`:memory:`) exists once per connection: use a
//! file, or a pool of one connection.

use std::time::Duration;

use diesel::QueryResult;
use diesel::connection::BoxableConnection;
use diesel::connection::LoadConnection;
use diesel::sql_types::{Bool, Nullable, Text};
use diesel::sqlite::Sqlite;
use diesel::{Connection, ConnectionError, ConnectionResult, QueryableByName};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::pooled_connection::{AsyncDieselConnectionManager, ManagerConfig};
use diesel_async::sync_connection_wrapper::SyncConnectionWrapper;
use diesel_async::{AsyncConnection, SimpleAsyncConnection};
use mattermost_tokens::StoreError;

use crate::code_store::{CodeStatements, CodeUserRow, DieselCodeStore};
use crate::migration::{
    self, ColumnKind, ColumnSpec, Count, EXPIRY_MARKER, ExistingColumn, ExistingIndex,
    INDEX_MARKER, IndexColumnRow, Job, LINK_COLUMN, MARKER, MigrationBackend,
    on_concrete_connection,
};
use crate::store::{DieselTokenStore, KeyRow, RecordRow, Sql, StoreConnection, sealed};

const BACKEND: &str = "SQLite";

/// Serialises the migrations this process runs (see `run_migrations`).
static MIGRATION_LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// How long (in milliseconds) a connection made here waits for another
/// connection's write to finish before failing.
pub const BUSY_TIMEOUT_MS: u32 = 5_000;

/// diesel's sync `SqliteConnection` made async by diesel-async.
pub type AsyncSqliteConnection = SyncConnectionWrapper<diesel::SqliteConnection>;

/// diesel-async's deadpool pool of SQLite connections.
pub type SqlitePool = Pool<AsyncSqliteConnection>;

/// A [`TokenStore`](mattermost_tokens::TokenStore) on SQLite. `P` is the
/// pool ([`SqlitePool`] unless the host brings another
/// [`ConnectionPool`](crate::ConnectionPool)).
pub type SqliteTokenStore<P = SqlitePool> = DieselTokenStore<AsyncSqliteConnection, P>;

/// Opens `url` (a file path, or a `file:` URI such as `file:app.db?mode=ro`)
/// with [`BUSY_TIMEOUT_MS`] set. Use it as a pool's
/// `ManagerConfig::custom_setup` when building a pool by hand.
pub async fn establish(url: &str) -> ConnectionResult<AsyncSqliteConnection> {
    establish_with_busy_timeout(url, Duration::from_millis(BUSY_TIMEOUT_MS.into())).await
}

/// Like [`establish`], waiting up to `busy_timeout` for another
/// connection's lock. Only the connection's own setting changes: the
/// database's journal mode and other persistent settings stay the host's.
pub async fn establish_with_busy_timeout(
    url: &str,
    busy_timeout: Duration,
) -> ConnectionResult<AsyncSqliteConnection> {
    let mut conn = AsyncSqliteConnection::establish(url).await?;
    let ms = busy_timeout.as_millis().min(i32::MAX as u128);
    conn.batch_execute(&format!("PRAGMA busy_timeout = {ms}"))
        .await
        .map_err(ConnectionError::CouldntSetupConfiguration)?;
    Ok(conn)
}

/// A pool of up to `max_size` connections to `url`, each opened with
/// [`establish`], made lazily.
pub fn pool(url: &str, max_size: usize) -> Result<SqlitePool, StoreError> {
    pool_with_busy_timeout(url, max_size, Duration::from_millis(BUSY_TIMEOUT_MS.into()))
}

/// Like [`pool`], each connection waiting up to `busy_timeout` for another
/// connection's lock (a write that still cannot get it fails with
/// [`StoreError::Unavailable`] saying the database is locked).
pub fn pool_with_busy_timeout(
    url: &str,
    max_size: usize,
    busy_timeout: Duration,
) -> Result<SqlitePool, StoreError> {
    let mut config = ManagerConfig::<AsyncSqliteConnection>::default();
    config.custom_setup = Box::new(move |url| {
        let url = url.to_owned();
        Box::pin(async move { establish_with_busy_timeout(&url, busy_timeout).await })
    });
    Pool::builder(AsyncDieselConnectionManager::new_with_config(url, config))
        .max_size(max_size)
        .build()
        .map_err(|e| StoreError::Config(format!("cannot build the {BACKEND} pool: {e}")))
}

/// A magic-link [`CodeStore`](mattermost_tokens::magic_link::CodeStore) on
/// SQLite (see [`DieselCodeStore`]). `P` is the pool ([`SqlitePool`] unless
/// the host brings another [`ConnectionPool`](crate::ConnectionPool)).
pub type SqliteCodeStore<P = SqlitePool> = DieselCodeStore<AsyncSqliteConnection, P>;

impl SqliteCodeStore {
    /// A code store over a new pool of 8 connections to `url` (see
    /// [`pool`]), opened lazily. To share the token store's pool instead,
    /// pass `token_store.pool().clone()` to [`new`](DieselCodeStore::new).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(pool(url, 8)?))
    }
}

impl SqliteTokenStore {
    /// A store over a new pool of 8 connections to `url` (see [`pool`]),
    /// opened lazily.
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(pool(url, 8)?))
    }
}

crate::pool::deadpool_pool!(AsyncSqliteConnection, BACKEND);
#[cfg(feature = "bb8")]
crate::pool::bb8_pool!(AsyncSqliteConnection, BACKEND);

impl StoreConnection for AsyncSqliteConnection {}

impl sealed::Connection for AsyncSqliteConnection {
    const BACKEND: &'static str = BACKEND;

    fn placeholder(_n: usize) -> String {
        "?".to_owned()
    }

    fn key_as_text(column: &str) -> String {
        format!("CAST({column} AS TEXT)")
    }

    async fn execute_sql(&mut self, sql: Sql) -> QueryResult<usize> {
        diesel_async::RunQueryDsl::execute(sql.into_query::<Sqlite>(), self).await
    }

    async fn load_records(&mut self, sql: Sql) -> QueryResult<Vec<RecordRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Sqlite>(), self).await
    }

    async fn load_keys(&mut self, sql: Sql) -> QueryResult<Vec<KeyRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Sqlite>(), self).await
    }

    async fn load_host_users(&mut self, sql: Sql) -> QueryResult<Vec<crate::host_users::HostRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Sqlite>(), self).await
    }

    async fn load_code_users(&mut self, sql: Sql) -> QueryResult<Vec<CodeUserRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Sqlite>(), self).await
    }

    async fn consume_code(
        &mut self,
        statements: &CodeStatements,
        hash: String,
        now: i64,
    ) -> QueryResult<Option<CodeUserRow>> {
        crate::code_store::consume_returning(self, statements, hash, now).await
    }

    fn run_migrations(self, job: Job, revert: bool) -> Result<(), StoreError> {
        // Two migrations in one process at once would both find theirs
        // pending, and the second would fail recording it; the other
        // databases take a lock in the database for the same purpose.
        let _guard = MIGRATION_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let mut conn = AsyncConnectionWrapper::<Self>::from(self);
        job.apply(&mut conn, revert)
    }
}

impl MigrationBackend for Sqlite {}

/// Runs `$body` with `$c` bound to the concrete connection behind a
/// migration's `&mut dyn BoxableConnection<Sqlite>`; an error for a
/// connection type the migration cannot read through.
macro_rules! on_sqlite_connection {
    ($conn:expr, $table:expr, |$c:ident| $body:expr) => {
        on_concrete_connection!($conn, |$c| $body, [
            diesel::SqliteConnection,
            AsyncConnectionWrapper<AsyncSqliteConnection>,
            AsyncConnectionWrapper<Object<AsyncSqliteConnection>>,
            #[cfg(feature = "bb8")]
            AsyncConnectionWrapper<
                diesel_async::pooled_connection::bb8::PooledConnection<'static, AsyncSqliteConnection>,
            >,
        ])
        .ok_or_else(|| {
            migration::unsupported_connection(
                $table,
                "diesel::SqliteConnection, AsyncConnectionWrapper<SyncConnectionWrapper<SqliteConnection>> and diesel-async's AsyncMigrationHarness over a SyncConnectionWrapper<SqliteConnection> or a deadpool or bb8 pooled connection of one",
            )
        })?
        .map_err(Into::into)
    };
}

impl migration::sealed::Backend for Sqlite {
    const NAME: &'static str = BACKEND;
    const ENFORCES_LENGTH: bool = false;

    fn existing_columns(
        conn: &mut dyn BoxableConnection<Sqlite>,
        table: &str,
    ) -> diesel::migration::Result<Vec<ExistingColumn>> {
        on_sqlite_connection!(conn, table, |c| read_columns(c, table))
    }

    fn compatible(column: &ExistingColumn, _spec: &ColumnSpec) -> bool {
        // SQLite's type affinity rules: INTEGER, REAL and NUMERIC affinity
        // would turn a token such as "12345" into a number; TEXT affinity
        // and none (BLOB) keep text as it is. Declared lengths are ignored.
        let t = column.sql_type.to_ascii_uppercase();
        if t.contains("INT") {
            return false;
        }
        t.contains("CHAR")
            || t.contains("CLOB")
            || t.contains("TEXT")
            || t.contains("BLOB")
            || t.is_empty()
    }

    fn add_columns(table: &str, specs: &[ColumnSpec]) -> Vec<String> {
        // One column per statement (SQLite's ALTER TABLE adds one). The
        // comment is kept in sqlite_master and marks the column as ours.
        specs
            .iter()
            .map(|s| format!("ALTER TABLE {table} ADD COLUMN {}", definition(s)))
            .collect()
    }

    fn drop_columns(table: &str, columns: &[&str]) -> Vec<String> {
        columns
            .iter()
            .map(|c| format!("ALTER TABLE {table} DROP COLUMN {c}"))
            .collect()
    }

    fn holds_millis(column: &ExistingColumn) -> bool {
        // INTEGER affinity (any declared type containing "INT"): 64-bit
        // integers, stored as such.
        column.sql_type.to_ascii_uppercase().contains("INT")
    }

    fn add_expiry_column(table: &str, column: &str) -> Vec<String> {
        // The comment is kept in sqlite_master and marks the column as ours.
        vec![format!(
            "ALTER TABLE {table} ADD COLUMN {}",
            expiry_definition(column)
        )]
    }

    fn create_code_table(table: &str, index: &str) -> Vec<String> {
        // SQLite names the schema on the index, not on its table.
        let (index, on) = match table.split_once('.') {
            Some((schema, name)) => (format!("{schema}.{index}"), name),
            None => (index.to_owned(), table),
        };
        vec![
            format!(
                "CREATE TABLE {table} (\
                 code_hash VARCHAR(64) NOT NULL PRIMARY KEY, \
                 host_user_id VARCHAR(255) NOT NULL, \
                 host_user_kind CHAR(1) NOT NULL CHECK (host_user_kind IN ('i', 't')), \
                 expires_at BIGINT NOT NULL)"
            ),
            format!("CREATE INDEX {index} ON {on} (expires_at)"),
        ]
    }

    fn existing_indexes(
        conn: &mut dyn BoxableConnection<Sqlite>,
        table: &str,
    ) -> diesel::migration::Result<Vec<ExistingIndex>> {
        on_sqlite_connection!(conn, table, |c| read_indexes(c, table))
    }

    fn count(
        conn: &mut dyn BoxableConnection<Sqlite>,
        table: &str,
        sql: &str,
    ) -> diesel::migration::Result<i64> {
        on_sqlite_connection!(conn, table, |c| read_count(c, sql))
    }

    fn create_unique_index(table: &str, index: &str, _column: &ExistingColumn) -> Vec<String> {
        // SQLite names the schema on the index, not on its table; the
        // comment is kept in sqlite_master and marks the index as ours.
        let (index, on) = match table.split_once('.') {
            Some((schema, name)) => (format!("{schema}.{index}"), name),
            None => (index.to_owned(), table),
        };
        vec![format!(
            "CREATE UNIQUE INDEX {index} ON {on} ({})",
            index_key()
        )]
    }

    fn drop_index(_table: &str, index: &ExistingIndex) -> Vec<String> {
        vec![format!("DROP INDEX {}", index.qualified)]
    }
}

/// The unique index's key, marker included; found again verbatim in
/// `sqlite_master.sql`.
fn index_key() -> String {
    format!("{LINK_COLUMN} /* {INDEX_MARKER} */")
}

/// A column definition as added, comment included; found again verbatim in
/// `sqlite_master.sql`.
fn definition(spec: &ColumnSpec) -> String {
    let sql_type = match spec.kind {
        ColumnKind::Id => "VARCHAR(26)",
        ColumnKind::Token => "TEXT",
    };
    format!("{} {sql_type} /* {MARKER} */", spec.name)
}

/// The expiry column's definition as added, comment included; found again
/// verbatim in `sqlite_master.sql`.
fn expiry_definition(column: &str) -> String {
    format!("{column} INTEGER /* {EXPIRY_MARKER} */")
}

/// Whether `create` (a table's `CREATE TABLE` statement) holds the column
/// definition `definition` (which starts with the column's name).
fn defines(create: &str, definition: &str) -> bool {
    create.match_indices(definition).any(|(at, _)| {
        !create[..at]
            .chars()
            .next_back()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[derive(QueryableByName)]
struct SqliteColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql_type: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
}

#[derive(QueryableByName)]
struct TableSql {
    #[diesel(sql_type = Text)]
    sql: String,
}

fn read_columns<C>(conn: &mut C, table: &str) -> QueryResult<Vec<ExistingColumn>>
where
    C: Connection<Backend = Sqlite> + LoadConnection,
{
    let (schema, name) = table.split_once('.').unwrap_or(("main", table));
    // `schema` is a validated identifier; table-valued pragmas take it as
    // their second argument.
    let columns: Vec<SqliteColumn> = diesel::RunQueryDsl::load(
        diesel::sql_query(
            "SELECT name AS name, type AS sql_type, \"notnull\" = 0 AS nullable \
             FROM pragma_table_info(?, ?) ORDER BY cid",
        )
        .bind::<Text, _>(name.to_owned())
        .bind::<Text, _>(schema.to_owned()),
        conn,
    )?;
    let create: Vec<TableSql> = diesel::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT sql AS sql FROM {schema}.sqlite_master WHERE type = 'table' AND name = ?"
        ))
        .bind::<Text, _>(name.to_owned()),
        conn,
    )?;
    let create = create.into_iter().next().map(|t| t.sql).unwrap_or_default();
    Ok(columns
        .into_iter()
        .map(|c| {
            let token_column = migration::COLUMNS
                .iter()
                .find(|s| s.name.eq_ignore_ascii_case(&c.name))
                .is_some_and(|s| defines(&create, &definition(s)));
            let marker = if token_column {
                Some(MARKER)
            } else if defines(&create, &expiry_definition(&c.name)) {
                Some(EXPIRY_MARKER)
            } else {
                None
            };
            ExistingColumn {
                name: c.name,
                sql_type: c.sql_type,
                nullable: c.nullable,
                marker: marker.map(str::to_owned),
            }
        })
        .collect())
}

#[derive(QueryableByName)]
struct SqliteIndexColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    #[diesel(sql_type = Nullable<Text>)]
    column_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    sql: Option<String>,
}

fn read_indexes<C>(conn: &mut C, table: &str) -> QueryResult<Vec<ExistingIndex>>
where
    C: Connection<Backend = Sqlite> + LoadConnection,
{
    let (schema, name) = table.split_once('.').unwrap_or(("main", table));
    // A partial index is not unique over the table; an expression has no
    // column name. Indexes made for UNIQUE constraints have no SQL.
    let rows: Vec<SqliteIndexColumn> = diesel::RunQueryDsl::load(
        diesel::sql_query(format!(
            "SELECT il.name AS name, il.\"unique\" = 1 AND il.partial = 0 AS is_unique, \
                    ii.name AS column_name, m.sql AS sql \
             FROM pragma_index_list(?, ?) AS il \
             JOIN pragma_index_info(il.name, ?) AS ii \
             LEFT JOIN {schema}.sqlite_master AS m ON m.type = 'index' AND m.name = il.name \
             ORDER BY il.name, ii.seqno"
        ))
        .bind::<Text, _>(name.to_owned())
        .bind::<Text, _>(schema.to_owned())
        .bind::<Text, _>(schema.to_owned()),
        conn,
    )?;
    let marker = index_key();
    Ok(migration::group_indexes(rows.into_iter().map(|r| {
        IndexColumnRow {
            ours: r.sql.as_deref().is_some_and(|s| s.contains(&marker)),
            qualified: format!("{schema}.{}", r.name),
            name: r.name,
            unique: r.is_unique,
            column: r.column_name,
        }
    })))
}

fn read_count<C>(conn: &mut C, sql: &str) -> QueryResult<i64>
where
    C: Connection<Backend = Sqlite> + LoadConnection,
{
    let rows: Vec<Count> = diesel::RunQueryDsl::load(diesel::sql_query(sql), conn)?;
    Ok(rows.first().map_or(0, |r| r.n))
}
