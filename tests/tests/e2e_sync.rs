//! End-to-end: the real client and UserSync against the stand-in server.

use std::sync::Arc;

use futures::stream;
use mattermost_tokens::*;
use mattermost_tokens_stand_in::{NewUser, StandIn};
use mattermost_tokens_tests::promise::assert_promise;

fn users(n: i64) -> Vec<HostUser> {
    (1..=n)
        .map(|i| {
            HostUser::new(
                i,
                format!("user{i}@example.com"),
                &format!("User Number{i}"),
            )
        })
        .collect()
}

fn ids(n: i64) -> Vec<HostUserId> {
    (1..=n).map(HostUserId::Int).collect()
}

fn sync_for(server: &StandIn, store: Arc<dyn TokenStore>) -> UserSync {
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    UserSync::new(client, store, SyncOptions::new("e2e")).unwrap()
}

const CREATE: &str = "POST /api/v4/users";
const MINT: &str = "POST /api/v4/users/{user_id}/tokens";
const BULK: &str = "POST /api/v4/users/ids";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_sync_then_resync_then_missing() {
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users(ids(50)));
    let sync = sync_for(&server, store.clone());

    let r = sync
        .sync_all(stream::iter(users(50)), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (r.summary.created, r.summary.minted, r.summary.failed),
        (50, 50, 0),
        "{r:?}"
    );
    assert_eq!(server.request_count(CREATE), 50);
    assert_eq!(server.request_count(MINT), 50);
    // Fresh users: create + mint, plus the constant server check and one
    // read of the server's user limit.
    assert_eq!(server.request_count("GET /api/v4/limits/server"), 1);
    assert!(
        server.total_requests() <= 2 * 50 + 3 + 1,
        "{:?}",
        server.requests()
    );
    assert_promise(&server, store.as_ref(), &ids(50)).await;
    let u = server.user_by_email("user7@example.com").unwrap();
    assert_eq!(
        (u.first_name.as_str(), u.last_name.as_str()),
        ("User", "Number7")
    );
    assert!(u.email_verified);

    // Re-sync: nothing changes, one bulk read.
    server.reset_counts();
    let r = sync
        .sync_all(stream::iter(users(50)), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (r.summary.unchanged, r.summary.kept, r.summary.minted),
        (50, 50, 0)
    );
    assert_eq!(server.request_count(BULK), 1);
    assert_eq!(server.request_count(MINT), 0);
    assert!(server.total_requests() <= 1 + 3, "{:?}", server.requests());

    // A user changed in the app is patched.
    server.reset_counts();
    let mut changed = users(50);
    changed[4] = HostUser::new(5, "user5@example.com", "Renamed Person");
    let r = sync.sync_all(stream::iter(changed), |_| {}).await.unwrap();
    assert_eq!((r.summary.updated, r.summary.unchanged), (1, 49));
    assert_eq!(server.request_count("PUT /api/v4/users/{user_id}/patch"), 1);
    assert_eq!(
        server
            .user_by_email("user5@example.com")
            .unwrap()
            .first_name,
        "Renamed"
    );

    // One stored token lost (as if cleared): --missing mints exactly one and
    // revokes the orphan left in Mattermost.
    store.clear_token(&HostUserId::Int(3)).await.unwrap();
    server.reset_counts();
    let r = sync
        .sync_missing(stream::iter(users(50)), |_| {})
        .await
        .unwrap();
    assert_eq!((r.summary.minted, r.summary.skipped), (1, 49), "{r:?}");
    assert_eq!(server.request_count(MINT), 1);
    assert_promise(&server, store.as_ref(), &ids(50)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_already_in_mattermost_is_found_patched_and_minted() {
    let server = StandIn::start().await.unwrap();
    let mm = server
        .create_user_directly(NewUser::new("someone", "ana@example.com").names("Old", "Name"))
        .unwrap();
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    let sync = sync_for(&server, store.clone());
    let out = sync
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana López").email_verified(true))
        .await
        .unwrap();
    assert_eq!(out.mattermost_user_id, Some(mm.clone()));
    assert_eq!(
        (out.account, out.token),
        (AccountOutcome::Updated, TokenOutcome::Minted)
    );
    let u = server.user(&mm).unwrap();
    assert_eq!(
        (u.first_name.as_str(), u.username.as_str()),
        ("Ana", "someone")
    );
    assert_promise(&server, store.as_ref(), &[1.into()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_syncs_at_once_leave_one_live_token_per_user() {
    let server = StandIn::builder()
        .latency(std::time::Duration::from_millis(2))
        .start()
        .await
        .unwrap();
    let store = Arc::new(MemoryStore::with_users(ids(30)));
    let a = sync_for(&server, store.clone());
    let b = sync_for(&server, store.clone());
    let (ra, rb) = tokio::join!(
        a.sync_all(stream::iter(users(30)), |_| {}),
        b.sync_all(stream::iter(users(30)), |_| {})
    );
    let (ra, rb) = (ra.unwrap(), rb.unwrap());
    assert_eq!(ra.summary.failed + rb.summary.failed, 0, "{ra:?} {rb:?}");
    assert_eq!(ra.summary.minted + rb.summary.minted, 30, "{ra:?} {rb:?}");
    // Each user minted at most twice, the loser's token revoked.
    assert!(server.request_count(MINT) <= 60);
    assert_promise(&server, store.as_ref(), &ids(30)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_orphans_are_revoked_on_the_next_sync() {
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users(ids(3)));
    let sync = sync_for(&server, store.clone());
    sync.sync_all(stream::iter(users(3)), |_| {}).await.unwrap();
    // A crash between mint and store: a library token nobody stored.
    let rec = store.get(&2.into()).await.unwrap().unwrap();
    let mm = rec.mattermost_user_id.clone().unwrap();
    let orphan = server
        .mint_token_directly(&mm, &format!("{DESCRIPTION_PREFIX}e2e user 2 at 1000"))
        .unwrap();
    store.clear_token(&2.into()).await.unwrap();
    server.revoke_token_directly(rec.token_id.as_ref().unwrap());
    let out = sync
        .sync_user(&HostUser::new(2, "user2@example.com", "User Number2"))
        .await
        .unwrap();
    assert_eq!(out.token, TokenOutcome::Minted);
    assert_eq!(out.orphans_revoked, 1);
    assert!(server.token(&orphan.id).is_none());
    assert_promise(&server, store.as_ref(), &ids(3)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_disabled_fails_fast_and_verify_explains() {
    // A session-style admin (a login) keeps working with tokens disabled, so
    // the setting itself is read; an admin personal access token is refused
    // instead (see acting.rs).
    let server = StandIn::builder()
        .admin_credential(mattermost_tokens_stand_in::AdminCredential::Session)
        .start()
        .await
        .unwrap();
    let store = Arc::new(MemoryStore::with_users(ids(2)));
    let sync = sync_for(&server, store.clone());
    sync.sync_all(stream::iter(users(2)), |_| {}).await.unwrap();
    assert_eq!(
        sync.verify(&1.into(), false).await.unwrap(),
        Verification::Valid
    );

    server.set_tokens_enabled(false);
    server.reset_counts();
    let e = sync
        .sync_all(stream::iter(users(2)), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TokensDisabled(_)), "{e}");
    assert_eq!(server.request_count(CREATE) + server.request_count(MINT), 0);
    assert_eq!(
        sync.verify(&1.into(), false).await.unwrap(),
        Verification::TokensDisabled
    );

    server.set_tokens_enabled(true);
    let rec = store.get(&1.into()).await.unwrap().unwrap();
    server.deactivate_user(rec.mattermost_user_id.as_ref().unwrap());
    assert_eq!(
        sync.verify(&1.into(), true).await.unwrap(),
        Verification::UserDeactivated
    );

    let rec2 = store.get(&2.into()).await.unwrap().unwrap();
    server.revoke_token_directly(rec2.token_id.as_ref().unwrap());
    assert_eq!(
        sync.verify(&2.into(), true).await.unwrap(),
        Verification::Reminted
    );
    assert_eq!(
        sync.verify(&2.into(), false).await.unwrap(),
        Verification::Valid
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rotate_and_revoke_against_the_server() {
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users(ids(1)));
    let sync = sync_for(&server, store.clone());
    sync.sync_all(stream::iter(users(1)), |_| {}).await.unwrap();
    let old = store.get(&1.into()).await.unwrap().unwrap().token.unwrap();
    assert_eq!(
        sync.rotate(&1.into()).await.unwrap().token,
        TokenOutcome::Replaced
    );
    assert!(!server.token_is_live(old.expose_secret()));
    assert_promise(&server, store.as_ref(), &ids(1)).await;
    let new = store.get(&1.into()).await.unwrap().unwrap().token.unwrap();
    sync.revoke(&1.into()).await.unwrap();
    assert!(!server.token_is_live(new.expose_secret()));
    assert!(store.get(&1.into()).await.unwrap().unwrap().token.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_channel_is_attributed_to_the_user() {
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users(ids(2)));
    let sync = sync_for(&server, store.clone());
    sync.sync_all(stream::iter(users(1)), |_| {}).await.unwrap();
    let client = sync.client().clone();
    let team = client.as_admin().team_by_name("demo").await.unwrap();
    let channel = client
        .as_admin()
        .channel_by_name(&team.id, "town-square")
        .await
        .unwrap();
    let mm = store
        .get(&1.into())
        .await
        .unwrap()
        .unwrap()
        .mattermost_user_id
        .unwrap();
    client
        .as_admin()
        .add_team_member(&team.id, &mm)
        .await
        .unwrap();
    let strict = TokenSelector::new(store.clone(), Policy::Strict);
    let (actor, member) = strict
        .join_channel(&client, &1.into(), &channel.id)
        .await
        .unwrap();
    assert_eq!(actor, Actor::User(1.into()));
    assert_eq!(member.user_id, mm);
    assert!(server.is_channel_member(&channel.id, &mm));
    // User 2 was never synced: strict refuses before any request.
    assert!(matches!(
        strict.join_channel(&client, &2.into(), &channel.id).await,
        Err(Error::NotSynced { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_users_with_one_email_do_not_share_an_account() {
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users(ids(3)));
    let sync = sync_for(&server, store.clone());
    let batch = vec![
        HostUser::new(1, "same@example.com", "First Owner"),
        HostUser::new(3, "other@example.com", "Someone Else"),
    ];
    let r = sync.sync_all(stream::iter(batch), |_| {}).await.unwrap();
    assert_eq!(r.summary.failed, 0);
    let r = sync
        .sync_all(
            stream::iter(vec![
                HostUser::new(2, "Same@Example.com", "Second Owner").email_verified(true),
            ]),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(r.summary.failed, 1);
    let reason = r.failures[0].error.to_string();
    assert!(reason.contains("already linked to host user 1"), "{reason}");
    let second = store.get(&2.into()).await.unwrap().unwrap();
    assert!(second.token.is_none() && second.mattermost_user_id.is_none());
    // Refused before anything of the first owner's account changed.
    assert_eq!(
        server.user_by_email("same@example.com").unwrap().first_name,
        "First"
    );
    assert_promise(&server, store.as_ref(), &[1.into(), 3.into()]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_already_in_mattermost_cost_lookup_patch_orphan_check_and_mint() {
    let server = StandIn::start().await.unwrap();
    const N: i64 = 30;
    for i in 1..=N {
        server
            .create_user_directly(
                NewUser::new(format!("old{i}"), format!("user{i}@example.com"))
                    .names("Old", "Name"),
            )
            .unwrap();
    }
    let store = Arc::new(MemoryStore::with_users(ids(N)));
    let sync = sync_for(&server, store.clone());
    server.reset_counts();
    let verified = users(N).into_iter().map(|u| u.email_verified(true));
    let r = sync.sync_all(stream::iter(verified), |_| {}).await.unwrap();
    assert_eq!(
        (r.summary.updated, r.summary.minted, r.summary.failed),
        (N as u64, N as u64, 0)
    );
    // lookup + patch + orphan check + mint per user; the first users also
    // try a create before the sync learns they exist (and read the user
    // limit once); 3 for the server check.
    let per_user = 4 * N as u64;
    let total = server.total_requests();
    assert!(
        total <= per_user + 3 + 8 + 1,
        "{total} requests: {:?}",
        server.requests()
    );
    assert!(server.request_count(CREATE) <= 8, "{:?}", server.requests());
    assert_promise(&server, store.as_ref(), &ids(N)).await;
}

/// A run with many failures keeps the first `max_failures_kept` of them
/// with their errors and counts the rest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failure_reports_stay_bounded() {
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users(ids(12)));
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let sync = UserSync::new(client, store, {
        let mut o = SyncOptions::new("e2e");
        o.max_failures_kept = 4;
        o.concurrency = 1;
        o
    })
    .unwrap();
    // Ten users without a usable email fail before any request.
    let users: Vec<HostUser> = (1..=12)
        .map(|i| {
            let email = if i <= 2 {
                format!("ok{i}@example.com")
            } else {
                String::new()
            };
            HostUser::new(i, email, "No Email")
        })
        .collect();
    let r = sync.sync_all(stream::iter(users), |_| {}).await.unwrap();
    assert_eq!((r.summary.failed, r.summary.minted), (10, 2));
    assert_eq!(r.failures.len(), 4);
    assert_eq!(r.failures_not_kept(), 6);
    assert_eq!(
        r.failures
            .iter()
            .map(|f| f.user.clone())
            .collect::<Vec<_>>(),
        (3..=6).map(HostUserId::Int).collect::<Vec<_>>()
    );
}
