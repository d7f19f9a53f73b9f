//! SQLite: [`SqliteTokenStore`].

use sqlx::Sqlite;
use sqlx::error::DatabaseError;
use sqlx::sqlite::SqliteQueryResult;

use crate::backend::{Backend, Bind, ErrorClass, IndexInfo, TableRef, sealed};
use crate::config::KeyType;
use crate::queries::USER_ID;

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
/// saying the database is locked. The store never changes the database's
/// journal mode or other persistent settings.
pub type SqliteTokenStore = crate::SqlxTokenStore<Sqlite>;

/// A [`CodeStore`](mattermost_tokens::magic_link::CodeStore) for magic-link
/// codes in a SQLite table, over the host's [`SqlitePool`](sqlx::SqlitePool); see
/// [`SqlxCodeStore`](crate::SqlxCodeStore).
///
/// Consuming a code is one `DELETE ... RETURNING` statement (SQLite 3.35
/// or later; the bundled SQLite is newer).
pub type SqliteCodeStore = crate::SqlxCodeStore<Sqlite>;

impl sealed::Sealed for Sqlite {}

impl Backend for Sqlite {
    fn key_select(column: &str, _key_type: KeyType) -> String {
        column.into()
    }

    fn rows_affected(result: &SqliteQueryResult) -> u64 {
        result.rows_affected()
    }

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

    const MIGRATION_BEGIN: Option<&'static str> = Some("BEGIN IMMEDIATE");
    const GROUP_COMMIT_BEGIN: Option<&'static str> = Some("BEGIN IMMEDIATE");
    const ALTER_MANY: bool = false;
    const TYPE_AFFINITY: bool = true;
    // INTEGER affinity; SQLite integers are 64-bit.
    const EXPIRY_COLUMN_DDL: &'static str = "INTEGER";

    fn table_exists_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>) {
        // The schema is a validated identifier; sqlite_master cannot be
        // chosen by a parameter.
        let schema = table.schema.unwrap_or("main");
        (
            format!(
                "SELECT 1 FROM {schema}.sqlite_master WHERE type = 'table' AND name = ? COLLATE NOCASE"
            ),
            vec![Bind::Text(table.name)],
        )
    }

    fn columns_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>) {
        (
            "SELECT name, type FROM pragma_table_info(?, ?)".into(),
            vec![
                Bind::Text(table.name),
                Bind::Text(table.schema.unwrap_or("main")),
            ],
        )
    }

    fn code_table_ddl(table: TableRef<'_>, index: &str) -> Vec<String> {
        // SQLite names the schema on the index, not on its table.
        let index = match table.schema {
            Some(schema) => format!("{schema}.{index}"),
            None => index.to_owned(),
        };
        vec![
            format!(
                "CREATE TABLE {} (\
                 code_hash CHAR(64) NOT NULL PRIMARY KEY, \
                 host_user_id VARCHAR(255) NOT NULL, \
                 host_user_kind CHAR(1) NOT NULL CHECK (host_user_kind IN ('i', 't')), \
                 expires_at BIGINT NOT NULL)",
                table.full
            ),
            format!("CREATE INDEX {index} ON {} (expires_at)", table.name),
        ]
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

    fn indexes_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>) {
        let schema = table.schema.unwrap_or("main");
        // origin `c`: made by CREATE INDEX; `u` and `pk` belong to the
        // table's definition and cannot be dropped.
        (
            "SELECT il.name, CAST(il.\"unique\" AS TEXT), \
             COALESCE((SELECT group_concat(name, ',') FROM \
               (SELECT ii.name FROM pragma_index_info(il.name, ?) ii ORDER BY ii.seqno)), ''), \
             CASE WHEN il.partial = 0 AND NOT EXISTS \
               (SELECT 1 FROM pragma_index_info(il.name, ?) ii WHERE ii.name IS NULL) \
               THEN '1' ELSE '0' END, \
             CASE WHEN il.origin = 'c' THEN '0' ELSE '1' END, '' \
             FROM pragma_index_list(?, ?) il ORDER BY il.name"
                .into(),
            vec![
                Bind::Text(schema),
                Bind::Text(schema),
                Bind::Text(table.name),
                Bind::Text(schema),
            ],
        )
    }

    fn index_name_taken_query<'a>(
        table: TableRef<'a>,
        index: &'a str,
    ) -> Option<(String, Vec<Bind<'a>>)> {
        // Tables and indexes share one namespace per schema.
        let schema = table.schema.unwrap_or("main");
        Some((
            format!("SELECT 1 FROM {schema}.sqlite_master WHERE name = ? COLLATE NOCASE"),
            vec![Bind::Text(index)],
        ))
    }

    fn unique_index_ddl(table: TableRef<'_>, index: &str) -> String {
        // SQLite names the schema on the index, not on its table.
        format!(
            "CREATE UNIQUE INDEX {} ON {} ({USER_ID})",
            qualified_index(table, index),
            table.name
        )
    }

    fn drop_index_ddl(table: TableRef<'_>, index: &str, _found: &IndexInfo) -> String {
        format!("DROP INDEX {}", qualified_index(table, index))
    }
}

fn qualified_index(table: TableRef<'_>, index: &str) -> String {
    match table.schema {
        Some(schema) => format!("{schema}.{index}"),
        None => index.to_owned(),
    }
}
