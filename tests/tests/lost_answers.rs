//! Lost answers: writes that succeeded on the server whose answer never
//! arrived (a proxy's 504 page after Mattermost did the work). Host emails
//! are unverified throughout, so an account is linked only because the sync
//! recognises its own mark on it.
//!
//! The client repeats what is safe to repeat (revokes and patches, whose
//! second attempt finds the work done) and never repeats a create or a mint;
//! those fail the user, and the next sync finds the account by its mark and
//! revokes the token nobody stored.

use std::sync::Arc;

use futures::stream;
use mattermost_tokens::*;
use mattermost_tokens_sqlx::{PgTokenStore, SqliteTokenStore};
use mattermost_tokens_stand_in::{Fault, FaultRule, StandIn};
use mattermost_tokens_tests::db::{POSTGRES_ENV, url_or_skip};
use mattermost_tokens_tests::laravel::{JournalMode, TempDir, sqlite_file};
use mattermost_tokens_tests::pg_temp::TempDatabase;
use mattermost_tokens_tests::promise::{assert_one_account_per_user, assert_promise};

const CREATE: &str = "POST /api/v4/users";
const MINT: &str = "POST /api/v4/users/{user_id}/tokens";
const REVOKE: &str = "POST /api/v4/users/tokens/revoke";
const PATCH: &str = "PUT /api/v4/users/{user_id}/patch";
const WRITES: [&str; 4] = [CREATE, MINT, REVOKE, PATCH];

/// The `n`-th request to `endpoint` is done by the server and its answer
/// replaced by a proxy's 504 page.
fn lost(endpoint: &str, n: u64) -> FaultRule {
    FaultRule::nth(endpoint, n, Fault::ProxyHtml(504)).after_handler()
}

fn user(i: i64) -> HostUser {
    HostUser::new(
        i,
        format!("user{i}@example.com"),
        &format!("User Number{i}"),
    )
    .email_verified(false)
}

fn users(n: i64) -> Vec<HostUser> {
    (1..=n).map(user).collect()
}

fn ids(n: i64) -> Vec<HostUserId> {
    (1..=n).map(HostUserId::Int).collect()
}

fn fast_retry() -> RetryPolicy {
    RetryPolicy {
        base_delay: std::time::Duration::from_millis(5),
        max_delay: std::time::Duration::from_millis(20),
        ..RetryPolicy::default()
    }
}

fn sync_over(server: &StandIn, store: Arc<dyn TokenStore>) -> UserSync {
    let client = MattermostClient::builder(server.url(), server.admin_token())
        .retry_policy(fast_retry())
        .build()
        .unwrap();
    UserSync::new(client, store, SyncOptions::new("lost")).unwrap()
}

fn memory(n: i64) -> Arc<MemoryStore> {
    Arc::new(MemoryStore::with_users(ids(n)))
}

#[tokio::test]
async fn a_lost_create_answer_leaves_an_account_the_next_sync_links_by_its_mark() {
    let server = StandIn::start().await.unwrap();
    let store = memory(1);
    let sync = sync_over(&server, store.clone());
    server.add_fault(lost(CREATE, 1));
    let e = sync.sync_user(&user(1)).await.unwrap_err();
    assert_eq!(e.status(), Some(504), "{e}");
    // The account exists; the store write that follows the create did not
    // happen.
    let account = server.user_by_email("user1@example.com").unwrap();
    let rec = store.get(&1.into()).await.unwrap().unwrap();
    assert_eq!((rec.mattermost_user_id, rec.token.is_some()), (None, false));

    let o = sync.sync_user(&user(1)).await.unwrap();
    assert_eq!(o.mattermost_user_id.as_ref(), Some(&account.id));
    assert_eq!(o.token, TokenOutcome::Minted);
    assert_one_account_per_user(&server, store.as_ref(), 1).await;
    assert_promise(&server, store.as_ref(), &ids(1)).await;
}

#[tokio::test]
async fn a_lost_mint_answer_leaves_a_token_the_next_sync_revokes() {
    let server = StandIn::start().await.unwrap();
    let store = memory(1);
    let sync = sync_over(&server, store.clone());
    server.add_fault(lost(MINT, 1));
    let e = sync.sync_user(&user(1)).await.unwrap_err();
    assert_eq!(e.status(), Some(504), "{e}");
    // Linked before the mint; the token exists on the server, unstored.
    let rec = store.get(&1.into()).await.unwrap().unwrap();
    let account = rec.mattermost_user_id.clone().unwrap();
    assert!(rec.token.is_none());
    let unstored: Vec<_> = server
        .tokens_of(&account)
        .into_iter()
        .filter(|t| t.is_active)
        .collect();
    assert_eq!(unstored.len(), 1);

    let o = sync.sync_user(&user(1)).await.unwrap();
    assert_eq!((o.token, o.orphans_revoked), (TokenOutcome::Minted, 1));
    assert!(
        server.token(&unstored[0].id).is_none(),
        "the unstored token is live"
    );
    assert_promise(&server, store.as_ref(), &ids(1)).await;
}

#[tokio::test]
async fn a_lost_revoke_answer_is_repeated_and_finds_the_work_done() {
    let server = StandIn::start().await.unwrap();
    let store = memory(1);
    let sync = sync_over(&server, store.clone());
    sync.sync_user(&user(1)).await.unwrap();
    let old = store
        .get(&1.into())
        .await
        .unwrap()
        .unwrap()
        .token_id
        .unwrap();
    server.add_fault(lost(REVOKE, 1));
    let o = sync.rotate(&1.into()).await.unwrap();
    assert_eq!(o.token, TokenOutcome::Replaced);
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    assert_eq!(server.faults_injected(), 1);
    assert!(server.token(&old).is_none());
    let new = store
        .get(&1.into())
        .await
        .unwrap()
        .unwrap()
        .token_id
        .unwrap();
    assert_ne!(new, old);
    assert_promise(&server, store.as_ref(), &ids(1)).await;

    // Every attempt's answer lost: the revoke did happen, the outcome says
    // it could not be confirmed, and the next run settles it.
    server.add_fault(lost(REVOKE, 1).times(8));
    let o = sync.rotate(&1.into()).await.unwrap();
    assert!(
        matches!(&o.warnings[..], [SyncWarning::OldTokenNotRevoked { token_id, .. }] if *token_id == new),
        "{:?}",
        o.warnings
    );
    server.clear_faults();
    sync.sync_all(stream::iter([user(1)]), |_| {})
        .await
        .unwrap();
    assert_promise(&server, store.as_ref(), &ids(1)).await;
}

#[tokio::test]
async fn a_lost_patch_answer_never_blocks_the_token() {
    let server = StandIn::start().await.unwrap();
    let store = memory(1);
    let sync = sync_over(&server, store.clone());
    sync.sync_user(&user(1)).await.unwrap();
    sync.revoke(&1.into()).await.unwrap();
    let renamed = |last: &str| {
        HostUser::new(1, "user1@example.com", &format!("User {last}")).email_verified(false)
    };
    // Once: the repeat finds the patch applied.
    server.add_fault(lost(PATCH, 1));
    let o = sync.sync_user(&renamed("Renamed")).await.unwrap();
    assert_eq!(
        (o.account, o.token),
        (AccountOutcome::Updated, TokenOutcome::Minted)
    );
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    let account = o.mattermost_user_id.unwrap();
    assert_eq!(server.user(&account).unwrap().last_name, "Renamed");

    // Always: a warning, the patch applied all the same, the token handled.
    sync.revoke(&1.into()).await.unwrap();
    server.add_fault(lost(PATCH, 1).times(8));
    let o = sync.sync_user(&renamed("Again")).await.unwrap();
    assert_eq!(o.token, TokenOutcome::Minted);
    assert!(
        matches!(
            &o.warnings[..],
            [SyncWarning::PatchRefused { status: 504, .. }]
        ),
        "{:?}",
        o.warnings
    );
    assert_eq!(server.user(&account).unwrap().last_name, "Again");
    server.clear_faults();
    assert_promise(&server, store.as_ref(), &ids(1)).await;
}

/// 10% of every write loses its answer; host emails unverified. A first
/// sync, then one clean re-run: every user holds exactly one live token
/// equal to the stored one, no duplicate accounts, no orphans.
async fn ten_percent_of_writes_lose_their_answer(name: &str, store: Arc<dyn TokenStore>, n: i64) {
    let server = StandIn::start().await.unwrap();
    let sync = sync_over(&server, store.clone());
    for (i, endpoint) in WRITES.iter().enumerate() {
        server.add_fault(
            FaultRule::random(0.10, 0x1057 + i as u64, Fault::ProxyHtml(504))
                .on(*endpoint)
                .after_handler(),
        );
    }
    let r = sync.sync_all(stream::iter(users(n)), |_| {}).await.unwrap();
    let injected = server.faults_injected();
    println!("{name}: first run {:?}, {injected} answers lost", r.summary);
    assert!(injected >= 10, "{name}: too few answers lost: {injected}");
    assert!(r.summary.failed > 0, "{name}: {:?}", r.summary);

    server.clear_faults();
    let r = sync.sync_all(stream::iter(users(n)), |_| {}).await.unwrap();
    println!("{name}: clean re-run {:?}", r.summary);
    assert_eq!(r.summary.failed, 0, "{name}: {:?}", r.failures);
    assert_promise(&server, store.as_ref(), &ids(n)).await;
    assert_one_account_per_user(&server, store.as_ref(), n).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_then_a_clean_rerun_on_sqlite() {
    let dir = TempDir::new("lost-answers");
    let pool = sqlite_file(&dir.join("app.sqlite"), JournalMode::Delete, 200).await;
    let store = SqliteTokenStore::new(pool);
    store.migrate().await.unwrap();
    ten_percent_of_writes_lose_their_answer("sqlite", Arc::new(store), 200).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_answers_then_a_clean_rerun_on_postgres() {
    let Some(url) = url_or_skip(POSTGRES_ENV, "lost_answers::on_postgres") else {
        return;
    };
    let db = TempDatabase::create(&url, "mmt_lost").await;
    db.create_laravel_users(200).await;
    let store = PgTokenStore::new(db.pool(4).await);
    store.migrate().await.unwrap();
    ten_percent_of_writes_lose_their_answer("postgres", Arc::new(store), 200).await;
}
