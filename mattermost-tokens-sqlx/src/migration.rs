//! The crate's two migrations:
//!
//! - `add_mattermost_token_to_users_table` ([`MIGRATION_NAME`]) adds the
//!   three nullable columns to the host's users table, and takes them away
//!   again ([`SqlxTokenStore::migrate`](crate::SqlxTokenStore::migrate));
//! - `create_mattermost_magic_link_codes_table` ([`CODES_MIGRATION_NAME`])
//!   creates the magic-link code table, and drops it again
//!   ([`SqlxCodeStore::migrate`](crate::SqlxCodeStore::migrate)).
//!
//! # Why not sqlx's `Migrator`
//!
//! sqlx's [`Migrator`](sqlx::migrate::Migrator) can keep its records in a
//! table of our own (`dangerous_set_table_name`), but two things it assumes
//! do not hold here:
//!
//! - its tracking table is keyed by version alone, while this migration's SQL
//!   depends on the configured users table: a database with two stores (two
//!   tenants' tables, `app.users` beside `users`, or parallel tests) would
//!   see the second store's migration as "already applied" or as a checksum
//!   mismatch;
//! - it re-checks a checksum of the SQL on every run, but the statements must
//!   depend on what is already there (SQLite has no
//!   `ADD COLUMN IF NOT EXISTS`, and columns added by hand or by the Laravel
//!   migration this library ports must be accepted).
//!
//! So each migration inspects the table, checks everything, then alters it,
//! and records itself in [`MIGRATIONS_TABLE`], keyed by (table, version).
//! The host's own sqlx migrations (`_sqlx_migrations`) never see them.
//!
//! # Steps, per database
//!
//! A lock keeps two processes starting at once from migrating together
//! (PostgreSQL: a transaction-scoped advisory lock; MySQL/MariaDB:
//! `GET_LOCK`; SQLite: `BEGIN IMMEDIATE`). Then: the users table must exist,
//! with the key column of the configured [`KeyType`]; each
//! of the three columns is either absent (added) or present with a
//! compatible text type (kept as is); a clashing type stops the migration
//! with [`StoreError::Schema`] before anything is changed. PostgreSQL and
//! SQLite run it all in one transaction. MySQL commits every DDL statement
//! on its own, so there everything is checked first and the columns are
//! added by one `ALTER TABLE`.
//!
//! The code table migration takes the same lock, then creates the table
//! and its index on `expires_at` when the table is absent. A table of that
//! name that exists already must have the code table's columns (a host
//! table that happens to have the name is neither taken over nor dropped:
//! [`StoreError::Schema`]). Its undo drops the table.

use mattermost_tokens::StoreError;
use sqlx::{AssertSqlSafe, Connection, Pool, SqlSafeStr, SqlStr};

use crate::backend::{Backend, Bind, ColumnKind, TableRef};
use crate::code_store::{CODE_HASH, EXPIRES_AT, HOST_USER_ID, HOST_USER_KIND};
use crate::config::{KeyType, Target};
use crate::error::from_sqlx;
use crate::queries::{TOKEN, TOKEN_ID, USER_ID};

/// The migration's version, as in the Laravel migration file it ports
/// (`2026_01_26_000003_add_mattermost_token_to_users_table.php`).
pub const MIGRATION_VERSION: i64 = 20260126000003;

/// The migration's name.
pub const MIGRATION_NAME: &str = "add_mattermost_token_to_users_table";

/// The code table migration's version.
pub const CODES_MIGRATION_VERSION: i64 = 20260126000004;

/// The code table migration's name.
pub const CODES_MIGRATION_NAME: &str = "create_mattermost_magic_link_codes_table";

/// The table recording which migrations have been applied to which tables:
/// one row per (table, version), the table being a users table
/// ([`MIGRATION_VERSION`]) or a code table ([`CODES_MIGRATION_VERSION`]).
/// Created by the first `migrate()` of either store.
pub const MIGRATIONS_TABLE: &str = "_mattermost_tokens_migrations";

/// The shortest text an id column may hold (Mattermost ids are 26
/// characters); a token value is at least as long.
const ID_LEN: u32 = 26;

/// Below this length an encrypted token envelope (`mmt1:<kid>:<base64>`,
/// about 100 characters) may not fit; such a column works for plain tokens
/// and draws a warning.
const ENVELOPE_LEN: u32 = 128;

struct Column {
    name: &'static str,
    kind: ColumnKind,
}

const COLUMNS: [Column; 3] = [
    Column {
        name: USER_ID,
        kind: ColumnKind::Id,
    },
    Column {
        name: TOKEN,
        kind: ColumnKind::Token,
    },
    Column {
        name: TOKEN_ID,
        kind: ColumnKind::Id,
    },
];

/// A declared column type, as far as the migration cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum SqlType {
    Integer,
    /// Variable-length text, with its limit if it has one.
    Text(Option<u32>),
    /// Blank-padded `CHAR(n)`.
    Fixed(u32),
    Uuid,
    /// SQLite column declared without a type: holds what it is given.
    Untyped,
    Other,
}

fn parse_type(raw: &str, affinity: bool) -> SqlType {
    let t = raw.trim().to_ascii_lowercase();
    if affinity {
        // SQLite's rules (https://sqlite.org/datatype3.html#affinity_name_examples):
        // lengths are not enforced.
        return if t.is_empty() {
            SqlType::Untyped
        } else if t.contains("int") {
            SqlType::Integer
        } else if ["char", "clob", "text"].iter().any(|w| t.contains(w)) {
            SqlType::Text(None)
        } else if t == "uuid" {
            SqlType::Uuid
        } else {
            SqlType::Other
        };
    }
    let (base, len) = match t.split_once('(') {
        Some((b, rest)) => (
            b,
            rest.split([')', ','])
                .next()
                .and_then(|n| n.trim().parse::<u32>().ok()),
        ),
        None => (t.as_str(), None),
    };
    let base = base
        .split_whitespace()
        .filter(|w| !matches!(*w, "unsigned" | "signed" | "zerofill"))
        .collect::<Vec<_>>()
        .join(" ");
    match base.as_str() {
        "smallint" | "integer" | "int" | "bigint" | "tinyint" | "mediumint" | "int2" | "int4"
        | "int8" | "serial" | "bigserial" | "smallserial" => SqlType::Integer,
        "text" | "mediumtext" | "longtext" | "clob" => SqlType::Text(None),
        "tinytext" => SqlType::Text(Some(255)),
        "character varying" | "varchar" | "nvarchar" => SqlType::Text(len),
        "character" | "char" | "bpchar" | "nchar" => SqlType::Fixed(len.unwrap_or(1)),
        "uuid" => SqlType::Uuid,
        _ => SqlType::Other,
    }
}

fn key_column_fits(key_type: KeyType, ty: SqlType, native_uuid: bool) -> bool {
    use SqlType::*;
    match key_type {
        KeyType::Integer => matches!(ty, Integer | Untyped),
        KeyType::Text if native_uuid => matches!(ty, Text(_) | Fixed(_)),
        KeyType::Uuid if native_uuid => ty == Uuid,
        _ => matches!(ty, Text(_) | Fixed(_) | Uuid | Untyped),
    }
}

fn store_column_fits(kind: ColumnKind, ty: SqlType) -> bool {
    match (kind, ty) {
        (_, SqlType::Untyped | SqlType::Text(None)) => true,
        (_, SqlType::Text(Some(n))) => n >= ID_LEN,
        // CHAR(n) pads shorter values with blanks: only an id of exactly n
        // characters comes back unchanged.
        (ColumnKind::Id, SqlType::Fixed(n)) => n == ID_LEN,
        _ => false,
    }
}

/// What a run does.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Direction {
    Up,
    Down,
}

impl Direction {
    fn what(self) -> &'static str {
        match self {
            Direction::Up => "migrate",
            Direction::Down => "undo_migration",
        }
    }
}

/// Which migration a run applies or reverts.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Job<'a> {
    /// [`MIGRATION_NAME`] on a users table.
    UsersColumns(&'a Target),
    /// [`CODES_MIGRATION_NAME`] on a code table (validated name).
    CodeTable(&'a str),
}

impl Job<'_> {
    fn table(&self) -> &str {
        match self {
            Job::UsersColumns(t) => t.table(),
            Job::CodeTable(t) => t,
        }
    }
}

fn static_sql(s: &'static str) -> SqlStr {
    s.into_sql_str()
}

fn built_sql(s: String) -> SqlStr {
    // Built here from validated identifiers and constants only.
    AssertSqlSafe(s).into_sql_str()
}

/// Runs a migration (or its undo) under the migration lock.
pub(crate) async fn run<DB: Backend>(
    pool: &Pool<DB>,
    job: Job<'_>,
    dir: Direction,
) -> Result<(), StoreError> {
    let err = |e| from_sqlx::<DB>(dir.what(), job.table(), e);
    let mut conn = pool.acquire().await.map_err(err)?;
    match DB::MIGRATION_BEGIN {
        Some(begin) => {
            let mut tx = Connection::begin_with(&mut *conn, begin)
                .await
                .map_err(err)?;
            lock::<DB>(&mut tx, dir, job.table()).await?;
            job_steps::<DB>(&mut tx, job, dir).await?;
            tx.commit().await.map_err(err)
        }
        None => {
            lock::<DB>(&mut conn, dir, job.table()).await?;
            let result = job_steps::<DB>(&mut conn, job, dir).await;
            if let Some(unlock) = DB::MIGRATION_UNLOCK
                && DB::execute_on(&mut conn, static_sql(unlock), &[])
                    .await
                    .is_err()
            {
                // The lock lives as long as the session: a connection that
                // may still hold it must not go back to the pool.
                conn.close_on_drop();
            }
            result
        }
    }
}

async fn job_steps<DB: Backend>(
    conn: &mut DB::Connection,
    job: Job<'_>,
    dir: Direction,
) -> Result<(), StoreError> {
    match job {
        Job::UsersColumns(target) => steps::<DB>(conn, target, dir).await,
        Job::CodeTable(table) => code_steps::<DB>(conn, table, dir).await,
    }
}

async fn lock<DB: Backend>(
    conn: &mut DB::Connection,
    dir: Direction,
    table: &str,
) -> Result<(), StoreError> {
    let Some(lock) = DB::MIGRATION_LOCK else {
        return Ok(());
    };
    let rows = DB::fetch_on(conn, static_sql(lock), &[])
        .await
        .map_err(|e| from_sqlx::<DB>(dir.what(), table, e))?;
    if rows.is_empty() {
        return Err(StoreError::Unavailable {
            message: format!(
                "{}: timed out waiting for the migration lock (another process is migrating table `{table}`)",
                dir.what(),
            ),
            source: None,
        });
    }
    Ok(())
}

async fn steps<DB: Backend>(
    conn: &mut DB::Connection,
    target: &Target,
    dir: Direction,
) -> Result<(), StoreError> {
    let err = |e| from_sqlx::<DB>(dir.what(), target.table(), e);
    let Some(columns) = table_columns::<DB>(conn, TableRef::new(target.table()))
        .await
        .map_err(err)?
    else {
        return Err(StoreError::Schema {
            message: format!(
                "{}: table `{}` does not exist. The store keeps tokens in the host's own users table: \
                 create it first (the app's own migrations), or name it with with_table_name()",
                dir.what(),
                target.table()
            ),
            source: None,
        });
    };
    let found = |wanted: &str| {
        columns
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(wanted))
            .map(|(_, ty)| ty.as_str())
    };
    // Check everything before changing anything (MySQL cannot roll DDL back).
    let mut present = Vec::new();
    let mut absent = Vec::new();
    for c in &COLUMNS {
        match found(c.name) {
            Some(raw) => {
                let ty = parse_type(raw, DB::TYPE_AFFINITY);
                if !store_column_fits(c.kind, ty) {
                    return Err(clash(dir, target, c, raw));
                }
                if let (ColumnKind::Token, SqlType::Text(Some(n))) = (c.kind, ty)
                    && n < ENVELOPE_LEN
                {
                    tracing::warn!(
                        table = target.table(),
                        "column {TOKEN} is {raw}: plain tokens fit, encrypted ones (about 100 characters) may not"
                    );
                }
                present.push(c);
            }
            None => absent.push(c),
        }
    }
    let (changes, changed): (Vec<String>, Vec<&str>) = match dir {
        Direction::Up => {
            check_key::<DB>(target, found(target.key()))?;
            let add = absent
                .iter()
                .map(|c| format!("ADD COLUMN {} {}", c.name, DB::column_ddl(c.kind)));
            (add.collect(), absent.iter().map(|c| c.name).collect())
        }
        Direction::Down => {
            let drop = present.iter().map(|c| format!("DROP COLUMN {}", c.name));
            (drop.collect(), present.iter().map(|c| c.name).collect())
        }
    };
    for stmt in alter::<DB>(target.table(), changes) {
        DB::execute_on(conn, stmt, &[]).await.map_err(err)?;
    }
    let tracked = Tracked {
        table: target.table(),
        version: MIGRATION_VERSION,
        name: MIGRATION_NAME,
    };
    match dir {
        Direction::Up => record::<DB>(conn, tracked).await,
        Direction::Down => forget::<DB>(conn, tracked).await,
    }
    .map_err(err)?;
    tracing::info!(
        table = target.table(),
        columns = ?changed,
        "{MIGRATION_NAME}: {} done",
        dir.what()
    );
    Ok(())
}

fn clash(dir: Direction, target: &Target, c: &Column, raw: &str) -> StoreError {
    let wanted = match c.kind {
        ColumnKind::Id => "a text column of at least 26 characters, such as VARCHAR(26)",
        ColumnKind::Token => "a text column of at least 26 characters, such as TEXT",
    };
    let column = format!("`{}.{}`", target.table(), c.name);
    let message = match dir {
        Direction::Up => format!(
            "migrate: column {column} already exists with type `{raw}`, but the store needs {wanted}; \
             nothing was changed. Rename or convert that column, or use another table"
        ),
        Direction::Down => format!(
            "undo_migration: column {column} has type `{raw}`, so this migration did not add it; \
             nothing was dropped"
        ),
    };
    StoreError::Schema {
        message,
        source: None,
    }
}

fn check_key<DB: Backend>(target: &Target, raw: Option<&str>) -> Result<(), StoreError> {
    let Some(raw) = raw else {
        return Err(StoreError::Schema {
            message: format!(
                "migrate: table `{}` has no column `{}` to use as the user key; name the key column with with_key_column()",
                target.table(),
                target.key()
            ),
            source: None,
        });
    };
    let ty = parse_type(raw, DB::TYPE_AFFINITY);
    if key_column_fits(target.key_type(), ty, DB::NATIVE_UUID) {
        return Ok(());
    }
    let hint = match ty {
        SqlType::Integer => "KeyType::Integer",
        SqlType::Uuid if DB::NATIVE_UUID => "KeyType::Uuid",
        SqlType::Text(_) | SqlType::Fixed(_) | SqlType::Uuid => "KeyType::Text",
        _ => "an integer or text key column",
    };
    Err(StoreError::Schema {
        message: format!(
            "migrate: key column `{}.{}` has type `{raw}`, which does not suit {:?}; use with_key_type({hint})",
            target.table(),
            target.key(),
            target.key_type()
        ),
        source: None,
    })
}

/// `ALTER TABLE` statements applying `changes` (one statement where the
/// database allows several changes in one).
fn alter<DB: Backend>(table: &str, changes: Vec<String>) -> Vec<SqlStr> {
    if changes.is_empty() {
        Vec::new()
    } else if DB::ALTER_MANY {
        vec![built_sql(format!(
            "ALTER TABLE {table} {}",
            changes.join(", ")
        ))]
    } else {
        changes
            .iter()
            .map(|c| built_sql(format!("ALTER TABLE {table} {c}")))
            .collect()
    }
}

/// The table's columns as (name, declared type), or `None` when there is no
/// such table.
async fn table_columns<DB: Backend>(
    conn: &mut DB::Connection,
    table: TableRef<'_>,
) -> Result<Option<Vec<(String, String)>>, sqlx::Error> {
    if !table_exists::<DB>(conn, table).await? {
        return Ok(None);
    }
    let (sql, binds) = DB::columns_query(table);
    let rows = DB::fetch_on(conn, built_sql(sql), &binds).await?;
    rows.iter()
        .map(|r| {
            Ok((
                DB::column_text(r, 0)?.unwrap_or_default(),
                DB::column_text(r, 1)?.unwrap_or_default(),
            ))
        })
        .collect::<Result<Vec<_>, sqlx::Error>>()
        .map(Some)
}

async fn table_exists<DB: Backend>(
    conn: &mut DB::Connection,
    table: TableRef<'_>,
) -> Result<bool, sqlx::Error> {
    let (sql, binds) = DB::table_exists_query(table);
    Ok(!DB::fetch_on(conn, built_sql(sql), &binds).await?.is_empty())
}

/// A migration as recorded in [`MIGRATIONS_TABLE`]: the table it applies
/// to (the column is named `users_table` because the first migration was the
/// users table's; the code table's migration is recorded under the code
/// table's name), its version and its name.
#[derive(Clone, Copy, Debug)]
struct Tracked<'a> {
    table: &'a str,
    version: i64,
    name: &'static str,
}

/// The tracking table's key for a migration, and the placeholders comparing
/// with it.
fn tracking_key<DB: Backend>(m: Tracked<'_>) -> ([Bind<'_>; 2], String) {
    let p = DB::placeholder;
    (
        [Bind::Text(m.table), Bind::Int(m.version)],
        format!("users_table = {} AND version = {}", p(1), p(2)),
    )
}

/// Whether the migration is recorded.
async fn recorded<DB: Backend>(
    conn: &mut DB::Connection,
    m: Tracked<'_>,
) -> Result<bool, sqlx::Error> {
    if !table_exists::<DB>(conn, TableRef::new(MIGRATIONS_TABLE)).await? {
        return Ok(false);
    }
    let (binds, cond) = tracking_key::<DB>(m);
    let seen = format!("SELECT 1 FROM {MIGRATIONS_TABLE} WHERE {cond}");
    Ok(!DB::fetch_on(conn, built_sql(seen), &binds)
        .await?
        .is_empty())
}

/// Records the migration (once). Writes nothing when it is already
/// recorded, so that `migrate()` on a migrated database works where the
/// database is read-only (a replica).
async fn record<DB: Backend>(conn: &mut DB::Connection, m: Tracked<'_>) -> Result<(), sqlx::Error> {
    if recorded::<DB>(conn, m).await? {
        return Ok(());
    }
    // The same statement is valid on all three databases.
    let ddl = format!(
        "CREATE TABLE IF NOT EXISTS {MIGRATIONS_TABLE} (\
         users_table VARCHAR(128) NOT NULL, \
         version BIGINT NOT NULL, \
         description VARCHAR(255) NOT NULL, \
         installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
         PRIMARY KEY (users_table, version))"
    );
    DB::execute_on(conn, built_sql(ddl), &[]).await?;
    let p = DB::placeholder;
    let insert = format!(
        "INSERT INTO {MIGRATIONS_TABLE} (users_table, version, description) VALUES ({}, {}, {})",
        p(1),
        p(2),
        p(3)
    );
    let (key, _) = tracking_key::<DB>(m);
    let binds = [key[0], key[1], Bind::Text(m.name)];
    DB::execute_on(conn, built_sql(insert), &binds).await?;
    Ok(())
}

/// Removes the record of the migration.
async fn forget<DB: Backend>(conn: &mut DB::Connection, m: Tracked<'_>) -> Result<(), sqlx::Error> {
    if !recorded::<DB>(conn, m).await? {
        return Ok(());
    }
    let (binds, cond) = tracking_key::<DB>(m);
    let delete = format!("DELETE FROM {MIGRATIONS_TABLE} WHERE {cond}");
    DB::execute_on(conn, built_sql(delete), &binds).await?;
    Ok(())
}

// ---------------------------------------------------------------------------
// The code table.

/// Whether a declared column type fits a code table column.
type Fits = fn(SqlType) -> bool;

/// The code table's columns: name, and whether a declared type fits.
const CODE_COLUMNS: [(&str, Fits); 4] = [
    (CODE_HASH, |t| {
        matches!(
            t,
            SqlType::Text(None) | SqlType::Fixed(64) | SqlType::Untyped
        ) || matches!(t, SqlType::Text(Some(n)) if n >= 64)
    }),
    (HOST_USER_ID, |t| {
        matches!(t, SqlType::Text(_) | SqlType::Untyped)
    }),
    (HOST_USER_KIND, |t| {
        matches!(t, SqlType::Text(_) | SqlType::Fixed(1) | SqlType::Untyped)
    }),
    (EXPIRES_AT, |t| {
        matches!(t, SqlType::Integer | SqlType::Untyped)
    }),
];

/// The name of the index on `expires_at` (within the 63 characters
/// PostgreSQL keeps and MySQL allows).
fn code_index_name(table: TableRef<'_>) -> String {
    const SUFFIX: &str = "_expires_at_idx";
    let name: String = table.name.chars().take(63 - SUFFIX.len()).collect();
    format!("{name}{SUFFIX}")
}

async fn code_steps<DB: Backend>(
    conn: &mut DB::Connection,
    table: &str,
    dir: Direction,
) -> Result<(), StoreError> {
    let err = |e| from_sqlx::<DB>(dir.what(), table, e);
    let t = TableRef::new(table);
    let columns = table_columns::<DB>(conn, t).await.map_err(err)?;
    if let Some(columns) = &columns {
        // An existing table must be a code table: never take over (or
        // drop) a table of the host's that happens to have this name.
        for (name, fits) in CODE_COLUMNS {
            let found = columns
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, ty)| ty.as_str());
            let ok = found.is_some_and(|raw| fits(parse_type(raw, DB::TYPE_AFFINITY)));
            if !ok {
                let what = match found {
                    Some(raw) => format!("its column `{name}` has type `{raw}`"),
                    None => format!("it has no column `{name}`"),
                };
                let consequence = match dir {
                    Direction::Up => {
                        "nothing was changed; name another table with with_table_name()"
                    }
                    Direction::Down => "nothing was dropped",
                };
                return Err(StoreError::Schema {
                    message: format!(
                        "{}: table `{table}` exists but is not a magic-link code table ({what}); {consequence}",
                        dir.what()
                    ),
                    source: None,
                });
            }
        }
    }
    let tracked = Tracked {
        table,
        version: CODES_MIGRATION_VERSION,
        name: CODES_MIGRATION_NAME,
    };
    let changed = match (dir, columns.is_some()) {
        (Direction::Up, false) => {
            for stmt in DB::code_table_ddl(t, &code_index_name(t)) {
                DB::execute_on(conn, built_sql(stmt), &[])
                    .await
                    .map_err(err)?;
            }
            true
        }
        (Direction::Down, true) => {
            DB::execute_on(conn, built_sql(format!("DROP TABLE {table}")), &[])
                .await
                .map_err(err)?;
            true
        }
        _ => false,
    };
    match dir {
        Direction::Up => record::<DB>(conn, tracked).await,
        Direction::Down => forget::<DB>(conn, tracked).await,
    }
    .map_err(err)?;
    tracing::info!(
        table,
        changed,
        "{CODES_MIGRATION_NAME}: {} done",
        dir.what()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_server_types() {
        use SqlType::*;
        for (raw, ty) in [
            ("bigint", Integer),
            ("bigint(20) unsigned", Integer),
            ("int(11)", Integer),
            ("integer", Integer),
            ("text", Text(None)),
            ("longtext", Text(None)),
            ("character varying(26)", Text(Some(26))),
            ("varchar(255)", Text(Some(255))),
            ("character varying", Text(None)),
            ("character(26)", Fixed(26)),
            ("char(36)", Fixed(36)),
            ("uuid", Uuid),
            ("interval", Other),
            ("timestamp without time zone", Other),
        ] {
            assert_eq!(parse_type(raw, false), ty, "{raw}");
        }
    }

    #[test]
    fn parses_sqlite_affinity() {
        use SqlType::*;
        for (raw, ty) in [
            ("INTEGER", Integer),
            ("BIGINT", Integer),
            ("VARCHAR(10)", Text(None)),
            ("TEXT", Text(None)),
            ("", Untyped),
            ("REAL", Other),
            ("UUID", Uuid),
        ] {
            assert_eq!(parse_type(raw, true), ty, "{raw}");
        }
    }

    #[test]
    fn column_fit() {
        assert!(store_column_fits(
            ColumnKind::Token,
            SqlType::Text(Some(255))
        ));
        assert!(store_column_fits(ColumnKind::Id, SqlType::Fixed(26)));
        assert!(!store_column_fits(ColumnKind::Token, SqlType::Fixed(26)));
        assert!(!store_column_fits(ColumnKind::Id, SqlType::Text(Some(20))));
        assert!(!store_column_fits(ColumnKind::Token, SqlType::Integer));
        assert!(key_column_fits(KeyType::Uuid, SqlType::Uuid, true));
        assert!(!key_column_fits(KeyType::Text, SqlType::Uuid, true));
        assert!(key_column_fits(KeyType::Uuid, SqlType::Fixed(36), false));
        assert!(!key_column_fits(
            KeyType::Integer,
            SqlType::Text(None),
            false
        ));
    }
}
