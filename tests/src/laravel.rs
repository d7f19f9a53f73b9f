//! Host databases as hosts make them: a Laravel-shaped `users` table in a
//! SQLite file in a given journal mode, or in a PostgreSQL / MariaDB
//! database, with the columns and types Laravel's default migration
//! creates (and none of ours: the store's migration adds them).

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};
use sqlx::{AssertSqlSafe, SqlitePool};

/// SQLite's journal modes a host's file may be in. Only WAL is a property
/// of the file; the rollback modes are chosen by each connection, and a
/// host's own connections use theirs while the library's use SQLite's
/// default (`delete`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JournalMode {
    /// SQLite's default: the journal is deleted at each commit.
    Delete,
    /// The journal is truncated at each commit.
    Truncate,
    /// Write-ahead log (persistent).
    Wal,
}

impl JournalMode {
    /// Every mode.
    pub const ALL: [JournalMode; 3] =
        [JournalMode::Delete, JournalMode::Truncate, JournalMode::Wal];

    /// sqlx's name for the mode.
    pub fn sqlx(self) -> SqliteJournalMode {
        match self {
            JournalMode::Delete => SqliteJournalMode::Delete,
            JournalMode::Truncate => SqliteJournalMode::Truncate,
            JournalMode::Wal => SqliteJournalMode::Wal,
        }
    }

    /// The mode as `PRAGMA journal_mode` reports it.
    pub fn name(self) -> &'static str {
        match self {
            JournalMode::Delete => "delete",
            JournalMode::Truncate => "truncate",
            JournalMode::Wal => "wal",
        }
    }
}

/// Laravel's `users` table (its default migration), in SQLite's dialect.
pub const SQLITE_USERS_DDL: &str = "CREATE TABLE users (\
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL, name VARCHAR NOT NULL, \
    email VARCHAR NOT NULL, email_verified_at DATETIME NULL, password VARCHAR NOT NULL, \
    remember_token VARCHAR NULL, created_at DATETIME NULL, updated_at DATETIME NULL)";

/// A fresh SQLite file at `path` with a Laravel `users` table of `n` users
/// (`User {i}`, `user{i}@example.com`; every other one verified), made by a
/// host connection in `mode`. Returns the host's pool (in that mode).
pub async fn sqlite_file(path: &Path, mode: JournalMode, n: i64) -> SqlitePool {
    for suffix in ["", "-journal", "-wal", "-shm"] {
        let _ = std::fs::remove_file(format!("{}{suffix}", path.display()));
    }
    let pool = sqlite_host_pool(path, mode, true).await;
    sqlx::query(SQLITE_USERS_DDL).execute(&pool).await.unwrap();
    sqlx::query("CREATE UNIQUE INDEX users_email_unique ON users (email)")
        .execute(&pool)
        .await
        .unwrap();
    insert_users(&pool, 1, n).await;
    let got: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(got, mode.name(), "the host file is in the mode asked for");
    pool
}

/// The host app's own pool on the file: its journal mode, sqlx's default
/// busy timeout.
pub async fn sqlite_host_pool(path: &Path, mode: JournalMode, create: bool) -> SqlitePool {
    let options = SqliteConnectOptions::from_str(&format!("sqlite://{}", path.display()))
        .unwrap()
        .create_if_missing(create)
        .journal_mode(mode.sqlx());
    SqlitePoolOptions::new()
        .max_connections(2)
        .connect_with(options)
        .await
        .unwrap()
}

/// Inserts users `from..=to` as Laravel would (one transaction).
pub async fn insert_users(pool: &SqlitePool, from: i64, to: i64) {
    let mut tx = pool.begin().await.unwrap();
    for i in from..=to {
        sqlx::query(
            "INSERT INTO users (id, name, email, email_verified_at, password, created_at, updated_at) \
             VALUES (?, ?, ?, CASE WHEN ? % 2 = 0 THEN CURRENT_TIMESTAMP END, 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        )
        .bind(i)
        .bind(format!("User {i}"))
        .bind(format!("user{i}@example.com"))
        .bind(i)
        .execute(&mut *tx)
        .await
        .unwrap();
    }
    tx.commit().await.unwrap();
}

/// A temporary directory for one test's files, removed on drop.
#[derive(Debug)]
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new, empty directory named after `test`.
    pub fn new(test: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mmt-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    /// `name` inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Laravel's `users` table on PostgreSQL or MySQL/MariaDB (`kind` picks
/// the dialect: `"postgres"` or `"mysql"`).
pub fn server_users_ddl(kind: &str) -> String {
    let id = match kind {
        "postgres" => "id BIGSERIAL PRIMARY KEY",
        _ => "id BIGINT UNSIGNED AUTO_INCREMENT PRIMARY KEY",
    };
    format!(
        "CREATE TABLE users ({id}, name VARCHAR(255) NOT NULL, email VARCHAR(255) NOT NULL UNIQUE, \
         email_verified_at TIMESTAMP NULL, password VARCHAR(255) NOT NULL, \
         remember_token VARCHAR(100) NULL, created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL)"
    )
}

/// The statement inserting user `i` (values inline: the tests' own data).
pub fn insert_user_sql(i: i64) -> String {
    format!(
        "INSERT INTO users (id, name, email, password, created_at, updated_at) \
         VALUES ({i}, 'User {i}', 'user{i}@example.com', 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
    )
}

/// Runs `sql` on a SQLite pool.
pub async fn sqlite_exec(pool: &SqlitePool, sql: &str) {
    sqlx::query(AssertSqlSafe(sql.to_owned()))
        .execute(pool)
        .await
        .unwrap();
}

/// A bound for waits in these tests: generous, but never forever.
pub const BOUND: Duration = Duration::from_secs(300);
