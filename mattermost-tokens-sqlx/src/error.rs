//! Turning sqlx errors into [`StoreError`]s that say what happened without
//! leaking credentials or stored values.
//!
//! The store is built from the host's pool, so no error of ours ever sees a
//! database URL. Driver messages are kept as the error's `source` except
//! where they may quote a stored value (MySQL's "Duplicate entry '...'" and
//! "Incorrect string value" messages): those are replaced by
//! [`RedactedDriverError`].

use mattermost_tokens::StoreError;

use crate::backend::{Backend, ErrorClass};

/// Stands in for a driver error whose message may quote a stored value (and
/// so possibly a token): only the database and its error code are kept.
#[derive(Debug, thiserror::Error)]
#[error("{database} error {code} (driver message withheld: it may quote a stored value)")]
pub struct RedactedDriverError {
    database: &'static str,
    code: String,
}

impl RedactedDriverError {
    /// The database's own error code (SQLSTATE or error number).
    pub fn code(&self) -> &str {
        &self.code
    }
}

/// Maps a sqlx error met while doing `what` on `table`.
pub(crate) fn from_sqlx<DB: Backend>(what: &str, table: &str, e: sqlx::Error) -> StoreError {
    let db = DB::NAME;
    let class = match &e {
        sqlx::Error::Database(d) => DB::classify(d.as_ref()),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorClass::Unavailable,
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => {
            return StoreError::schema(
                format!(
                    "{what}: a column of table `{table}` does not have the type the store expects \
                     (check the key type setting and that migrate() ran)"
                ),
                e,
            );
        }
        _ => ErrorClass::Other,
    };
    match class {
        ErrorClass::Locked => StoreError::locked(what, db, e),
        ErrorClass::Unavailable => {
            let why = match &e {
                sqlx::Error::PoolTimedOut => "timed out waiting for a database connection",
                sqlx::Error::PoolClosed => "the connection pool is closed",
                sqlx::Error::Database(_) => "the server refused the connection or is shutting down",
                _ => "the database cannot be reached or the connection broke",
            };
            StoreError::unavailable(format!("{what}: {db}: {why}"), e)
        }
        ErrorClass::Schema => {
            // Schema errors name tables and columns only, so the driver's
            // message is safe to show and is the useful part.
            let detail = match &e {
                sqlx::Error::Database(d) => d.message().to_owned(),
                _ => e.to_string(),
            };
            StoreError::schema(
                format!(
                    "{what}: {db}: {detail} (table `{table}`; run the store's migrate() once at start-up)"
                ),
                e,
            )
        }
        ErrorClass::ReadOnly => StoreError::ReadOnly {
            message: format!("{what}: the {db} database is read-only and refused the write"),
            source: Some(Box::new(e)),
        },
        ErrorClass::Redact => StoreError::database(
            format!("{what}: {db} rejected the statement"),
            redacted::<DB>(&e),
        ),
        ErrorClass::Other => StoreError::database(format!("{what}: {db} error"), e),
    }
}

/// Maps a group-commit batch that failed as a whole (see
/// `group_commit`), from its class and the driver's message.
pub(crate) fn from_batch<DB: Backend>(
    what: &str,
    class: ErrorClass,
    message: String,
) -> StoreError {
    let db = DB::NAME;
    let source = BatchFailed(message);
    match class {
        ErrorClass::Locked => StoreError::locked(what, db, source),
        ErrorClass::Unavailable => StoreError::unavailable(
            format!("{what}: {db}: the database cannot be reached or the connection broke"),
            source,
        ),
        ErrorClass::ReadOnly => StoreError::ReadOnly {
            message: format!("{what}: the {db} database is read-only and refused the write"),
            source: Some(Box::new(source)),
        },
        _ => StoreError::database(format!("{what}: {db} error"), source),
    }
}

/// The driver's message for a write batch that failed as a whole.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct BatchFailed(String);

/// `e` with only its database and error code: for driver messages that may
/// quote a stored value.
pub(crate) fn redacted<DB: Backend>(e: &sqlx::Error) -> RedactedDriverError {
    let code = match e {
        sqlx::Error::Database(d) => DB::error_code(d.as_ref()),
        _ => String::new(),
    };
    RedactedDriverError {
        database: DB::NAME,
        code,
    }
}
