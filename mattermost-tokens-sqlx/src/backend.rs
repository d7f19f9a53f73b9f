//! What differs between PostgreSQL, MySQL/MariaDB and SQLite for sqlx,
//! behind one sealed trait, so that the store and its migration are written
//! once.
//!
//! The generic store only ever talks to a database through [`Exec`] (run a
//! statement, read rows, decode a column), and asks [`Backend`] for the
//! error codes that are the database's own; the SQL is the schema's, for
//! the backend's [`Dialect`].

use futures::future::BoxFuture;
use sqlx::database::Database;
use sqlx::error::DatabaseError;
use sqlx::{
    AssertSqlSafe, ColumnIndex, Decode, Encode, Executor, IntoArguments, Row, SqlSafeStr, SqlStr,
    Type,
};

use mattermost_tokens::store::schema::{Dialect, Value};

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

pub use mattermost_tokens::store::schema::errors::ErrorClass;

/// The parameters of a schema statement.
pub(crate) fn binds(values: &[Value]) -> Vec<Bind<'_>> {
    values
        .iter()
        .map(|v| match v {
            Value::Int(i) => Bind::Int(*i),
            Value::Text(s) => Bind::Text(s),
            Value::NullInt => Bind::NullInt,
        })
        .collect()
}

/// A statement of the schema's, for sqlx.
pub(crate) fn built_sql(text: impl Into<String>) -> SqlStr {
    // Built from validated identifiers and constants only.
    AssertSqlSafe(text.into()).into_sql_str()
}

/// A pool shown by its size only: its options are the host's.
pub(crate) struct PoolSize<'a, DB: Database>(pub &'a sqlx::Pool<DB>);

impl<DB: Database> std::fmt::Debug for PoolSize<'_, DB> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (size, idle) = (self.0.size(), self.0.num_idle());
        write!(f, "Pool {{ size: {size}, idle: {idle} }}")
    }
}

impl<'a> Bind<'a> {
    /// The parameters of a schema query.
    pub(crate) fn all(params: &'a [Option<String>]) -> Vec<Bind<'a>> {
        params
            .iter()
            .map(|p| p.as_deref().map_or(Bind::Null, Bind::Text))
            .collect()
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
/// crate feature. Sealed: the items are the driver's own error codes; the
/// SQL is the schema's ([`mattermost_tokens::store::schema`]), for
/// [`DIALECT`](Backend::DIALECT).
pub trait Backend: Exec + sealed::Sealed {
    /// Which SQL the database speaks.
    #[doc(hidden)]
    const DIALECT: Dialect;

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

    /// When the error is a unique violation (PostgreSQL 23505, MySQL/MariaDB
    /// 1062, SQLite `SQLITE_CONSTRAINT_UNIQUE`), what the database names as
    /// violated: the index or constraint (PostgreSQL, MySQL/MariaDB, the
    /// latter possibly as `table.index`), or the columns (SQLite,
    /// `table.column`); empty when it names nothing. Never a value.
    #[doc(hidden)]
    fn unique_violation(error: &dyn DatabaseError) -> Option<String>;
}

/// Implements [`Backend`] for the sqlx database `$db` (query result
/// `$result`) speaking `$dialect`, with the error items given.
macro_rules! backend {
    ($db:ty, $result:ty, $dialect:expr, { $($items:item)* }) => {
        impl $crate::backend::sealed::Sealed for $db {}

        impl $crate::backend::Backend for $db {
            const DIALECT: mattermost_tokens::store::schema::Dialect = $dialect;

            fn rows_affected(result: &$result) -> u64 {
                result.rows_affected()
            }

            $($items)*
        }
    };
}
pub(crate) use backend;
