//! The crate's migrations:
//!
//! - `add_mattermost_token_to_users_table` ([`MIGRATION_NAME`]) adds the
//!   three nullable columns to the host's users table, and takes them away
//!   again ([`SqlxTokenStore::migrate`](crate::SqlxTokenStore::migrate));
//! - `add_unique_mattermost_user_id_index` ([`UNIQUE_INDEX_MIGRATION_NAME`])
//!   makes `mattermost_user_id` unique, so that the database refuses to link
//!   one Mattermost account to two host users, and drops the index again
//!   (run by the same `migrate()`, right after the columns; undone before
//!   them);
//! - `add_mattermost_token_expires_at_column` ([`EXPIRY_MIGRATION_NAME`])
//!   adds the nullable token expiry column (`mattermost_token_expires_at`
//!   unless configured otherwise: milliseconds since the Unix epoch, NULL
//!   for a token that does not expire), and drops it again (run by the same
//!   `migrate()`, right after the index; undone first);
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
//! on its own, so there everything (all three steps) is checked first and
//! the three columns are added by one `ALTER TABLE`, the expiry column by
//! another.
//!
//! The unique index is checked at the same time, before the columns are
//! touched: when an index on exactly `mattermost_user_id` that is unique,
//! complete (no prefix, expression or predicate) and valid exists already,
//! whatever its name, it is kept and nothing is created. Otherwise the
//! index name ([`SqlxTokenStore::user_id_index_name`](crate::SqlxTokenStore::user_id_index_name))
//! must be free, and no two rows may share a non-NULL `mattermost_user_id`
//! (counted with `GROUP BY ... HAVING COUNT(*) > 1`): either problem is a
//! [`StoreError::Schema`] saying what to do, with nothing changed. Then
//! `CREATE UNIQUE INDEX` (NULLs may repeat on all three databases). Its
//! undo drops that index only when it is unique on the column alone (a
//! PostgreSQL `UNIQUE` constraint of that name, as Laravel makes, is
//! dropped as a constraint); an index of another name goes with the column.
//!
//! The expiry column is checked at the same time too: when a column of its
//! name exists already it must be a signed 64-bit integer (`BIGINT` on
//! PostgreSQL and MySQL/MariaDB; any integer type on SQLite, whose integers
//! are all 64-bit) and is kept as it is; a column of another type is a
//! [`StoreError::Schema`], with nothing changed. Otherwise it is added:
//! `ALTER TABLE <table> ADD COLUMN <column> BIGINT` (`INTEGER` on SQLite).
//! Its undo drops it (`ALTER TABLE <table> DROP COLUMN <column>`), before the
//! index and the other columns. A database migrated by an earlier version,
//! with the first two steps only, gets this step alone from its next
//! `migrate()`.
//!
//! The code table migration takes the same lock, then creates the table
//! and its index on `expires_at` when the table is absent. A table of that
//! name that exists already must have the code table's columns (a host
//! table that happens to have the name is neither taken over nor dropped:
//! [`StoreError::Schema`]). Its undo drops the table.

use mattermost_tokens::StoreError;
use mattermost_tokens::store::validate_identifier;
use sqlx::{AssertSqlSafe, Connection, Pool, SqlSafeStr, SqlStr};

use crate::backend::{Backend, Bind, ColumnKind, IndexInfo, TableRef};
use crate::code_store::{CODE_HASH, EXPIRES_AT, HOST_USER_ID, HOST_USER_KIND};
use crate::config::{KeyType, Target};
use crate::error::{from_sqlx, redacted};
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

/// The version of the users table's second migration,
/// [`UNIQUE_INDEX_MIGRATION_NAME`]. (The version after
/// [`MIGRATION_VERSION`], 20260126000004, is [`CODES_MIGRATION_VERSION`].)
pub const UNIQUE_INDEX_MIGRATION_VERSION: i64 = 20260126000005;

/// The name of the users table's second migration: a unique index on
/// `mattermost_user_id`, so that one Mattermost account is linked to one
/// host user at most.
pub const UNIQUE_INDEX_MIGRATION_NAME: &str = "add_unique_mattermost_user_id_index";

/// The version of the users table's third migration,
/// [`EXPIRY_MIGRATION_NAME`].
pub const EXPIRY_MIGRATION_VERSION: i64 = 20260126000006;

/// The name of the users table's third migration: the nullable column
/// holding when each user's token expires (milliseconds since the Unix
/// epoch), `mattermost_token_expires_at` unless configured otherwise.
pub const EXPIRY_MIGRATION_NAME: &str = "add_mattermost_token_expires_at_column";

/// The table recording which migrations have been applied to which tables:
/// one row per (table, version), the table being a users table
/// ([`MIGRATION_VERSION`], [`UNIQUE_INDEX_MIGRATION_VERSION`] and
/// [`EXPIRY_MIGRATION_VERSION`]) or a code table
/// ([`CODES_MIGRATION_VERSION`]).
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
    /// The users table's migrations ([`MIGRATION_NAME`],
    /// [`UNIQUE_INDEX_MIGRATION_NAME`], [`EXPIRY_MIGRATION_NAME`]).
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
                    return Err(clash(dir, target, c.name, c.wanted(), raw));
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
    // The second and third migrations are checked now too, before the
    // first changes anything.
    let index = validated_index_name(target.table())?;
    let index_step =
        plan_unique_index::<DB>(conn, target, &index, dir, found(USER_ID).is_some()).await?;
    let expiry_step = plan_expiry_column::<DB>(target, dir, found(target.expiry()))?;
    match dir {
        Direction::Up => {
            add_or_drop_columns::<DB>(conn, target, dir, changes, &changed).await?;
            apply_unique_index::<DB>(conn, target, &index, dir, index_step).await?;
            apply_expiry_column::<DB>(conn, target, dir, expiry_step).await
        }
        // In reverse order.
        Direction::Down => {
            apply_expiry_column::<DB>(conn, target, dir, expiry_step).await?;
            apply_unique_index::<DB>(conn, target, &index, dir, index_step).await?;
            add_or_drop_columns::<DB>(conn, target, dir, changes, &changed).await
        }
    }
}

/// Applies [`MIGRATION_NAME`] (or its undo) as planned, and records it.
async fn add_or_drop_columns<DB: Backend>(
    conn: &mut DB::Connection,
    target: &Target,
    dir: Direction,
    changes: Vec<String>,
    changed: &[&str],
) -> Result<(), StoreError> {
    let err = |e| from_sqlx::<DB>(dir.what(), target.table(), e);
    for stmt in alter::<DB>(target.table(), changes) {
        DB::execute_on(conn, stmt, &[]).await.map_err(err)?;
    }
    let tracked = Tracked {
        table: target.table(),
        version: MIGRATION_VERSION,
        name: MIGRATION_NAME,
    };
    track::<DB>(conn, dir, tracked).await.map_err(err)?;
    tracing::info!(
        table = target.table(),
        columns = ?changed,
        "{MIGRATION_NAME}: {} done",
        dir.what()
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// The unique index on `mattermost_user_id`.

/// The unique index's name: `<table>_mattermost_user_id_unique` in lower
/// case (the name Laravel's `->unique()` gives it), of the table's own name
/// without its schema (the index lives in the table's schema). A name that
/// would be longer than 63 characters (PostgreSQL's limit; MySQL allows 64)
/// keeps the start of the table's name and gets a hash of all of it:
/// `<start>_<8 hex digits>_mattermost_user_id_unique`, 63 characters.
pub(crate) fn unique_index_name(table: &str) -> String {
    const SUFFIX: &str = "_mattermost_user_id_unique";
    const MAX: usize = 63;
    // Unquoted names are case-insensitive: `Users` and `users` are one
    // table and must give one index name.
    let name = TableRef::new(table).name.to_ascii_lowercase();
    if name.len() + SUFFIX.len() <= MAX {
        format!("{name}{SUFFIX}")
    } else {
        let keep: String = name.chars().take(MAX - SUFFIX.len() - 9).collect();
        format!("{keep}_{:08x}{SUFFIX}", fnv1a32(&name))
    }
}

/// [`unique_index_name`], checked before it goes into DDL.
fn validated_index_name(table: &str) -> Result<String, StoreError> {
    let index = unique_index_name(table);
    validate_identifier(&index)?;
    Ok(index)
}

/// 32-bit FNV-1a: a hash that is the same in every build and version (the
/// index name derived from it must not change).
fn fnv1a32(s: &str) -> u32 {
    s.bytes().fold(0x811c_9dc5, |h: u32, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

/// What the unique index migration does to the table.
#[derive(Debug)]
enum IndexStep {
    /// Nothing: an equivalent unique index is there already (going up), or
    /// ours is not (going down).
    Keep,
    /// Create the index.
    Create,
    /// Drop the index, found as this.
    Drop(IndexInfo),
}

/// Checks what [`UNIQUE_INDEX_MIGRATION_NAME`] (or its undo) would do,
/// without changing anything; refuses with [`StoreError::Schema`] what it
/// cannot do.
async fn plan_unique_index<DB: Backend>(
    conn: &mut DB::Connection,
    target: &Target,
    index: &str,
    dir: Direction,
    column_present: bool,
) -> Result<IndexStep, StoreError> {
    let err = |e| from_sqlx::<DB>(dir.what(), target.table(), e);
    let table = TableRef::new(target.table());
    let indexes = table_indexes::<DB>(conn, table).await.map_err(err)?;
    let ours = indexes.iter().find(|i| i.name.eq_ignore_ascii_case(index));
    if let Direction::Down = dir {
        // Only an index that is what the migration would have created: a
        // host's own index of that name (on other columns, or not unique)
        // is not dropped (it goes with the column, if at all).
        return Ok(match ours {
            Some(i) if column_present && i.is_unique_on(USER_ID) => IndexStep::Drop(i.clone()),
            _ => IndexStep::Keep,
        });
    }
    if column_present && let Some(same) = indexes.iter().find(|i| i.is_unique_on(USER_ID)) {
        // Made by hand, by Laravel's `->unique()`, or by an earlier run.
        tracing::debug!(
            table = target.table(),
            index = same.name,
            "{UNIQUE_INDEX_MIGRATION_NAME}: {USER_ID} already has a unique index"
        );
        return Ok(IndexStep::Keep);
    }
    if let Some(other) = ours {
        return Err(StoreError::Schema {
            message: format!(
                "migrate: table `{}` already has an index named `{}`, but it is not a unique index on \
                 `{USER_ID}` alone; nothing was changed. Drop or rename that index, then run migrate() again",
                target.table(),
                other.name
            ),
            source: None,
        });
    }
    if let Some((sql, binds)) = DB::index_name_taken_query(table, index)
        && !DB::fetch_on(conn, built_sql(sql), &binds)
            .await
            .map_err(err)?
            .is_empty()
    {
        return Err(StoreError::Schema {
            message: format!(
                "migrate: the unique index for `{}.{USER_ID}` would be named `{index}`, but another \
                 table or index of that schema already has that name; nothing was changed. Rename it, \
                 or create a unique index on `{USER_ID}` yourself (any name), then run migrate() again",
                target.table()
            ),
            source: None,
        });
    }
    if column_present {
        let (ids, rows) = duplicate_user_ids::<DB>(conn, target.table())
            .await
            .map_err(err)?;
        if ids > 0 {
            return Err(duplicates_error(target, index, Some((ids, rows)), None));
        }
    }
    Ok(IndexStep::Create)
}

/// Applies [`UNIQUE_INDEX_MIGRATION_NAME`] (or its undo) as planned, and
/// records it.
async fn apply_unique_index<DB: Backend>(
    conn: &mut DB::Connection,
    target: &Target,
    index: &str,
    dir: Direction,
    step: IndexStep,
) -> Result<(), StoreError> {
    let err = |e| from_sqlx::<DB>(dir.what(), target.table(), e);
    let table = TableRef::new(target.table());
    let changed = !matches!(step, IndexStep::Keep);
    match step {
        IndexStep::Keep => {}
        IndexStep::Create => {
            let ddl = built_sql(DB::unique_index_ddl(table, index));
            if let Err(e) = DB::execute_on(conn, ddl, &[]).await {
                // Rows written since the check share an id.
                let duplicated = matches!(&e, sqlx::Error::Database(d)
                    if DB::unique_violation(d.as_ref()).is_some());
                return Err(if duplicated {
                    duplicates_error(target, index, None, Some(redacted::<DB>(&e)))
                } else {
                    err(e)
                });
            }
        }
        IndexStep::Drop(found) => {
            let ddl = built_sql(DB::drop_index_ddl(table, index, &found));
            DB::execute_on(conn, ddl, &[]).await.map_err(err)?;
        }
    }
    let tracked = Tracked {
        table: target.table(),
        version: UNIQUE_INDEX_MIGRATION_VERSION,
        name: UNIQUE_INDEX_MIGRATION_NAME,
    };
    track::<DB>(conn, dir, tracked).await.map_err(err)?;
    tracing::info!(
        table = target.table(),
        index,
        changed,
        "{UNIQUE_INDEX_MIGRATION_NAME}: {} done",
        dir.what()
    );
    Ok(())
}

/// The table's indexes (none when the database lists none).
async fn table_indexes<DB: Backend>(
    conn: &mut DB::Connection,
    table: TableRef<'_>,
) -> Result<Vec<IndexInfo>, sqlx::Error> {
    let (sql, binds) = DB::indexes_query(table);
    let rows = DB::fetch_on(conn, built_sql(sql), &binds).await?;
    rows.iter()
        .map(|r| {
            let text = |i| DB::column_text(r, i).map(Option::unwrap_or_default);
            let flag = |i| text(i).map(|t| t == "1");
            let columns = text(2)?;
            let schema = text(5)?;
            Ok(IndexInfo {
                name: text(0)?,
                unique: flag(1)?,
                columns: columns
                    .split(',')
                    .filter(|c| !c.is_empty())
                    .map(str::to_owned)
                    .collect(),
                plain: flag(3)?,
                constraint: flag(4)?,
                schema: (!schema.is_empty()).then_some(schema),
            })
        })
        .collect()
}

/// How many Mattermost user ids are held by more than one row, and how many
/// rows hold them.
async fn duplicate_user_ids<DB: Backend>(
    conn: &mut DB::Connection,
    table: &str,
) -> Result<(usize, i64), sqlx::Error> {
    let q = format!(
        "SELECT COUNT(*) FROM {table} WHERE {USER_ID} IS NOT NULL \
         GROUP BY {USER_ID} HAVING COUNT(*) > 1"
    );
    let rows = DB::fetch_on(conn, built_sql(q), &[]).await?;
    let mut held = 0;
    for r in &rows {
        held += DB::column_i64(r, 0)?;
    }
    Ok((rows.len(), held))
}

/// The migration cannot make `mattermost_user_id` unique: rows share ids.
/// Names no id (the query to find them instead).
fn duplicates_error(
    target: &Target,
    index: &str,
    counted: Option<(usize, i64)>,
    source: Option<crate::error::RedactedDriverError>,
) -> StoreError {
    let (what, consequence) = match counted {
        Some((1, rows)) => (
            format!("1 Mattermost user id is held by {rows} rows"),
            "nothing was changed",
        ),
        Some((ids, rows)) => (
            format!(
                "{ids} Mattermost user ids are each held by more than one row ({rows} rows in all)"
            ),
            "nothing was changed",
        ),
        None => (
            "rows written while it ran share a Mattermost user id".to_owned(),
            "the index was not created",
        ),
    };
    let (table, expiry) = (target.table(), target.expiry());
    StoreError::Schema {
        message: format!(
            "migrate: cannot create the unique index `{index}` on `{table}.{USER_ID}`: {what}; \
             {consequence}. A Mattermost account must be linked to one user only, or each of its users \
             can act as the other. Find them with `SELECT {USER_ID}, COUNT(*) FROM {table} WHERE \
             {USER_ID} IS NOT NULL GROUP BY {USER_ID} HAVING COUNT(*) > 1`, keep each id on the one \
             user it belongs to, set {USER_ID}, {TOKEN} and {TOKEN_ID} (and {expiry}, where it \
             exists) to NULL on the others (and revoke their tokens in Mattermost), then run \
             migrate() again"
        ),
        source: source.map(|e| Box::new(e) as Box<dyn std::error::Error + Send + Sync>),
    }
}

impl Column {
    /// What the column must be, and what to do about one that is not, for
    /// error messages.
    fn wanted(&self) -> (&'static str, &'static str) {
        let wanted = match self.kind {
            ColumnKind::Id => "a text column of at least 26 characters, such as VARCHAR(26)",
            ColumnKind::Token => "a text column of at least 26 characters, such as TEXT",
        };
        (
            wanted,
            "Rename or convert that column, or use another table",
        )
    }
}

/// Column `name` exists with type `raw`, which is not `wanted`; `remedy`
/// says what to do about it when migrating.
fn clash(
    dir: Direction,
    target: &Target,
    name: &str,
    (wanted, remedy): (&str, &str),
    raw: &str,
) -> StoreError {
    let column = format!("`{}.{}`", target.table(), name);
    let message = match dir {
        Direction::Up => format!(
            "migrate: column {column} already exists with type `{raw}`, but the store needs {wanted}; \
             nothing was changed. {remedy}"
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

/// Records the migration going up, removes its record going down.
async fn track<DB: Backend>(
    conn: &mut DB::Connection,
    dir: Direction,
    m: Tracked<'_>,
) -> Result<(), sqlx::Error> {
    match dir {
        Direction::Up => record::<DB>(conn, m).await,
        Direction::Down => forget::<DB>(conn, m).await,
    }
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
// The token expiry column.

/// What a column of the expiry column's name must be, and what to do about
/// one that is not, for error messages.
const EXPIRY_WANTED: (&str, &str) = (
    "a signed 64-bit integer column (BIGINT; on SQLite, INTEGER) for milliseconds since the Unix epoch",
    "Rename or convert that column, or name another expiry column with with_expiry_column()",
);

/// Whether a declared type fits the expiry column: a signed 64-bit integer
/// (`BIGINT`, `int8`; a smaller integer could not hold a time in
/// milliseconds, an unsigned one does not read back as `i64`). On SQLite
/// (`affinity`) every integer is 64-bit: any integer type fits, as does a
/// column declared without a type.
fn expiry_column_fits(raw: &str, affinity: bool) -> bool {
    if affinity {
        return matches!(parse_type(raw, true), SqlType::Integer | SqlType::Untyped);
    }
    let t = raw.trim().to_ascii_lowercase();
    let mut words = t.split(|c: char| c.is_whitespace() || c == '(' || c == ')');
    let base = words.next().unwrap_or_default();
    matches!(base, "bigint" | "int8") && !words.any(|w| w == "unsigned")
}

/// What the expiry column migration does to the table.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ExpiryStep {
    /// Nothing: the column is there already (going up), or not (going
    /// down).
    Keep,
    /// Add the column.
    Add,
    /// Drop the column.
    Drop,
}

/// Checks what [`EXPIRY_MIGRATION_NAME`] (or its undo) would do, given the
/// declared type of the column of the expiry column's name if there is one,
/// without changing anything; refuses with [`StoreError::Schema`] a column
/// of another type than a 64-bit integer (going down too: the migration did
/// not add it).
fn plan_expiry_column<DB: Backend>(
    target: &Target,
    dir: Direction,
    found: Option<&str>,
) -> Result<ExpiryStep, StoreError> {
    let Some(raw) = found else {
        return Ok(match dir {
            Direction::Up => ExpiryStep::Add,
            Direction::Down => ExpiryStep::Keep,
        });
    };
    if !expiry_column_fits(raw, DB::TYPE_AFFINITY) {
        return Err(clash(dir, target, target.expiry(), EXPIRY_WANTED, raw));
    }
    Ok(match dir {
        // Added by an earlier run, or by hand.
        Direction::Up => ExpiryStep::Keep,
        Direction::Down => ExpiryStep::Drop,
    })
}

/// Applies [`EXPIRY_MIGRATION_NAME`] (or its undo) as planned, and records
/// it.
async fn apply_expiry_column<DB: Backend>(
    conn: &mut DB::Connection,
    target: &Target,
    dir: Direction,
    step: ExpiryStep,
) -> Result<(), StoreError> {
    let err = |e| from_sqlx::<DB>(dir.what(), target.table(), e);
    let column = target.expiry();
    let change = match step {
        ExpiryStep::Keep => None,
        ExpiryStep::Add => Some(format!("ADD COLUMN {column} {}", DB::EXPIRY_COLUMN_DDL)),
        ExpiryStep::Drop => Some(format!("DROP COLUMN {column}")),
    };
    let changed = change.is_some();
    for stmt in alter::<DB>(target.table(), change.into_iter().collect()) {
        DB::execute_on(conn, stmt, &[]).await.map_err(err)?;
    }
    let tracked = Tracked {
        table: target.table(),
        version: EXPIRY_MIGRATION_VERSION,
        name: EXPIRY_MIGRATION_NAME,
    };
    track::<DB>(conn, dir, tracked).await.map_err(err)?;
    tracing::info!(
        table = target.table(),
        column,
        changed,
        "{EXPIRY_MIGRATION_NAME}: {} done",
        dir.what()
    );
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
    track::<DB>(conn, dir, tracked).await.map_err(err)?;
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
    fn unique_index_names() {
        for table in ["users", "app.users", "Users", "APP.USERS"] {
            assert_eq!(
                unique_index_name(table),
                "users_mattermost_user_id_unique",
                "{table}"
            );
        }
        // 37 characters fit as they are (37 + 26 = 63).
        let fits = "a".repeat(37);
        assert_eq!(
            unique_index_name(&fits),
            format!("{fits}_mattermost_user_id_unique")
        );
        // Longer names are cut and hashed, to exactly 63 characters.
        let long = format!("{}_one", "t".repeat(59));
        let other = format!("{}_two", "t".repeat(59));
        let a = unique_index_name(&long);
        let b = unique_index_name(&other);
        assert_eq!(a.len(), 63, "{a}");
        assert_eq!(b.len(), 63, "{b}");
        assert_ne!(a, b);
        assert!(a.starts_with(&"t".repeat(28)) && a.ends_with("_mattermost_user_id_unique"));
        assert_eq!(a, unique_index_name(&long), "deterministic");
        assert_eq!(a, unique_index_name(&format!("s.{}", long.to_uppercase())));
        assert_eq!(
            unique_index_name(&"a".repeat(38)),
            format!(
                "{}_{:08x}_mattermost_user_id_unique",
                "a".repeat(28),
                fnv1a32(&"a".repeat(38))
            )
        );
        // Pinned: a hash that changed would orphan existing indexes.
        assert_eq!(fnv1a32(""), 0x811c_9dc5);
        assert_eq!(fnv1a32("a"), 0xe40c_292c);
        for t in [&long, &other, &fits, "users", "x.users"] {
            assert_eq!(validated_index_name(t).unwrap(), unique_index_name(t));
        }
    }

    #[test]
    fn expiry_column_fit() {
        for raw in ["bigint", "BIGINT", "bigint(20)", "int8"] {
            assert!(expiry_column_fits(raw, false), "{raw}");
        }
        for raw in [
            "integer",
            "int(11)",
            "smallint",
            "bigint(20) unsigned",
            "bigint unsigned zerofill",
            "numeric(20,0)",
            "text",
            "character varying(26)",
            "timestamp without time zone",
            "",
        ] {
            assert!(!expiry_column_fits(raw, false), "{raw}");
        }
        for raw in ["INTEGER", "BIGINT", "int", "BIGINT UNSIGNED", ""] {
            assert!(expiry_column_fits(raw, true), "{raw}");
        }
        for raw in ["TEXT", "REAL", "NUMERIC", "VARCHAR(26)"] {
            assert!(!expiry_column_fits(raw, true), "{raw}");
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
