//! The SQL both adapters run to read and change the schema, per database:
//! one text for both, so that a table looks the same whichever adapter made
//! it, and each reads what the other made.
//!
//! Names written into the text have been validated as identifiers; values
//! are bound. Every introspection query returns text columns, under the
//! names given, so an adapter reads them by position or by name.

use super::plan::ExistingIndex;
use super::steps::own_name;
use super::types::{ColumnKind, Dialect};
use super::{MIGRATION_LOCK_ID, MIGRATION_LOCK_NAME, USER_ID_COLUMN, code_index_name};

/// A query and its text parameters (`None` binds NULL).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Query {
    /// The query.
    pub sql: String,
    /// Its parameters, in placeholder order.
    pub params: Vec<Option<String>>,
}

fn query(sql: impl Into<String>, params: &[Option<&str>]) -> Query {
    Query {
        sql: sql.into(),
        params: params.iter().map(|p| p.map(str::to_owned)).collect(),
    }
}

/// A table name as configured, split: (schema, own name).
fn split(table: &str) -> (Option<&str>, &str) {
    match table.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, table),
    }
}

/// SQLite's schema of `table` (`main` unless qualified), and the table's
/// own name.
fn sqlite_split(table: &str) -> (&str, &str) {
    let (schema, name) = split(table);
    (schema.unwrap_or("main"), name)
}

/// A row (`found`) when `table` exists.
pub fn table_exists(dialect: Dialect, table: &str) -> Query {
    let (schema, name) = split(table);
    match dialect {
        Dialect::Postgres => query(
            "SELECT '1' AS found FROM pg_catalog.pg_class WHERE oid = to_regclass($1)",
            &[Some(table)],
        ),
        Dialect::MySql => query(
            "SELECT '1' AS found FROM information_schema.TABLES \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ?",
            &[schema, Some(name)],
        ),
        Dialect::Sqlite => {
            // The schema cannot be a parameter here (validated identifier).
            let (schema, name) = sqlite_split(table);
            query(
                format!(
                    "SELECT '1' AS found FROM {schema}.sqlite_master \
                     WHERE type = 'table' AND name = ? COLLATE NOCASE"
                ),
                &[Some(name)],
            )
        }
    }
}

/// The columns of `table` in order (none when there is no such table):
/// `name`, `sql_type` (as the database spells it), `nullable` (`1` or
/// `0`), `comment` (the column's comment; on SQLite, the table's
/// `CREATE TABLE` statement).
pub fn columns(dialect: Dialect, table: &str) -> Query {
    let (schema, name) = split(table);
    match dialect {
        Dialect::Postgres => query(
            "SELECT CAST(a.attname AS TEXT) AS name, format_type(a.atttypid, a.atttypmod) AS sql_type, \
             CASE WHEN a.attnotnull THEN '0' ELSE '1' END AS nullable, \
             col_description(a.attrelid, a.attnum) AS comment \
             FROM pg_catalog.pg_attribute a \
             WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped \
             ORDER BY a.attnum",
            &[Some(table)],
        ),
        Dialect::MySql => query(
            "SELECT CAST(COLUMN_NAME AS CHAR) AS name, CAST(COLUMN_TYPE AS CHAR) AS sql_type, \
             CAST(CASE WHEN IS_NULLABLE = 'YES' THEN '1' ELSE '0' END AS CHAR) AS nullable, \
             CAST(COLUMN_COMMENT AS CHAR) AS comment \
             FROM information_schema.COLUMNS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
             ORDER BY ORDINAL_POSITION",
            &[schema, Some(name)],
        ),
        Dialect::Sqlite => {
            let (schema, name) = sqlite_split(table);
            query(
                format!(
                    "SELECT name AS name, type AS sql_type, \
                     CASE WHEN \"notnull\" = 0 THEN '1' ELSE '0' END AS nullable, \
                     (SELECT m.sql FROM {schema}.sqlite_master m \
                      WHERE m.type = 'table' AND m.name = ? COLLATE NOCASE) AS comment \
                     FROM pragma_table_info(?, ?) ORDER BY cid"
                ),
                &[Some(name), Some(name), Some(schema)],
            )
        }
    }
}

/// The indexes of `table`, one row each: `name`, `is_unique` (`1`/`0`),
/// `key_columns` (comma-separated, in order), `complete` (`1` when it has
/// no expression, predicate or prefix shorter than an id, and is usable),
/// `is_constraint` (`1` when a constraint owns it), `schema_name` (the
/// schema it is in; PostgreSQL only) and `comment` (its comment; on
/// SQLite, its `CREATE INDEX` statement).
pub fn indexes(dialect: Dialect, table: &str) -> Query {
    let (schema, name) = split(table);
    match dialect {
        Dialect::Postgres => query(
            "SELECT CAST(c.relname AS TEXT) AS name, \
             CASE WHEN i.indisunique THEN '1' ELSE '0' END AS is_unique, \
             COALESCE((SELECT string_agg(CAST(a.attname AS TEXT), ',' ORDER BY k.n) \
               FROM unnest(CAST(i.indkey AS int2[])) WITH ORDINALITY AS k(attnum, n) \
               JOIN pg_catalog.pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum \
               WHERE k.n <= i.indnkeyatts), '') AS key_columns, \
             CASE WHEN i.indpred IS NULL AND i.indexprs IS NULL AND i.indisvalid \
               THEN '1' ELSE '0' END AS complete, \
             CASE WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_constraint k \
               WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid \
               AND k.contype IN ('p', 'u', 'x')) THEN '1' ELSE '0' END AS is_constraint, \
             CAST(n.nspname AS TEXT) AS schema_name, \
             obj_description(i.indexrelid, 'pg_class') AS comment \
             FROM pg_catalog.pg_index i \
             JOIN pg_catalog.pg_class c ON c.oid = i.indexrelid \
             JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace \
             WHERE i.indrelid = to_regclass($1) \
             ORDER BY c.relname",
            &[Some(table)],
        ),
        Dialect::MySql => query(
            "SELECT CAST(INDEX_NAME AS CHAR) AS name, \
             CAST(CASE WHEN MAX(NON_UNIQUE) = 0 THEN '1' ELSE '0' END AS CHAR) AS is_unique, \
             CAST(COALESCE(GROUP_CONCAT(COLUMN_NAME ORDER BY SEQ_IN_INDEX SEPARATOR ','), '') AS CHAR) \
               AS key_columns, \
             CAST(CASE WHEN SUM(COLUMN_NAME IS NULL OR COALESCE(SUB_PART, 26) < 26) = 0 \
               THEN '1' ELSE '0' END AS CHAR) AS complete, \
             CAST('0' AS CHAR) AS is_constraint, CAST('' AS CHAR) AS schema_name, \
             CAST(MAX(INDEX_COMMENT) AS CHAR) AS comment \
             FROM information_schema.STATISTICS \
             WHERE TABLE_SCHEMA = COALESCE(?, DATABASE()) AND TABLE_NAME = ? \
             GROUP BY INDEX_NAME ORDER BY INDEX_NAME",
            &[schema, Some(name)],
        ),
        Dialect::Sqlite => {
            // origin `c`: made by CREATE INDEX; `u` and `pk` belong to the
            // table's definition.
            let (schema, name) = sqlite_split(table);
            query(
                format!(
                    "SELECT il.name AS name, CAST(il.\"unique\" AS TEXT) AS is_unique, \
                     COALESCE((SELECT group_concat(name, ',') FROM \
                       (SELECT ii.name FROM pragma_index_info(il.name, ?) ii ORDER BY ii.seqno)), '') \
                       AS key_columns, \
                     CASE WHEN il.partial = 0 AND NOT EXISTS \
                       (SELECT 1 FROM pragma_index_info(il.name, ?) ii WHERE ii.name IS NULL) \
                       THEN '1' ELSE '0' END AS complete, \
                     CASE WHEN il.origin = 'c' THEN '0' ELSE '1' END AS is_constraint, \
                     '' AS schema_name, \
                     (SELECT m.sql FROM {schema}.sqlite_master m \
                      WHERE m.type = 'index' AND m.name = il.name) AS comment \
                     FROM pragma_index_list(?, ?) il ORDER BY il.name"
                ),
                &[Some(schema), Some(schema), Some(name), Some(schema)],
            )
        }
    }
}

/// How many other objects of the table's schema have the name `index`
/// (`n`, a `BIGINT`; index names are per schema on PostgreSQL and SQLite);
/// `None` where index names are the table's own (MySQL).
pub fn index_name_taken(dialect: Dialect, table: &str, index: &str) -> Option<Query> {
    match dialect {
        // Unquoted names are folded to lower case.
        Dialect::Postgres => Some(query(
            "SELECT COUNT(*) AS n FROM pg_catalog.pg_class c \
             WHERE c.relname = lower($2) AND c.relnamespace = \
             (SELECT t.relnamespace FROM pg_catalog.pg_class t WHERE t.oid = to_regclass($1))",
            &[Some(table), Some(index)],
        )),
        Dialect::MySql => None,
        Dialect::Sqlite => {
            // Tables and indexes share one namespace per schema.
            let (schema, _) = sqlite_split(table);
            Some(query(
                format!(
                    "SELECT COUNT(*) AS n FROM {schema}.sqlite_master WHERE name = ? COLLATE NOCASE"
                ),
                &[Some(index)],
            ))
        }
    }
}

/// One row per Mattermost user id held by more than one row of `table`:
/// `n`, how many rows hold it (a `BIGINT`).
pub fn duplicates(table: &str) -> Query {
    query(
        format!(
            "SELECT COUNT(*) AS n FROM {table} WHERE {USER_ID_COLUMN} IS NOT NULL \
             GROUP BY {USER_ID_COLUMN} HAVING COUNT(*) > 1"
        ),
        &[],
    )
}

/// The SQL type of a token column the migration adds (on MySQL with a
/// binary `utf8mb4` collation, so that tokens and ids are stored and
/// compared byte for byte whatever the table's default character set).
pub fn column_type(dialect: Dialect, kind: ColumnKind) -> &'static str {
    match (dialect, kind) {
        (Dialect::MySql, ColumnKind::Id) => "VARCHAR(26) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        (Dialect::MySql, ColumnKind::Token) => "TEXT CHARACTER SET utf8mb4 COLLATE utf8mb4_bin",
        (_, ColumnKind::Id) => "VARCHAR(26)",
        (_, ColumnKind::Token) => "TEXT",
    }
}

/// The SQL type of the expiry column: a 64-bit integer (`INTEGER` on
/// SQLite, whose integers all are).
pub const fn expiry_type(dialect: Dialect) -> &'static str {
    match dialect {
        Dialect::Sqlite => "INTEGER",
        _ => "BIGINT",
    }
}

/// Statements adding nullable `columns` (name, type) to `table`, each with
/// `marker` if given (a column comment; on SQLite an SQL comment in the
/// definition, which `sqlite_master` keeps).
pub fn add_columns(
    dialect: Dialect,
    table: &str,
    columns: &[(&str, &str)],
    marker: Option<&str>,
) -> Vec<String> {
    if columns.is_empty() {
        return Vec::new();
    }
    match dialect {
        Dialect::Postgres => {
            let adds: Vec<String> = columns
                .iter()
                .map(|(name, ty)| format!("ADD COLUMN IF NOT EXISTS {name} {ty} NULL"))
                .collect();
            let mut out = vec![format!("ALTER TABLE {table} {}", adds.join(", "))];
            out.extend(marker.into_iter().flat_map(|m| {
                columns
                    .iter()
                    .map(move |(name, _)| format!("COMMENT ON COLUMN {table}.{name} IS '{m}'"))
            }));
            out
        }
        Dialect::MySql => {
            let comment = marker
                .map(|m| format!(" COMMENT '{m}'"))
                .unwrap_or_default();
            let adds: Vec<String> = columns
                .iter()
                .map(|(name, ty)| format!("ADD COLUMN {name} {ty} NULL{comment}"))
                .collect();
            vec![format!("ALTER TABLE {table} {}", adds.join(", "))]
        }
        Dialect::Sqlite => {
            let comment = marker.map(|m| format!(" /* {m} */")).unwrap_or_default();
            columns
                .iter()
                .map(|(name, ty)| format!("ALTER TABLE {table} ADD COLUMN {name} {ty}{comment}"))
                .collect()
        }
    }
}

/// Statements dropping `columns` from `table`.
pub fn drop_columns(dialect: Dialect, table: &str, columns: &[String]) -> Vec<String> {
    if columns.is_empty() {
        return Vec::new();
    }
    let drop = |c: &String| match dialect {
        Dialect::Postgres => format!("DROP COLUMN IF EXISTS {c}"),
        _ => format!("DROP COLUMN {c}"),
    };
    if dialect.alters_many() {
        let drops: Vec<String> = columns.iter().map(drop).collect();
        vec![format!("ALTER TABLE {table} {}", drops.join(", "))]
    } else {
        columns
            .iter()
            .map(|c| format!("ALTER TABLE {table} {}", drop(c)))
            .collect()
    }
}

/// The prefix by which a MySQL `TEXT` `mattermost_user_id` (a host's own) is
/// indexed: far longer than an id, within InnoDB's key length in any row
/// format (191 * 4 bytes).
const TEXT_PREFIX_LEN: u32 = 191;

/// Statements creating the unique index `index` on `table`'s
/// `mattermost_user_id` (declared `column_type` when it exists already),
/// with `marker` if given (an index comment; on SQLite an SQL comment in
/// the definition).
pub fn create_user_id_index(
    dialect: Dialect,
    table: &str,
    index: &str,
    column_type: Option<&str>,
    marker: Option<&str>,
) -> Vec<String> {
    let column = USER_ID_COLUMN;
    match dialect {
        Dialect::Postgres => {
            // The index goes into the table's schema; the comment names it
            // as the catalog does (schema-qualified when not on the search
            // path).
            let mut out = vec![format!("CREATE UNIQUE INDEX {index} ON {table} ({column})")];
            out.extend(marker.map(|m| {
                format!(
                    "DO $mmt$ BEGIN EXECUTE format('COMMENT ON INDEX %s IS %L', \
                     (SELECT CAST(x.indexrelid AS regclass) FROM pg_catalog.pg_index x \
                      JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid \
                      WHERE x.indrelid = to_regclass('{table}') AND i.relname = '{index}'), \
                     '{m}'); END $mmt$"
                )
            }));
            out
        }
        Dialect::MySql => {
            let t = column_type.unwrap_or_default().to_ascii_lowercase();
            let key = if t.ends_with("text") || t.ends_with("blob") {
                format!("{column}({TEXT_PREFIX_LEN})")
            } else {
                column.to_owned()
            };
            let comment = marker
                .map(|m| format!(" COMMENT '{m}'"))
                .unwrap_or_default();
            vec![format!(
                "CREATE UNIQUE INDEX {index} ON {table} ({key}){comment}"
            )]
        }
        Dialect::Sqlite => {
            // SQLite names the schema on the index, not on its table.
            let (schema, name) = split(table);
            let index = schema.map_or(index.to_owned(), |s| format!("{s}.{index}"));
            let comment = marker.map(|m| format!(" /* {m} */")).unwrap_or_default();
            vec![format!(
                "CREATE UNIQUE INDEX {index} ON {name} ({column}{comment})"
            )]
        }
    }
}

/// The statement dropping `index` of `table`.
pub fn drop_index(dialect: Dialect, table: &str, index: &ExistingIndex) -> String {
    let name = &index.name;
    match dialect {
        // A UNIQUE constraint (as Laravel adds on PostgreSQL) owns its index.
        Dialect::Postgres if index.constraint => {
            format!("ALTER TABLE {table} DROP CONSTRAINT {name}")
        }
        // The schema as the catalog names it: an unqualified table was found
        // on the search path, which could find another index first.
        Dialect::Postgres => match &index.schema {
            Some(schema) => format!("DROP INDEX \"{}\".{name}", schema.replace('"', "\"\"")),
            None => format!("DROP INDEX {name}"),
        },
        Dialect::MySql => format!("DROP INDEX {name} ON {table}"),
        Dialect::Sqlite => match split(table).0 {
            Some(schema) => format!("DROP INDEX {schema}.{name}"),
            None => format!("DROP INDEX {name}"),
        },
    }
}

/// Statements creating the magic-link code table `table` and its index on
/// `expires_at` ([`code_index_name`]): `code_hash` (the code's SHA-256 in
/// hex, primary key), `host_user_id`, `host_user_kind` (`i` or `t`) and
/// `expires_at` (Unix seconds).
pub fn create_code_table(dialect: Dialect, table: &str) -> Vec<String> {
    let index = code_index_name(table);
    match dialect {
        Dialect::MySql => vec![format!(
            // InnoDB for the row lock `consume` takes; byte-wise collations
            // so that hashes and user ids compare exactly.
            "CREATE TABLE {table} (\
             code_hash VARCHAR(64) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \
             host_user_id VARCHAR(255) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
             host_user_kind CHAR(1) CHARACTER SET ascii COLLATE ascii_bin NOT NULL, \
             expires_at BIGINT NOT NULL, \
             PRIMARY KEY (code_hash), \
             INDEX {index} (expires_at), \
             CHECK (host_user_kind IN ('i', 't'))) ENGINE=InnoDB"
        )],
        _ => {
            // VARCHAR, not CHAR: on PostgreSQL a text parameter compared
            // with a `bpchar` column would cast the column and miss the
            // primary key's index. SQLite names the schema on the index.
            let (schema, name) = split(table);
            let (index, on) = match (dialect, schema) {
                (Dialect::Sqlite, Some(s)) => (format!("{s}.{index}"), name),
                _ => (index, table),
            };
            vec![
                format!(
                    "CREATE TABLE {table} (\
                     code_hash VARCHAR(64) NOT NULL PRIMARY KEY, \
                     host_user_id VARCHAR(255) NOT NULL, \
                     host_user_kind CHAR(1) NOT NULL CHECK (host_user_kind IN ('i', 't')), \
                     expires_at BIGINT NOT NULL)"
                ),
                format!("CREATE INDEX {index} ON {on} (expires_at)"),
            ]
        }
    }
}

/// A query taking the migration lock (a row when it is held), for the
/// databases whose lock is a statement: a session-level advisory lock on
/// PostgreSQL (`transaction`: one released at commit), `GET_LOCK` on
/// MySQL, which waits up to a minute.
pub fn lock(dialect: Dialect, transaction: bool) -> Option<String> {
    match dialect {
        Dialect::Postgres if transaction => {
            Some(format!("SELECT pg_advisory_xact_lock({MIGRATION_LOCK_ID})"))
        }
        Dialect::Postgres => Some(format!("SELECT pg_advisory_lock({MIGRATION_LOCK_ID})")),
        Dialect::MySql => Some(format!(
            "SELECT 1 FROM DUAL WHERE GET_LOCK('{MIGRATION_LOCK_NAME}', 60) = 1"
        )),
        Dialect::Sqlite => None,
    }
}

/// The statement releasing [`lock`] where it outlives transactions.
pub fn unlock(dialect: Dialect) -> Option<String> {
    match dialect {
        Dialect::Postgres => Some(format!("SELECT pg_advisory_unlock({MIGRATION_LOCK_ID})")),
        Dialect::MySql => Some(format!("SELECT RELEASE_LOCK('{MIGRATION_LOCK_NAME}')")),
        Dialect::Sqlite => None,
    }
}

/// `table`'s own name, without a schema.
pub fn table_name(table: &str) -> &str {
    own_name(table)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ddl() {
        let marker = Some("m");
        assert_eq!(
            add_columns(
                Dialect::Sqlite,
                "users",
                &[("a", "TEXT"), ("b", "INTEGER")],
                marker
            ),
            [
                "ALTER TABLE users ADD COLUMN a TEXT /* m */",
                "ALTER TABLE users ADD COLUMN b INTEGER /* m */"
            ]
        );
        assert_eq!(
            add_columns(Dialect::MySql, "users", &[("a", "BIGINT")], None),
            ["ALTER TABLE users ADD COLUMN a BIGINT NULL"]
        );
        let pg = add_columns(Dialect::Postgres, "s.users", &[("a", "TEXT")], marker);
        assert_eq!(pg[1], "COMMENT ON COLUMN s.users.a IS 'm'");
        assert_eq!(
            drop_columns(Dialect::MySql, "users", &["a".into(), "b".into()]),
            ["ALTER TABLE users DROP COLUMN a, DROP COLUMN b"]
        );
        assert_eq!(
            create_user_id_index(Dialect::MySql, "users", "i", Some("text"), marker),
            ["CREATE UNIQUE INDEX i ON users (mattermost_user_id(191)) COMMENT 'm'"]
        );
        assert_eq!(
            create_user_id_index(Dialect::Sqlite, "main.users", "i", None, None),
            ["CREATE UNIQUE INDEX main.i ON users (mattermost_user_id)"]
        );
        assert_eq!(
            create_code_table(Dialect::Sqlite, "app.codes")[1],
            "CREATE INDEX app.codes_expires_at_idx ON codes (expires_at)"
        );
        assert!(duplicates("app.users").sql.contains("FROM app.users "));
        assert_eq!(table_name("app.users"), "users");
    }
}
