//! Turning diesel, pool and migration failures into [`StoreError`].
//!
//! Callers branch on the variant: a database that cannot be reached is
//! [`StoreError::Unavailable`], one that refuses writes
//! [`StoreError::ReadOnly`], a schema that does not fit [`StoreError::Schema`],
//! everything else [`StoreError::Database`].
//! Messages carry the database's own words but never a connection URL's
//! password (connection errors are scrubbed) nor a bound value (diesel's
//! errors do not include binds, and no message here formats one).

use std::error::Error as StdError;
use std::fmt;

use diesel::result::{ConnectionError, DatabaseErrorKind, Error as DieselError};
use mattermost_tokens::StoreError;

/// A connection failure whose text has been scrubbed of credentials (the
/// driver's error may quote the connection URL, so it is not kept).
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct ConnectionFailure(String);

/// The context an error message needs: which backend, which table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ErrorContext<'a> {
    pub backend: &'static str,
    pub table: &'a str,
}

/// Maps an error from running a query.
pub(crate) fn query_error(e: DieselError, cx: ErrorContext<'_>) -> StoreError {
    let ErrorContext { backend, table } = cx;
    match &e {
        DieselError::DatabaseError(kind, info) => {
            let msg = info.message().to_owned();
            let lower = msg.to_ascii_lowercase();
            if matches!(kind, DatabaseErrorKind::ReadOnlyTransaction)
                || says::any(&lower, says::READ_ONLY)
            {
                return StoreError::ReadOnly {
                    message: format!("{backend} refuses writes to {table}: {msg}"),
                    source: Some(Box::new(e)),
                };
            }
            if says::any(&lower, says::LOCKED) {
                return StoreError::locked(&format!("using table {table}"), backend, e);
            }
            if matches!(
                kind,
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection
            ) || says::any(&lower, says::CONNECTION_TROUBLE)
            {
                return StoreError::unavailable(format!("{backend}: {}", scrub(&msg)), e);
            }
            if says::any(&lower, says::QUOTED_VALUE) {
                // The message may quote part of a stored value (a token):
                // keep neither it nor the driver error.
                let text = format!(
                    "{backend}: the database refused a value written to {table} (driver message withheld: it may quote the value)"
                );
                return StoreError::Database {
                    message: text.clone(),
                    source: Some(Box::new(Internal(text))),
                };
            }
            if says::any(&lower, says::MISSING_SCHEMA) {
                return StoreError::schema(
                    format!(
                        "{backend}: {msg} (does table {table} exist, and has the store's migrate() run on it?)"
                    ),
                    e,
                );
            }
            StoreError::database(format!("{backend}: {msg}"), e)
        }
        DieselError::DeserializationError(inner) => StoreError::database(
            format!("{backend}: unexpected value in {table}: {inner}"),
            e,
        ),
        DieselError::BrokenTransactionManager => {
            StoreError::unavailable(format!("{backend}: the connection is in a broken state"), e)
        }
        _ => StoreError::database(format!("{backend}: {e}"), e),
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
            source: Some(Box::new(ConnectionFailure(text))),
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
    let e = match e.downcast::<diesel_migrations::MigrationError>() {
        Ok(m) => {
            return StoreError::Database {
                message: format!("{}: migration failed: {m}", cx.backend),
                source: Some(m),
            };
        }
        Err(e) => e,
    };
    let text = scrub(&e.to_string());
    StoreError::Database {
        message: format!("{}: migration failed: {text}", cx.backend),
        source: Some(Box::new(ConnectionFailure(text))),
    }
}

/// A message for a failure that is not the database's (a panicked blocking
/// task, a pool that was closed).
#[derive(Debug)]
pub(crate) struct Internal(pub String);

impl fmt::Display for Internal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl StdError for Internal {}

/// Words of a database's message that say what kind of failure it is, in
/// lower case (diesel passes most drivers' errors on as text).
mod says {
    /// SQLite: "attempt to write a readonly database"; MariaDB/MySQL 1290:
    /// "... running with the --read-only option ..."; 1792: "Cannot execute
    /// statement in a READ ONLY transaction"; PostgreSQL 25006: "cannot
    /// execute UPDATE in a read-only transaction".
    pub const READ_ONLY: &[&str] = &[
        "readonly database",
        "--read-only",
        "read-only transaction",
        "read only transaction",
        "super-read-only",
    ];

    /// MySQL/MariaDB: "Incorrect string value: '\xF0\x9F...' for column
    /// ...", "Duplicate entry '...' for key ...".
    pub const QUOTED_VALUE: &[&str] = &["incorrect string value", "duplicate entry"];

    /// SQLite's `SQLITE_BUSY` / `SQLITE_LOCKED` after the busy timeout.
    pub const LOCKED: &[&str] = &[
        "database is locked",
        "database is busy",
        "database table is locked",
    ];

    /// mysql_async's non-server errors, and SQLite's missing file.
    pub const CONNECTION_TROUBLE: &[&str] = &[
        "input/output error",
        "io error",
        "connection reset",
        "broken pipe",
        "connection refused",
        "connection closed",
        "server has gone away",
        "lost connection",
        "unable to open database file",
    ];

    /// PostgreSQL: relation "x" does not exist / column "x" does not exist;
    /// MySQL: Table 'db.x' doesn't exist / Unknown column 'x'; SQLite: no
    /// such table / no such column.
    pub const MISSING_SCHEMA: &[&str] = &[
        "does not exist",
        "doesn't exist",
        "no such table",
        "no such column",
        "unknown column",
    ];

    /// Whether `lower` holds one of `words`.
    pub fn any(lower: &str, words: &[&str]) -> bool {
        words.iter().any(|w| lower.contains(w))
    }
}

/// Removes credentials from text that may quote a connection URL or a
/// key=value connection string: `scheme://user:secret@host` keeps the user
/// and loses the secret, `password=secret` loses the secret.
pub(crate) fn scrub(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends at the first '/', whitespace or quote; the
        // credentials end at its last '@'.
        let end = tail
            .find(|c: char| c == '/' || c.is_whitespace() || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match authority.rfind('@') {
            Some(at) => {
                let creds = &authority[..at];
                match creds.find(':') {
                    Some(colon) => {
                        out.push_str(&creds[..colon]);
                        out.push_str(":***");
                    }
                    None => out.push_str(creds),
                }
                out.push_str(&authority[at..]);
            }
            None => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    scrub_key_values(&out)
}

fn scrub_key_values(text: &str) -> String {
    let lower = text.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut pos = 0;
    while let Some(found) = lower[pos..].find("password=") {
        let start = pos + found + "password=".len();
        out.push_str(&text[pos..start]);
        out.push_str("***");
        let end = text[start..]
            .find(|c: char| c.is_whitespace() || c == '&' || c == ';')
            .map_or(text.len(), |e| start + e);
        pos = end;
    }
    out.push_str(&text[pos..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_hides_passwords() {
        assert_eq!(
            scrub("error connecting to postgres://app:s3cret@db.example:5432/app: refused"),
            "error connecting to postgres://app:***@db.example:5432/app: refused"
        );
        assert_eq!(
            scrub("mysql://root@127.0.0.1:3306/test"),
            "mysql://root@127.0.0.1:3306/test"
        );
        assert_eq!(
            scrub("host=db user=app password=s3cret dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
        assert_eq!(
            scrub("two: a://u:p1@h and b://v:p2@k/x?password=p3&x=1"),
            "two: a://u:***@h and b://v:***@k/x?password=***&x=1"
        );
        assert_eq!(scrub("no url here"), "no url here");
    }

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
