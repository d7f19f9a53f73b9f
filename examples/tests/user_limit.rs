//! `sync_users` against a Mattermost server at its user limit, on SQLite,
//! PostgreSQL and MariaDB: it creates what fits, sends no create it knows
//! will be refused, names the limit once, exits 3; raised, `--missing`
//! finishes the rest.

use std::process::{Command, Output};

use common::count;
use mattermost_tokens::DESCRIPTION_PREFIX;
use mattermost_tokens_examples::demo_db::HostDb;
use mattermost_tokens_stand_in::StandIn;
use mattermost_tokens_tests::db::{MYSQL_ENV, POSTGRES_ENV, url_or_skip};
use mattermost_tokens_tests::scratch::{Kind, Namespace};

mod common;

const USERS: i64 = 300;
const CONCURRENCY: &str = "8";
const CREATE: &str = "POST /api/v4/users";

fn run(dir: &std::path::Path, url: &str, server: &StandIn, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sync_users"))
        .args(args)
        .args(["--concurrency", CONCURRENCY])
        .current_dir(dir)
        .env("DATABASE_URL", url)
        .env("MATTERMOST_URL", server.url())
        .env("MATTERMOST_TOKEN", server.admin_token().expose_secret())
        .env_remove("MATTERMOST_TOKENS_KEY")
        .env("RUST_LOG", "warn")
        .output()
        .unwrap()
}

async fn a_full_server_then_a_raised_limit(name: &str, url: &str) {
    common::host_with_users(url, USERS).await;
    let dir = std::env::temp_dir().join(format!("mmt-limit-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    // Room for 200 more: 201 active users, the admin is one.
    let server = StandIn::builder().user_limit(201).start().await.unwrap();

    let out = run(&dir, url, &server, &["--all"]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{name}: {} create requests", server.request_count(CREATE));
    assert_eq!(out.status.code(), Some(3), "{text}");
    assert_eq!(
        (
            count(&out, "created"),
            count(&out, "minted"),
            count(&out, "left out"),
            count(&out, "failed")
        ),
        (200, 200, 100, 0),
        "{name}: {text}"
    );
    assert!(
        server.request_count(CREATE) <= 200 + 8,
        "{name}: {} creates",
        server.request_count(CREATE)
    );
    let mentions = text.matches("user limit").count();
    assert!(
        (1..=3).contains(&mentions),
        "{name}: the limit named {mentions} times:\n{text}"
    );
    assert!(
        text.contains("not created: server user limit (active 201 of 201), 100 users left out"),
        "{text}"
    );

    // Raised: --missing creates exactly the 100 left out.
    server.set_user_limit(Some(1_000));
    server.reset_counts();
    let out = run(&dir, url, &server, &["--missing"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(server.request_count(CREATE), 100);
    assert_eq!(count(&out, "minted"), 100);
    // Every user holds one live library token, and no other is live.
    let live: Vec<_> = server
        .live_tokens()
        .into_iter()
        .filter(|t| t.description.starts_with(DESCRIPTION_PREFIX))
        .collect();
    assert_eq!(live.len(), USERS as usize);
    let host = HostDb::connect(url).await.unwrap();
    let stored: Vec<(Option<String>,)> =
        sqlx::query_as("SELECT mattermost_token_id FROM users ORDER BY id")
            .fetch_all(host.pool())
            .await
            .unwrap();
    let mut stored: Vec<String> = stored.into_iter().map(|(t,)| t.expect("a token")).collect();
    let mut live: Vec<String> = live.into_iter().map(|t| t.id.into_string()).collect();
    stored.sort();
    live.sort();
    assert_eq!(stored, live, "{name}: stored and live tokens differ");
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite() {
    let dir = std::env::temp_dir().join(format!("mmt-limit-db-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let url = format!("sqlite://{}?mode=rwc", dir.join("app.sqlite").display());
    a_full_server_then_a_raised_limit("sqlite", &url).await;
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres() {
    let Some(server) = url_or_skip(POSTGRES_ENV, "user_limit::postgres") else {
        return;
    };
    let ns = Namespace::create(Kind::Postgres, &server, "mmt_limit_").await;
    a_full_server_then_a_raised_limit("postgres", &ns.url()).await;
    ns.finish().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb() {
    let Some(server) = url_or_skip(MYSQL_ENV, "user_limit::mariadb") else {
        return;
    };
    let ns = Namespace::create(Kind::MariaDb, &server, "mmt_limit_").await;
    a_full_server_then_a_raised_limit("mariadb", &ns.url()).await;
    ns.finish().await;
}
