//! MySQL and MariaDB: [`MySqlTokenStore`].

use mattermost_tokens::store::schema::Dialect;
use sqlx::MySql;
use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlDatabaseError, MySqlQueryResult};

use crate::backend::ErrorClass;

/// A [`TokenStore`](mattermost_tokens::TokenStore) in a MySQL or MariaDB
/// users table, over the host's [`MySqlPool`](sqlx::MySqlPool).
///
/// Integer keys may be signed or unsigned (Laravel's `BIGINT UNSIGNED`
/// auto-increment); they are read as `i64`. Text and UUID keys (`CHAR(36)`,
/// MariaDB's `UUID`) are compared as the column's collation compares them.
/// The text columns are added as `utf8mb4` with a binary collation, so
/// tokens and ids are stored and compared byte for byte whatever the
/// table's default character set; the expiry column is a `BIGINT`.
///
/// MySQL commits each DDL statement on its own: the migration checks the
/// table completely, then adds the missing text columns in a single
/// `ALTER TABLE` and the expiry column in another, under a `GET_LOCK` lock.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mattermost_tokens_sqlx::{MySqlTokenStore, sqlx::MySqlPool};
///
/// let pool = MySqlPool::connect("mysql://app@localhost/app").await?;
/// let store = MySqlTokenStore::new(pool);
/// store.migrate().await?;
/// # Ok(()) }
/// ```
pub type MySqlTokenStore = crate::SqlxTokenStore<MySql>;

/// A [`CodeStore`](mattermost_tokens::magic_link::CodeStore) for magic-link
/// codes in a MySQL or MariaDB table, over the host's [`MySqlPool`](sqlx::MySqlPool); see
/// [`SqlxCodeStore`](crate::SqlxCodeStore).
///
/// Consuming a code is a short transaction: `SELECT ... FOR UPDATE`, then
/// `DELETE` (MySQL has no `DELETE ... RETURNING`). The table is InnoDB.
pub type MySqlCodeStore = crate::SqlxCodeStore<MySql>;

crate::backend::backend!(MySql, MySqlQueryResult, Dialect::MySql, {
    fn classify(error: &dyn DatabaseError) -> ErrorClass {
        let Some(e) = error.try_downcast_ref::<MySqlDatabaseError>() else {
            return ErrorClass::Other;
        };
        match e.number() {
            // Too many connections, host blocked, access denied, shutdown.
            1040 | 1045 | 1053 | 1129 | 1130 | 1203 => ErrorClass::Unavailable,
            // --read-only, read-only transaction, read-only mode.
            1290 | 1792 | 1836 => ErrorClass::ReadOnly,
            // No such table, unknown column, unknown database.
            1146 | 1054 | 1049 => ErrorClass::Schema,
            // Messages quoting the offending value: duplicate entry,
            // truncated / incorrect / illegal value.
            1062 | 1292 | 1366 | 1367 | 1586 => ErrorClass::Redact,
            // ER_LOCK_DEADLOCK: InnoDB rolled the transaction back.
            1213 => ErrorClass::Deadlock,
            _ => ErrorClass::Other,
        }
    }

    fn error_code(error: &dyn DatabaseError) -> String {
        match error.try_downcast_ref::<MySqlDatabaseError>() {
            Some(e) => e.number().to_string(),
            None => error.code().map(|c| c.into_owned()).unwrap_or_default(),
        }
    }

    fn unique_violation(error: &dyn DatabaseError) -> Option<String> {
        let e = error.try_downcast_ref::<MySqlDatabaseError>()?;
        // ER_DUP_ENTRY: "Duplicate entry '<value>' for key '<index>'" (MySQL
        // 8 writes the key as `table.index`). Only the key's name is kept:
        // the value is the last thing that may be quoted.
        (e.number() == 1062).then(|| {
            e.message()
                .rsplit_once(" for key '")
                .and_then(|(_, key)| key.strip_suffix('\''))
                .unwrap_or_default()
                .to_owned()
        })
    }
});
