//! Running the migration steps on sqlx.
//!
//! The steps ([`Step`]), what each checks and what it changes are the
//! schema's, in [`mattermost_tokens::store::schema`]; the diesel adapter
//! runs the same ones. Here: the users table's four steps
//! ([`SqlxTokenStore::migrate`](crate::SqlxTokenStore::migrate), undone by
//! [`undo_migration`](crate::SqlxTokenStore::undo_migration)):
//!
//! - `add_mattermost_token_to_users_table` ([`MIGRATION_NAME`](crate::MIGRATION_NAME))
//!   adds the three nullable token columns;
//! - `add_unique_mattermost_user_id_index` ([`UNIQUE_INDEX_MIGRATION_NAME`](crate::UNIQUE_INDEX_MIGRATION_NAME))
//!   makes `mattermost_user_id` unique, so that the database refuses to
//!   link one Mattermost account to two host users;
//! - `add_mattermost_token_expires_at_column` ([`EXPIRY_MIGRATION_NAME`](crate::EXPIRY_MIGRATION_NAME))
//!   adds the nullable token expiry column;
//! - `add_mattermost_claim_columns` ([`CLAIM_MIGRATION_NAME`](crate::CLAIM_MIGRATION_NAME))
//!   adds the nullable columns with which syncs in several processes
//!   coordinate (see [`Lease`](mattermost_tokens::store::Lease));
//!
//! and the code table's, `create_mattermost_magic_link_codes_table`
//! ([`SqlxCodeStore::migrate`](crate::SqlxCodeStore::migrate)).
//!
//! # Why not sqlx's `Migrator`
//!
//! sqlx's [`Migrator`](https://docs.rs/sqlx/0.9/sqlx/migrate/struct.Migrator.html) can keep its records in a
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
//! So each run inspects the table, checks everything, then alters it, and
//! records each step in [`MIGRATIONS_TABLE`],
//! keyed by (table, version). The host's own sqlx migrations
//! (`_sqlx_migrations`) never see them.
//!
//! # All or nothing
//!
//! A lock keeps two processes starting at once from migrating together
//! (PostgreSQL: a transaction-scoped advisory lock; MySQL/MariaDB:
//! `GET_LOCK`; SQLite: `BEGIN IMMEDIATE`). Then all three steps are checked
//! before the first changes anything: the users table must exist, with the
//! key column of the configured [`KeyType`](crate::KeyType); the columns,
//! the index (its name free, no two rows sharing an id) and the expiry
//! column must be what the schema accepts. Any problem is a
//! [`StoreError::Schema`] saying what to do, with nothing changed.
//! PostgreSQL and SQLite then run it all in one transaction; MySQL commits
//! every DDL statement on its own, which is why everything is checked first.
//! Undoing goes in reverse order, checked the same way: the expiry column,
//! the unique index (when it is the one `migrate()` creates), the token
//! columns.
//!
//! The code table's step takes the same lock, then creates the table and
//! its index on `expires_at` when the table is absent, or drops it.

use mattermost_tokens::StoreError;
use mattermost_tokens::store::schema::plan::{
    self, CODE_COLUMNS, Change, Direction, ExistingColumn, ExistingIndex, IndexPlan,
};
use mattermost_tokens::store::schema::{
    CLAIM_COLUMNS, Dialect, MIGRATIONS_TABLE, Step, TOKEN_COLUMN, TOKEN_ID_COLUMN, USER_ID_COLUMN,
    UsersTable, sql,
};
use sqlx::{Connection, Pool};

use crate::backend::{Backend, Bind, built_sql};
use crate::error::{from_sqlx, redacted};

/// Which steps a run applies or undoes.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Job<'a> {
    /// The users table's four steps.
    UsersTable(&'a UsersTable),
    /// The code table's step, on a validated table name.
    CodeTable(&'a str),
}

impl Job<'_> {
    fn table(&self) -> &str {
        match self {
            Job::UsersTable(t) => t.table(),
            Job::CodeTable(t) => t,
        }
    }
}

/// The statement opening the migration's transaction; `None` where DDL is
/// not transactional (MySQL).
fn begin(dialect: Dialect) -> Option<&'static str> {
    match dialect {
        Dialect::Postgres => Some("BEGIN"),
        Dialect::Sqlite => Some("BEGIN IMMEDIATE"),
        Dialect::MySql => None,
    }
}

/// Runs a job's steps (or their undo) under the migration lock.
pub(crate) async fn run<DB: Backend>(
    pool: &Pool<DB>,
    job: Job<'_>,
    dir: Direction,
) -> Result<(), StoreError> {
    let err = |e| from_sqlx::<DB>(dir.what(), job.table(), e);
    let mut conn = pool.acquire().await.map_err(err)?;
    // Read first: a database that has every step needs no lock, so a
    // host's instance starts while another process holds SQLite's write
    // lock (or a long transaction holds the table).
    if dir == Direction::Up && applied::<DB>(&mut conn, &job).await.unwrap_or(false) {
        return Ok(());
    }
    let Some(begin) = begin(DB::DIALECT) else {
        lock::<DB>(&mut conn, dir, job.table(), false).await?;
        let result = steps::<DB>(&mut conn, job, dir, &mut None).await;
        if let Some(unlock) = sql::unlock(DB::DIALECT)
            && DB::execute_on(&mut conn, built_sql(unlock), &[])
                .await
                .is_err()
        {
            // The lock lives as long as the session: a connection that may
            // still hold it must not go back to the pool.
            conn.close_on_drop();
        }
        return result;
    };
    let mut tx = Connection::begin_with(&mut *conn, begin)
        .await
        .map_err(err)?;
    lock::<DB>(&mut tx, dir, job.table(), true).await?;
    steps::<DB>(&mut tx, job, dir, &mut None).await?;
    tx.commit().await.map_err(err)
}

async fn lock<DB: Backend>(
    conn: &mut DB::Connection,
    dir: Direction,
    table: &str,
    transaction: bool,
) -> Result<(), StoreError> {
    let Some(lock) = sql::lock(DB::DIALECT, transaction) else {
        return Ok(());
    };
    let rows = DB::fetch_on(conn, built_sql(lock), &[])
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

/// The statements a run of the job would execute now, without taking the
/// lock or changing anything (what `migrate --dry-run` prints). Steps
/// already applied plan nothing; tracking-table writes are left out.
pub(crate) async fn plan<DB: Backend>(
    pool: &Pool<DB>,
    job: Job<'_>,
    dir: Direction,
) -> Result<Vec<String>, StoreError> {
    let mut conn = pool
        .acquire()
        .await
        .map_err(|e| from_sqlx::<DB>(dir.what(), job.table(), e))?;
    let mut out = Vec::new();
    steps::<DB>(&mut conn, job, dir, &mut Some(&mut out)).await?;
    Ok(out)
}

/// Where a step's statements go: executed (`None`), or collected.
type Sink<'a> = Option<&'a mut Vec<String>>;

async fn steps<DB: Backend>(
    conn: &mut DB::Connection,
    job: Job<'_>,
    dir: Direction,
    sink: &mut Sink<'_>,
) -> Result<(), StoreError> {
    let (d, table) = (DB::DIALECT, job.table());
    let err = |e| from_sqlx::<DB>(dir.what(), table, e);
    let columns = catalog::<DB, 4, _>(conn, sql::columns(d, table), ExistingColumn::from_row)
        .await
        .map_err(err)?;
    let t = match job {
        Job::UsersTable(t) => t,
        Job::CodeTable(_) => {
            let change = plan::code_table(d, dir, table, &columns)?;
            return apply::<DB>(conn, dir, table, Step::CodeTable, change, sink).await;
        }
    };
    if columns.is_empty() {
        return Err(plan::missing_table(dir, table));
    }
    // Every step is checked before the first changes anything (MySQL
    // cannot roll DDL back).
    if dir == Direction::Up {
        plan::check_key_column(d, t, &columns)?;
    }
    let token_columns = plan::ColumnGroup::tokens(d).plan(dir, table, &columns, false)?;
    let user_id = plan::find(&columns, USER_ID_COLUMN);
    let indexes = catalog::<DB, 7, _>(conn, sql::indexes(d, table), ExistingIndex::from_row)
        .await
        .map_err(err)?;
    let index = plan::user_id_index(d, dir, table, &indexes, user_id, true, false)?;
    if let IndexPlan::Create {
        index,
        taken,
        duplicates,
        ..
    } = &index
    {
        let taken = counts::<DB>(conn, taken.clone()).await.map_err(err)?;
        let held = counts::<DB>(conn, duplicates.clone()).await.map_err(err)?;
        plan::check_room_for_index(t, index, &taken, &held)?;
    }
    let found = plan::find(&columns, t.expiry_column());
    let expiry = plan::expiry_column(d, dir, table, t.expiry_column(), found, false)?;
    let claims = plan::ColumnGroup::claims(d).plan(dir, table, &columns, false)?;
    match dir {
        Direction::Up => {
            apply::<DB>(conn, dir, table, Step::TokenColumns, token_columns, sink).await?;
            apply_index::<DB>(conn, t, dir, index, sink).await?;
            apply::<DB>(conn, dir, table, Step::ExpiryColumn, expiry, sink).await?;
            apply::<DB>(conn, dir, table, Step::ClaimColumns, claims, sink).await
        }
        Direction::Down => {
            apply::<DB>(conn, dir, table, Step::ClaimColumns, claims, sink).await?;
            apply::<DB>(conn, dir, table, Step::ExpiryColumn, expiry, sink).await?;
            apply_index::<DB>(conn, t, dir, index, sink).await?;
            apply::<DB>(conn, dir, table, Step::TokenColumns, token_columns, sink).await
        }
    }
}

/// The counts a query returns (its first column).
async fn counts<DB: Backend>(
    conn: &mut DB::Connection,
    q: Option<sql::Query>,
) -> Result<Vec<i64>, sqlx::Error> {
    let Some(q) = q else {
        return Ok(Vec::new());
    };
    let rows = DB::fetch_on(conn, built_sql(q.sql), &Bind::all(&q.params)).await?;
    rows.iter().map(|r| DB::column_i64(r, 0)).collect()
}

/// Runs a step's statements and records it (going up) or removes its record
/// (going down).
async fn apply<DB: Backend>(
    conn: &mut DB::Connection,
    dir: Direction,
    table: &str,
    step: Step,
    change: Change,
    sink: &mut Sink<'_>,
) -> Result<(), StoreError> {
    if let Some(out) = sink {
        out.extend(change.statements);
        return Ok(());
    }
    let err = |e| from_sqlx::<DB>(dir.what(), table, e);
    for stmt in &change.statements {
        DB::execute_on(conn, built_sql(stmt.as_str()), &[])
            .await
            .map_err(err)?;
    }
    track::<DB>(conn, dir, table, step).await.map_err(err)?;
    tracing::info!(
        table,
        changed = ?change.names,
        "{}: {} done",
        step.name(),
        dir.what()
    );
    Ok(())
}

async fn apply_index<DB: Backend>(
    conn: &mut DB::Connection,
    t: &UsersTable,
    dir: Direction,
    index: IndexPlan,
    sink: &mut Sink<'_>,
) -> Result<(), StoreError> {
    let change = match index {
        IndexPlan::Keep => Change::default(),
        IndexPlan::Create { statements, .. } if sink.is_some() => Change {
            names: Vec::new(),
            statements,
        },
        IndexPlan::Create {
            index, statements, ..
        } => {
            for stmt in &statements {
                if let Err(e) = DB::execute_on(conn, built_sql(stmt.as_str()), &[]).await {
                    // Rows written since the check share an id.
                    let duplicated = matches!(&e, sqlx::Error::Database(d)
                        if DB::unique_violation(d.as_ref()).is_some());
                    return Err(if duplicated {
                        let source = Box::new(redacted::<DB>(&e));
                        plan::duplicate_links(t, None, Some(source))
                    } else {
                        from_sqlx::<DB>(dir.what(), t.table(), e)
                    });
                }
            }
            Change {
                names: vec![index],
                statements: Vec::new(),
            }
        }
        IndexPlan::Drop { index, statements } => Change {
            names: vec![index],
            statements,
        },
    };
    apply::<DB>(conn, dir, t.table(), Step::UserIdIndex, change, sink).await
}

/// The rows of a schema query (text columns) as `T`s.
async fn catalog<DB: Backend, const N: usize, T>(
    conn: &mut DB::Connection,
    q: sql::Query,
    row: fn([Option<String>; N]) -> T,
) -> Result<Vec<T>, sqlx::Error> {
    let rows = DB::fetch_on(conn, built_sql(q.sql), &Bind::all(&q.params)).await?;
    rows.iter()
        .map(|r| {
            let mut out: [Option<String>; N] = std::array::from_fn(|_| None);
            for (i, cell) in out.iter_mut().enumerate() {
                *cell = DB::column_text(r, i)?;
            }
            Ok(row(out))
        })
        .collect()
}

/// The tracking table's key for a step of `table`, and the placeholders
/// comparing with it. (The column is named `users_table` because the first
/// step was the users table's; the code table's step is recorded under the
/// code table's name.)
fn tracking_key<DB: Backend>(table: &str, step: Step) -> ([Bind<'_>; 2], String) {
    let p = |n| DB::DIALECT.placeholder(n);
    (
        [Bind::Text(table), Bind::Int(step.version())],
        format!("users_table = {} AND version = {}", p(1), p(2)),
    )
}

/// Whether the step is recorded for `table`.
/// Whether every step of `job` is recorded and the columns it makes are
/// there (a renamed expiry column is not): only reads.
async fn applied<DB: Backend>(
    conn: &mut DB::Connection,
    job: &Job<'_>,
) -> Result<bool, sqlx::Error> {
    let table = job.table();
    let (steps, names): (&[Step], Vec<&str>) = match job {
        Job::UsersTable(t) => (
            &Step::USERS_TABLE,
            [
                USER_ID_COLUMN,
                TOKEN_COLUMN,
                TOKEN_ID_COLUMN,
                t.expiry_column(),
            ]
            .into_iter()
            .chain(CLAIM_COLUMNS)
            .collect(),
        ),
        Job::CodeTable(_) => (&[Step::CodeTable], CODE_COLUMNS.to_vec()),
    };
    for step in steps {
        if !recorded::<DB>(conn, table, *step).await? {
            return Ok(false);
        }
    }
    let columns = catalog::<DB, 4, _>(
        conn,
        sql::columns(DB::DIALECT, table),
        ExistingColumn::from_row,
    )
    .await?;
    Ok(names.iter().all(|n| plan::find(&columns, n).is_some()))
}

async fn recorded<DB: Backend>(
    conn: &mut DB::Connection,
    table: &str,
    step: Step,
) -> Result<bool, sqlx::Error> {
    let exists = sql::table_exists(DB::DIALECT, MIGRATIONS_TABLE);
    let binds = Bind::all(&exists.params);
    if DB::fetch_on(conn, built_sql(exists.sql.as_str()), &binds)
        .await?
        .is_empty()
    {
        return Ok(false);
    }
    let (binds, cond) = tracking_key::<DB>(table, step);
    let seen = format!("SELECT 1 FROM {MIGRATIONS_TABLE} WHERE {cond}");
    Ok(!DB::fetch_on(conn, built_sql(seen), &binds)
        .await?
        .is_empty())
}

/// Records the step going up (once: nothing is written when it is
/// recorded already, so that `migrate()` on a migrated database works where
/// the database is read-only), removes its record going down.
async fn track<DB: Backend>(
    conn: &mut DB::Connection,
    dir: Direction,
    table: &str,
    step: Step,
) -> Result<(), sqlx::Error> {
    if recorded::<DB>(conn, table, step).await? == (dir == Direction::Up) {
        return Ok(());
    }
    let (key, cond) = tracking_key::<DB>(table, step);
    if dir == Direction::Down {
        let delete = format!("DELETE FROM {MIGRATIONS_TABLE} WHERE {cond}");
        DB::execute_on(conn, built_sql(delete), &key).await?;
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
    let p = |n| DB::DIALECT.placeholder(n);
    let insert = format!(
        "INSERT INTO {MIGRATIONS_TABLE} (users_table, version, description) VALUES ({}, {}, {})",
        p(1),
        p(2),
        p(3)
    );
    let binds = [key[0], key[1], Bind::Text(step.name())];
    DB::execute_on(conn, built_sql(insert), &binds).await?;
    Ok(())
}
