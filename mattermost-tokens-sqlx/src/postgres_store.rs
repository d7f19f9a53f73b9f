//! PostgreSQL: [`PgTokenStore`].

use sqlx::Postgres;
use sqlx::error::DatabaseError;
use sqlx::postgres::PgQueryResult;

use crate::backend::{Backend, Bind, ErrorClass, IndexInfo, TableRef, sealed};
use crate::config::KeyType;
use crate::queries::USER_ID;

/// A [`TokenStore`](mattermost_tokens::TokenStore) in a PostgreSQL users
/// table, over the host's [`PgPool`](sqlx::PgPool).
///
/// Integer keys may be `BIGINT`, `INTEGER` or `SMALLINT`; text keys `TEXT`,
/// `VARCHAR` or `CHAR`; a native `uuid` key needs
/// [`KeyType::Uuid`]. The migration runs in one transaction under an
/// advisory lock.
///
/// ```no_run
/// # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
/// use mattermost_tokens_sqlx::{KeyType, PgTokenStore, sqlx::PgPool};
///
/// let pool = PgPool::connect("postgres://app@localhost/app").await?;
/// let store = PgTokenStore::new(pool)
///     .with_table_name("accounts")?
///     .with_key_column("uuid")?
///     .with_key_type(KeyType::Uuid);
/// store.migrate().await?;
/// # Ok(()) }
/// ```
pub type PgTokenStore = crate::SqlxTokenStore<Postgres>;

/// A [`CodeStore`](mattermost_tokens::magic_link::CodeStore) for magic-link
/// codes in a PostgreSQL table, over the host's [`PgPool`](sqlx::PgPool); see
/// [`SqlxCodeStore`](crate::SqlxCodeStore).
///
/// Consuming a code is one `DELETE ... RETURNING` statement.
pub type PgCodeStore = crate::SqlxCodeStore<Postgres>;

impl sealed::Sealed for Postgres {}

impl Backend for Postgres {
    fn placeholder(n: usize) -> String {
        format!("${n}")
    }

    fn key_param(n: usize, key_type: KeyType) -> String {
        // Casting the parameter, not the column, keeps the key's index usable.
        match key_type {
            KeyType::Uuid => format!("${n}::uuid"),
            _ => format!("${n}"),
        }
    }

    fn key_select(column: &str, key_type: KeyType) -> String {
        match key_type {
            KeyType::Integer => format!("{column}::int8"),
            _ => format!("{column}::text"),
        }
    }

    const NATIVE_UUID: bool = true;

    fn rows_affected(result: &PgQueryResult) -> u64 {
        result.rows_affected()
    }

    fn classify(error: &dyn DatabaseError) -> ErrorClass {
        let code = error.code().unwrap_or_default();
        match &*code {
            // Connection exceptions, authentication failures, shutdown,
            // too many connections.
            c if c.starts_with("08") || c.starts_with("28") => ErrorClass::Unavailable,
            "57P01" | "57P02" | "57P03" | "53300" => ErrorClass::Unavailable,
            // read_only_sql_transaction (also what a hot standby answers).
            "25006" => ErrorClass::ReadOnly,
            // undefined table / column / schema / function or operator.
            "42P01" | "42703" | "3F000" | "42883" => ErrorClass::Schema,
            _ => ErrorClass::Other,
        }
    }

    const MIGRATION_BEGIN: Option<&'static str> = Some("BEGIN");
    // Released at commit or rollback; the number is this crate's own
    // (ASCII "mmtokmig").
    const MIGRATION_LOCK: Option<&'static str> =
        Some("SELECT pg_advisory_xact_lock(7885631419488627047)");

    fn table_exists_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>) {
        (
            "SELECT 1 FROM pg_catalog.pg_class WHERE oid = to_regclass($1)".into(),
            vec![Bind::Text(table.full)],
        )
    }

    fn columns_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>) {
        (
            "SELECT a.attname::text, format_type(a.atttypid, a.atttypmod) \
             FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum"
                .into(),
            vec![Bind::Text(table.full)],
        )
    }

    fn code_table_ddl(table: TableRef<'_>, index: &str) -> Vec<String> {
        // VARCHAR, not CHAR: a text parameter compared with a `bpchar`
        // column would cast the column and miss the primary key's index.
        vec![
            format!(
                "CREATE TABLE {} (\
                 code_hash VARCHAR(64) NOT NULL PRIMARY KEY, \
                 host_user_id VARCHAR(255) NOT NULL, \
                 host_user_kind CHAR(1) NOT NULL CHECK (host_user_kind IN ('i', 't')), \
                 expires_at BIGINT NOT NULL)",
                table.full
            ),
            format!("CREATE INDEX {index} ON {} (expires_at)", table.full),
        ]
    }

    fn unique_violation(error: &dyn DatabaseError) -> Option<String> {
        // unique_violation; the constraint is the index's name.
        (error.code().as_deref() == Some("23505"))
            .then(|| error.constraint().unwrap_or_default().to_owned())
    }

    fn indexes_query<'a>(table: TableRef<'a>) -> (String, Vec<Bind<'a>>) {
        (
            "SELECT c.relname::text, \
             CASE WHEN i.indisunique THEN '1' ELSE '0' END, \
             COALESCE((SELECT string_agg(a.attname::text, ',' ORDER BY k.n) \
               FROM unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, n) \
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
               WHERE k.n <= i.indnkeyatts), ''), \
             CASE WHEN i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid \
               THEN '1' ELSE '0' END, \
             CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k \
               WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid \
               AND k.contype IN ('p', 'u', 'x')) THEN '1' ELSE '0' END, \
             n.nspname::text \
             FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indrelid = to_regclass($1) \
             ORDER BY c.relname"
                .into(),
            vec![Bind::Text(table.full)],
        )
    }

    fn index_name_taken_query<'a>(
        table: TableRef<'a>,
        index: &'a str,
    ) -> Option<(String, Vec<Bind<'a>>)> {
        // Unquoted names are folded to lower case.
        Some((
            "SELECT 1 FROM pg_catalog.pg_class c \
             WHERE c.relname = lower($2) AND c.relnamespace = \
             (SELECT t.relnamespace FROM pg_catalog.pg_class t WHERE t.oid = to_regclass($1))"
                .into(),
            vec![Bind::Text(table.full), Bind::Text(index)],
        ))
    }

    fn unique_index_ddl(table: TableRef<'_>, index: &str) -> String {
        // The index goes into the table's schema.
        format!("CREATE UNIQUE INDEX {index} ON {} ({USER_ID})", table.full)
    }

    fn drop_index_ddl(table: TableRef<'_>, index: &str, found: &IndexInfo) -> String {
        if found.constraint {
            // A UNIQUE constraint (as Laravel adds on PostgreSQL) owns its
            // index.
            return format!("ALTER TABLE {} DROP CONSTRAINT {index}", table.full);
        }
        // The schema as the catalog names it: an unqualified table was
        // found on the search path, which could find another index first.
        match &found.schema {
            Some(schema) => format!("DROP INDEX \"{}\".{index}", schema.replace('"', "\"\"")),
            None => format!("DROP INDEX {index}"),
        }
    }
}
