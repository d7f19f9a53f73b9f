//! MySQL and MariaDB: [`MysqlTokenStore`] on diesel-async's
//! `AsyncMysqlConnection` (mysql_async, pure Rust; no libmysqlclient).
//!
//! ```no_run
//! use mattermost_tokens_diesel::mysql::MysqlTokenStore;
//!
//! # async fn demo() -> Result<(), mattermost_tokens::StoreError> {
//! let store = MysqlTokenStore::from_url("mysql://app@localhost:3306/app")?;
//! store.migrate().await?;
//! # Ok(()) }
//! ```
//!
//! MySQL reports, by default, the rows an `UPDATE` *changed*, not those it
//! matched. diesel-async's connections ask for matched rows
//! (`CLIENT_FOUND_ROWS`), and the store does not rely on it either: when an
//! update reports no row it reads the row to tell a missing user, a lost
//! compare-and-set and a write of identical values apart.
//!
//! The migration adds the columns as `utf8mb4` with a binary collation, so
//! any token value round-trips byte for byte and ids compare exactly,
//! whatever the table's default character set. UUID keys are expected as
//! text (`CHAR(36)`); `BINARY(16)` keys are not supported.

use diesel::QueryResult;
use diesel::connection::BoxableConnection;
use diesel::connection::LoadConnection;
use diesel::mysql::Mysql;
use diesel::sql_types::{Nullable, Text};
use diesel::{Connection, QueryableByName};
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use diesel_async::{AsyncConnection, AsyncMysqlConnection};
use mattermost_tokens::StoreError;

use crate::code_store::{CodeStatements, CodeUserRow, DieselCodeStore};
use crate::migration::{
    self, ColumnKind, ColumnSpec, Count, EXPIRY_MARKER, ExistingColumn, ExistingIndex,
    INDEX_MARKER, IndexColumnRow, Job, LINK_COLUMN, MARKER, MigrationBackend,
    on_concrete_connection,
};
use crate::store::{DieselTokenStore, KeyRow, RecordRow, Sql, StoreConnection, sealed};

/// Serialises concurrent `migrate()` calls (see `run_migrations`).
const MIGRATION_LOCK: &str = "DO GET_LOCK('mattermost_tokens_migrate', 60)";

const BACKEND: &str = "MySQL";

/// How many times a consuming transaction chosen as a deadlock victim is run
/// again.
const DEADLOCK_RETRIES: u32 = 3;

/// ER_LOCK_DEADLOCK (1213): "Deadlock found when trying to get lock".
fn is_deadlock(e: &diesel::result::Error) -> bool {
    matches!(e, diesel::result::Error::DatabaseError(_, info)
        if info.message().to_ascii_lowercase().contains("deadlock"))
}

/// diesel-async's deadpool pool of MySQL/MariaDB connections.
pub type MysqlPool = Pool<AsyncMysqlConnection>;

/// A [`TokenStore`](mattermost_tokens::TokenStore) on MySQL or MariaDB. `P`
/// is the pool ([`MysqlPool`] unless the host brings another
/// [`ConnectionPool`](crate::ConnectionPool)).
pub type MysqlTokenStore<P = MysqlPool> = DieselTokenStore<AsyncMysqlConnection, P>;

/// A pool of up to `max_size` connections to `url`
/// (`mysql://user:password@host:port/database`), made lazily.
pub fn pool(url: &str, max_size: usize) -> Result<MysqlPool, StoreError> {
    Pool::builder(AsyncDieselConnectionManager::<AsyncMysqlConnection>::new(
        url,
    ))
    .max_size(max_size)
    .build()
    .map_err(|e| StoreError::Config(format!("cannot build the {BACKEND} pool: {e}")))
}

/// A magic-link [`CodeStore`](mattermost_tokens::magic_link::CodeStore) on
/// MySQL or MariaDB (see [`DieselCodeStore`]). `P` is the pool
/// ([`MysqlPool`] unless the host brings another
/// [`ConnectionPool`](crate::ConnectionPool)).
pub type MysqlCodeStore<P = MysqlPool> = DieselCodeStore<AsyncMysqlConnection, P>;

impl MysqlCodeStore {
    /// A code store over a new pool of 10 connections to `url`, made
    /// lazily. To share the token store's pool instead, pass
    /// `token_store.pool().clone()` to [`new`](DieselCodeStore::new).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(pool(url, 10)?))
    }
}

impl MysqlTokenStore {
    /// A store over a new pool of 10 connections to `url`, made lazily (the
    /// first operation or [`migrate`](DieselTokenStore::migrate) connects).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(pool(url, 10)?))
    }
}

crate::pool::deadpool_pool!(AsyncMysqlConnection, BACKEND);
#[cfg(feature = "bb8")]
crate::pool::bb8_pool!(AsyncMysqlConnection, BACKEND);

impl StoreConnection for AsyncMysqlConnection {}

impl sealed::Connection for AsyncMysqlConnection {
    const BACKEND: &'static str = BACKEND;

    fn placeholder(_n: usize) -> String {
        "?".to_owned()
    }

    fn key_as_text(column: &str) -> String {
        format!("CAST({column} AS CHAR)")
    }

    async fn execute_sql(&mut self, sql: Sql) -> QueryResult<usize> {
        diesel_async::RunQueryDsl::execute(sql.into_query::<Mysql>(), self).await
    }

    async fn load_records(&mut self, sql: Sql) -> QueryResult<Vec<RecordRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Mysql>(), self).await
    }

    async fn load_keys(&mut self, sql: Sql) -> QueryResult<Vec<KeyRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Mysql>(), self).await
    }

    async fn load_host_users(&mut self, sql: Sql) -> QueryResult<Vec<crate::host_users::HostRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Mysql>(), self).await
    }

    async fn load_code_users(&mut self, sql: Sql) -> QueryResult<Vec<CodeUserRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Mysql>(), self).await
    }

    async fn consume_code(
        &mut self,
        statements: &CodeStatements,
        hash: String,
        now: i64,
    ) -> QueryResult<Option<CodeUserRow>> {
        // No DELETE ... RETURNING on MySQL: lock the row, then delete it.
        // Concurrent transactions wait for the lock and then find no row.
        let mut attempt = 0;
        loop {
            let lock = CodeStatements::live(&statements.lock, &hash, now);
            let delete = statements.delete(&hash);
            let result = self
                .transaction(async move |conn: &mut Self| {
                    let mut rows: Vec<CodeUserRow> =
                        diesel_async::RunQueryDsl::load(lock.into_query::<Mysql>(), conn).await?;
                    let Some(row) = rows.pop() else {
                        return Ok(None);
                    };
                    diesel_async::RunQueryDsl::execute(delete.into_query::<Mysql>(), conn).await?;
                    Ok(Some(row))
                })
                .await;
            match result {
                // A deadlock victim was rolled back, nothing consumed: again.
                Err(e) if attempt < DEADLOCK_RETRIES && is_deadlock(&e) => {
                    attempt += 1;
                    tracing::debug!(
                        attempt,
                        "magic-link code consumption hit a deadlock; retrying"
                    );
                }
                other => return other,
            }
        }
    }

    fn run_migrations(self, job: Job, revert: bool) -> Result<(), StoreError> {
        job.apply_locked(self, MIGRATION_LOCK, BACKEND, revert)
    }
}

impl MigrationBackend for Mysql {}

/// Runs `$body` with `$c` bound to the concrete connection behind a
/// migration's `&mut dyn BoxableConnection<Mysql>`; an error for a
/// connection type the migration cannot read through.
macro_rules! on_mysql_connection {
    ($conn:expr, $table:expr, |$c:ident| $body:expr) => {
        on_concrete_connection!($conn, |$c| $body, [
            AsyncConnectionWrapper<AsyncMysqlConnection>,
            AsyncConnectionWrapper<Object<AsyncMysqlConnection>>,
            #[cfg(feature = "bb8")]
            AsyncConnectionWrapper<
                diesel_async::pooled_connection::bb8::PooledConnection<'static, AsyncMysqlConnection>,
            >,
        ])
        .ok_or_else(|| {
            migration::unsupported_connection(
                $table,
                "AsyncConnectionWrapper<AsyncMysqlConnection> and diesel-async's AsyncMigrationHarness over an AsyncMysqlConnection or a deadpool or bb8 pooled connection of one",
            )
        })?
        .map_err(Into::into)
    };
}

impl migration::sealed::Backend for Mysql {
    const NAME: &'static str = BACKEND;

    fn existing_columns(
        conn: &mut dyn BoxableConnection<Mysql>,
        table: &str,
    ) -> diesel::migration::Result<Vec<ExistingColumn>> {
        on_mysql_connection!(conn, table, |c| read_columns(c, table))
    }

    fn compatible(column: &ExistingColumn, spec: &ColumnSpec) -> bool {
        let t = column.sql_type.to_ascii_lowercase();
        // CHAR pads and trims trailing spaces, BLOBs have no character set:
        // neither round-trips a token as text.
        matches!(t.as_str(), "text" | "tinytext" | "mediumtext" | "longtext")
            || (t.starts_with("varchar(")
                && migration::declared_len(&t).is_some_and(|n| n >= spec.kind.min_len()))
    }

    fn add_columns(table: &str, specs: &[ColumnSpec]) -> Vec<String> {
        let adds: Vec<String> = specs
            .iter()
            .map(|s| {
                format!(
                    "ADD COLUMN {} {} CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL COMMENT '{MARKER}'",
                    s.name,
                    sql_type(s.kind)
                )
            })
            .collect();
        vec![format!("ALTER TABLE {table} {}", adds.join(", "))]
    }

    fn drop_columns(table: &str, columns: &[&str]) -> Vec<String> {
        let drops: Vec<String> = columns.iter().map(|c| format!("DROP COLUMN {c}")).collect();
        vec![format!("ALTER TABLE {table} {}", drops.join(", "))]
    }

    fn holds_millis(column: &ExistingColumn) -> bool {
        // `bigint` (MySQL 8) or `bigint(20)`; an unsigned one cannot hold
        // every value read back as a signed 64-bit integer.
        let t = column.sql_type.to_ascii_lowercase();
        (t == "bigint" || t.starts_with("bigint(")) && !t.contains("unsigned")
    }

    fn add_expiry_column(table: &str, column: &str) -> Vec<String> {
        vec![format!(
            "ALTER TABLE {table} ADD COLUMN {column} BIGINT NULL COMMENT '{EXPIRY_MARKER}'"
        )]
    }

    fn create_code_table(table: &str, index: &str) -> Vec<String> {
        // InnoDB for the row lock `consume` takes; byte-wise collations so
        // that hashes and user ids compare exactly.
        vec![format!(
            "CREATE TABLE {table} (\
             code_hash VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \
             host_user_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             host_user_kind CHAR(1) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \
             expires_at BIGINT NOT NULL, \
             PRIMARY KEY (code_hash), \
             INDEX {index} (expires_at), \
             CHECK (host_user_kind IN ('i', 't'))) ENGINE=InnoDB"
        )]
    }

    fn existing_indexes(
        conn: &mut dyn BoxableConnection<Mysql>,
        table: &str,
    ) -> diesel::migration::Result<Vec<ExistingIndex>> {
        on_mysql_connection!(conn, table, |c| read_indexes(c, table))
    }

    fn count(
        conn: &mut dyn BoxableConnection<Mysql>,
        table: &str,
        sql: &str,
    ) -> diesel::migration::Result<i64> {
        on_mysql_connection!(conn, table, |c| read_count(c, sql))
    }

    fn create_unique_index(table: &str, index: &str, column: &ExistingColumn) -> Vec<String> {
        // A TEXT column (a host's own) is indexed by a prefix, far longer
        // than a Mattermost id (26 characters) and within InnoDB's key
        // length in any row format (191 * 4 bytes).
        let t = column.sql_type.to_ascii_lowercase();
        let key = if t.ends_with("text") || t.ends_with("blob") {
            format!("{LINK_COLUMN}({TEXT_PREFIX_LEN})")
        } else {
            LINK_COLUMN.to_owned()
        };
        vec![format!(
            "CREATE UNIQUE INDEX {index} ON {table} ({key}) COMMENT '{INDEX_MARKER}'"
        )]
    }

    fn drop_index(table: &str, index: &ExistingIndex) -> Vec<String> {
        vec![format!("DROP INDEX {} ON {table}", index.qualified)]
    }
}

/// The prefix by which a TEXT `mattermost_user_id` is indexed.
const TEXT_PREFIX_LEN: u32 = 191;

fn sql_type(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Id => "VARCHAR(26)",
        ColumnKind::Token => "TEXT",
    }
}

#[derive(QueryableByName)]
struct MysqlColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql_type: String,
    #[diesel(sql_type = Text)]
    is_nullable: String,
    #[diesel(sql_type = Text)]
    comment: String,
}

fn read_columns<C>(conn: &mut C, table: &str) -> QueryResult<Vec<ExistingColumn>>
where
    C: Connection<Backend = Mysql> + LoadConnection,
{
    let select = "SELECT column_name AS name, column_type AS sql_type, \
                  is_nullable AS is_nullable, column_comment AS comment \
                  FROM information_schema.columns WHERE ";
    let rows: Vec<MysqlColumn> = match table.split_once('.') {
        Some((schema, name)) => diesel::RunQueryDsl::load(
            diesel::sql_query(format!(
                "{select} table_schema = ? AND table_name = ? ORDER BY ordinal_position"
            ))
            .bind::<Text, _>(schema.to_owned())
            .bind::<Text, _>(name.to_owned()),
            conn,
        )?,
        None => diesel::RunQueryDsl::load(
            diesel::sql_query(format!(
                "{select} table_schema = DATABASE() AND table_name = ? ORDER BY ordinal_position"
            ))
            .bind::<Text, _>(table.to_owned()),
            conn,
        )?,
    };
    Ok(rows
        .into_iter()
        .map(|r| ExistingColumn {
            name: r.name,
            sql_type: r.sql_type,
            nullable: r.is_nullable.eq_ignore_ascii_case("YES"),
            marker: Some(r.comment).filter(|c| !c.is_empty()),
        })
        .collect())
}

#[derive(QueryableByName)]
struct MysqlIndexColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    non_unique: String,
    #[diesel(sql_type = Nullable<Text>)]
    column_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    sub_part: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    comment: Option<String>,
}

fn read_indexes<C>(conn: &mut C, table: &str) -> QueryResult<Vec<ExistingIndex>>
where
    C: Connection<Backend = Mysql> + LoadConnection,
{
    let select = "SELECT CAST(index_name AS CHAR) AS name, CAST(non_unique AS CHAR) AS non_unique, \
                  CAST(column_name AS CHAR) AS column_name, CAST(sub_part AS CHAR) AS sub_part, \
                  CAST(index_comment AS CHAR) AS comment \
                  FROM information_schema.statistics WHERE ";
    let order = "ORDER BY index_name, seq_in_index";
    let rows: Vec<MysqlIndexColumn> = match table.split_once('.') {
        Some((schema, name)) => diesel::RunQueryDsl::load(
            diesel::sql_query(format!(
                "{select} table_schema = ? AND table_name = ? {order}"
            ))
            .bind::<Text, _>(schema.to_owned())
            .bind::<Text, _>(name.to_owned()),
            conn,
        )?,
        None => diesel::RunQueryDsl::load(
            diesel::sql_query(format!(
                "{select} table_schema = DATABASE() AND table_name = ? {order}"
            ))
            .bind::<Text, _>(table.to_owned()),
            conn,
        )?,
    };
    Ok(migration::group_indexes(rows.into_iter().map(|r| {
        // A prefix shorter than an id would refuse distinct ids.
        let whole = r
            .sub_part
            .as_deref()
            .is_none_or(|n| n.trim().parse::<u32>().is_ok_and(|n| n >= 26));
        IndexColumnRow {
            ours: r.comment.as_deref() == Some(INDEX_MARKER),
            qualified: r.name.clone(),
            name: r.name,
            unique: r.non_unique.trim() == "0" && whole,
            column: r.column_name,
        }
    })))
}

fn read_count<C>(conn: &mut C, sql: &str) -> QueryResult<i64>
where
    C: Connection<Backend = Mysql> + LoadConnection,
{
    let rows: Vec<Count> = diesel::RunQueryDsl::load(diesel::sql_query(sql), conn)?;
    Ok(rows.first().map_or(0, |r| r.n))
}
