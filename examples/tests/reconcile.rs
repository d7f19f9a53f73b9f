//! `sync_users --reconcile` end to end: a dry run changes nothing, a run
//! repairs what an admin and leavers changed, a second run finds nothing.

mod common;

use common::{Demo, count, live_library_tokens};
use mattermost_tokens_stand_in::StandIn;
use sqlx::sqlite::SqlitePoolOptions;

/// `(mattermost_user_id, mattermost_token_id)` of user `id`.
async fn row(demo: &Demo, id: i64) -> (Option<String>, Option<String>) {
    let pool = SqlitePoolOptions::new()
        .connect(&demo.db_url)
        .await
        .unwrap();
    let r =
        sqlx::query_as("SELECT mattermost_user_id, mattermost_token_id FROM users WHERE id = ?")
            .bind(id)
            .fetch_one(&pool)
            .await
            .unwrap();
    pool.close().await;
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_repairs_then_finds_nothing_and_a_dry_run_changes_nothing() {
    let server = StandIn::start().await.unwrap();
    let demo = Demo::new("reconcile");
    let out = demo.run(Some(&server), &["--all"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // An admin revokes user 1's token and deactivates user 2; user 3
    // leaves the app (soft-deleted); a crash left an orphan on user 4.
    let (_, t1) = row(&demo, 1).await;
    assert!(server.revoke_token_directly(&t1.clone().unwrap().into()));
    let (a2, _) = row(&demo, 2).await;
    assert!(server.deactivate_user(&a2.unwrap().into()));
    demo.sql("ALTER TABLE users ADD COLUMN deleted_at TIMESTAMP NULL")
        .await;
    demo.sql("UPDATE users SET deleted_at = CURRENT_TIMESTAMP WHERE id = 3")
        .await;
    let (a4, _) = row(&demo, 4).await;
    let long_ago = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3_600;
    let orphan = server
        .mint_token_directly(
            &a4.unwrap().into(),
            &format!("Minted by mattermost-tokens for demo-app user 4 at {long_ago}"),
        )
        .unwrap();
    let leavers = [("HOST_INACTIVE_COLUMN", "deleted_at")];
    let live_before = live_library_tokens(&server);

    let dry = demo.run_with(
        Some(&server),
        &["--reconcile", "--prune-leavers", "--dry-run"],
        &leavers,
    );
    let stderr = String::from_utf8_lossy(&dry.stderr);
    assert_eq!(dry.status.code(), Some(0), "{stderr}");
    assert_eq!(count(&dry, "repairs"), 4, "{stderr}");
    assert_eq!(stderr.matches("would repair: ").count(), 4, "{stderr}");
    assert_eq!(row(&demo, 1).await.1, t1, "the dry run changed the store");
    assert_eq!(live_library_tokens(&server), live_before);

    let out = demo.run_with(Some(&server), &["--reconcile", "--prune-leavers"], &leavers);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(
        ["reminted", "deactivated", "leavers", "orphans revoked"].map(|l| count(&out, l)),
        [1, 1, 1, 1],
        "{stderr}"
    );
    let (_, new1) = row(&demo, 1).await;
    assert!(new1.is_some() && new1 != t1);
    assert!(
        server.token_is_live(
            server
                .token_value(&new1.unwrap().into())
                .unwrap()
                .expose_secret()
        )
    );
    assert_eq!(row(&demo, 2).await.1, None);
    assert_eq!(row(&demo, 3).await.1, None);
    assert!(server.token(&orphan.id).is_none());
    // Users 1, 4 and 5 hold one live token each; 2 and 3 none.
    assert_eq!(live_library_tokens(&server), 3);

    let again = demo.run_with(Some(&server), &["--reconcile", "--prune-leavers"], &leavers);
    assert_eq!(again.status.code(), Some(0));
    assert_eq!(count(&again, "repairs"), 0);
}
