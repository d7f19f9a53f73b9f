//! What the process-level tests of `sync_users` share: a demo directory
//! with a SQLite file, running the binary, reading its summary.

#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use mattermost_tokens::DESCRIPTION_PREFIX;
use mattermost_tokens_examples::demo_db::HostDb;
use mattermost_tokens_stand_in::StandIn;
use sqlx::sqlite::SqlitePoolOptions;

pub struct Demo {
    pub dir: PathBuf,
    pub db_url: String,
}

impl Demo {
    pub fn new(name: &str) -> Self {
        let dir = std::env::temp_dir().join(format!("mmt-example-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let db_url = format!("sqlite://{}", dir.join("app.sqlite").display());
        Demo { dir, db_url }
    }

    /// `bin` (an example binary) in the demo's directory, on its database
    /// and against `server`.
    pub fn command(&self, bin: &str, server: &StandIn) -> Command {
        let mut cmd = Command::new(bin);
        cmd.current_dir(&self.dir)
            .env("DATABASE_URL", &self.db_url)
            .env("MATTERMOST_URL", server.url())
            .env("MATTERMOST_TOKEN", server.admin_token().expose_secret())
            .env_remove("MATTERMOST_TOKENS_KEY")
            .env("RUST_LOG", "warn");
        cmd
    }

    /// `magic_link_server` with `args`, run to its end: what it printed.
    pub fn magic_link_server(&self, server: &StandIn, args: &[&str]) -> String {
        let out = self
            .command(env!("CARGO_BIN_EXE_magic_link_server"), server)
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    pub fn run(&self, server: Option<&StandIn>, args: &[&str]) -> Output {
        self.run_with(server, args, &[])
    }

    pub fn run_with(
        &self,
        server: Option<&StandIn>,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sync_users"));
        cmd.envs(env.iter().copied());
        cmd.args(args)
            .current_dir(&self.dir)
            .env("DATABASE_URL", &self.db_url)
            .env_remove("MATTERMOST_TOKENS_KEY")
            .env("RUST_LOG", "warn");
        match server {
            Some(s) => {
                cmd.env("MATTERMOST_URL", s.url())
                    .env("MATTERMOST_TOKEN", s.admin_token().expose_secret());
            }
            None => {
                cmd.env_remove("MATTERMOST_URL")
                    .env_remove("MATTERMOST_TOKEN");
            }
        }
        cmd.output().unwrap()
    }

    pub async fn sql(&self, sql: &str) {
        let pool = SqlitePoolOptions::new()
            .connect(&self.db_url)
            .await
            .unwrap();
        sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()))
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A child process (a server the test started), killed with the test.
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits (30 s at most) until something listens on `port`.
pub async fn wait_for_port(port: u16, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .is_err()
    {
        assert!(Instant::now() < deadline, "{what} did not listen on {port}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The number on the summary line `label`.
pub fn count(out: &Output, label: &str) -> u64 {
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| {
            let l = l.trim();
            l.strip_prefix(label)
                .filter(|rest| rest.starts_with(' '))
                .and_then(|rest| rest.trim().parse().ok())
        })
        .unwrap_or_else(|| {
            panic!(
                "no {label:?} in the summary:\n{stdout}\nstderr:\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
}

pub fn live_library_tokens(s: &StandIn) -> usize {
    s.live_tokens()
        .iter()
        .filter(|t| t.description.starts_with(DESCRIPTION_PREFIX))
        .count()
}

/// The demo's users table at `url` (any of the three databases), filled to
/// `n` users.
pub async fn host_with_users(url: &str, n: i64) {
    let host = HostDb::connect(url).await.unwrap();
    host.ensure_demo_users().await.unwrap();
    let existing: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM users")
        .fetch_one(host.pool())
        .await
        .unwrap();
    let ids: Vec<i64> = (existing + 1..=n).collect();
    for chunk in ids.chunks(500) {
        let values: Vec<String> = chunk
            .iter()
            .map(|i| {
                format!(
                    "('User {i}', 'user{i}@example.com', 'x', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)"
                )
            })
            .collect();
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "INSERT INTO users (name, email, password, created_at, updated_at) VALUES {}",
            values.join(", ")
        )))
        .execute(host.pool())
        .await
        .unwrap();
    }
}
