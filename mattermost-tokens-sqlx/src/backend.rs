//! What differs between PostgreSQL, MySQL/MariaDB and SQLite, behind one
//! sealed trait, so that the store and its migration are written once.
//!
//! The generic store only ever talks to a database through [`Exec`] (run a
//! statement, read rows, decode a column), and asks [`Backend`] for the SQL
//! fragments and error codes that are the database's own.

use futures::future::BoxFuture;
use sqlx::database::Database;
use sqlx::error::DatabaseError;
use sqlx::{ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, SqlStr, Type};

use crate::config::KeyType;

/// A value bound to a statement parameter.
#[derive(Clone, Copy, Debug)]
#[doc(hidden)]
pub enum Bind<'a> {
    /// An integer.
    Int(i64),
    /// Text.
    Text(&'a str),
    /// SQL `NULL` (as text).
    Null,
    /// SQL `NULL` (as an integer, for an integer column).
    NullInt,
}

/// How an error reported by the database should be surfaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub enum ErrorClass {
    /// The server cannot be reached, refuses connections or went away.
    Unavailable,
    /// The database's lock could not be had within the busy timeout.
    Locked,
    /// A table or column is missing or of the wrong kind.
    Schema,
    /// The database refuses writes.
    ReadOnly,
    /// The driver's message may quote a stored value: keep it out of errors.
    Redact,
    /// Anything else.
    Other,
}

/// The two kinds of column the store adds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub enum ColumnKind {
    /// A 26-character Mattermost id.
    Id,
    /// A token value (plain, or an encrypted envelope of about 100
    /// characters).
    Token,
}

/// A table name as configured (`users` or `schema.users`) and split.
#[derive(Clone, Copy, Debug)]
#[doc(hidden)]
pub struct TableRef<'a> {
    /// As configured.
    pub full: &'a str,
    /// The schema (database, for MySQL) prefix, if any.
    pub schema: Option<&'a str>,
    /// The table's own name.
    pub name: &'a str,
}

impl<'a> TableRef<'a> {
    /// Splits a validated table name.
    pub fn new(full: &'a str) -> Self {
        match full.split_once('.') {
            Some((schema, name)) => TableRef {
                full,
                schema: Some(schema),
                name,
            },
            None => TableRef {
                full,
                schema: None,
                name: full,
            },
        }
    }
}

pub(crate) mod sealed {
    /// Only this crate's backends implement [`Backend`](super::Backend).
    pub trait Sealed {}
}

/// Running statements on a connection of one database, with the handful of
/// value types the store binds and reads. Implemented for every sqlx
/// database that supports them; the trait only exists so that the sqlx trait
/// bounds are written once, here, instead of on every generic function.
#[doc(hidden)]
pub trait Exec: Database {
    /// Runs a statement, returning the driver's result.
    fn execute_on<'c>(
        conn: &'c mut Self::Connection,
        sql: SqlStr,
        binds: &[Bind<'_>],
    ) -> BoxFuture<'c, Result<Self::QueryResult, sqlx::Error>>;

    /// Runs a query, returning all its rows.
    fn fetch_on<'c>(
        conn: &'c mut Self::Connection,
        sql: SqlStr,
        binds: &[Bind<'_>],
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>>;

    /// Reads an integer column.
    fn column_i64(row: &Self::Row, index: usize) -> Result<i64, sqlx::Error>;

    /// Reads a nullable text column.
    fn column_text(row: &Self::Row, index: usize) -> Result<Option<String>, sqlx::Error>;

    /// Reads a nullable integer column.
    fn column_opt_i64(row: &Self::Row, index: usize) -> Result<Option<i64>, sqlx::Error>;
}

fn arguments<DB>(binds: &[Bind<'_>]) -> Result<DB::Arguments, sqlx::Error>
where
    DB: Database,
    i64: for<'q> Encode<'q, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + Type<DB>,
    Option<String>: for<'q> Encode<'q, DB>,
    Option<i64>: for<'q> Encode<'q, DB>,
{
    use sqlx::Arguments as _;
    let mut args = DB::Arguments::default();
    for b in binds {
        match b {
            Bind::Int(i) => args.add(*i),
            Bind::Text(s) => args.add(s.to_string()),
            Bind::Null => args.add(None::<String>),
            Bind::NullInt => args.add(None::<i64>),
        }
        .map_err(sqlx::Error::Encode)?;
    }
    Ok(args)
}

impl<DB> Exec for DB
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
    DB::Arguments: IntoArguments<DB>,
    i64: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    String: for<'q> Encode<'q, DB> + for<'r> Decode<'r, DB> + Type<DB>,
    Option<String>: for<'q> Encode<'q, DB>,
    Option<i64>: for<'q> Encode<'q, DB>,
    usize: ColumnIndex<DB::Row>,
{
    fn execute_on<'c>(
        conn: &'c mut Self::Connection,
        sql: SqlStr,
        binds: &[Bind<'_>],
    ) -> BoxFuture<'c, Result<Self::QueryResult, sqlx::Error>> {
        match arguments::<DB>(binds) {
            Ok(args) => conn.execute(sqlx::query_with(sql, args)),
            Err(e) => Box::pin(futures::future::ready(Err(e))),
        }
    }

    fn fetch_on<'c>(
        conn: &'c mut Self::Connection,
        sql: SqlStr,
        binds: &[Bind<'_>],
    ) -> BoxFuture<'c, Result<Vec<Self::Row>, sqlx::Error>> {
        match arguments::<DB>(binds) {
            Ok(args) => conn.fetch_all(sqlx::query_with(sql, args)),
            Err(e) => Box::pin(futures::future::ready(Err(e))),
        }
    }

    fn column_i64(row: &Self::Row, index: usize) -> Result<i64, sqlx::Error> {
        row.try_get(index)
    }

    fn column_text(row: &Self::Row, index: usize) -> Result<Option<String>, sqlx::Error> {
        row.try_get(index)
    }

    fn column_opt_i64(row: &Self::Row, index: usize) -> Result<Option<i64>, sqlx::Error> {
        row.try_get(index)
    }
}

/// A database this crate stores tokens in: [`sqlx::Postgres`],
/// [`sqlx::MySql`] (MySQL and MariaDB) and [`sqlx::Sqlite`], each behind its
/// crate feature. Sealed: the items are the database's own SQL fragments and
/// error codes, used by [`SqlxTokenStore`](crate::SqlxTokenStore).
pub trait Backend: Exec + sealed::Sealed {
    /// Placeholder for the `n`th (1-based) parameter.
    #[doc(hidden)]
    fn placeholder(_n: usize) -> String {
        "?".into()
    }

    /// Placeholder for the `n`th parameter when it is compared with the key
    /// column (a cast for PostgreSQL's `uuid`).
    #[doc(hidden)]
    fn key_param(n: usize, _key_type: KeyType) -> String {
        Self::placeholder(n)
    }

    /// Expression reading the key column as `i64` (integer keys) or text.
    #[doc(hidden)]
    fn key_select(column: &str, key_type: KeyType) -> String;

    /// Whether [`KeyType::Uuid`] means a native `uuid` column compared by
    /// cast (PostgreSQL) rather than text.
    #[doc(hidden)]
    const NATIVE_UUID: bool = false;

    /// Rows a statement matched.
    #[doc(hidden)]
    fn rows_affected(result: &Self::QueryResult) -> u64;

    /// How to surface an error the database reported.
    #[doc(hidden)]
    fn classify(error: &dyn DatabaseError) -> ErrorClass;

    /// The database's own code for an error, as users of that database know
    /// it (SQLSTATE, MySQL error number, SQLite extended result code).
    #[doc(hidden)]
    fn error_code(error: &dyn DatabaseError) -> String {
        error.code().map(|c| c.into_owned()).unwrap_or_default()
    }

    /// Statement opening a group-commit batch of the store's writes
    /// (SQLite, whose commits are slow and whose writers queue for one
    /// lock); `None` where each write commits on its own.
    #[doc(hidden)]
    const GROUP_COMMIT_BEGIN: Option<&'static str> = None;

    /// Statement opening the migration transaction; `None` where DDL is not
    /// transactional (MySQL commits implicitly around each DDL statement).
    #[doc(hidden)]
    const MIGRATION_BEGIN: Option<&'static str>;

    /// Query taking the migration lock; it returns a row when the lock is
    /// held. Run after [`MIGRATION_BEGIN`](Backend::MIGRATION_BEGIN).
    #[doc(hidden)]
    const MIGRATION_LOCK: Option<&'static str> = None;

    /// Statement releasing a lock that outlives transactions.
    #[doc(hidden)]
    const MIGRATION_UNLOCK: Option<&'static str> = None;

    /// Whether one `ALTER TABLE` can add or drop several columns.
    #[doc(hidden)]
    const ALTER_MANY: bool = true;

    /// Whether declared column types follow SQLite's affinity rules (any
    /// name, lengths not enforced).
    #[doc(hidden)]
    const TYPE_AFFINITY: bool = false;

    /// The SQL type of a column the migration adds.
    #[doc(hidden)]
    fn column_ddl(kind: ColumnKind) -> &'static str {
        match kind {
            ColumnKind::Id => "VARCHAR(26)",
            ColumnKind::Token => "TEXT",
        }
    }

    /// The SQL type of the token expiry column the migration adds: a
    /// nullable 64-bit integer (milliseconds since the Unix epoch).
    #[doc(hidden)]
    const EXPIRY_COLUMN_DDL: &'static str = "BIGINT";

    /// Query returning a row when the table exists, with its parameters.
    #[doc(hidden)]
    fn table_exists_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>);

    /// Query listing the table's columns as `(name, declared type)` text
    /// rows, with its parameters.
    #[doc(hidden)]
    fn columns_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>);

    /// Statements creating the magic-link code table `table`, with an index
    /// named `index` on `expires_at`.
    #[doc(hidden)]
    fn code_table_ddl(table: TableRef<'_>, index: &str) -> Vec<String>;

    /// Whether `DELETE ... RETURNING` exists (PostgreSQL, SQLite 3.35+).
    /// Without it a code is consumed by a transaction that locks its row
    /// (`SELECT ... FOR UPDATE`) before deleting it.
    #[doc(hidden)]
    const DELETE_RETURNING: bool = true;

    /// Whether the error rolled the transaction back as a deadlock victim,
    /// so that running it again is safe.
    #[doc(hidden)]
    fn is_deadlock(_error: &dyn DatabaseError) -> bool {
        false
    }

    /// When the error is a unique violation (PostgreSQL 23505, MySQL/MariaDB
    /// 1062, SQLite `SQLITE_CONSTRAINT_UNIQUE`), what the database names as
    /// violated: the index or constraint (PostgreSQL, MySQL/MariaDB, the
    /// latter possibly as `table.index`), or the columns (SQLite,
    /// `table.column`); empty when it names nothing. Never a value.
    #[doc(hidden)]
    fn unique_violation(error: &dyn DatabaseError) -> Option<String>;

    /// Query listing the table's indexes as text rows: name, `1` when
    /// unique, the key columns comma-separated in order, `1` when it is a
    /// plain index (no expression, prefix or predicate, and usable), `1`
    /// when it belongs to a constraint (dropped with the constraint), and
    /// the schema it is in (PostgreSQL; empty elsewhere).
    #[doc(hidden)]
    fn indexes_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>);

    /// Query returning a row when another object of the table's schema
    /// already has the name `index` (index names are per schema on
    /// PostgreSQL and SQLite); `None` where index names are per table
    /// (MySQL/MariaDB).
    #[doc(hidden)]
    fn index_name_taken_query<'a>(
        table: TableRef<'a>,
        index: &'a str,
    ) -> Option<(String, Vec<Bind<'a>>)>;

    /// Statement creating the unique index `index` on the table's
    /// `mattermost_user_id` column.
    #[doc(hidden)]
    fn unique_index_ddl(table: TableRef<'_>, index: &str) -> String;

    /// Statement dropping the table's index `index` (a validated name),
    /// found as `found` by [`indexes_query`](Backend::indexes_query).
    #[doc(hidden)]
    fn drop_index_ddl(table: TableRef<'_>, index: &str, found: &IndexInfo) -> String;
}

/// An index of a table, as [`Backend::indexes_query`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[doc(hidden)]
pub struct IndexInfo {
    /// The index's name.
    pub name: String,
    /// Whether it is unique.
    pub unique: bool,
    /// Its key columns, in order.
    pub columns: Vec<String>,
    /// No expression, prefix or predicate, and usable.
    pub plain: bool,
    /// Owned by a constraint (dropped with the constraint).
    pub constraint: bool,
    /// The schema it is in, where the database reports it (PostgreSQL).
    pub schema: Option<String>,
}

impl IndexInfo {
    /// Whether the index makes `column` unique on its own: a usable unique
    /// index on exactly that column.
    pub fn is_unique_on(&self, column: &str) -> bool {
        self.unique
            && self.plain
            && self.columns.len() == 1
            && self.columns[0].eq_ignore_ascii_case(column)
    }
}
