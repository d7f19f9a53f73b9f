//! [`SqlxCodeStore`]: the magic-link [`CodeStore`] in a table of the host's
//! database, written once for every [`Backend`].

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use mattermost_tokens::magic_link::{CodeHash, CodeStore};
use mattermost_tokens::store::validate_identifier;
use mattermost_tokens::{HostUserId, StoreError};
use sqlx::error::DatabaseError;
use sqlx::pool::PoolConnection;
use sqlx::{AssertSqlSafe, Connection, Pool, SqlSafeStr, SqlStr};

use crate::backend::{Backend, Bind};
use crate::error::from_sqlx;
use crate::migration::{self, Direction, Job};

/// The table [`SqlxCodeStore::new`] uses.
pub const DEFAULT_CODES_TABLE: &str = "mattermost_magic_link_codes";

/// The code table's columns.
pub(crate) const CODE_HASH: &str = "code_hash";
pub(crate) const HOST_USER_ID: &str = "host_user_id";
pub(crate) const HOST_USER_KIND: &str = "host_user_kind";
pub(crate) const EXPIRES_AT: &str = "expires_at";

/// The longest text user key the `host_user_id` column holds (characters).
const MAX_USER_ID_CHARS: usize = 255;

/// How many times a consuming transaction chosen as a deadlock victim is
/// run again (MySQL/MariaDB only; it was rolled back, so nothing was
/// consumed).
const DEADLOCK_RETRIES: u32 = 3;

#[derive(Debug)]
struct CodeQueries {
    insert: Arc<str>,
    /// `DELETE ... RETURNING` (PostgreSQL, SQLite).
    consume: Arc<str>,
    /// `SELECT ... FOR UPDATE`, then `delete` (MySQL/MariaDB).
    lock: Arc<str>,
    delete: Arc<str>,
    peek: Arc<str>,
    purge: Arc<str>,
}

fn sql(text: &Arc<str>) -> SqlStr {
    AssertSqlSafe(Arc::clone(text)).into_sql_str()
}

impl CodeQueries {
    fn new<DB: Backend>(table: &str) -> Self {
        let p = DB::placeholder;
        let live = format!("{CODE_HASH} = {} AND {EXPIRES_AT} > {}", p(1), p(2));
        let q = |s: String| -> Arc<str> { s.into() };
        CodeQueries {
            insert: q(format!(
                "INSERT INTO {table} ({CODE_HASH}, {HOST_USER_ID}, {HOST_USER_KIND}, {EXPIRES_AT}) \
                 VALUES ({}, {}, {}, {})",
                p(1),
                p(2),
                p(3),
                p(4)
            )),
            consume: q(format!(
                "DELETE FROM {table} WHERE {live} RETURNING {HOST_USER_ID}, {HOST_USER_KIND}"
            )),
            lock: q(format!(
                "SELECT {HOST_USER_ID}, {HOST_USER_KIND} FROM {table} WHERE {live} FOR UPDATE"
            )),
            delete: q(format!("DELETE FROM {table} WHERE {CODE_HASH} = {}", p(1))),
            peek: q(format!("SELECT 1 FROM {table} WHERE {live}")),
            purge: q(format!(
                "DELETE FROM {table} WHERE {EXPIRES_AT} <= {}",
                p(1)
            )),
        }
    }
}

/// A [`CodeStore`] for one-time magic-link codes in a table of the host's
/// database (`mattermost_magic_link_codes` by default), through the host's
/// sqlx pool, so that a code issued by one instance of the app can be
/// redeemed on another.
///
/// Use it through its per-database names, [`PgCodeStore`](crate::PgCodeStore),
/// [`MySqlCodeStore`](crate::MySqlCodeStore) and
/// [`SqliteCodeStore`](crate::SqliteCodeStore); create the table once at
/// start-up with [`migrate`](Self::migrate). Cheap to clone.
///
/// # The table
///
/// | column           | type                                    | holds                                  |
/// |------------------|-----------------------------------------|----------------------------------------|
/// | `code_hash`      | `CHAR(64)` (`VARCHAR(64)` on PostgreSQL), primary key | the code's SHA-256, lowercase hex |
/// | `host_user_id`   | `VARCHAR(255)`                          | the host user key as text              |
/// | `host_user_kind` | `CHAR(1)`                               | `i` (integer key) or `t` (text key)    |
/// | `expires_at`     | `BIGINT`, indexed                       | Unix time in seconds                   |
///
/// Only the hash of a code is stored ([`CodeHash`]): whoever reads the table
/// cannot log anyone in. A code is deleted when it is consumed; expired
/// codes stay until [`purge_expired`](CodeStore::purge_expired) (or
/// `MagicLinks::purge_expired`) runs. The code store does not refer to the
/// users table: a text key (such as a UUID) is kept as given, an integer key
/// in decimal, and the kind column makes both come back as they went in.
///
/// Expiry times are kept in whole seconds, rounded down, so a code never
/// works past its `expires_at`. (The links `MagicLinks` issues expire at
/// whole seconds anyway.)
///
/// # Consuming exactly once
///
/// On PostgreSQL and SQLite [`consume`](CodeStore::consume) is one
/// statement, `DELETE ... WHERE code_hash = ? AND expires_at > ? RETURNING
/// ...`: of any number of concurrent calls, one deletes the row and sees
/// it, the others find nothing. MySQL has no `DELETE ... RETURNING`, so
/// there a transaction reads the row with `SELECT ... FOR UPDATE` (the
/// others wait for its lock, then find the row gone) and deletes it.
pub struct SqlxCodeStore<DB: Backend> {
    pool: Pool<DB>,
    table: String,
    sql: Arc<CodeQueries>,
}

impl<DB: Backend> Clone for SqlxCodeStore<DB> {
    fn clone(&self) -> Self {
        SqlxCodeStore {
            pool: self.pool.clone(),
            table: self.table.clone(),
            sql: Arc::clone(&self.sql),
        }
    }
}

impl<DB: Backend> fmt::Debug for SqlxCodeStore<DB> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SqlxCodeStore")
            .field("database", &DB::NAME)
            .field("table", &self.table)
            .field(
                "pool",
                &format_args!(
                    "Pool {{ size: {}, idle: {} }}",
                    self.pool.size(),
                    self.pool.num_idle()
                ),
            )
            .finish()
    }
}

impl<DB: Backend> SqlxCodeStore<DB> {
    /// A code store in the table [`DEFAULT_CODES_TABLE`]
    /// (`mattermost_magic_link_codes`), using the host's pool.
    pub fn new(pool: Pool<DB>) -> Self {
        Self::build(pool, DEFAULT_CODES_TABLE.to_owned())
    }

    fn build(pool: Pool<DB>, table: String) -> Self {
        let sql = Arc::new(CodeQueries::new::<DB>(&table));
        SqlxCodeStore { pool, table, sql }
    }

    /// Uses another table (`app_magic_codes`, or `schema.codes`). The name
    /// goes into SQL, so it must be an identifier: letters, digits and `_`,
    /// optionally one `schema.` prefix; anything else is
    /// [`StoreError::Config`].
    pub fn with_table_name(self, table: impl Into<String>) -> Result<Self, StoreError> {
        let table = table.into();
        validate_identifier(&table)?;
        Ok(Self::build(self.pool, table))
    }

    /// The pool the store uses.
    pub fn pool(&self) -> &Pool<DB> {
        &self.pool
    }

    /// The code table, as configured.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Applies the migration
    /// [`create_mattermost_magic_link_codes_table`](crate::CODES_MIGRATION_NAME):
    /// creates the code table and its index on `expires_at`, and records it
    /// in [`MIGRATIONS_TABLE`](crate::MIGRATIONS_TABLE). Call it once at
    /// start-up; running it again is fine (and writes nothing, so it also
    /// works on a read-only replica of a migrated database).
    ///
    /// Fails with [`StoreError::Schema`], changing nothing, when a table of
    /// that name exists without the code table's columns.
    pub async fn migrate(&self) -> Result<(), StoreError> {
        migration::run(&self.pool, Job::CodeTable(&self.table), Direction::Up).await
    }

    /// Reverts [`migrate`](Self::migrate): drops the code table (every
    /// outstanding link stops working) and removes the migration's record.
    /// Running it when the table is gone is fine; a table of that name
    /// without the code table's columns is not dropped
    /// ([`StoreError::Schema`]).
    pub async fn undo_migration(&self) -> Result<(), StoreError> {
        migration::run(&self.pool, Job::CodeTable(&self.table), Direction::Down).await
    }

    fn err<'a>(&'a self, what: &'a str) -> impl Fn(sqlx::Error) -> StoreError + 'a {
        move |e| from_sqlx::<DB>(what, &self.table, e)
    }

    async fn conn(&self, what: &str) -> Result<PoolConnection<DB>, StoreError> {
        self.pool.acquire().await.map_err(self.err(what))
    }

    /// Reads the user of a row selected as (`host_user_id`, `host_user_kind`).
    fn decode_user(&self, what: &str, row: &DB::Row) -> Result<HostUserId, StoreError> {
        let id = DB::column_text(row, 0).map_err(self.err(what))?;
        let kind = DB::column_text(row, 1).map_err(self.err(what))?;
        let corrupt = |why: &str| StoreError::Database {
            message: format!("{what}: a row of table `{}` {why}", self.table),
            source: None,
        };
        let id = id.ok_or_else(|| corrupt("has no host user id"))?;
        match kind.as_deref().map(str::trim) {
            Some("t") => Ok(HostUserId::Text(id)),
            Some("i") => id
                .parse()
                .map(HostUserId::Int)
                .map_err(|_| corrupt("has an integer host user id that is not an integer")),
            _ => Err(corrupt("has a host_user_kind other than 'i' or 't'")),
        }
    }

    /// `DELETE ... RETURNING`: one atomic statement.
    async fn consume_returning(
        &self,
        what: &str,
        hash: &str,
        now: i64,
    ) -> Result<Option<HostUserId>, StoreError> {
        let mut conn = self.conn(what).await?;
        let rows = DB::fetch_on(
            &mut conn,
            sql(&self.sql.consume),
            &[Bind::Text(hash), Bind::Int(now)],
        )
        .await
        .map_err(self.err(what))?;
        rows.first()
            .map(|row| self.decode_user(what, row))
            .transpose()
    }

    /// A transaction locking the row, then deleting it.
    async fn consume_locking(
        &self,
        what: &str,
        hash: &str,
        now: i64,
    ) -> Result<Option<HostUserId>, StoreError> {
        let mut conn = self.conn(what).await?;
        let mut attempt = 0;
        loop {
            match self.lock_and_delete(&mut conn, hash, now).await {
                Err(sqlx::Error::Database(e))
                    if attempt < DEADLOCK_RETRIES
                        && DB::is_deadlock(e.as_ref() as &dyn DatabaseError) =>
                {
                    attempt += 1;
                    tracing::debug!(
                        attempt,
                        "magic-link code consumption hit a deadlock; retrying"
                    );
                }
                Err(e) => return Err(self.err(what)(e)),
                Ok(None) => return Ok(None),
                Ok(Some(row)) => return self.decode_user(what, &row).map(Some),
            }
        }
    }

    async fn lock_and_delete(
        &self,
        conn: &mut DB::Connection,
        hash: &str,
        now: i64,
    ) -> Result<Option<DB::Row>, sqlx::Error> {
        let mut tx = Connection::begin(conn).await?;
        let mut rows = DB::fetch_on(
            &mut tx,
            sql(&self.sql.lock),
            &[Bind::Text(hash), Bind::Int(now)],
        )
        .await?;
        let Some(row) = rows.pop() else {
            tx.rollback().await?;
            return Ok(None);
        };
        DB::execute_on(&mut tx, sql(&self.sql.delete), &[Bind::Text(hash)]).await?;
        tx.commit().await?;
        Ok(Some(row))
    }
}

/// Unix seconds, rounded down.
fn unix_secs(t: DateTime<Utc>) -> i64 {
    t.timestamp()
}

fn user_binds(user: &HostUserId) -> Result<(String, &'static str), StoreError> {
    match user {
        HostUserId::Int(i) => Ok((i.to_string(), "i")),
        HostUserId::Text(s) if s.chars().count() <= MAX_USER_ID_CHARS => Ok((s.clone(), "t")),
        HostUserId::Text(s) => Err(StoreError::Config(format!(
            "a text host user id of {} characters does not fit the code table's host_user_id column \
             (at most {MAX_USER_ID_CHARS})",
            s.chars().count()
        ))),
    }
}

#[async_trait]
impl<DB: Backend> CodeStore for SqlxCodeStore<DB> {
    async fn insert(
        &self,
        hash: &CodeHash,
        user: &HostUserId,
        expires_at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        const WHAT: &str = "storing a magic-link code";
        let (id, kind) = user_binds(user)?;
        let hex = hash.to_hex();
        let binds = [
            Bind::Text(&hex),
            Bind::Text(&id),
            Bind::Text(kind),
            Bind::Int(unix_secs(expires_at)),
        ];
        let mut conn = self.conn(WHAT).await?;
        DB::execute_on(&mut conn, sql(&self.sql.insert), &binds)
            .await
            .map_err(self.err(WHAT))?;
        Ok(())
    }

    async fn consume(
        &self,
        hash: &CodeHash,
        now: DateTime<Utc>,
    ) -> Result<Option<HostUserId>, StoreError> {
        const WHAT: &str = "redeeming a magic-link code";
        let hex = hash.to_hex();
        let now = unix_secs(now);
        if DB::DELETE_RETURNING {
            self.consume_returning(WHAT, &hex, now).await
        } else {
            self.consume_locking(WHAT, &hex, now).await
        }
    }

    async fn peek(&self, hash: &CodeHash, now: DateTime<Utc>) -> Result<bool, StoreError> {
        const WHAT: &str = "checking a magic-link code";
        let hex = hash.to_hex();
        let mut conn = self.conn(WHAT).await?;
        let rows = DB::fetch_on(
            &mut conn,
            sql(&self.sql.peek),
            &[Bind::Text(&hex), Bind::Int(unix_secs(now))],
        )
        .await
        .map_err(self.err(WHAT))?;
        Ok(!rows.is_empty())
    }

    async fn purge_expired(&self, now: DateTime<Utc>) -> Result<u64, StoreError> {
        const WHAT: &str = "purging expired magic-link codes";
        let mut conn = self.conn(WHAT).await?;
        let result = DB::execute_on(
            &mut conn,
            sql(&self.sql.purge),
            &[Bind::Int(unix_secs(now))],
        )
        .await
        .map_err(self.err(WHAT))?;
        Ok(DB::rows_affected(&result))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_kinds() {
        assert_eq!(
            user_binds(&HostUserId::Int(-7)).unwrap(),
            ("-7".into(), "i")
        );
        assert_eq!(
            user_binds(&HostUserId::Text("ü".repeat(255))).unwrap().1,
            "t"
        );
        assert!(matches!(
            user_binds(&HostUserId::Text("x".repeat(256))),
            Err(StoreError::Config(_))
        ));
    }

    #[test]
    fn seconds_round_down() {
        let t = DateTime::from_timestamp(100, 999_000_000).unwrap();
        assert_eq!(unix_secs(t), 100);
    }
}
