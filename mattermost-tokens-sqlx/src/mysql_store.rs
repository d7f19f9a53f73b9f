//! MySQL and MariaDB: [`MySqlTokenStore`].

use sqlx::MySql;
use sqlx::error::DatabaseError;
use sqlx::mysql::{MySqlDatabaseError, MySqlQueryResult};

use crate::backend::{Backend, Bind, ColumnKind, ErrorClass, IndexInfo, TableRef, sealed};
use crate::config::KeyType;
use crate::queries::USER_ID;

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

impl sealed::Sealed for MySql {}

impl Backend for MySql {
    fn key_select(column: &str, key_type: KeyType) -> String {
        match key_type {
            // Unsigned integers do not decode as i64.
            KeyType::Integer => format!("CAST({column} AS SIGNED)"),
            // Binary strings and MariaDB's UUID type do not decode as text.
            _ => format!("CAST({column} AS CHAR)"),
        }
    }

    fn rows_affected(result: &MySqlQueryResult) -> u64 {
        result.rows_affected()
    }

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
            _ => ErrorClass::Other,
        }
    }

    fn error_code(error: &dyn DatabaseError) -> String {
        match error.try_downcast_ref::<MySqlDatabaseError>() {
            Some(e) => e.number().to_string(),
            None => error.code().map(|c| c.into_owned()).unwrap_or_default(),
        }
    }

    const MIGRATION_BEGIN: Option<&'static str> = None;
    const MIGRATION_LOCK: Option<&'static str> =
        Some("SELECT 1 FROM DUAL WHERE GET_LOCK('mattermost_tokens_migrate', 60) = 1");
    const MIGRATION_UNLOCK: Option<&'static str> =
        Some("SELECT RELEASE_LOCK('mattermost_tokens_migrate')");

    fn column_ddl(kind: ColumnKind) -> &'static str {
        match kind {
            ColumnKind::Id => "VARCHAR(26) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
            ColumnKind::Token => "TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NULL",
        }
    }

    fn code_table_ddl(table: TableRef<'_>, index: &str) -> Vec<String> {
        // InnoDB for the row lock `consume` takes; byte-wise collations so
        // that hashes and user ids compare exactly.
        vec![format!(
            "CREATE TABLE {} (\
             code_hash CHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \
             host_user_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             host_user_kind CHAR(1) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \
             expires_at BIGINT NOT NULL, \
             PRIMARY KEY (code_hash), \
             INDEX {index} (expires_at), \
             CHECK (host_user_kind IN ('i', 't'))) ENGINE=InnoDB",
            table.full
        )]
    }

    // MariaDB has DELETE ... RETURNING, MySQL has not.
    const DELETE_RETURNING: bool = false;

    fn is_deadlock(error: &dyn DatabaseError) -> bool {
        // ER_LOCK_DEADLOCK: InnoDB rolled the transaction back.
        error
            .try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|e| e.number() == 1213)
    }

    fn table_exists_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>) {
        (
            "SELECT 1 FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?"
                .into(),
            schema_and_name(table),
        )
    }

    fn columns_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>) {
        (
            "SELECT CAST(COLUMN_NAME AS CHAR), CAST(COLUMN_TYPE AS CHAR) \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION"
                .into(),
            schema_and_name(table),
        )
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

    fn indexes_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>) {
        (
            "SELECT CAST(INDEX_NAME AS CHAR), \
             CAST(CASE WHEN MAX(NON_UNIQUE) = 0 THEN '1' ELSE '0' END AS CHAR), \
             CAST(COALESCE(GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ','), '') AS CHAR), \
             CAST(CASE WHEN SUM(COLUMN_NAME IS NULL OR SUB_PART IS NOT NULL) = 0 \
               THEN '1' ELSE '0' END AS CHAR), \
             CAST('0' AS CHAR), CAST('' AS CHAR) \
             FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
             GROUP BY INDEX_NAME ORDER BY INDEX_NAME"
                .into(),
            schema_and_name(table),
        )
    }

    fn index_name_taken_query<'a>(
        _table: TableRef<'a>,
        _index: &'a str,
    ) -> Option<(String, Vec<Bind<'a>>)> {
        // Index names are the table's own.
        None
    }

    fn unique_index_ddl(table: TableRef<'_>, index: &str) -> String {
        format!("CREATE UNIQUE INDEX {index} ON {} ({USER_ID})", table.full)
    }

    fn drop_index_ddl(table: TableRef<'_>, index: &str, _found: &IndexInfo) -> String {
        format!("DROP INDEX {index} ON {}", table.full)
    }
}

fn schema_and_name(table: TableRef<'_>) -> Vec<Bind<'_>> {
    vec![
        table.schema.map_or(Bind::Null, Bind::Text),
        Bind::Text(table.name),
    ]
}
