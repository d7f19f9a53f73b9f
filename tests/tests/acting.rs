//! Acting for users: never the admin for a user the store does not know,
//! never the admin where the user could not act themself, and an admin
//! personal access token that stops working when tokens are disabled.

use std::sync::Arc;

use mattermost_tokens::models::{ChannelType, CreateChannel};
use mattermost_tokens::*;
use mattermost_tokens_stand_in::{AdminCredential, StandIn};

async fn synced(server: &StandIn) -> (Arc<MemoryStore>, UserSync) {
    let store = Arc::new(MemoryStore::with_users([1.into(), 2.into()]));
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let sync = UserSync::new(client, store.clone(), SyncOptions::new("acting")).unwrap();
    sync.sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    (store, sync)
}

#[tokio::test]
async fn a_user_the_store_does_not_know_is_an_error_under_every_policy() {
    let server = StandIn::start().await.unwrap();
    let (store, _sync) = synced(&server).await;
    for policy in [Policy::FallbackToAdmin, Policy::Strict, Policy::AdminOnly] {
        let selector = TokenSelector::new(store.clone(), policy);
        let e = selector
            .select(Operation::UserScoped, &HostUserId::Int(999))
            .await
            .unwrap_err();
        assert!(
            matches!(e, Error::Store(StoreError::UnknownUser(_))),
            "{policy:?}: {e}"
        );
        assert_eq!(selector.fallback_count(), 0);
        // Admin operations need no user.
        let s = selector
            .select(Operation::Admin, &HostUserId::Int(999))
            .await
            .unwrap();
        assert_eq!(s.actor, Actor::Admin);
    }
}

#[tokio::test]
async fn the_admin_never_adds_a_tokenless_user_to_a_private_channel() {
    let server = StandIn::start().await.unwrap();
    let (store, sync) = synced(&server).await;
    let client = sync.client().clone();
    let admin = client.as_admin();
    let team = admin.team_by_name("demo").await.unwrap();
    let private = admin
        .create_channel(&CreateChannel {
            team_id: team.id.clone(),
            name: "secret-plans".into(),
            display_name: "Secret plans".into(),
            channel_type: ChannelType::Private,
            purpose: String::new(),
            header: String::new(),
        })
        .await
        .unwrap();
    let public = admin
        .channel_by_name(&team.id, "town-square")
        .await
        .unwrap();
    // User 1 loses their token: the fallback policy may stand in for
    // public channels only.
    let rec = store.get(&1.into()).await.unwrap().unwrap();
    let mm = rec.mattermost_user_id.clone().unwrap();
    admin.add_team_member(&team.id, &mm).await.unwrap();
    store.clear_token(&1.into()).await.unwrap();
    let selector = TokenSelector::new(store.clone(), Policy::FallbackToAdmin);
    let e = selector
        .join_channel(&client, &1.into(), &private.id)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::FallbackRefused { .. }), "{e}");
    assert!(!server.is_channel_member(&private.id, &mm));
    let (actor, _) = selector
        .join_channel(&client, &1.into(), &public.id)
        .await
        .unwrap();
    assert_eq!(actor, Actor::AdminFallback(1.into()));
    assert!(server.is_channel_member(&public.id, &mm));
    // A clone shares the count.
    assert_eq!(selector.clone().fallback_count(), selector.fallback_count());
}

#[tokio::test]
async fn with_tokens_disabled_the_admins_own_token_is_refused_and_the_error_names_the_setting() {
    let server = StandIn::start().await.unwrap();
    let (_store, sync) = synced(&server).await;
    server.set_tokens_enabled(false);
    let e = sync.check_server().await.unwrap_err();
    assert!(matches!(e, Error::Unauthorized(_)), "{e}");
    assert!(e.to_string().contains("EnableUserAccessTokens"), "{e}");
    // verify's diagnosis asks with the admin token, which is refused too.
    let e = sync.verify(&1.into(), false).await.unwrap_err();
    assert!(e.to_string().contains("EnableUserAccessTokens"), "{e}");

    // With a session-style admin (a login), the setting itself is read.
    let server = StandIn::builder()
        .admin_credential(AdminCredential::Session)
        .start()
        .await
        .unwrap();
    let (_store, sync) = synced(&server).await;
    server.set_tokens_enabled(false);
    let e = sync.check_server().await.unwrap_err();
    assert!(matches!(e, Error::TokensDisabled(_)), "{e}");
    assert_eq!(
        sync.verify(&1.into(), false).await.unwrap(),
        Verification::TokensDisabled
    );
}

#[tokio::test]
async fn a_proxys_404_on_revoke_changes_nothing_in_the_store() {
    use mattermost_tokens_stand_in::{Fault, FaultRule};
    let server = StandIn::start().await.unwrap();
    let (store, sync) = synced(&server).await;
    let before = store.get(&1.into()).await.unwrap().unwrap();
    server.add_fault(FaultRule::always(
        "POST /api/v4/users/tokens/revoke",
        Fault::ProxyHtml(404),
    ));
    let e = sync.revoke(&1.into()).await.unwrap_err();
    assert!(matches!(e, Error::BadResponse { status: 404, .. }), "{e}");
    let after = store.get(&1.into()).await.unwrap().unwrap();
    assert_eq!(
        after.token_id, before.token_id,
        "the store forgot a live token"
    );
    assert!(server.token_is_live(after.token.unwrap().expose_secret()));
}
