//! `sync_users` over a host's SQLite file as hosts make them: each journal
//! mode, both adapters, 2,000 Laravel users; and another process holding
//! the write lock for longer than the busy timeout.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use mattermost_tokens::HostUserId;
use mattermost_tokens_sqlx::SqliteTokenStore;
use mattermost_tokens_stand_in::StandIn;
use mattermost_tokens_tests::laravel::{self, JournalMode, TempDir};
use mattermost_tokens_tests::promise::assert_promise;

/// Runs `sync_users` with `args` on the SQLite file `db`, against `server`,
/// killing it (and failing) if it runs longer than `limit`.
fn sync_users(
    server: &StandIn,
    db: &Path,
    args: &[&str],
    env: &[(&str, &str)],
    limit: Duration,
) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sync_users"));
    cmd.args(args)
        .current_dir(db.parent().unwrap())
        .env("DATABASE_URL", format!("sqlite://{}", db.display()))
        .env("MATTERMOST_URL", server.url())
        .env("MATTERMOST_TOKEN", server.admin_token().expose_secret())
        .env_remove("MATTERMOST_TOKENS_KEY")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let started = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if started.elapsed() > limit {
            let _ = child.kill();
            let out = child.wait_with_output().unwrap();
            panic!(
                "sync_users {args:?} did not finish within {limit:?}:\n{}\n{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The number on the summary line `label`.
fn summary(out: &Output, label: &str) -> u64 {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| {
            let rest = l.trim().strip_prefix(label)?;
            rest.starts_with(' ').then(|| rest.trim().parse().ok())?
        })
        .unwrap_or_else(|| panic!("no {label:?} in the summary: {}", text(out)))
}

async fn assert_promise_on(server: &StandIn, db: &Path, users: i64) {
    let pool = laravel::sqlite_host_pool(db, JournalMode::Delete, false).await;
    let store = SqliteTokenStore::new(pool);
    let ids: Vec<HostUserId> = (1..=users).map(HostUserId::Int).collect();
    assert_promise(server, &store, &ids).await;
}

async fn all_users(mode: JournalMode, store: &str) {
    const N: i64 = 2_000;
    let dir = TempDir::new(&format!("sync-users-{store}-{}", mode.name()));
    let db = dir.join("app.sqlite");
    laravel::sqlite_file(&db, mode, N).await;
    let server = StandIn::start().await.unwrap();
    let out = sync_users(
        &server,
        &db,
        &["--all", "--store", store],
        &[],
        laravel::BOUND,
    );
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(summary(&out, "minted"), N as u64, "{}", text(&out));
    assert_promise_on(&server, &db, N).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_over_every_journal_mode() {
    for mode in JournalMode::ALL {
        all_users(mode, "sqlx").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn diesel_over_every_journal_mode() {
    for mode in JournalMode::ALL {
        all_users(mode, "diesel").await;
    }
}

/// Another process holds the write lock for longer than the busy timeout:
/// the users it blocks fail with an error that names the lock, the sync
/// finishes (exit 1) instead of waiting, and a run after the lock is gone
/// completes with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_holding_the_lock_fails_users_clearly_and_loses_nothing() {
    const N: i64 = 40;
    for store in ["sqlx", "diesel"] {
        let dir = TempDir::new(&format!("sync-users-locked-{store}"));
        let db = dir.join("app.sqlite");
        laravel::sqlite_file(&db, JournalMode::Delete, N).await;
        let server = StandIn::start().await.unwrap();
        // Migrate first, so the lock holder finds the columns.
        let out = sync_users(
            &server,
            &db,
            &["--user", "1", "--store", store],
            &[],
            laravel::BOUND,
        );
        assert!(out.status.success(), "{}", text(&out));
        // A second process takes the write lock and keeps it for 4 s.
        let mut holder = Command::new("python3")
            .arg("-c")
            .arg(
                "import sqlite3, sys, time\n\
                 c = sqlite3.connect(sys.argv[1], isolation_level=None)\n\
                 c.execute('BEGIN IMMEDIATE')\n\
                 c.execute(\"UPDATE users SET remember_token = 'held' WHERE id = 1\")\n\
                 print('locked', flush=True)\n\
                 time.sleep(4)\n\
                 c.execute('COMMIT')\n",
            )
            .arg(&db)
            .stdout(Stdio::piped())
            .spawn()
            .expect("python3 runs the lock holder");
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(holder.stdout.as_mut().unwrap()),
            &mut line,
        )
        .unwrap();
        assert_eq!(line.trim(), "locked");
        let started = Instant::now();
        let out = sync_users(
            &server,
            &db,
            &["--all", "--store", store],
            &[("SQLITE_BUSY_TIMEOUT_MS", "300")],
            Duration::from_secs(60),
        );
        let elapsed = started.elapsed();
        let all = text(&out);
        assert_eq!(out.status.code(), Some(1), "{store}: {all}");
        assert!(all.contains("database is locked"), "{store}: {all}");
        assert!(
            all.contains("WAL"),
            "{store}: the message says what helps: {all}"
        );
        assert!(summary(&out, "failed") > 0, "{store}: {all}");
        assert!(
            elapsed < Duration::from_secs(30),
            "{store}: the sync finished instead of waiting ({elapsed:?})"
        );
        assert!(holder.wait().unwrap().success());
        let out = sync_users(
            &server,
            &db,
            &["--all", "--store", store],
            &[],
            laravel::BOUND,
        );
        assert!(out.status.success(), "{store}: {}", text(&out));
        assert_eq!(summary(&out, "failed"), 0, "{store}: {}", text(&out));
        assert_promise_on(&server, &db, N).await;
        // The lock holder's own write is there.
        let pool = laravel::sqlite_host_pool(&db, JournalMode::Delete, false).await;
        let held: Option<String> =
            sqlx::query_scalar("SELECT remember_token FROM users WHERE id = 1")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(held.as_deref(), Some("held"));
    }
}
