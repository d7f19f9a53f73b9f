//! PostgreSQL: [`PgTokenStore`] on diesel-async's `AsyncPgConnection`
//! (tokio-postgres, pure Rust; no libpq).
//!
//! ```no_run
//! use mattermost_tokens::{HostUserId, TokenStore};
//! use mattermost_tokens_diesel::KeyType;
//! use mattermost_tokens_diesel::postgres::PgTokenStore;
//!
//! # async fn demo() -> Result<(), mattermost_tokens::StoreError> {
//! // A host whose users are keyed by a `uuid` column:
//! let store = PgTokenStore::from_url("postgres://app@localhost/app")?
//!     .with_key_type(KeyType::Uuid);
//! store.migrate().await?;
//! let user = HostUserId::Text("7f1c2a9e-0000-4000-8000-000000000001".into());
//! let record = store.get(&user).await?;
//! # Ok(()) }
//! ```
//!
//! Connections made by `AsyncPgConnection::establish` do not use TLS; for
//! TLS build the pool with a `ManagerConfig::custom_setup` that connects
//! through `tokio-postgres-rustls` and pass it to [`PgTokenStore::new`].

use diesel::QueryResult;
use diesel::connection::BoxableConnection;
use diesel::connection::LoadConnection;
use diesel::pg::Pg;
use diesel::sql_types::{Bool, Nullable, Text};
use diesel::{Connection, QueryableByName};
use diesel_async::AsyncPgConnection;
use diesel_async::async_connection_wrapper::AsyncConnectionWrapper;
use diesel_async::pooled_connection::AsyncDieselConnectionManager;
use diesel_async::pooled_connection::deadpool::{Object, Pool};
use mattermost_tokens::StoreError;

use crate::code_store::{CodeStatements, CodeUserRow, DieselCodeStore};
use crate::migration::{
    self, ColumnKind, ColumnSpec, Count, EXPIRY_MARKER, ExistingColumn, ExistingIndex,
    INDEX_MARKER, IndexColumnRow, Job, LINK_COLUMN, MARKER, MigrationBackend,
    on_concrete_connection,
};
use crate::store::{DieselTokenStore, KeyRow, KeyType, RecordRow, Sql, StoreConnection, sealed};

/// Serialises concurrent `migrate()` calls (see `run_migrations`).
const MIGRATION_LOCK: &str = "SELECT pg_advisory_lock(7885627115330283380)";

const BACKEND: &str = "PostgreSQL";

/// diesel-async's deadpool pool of PostgreSQL connections.
pub type PgPool = Pool<AsyncPgConnection>;

/// A [`TokenStore`](mattermost_tokens::TokenStore) on PostgreSQL. `P` is the
/// pool ([`PgPool`] unless the host brings another
/// [`ConnectionPool`](crate::ConnectionPool)).
pub type PgTokenStore<P = PgPool> = DieselTokenStore<AsyncPgConnection, P>;

/// A pool of up to `max_size` connections to `url`
/// (`postgres://user:password@host:port/database`), made lazily.
pub fn pool(url: &str, max_size: usize) -> Result<PgPool, StoreError> {
    Pool::builder(AsyncDieselConnectionManager::<AsyncPgConnection>::new(url))
        .max_size(max_size)
        .build()
        .map_err(|e| StoreError::Config(format!("cannot build the {BACKEND} pool: {e}")))
}

/// A magic-link [`CodeStore`](mattermost_tokens::magic_link::CodeStore) on
/// PostgreSQL (see [`DieselCodeStore`]). `P` is the pool ([`PgPool`]
/// unless the host brings another [`ConnectionPool`](crate::ConnectionPool)).
pub type PgCodeStore<P = PgPool> = DieselCodeStore<AsyncPgConnection, P>;

impl PgCodeStore {
    /// A code store over a new pool of 10 connections to `url`, made
    /// lazily. To share the token store's pool instead, pass
    /// `token_store.pool().clone()` to [`new`](DieselCodeStore::new).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(pool(url, 10)?))
    }
}

impl PgTokenStore {
    /// A store over a new pool of 10 connections to `url`, made lazily (the
    /// first operation or [`migrate`](DieselTokenStore::migrate) connects).
    pub fn from_url(url: &str) -> Result<Self, StoreError> {
        Ok(Self::new(pool(url, 10)?))
    }
}

crate::pool::deadpool_pool!(AsyncPgConnection, BACKEND);
#[cfg(feature = "bb8")]
crate::pool::bb8_pool!(AsyncPgConnection, BACKEND);

impl StoreConnection for AsyncPgConnection {}

impl sealed::Connection for AsyncPgConnection {
    const BACKEND: &'static str = BACKEND;

    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    fn key_as_text(column: &str) -> String {
        format!("CAST({column} AS TEXT)")
    }

    fn key_param(placeholder: String, key_type: KeyType) -> String {
        match key_type {
            // A text parameter does not compare with a uuid column.
            KeyType::Uuid => format!("CAST({placeholder} AS UUID)"),
            _ => placeholder,
        }
    }

    async fn execute_sql(&mut self, sql: Sql) -> QueryResult<usize> {
        diesel_async::RunQueryDsl::execute(sql.into_query::<Pg>(), self).await
    }

    async fn load_records(&mut self, sql: Sql) -> QueryResult<Vec<RecordRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Pg>(), self).await
    }

    async fn load_keys(&mut self, sql: Sql) -> QueryResult<Vec<KeyRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Pg>(), self).await
    }

    async fn load_host_users(&mut self, sql: Sql) -> QueryResult<Vec<crate::host_users::HostRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Pg>(), self).await
    }

    async fn load_code_users(&mut self, sql: Sql) -> QueryResult<Vec<CodeUserRow>> {
        diesel_async::RunQueryDsl::load(sql.into_query::<Pg>(), self).await
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
        job.apply_locked(self, MIGRATION_LOCK, BACKEND, revert)
    }
}

impl MigrationBackend for Pg {}

/// Runs `$body` with `$c` bound to the concrete connection behind a
/// migration's `&mut dyn BoxableConnection<Pg>`; an error for a connection
/// type the migration cannot read through.
macro_rules! on_pg_connection {
    ($conn:expr, $table:expr, |$c:ident| $body:expr) => {
        on_concrete_connection!($conn, |$c| $body, [
            AsyncConnectionWrapper<AsyncPgConnection>,
            AsyncConnectionWrapper<Object<AsyncPgConnection>>,
            #[cfg(feature = "bb8")]
            AsyncConnectionWrapper<
                diesel_async::pooled_connection::bb8::PooledConnection<'static, AsyncPgConnection>,
            >,
        ])
        .ok_or_else(|| {
            migration::unsupported_connection(
                $table,
                "AsyncConnectionWrapper<AsyncPgConnection> and diesel-async's AsyncMigrationHarness over an AsyncPgConnection or a deadpool or bb8 pooled connection of one",
            )
        })?
        .map_err(Into::into)
    };
}

impl migration::sealed::Backend for Pg {
    const NAME: &'static str = BACKEND;

    fn existing_columns(
        conn: &mut dyn BoxableConnection<Pg>,
        table: &str,
    ) -> diesel::migration::Result<Vec<ExistingColumn>> {
        on_pg_connection!(conn, table, |c| read_columns(c, table))
    }

    fn compatible(column: &ExistingColumn, spec: &ColumnSpec) -> bool {
        let t = column.sql_type.to_ascii_lowercase();
        t == "text"
            || t == "character varying"
            || (t.starts_with("character varying(")
                && migration::declared_len(&t).is_some_and(|n| n >= spec.kind.min_len()))
    }

    fn add_columns(table: &str, specs: &[ColumnSpec]) -> Vec<String> {
        let adds: Vec<String> = specs
            .iter()
            .map(|s| {
                format!(
                    "ADD COLUMN IF NOT EXISTS {} {} NULL",
                    s.name,
                    sql_type(s.kind)
                )
            })
            .collect();
        let mut statements = vec![format!("ALTER TABLE {table} {}", adds.join(", "))];
        statements.extend(
            specs
                .iter()
                .map(|s| format!("COMMENT ON COLUMN {table}.{} IS '{MARKER}'", s.name)),
        );
        statements
    }

    fn drop_columns(table: &str, columns: &[&str]) -> Vec<String> {
        let drops: Vec<String> = columns
            .iter()
            .map(|c| format!("DROP COLUMN IF EXISTS {c}"))
            .collect();
        vec![format!("ALTER TABLE {table} {}", drops.join(", "))]
    }

    fn holds_millis(column: &ExistingColumn) -> bool {
        column.sql_type.eq_ignore_ascii_case("bigint")
    }

    fn add_expiry_column(table: &str, column: &str) -> Vec<String> {
        vec![
            format!("ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {column} BIGINT NULL"),
            format!("COMMENT ON COLUMN {table}.{column} IS '{EXPIRY_MARKER}'"),
        ]
    }

    fn create_code_table(table: &str, index: &str) -> Vec<String> {
        // VARCHAR, not CHAR, for the hash: a text parameter compared with a
        // `bpchar` column would cast the column and miss the primary key.
        // The index goes into the table's schema.
        vec![
            format!(
                "CREATE TABLE {table} (\
                 code_hash VARCHAR(64) NOT NULL PRIMARY KEY, \
                 host_user_id VARCHAR(255) NOT NULL, \
                 host_user_kind CHAR(1) NOT NULL CHECK (host_user_kind IN ('i', 't')), \
                 expires_at BIGINT NOT NULL)"
            ),
            format!("CREATE INDEX {index} ON {table} (expires_at)"),
        ]
    }

    fn existing_indexes(
        conn: &mut dyn BoxableConnection<Pg>,
        table: &str,
    ) -> diesel::migration::Result<Vec<ExistingIndex>> {
        on_pg_connection!(conn, table, |c| read_indexes(c, table))
    }

    fn count(
        conn: &mut dyn BoxableConnection<Pg>,
        table: &str,
        sql: &str,
    ) -> diesel::migration::Result<i64> {
        on_pg_connection!(conn, table, |c| read_count(c, sql))
    }

    fn create_unique_index(table: &str, index: &str, _column: &ExistingColumn) -> Vec<String> {
        // The index goes into the table's schema; the comment names it as
        // the catalog does (schema-qualified when not on the search path).
        vec![
            format!("CREATE UNIQUE INDEX {index} ON {table} ({LINK_COLUMN})"),
            format!(
                "DO $mmt$ BEGIN EXECUTE format('COMMENT ON INDEX %s IS %L', \
                 (SELECT CAST(x.indexrelid AS regclass) FROM pg_catalog.pg_index x \
                  JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid \
                  WHERE x.indrelid = to_regclass('{table}') AND i.relname = '{index}'), \
                 '{INDEX_MARKER}'); END $mmt$"
            ),
        ]
    }

    fn drop_index(_table: &str, index: &ExistingIndex) -> Vec<String> {
        vec![format!("DROP INDEX {}", index.qualified)]
    }
}

fn sql_type(kind: ColumnKind) -> &'static str {
    match kind {
        ColumnKind::Id => "VARCHAR(26)",
        ColumnKind::Token => "TEXT",
    }
}

#[derive(QueryableByName)]
struct PgColumn {
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Text)]
    sql_type: String,
    #[diesel(sql_type = Bool)]
    nullable: bool,
    #[diesel(sql_type = Nullable<Text>)]
    comment: Option<String>,
}

fn read_columns<C>(conn: &mut C, table: &str) -> QueryResult<Vec<ExistingColumn>>
where
    C: Connection<Backend = Pg> + LoadConnection,
{
    // to_regclass resolves the name as SQL would (search_path, an optional
    // schema prefix) and is NULL for a missing table: no rows then.
    let query = diesel::sql_query(
        "SELECT CAST(a.attname AS TEXT) AS name, \
                format_type(a.atttypid, a.atttypmod) AS sql_type, \
                NOT a.attnotnull AS nullable, \
                col_description(a.attrelid, a.attnum) AS comment \
         FROM pg_catalog.pg_attribute a \
         WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
         ORDER BY a.attnum",
    )
    .bind::<Text, _>(table.to_owned());
    let rows: Vec<PgColumn> = diesel::RunQueryDsl::load(query, conn)?;
    Ok(rows
        .into_iter()
        .map(|r| ExistingColumn {
            name: r.name,
            sql_type: r.sql_type,
            nullable: r.nullable,
            marker: r.comment,
        })
        .collect())
}

#[derive(QueryableByName)]
struct PgIndexColumn {
    #[diesel(sql_type = Text)]
    qualified: String,
    #[diesel(sql_type = Text)]
    name: String,
    #[diesel(sql_type = Bool)]
    is_unique: bool,
    #[diesel(sql_type = Nullable<Text>)]
    column_name: Option<String>,
    #[diesel(sql_type = Nullable<Text>)]
    comment: Option<String>,
}

fn read_indexes<C>(conn: &mut C, table: &str) -> QueryResult<Vec<ExistingIndex>>
where
    C: Connection<Backend = Pg> + LoadConnection,
{
    // One row per key column (INCLUDE columns left out); an expression has
    // no attribute, so no column name. A partial index is not unique over
    // the table.
    let query = diesel::sql_query(
        "SELECT CAST(CAST(x.indexrelid AS regclass) AS TEXT) AS qualified, \
                CAST(i.relname AS TEXT) AS name, \
                x.indisunique AND x.indpred IS NULL AS is_unique, \
                CAST(a.attname AS TEXT) AS column_name, \
                obj_description(x.indexrelid, 'pg_class') AS comment \
         FROM pg_catalog.pg_index x \
         JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid \
         CROSS JOIN LATERAL unnest(CAST(x.indkey AS int2[])) WITH ORDINALITY AS k(attnum, ord) \
         LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum \
         WHERE x.indrelid = to_regclass($1) AND k.ord <= x.indnkeyatts \
         ORDER BY i.relname, k.ord",
    )
    .bind::<Text, _>(table.to_owned());
    let rows: Vec<PgIndexColumn> = diesel::RunQueryDsl::load(query, conn)?;
    Ok(migration::group_indexes(rows.into_iter().map(|r| {
        IndexColumnRow {
            ours: r.comment.as_deref() == Some(INDEX_MARKER),
            name: r.name,
            qualified: r.qualified,
            unique: r.is_unique,
            column: r.column_name,
        }
    })))
}

fn read_count<C>(conn: &mut C, sql: &str) -> QueryResult<i64>
where
    C: Connection<Backend = Pg> + LoadConnection,
{
    let rows: Vec<Count> = diesel::RunQueryDsl::load(diesel::sql_query(sql), conn)?;
    Ok(rows.first().map_or(0, |r| r.n))
}
