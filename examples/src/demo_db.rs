//! The host app's side of the demo database: a Laravel-shaped `users` table
//! (created and seeded when missing or empty) through sqlx's `Any` driver,
//! so one code path serves SQLite, PostgreSQL and MySQL/MariaDB. The sync
//! reads the users through the adapters' paged `HostUsers` sources.

use anyhow::{Context, Result, bail};
use sqlx::any::AnyPoolOptions;
use sqlx::{AnyPool, AssertSqlSafe};

/// Which database a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// `sqlite:`
    Sqlite,
    /// `postgres:` / `postgresql:`
    Postgres,
    /// `mysql:` / `mariadb:`
    MySql,
}

impl Backend {
    /// The backend of `url`, or an error naming the schemes understood.
    pub fn of(url: &str) -> Result<Self> {
        let scheme = url.split(':').next().unwrap_or_default();
        Ok(match scheme {
            "sqlite" => Backend::Sqlite,
            "postgres" | "postgresql" => Backend::Postgres,
            "mysql" | "mariadb" => Backend::MySql,
            _ => bail!(
                "DATABASE_URL must start with sqlite://, postgres:// or mysql:// (got {scheme:?})"
            ),
        })
    }
}

/// The demo's default database: a SQLite file in the working directory.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://mattermost-tokens-demo.sqlite";

/// `url` with SQLite's "create the file if missing" mode added.
pub fn with_create_mode(url: &str) -> String {
    if url.starts_with("sqlite:") && !url.contains("mode=") && !url.contains(":memory:") {
        let sep = if url.contains('?') { '&' } else { '?' };
        format!("{url}{sep}mode=rwc")
    } else {
        url.to_owned()
    }
}

/// Demo users seeded into an empty table.
pub const DEMO_USERS: [(&str, &str); 5] = [
    ("Ana López", "ana.lopez@example.com"),
    ("Bo Berg", "bo.berg@example.com"),
    ("Chloé Dubois", "chloe.dubois@example.com"),
    ("Dmitri Ivanov", "dmitri@example.com"),
    ("Eve O'Neil", "eve.oneil@example.com"),
];

/// The host database.
#[derive(Clone, Debug)]
pub struct HostDb {
    pool: AnyPool,
    backend: Backend,
}

impl HostDb {
    /// Connects to `url` (a SQLite file is created when missing).
    pub async fn connect(url: &str) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = Backend::of(url)?;
        let pool = AnyPoolOptions::new()
            .max_connections(4)
            .acquire_timeout(std::time::Duration::from_secs(10))
            .connect(&with_create_mode(url))
            .await
            .with_context(|| format!("cannot connect to the {backend:?} database"))?;
        Ok(HostDb { pool, backend })
    }

    /// The backend.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The pool.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    async fn table_exists(&self, table: &str) -> Result<bool> {
        let sql: &'static str = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = $1"
            }
            Backend::MySql => {
                "SELECT COUNT(*) FROM information_schema.tables WHERE table_schema = DATABASE() AND table_name = ?"
            }
        };
        let n: i64 = sqlx::query_scalar(sql)
            .bind(table)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }

    /// Creates a Laravel-shaped `users` table when there is none, and seeds
    /// the demo users when it is empty. Returns how many users were seeded.
    pub async fn ensure_demo_users(&self) -> Result<usize> {
        if !self.table_exists("users").await? {
            let id = match self.backend {
                Backend::Sqlite => "id INTEGER PRIMARY KEY AUTOINCREMENT",
                Backend::Postgres => "id BIGSERIAL PRIMARY KEY",
                Backend::MySql => "id BIGINT AUTO_INCREMENT PRIMARY KEY",
            };
            let ddl = format!(
                "CREATE TABLE users ({id}, name VARCHAR(255) NOT NULL, email VARCHAR(255) NOT NULL UNIQUE, \
                 email_verified_at TIMESTAMP NULL, password VARCHAR(255) NOT NULL, \
                 remember_token VARCHAR(100) NULL, created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL)"
            );
            sqlx::query(AssertSqlSafe(ddl)).execute(&self.pool).await?;
        }
        let n: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
            .fetch_one(&self.pool)
            .await?;
        if n > 0 {
            return Ok(0);
        }
        let sql = self.sql(
            "INSERT INTO users (name, email, password, created_at, updated_at) \
             VALUES ($1, $2, $3, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)",
        );
        for (name, email) in DEMO_USERS {
            sqlx::query(AssertSqlSafe(sql.clone()))
                .bind(name)
                .bind(email)
                .bind("not-a-real-password-hash")
                .execute(&self.pool)
                .await?;
        }
        Ok(DEMO_USERS.len())
    }

    /// Rewrites `$n` placeholders to `?` for MySQL.
    pub fn sql(&self, sql: &str) -> String {
        match self.backend {
            Backend::MySql => {
                let mut out = String::with_capacity(sql.len());
                let mut chars = sql.chars().peekable();
                while let Some(c) = chars.next() {
                    if c == '$' && chars.peek().is_some_and(char::is_ascii_digit) {
                        while chars.peek().is_some_and(char::is_ascii_digit) {
                            chars.next();
                        }
                        out.push('?');
                    } else {
                        out.push(c);
                    }
                }
                out
            }
            _ => sql.to_owned(),
        }
    }

    /// Whether the users table has a user with this id.
    pub async fn user_exists(&self, id: i64) -> Result<bool> {
        let sql = self.sql("SELECT COUNT(*) FROM users WHERE id = $1");
        let n: i64 = sqlx::query_scalar(AssertSqlSafe(sql))
            .bind(id)
            .fetch_one(&self.pool)
            .await?;
        Ok(n > 0)
    }
}
