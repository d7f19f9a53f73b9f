//! Learning from a 401: a user's token that Mattermost refuses and reports
//! dead is cleared from the store (so the next sync mints a new one), through
//! the selector and through magic links; a 401 with another cause clears
//! nothing; the admin stands in only when the policy allows.

use std::sync::Arc;

use futures::stream;
use mattermost_tokens::magic_link::{MagicLinkConfig, MagicLinks, MemoryCodeStore};
use mattermost_tokens::*;
use mattermost_tokens_stand_in::StandIn;
use mattermost_tokens_tests::promise::assert_promise;

struct Fixture {
    server: StandIn,
    store: Arc<MemoryStore>,
    sync: UserSync,
    channel: ChannelId,
}

async fn fixture() -> Fixture {
    let server = StandIn::start().await.unwrap();
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let sync = UserSync::new(client.clone(), store.clone(), SyncOptions::new("dead")).unwrap();
    sync.sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    let admin = client.as_admin();
    let team = admin.team_by_name("demo").await.unwrap();
    let channel = admin
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
    admin.add_team_member(&team.id, &mm).await.unwrap();
    Fixture {
        server,
        store,
        sync,
        channel: channel.id,
    }
}

async fn token_id(f: &Fixture) -> Option<TokenId> {
    f.store.get(&1.into()).await.unwrap().unwrap().token_id
}

#[tokio::test]
async fn a_revoked_token_is_forgotten_and_strict_refuses_instead_of_acting_as_admin() {
    let f = fixture().await;
    assert!(f.server.revoke_token_directly(&token_id(&f).await.unwrap()));
    let strict = TokenSelector::new(f.store.clone(), Policy::Strict);
    let e = strict
        .join_channel(f.sync.client(), &1.into(), &f.channel)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized(_)), "{e}");
    assert_eq!(strict.fallback_count(), 0);
    assert_eq!(token_id(&f).await, None, "the dead token is still stored");
    // The next --missing mints a new one, and the call works.
    let r = f
        .sync
        .sync_missing(
            stream::iter([HostUser::new(1, "ana@example.com", "Ana")]),
            |_| {},
        )
        .await
        .unwrap();
    assert_eq!(r.summary.minted, 1);
    let (actor, _) = strict
        .join_channel(f.sync.client(), &1.into(), &f.channel)
        .await
        .unwrap();
    assert_eq!(actor, Actor::User(1.into()));
    assert_promise(&f.server, f.store.as_ref(), &[1.into()]).await;
}

#[tokio::test]
async fn under_fallback_a_disabled_token_is_forgotten_and_the_admin_stands_in_once() {
    let f = fixture().await;
    assert!(
        f.server
            .set_token_active(&token_id(&f).await.unwrap(), false)
    );
    let fallback = TokenSelector::new(f.store.clone(), Policy::FallbackToAdmin);
    let (actor, _) = fallback
        .join_channel(f.sync.client(), &1.into(), &f.channel)
        .await
        .unwrap();
    assert_eq!(actor, Actor::AdminFallback(1.into()));
    assert_eq!(fallback.fallback_count(), 1);
    assert_eq!(token_id(&f).await, None);
}

#[tokio::test]
async fn a_401_with_another_cause_clears_nothing() {
    let f = fixture().await;
    let stored = token_id(&f).await.unwrap();
    let mm = f
        .store
        .get(&1.into())
        .await
        .unwrap()
        .unwrap()
        .mattermost_user_id
        .unwrap();
    // Deactivated: the token answers 401 but is not dead; reactivating the
    // account brings it back, so it must stay.
    assert!(f.server.deactivate_user(&mm));
    let fallback = TokenSelector::new(f.store.clone(), Policy::FallbackToAdmin);
    let e = fallback
        .join_channel(f.sync.client(), &1.into(), &f.channel)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized(_)), "{e}");
    assert_eq!(
        fallback.fallback_count(),
        0,
        "acted as admin for a deactivated user"
    );
    assert_eq!(token_id(&f).await, Some(stored));
}

#[tokio::test]
async fn a_magic_link_for_a_dead_token_signs_nobody_in_and_forgets_it() {
    let f = fixture().await;
    let links = |check: bool| {
        MagicLinks::new(
            f.sync.client().clone(),
            f.store.clone(),
            Arc::new(MemoryCodeStore::new()),
            MagicLinkConfig::one_time_code("http://127.0.0.1:8080/mattermost/magic-link/redeem")
                .check_token(check)
                // The case is about the token; browser binding has its own.
                .browser_binding(false),
        )
        .unwrap()
    };
    let code = |link: &MagicLink| {
        let (_, code) = link.url().split_once("code=").unwrap();
        code.to_owned()
    };
    let checked = links(true);
    // A live token: signed in, one request to check it.
    let link = checked.issue(&1.into()).await.unwrap();
    f.server.reset_counts();
    checked.redeem(&code(&link), None).await.unwrap();
    assert_eq!(f.server.total_requests(), 1);

    assert!(f.server.revoke_token_directly(&token_id(&f).await.unwrap()));
    let link = checked.issue(&1.into()).await.unwrap();
    let e = checked.redeem(&code(&link), None).await.unwrap_err();
    assert!(matches!(e, Error::NoUserToken { .. }), "{e}");
    assert_eq!(token_id(&f).await, None);
    // Without the check, nothing is asked of Mattermost at all.
    let unchecked = links(false);
    f.sync
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    let link = unchecked.issue(&1.into()).await.unwrap();
    f.server.reset_counts();
    unchecked.redeem(&code(&link), None).await.unwrap();
    assert_eq!(f.server.total_requests(), 0);
}
