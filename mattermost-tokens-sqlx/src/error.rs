//! Turning sqlx errors into [`StoreError`]s that say what happened without
//! leaking credentials or stored values.
//!
//! The store is built from the host's pool, so no error of ours ever sees a
//! database URL. Driver messages are kept as the error's `source` except
//! where they may quote a stored value (MySQL's "Duplicate entry '...'" and
//! "Incorrect string value" messages): those are replaced by
//! [`RedactedDriverError`].

use mattermost_tokens::StoreError;

use mattermost_tokens::store::schema::errors::ErrorClass;

use crate::backend::Backend;

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
    let (class, detail) = match &e {
        // Schema errors name tables and columns only, so the driver's
        // message is safe to show; others are kept as the source only.
        sqlx::Error::Database(d) => match DB::classify(d.as_ref()) {
            ErrorClass::Schema => (ErrorClass::Schema, d.message()),
            ErrorClass::Unavailable => (
                ErrorClass::Unavailable,
                "the server refused the connection or is shutting down",
            ),
            class => (class, ""),
        },
        sqlx::Error::PoolTimedOut => (
            ErrorClass::Unavailable,
            "timed out waiting for a database connection",
        ),
        sqlx::Error::PoolClosed => (ErrorClass::Unavailable, "the connection pool is closed"),
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::WorkerCrashed => (ErrorClass::Unavailable, ""),
        sqlx::Error::ColumnDecode { .. }
        | sqlx::Error::ColumnNotFound(_)
        | sqlx::Error::ColumnIndexOutOfBounds { .. }
        | sqlx::Error::TypeNotFound { .. } => (
            ErrorClass::Schema,
            "a column does not have the type the store expects (check the key type setting)",
        ),
        _ => (ErrorClass::Other, ""),
    };
    let detail = detail.to_owned();
    if class == ErrorClass::Redact {
        let source = redacted::<DB>(&e);
        return class.error(what, DB::NAME, table, "", source);
    }
    class.error(what, DB::NAME, table, &detail, e)
}

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
