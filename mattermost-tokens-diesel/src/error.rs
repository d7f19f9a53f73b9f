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

/// Why a migration refused to touch the table. Returned (boxed) by the
/// migrations to diesel's harness, turned into [`StoreError::Schema`] by
/// [`migration_error`].
#[derive(Debug, thiserror::Error)]
pub(crate) enum SchemaProblem {
    #[error(
        "table {table} does not exist: create the host's users table before running the mattermost-tokens migration"
    )]
    MissingTable { table: String },
    #[error(
        "column {table}.{column} already exists as {found}, which cannot hold {expected}; change or rename it, then run the migration again"
    )]
    ColumnClash {
        table: String,
        column: String,
        found: String,
        expected: &'static str,
    },
    #[error(
        "column {table}.{column} already exists but is NOT NULL; it must be nullable (users without a token hold NULL)"
    )]
    NotNullable { table: String, column: String },
    #[error("table {table} exists but is not a magic-link code table ({problem}); {consequence}")]
    NotACodeTable {
        table: String,
        problem: String,
        consequence: &'static str,
    },
    #[error(
        "column {table}.{column} does not exist: run the add_mattermost_token_to_users_table migration first"
    )]
    MissingColumn { table: String, column: &'static str },
    #[error(
        "an index named {index} already exists on {table} but is not a unique index on mattermost_user_id alone; drop or rename it, then run the migration again (nothing was changed)"
    )]
    IndexClash { table: String, index: String },
    #[error(
        "cannot add the unique index on {table}.mattermost_user_id: {}, and a Mattermost user may be linked to one host user only. Nothing was changed. Find them with `SELECT mattermost_user_id, COUNT(*) FROM {table} WHERE mattermost_user_id IS NOT NULL GROUP BY mattermost_user_id HAVING COUNT(*) > 1`, set mattermost_user_id, mattermost_token and mattermost_token_id to NULL on every row but the right one of each (the next sync links those users again, or reports the conflict), then run the migration again",
        duplicate_links(*count)
    )]
    DuplicateLinks { table: String, count: Option<i64> },
    #[error(
        "the migration cannot read the columns of {table} through this connection type; run it through the store's migrate() or on one of: {supported}"
    )]
    UnsupportedConnection {
        table: String,
        supported: &'static str,
    },
}

/// How many duplicate links [`SchemaProblem::DuplicateLinks`] found.
fn duplicate_links(count: Option<i64>) -> String {
    match count {
        Some(1) => "1 Mattermost user id is linked to more than one row".to_owned(),
        Some(n) => format!("{n} Mattermost user ids are each linked to more than one row"),
        None => "a concurrent write linked a Mattermost user id to a second row".to_owned(),
    }
}

/// The context an error message needs: which backend, which table.
#[derive(Clone, Copy, Debug)]
pub(crate) struct ErrorContext<'a> {
    pub backend: &'static str,
    pub table: &'a str,
}

/// Whether `e` is a unique violation (PostgreSQL 23505, MySQL/MariaDB 1062,
/// SQLite `SQLITE_CONSTRAINT_UNIQUE`).
pub(crate) fn is_unique_violation(e: &DieselError) -> bool {
    matches!(
        e,
        DieselError::DatabaseError(DatabaseErrorKind::UniqueViolation, _)
    )
}

/// Maps an error from running a query.
pub(crate) fn query_error(e: DieselError, cx: ErrorContext<'_>) -> StoreError {
    let ErrorContext { backend, table } = cx;
    match &e {
        DieselError::DatabaseError(kind, info) => {
            let msg = info.message().to_owned();
            let lower = msg.to_ascii_lowercase();
            if matches!(kind, DatabaseErrorKind::ReadOnlyTransaction) || says_read_only(&lower) {
                return StoreError::ReadOnly {
                    message: format!("{backend} refuses writes to {table}: {msg}"),
                    source: Some(Box::new(e)),
                };
            }
            if is_locked(&lower) {
                return StoreError::locked(&format!("using table {table}"), backend, e);
            }
            if matches!(
                kind,
                DatabaseErrorKind::UnableToSendCommand | DatabaseErrorKind::ClosedConnection
            ) || is_connection_trouble(&lower)
            {
                return StoreError::unavailable(format!("{backend}: {}", scrub(&msg)), e);
            }
            if quotes_value(&lower) {
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
            if is_missing_schema(&lower) {
                return StoreError::schema(
                    format!(
                        "{backend}: {msg} (does table {table} exist, and has the mattermost-tokens migration been run on it?)"
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
    let e = match e.downcast::<SchemaProblem>() {
        Ok(p) => {
            return StoreError::Schema {
                message: p.to_string(),
                source: Some(p),
            };
        }
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

fn says_read_only(lower: &str) -> bool {
    // SQLite: "attempt to write a readonly database"; MariaDB/MySQL 1290:
    // "... running with the --read-only option ..."; MariaDB/MySQL 1792:
    // "Cannot execute statement in a READ ONLY transaction"; PostgreSQL
    // 25006: "cannot execute UPDATE in a read-only transaction".
    lower.contains("readonly database")
        || lower.contains("--read-only")
        || lower.contains("read-only transaction")
        || lower.contains("read only transaction")
        || lower.contains("super-read-only")
}

fn quotes_value(lower: &str) -> bool {
    // MySQL/MariaDB: "Incorrect string value: '\xF0\x9F...' for column ...",
    // "Duplicate entry '...' for key ...".
    lower.contains("incorrect string value") || lower.contains("duplicate entry")
}

fn is_connection_trouble(lower: &str) -> bool {
    // mysql_async's non-server errors reach diesel as plain strings.
    [
        "input/output error",
        "io error",
        "connection reset",
        "broken pipe",
        "connection refused",
        "connection closed",
        "server has gone away",
        "lost connection",
        "unable to open database file",
    ]
    .iter()
    .any(|p| lower.contains(p))
}

/// SQLite's `SQLITE_BUSY` / `SQLITE_LOCKED` after the busy timeout.
fn is_locked(lower: &str) -> bool {
    lower.contains("database is locked")
        || lower.contains("database is busy")
        || lower.contains("database table is locked")
}

fn is_missing_schema(lower: &str) -> bool {
    // PostgreSQL: relation "x" does not exist / column "x" does not exist;
    // MySQL: Table 'db.x' doesn't exist / Unknown column 'x';
    // SQLite: no such table / no such column.
    lower.contains("does not exist")
        || lower.contains("doesn't exist")
        || lower.contains("no such table")
        || lower.contains("no such column")
        || lower.contains("unknown column")
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
