//! UserSync, TokenSelector and the token lifecycle against httpmock and the
//! in-memory store: each flow, each error path, and the crash and race cases.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::stream;
use httpmock::Method::{GET, POST, PUT};
use httpmock::{HttpMockRequest, HttpMockResponse, MockServer};
use mattermost_tokens::*;
use serde_json::{Value, json};

mod sync_support;
use sync_support::*;

#[tokio::test]
async fn new_user_is_created_minted_and_stored() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    let create = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users")
                .header("authorization", format!("Bearer {ADMIN}"))
                .json_body_includes(
                    json!({"email": "ana.lopez@example.com", "username": "ana.lopez",
                           "first_name": "Ana", "last_name": "López", "email_verified": true})
                    .to_string(),
                )
                .body_includes("\"password\":\"");
            then.status(201).json_body(user_json(
                &mm,
                "ana.lopez",
                "ana.lopez@example.com",
                "Ana",
                "López",
            ));
        })
        .await;
    let counter = Arc::new(AtomicUsize::new(0));
    let mint = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/users/{mm}/tokens"))
                .header("authorization", format!("Bearer {ADMIN}"))
                .body_includes("Minted by mattermost-tokens for shop user 7 at ");
            then.respond_with(minting(counter.clone()));
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([7.into()]));
    let sync = sync_over(&server, store.clone(), opts());
    let out = sync
        .sync_user(&HostUser::new(7, "Ana.Lopez@Example.com", "Ana López"))
        .await
        .unwrap();
    assert_eq!(out.account, AccountOutcome::Created);
    assert_eq!(out.token, TokenOutcome::Minted);
    assert_eq!(
        out.mattermost_user_id.as_ref().map(UserId::as_str),
        Some(mm.as_str())
    );
    create.assert_calls_async(1).await;
    mint.assert_calls_async(1).await;
    let rec = stored(&store, 7);
    assert_eq!(
        rec.token.unwrap().expose_secret(),
        "secrettokenvalue0000000000"
    );
    assert_eq!(rec.token_id.unwrap().as_str(), id("t", 0));
    assert_eq!(rec.mattermost_user_id.unwrap().as_str(), mm);
}

#[tokio::test]
async fn sso_users_get_auth_service_and_no_password() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    let create = server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users").json_body_includes(
                json!({"auth_service": "gitlab", "auth_data": "gitlab-1001"}).to_string(),
            );
            then.status(201)
                .json_body(user_json(&mm, "bob", "bo@example.com", "Bo", ""));
        })
        .await;
    let no_password = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users")
                .body_includes("password");
            then.status(500);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(Arc::new(AtomicUsize::new(0))));
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    let sync = sync_over(&server, store, {
        let mut o = opts();
        o.auth_service = Some("gitlab".into());
        o
    });
    sync.sync_user(&HostUser::new(1, "bo@example.com", "Bo").auth_data("gitlab-1001"))
        .await
        .unwrap();
    create.assert_calls_async(1).await;
    no_password.assert_calls_async(0).await;
}

#[tokio::test]
async fn linked_user_with_token_and_same_details_costs_one_read() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    let get = server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}"));
            then.status(200)
                .json_body(user_json(&mm, "ana", "ana@example.com", "Ana", "López"));
        })
        .await;
    let any_post = server
        .mock_async(|when, then| {
            when.method(POST);
            then.status(500);
        })
        .await;
    let any_put = server
        .mock_async(|when, then| {
            when.method(PUT);
            then.status(500);
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    store
        .put_token(
            &1.into(),
            &NewToken {
                mattermost_user_id: UserId::new(mm.clone()),
                token: "kept-token".into(),
                token_id: TokenId::new(id("t", 9)),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let sync = sync_over(&server, store.clone(), opts());
    let out = sync
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana López"))
        .await
        .unwrap();
    assert_eq!(
        (out.account, out.token),
        (AccountOutcome::Unchanged, TokenOutcome::Kept)
    );
    get.assert_calls_async(1).await;
    any_post.assert_calls_async(0).await;
    any_put.assert_calls_async(0).await;
    assert_eq!(
        stored(&store, 1).token.unwrap().expose_secret(),
        "kept-token"
    );
}

#[tokio::test]
async fn changed_details_are_patched_with_only_the_changes() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}"));
            then.status(200)
                .json_body(user_json(&mm, "ana", "old@example.com", "Ana", "López"));
        })
        .await;
    let patch = server
        .mock_async(|when, then| {
            when.method(PUT)
                .path(format!("/api/v4/users/{mm}/patch"))
                .json_body(json!({"email": "new@example.com", "last_name": "García"}));
            then.status(200)
                .json_body(user_json(&mm, "ana", "new@example.com", "Ana", "García"));
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    store
        .put_token(
            &1.into(),
            &NewToken {
                mattermost_user_id: UserId::new(mm.clone()),
                token: "t".into(),
                token_id: TokenId::new(id("t", 9)),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let out = sync_over(&server, store, opts())
        .sync_user(&HostUser::new(1, "new@example.com", "Ana García"))
        .await
        .unwrap();
    assert_eq!(out.account, AccountOutcome::Updated);
    assert_eq!(out.token, TokenOutcome::Kept);
    patch.assert_calls_async(1).await;
}

#[tokio::test]
async fn email_exists_race_finds_the_user_checks_orphans_and_mints() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    let create = server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users");
            then.status(400)
                .json_body(json!({"id": "app.user.save.email_exists.app_error",
                "message": "An account with that email already exists.", "detailed_error": "",
                "request_id": "r1", "status_code": 400}));
        })
        .await;
    let lookup = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/email/ana@example.com");
            then.status(200)
                .json_body(user_json(&mm, "ana", "ana@example.com", "Ana", "López"));
        })
        .await;
    let list = server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}/tokens"));
            then.status(200).json_body(json!([]));
        })
        .await;
    let mint = server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(Arc::new(AtomicUsize::new(0))));
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    let out = sync_over(&server, store.clone(), opts())
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana López").email_verified(true))
        .await
        .unwrap();
    assert_eq!(
        (out.account, out.token),
        (AccountOutcome::Unchanged, TokenOutcome::Minted)
    );
    create.assert_calls_async(1).await;
    lookup.assert_calls_async(1).await;
    list.assert_calls_async(1).await;
    mint.assert_calls_async(1).await;
    assert_eq!(stored(&store, 1).mattermost_user_id.unwrap().as_str(), mm);
}

#[tokio::test]
async fn username_taken_tries_the_next_candidate() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    let taken = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users")
                .json_body_includes(json!({"username": "ana"}).to_string());
            then.status(400)
                .json_body(json!({"id": "app.user.save.username_exists.app_error",
                "message": "taken", "status_code": 400}));
        })
        .await;
    let candidates = HostUser::new(1, "ana@example.com", "Ana")
        .username_candidates()
        .unwrap();
    let second = candidates[1].clone();
    let created = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users")
                .json_body_includes(json!({"username": second}).to_string());
            then.status(201)
                .json_body(user_json(&mm, &second, "ana@example.com", "Ana", ""));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(Arc::new(AtomicUsize::new(0))));
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    let out = sync_over(&server, store, opts())
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    assert_eq!(out.account, AccountOutcome::Created);
    taken.assert_calls_async(1).await;
    created.assert_calls_async(1).await;
}

#[tokio::test]
async fn invalid_host_data_is_a_per_user_error_without_requests() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(500);
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into(), 2.into()]));
    let sync = sync_over(&server, store, opts());
    let e = sync
        .sync_user(&HostUser::new(1, "not-an-email", "X"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidHostUser { .. }), "{e}");
    let e = sync
        .sync_user(&HostUser::new(2, "x@example.com", "X").username("Bad Name!"))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("not valid"), "{e}");
    let e = sync
        .sync_user(&HostUser::new(3, "x@example.com", "X"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Store(StoreError::UnknownUser(_))), "{e}");
    any.assert_calls_async(0).await;
}

/// A store whose writes can be made to fail or to lose the compare-and-set.
#[derive(Debug, Default)]
struct Flaky {
    inner: MemoryStore,
    fail_token_writes: AtomicBool,
    lose_cas: AtomicBool,
}

#[async_trait]
impl TokenStore for Flaky {
    async fn get(&self, u: &HostUserId) -> Result<Option<TokenRecord>, StoreError> {
        self.inner.get(u).await
    }
    async fn get_many(
        &self,
        u: &[HostUserId],
    ) -> Result<HashMap<HostUserId, TokenRecord>, StoreError> {
        self.inner.get_many(u).await
    }
    async fn set_mattermost_user_id(&self, u: &HostUserId, m: &UserId) -> Result<(), StoreError> {
        self.inner.set_mattermost_user_id(u, m).await
    }
    async fn put_token_if_absent(&self, u: &HostUserId, t: &NewToken) -> Result<bool, StoreError> {
        if self.fail_token_writes.load(Ordering::SeqCst) {
            return Err(StoreError::Unavailable {
                message: "database went away".into(),
                source: None,
            });
        }
        if self.lose_cas.load(Ordering::SeqCst) {
            return Ok(false);
        }
        self.inner.put_token_if_absent(u, t).await
    }
    async fn put_token(&self, u: &HostUserId, t: &NewToken) -> Result<(), StoreError> {
        self.inner.put_token(u, t).await
    }
    async fn replace_token(
        &self,
        u: &HostUserId,
        e: &TokenId,
        t: &NewToken,
    ) -> Result<bool, StoreError> {
        self.inner.replace_token(u, e, t).await
    }
    async fn clear_token(&self, u: &HostUserId) -> Result<bool, StoreError> {
        self.inner.clear_token(u).await
    }
    async fn list_missing(
        &self,
        a: Option<&HostUserId>,
        l: u32,
    ) -> Result<MissingPage, StoreError> {
        self.inner.list_missing(a, l).await
    }
}

async fn fresh_user_mocks(server: &MockServer, mm: &str) {
    server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users");
            then.status(201)
                .json_body(user_json(mm, "ana", "ana@example.com", "Ana", ""));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(Arc::new(AtomicUsize::new(0))));
        })
        .await;
}

#[tokio::test]
async fn store_write_failing_after_mint_revokes_the_token() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    fresh_user_mocks(&server, &mm).await;
    let revoke = ok_revoke(&server, &id("t", 0)).await;
    let store = Arc::new(Flaky::default());
    store.inner.add_user(1.into());
    store.fail_token_writes.store(true, Ordering::SeqCst);
    let e = sync_over(&server, store.clone(), opts())
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::Store(StoreError::Unavailable { .. })),
        "{e}"
    );
    revoke.assert_calls_async(1).await;
    // The account link was stored before the mint, so a re-run finds it.
    let rec = store.get(&1.into()).await.unwrap().unwrap();
    assert_eq!(rec.mattermost_user_id.unwrap().as_str(), mm);
    assert!(rec.token.is_none());
}

#[tokio::test]
async fn losing_the_compare_and_set_revokes_the_minted_token() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    fresh_user_mocks(&server, &mm).await;
    let revoke = ok_revoke(&server, &id("t", 0)).await;
    let store = Arc::new(Flaky::default());
    store.inner.add_user(1.into());
    store.lose_cas.store(true, Ordering::SeqCst);
    let out = sync_over(&server, store, opts())
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    assert_eq!(out.token, TokenOutcome::LostRace);
    revoke.assert_calls_async(1).await;
}

#[tokio::test]
async fn without_shared_claims_two_concurrent_syncs_store_one_token_and_revoke_the_other() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}"));
            then.status(200)
                .json_body(user_json(&mm, "ana", "ana@example.com", "Ana", ""));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}/tokens"));
            then.status(200).json_body(json!([]));
        })
        .await;
    let counter = Arc::new(AtomicUsize::new(0));
    let mint = server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(counter.clone()))
                .delay(std::time::Duration::from_millis(50));
        })
        .await;
    let revoked = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let r2 = revoked.clone();
    server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users/tokens/revoke");
            then.respond_with(move |req: &HttpMockRequest| {
                let b: Value = serde_json::from_slice(req.body().as_ref()).unwrap();
                r2.lock()
                    .unwrap()
                    .push(b["token_id"].as_str().unwrap().to_owned());
                HttpMockResponse::builder()
                    .status(200)
                    .body(r#"{"status":"OK"}"#)
                    .build()
            });
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    store
        .set_mattermost_user_id(&1.into(), &UserId::new(mm.clone()))
        .await
        .unwrap();
    let a = sync_over(&server, unshared(&store), opts());
    let b = sync_over(&server, unshared(&store), opts());
    let u = HostUser::new(1, "ana@example.com", "Ana");
    let (ra, rb) = tokio::join!(a.sync_user(&u), b.sync_user(&u));
    let outcomes = [ra.unwrap().token, rb.unwrap().token];
    assert!(outcomes.contains(&TokenOutcome::Minted), "{outcomes:?}");
    assert!(outcomes.contains(&TokenOutcome::LostRace), "{outcomes:?}");
    mint.assert_calls_async(2).await;
    let rec = stored(&store, 1);
    let kept = rec.token_id.unwrap().into_string();
    let revoked = revoked.lock().unwrap().clone();
    assert_eq!(revoked.len(), 1, "{revoked:?}");
    assert_ne!(revoked[0], kept, "the stored token must stay live");
}

#[tokio::test]
async fn old_orphan_is_revoked_before_the_mint_and_foreign_tokens_are_left() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}"));
            then.status(200)
                .json_body(user_json(&mm, "ana", "ana@example.com", "Ana", ""));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}/tokens"));
            then.status(200).json_body(json!([
                {"id": id("o", 1), "user_id": mm, "description": "Minted by mattermost-tokens for shop user 1 at 1000", "is_active": true},
                {"id": id("o", 3), "user_id": mm, "description": "Minted by mattermost-tokens for blog user 1 at 1000", "is_active": true},
                {"id": id("o", 4), "user_id": mm, "description": "my own CLI token", "is_active": true}
            ]));
        })
        .await;
    // The mint fails: the orphan must have been revoked before it.
    let mint = server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.status(500)
                .json_body(json!({"id": "x", "message": "boom", "status_code": 500}));
        })
        .await;
    let revoke_orphan = ok_revoke(&server, &id("o", 1)).await;
    let revoke_other = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users/tokens/revoke")
                .body_includes(id("o", 3));
            then.status(200).json_body(json!({"status": "OK"}));
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    store
        .set_mattermost_user_id(&1.into(), &UserId::new(mm.clone()))
        .await
        .unwrap();
    let e = sync_over(&server, unshared(&store), opts())
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(500));
    mint.assert_calls_async(1).await;
    revoke_orphan.assert_calls_async(1).await;
    revoke_other.assert_calls_async(0).await;
}

#[tokio::test]
async fn young_library_token_is_revoked_only_after_the_new_one_is_stored() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}"));
            then.status(200)
                .json_body(user_json(&mm, "ana", "ana@example.com", "Ana", ""));
        })
        .await;
    let list = server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}/tokens"));
            then.status(200).json_body(json!([
                {"id": id("y", 1), "user_id": mm, "description": format!("Minted by mattermost-tokens for shop user 1 at {now}"), "is_active": true}
            ]));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(Arc::new(AtomicUsize::new(0))));
        })
        .await;
    let revoke_young = ok_revoke(&server, &id("y", 1)).await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    store
        .set_mattermost_user_id(&1.into(), &UserId::new(mm.clone()))
        .await
        .unwrap();
    let out = sync_over(&server, unshared(&store), opts())
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    assert_eq!(out.token, TokenOutcome::Minted);
    assert_eq!(out.orphans_revoked, 1);
    list.assert_calls_async(2).await;
    revoke_young.assert_calls_async(1).await;
    assert!(stored(&store, 1).token.is_some());
}

#[tokio::test]
async fn replace_tokens_mints_stores_then_revokes_the_old() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}"));
            then.status(200)
                .json_body(user_json(&mm, "ana", "ana@example.com", "Ana", ""));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(Arc::new(AtomicUsize::new(0))));
        })
        .await;
    let revoke_old = ok_revoke(&server, &id("t", 99)).await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    store
        .put_token(
            &1.into(),
            &NewToken {
                mattermost_user_id: UserId::new(mm.clone()),
                token: "old".into(),
                token_id: TokenId::new(id("t", 99)),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let out = sync_over(&server, store.clone(), opts().replace_tokens(true))
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    assert_eq!(out.token, TokenOutcome::Replaced);
    revoke_old.assert_calls_async(1).await;
    assert_eq!(stored(&store, 1).token_id.unwrap().as_str(), id("t", 0));
}

async fn preflight_mocks(server: &MockServer, tokens_enabled: &str) {
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/system/ping");
            then.status(200).json_body(json!({"status": "OK"}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me").header("authorization", format!("Bearer {ADMIN}"));
            then.status(200)
                .header("X-Version-Id", "10.6.0.1.abc.true")
                .json_body(json!({"id": id("a", 1), "username": "admin", "roles": "system_admin system_user"}));
        })
        .await;
    let v = tokens_enabled.to_owned();
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v4/config/client")
                .query_param("format", "old");
            then.status(200)
                .json_body(json!({"EnableUserAccessTokens": v, "Version": "10.6.0"}));
        })
        .await;
}

#[tokio::test]
async fn bulk_sync_fails_fast_when_tokens_are_disabled() {
    let server = MockServer::start_async().await;
    preflight_mocks(&server, "false").await;
    let create = server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users");
            then.status(500);
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into(), 2.into()]));
    let users = vec![
        HostUser::new(1, "a@example.com", "A"),
        HostUser::new(2, "b@example.com", "B"),
    ];
    let e = sync_over(&server, store, opts())
        .sync_all(stream::iter(users), |_| {})
        .await
        .unwrap_err();
    assert!(matches!(e, Error::TokensDisabled(_)), "{e}");
    assert!(e.to_string().contains("EnableUserAccessTokens"));
    create.assert_calls_async(0).await;
}

#[tokio::test]
async fn bulk_sync_fails_fast_on_a_bad_admin_token_or_no_server() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/system/ping");
            then.status(200).json_body(json!({"status": "OK"}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me");
            then.status(401).json_body(json!({"id": "api.context.session_expired.app_error", "message": "Invalid or expired session", "status_code": 401}));
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    let e = sync_over(&server, store.clone(), opts())
        .sync_all(
            stream::iter(vec![HostUser::new(1, "a@example.com", "A")]),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized(_)), "{e}");

    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let c = MattermostClient::builder(&format!("http://127.0.0.1:{port}"), ADMIN)
        .retry_policy(RetryPolicy::none())
        .build()
        .unwrap();
    let e = UserSync::new(c, store, opts())
        .unwrap()
        .sync_all(
            stream::iter(vec![HostUser::new(1, "a@example.com", "A")]),
            |_| {},
        )
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e}");
}

#[tokio::test]
async fn bulk_sync_collects_per_user_errors_and_fetches_linked_users_in_one_request() {
    let server = MockServer::start_async().await;
    preflight_mocks(&server, "true").await;
    let linked: Vec<String> = (1..=3).map(|n| id("u", n)).collect();
    let bulk = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users/ids")
                .json_body(json!(linked));
            then.status(200).json_body(json!([
                user_json(&id("u", 1), "a", "a@example.com", "A", ""),
                user_json(&id("u", 2), "b", "b@example.com", "B", ""),
                user_json(&id("u", 3), "c", "c@example.com", "C", ""),
            ]));
        })
        .await;
    let single = server
        .mock_async(|when, then| {
            when.method(GET).path_matches(r"^/api/v4/users/a+u\d$");
            then.status(500);
        })
        .await;
    let store = Arc::new(MemoryStore::with_users((1..=4).map(HostUserId::Int)));
    for n in 1..=3 {
        store
            .put_token(
                &HostUserId::Int(n as i64),
                &NewToken {
                    mattermost_user_id: UserId::new(id("u", n)),
                    token: format!("tok{n}").into(),
                    token_id: TokenId::new(id("t", n)),
                    expires_at: None,
                },
            )
            .await
            .unwrap();
    }
    let users = vec![
        HostUser::new(1, "a@example.com", "A"),
        HostUser::new(2, "b@example.com", "B"),
        HostUser::new(3, "c@example.com", "C"),
        HostUser::new(4, "broken", "D"),
    ];
    let mut seen = Vec::new();
    let report = sync_over(&server, store, opts())
        .sync_all(stream::iter(users), |r| {
            seen.push(match r {
                Ok(o) => o.user.clone(),
                Err(f) => f.user.clone(),
            })
        })
        .await
        .unwrap();
    assert_eq!(report.summary.total, 4);
    assert_eq!(report.summary.unchanged, 3);
    assert_eq!(report.summary.kept, 3);
    assert_eq!(report.summary.failed, 1);
    assert_eq!(report.failures[0].user, HostUserId::Int(4));
    assert!(matches!(
        report.failures[0].error,
        Error::InvalidHostUser { .. }
    ));
    assert_eq!(seen.len(), 4);
    bulk.assert_calls_async(1).await;
    single.assert_calls_async(0).await;
}

#[tokio::test]
async fn sync_missing_skips_users_with_tokens_without_requests() {
    let server = MockServer::start_async().await;
    preflight_mocks(&server, "true").await;
    let mm = id("u", 2);
    let create = server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users");
            then.status(201)
                .json_body(user_json(&mm, "b", "b@example.com", "B", ""));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(Arc::new(AtomicUsize::new(0))));
        })
        .await;
    let bulk = server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users/ids");
            then.status(500);
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into(), 2.into()]));
    store
        .put_token(
            &1.into(),
            &NewToken {
                mattermost_user_id: UserId::new(id("u", 1)),
                token: "tok1".into(),
                token_id: TokenId::new(id("t", 1)),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    let users = vec![
        HostUser::new(1, "a@example.com", "A"),
        HostUser::new(2, "b@example.com", "B"),
    ];
    let report = sync_over(&server, store.clone(), opts())
        .sync_missing(stream::iter(users), |_| {})
        .await
        .unwrap();
    assert_eq!(report.summary.skipped, 1);
    assert_eq!(report.summary.created, 1);
    assert_eq!(report.summary.minted, 1);
    create.assert_calls_async(1).await;
    bulk.assert_calls_async(0).await;
    assert!(stored(&store, 2).token.is_some());
}

#[tokio::test]
async fn dry_run_changes_nothing() {
    let server = MockServer::start_async().await;
    let lookup = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/email/new@example.com");
            then.status(404).json_body(json!({"id": "app.user.missing_account.const", "message": "missing", "status_code": 404}));
        })
        .await;
    let writes = server
        .mock_async(|when, then| {
            when.method(POST);
            then.status(500);
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    let out = sync_over(&server, store.clone(), opts().dry_run(true))
        .sync_user(&HostUser::new(1, "new@example.com", "New"))
        .await
        .unwrap();
    assert_eq!(
        (out.account, out.token),
        (AccountOutcome::Created, TokenOutcome::WouldMint)
    );
    lookup.assert_calls_async(1).await;
    writes.assert_calls_async(0).await;
    assert!(stored(&store, 1).mattermost_user_id.is_none());
}

// ---- TokenSelector ----

async fn store_with_token(user: i64, token: &str, mm: &str) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::with_users([user.into(), 99.into()]));
    store
        .put_token(
            &user.into(),
            &NewToken {
                mattermost_user_id: UserId::new(mm),
                token: token.into(),
                token_id: TokenId::new(id("t", 1)),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    store
        .set_mattermost_user_id(&99.into(), &UserId::new(id("u", 99)))
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn selector_policies() {
    let store = store_with_token(1, "usertokenusertokenusertok1", &id("u", 1)).await;
    let with = HostUserId::Int(1);
    let without = HostUserId::Int(99);

    let seed = TokenSelector::new(store.clone(), Policy::FallbackToAdmin);
    let s = seed.select(Operation::UserScoped, &with).await.unwrap();
    assert_eq!(s.actor, Actor::User(with.clone()));
    assert!(
        matches!(&s.identity, Identity::User(t) if t.expose_secret() == "usertokenusertokenusertok1")
    );
    let s = seed.select(Operation::UserScoped, &without).await.unwrap();
    assert_eq!(s.actor, Actor::AdminFallback(without.clone()));
    assert!(matches!(s.identity, Identity::Admin));
    assert_eq!(seed.fallback_count(), 1);
    let s = seed.select(Operation::Admin, &with).await.unwrap();
    assert_eq!(s.actor, Actor::Admin);
    assert_eq!(seed.fallback_count(), 1);

    let strict = TokenSelector::new(store.clone(), Policy::Strict);
    assert!(matches!(
        strict.select(Operation::UserScoped, &without).await,
        Err(Error::NoUserToken { .. })
    ));
    assert_eq!(
        strict
            .select(Operation::UserScoped, &with)
            .await
            .unwrap()
            .actor,
        Actor::User(with.clone())
    );

    // An expired token counts as none: Strict says so, the fallback acts
    // as the admin.
    let rec = store.get(&with).await.unwrap().unwrap();
    store
        .put_token(
            &with,
            &NewToken {
                mattermost_user_id: rec.mattermost_user_id.clone().unwrap(),
                token: rec.token.clone().unwrap(),
                token_id: rec.token_id.clone().unwrap(),
                expires_at: Some(1_000),
            },
        )
        .await
        .unwrap();
    assert!(matches!(
        strict.select(Operation::UserScoped, &with).await,
        Err(Error::UserTokenExpired { user }) if user == with
    ));
    let s = seed.select(Operation::UserScoped, &with).await.unwrap();
    assert_eq!(s.actor, Actor::AdminFallback(with.clone()));
    assert_eq!(seed.fallback_count(), 2);

    let admin_only = TokenSelector::new(store, Policy::AdminOnly);
    let s = admin_only
        .select(Operation::UserScoped, &with)
        .await
        .unwrap();
    assert_eq!(s.actor, Actor::Admin);
    assert!(matches!(s.identity, Identity::Admin));
}

#[tokio::test]
async fn join_channel_goes_out_with_the_users_token_or_falls_back() {
    let server = MockServer::start_async().await;
    let channel = id("c", 1);
    let user_mm = id("u", 1);
    let as_user = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/channels/{channel}/members"))
                .header("authorization", "Bearer usertokenusertokenusertok1")
                .json_body(json!({"user_id": user_mm}));
            then.status(201).json_body(
                json!({"channel_id": channel, "user_id": user_mm, "roles": "channel_user"}),
            );
        })
        .await;
    let fallback_mm = id("u", 99);
    let as_admin = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/channels/{channel}/members"))
                .header("authorization", format!("Bearer {ADMIN}"))
                .json_body(json!({"user_id": fallback_mm}));
            then.status(201)
                .json_body(json!({"channel_id": channel, "user_id": fallback_mm}));
        })
        .await;
    // The admin standing in first checks that the channel is public.
    let public = server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/channels/{channel}"));
            then.status(200).json_body(
                json!({"id": channel, "team_id": id("t", 1), "name": "town-square", "type": "O"}),
            );
        })
        .await;
    let store = store_with_token(1, "usertokenusertokenusertok1", &user_mm).await;
    let c = client(&server);
    let sel = TokenSelector::new(store.clone(), Policy::FallbackToAdmin);
    let (actor, m) = sel
        .join_channel(&c, &1.into(), &ChannelId::new(channel.clone()))
        .await
        .unwrap();
    assert_eq!(actor, Actor::User(1.into()));
    assert_eq!(m.user_id.as_str(), user_mm);
    let (actor, _) = sel
        .join_channel(&c, &99.into(), &ChannelId::new(channel.clone()))
        .await
        .unwrap();
    assert_eq!(actor, Actor::AdminFallback(99.into()));
    as_user.assert_calls_async(1).await;
    as_admin.assert_calls_async(1).await;
    public.assert_calls_async(1).await;

    let strict = TokenSelector::new(store, Policy::Strict);
    assert!(matches!(
        strict
            .join_channel(&c, &99.into(), &ChannelId::new(channel))
            .await,
        Err(Error::NoUserToken { .. })
    ));
    as_admin.assert_calls_async(1).await;
}

// ---- Lifecycle ----

#[tokio::test]
async fn revoke_clears_the_store_and_revokes_in_mattermost() {
    let server = MockServer::start_async().await;
    let revoke = ok_revoke(&server, &id("t", 1)).await;
    let store = store_with_token(1, "tok", &id("u", 1)).await;
    let r = sync_over(&server, store.clone(), opts())
        .revoke(&1.into())
        .await
        .unwrap();
    assert!(r.had_token);
    revoke.assert_calls_async(1).await;
    let rec = stored(&store, 1);
    assert!(rec.token.is_none() && rec.token_id.is_none());
    assert!(rec.mattermost_user_id.is_some());
}

#[tokio::test]
async fn rotate_stores_the_new_token_before_revoking_the_old() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(Arc::new(AtomicUsize::new(5))));
        })
        .await;
    let store = store_with_token(1, "old", &mm).await;
    let s2 = store.clone();
    // The revoke of the old token checks that the new one is already stored.
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users/tokens/revoke")
                .json_body(json!({"token_id": id("t", 1)}));
            then.respond_with(move |_req: &HttpMockRequest| {
                let rec = futures::executor::block_on(s2.get(&HostUserId::Int(1)))
                    .unwrap()
                    .unwrap();
                let status = if rec.token_id.unwrap().as_str() == id("t", 5) {
                    200
                } else {
                    409
                };
                HttpMockResponse::builder()
                    .status(status)
                    .body(r#"{"status":"OK"}"#)
                    .build()
            });
        })
        .await;
    let out = sync_over(&server, store.clone(), opts())
        .rotate(&1.into())
        .await
        .unwrap();
    assert_eq!(out.token, TokenOutcome::Replaced);
    let rec = stored(&store, 1);
    assert_eq!(
        rec.token.unwrap().expose_secret(),
        "secrettokenvalue0000000005"
    );
}

async fn verify_case(
    me_status: u16,
    tokens_enabled: &str,
    user_deleted: bool,
    token_status: u16,
    remint: bool,
) -> (Verification, Arc<MemoryStore>, usize) {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    let me = me_status;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me").header("authorization", "Bearer usertok");
            if me == 200 {
                then.status(200).json_body(user_json(&id("u", 1), "ana", "a@example.com", "A", ""));
            } else {
                then.status(401).json_body(json!({"id": "api.context.session_expired.app_error", "message": "Invalid or expired session", "status_code": 401}));
            }
        })
        .await;
    let v = tokens_enabled.to_owned();
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/config/client");
            then.status(200)
                .json_body(json!({"EnableUserAccessTokens": v}));
        })
        .await;
    let mut u = user_json(&mm, "ana", "a@example.com", "A", "");
    if user_deleted {
        u["delete_at"] = json!(12345);
    }
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}"));
            then.status(200).json_body(u);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/tokens/{}", id("t", 1)));
            if token_status == 200 {
                then.status(200).json_body(json!({"id": id("t", 1), "user_id": mm, "description": "d", "is_active": false}));
            } else {
                then.status(404).json_body(json!({"id": "app.user_access_token.get_by_token.app_error", "message": "missing", "status_code": 404}));
            }
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}/tokens"));
            then.status(200).json_body(json!([]));
        })
        .await;
    let mint = server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(Arc::new(AtomicUsize::new(7))));
        })
        .await;
    let store = store_with_token(1, "usertok", &mm).await;
    let v = sync_over(&server, store.clone(), opts())
        .verify(&1.into(), remint)
        .await
        .unwrap();
    (v, store, mint.calls_async().await)
}

#[tokio::test]
async fn verify_tells_why_a_token_fails() {
    assert_eq!(
        verify_case(200, "true", false, 404, false).await.0,
        Verification::Valid
    );
    assert_eq!(
        verify_case(401, "false", false, 404, false).await.0,
        Verification::TokensDisabled
    );
    assert_eq!(
        verify_case(401, "true", true, 404, false).await.0,
        Verification::UserDeactivated
    );
    assert_eq!(
        verify_case(401, "true", false, 200, false).await.0,
        Verification::TokenDisabled
    );
    let (v, _, mints) = verify_case(401, "true", false, 404, false).await;
    assert_eq!((v, mints), (Verification::TokenRevoked, 0));
    let (v, store, mints) = verify_case(401, "true", false, 404, true).await;
    assert_eq!((v, mints), (Verification::Reminted, 1));
    assert_eq!(
        stored(&store, 1).token.unwrap().expose_secret(),
        "secrettokenvalue0000000007"
    );
    // Deactivated users are never re-minted.
    let (v, _, mints) = verify_case(401, "true", true, 404, true).await;
    assert_eq!((v, mints), (Verification::UserDeactivated, 0));
}
