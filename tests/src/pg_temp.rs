//! A throw-away PostgreSQL database per test, with a Laravel-shaped `users`
//! table, for the suites that need a whole database of their own (to make it
//! read-only, or to hand its URL to a child process).
//!
//! [`TempDatabase::create`] makes `<prefix>_<unique suffix>` on the server of
//! the admin URL; dropping the handle drops the database (`WITH (FORCE)`,
//! so connections still open to it do not keep it alive).

use mattermost_tokens_sqlx::sqlx::postgres::{PgPool, PgPoolOptions};
use mattermost_tokens_sqlx::sqlx::{self, AssertSqlSafe};

use crate::db::with_database;

/// A database created for one test and dropped with the handle.
#[derive(Debug)]
pub struct TempDatabase {
    admin_url: String,
    /// A connection to the admin database, kept open so that switching
    /// this database read-only takes milliseconds.
    admin: PgPool,
    name: String,
    url: String,
}

async fn admin_pool(admin_url: &str) -> PgPool {
    PgPoolOptions::new()
        .max_connections(1)
        .connect(admin_url)
        .await
        .expect("connect to the PostgreSQL test server")
}

impl TempDatabase {
    /// Creates an empty database named `<prefix>_<suffix>` (prefix: letters,
    /// digits and `_`).
    pub async fn create(admin_url: &str, prefix: &str) -> TempDatabase {
        assert!(
            prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_'),
            "bad prefix {prefix:?}"
        );
        let name = format!("{prefix}_{}", crate::db::unique_suffix()).to_lowercase();
        let admin = admin_pool(admin_url).await;
        sqlx::query(AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&admin)
            .await
            .expect("CREATE DATABASE");
        TempDatabase {
            admin,
            admin_url: admin_url.to_owned(),
            url: with_database(admin_url, &name),
            name,
        }
    }

    /// The database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// A URL of the database (the admin URL with the database name swapped).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The URL of the database the admin connection uses (not this one).
    pub fn admin_url(&self) -> &str {
        &self.admin_url
    }

    /// A new pool on this database.
    pub async fn pool(&self, max_connections: u32) -> PgPool {
        PgPoolOptions::new()
            .max_connections(max_connections)
            .connect(&self.url)
            .await
            .expect("connect to the temporary database")
    }

    /// Runs one statement on the admin database (not this one): for
    /// `ALTER DATABASE` and `pg_terminate_backend`.
    pub async fn admin_execute(&self, sql: &str) {
        sqlx::query(AssertSqlSafe(sql.to_owned()))
            .execute(&self.admin)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
    }

    /// Ends every connection to this database (the caller's pools open new
    /// ones on their next use).
    pub async fn terminate_connections(&self) {
        self.admin_execute(&format!(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity \
             WHERE datname = '{}' AND pid <> pg_backend_pid()",
            self.name
        ))
        .await;
    }

    /// Makes the database refuse writes from new transactions, and ends the
    /// open connections so that no connection keeps the old default.
    pub async fn set_read_only(&self, on: bool) {
        let sql = if on {
            format!(
                "ALTER DATABASE {} SET default_transaction_read_only = on",
                self.name
            )
        } else {
            format!(
                "ALTER DATABASE {} RESET default_transaction_read_only",
                self.name
            )
        };
        self.admin_execute(&sql).await;
        self.terminate_connections().await;
    }

    /// Creates a Laravel-shaped `users` table holding users `1..=n`
    /// (`user{i}@example.com`, named `User Number{i}`), with the other
    /// Laravel columns filled with varied values (some NULL).
    pub async fn create_laravel_users(&self, n: i64) {
        let pool = self.pool(1).await;
        for sql in [
            "CREATE TABLE users (id BIGSERIAL PRIMARY KEY, name VARCHAR(255) NOT NULL, \
             email VARCHAR(255) NOT NULL UNIQUE, email_verified_at TIMESTAMP NULL, \
             password VARCHAR(255) NOT NULL, remember_token VARCHAR(100) NULL, \
             created_at TIMESTAMP NULL, updated_at TIMESTAMP NULL)"
                .to_owned(),
            format!(
                "INSERT INTO users (name, email, email_verified_at, password, remember_token, created_at, updated_at) \
                 SELECT 'User Number' || g, 'user' || g || '@example.com', \
                 CASE WHEN g % 3 = 0 THEN NULL ELSE TIMESTAMP '2024-01-01 08:00:00' + g * INTERVAL '1 hour' END, \
                 '$2y$10$' || md5('pw' || g), \
                 CASE WHEN g % 2 = 0 THEN substr(md5('rt' || g), 1, 60) ELSE NULL END, \
                 TIMESTAMP '2023-06-01 12:00:00' + g * INTERVAL '1 minute', \
                 CASE WHEN g % 5 = 0 THEN NULL ELSE TIMESTAMP '2023-07-01 12:00:00' + g * INTERVAL '1 second' END \
                 FROM generate_series(1, {n}) AS g ORDER BY g"
            ),
        ] {
            sqlx::query(AssertSqlSafe(sql))
                .execute(&pool)
                .await
                .expect("create the users table");
        }
        pool.close().await;
    }

    /// Every `users` row's host columns (all but the Mattermost ones), one
    /// string per row, in id order.
    pub async fn dump_app_rows(&self) -> Vec<String> {
        let pool = self.pool(1).await;
        let rows: Vec<String> = sqlx::query_scalar(
            "SELECT concat_ws(' | ', id::text, name, email, \
             coalesce(email_verified_at::text, 'NULL'), password, \
             coalesce(remember_token, 'NULL'), coalesce(created_at::text, 'NULL'), \
             coalesce(updated_at::text, 'NULL')) FROM users ORDER BY id",
        )
        .fetch_all(&pool)
        .await
        .expect("dump the users table");
        pool.close().await;
        rows
    }
}

impl Drop for TempDatabase {
    fn drop(&mut self) {
        let admin_url = self.admin_url.clone();
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        // Drop may run inside a tokio runtime: do the work on a thread of
        // its own with a runtime of its own.
        let dropped = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let admin = PgPoolOptions::new()
                    .max_connections(1)
                    .connect(&admin_url)
                    .await
                    .ok()?;
                let r = sqlx::query(AssertSqlSafe(sql)).execute(&admin).await.ok();
                admin.close().await;
                r
            })
        })
        .join();
        if !matches!(dropped, Ok(Some(_))) {
            eprintln!("could not drop the temporary database {}", self.name);
        }
    }
}
