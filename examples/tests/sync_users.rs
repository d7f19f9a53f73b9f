//! The `sync_users` binary end to end against the stand-in and a SQLite file.

mod common;

use std::process::{Command, Output};

use common::{Demo, count, live_library_tokens};
use mattermost_tokens_stand_in::StandIn;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_sync_creates_rerun_mints_nothing_missing_mints_one() {
    let server = StandIn::start().await.unwrap();
    let demo = Demo::new("flow");
    let out = demo.run(Some(&server), &["--all"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&out, "created"), 5);
    assert_eq!(count(&out, "minted"), 5);
    assert_eq!(count(&out, "failed"), 0);
    assert_eq!(live_library_tokens(&server), 5);

    let out = demo.run(Some(&server), &["--all"]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(count(&out, "minted"), 0);
    assert_eq!(count(&out, "kept"), 5);
    assert_eq!(count(&out, "created"), 0);

    // One stored token lost: --missing mints exactly one and revokes the
    // token that was left live in Mattermost.
    demo.sql("UPDATE users SET mattermost_token = NULL, mattermost_token_id = NULL WHERE id = 2")
        .await;
    server.reset_counts();
    let out = demo.run(Some(&server), &["--missing"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&out, "minted"), 1);
    assert_eq!(count(&out, "orphans revoked"), 1);
    assert_eq!(
        server.request_count("POST /api/v4/users/{user_id}/tokens"),
        1
    );
    assert_eq!(live_library_tokens(&server), 5);

    // Tokens never reach the output.
    for t in server.live_tokens() {
        let value = server.token_value(&t.id).unwrap();
        assert!(!String::from_utf8_lossy(&out.stdout).contains(value.expose_secret()));
        assert!(!String::from_utf8_lossy(&out.stderr).contains(value.expose_secret()));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlx_and_diesel_stores_give_the_same_result() {
    let mut results = Vec::new();
    for store in ["sqlx", "diesel"] {
        let server = StandIn::start().await.unwrap();
        let demo = Demo::new(store);
        let first = demo.run(Some(&server), &["--all", "--store", store]);
        assert_eq!(
            first.status.code(),
            Some(0),
            "{store}: {}",
            String::from_utf8_lossy(&first.stderr)
        );
        let again = demo.run(Some(&server), &["--all", "--store", store]);
        let summary = |o: &Output| {
            [
                "created",
                "updated",
                "unchanged",
                "minted",
                "kept",
                "failed",
            ]
            .map(|l| count(o, l))
        };
        results.push((
            summary(&first),
            summary(&again),
            live_library_tokens(&server),
        ));
    }
    assert_eq!(results[0], results[1], "sqlx vs diesel");
    assert_eq!(results[0].0, [5, 0, 0, 5, 0, 0]);
    assert_eq!(results[0].1, [0, 0, 5, 0, 5, 0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_user_exits_1_with_the_reason() {
    let server = StandIn::start().await.unwrap();
    let demo = Demo::new("exit1");
    // Create and seed the table, then add a user Mattermost cannot take.
    let out = demo.run(Some(&server), &["--all", "--dry-run"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    demo.sql("INSERT INTO users (name, email, password) VALUES ('Broken', 'not-an-email', 'x')")
        .await;
    let out = demo.run(Some(&server), &["--all"]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(count(&out, "failed"), 1);
    assert_eq!(count(&out, "minted"), 5);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("user 6: host user 6 cannot be synced"),
        "{stdout}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_and_server_errors_exit_2_with_advice() {
    let demo = Demo::new("exit2");
    // Unreachable server.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = Command::new(env!("CARGO_BIN_EXE_sync_users"))
        .args(["--all"])
        .current_dir(&demo.dir)
        .env("DATABASE_URL", &demo.db_url)
        .env("MATTERMOST_URL", format!("http://127.0.0.1:{port}"))
        .env("MATTERMOST_TOKEN", "whatever")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("check MATTERMOST_URL"));

    // A refused admin token.
    let server = StandIn::start().await.unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sync_users"))
        .args(["--all"])
        .current_dir(&demo.dir)
        .env("DATABASE_URL", &demo.db_url)
        .env("MATTERMOST_URL", server.url())
        .env("MATTERMOST_TOKEN", "not-the-admin-token")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("MATTERMOST_TOKEN was refused"), "{stderr}");
    assert!(
        !stderr.contains("not-the-admin-token"),
        "the token was printed"
    );

    // Tokens disabled on the server.
    server.set_tokens_enabled(false);
    let out = demo.run(Some(&server), &["--all"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("Integration Management"));
    assert_eq!(server.request_count("POST /api/v4/users"), 0);

    // A bad database URL.
    let out = Command::new(env!("CARGO_BIN_EXE_sync_users"))
        .args(["--all"])
        .current_dir(&demo.dir)
        .env("DATABASE_URL", "oracle://nope")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("DATABASE_URL"));

    // Missing mode flag: clap's usage error.
    let out = demo.run(Some(&server), &[]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn help_explains_every_option() {
    let out = Command::new(env!("CARGO_BIN_EXE_sync_users"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&out.stdout);
    for flag in [
        "--all",
        "--missing",
        "--user",
        "--concurrency",
        "--store",
        "--dry-run",
        "MATTERMOST_URL",
        "DATABASE_URL",
        "MATTERMOST_TOKENS_KEY",
        "Exit codes",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_mattermost_url_it_starts_the_stand_in_and_keeps_its_state() {
    let demo = Demo::new("standin");
    let out = demo.run(None, &["--all"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("MATTERMOST_URL is not set").count(),
        1,
        "{stderr}"
    );
    assert_eq!(count(&out, "minted"), 5);
    let again = demo.run(None, &["--all"]);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(
        (
            count(&again, "created"),
            count(&again, "minted"),
            count(&again, "kept")
        ),
        (0, 0, 5)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_lost_by_the_stand_in_then_a_clean_rerun_links_and_mints_each_user_once() {
    let demo = Demo::new("lost-answers");
    // Every write is done and its answer lost: the accounts exist, nothing
    // is stored.
    let lost = [("STAND_IN_LOST_ANSWERS", "1"), ("STAND_IN_FAULT_SEED", "7")];
    let out = demo.run_with(None, &["--all"], &lost);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(count(&out, "failed"), 5);
    let out = demo.run(None, &["--all"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Found by the app's mark, not created again; one mint each.
    assert_eq!(
        (
            count(&out, "created"),
            count(&out, "minted"),
            count(&out, "failed")
        ),
        (0, 5, 0)
    );
    let server = StandIn::builder()
        .state_file(demo.dir.join("mattermost-tokens-demo.stand-in.json"))
        .start()
        .await
        .unwrap();
    assert_eq!(server.users().len(), 6);
    assert_eq!(live_library_tokens(&server), 5);

    let out = demo.run_with(None, &["--all"], &[("STAND_IN_LOST_ANSWERS", "2")]);
    assert_ne!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stderr).contains("STAND_IN_LOST_ANSWERS"));
}
