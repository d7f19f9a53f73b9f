//! SQLite: [`SqliteTokenStore`].

use mattermost_tokens::store::schema::Dialect;
use sqlx::Sqlite;
use sqlx::error::DatabaseError;
use sqlx::sqlite::SqliteQueryResult;

use crate::backend::ErrorClass;

/// A [`TokenStore`](mattermost_tokens::TokenStore) in a SQLite users table,
/// over the host's [`SqlitePool`](sqlx::SqlitePool).
///
/// SQLite has no `ADD COLUMN IF NOT EXISTS`: the migration reads
/// `pragma_table_info` and adds what is missing, in one `BEGIN IMMEDIATE`
/// transaction. Declared types follow SQLite's affinity rules (`VARCHAR(26)`
/// and `TEXT` both hold text of any length).
///
/// An in-memory database lives as long as its connection: give it a pool of
/// one connection that never expires, as in the [crate example](crate).
/// Several connections to one database file work; concurrent writers wait
/// for each other up to the pool's busy timeout (5 s by default in sqlx;
/// `SqliteConnectOptions::busy_timeout` sets it). A write that still cannot
/// get the lock is [`StoreError::Unavailable`](mattermost_tokens::StoreError::Unavailable)
/// saying the database is locked. The store's writes that queue up while
/// one commits are committed together (group commit, see
/// [`mattermost_tokens::store::group_commit`]). The store never changes the
/// database's journal mode or other persistent settings.
pub type SqliteTokenStore = crate::SqlxTokenStore<Sqlite>;

/// A [`CodeStore`](mattermost_tokens::magic_link::CodeStore) for magic-link
/// codes in a SQLite table, over the host's [`SqlitePool`](sqlx::SqlitePool); see
/// [`SqlxCodeStore`](crate::SqlxCodeStore).
///
/// Consuming a code is one `DELETE ... RETURNING` statement (SQLite 3.35
/// or later; the bundled SQLite is newer).
pub type SqliteCodeStore = crate::SqlxCodeStore<Sqlite>;

crate::backend::backend!(Sqlite, SqliteQueryResult, Dialect::Sqlite, {
    fn classify(error: &dyn DatabaseError) -> ErrorClass {
        // Extended result codes carry the primary code in their low byte.
        let code = error
            .code()
            .and_then(|c| c.parse::<i32>().ok())
            .unwrap_or(0)
            & 0xff;
        match code {
            // SQLITE_READONLY
            8 => ErrorClass::ReadOnly,
            // SQLITE_BUSY, SQLITE_LOCKED: the busy timeout ran out.
            5 | 6 => ErrorClass::Locked,
            // SQLITE_CANTOPEN
            14 => ErrorClass::Unavailable,
            // SQLITE_ERROR covers many things; these two are schema problems.
            1 if error.message().starts_with("no such table")
                || error.message().starts_with("no such column") =>
            {
                ErrorClass::Schema
            }
            _ => ErrorClass::Other,
        }
    }

    fn unique_violation(error: &dyn DatabaseError) -> Option<String> {
        // SQLITE_CONSTRAINT_UNIQUE: "UNIQUE constraint failed: t.a, t.b".
        let unique = error.code().as_deref() == Some("2067")
            || error.message().starts_with("UNIQUE constraint failed");
        unique.then(|| {
            error
                .message()
                .strip_prefix("UNIQUE constraint failed: ")
                .unwrap_or_default()
                .to_owned()
        })
    }
});
