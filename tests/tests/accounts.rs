//! Accounts that must never be linked, linked twice, or kept for the wrong
//! person: the link policy for existing accounts, admin and bot accounts,
//! the app identity, relinking, provider-managed fields and SSO users, all
//! against the stand-in.

use std::sync::Arc;

use futures::stream;
use mattermost_tokens::*;
use mattermost_tokens_stand_in::{Fault, FaultRule, NewUser, StandIn, TokenExpiry};
use mattermost_tokens_tests::promise::assert_promise;

const PATCH: &str = "PUT /api/v4/users/{user_id}/patch";
const REVOKE: &str = "POST /api/v4/users/tokens/revoke";
const MINT: &str = "POST /api/v4/users/{user_id}/tokens";

fn sync_with(server: &StandIn, store: Arc<MemoryStore>, options: SyncOptions) -> UserSync {
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    UserSync::new(client, store, options).unwrap()
}

fn store(ids: impl IntoIterator<Item = i64>) -> Arc<MemoryStore> {
    Arc::new(MemoryStore::with_users(
        ids.into_iter().map(HostUserId::Int),
    ))
}

fn refusal(r: Result<UserOutcome, Error>) -> LinkRefusal {
    match r {
        Err(Error::LinkRefused { reason, .. }) => reason,
        other => panic!("expected a refused link, got {other:?}"),
    }
}

/// Nothing of `user` is linked or stored, and `account` got no token.
async fn untouched(server: &StandIn, store: &MemoryStore, user: i64, account: &UserId) {
    let rec = store.get(&user.into()).await.unwrap().unwrap();
    assert_eq!(rec.mattermost_user_id, None);
    assert!(rec.token.is_none());
    assert!(server.tokens_of(account).is_empty(), "a token was minted");
}

#[tokio::test]
async fn a_sign_up_with_the_admins_email_never_gets_the_admins_token() {
    let server = StandIn::start().await.unwrap();
    let admin = server.user(&server.admin_user_id()).unwrap();
    let before = server.tokens_of(&admin.id).len();
    let store = store([1]);
    for policy in [
        LinkPolicy::VerifiedEmail,
        LinkPolicy::Always,
        LinkPolicy::Never,
    ] {
        for verified in [false, true] {
            let sync = sync_with(
                &server,
                store.clone(),
                SyncOptions::new("shop").link_policy(policy),
            );
            let user =
                HostUser::new(1, admin.email.to_uppercase(), "Mallory").email_verified(verified);
            let why = refusal(sync.sync_user(&user).await);
            // The role rule holds whatever the policy and the verification.
            assert_eq!(why, LinkRefusal::Role("system_admin".into()), "{policy:?}");
            assert!(why.to_string().contains("system_admin"));
        }
    }
    let rec = store.get(&1.into()).await.unwrap().unwrap();
    assert_eq!(rec.mattermost_user_id, None);
    assert!(rec.token.is_none());
    assert_eq!(server.tokens_of(&admin.id).len(), before);
    let admin_now = server.user(&admin.id).unwrap();
    assert_eq!(
        admin_now.first_name, admin.first_name,
        "the admin was patched"
    );
}

#[tokio::test]
async fn existing_accounts_are_linked_only_as_the_policy_says() {
    let server = StandIn::start().await.unwrap();
    let ana = server
        .create_user_directly(NewUser::new("ana", "ana@example.com").names("Ana", "López"))
        .unwrap();
    let host = |verified: Option<bool>| {
        let u = HostUser::new(1, "ana@example.com", "Ana López");
        match verified {
            Some(v) => u.email_verified(v),
            None => u,
        }
    };
    let cases = [
        (
            LinkPolicy::VerifiedEmail,
            None,
            Some(LinkRefusal::EmailNotVerified),
        ),
        (
            LinkPolicy::VerifiedEmail,
            Some(false),
            Some(LinkRefusal::EmailNotVerified),
        ),
        (
            LinkPolicy::Never,
            Some(true),
            Some(LinkRefusal::PolicyNever),
        ),
        (LinkPolicy::VerifiedEmail, Some(true), None),
        (LinkPolicy::Always, None, None),
    ];
    for (policy, verified, want) in cases {
        let store = store([1]);
        let sync = sync_with(
            &server,
            store.clone(),
            SyncOptions::new("shop").link_policy(policy),
        );
        let r = sync.sync_user(&host(verified)).await;
        match want {
            Some(why) => {
                assert_eq!(refusal(r), why, "{policy:?} {verified:?}");
                untouched(&server, &store, 1, &ana).await;
            }
            None => {
                let o = r.unwrap();
                assert_eq!(
                    (o.mattermost_user_id.as_ref(), o.token),
                    (Some(&ana), TokenOutcome::Minted)
                );
                sync.revoke(&1.into()).await.unwrap();
            }
        }
    }
    // A dry run reports the refusal too, and changes nothing.
    let store = store([1]);
    let dry = sync_with(
        &server,
        store.clone(),
        SyncOptions::new("shop").dry_run(true),
    );
    assert_eq!(
        refusal(dry.sync_user(&host(None)).await),
        LinkRefusal::EmailNotVerified
    );
}

#[tokio::test]
async fn bots_and_privileged_roles_are_linked_only_when_listed() {
    let server = StandIn::start().await.unwrap();
    let bot = server
        .create_user_directly(NewUser::new("helper-bot", "bot@example.com").bot())
        .unwrap();
    let manager = server
        .create_user_directly(
            NewUser::new("boss", "boss@example.com").roles("system_user system_manager"),
        )
        .unwrap();
    let guest = server
        .create_user_directly(NewUser::new("gus", "gus@example.com").roles("system_guest"))
        .unwrap();
    let users = [
        HostUser::new(1, "bot@example.com", "Bot"),
        HostUser::new(2, "boss@example.com", "Boss"),
        HostUser::new(3, "gus@example.com", "Gus"),
    ];
    let store = store([1, 2, 3]);
    let always = SyncOptions::new("shop").link_policy(LinkPolicy::Always);
    let sync = sync_with(&server, store.clone(), always.clone());
    assert_eq!(refusal(sync.sync_user(&users[0]).await), LinkRefusal::Bot);
    assert_eq!(
        refusal(sync.sync_user(&users[1]).await),
        LinkRefusal::Role("system_manager".into())
    );
    untouched(&server, &store, 1, &bot).await;
    untouched(&server, &store, 2, &manager).await;
    // Guests are plain users.
    let o = sync.sync_user(&users[2]).await.unwrap();
    assert_eq!(o.mattermost_user_id, Some(guest));

    // The host opts in for these two accounts by id; the policy still holds.
    let mut listed = always.clone();
    listed.link_privileged = vec![bot.clone(), manager.clone()];
    let sync = sync_with(&server, store.clone(), listed.clone());
    assert_eq!(
        sync.sync_user(&users[0]).await.unwrap().mattermost_user_id,
        Some(bot)
    );
    assert_eq!(
        sync.sync_user(&users[1]).await.unwrap().mattermost_user_id,
        Some(manager)
    );
    let mut strict = listed;
    strict.link_policy = LinkPolicy::VerifiedEmail;
    let other = store_with_one(4);
    let sync = sync_with(&server, other, strict);
    let boss_again = HostUser::new(4, "boss@example.com", "Boss");
    assert_eq!(
        refusal(sync.sync_user(&boss_again).await),
        LinkRefusal::EmailNotVerified
    );
}

fn store_with_one(id: i64) -> Arc<MemoryStore> {
    store([id])
}

#[tokio::test]
async fn the_apps_own_mark_links_whatever_the_policy_and_grants_nothing_alone() {
    let server = StandIn::start().await.unwrap();
    // An account this app created for host user 1 (its answer was lost).
    let own = server
        .create_user_directly(
            NewUser::new("ana", "ana@example.com")
                .prop(MARK_APP_PROP, "shop")
                .prop(MARK_USER_PROP, "1"),
        )
        .unwrap();
    // Marked by another app identity, or for another host user.
    server
        .create_user_directly(
            NewUser::new("bea", "bea@example.com")
                .prop(MARK_APP_PROP, "other-app")
                .prop(MARK_USER_PROP, "2"),
        )
        .unwrap();
    server
        .create_user_directly(
            NewUser::new("cyd", "cy@example.com")
                .prop(MARK_APP_PROP, "shop")
                .prop(MARK_USER_PROP, "99"),
        )
        .unwrap();
    // An admin account given a forged mark.
    server
        .create_user_directly(
            NewUser::new("root", "root@example.com")
                .roles("system_user system_admin")
                .prop(MARK_APP_PROP, "shop")
                .prop(MARK_USER_PROP, "4"),
        )
        .unwrap();
    let store = store([1, 2, 3, 4]);
    let sync = sync_with(
        &server,
        store.clone(),
        SyncOptions::new("shop").link_policy(LinkPolicy::Never),
    );
    let o = sync
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    assert_eq!(
        (o.mattermost_user_id, o.token),
        (Some(own), TokenOutcome::Minted)
    );
    for (id, email) in [(2, "bea@example.com"), (3, "cy@example.com")] {
        let r = sync.sync_user(&HostUser::new(id, email, "X")).await;
        assert_eq!(refusal(r), LinkRefusal::PolicyNever, "{email}");
    }
    let r = sync
        .sync_user(&HostUser::new(4, "root@example.com", "Root"))
        .await;
    assert_eq!(refusal(r), LinkRefusal::Role("system_admin".into()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_the_sync_creates_carry_its_mark_so_racing_syncs_link_them() {
    let server = StandIn::start().await.unwrap();
    let store = store(1..=20);
    let users: Vec<HostUser> = (1..=20)
        .map(|i| HostUser::new(i, format!("u{i}@example.com"), "Some One"))
        .collect();
    // Four syncs of the same unverified users at once: the losers of each
    // create find the winner's account by email, recognise the mark, link.
    let syncs: Vec<UserSync> = (0..4)
        .map(|_| sync_with(&server, store.clone(), SyncOptions::new("shop")))
        .collect();
    let runs = syncs
        .iter()
        .map(|sync| sync.sync_all(stream::iter(users.clone()), |_| {}));
    for r in futures::future::join_all(runs).await {
        let r = r.unwrap();
        assert_eq!(r.summary.failed, 0, "{:?}", r.failures);
    }
    assert_eq!(server.users().len(), 21);
    let u = server.user_by_email("u1@example.com").unwrap();
    assert_eq!(
        u.props.get(MARK_APP_PROP).and_then(|v| v.as_str()),
        Some("shop")
    );
    assert_eq!(
        u.props.get(MARK_USER_PROP).and_then(|v| v.as_str()),
        Some("1")
    );
    let ids: Vec<HostUserId> = (1..=20).map(HostUserId::Int).collect();
    assert_promise(&server, store.as_ref(), &ids).await;
}

#[tokio::test]
async fn the_app_identity_is_required_and_two_identities_never_touch_each_other() {
    let server = StandIn::start().await.unwrap();
    let client = MattermostClient::new(server.url(), server.admin_token()).unwrap();
    let e = UserSync::new(client, store([1]), SyncOptions::new("")).unwrap_err();
    assert!(e.to_string().contains("app identity is required"), "{e}");

    // Staging and production on one Mattermost, over the same people.
    let users: Vec<HostUser> = (1..=5)
        .map(|i| HostUser::new(i, format!("p{i}@example.com"), "Pat Doe").email_verified(true))
        .collect();
    let (staging, production) = (store(1..=5), store(1..=5));
    let s = sync_with(&server, staging.clone(), SyncOptions::new("shop-staging"));
    let p = sync_with(
        &server,
        production.clone(),
        SyncOptions::new("shop-production"),
    );
    s.sync_all(stream::iter(users.clone()), |_| {})
        .await
        .unwrap();
    let r = p
        .sync_all(stream::iter(users.clone()), |_| {})
        .await
        .unwrap();
    assert_eq!(
        (
            r.summary.minted,
            r.summary.failed,
            r.summary.orphans_revoked
        ),
        (5, 0, 0)
    );
    // Production rotates everything and sweeps orphans: staging's tokens live on.
    for i in 1..=5 {
        p.rotate(&i.into()).await.unwrap();
        assert_eq!(p.revoke_orphans(&i.into()).await.unwrap(), 0);
    }
    let ids: Vec<HostUserId> = (1..=5).map(HostUserId::Int).collect();
    for store in [&staging, &production] {
        for id in &ids {
            let token = store.get(id).await.unwrap().unwrap().token.unwrap();
            assert!(server.token_is_live(token.expose_secret()));
        }
    }
    // Each account holds exactly two live tokens: one per identity.
    for u in &users {
        let account = server.user_by_email(&u.email).unwrap();
        let live = server
            .tokens_of(&account.id)
            .iter()
            .filter(|t| t.is_active)
            .count();
        assert_eq!(live, 2, "{}", u.email);
    }
}

#[tokio::test]
async fn a_deleted_account_is_relinked_and_its_token_never_kept() {
    let server = StandIn::start().await.unwrap();
    let store = store([1]);
    let sync = sync_with(&server, store.clone(), SyncOptions::new("shop"));
    let ana = HostUser::new(1, "ana@example.com", "Ana López");
    let first = sync.sync_user(&ana).await.unwrap();
    let old_account = first.mattermost_user_id.unwrap();
    let old = store.get(&1.into()).await.unwrap().unwrap();

    assert!(server.delete_user_directly(&old_account));
    assert_eq!(
        sync.verify(&1.into(), false).await.unwrap(),
        Verification::AccountDeleted
    );

    let o = sync.sync_user(&ana).await.unwrap();
    assert_eq!(o.account, AccountOutcome::Created);
    assert_eq!(
        o.token,
        TokenOutcome::Minted,
        "a token of the deleted account was kept"
    );
    assert_eq!(o.previous_mattermost_user_id.as_ref(), Some(&old_account));
    let new_account = o.mattermost_user_id.unwrap();
    assert_ne!(new_account, old_account);
    let rec = store.get(&1.into()).await.unwrap().unwrap();
    assert_eq!(rec.mattermost_user_id.as_ref(), Some(&new_account));
    assert_ne!(rec.token_id, old.token_id);
    assert_promise(&server, store.as_ref(), &[1.into()]).await;
    assert_eq!(
        sync.verify(&1.into(), false).await.unwrap(),
        Verification::Valid
    );
}

#[tokio::test]
async fn a_recreated_account_found_by_email_replaces_the_old_link_and_revokes_its_token() {
    let server = StandIn::start().await.unwrap();
    let store = store([1]);
    let sync = sync_with(&server, store.clone(), SyncOptions::new("shop"));
    let ana = HostUser::new(1, "ana@example.com", "Ana López").email_verified(true);
    let first = sync.sync_user(&ana).await.unwrap();
    let old_account = first.mattermost_user_id.unwrap();
    let old_token = store
        .get(&1.into())
        .await
        .unwrap()
        .unwrap()
        .token_id
        .unwrap();
    // The admin deletes the account (its tokens go with it) and creates a
    // fresh one with the same email, which the app did not create.
    assert!(server.delete_user_directly(&old_account));
    assert!(server.token(&old_token).is_none());
    let recreated = server
        .create_user_directly(NewUser::new("ana-l", "ana@example.com"))
        .unwrap();
    let o = sync.sync_user(&ana).await.unwrap();
    assert_eq!(o.mattermost_user_id.as_ref(), Some(&recreated));
    assert_eq!(o.previous_mattermost_user_id, Some(old_account));
    assert_eq!(o.token, TokenOutcome::Minted);
    assert_promise(&server, store.as_ref(), &[1.into()]).await;
}

#[tokio::test]
async fn provider_managed_fields_are_not_patched_and_a_refused_patch_is_a_warning() {
    let server = StandIn::start().await.unwrap();
    let ldap = server
        .create_user_directly(
            NewUser::new("lena", "lena@corp.example")
                .names("Lena", "Directory")
                .auth("ldap", "uid=lena"),
        )
        .unwrap();
    let store = store([1, 2]);
    let sync = sync_with(&server, store.clone(), SyncOptions::new("shop"));
    // The host spells the names differently and has its own username: an
    // LDAP account's details come from the directory, so none is patched.
    let lena = HostUser::new(1, "lena@corp.example", "Lena Host-Spelling")
        .username("lena.h")
        .email_verified(true);
    let o = sync.sync_user(&lena).await.unwrap();
    assert_eq!(
        (o.mattermost_user_id.as_ref(), o.token),
        (Some(&ldap), TokenOutcome::Minted)
    );
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    assert_eq!(server.request_count(PATCH), 0);
    assert_eq!(server.user(&ldap).unwrap().last_name, "Directory");

    // The stand-in refuses such a patch as the server does.
    let http = reqwest::Client::new();
    let answer = http
        .put(format!("{}/api/v4/users/{ldap}/patch", server.url()))
        .bearer_auth(server.admin_token().expose_secret())
        .json(&serde_json::json!({"last_name": "Other"}))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 409);
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(
        body["id"],
        "api.user.patch_user.login_provider_attribute_set.app_error"
    );

    // A patch Mattermost refuses never blocks the token.
    let plain = HostUser::new(2, "max@example.com", "Max Mustermann");
    sync.sync_user(&plain).await.unwrap();
    sync.revoke(&2.into()).await.unwrap();
    server.add_fault(FaultRule::nth(PATCH, 1, Fault::Status(409)));
    let renamed = HostUser::new(2, "max@example.com", "Max Renamed");
    let o = sync.sync_user(&renamed).await.unwrap();
    assert_eq!(o.token, TokenOutcome::Minted);
    assert_eq!(o.account, AccountOutcome::Unchanged);
    assert!(
        matches!(
            &o.warnings[..],
            [SyncWarning::PatchRefused { status: 409, .. }]
        ),
        "{:?}",
        o.warnings
    );
    assert_promise(&server, store.as_ref(), &[1.into(), 2.into()]).await;
}

#[tokio::test]
async fn sso_users_bring_their_own_auth_data_or_are_refused_before_any_request() {
    let server = StandIn::start().await.unwrap();
    let store = store([1, 2]);
    let sync = sync_with(
        &server,
        store.clone(),
        SyncOptions::new("shop").auth_service("gitlab"),
    );
    server.reset_counts();
    let e = sync
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidHostUser { .. }), "{e}");
    assert!(e.to_string().contains("auth_data"), "{e}");
    assert_eq!(server.total_requests(), 0);

    let o = sync
        .sync_user(&HostUser::new(2, "bo@example.com", "Bo").auth_data("4711"))
        .await
        .unwrap();
    let account = server.user(&o.mattermost_user_id.unwrap()).unwrap();
    assert_eq!(
        (account.auth_service.as_str(), account.auth_data.as_str()),
        ("gitlab", "4711")
    );
}

#[tokio::test]
async fn a_replacement_that_cannot_revoke_the_old_token_names_it_and_a_later_run_revokes_it() {
    let server = StandIn::start().await.unwrap();
    let store = store([1]);
    let sync = sync_with(&server, store.clone(), SyncOptions::new("shop"));
    let ana = HostUser::new(1, "ana@example.com", "Ana");
    sync.sync_user(&ana).await.unwrap();
    let old = store
        .get(&1.into())
        .await
        .unwrap()
        .unwrap()
        .token_id
        .unwrap();

    server.add_fault(FaultRule::nth(REVOKE, 1, Fault::Status(500)).times(4));
    let o = sync.rotate(&1.into()).await.unwrap();
    assert_eq!(o.token, TokenOutcome::Replaced);
    match &o.warnings[..] {
        [SyncWarning::OldTokenNotRevoked { token_id, .. }] => assert_eq!(token_id, &old),
        w => panic!("{w:?}"),
    }
    assert!(
        server.token(&old).is_some(),
        "the old token should still be live"
    );
    let new = store
        .get(&1.into())
        .await
        .unwrap()
        .unwrap()
        .token_id
        .unwrap();
    assert_ne!(new, old);
    server.clear_faults();

    // The next run of this sync retries it.
    sync.sync_all(stream::iter([ana.clone()]), |_| {})
        .await
        .unwrap();
    assert!(
        server.token(&old).is_none(),
        "the old token was not revoked"
    );
    assert_promise(&server, store.as_ref(), &[1.into()]).await;

    // Another process's sweep finds such a token by its description too.
    server.add_fault(FaultRule::nth(REVOKE, 1, Fault::Status(500)).times(4));
    let o = sync.rotate(&1.into()).await.unwrap();
    server.clear_faults();
    let left = match &o.warnings[..] {
        [SyncWarning::OldTokenNotRevoked { token_id, .. }] => token_id.clone(),
        w => panic!("{w:?}"),
    };
    let elsewhere = sync_with(&server, store.clone(), SyncOptions::new("shop"));
    assert_eq!(elsewhere.revoke_orphans(&1.into()).await.unwrap(), 1);
    assert!(server.token(&left).is_none());
}

#[tokio::test]
async fn replacing_a_token_without_an_id_says_so_or_revokes_the_others_when_asked() {
    let server = StandIn::start().await.unwrap();
    let account = server
        .create_user_directly(NewUser::new("ana", "ana@example.com"))
        .unwrap();
    // Written by the PHP integration: a token, no id.
    let legacy = server.mint_token_directly(&account, "laravel").unwrap();
    let store = store([1]);
    let legacy_row = || TokenRecord {
        mattermost_user_id: Some(account.clone()),
        token: Some(legacy.token.clone()),
        token_id: None,
        token_expires_at: None,
    };
    store.insert_record(1.into(), legacy_row());
    let o = sync_with(&server, store.clone(), SyncOptions::new("shop"))
        .rotate(&1.into())
        .await
        .unwrap();
    assert_eq!(o.token, TokenOutcome::Replaced);
    assert_eq!(o.warnings, vec![SyncWarning::OldTokenIdUnknown]);
    assert!(o.warnings[0].to_string().contains("its id is unknown"));
    assert!(server.token(&legacy.id).is_some());

    // Opted in: the user's other tokens go once the new one is stored.
    store.insert_record(1.into(), legacy_row());
    let mut cleanup = SyncOptions::new("shop");
    cleanup.revoke_unknown_on_replace = true;
    let o = sync_with(&server, store.clone(), cleanup)
        .rotate(&1.into())
        .await
        .unwrap();
    assert!(o.warnings.is_empty(), "{:?}", o.warnings);
    assert!(server.token(&legacy.id).is_none());
    let live: Vec<_> = server
        .tokens_of(&account)
        .into_iter()
        .filter(|t| t.is_active)
        .collect();
    let stored = store
        .get(&1.into())
        .await
        .unwrap()
        .unwrap()
        .token_id
        .unwrap();
    assert_eq!(
        live.iter().map(|t| &t.id).collect::<Vec<_>>(),
        vec![&stored]
    );
}

#[tokio::test]
async fn an_expiry_refusal_is_remembered_for_one_run_only() {
    let server = StandIn::builder()
        .token_expiry(TokenExpiry::Required {
            max_lifetime: std::time::Duration::from_secs(86_400),
        })
        .start()
        .await
        .unwrap();
    let store = store([1, 2]);
    let sync = sync_with(&server, store.clone(), SyncOptions::new("shop"));
    let e = sync
        .sync_user(&HostUser::new(1, "a@example.com", "A"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TokenExpiryPolicy { .. }), "{e}");
    // The administrator relaxes the policy; the same long-lived sync works.
    server.set_token_expiry(TokenExpiry::Optional);
    let o = sync
        .sync_user(&HostUser::new(1, "a@example.com", "A"))
        .await
        .unwrap();
    assert_eq!(o.token, TokenOutcome::Minted);
    assert_eq!(server.request_count(MINT), 2);
}
