//! Turning diesel, pool and migration failures into [`StoreError`]s, as
//! the core's [`ErrorClass`] says: never with a connection URL's password
//! (scrubbed) or a bound value (diesel's errors include no binds).

use std::error::Error as StdError;

use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};
use mattermost_tokens::StoreError;
pub(crate) use mattermost_tokens::store::schema::errors::DriverMessage as Internal;
use mattermost_tokens::store::schema::errors::{ErrorClass, scrub_credentials as scrub};

/// Which backend, which table: what an error message names.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ErrorContext<'a> {
    pub backend: &'static str,
    pub table: &'a str,
}

/// Maps an error from running a query.
pub(crate) fn query_error(e: DieselError, cx: ErrorContext<'_>) -> StoreError {
    let ErrorContext { backend, table } = cx;
    let (class, detail) = match &e {
        DieselError::DatabaseError(kind, info) => {
            let class = match kind {
                DatabaseErrorKind::ReadOnlyTransaction => ErrorClass::ReadOnly,
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection => {
                    ErrorClass::Unavailable
                }
                _ => ErrorClass::of_message(info.message()),
            };
            (class, scrub(info.message()))
        }
        DieselError::DeserializationError(inner) => {
            (ErrorClass::Other, format!("unexpected value: {inner}"))
        }
        DieselError::BrokenTransactionManager => (
            ErrorClass::Unavailable,
            "the connection is in a broken state".to_owned(),
        ),
        other => (ErrorClass::Other, scrub(&other.to_string())),
    };
    let what = format!("using table {table}");
    match class {
        // The message may quote part of a stored value (a token): keep
        // neither it nor the driver error.
        ErrorClass::Redact => class.error(&what, backend, table, "", Internal(what.clone())),
        _ => class.error(&what, backend, table, &detail, e),
    }
}

/// Maps a failure to establish a connection.
pub(crate) fn connection_error(e: &ConnectionError, backend: &'static str) -> StoreError {
    let text = scrub(&e.to_string());
    match e {
        ConnectionError::InvalidConnectionUrl(_) => {
            StoreError::Config(format!("invalid {backend} connection URL: {text}"))
        }
        _ => StoreError::Unavailable {
            message: format!("cannot connect to {backend}: {text}"),
            source: Some(Box::new(Internal(text))),
        },
    }
}

/// Maps the error a migration harness returns.
pub(crate) fn migration_error(
    e: Box<dyn StdError + Send + Sync>,
    cx: ErrorContext<'_>,
) -> StoreError {
    // What a step refused (the schema's errors), as it is.
    let e = match e.downcast::<StoreError>() {
        Ok(p) => return *p,
        Err(e) => e,
    };
    let e = match e.downcast::<DieselError>() {
        Ok(d) => return query_error(*d, cx),
        Err(e) => e,
    };
    // diesel_migrations' own errors (a version it cannot record), or a
    // harness's: the text only, scrubbed.
    let text = scrub(&e.to_string());
    StoreError::Database {
        message: format!("{}: migration failed: {text}", cx.backend),
        source: Some(Box::new(Internal(text))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn read_only_is_typed() {
        let e = DieselError::DatabaseError(
            DatabaseErrorKind::Unknown,
            Box::new("attempt to write a readonly database".to_string()),
        );
        let s = query_error(
            e,
            ErrorContext {
                backend: "SQLite",
                table: "users",
            },
        );
        assert!(matches!(s, StoreError::ReadOnly { .. }));
        assert!(StdError::source(&s).unwrap().is::<DieselError>());
    }
}
