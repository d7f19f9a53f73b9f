//! What a database error means for the store, decided once for both
//! adapters: each adapter tells the [`ErrorClass`] of a driver error (from
//! the database's own codes where the driver passes them on, from its words
//! where it passes on only text), and [`ErrorClass::error`] makes the
//! [`StoreError`] callers branch on.
//!
//! Messages never carry a bound value (no statement here formats one), a
//! driver message that may quote a stored value ([`ErrorClass::Redact`]),
//! nor a connection URL's password ([`scrub_credentials`]).

use std::error::Error as StdError;

use crate::store::StoreError;

/// How an error the database reported is surfaced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ErrorClass {
    /// The server cannot be reached, refuses connections or went away:
    /// [`StoreError::Unavailable`].
    Unavailable,
    /// The database's lock could not be had within the busy timeout:
    /// [`StoreError::Unavailable`] saying so ([`StoreError::locked`]).
    Locked,
    /// A table or column is missing or of the wrong kind:
    /// [`StoreError::Schema`].
    Schema,
    /// The database refuses writes: [`StoreError::ReadOnly`].
    ReadOnly,
    /// The driver's message may quote a stored value (a token): a
    /// [`StoreError::Database`] whose message leaves it out.
    Redact,
    /// The database chose the transaction as a deadlock victim and rolled
    /// it back (MySQL/MariaDB 1213): nothing was written, and running it
    /// again is safe. A [`StoreError::Database`] once retries are spent.
    Deadlock,
    /// Anything else: [`StoreError::Database`].
    Other,
}

/// Words of a database's message that say what kind of failure it is, in
/// lower case, checked in this order.
const SAYS: &[(ErrorClass, &[&str])] = &[
    // MySQL/MariaDB 1213: "Deadlock found when trying to get lock; try
    // restarting transaction".
    (ErrorClass::Deadlock, &["deadlock found"]),
    // SQLite: "attempt to write a readonly database"; MariaDB/MySQL 1290:
    // "... running with the --read-only option ..."; 1792: "Cannot execute
    // statement in a READ ONLY transaction"; PostgreSQL 25006: "cannot
    // execute UPDATE in a read-only transaction".
    (
        ErrorClass::ReadOnly,
        &[
            "readonly database",
            "--read-only",
            "read-only transaction",
            "read only transaction",
            "super-read-only",
        ],
    ),
    // SQLite's SQLITE_BUSY / SQLITE_LOCKED after the busy timeout.
    (
        ErrorClass::Locked,
        &[
            "database is locked",
            "database is busy",
            "database table is locked",
        ],
    ),
    // mysql_async's non-server errors, and SQLite's missing file.
    (
        ErrorClass::Unavailable,
        &[
            "input/output error",
            "io error",
            "connection reset",
            "broken pipe",
            "connection refused",
            "connection closed",
            "server has gone away",
            "lost connection",
            "unable to open database file",
        ],
    ),
    // MySQL/MariaDB: "Incorrect string value: '\xF0\x9F...' for column
    // ...", "Duplicate entry '...' for key ...".
    (
        ErrorClass::Redact,
        &["incorrect string value", "duplicate entry"],
    ),
    // PostgreSQL: relation "x" does not exist / column "x" does not exist;
    // MySQL: Table 'db.x' doesn't exist / Unknown column 'x'; SQLite: no
    // such table / no such column.
    (
        ErrorClass::Schema,
        &[
            "does not exist",
            "doesn't exist",
            "no such table",
            "no such column",
            "unknown column",
        ],
    ),
];

impl ErrorClass {
    /// The class a database's message says, for drivers that pass errors on
    /// as text only (diesel's, for most of its drivers).
    pub fn of_message(message: &str) -> ErrorClass {
        let lower = message.to_ascii_lowercase();
        SAYS.iter()
            .find(|(_, words)| words.iter().any(|w| lower.contains(w)))
            .map_or(ErrorClass::Other, |(class, _)| *class)
    }

    /// The store's error for a failure of this class met while doing `what`
    /// (`"reading tokens"`) on `table` of a `backend` database. `detail` is
    /// what the driver said, scrubbed of credentials ([`scrub_credentials`]);
    /// it is left out of [`Redact`](ErrorClass::Redact) errors, whose
    /// `source` the adapter must have made safe too.
    pub fn error(
        self,
        what: &str,
        backend: &str,
        table: &str,
        detail: &str,
        source: impl StdError + Send + Sync + 'static,
    ) -> StoreError {
        let said = if detail.is_empty() {
            String::new()
        } else {
            format!(": {detail}")
        };
        match self {
            ErrorClass::Locked => StoreError::locked(what, backend, source),
            ErrorClass::Unavailable => StoreError::unavailable(
                format!("{what}: {backend} cannot be reached or the connection broke{said}"),
                source,
            ),
            ErrorClass::Schema => StoreError::schema(
                format!(
                    "{what}: {backend}{said} (does table `{table}` exist, and has the store's \
                     migrate() run on it?)"
                ),
                source,
            ),
            ErrorClass::ReadOnly => StoreError::ReadOnly {
                message: format!(
                    "{what}: the {backend} database refuses writes to `{table}`{said}"
                ),
                source: Some(Box::new(source)),
            },
            ErrorClass::Redact => StoreError::database(
                format!(
                    "{what}: {backend} refused a value written to `{table}` (driver message \
                     withheld: it may quote the value)"
                ),
                source,
            ),
            ErrorClass::Deadlock => StoreError::database(
                format!(
                    "{what}: {backend} rolled the transaction back as a deadlock victim; nothing \
                     was written, try again"
                ),
                source,
            ),
            ErrorClass::Other => {
                StoreError::database(format!("{what}: {backend} error{said}"), source)
            }
        }
    }
}

/// What a driver or a pool said, kept as an error's source where the
/// original error is not (it may quote a connection URL, or it is not an
/// error type). Scrub it ([`scrub_credentials`]) before wrapping it.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct DriverMessage(pub String);

/// Removes credentials from text that may quote a connection URL or a
/// key=value connection string: `scheme://user:secret@host` keeps the user
/// and loses the secret, `password=secret` loses the secret.
pub fn scrub_credentials(text: &str) -> String {
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
            scrub_credentials(
                "error connecting to postgres://app:s3cret@db.example:5432/app: refused"
            ),
            "error connecting to postgres://app:***@db.example:5432/app: refused"
        );
        assert_eq!(
            scrub_credentials("mysql://root@127.0.0.1:3306/test"),
            "mysql://root@127.0.0.1:3306/test"
        );
        assert_eq!(
            scrub_credentials("host=db user=app password=s3cret dbname=x"),
            "host=db user=app password=*** dbname=x"
        );
        assert_eq!(
            scrub_credentials("two: a://u:p1@h and b://v:p2@k/x?password=p3&x=1"),
            "two: a://u:***@h and b://v:***@k/x?password=***&x=1"
        );
        assert_eq!(scrub_credentials("no url here"), "no url here");
    }

    #[test]
    fn messages_say_their_class() {
        let cases = [
            ("attempt to write a readonly database", ErrorClass::ReadOnly),
            ("database is locked", ErrorClass::Locked),
            ("Lost connection to MySQL server", ErrorClass::Unavailable),
            ("Duplicate entry 'tok' for key 'x'", ErrorClass::Redact),
            ("relation \"users\" does not exist", ErrorClass::Schema),
            (
                "Deadlock found when trying to get lock",
                ErrorClass::Deadlock,
            ),
            ("syntax error", ErrorClass::Other),
        ];
        for (message, class) in cases {
            assert_eq!(ErrorClass::of_message(message), class, "{message}");
        }
    }

    #[test]
    fn redacted_errors_leave_the_detail_out() {
        let source = std::io::Error::other("withheld");
        let e =
            ErrorClass::Redact.error("storing", "MySQL", "users", "Duplicate entry 'tok'", source);
        assert!(!e.to_string().contains("tok'"), "{e}");
        let e = ErrorClass::ReadOnly.error(
            "storing",
            "SQLite",
            "users",
            "",
            std::io::Error::other("x"),
        );
        assert!(matches!(e, StoreError::ReadOnly { .. }));
    }
}
