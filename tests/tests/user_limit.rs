//! A Mattermost server at its limit of active users: the limits endpoint,
//! creates and reactivations refused with the server's ids, one run-level
//! outcome, and servers that predate the endpoint.

use std::sync::Arc;

use futures::stream;
use mattermost_tokens::*;
use mattermost_tokens_stand_in::{Fault, FaultRule, NewUser, StandIn};

const CREATE: &str = "POST /api/v4/users";
const LIMITS: &str = "GET /api/v4/limits/server";
const ACTIVE: &str = "PUT /api/v4/users/{user_id}/active";

fn users(n: i64) -> Vec<HostUser> {
    (1..=n)
        .map(|i| HostUser::new(i, format!("user{i}@example.com"), "Some One"))
        .collect()
}

fn sync_with(server: &StandIn, n: i64, options: SyncOptions) -> (Arc<MemoryStore>, UserSync) {
    let store = Arc::new(MemoryStore::with_users((1..=n).map(HostUserId::Int)));
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    (
        store.clone(),
        UserSync::new(client, store, options).unwrap(),
    )
}

#[tokio::test]
async fn the_client_reads_the_limits_and_unknown_is_not_an_error() {
    let server = StandIn::builder().user_limit(250).start().await.unwrap();
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let l = client.as_admin().server_limits().await.unwrap().unwrap();
    assert_eq!(
        (l.limit(), l.active_user_count, l.room()),
        (Some(250), 1, Some(249))
    );
    assert_eq!(l.to_string(), "active 1 of 250");
    // Bots do not count.
    server
        .create_user_directly(NewUser::new("helper-bot", "bot@example.com").bot())
        .unwrap();
    let l = client.as_admin().server_limits().await.unwrap().unwrap();
    assert_eq!(l.active_user_count, 1);
    for status in [403, 404] {
        server.add_fault(FaultRule::always(LIMITS, Fault::Status(status)));
        assert_eq!(
            client.as_admin().server_limits().await.unwrap(),
            None,
            "{status}"
        );
        server.clear_faults();
    }
    // No limit: zeros.
    server.set_user_limit(None);
    let l = client.as_admin().server_limits().await.unwrap().unwrap();
    assert_eq!((l.limit(), l.room()), (None, None));
}

#[tokio::test]
async fn a_full_server_is_one_outcome_and_users_already_there_are_still_linked() {
    let server = StandIn::builder().user_limit(6).start().await.unwrap();
    // User 9 already has an account: linked and minted even when full.
    server
        .create_user_directly(NewUser::new("nine", "user9@example.com"))
        .unwrap();
    let (_store, sync) = sync_with(&server, 10, SyncOptions::new("limits").concurrency(1));
    let verified: Vec<HostUser> = users(10)
        .into_iter()
        .map(|u| u.email_verified(true))
        .collect();
    let r = sync.sync_all(stream::iter(verified), |_| {}).await.unwrap();
    // Room for 4 (the admin and user 9 are active); users 1-4 created.
    assert_eq!(
        (r.summary.created, r.summary.minted),
        (4, 5),
        "{:?}",
        r.summary
    );
    assert_eq!(
        (r.summary.left_out, r.summary.failed),
        (5, 0),
        "{:?}",
        r.summary
    );
    assert!(r.failures.is_empty());
    let hit = r.user_limit.unwrap();
    assert_eq!((hit.active, hit.limit, hit.left_out), (Some(6), Some(6), 5));
    assert_eq!(
        hit.to_string(),
        "not created: server user limit (active 6 of 6), 5 users left out"
    );
    assert_eq!(
        server.request_count(CREATE),
        4,
        "a create it knew would be refused was sent"
    );
    assert_eq!(server.request_count(LIMITS), 1);

    // One user at a time: the typed error.
    let (_, single) = sync_with(&server, 20, SyncOptions::new("limits"));
    let e = single
        .sync_user(&HostUser::new(20, "user20@example.com", "Twenty"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UserLimitReached { .. }), "{e}");
    assert!(e.to_string().contains("limit of active users"), "{e}");
}

#[tokio::test]
async fn a_server_without_the_limits_endpoint_syncs_as_before() {
    let server = StandIn::start().await.unwrap();
    server.add_fault(FaultRule::always(LIMITS, Fault::ProxyHtml(404)));
    let (_store, sync) = sync_with(&server, 10, SyncOptions::new("limits"));
    let r = sync
        .sync_all(stream::iter(users(10)), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (r.summary.created, r.summary.minted, r.summary.failed),
        (10, 10, 0)
    );
    assert_eq!(r.server_limits, None);
    assert_eq!(r.user_limit, None);
    // Two per user, the server check, and the one limits read.
    assert_eq!(server.total_requests(), 2 * 10 + 3 + 1);
}

#[tokio::test]
async fn reactivation_at_the_limit_is_one_typed_outcome_without_retries() {
    let server = StandIn::start().await.unwrap();
    let options = SyncOptions::new("limits").deactivated(DeactivatedPolicy::Reactivate);
    let (store, sync) = sync_with(&server, 5, options.clone().concurrency(1));
    sync.sync_all(stream::iter(users(5)), |_| {}).await.unwrap();
    for i in 1..=3 {
        let rec = store.get(&i.into()).await.unwrap().unwrap();
        assert!(server.deactivate_user(&rec.mattermost_user_id.unwrap()));
    }
    // Now full: 1 admin + 2 active users.
    server.set_user_limit(Some(3));
    server.reset_counts();
    let r = sync.sync_all(stream::iter(users(5)), |_| {}).await.unwrap();
    assert_eq!(
        (r.summary.left_out, r.summary.failed),
        (3, 0),
        "{:?}",
        r.failures
    );
    // The limits read up front showed no room: no reactivation was even
    // tried (at most one, had the server filled up during the run).
    assert!(server.request_count(ACTIVE) <= 1, "reactivation retried");
    assert_eq!(r.user_limit.unwrap().left_out, 3);
    // A server that does not report its limits: the first refusal stops
    // the rest.
    server.add_fault(FaultRule::always(LIMITS, Fault::ProxyHtml(404)));
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let fresh = UserSync::new(client, store.clone(), options.clone().concurrency(1)).unwrap();
    server.reset_counts();
    let r = fresh
        .sync_all(stream::iter(users(5)), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (r.summary.left_out, r.summary.failed),
        (3, 0),
        "{:?}",
        r.failures
    );
    assert_eq!(server.request_count(ACTIVE), 1, "reactivation retried");
    server.clear_faults();
    let e = MattermostClient::new(server.url(), server.admin_token())
        .unwrap()
        .as_admin()
        .set_active(
            &store
                .get(&1.into())
                .await
                .unwrap()
                .unwrap()
                .mattermost_user_id
                .unwrap(),
            true,
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UserLimitReached { .. }), "{e}");
    assert_eq!(
        e.api_error().unwrap().id,
        "app.user.update_active.user_limit.exceeded"
    );
}

#[tokio::test]
async fn a_dry_run_says_how_many_creates_fit_and_how_many_mints_it_would_cause() {
    let server = StandIn::builder().user_limit(4).start().await.unwrap();
    let (_store, sync) = sync_with(&server, 10, SyncOptions::new("limits").dry_run(true));
    let r = sync
        .sync_all(stream::iter(users(10)), |_| {})
        .await
        .unwrap();
    assert_eq!((r.summary.created, r.summary.minted), (10, 10));
    assert_eq!(r.server_limits.unwrap().room(), Some(3));
    assert_eq!(r.creates_that_fit(), Some(3));
    assert_eq!(server.request_count(CREATE), 0);
}
