//! Reconcile: after an admin revoked and disabled tokens and deactivated
//! accounts in Mattermost, tokens were minted behind the app's back and
//! users left the app, one pass makes the store and the server agree again,
//! within its request budget; a second pass finds nothing.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::stream;
use mattermost_tokens::*;
use mattermost_tokens_stand_in::StandIn;
use mattermost_tokens_tests::promise::assert_promise;

const N: i64 = 1_000;
const APP: &str = "rec";

fn users(gone: &[i64]) -> Vec<HostUser> {
    (1..=N)
        .map(|i| {
            HostUser::new(
                i,
                format!("user{i}@example.com"),
                &format!("User Number{i}"),
            )
            .active(!gone.contains(&i))
        })
        .collect()
}

fn sync_with(server: &StandIn, store: Arc<MemoryStore>, options: SyncOptions) -> UserSync {
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    UserSync::new(client, store, options).unwrap()
}

fn options() -> SyncOptions {
    SyncOptions::new(APP).leavers(LeaverPolicy::Revoke)
}

/// What both sides hold: live tokens (id -> account) and the store's rows.
async fn state(server: &StandIn, store: &MemoryStore) -> (BTreeMap<String, String>, Vec<String>) {
    let live = server
        .live_tokens()
        .into_iter()
        .map(|t| (t.id.as_str().to_owned(), t.user_id.as_str().to_owned()))
        .collect();
    let ids: Vec<HostUserId> = (1..=N).map(HostUserId::Int).collect();
    let rows = store.get_many(&ids).await.unwrap();
    let rows = ids
        .iter()
        .map(|id| {
            let r = &rows[id];
            format!("{id} {:?} {:?}", r.mattermost_user_id, r.token_id)
        })
        .collect();
    (live, rows)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_pass_repairs_what_admins_and_leavers_changed_within_its_budget() {
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users((1..=N).map(HostUserId::Int)));
    let sync = sync_with(&server, store.clone(), options());
    let r = sync
        .sync_all(stream::iter(users(&[])), |_| {})
        .await
        .unwrap();
    assert_eq!((r.summary.minted, r.summary.failed), (N as u64, 0));

    // Out of band, as an admin in the System Console would.
    let record = |i: i64| {
        let store = store.clone();
        async move { store.get(&i.into()).await.unwrap().unwrap() }
    };
    for i in 1..=50 {
        assert!(server.revoke_token_directly(&record(i).await.token_id.unwrap()));
    }
    for i in 51..=70 {
        assert!(server.set_token_active(&record(i).await.token_id.unwrap(), false));
    }
    for i in 71..=80 {
        assert!(server.deactivate_user(&record(i).await.mattermost_user_id.unwrap()));
    }
    // Library orphans minted long ago (a crash between mint and store).
    let old = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        - 3_600;
    for i in 81..=110 {
        let account = record(i).await.mattermost_user_id.unwrap();
        server
            .mint_token_directly(
                &account,
                &format!("{DESCRIPTION_PREFIX}{APP} user {i} at {old}"),
            )
            .unwrap();
    }
    // Another app's token on the same server: never touched.
    let foreign = server
        .mint_token_directly(
            &record(200).await.mattermost_user_id.unwrap(),
            &format!("{DESCRIPTION_PREFIX}other-app user 200 at {old}"),
        )
        .unwrap();
    let gone: Vec<i64> = (111..=150).collect();

    server.reset_counts();
    let tokens_on_server = server.tokens().len() as u64;
    let mut seen = Vec::new();
    let r = sync
        .reconcile(stream::iter(users(&gone)), |repair| {
            seen.push(repair.clone())
        })
        .await
        .unwrap();
    let requests = server.total_requests();
    println!(
        "reconcile of {N} users: {:?}, {requests} requests",
        r.summary
    );
    let s = r.summary;
    assert_eq!(s.failed, 0, "{:?}", r.failures);
    assert_eq!(
        (
            s.reminted,
            s.deactivated_cleared,
            s.orphans_revoked,
            s.leavers
        ),
        (70, 10, 30, 40),
        "{s:?}"
    );
    assert_eq!(s.repairs, 150);
    assert_eq!(seen.len(), 150);
    let disabled = seen
        .iter()
        .filter(|r| {
            matches!(
                r,
                Repair::Reminted {
                    why: DeadToken::Disabled,
                    ..
                }
            )
        })
        .count() as u64;
    assert_eq!(disabled, 20);
    // (tokens on the server)/200 + (host users)/200 + one per repair (two
    // for a disabled token: revoke it, mint anew) + the server check.
    let budget = tokens_on_server / 200 + 1 + (N as u64) / 200 + s.repairs + disabled + 3;
    assert!(requests <= budget, "{requests} requests, budget {budget}");

    // The promise for everyone still in the app with an active account.
    let active: Vec<HostUserId> = (1..=N)
        .filter(|i| !gone.contains(i) && !(71..=80).contains(i))
        .map(HostUserId::Int)
        .collect();
    for i in (71..=80).chain(111..=150) {
        assert!(record(i).await.token.is_none(), "user {i} kept a token");
    }
    assert!(
        server.token(&foreign.id).is_some(),
        "another app's token was revoked"
    );
    assert_promise_except_foreign(&server, &store, &active, &foreign.id).await;

    // A second pass finds nothing and costs only the listings (the foreign
    // token is gone now: the check above took it out).
    server.reset_counts();
    let r = sync
        .reconcile(stream::iter(users(&gone)), |_| {})
        .await
        .unwrap();
    let requests = server.total_requests();
    println!("second pass: {:?}, {requests} requests", r.summary);
    assert_eq!(
        (r.summary.repairs, r.summary.failed),
        (0, 0),
        "{:?}",
        r.summary
    );
    let listing_only = server.tokens().len() as u64 / 200 + 1 + (N as u64) / 200 + 3;
    assert!(requests <= listing_only, "{requests} > {listing_only}");
}

/// The promise, with one foreign token allowed to stay live.
async fn assert_promise_except_foreign(
    server: &StandIn,
    store: &MemoryStore,
    users: &[HostUserId],
    foreign: &TokenId,
) {
    assert!(server.revoke_token_directly(foreign));
    assert_promise(server, store, users).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dry_run_changes_nothing_on_either_side() {
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users((1..=N).map(HostUserId::Int)));
    let sync = sync_with(&server, store.clone(), options());
    sync.sync_all(stream::iter(users(&[])), |_| {})
        .await
        .unwrap();
    for i in 1..=5 {
        let rec = store.get(&i.into()).await.unwrap().unwrap();
        server.revoke_token_directly(&rec.token_id.unwrap());
    }
    let before = state(&server, &store).await;
    let dry = sync_with(&server, store.clone(), options().dry_run(true));
    let r = dry
        .reconcile(stream::iter(users(&[6, 7])), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (r.summary.reminted, r.summary.leavers),
        (5, 2),
        "{:?}",
        r.summary
    );
    assert_eq!(state(&server, &store).await, before);
}

#[tokio::test]
async fn reconcile_needs_manage_system_and_says_so_up_front() {
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    // A plain user's token as the "admin" credential.
    let admin_sync = sync_with(&server, store.clone(), options());
    admin_sync
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    let token = store.get(&1.into()).await.unwrap().unwrap().token.unwrap();
    let client = MattermostClient::new(server.url(), token).unwrap();
    let sync = UserSync::new(client, store, options()).unwrap();
    server.reset_counts();
    let e = sync
        .reconcile(stream::iter(Vec::<HostUser>::new()), |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("manage_system"), "{e}");
}

#[tokio::test]
async fn deactivated_accounts_are_reactivated_when_the_host_says_so_and_leavers_return() {
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users([1.into(), 2.into()]));
    let deactivating = options()
        .leavers(LeaverPolicy::RevokeAndDeactivate)
        .deactivated(DeactivatedPolicy::Reactivate);
    let sync = sync_with(&server, store.clone(), deactivating);
    let ana = HostUser::new(1, "ana@example.com", "Ana");
    let bo = HostUser::new(2, "bo@example.com", "Bo");
    sync.sync_all(stream::iter([ana.clone(), bo.clone()]), |_| {})
        .await
        .unwrap();
    let ana_account = store
        .get(&1.into())
        .await
        .unwrap()
        .unwrap()
        .mattermost_user_id
        .unwrap();
    assert!(server.deactivate_user(&ana_account));

    // Ana is active in the app: her account comes back, her token works again.
    // Bo left: token revoked, account deactivated.
    let mut seen = Vec::new();
    let r = sync
        .reconcile(stream::iter([ana.clone(), bo.clone().active(false)]), |r| {
            seen.push(r.clone())
        })
        .await
        .unwrap();
    assert_eq!(
        (r.summary.reactivated, r.summary.leavers),
        (1, 1),
        "{seen:?}"
    );
    assert!(server.user(&ana_account).unwrap().is_active());
    assert_eq!(
        sync.verify(&1.into(), false).await.unwrap(),
        Verification::Valid
    );
    let bo_account = store
        .get(&2.into())
        .await
        .unwrap()
        .unwrap()
        .mattermost_user_id
        .unwrap();
    assert!(!server.user(&bo_account).unwrap().is_active());
    assert!(store.get(&2.into()).await.unwrap().unwrap().token.is_none());
    assert!(server.tokens_of(&bo_account).is_empty());

    // Bo returns: reactivated and given a fresh token by the next sync.
    let o = sync.sync_user(&bo).await.unwrap();
    assert_eq!(
        (o.account, o.token),
        (AccountOutcome::Reactivated, TokenOutcome::Minted)
    );
    assert!(server.user(&bo_account).unwrap().is_active());
    assert_promise(&server, store.as_ref(), &[1.into(), 2.into()]).await;
}

#[tokio::test]
async fn a_server_without_the_listing_gets_one_clear_error() {
    use mattermost_tokens_stand_in::{Fault, FaultRule};
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    let sync = sync_with(&server, store, options());
    server.add_fault(FaultRule::always(
        "GET /api/v4/users/tokens",
        Fault::ProxyHtml(404),
    ));
    server.reset_counts();
    let e = sync
        .reconcile(stream::iter(users(&[]).into_iter().take(1)), |_| {})
        .await
        .unwrap_err();
    assert!(e.to_string().contains("4.7"), "{e}");
    assert_eq!(
        server.request_count("POST /api/v4/users/{user_id}/tokens"),
        0
    );
}

#[tokio::test]
async fn tokens_of_users_whose_rows_are_gone_are_revoked_and_their_accounts_deactivated_on_opt_in()
{
    let server = StandIn::start().await.unwrap();
    let full = Arc::new(MemoryStore::with_users([1.into(), 2.into()]));
    let sync = sync_with(&server, full.clone(), options());
    let two = users(&[]).into_iter().take(2).collect::<Vec<_>>();
    sync.sync_all(stream::iter(two.clone()), |_| {})
        .await
        .unwrap();
    // User 2's row is deleted from the host table.
    let remaining = Arc::new(MemoryStore::new());
    remaining.insert_record(1.into(), full.get(&1.into()).await.unwrap().unwrap());
    let gone_account = full
        .get(&2.into())
        .await
        .unwrap()
        .unwrap()
        .mattermost_user_id
        .unwrap();
    let mut o = options().leavers(LeaverPolicy::RevokeAndDeactivate);
    o.absent_are_leavers = true;
    o.orphan_grace = std::time::Duration::ZERO;
    let sync = sync_with(&server, remaining.clone(), o);
    let r = sync
        .reconcile(stream::iter(two.into_iter().take(1)), |_| {})
        .await
        .unwrap();
    assert_eq!(r.summary.orphans_revoked, 1, "{:?}", r.summary);
    assert!(server.tokens_of(&gone_account).is_empty());
    assert!(!server.user(&gone_account).unwrap().is_active());
    assert_promise(&server, remaining.as_ref(), &[1.into()]).await;
}
