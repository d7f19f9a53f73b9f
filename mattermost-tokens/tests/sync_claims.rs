//! Claims in the sync, against httpmock and the in-memory store (which
//! shares claims like the database stores): concurrent syncs of one user
//! mint once, a bulk run leaves users another sync holds, and a mint's
//! intent lets the next sync revoke what a dead one minted and never stored.

use std::sync::Arc;
use std::sync::atomic::AtomicUsize;
use std::time::Duration;

use futures::stream;
use httpmock::Method::{GET, POST};
use httpmock::MockServer;
use mattermost_tokens::store::Lease;
use mattermost_tokens::*;
use serde_json::{Value, json};

mod sync_support;
use sync_support::*;

/// Mocks a linked account `mm` for user 1 and its (empty) token list.
async fn account(server: &MockServer, mm: &str) {
    let mm = mm.to_owned();
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}"));
            then.status(200)
                .json_body(user_json(&mm, "ana", "ana@example.com", "Ana", ""));
        })
        .await;
}

/// Mocks an empty token list for `mm` (the orphan check before a mint).
async fn no_tokens(server: &MockServer, mm: &str) {
    let mm = mm.to_owned();
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}/tokens"));
            then.status(200).json_body(json!([]));
        })
        .await;
}

async fn linked_store(mm: &str) -> Arc<MemoryStore> {
    let store = Arc::new(MemoryStore::with_users([1.into(), 2.into(), 3.into()]));
    store
        .set_mattermost_user_id(&1.into(), &UserId::new(mm))
        .await
        .unwrap();
    store
}

#[tokio::test]
async fn four_syncs_of_one_user_mint_once() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    account(&server, &mm).await;
    no_tokens(&server, &mm).await;
    let mint = server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(Arc::new(AtomicUsize::new(0))))
                .delay(Duration::from_millis(100));
        })
        .await;
    let revoke = server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users/tokens/revoke");
            then.status(200).json_body(json!({"status": "OK"}));
        })
        .await;
    let store = linked_store(&mm).await;
    // Four instances of the app, each with its own UserSync.
    let syncs: Vec<UserSync> = (0..4)
        .map(|_| sync_over(&server, store.clone(), opts()))
        .collect();
    let u = HostUser::new(1, "ana@example.com", "Ana");
    let outcomes = futures::future::join_all(syncs.iter().map(|s| s.sync_user(&u))).await;
    let mut tokens: Vec<TokenOutcome> = outcomes.into_iter().map(|o| o.unwrap().token).collect();
    tokens.sort_by_key(|t| t.name());
    assert_eq!(
        tokens,
        [
            TokenOutcome::Kept,
            TokenOutcome::Kept,
            TokenOutcome::Kept,
            TokenOutcome::Minted
        ]
    );
    mint.assert_calls_async(1).await;
    revoke.assert_calls_async(0).await;
}

#[tokio::test]
async fn the_mint_names_its_intent_and_settles_it() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    account(&server, &mm).await;
    no_tokens(&server, &mm).await;
    let described = Arc::new(std::sync::Mutex::new(String::new()));
    let d2 = described.clone();
    let counter = Arc::new(AtomicUsize::new(0));
    let mint_answer = minting(counter);
    server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(move |req: &httpmock::HttpMockRequest| {
                let b: Value = serde_json::from_slice(req.body().as_ref()).unwrap();
                *d2.lock().unwrap() = b["description"].as_str().unwrap().to_owned();
                mint_answer(req)
            });
        })
        .await;
    let store = linked_store(&mm).await;
    let sync = sync_over(&server, store.clone(), opts());
    let out = sync
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    assert_eq!(out.token, TokenOutcome::Minted);
    let description = described.lock().unwrap().clone();
    let (head, nonce) = description.rsplit_once(" intent ").unwrap();
    assert!(
        head.starts_with("Minted by mattermost-tokens for shop user 1 at "),
        "{description}"
    );
    assert_eq!(nonce.len(), 32, "{description}");
    assert!(
        nonce.bytes().all(|b| b.is_ascii_hexdigit()),
        "{description}"
    );
    assert_eq!(
        sync.parse_description(&description, &1.into()).map(|_| ()),
        Some(())
    );
    // Stored and released: the next holder finds nothing to settle.
    let next = store
        .claim(&[1.into()], &Lease::new(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(!next[0].pending_intent);
}

#[tokio::test]
async fn a_dead_syncs_unstored_token_is_revoked_whatever_its_age() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    account(&server, &mm).await;
    let store = linked_store(&mm).await;
    // A sync claimed user 1, recorded its intent, minted, and died before
    // storing: its claim has run out, its token is seconds old.
    let mut dead = Lease::new(Duration::from_secs(60));
    dead.until_ms -= 120_000;
    store.claim(&[1.into()], &dead).await.unwrap();
    let nonce = mattermost_tokens::store::mint_nonce();
    assert!(store.record_intent(&1.into(), &dead, &nonce).await.unwrap());
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let list = server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}/tokens"));
            then.status(200).json_body(json!([
                {"id": id("d", 1), "user_id": mm, "is_active": true,
                 "description": format!("Minted by mattermost-tokens for shop user 1 at {now} intent {nonce}")},
                {"id": id("o", 2), "user_id": mm, "is_active": true, "description": "my own CLI token"}
            ]));
        })
        .await;
    let revoke_dead = ok_revoke(&server, &id("d", 1)).await;
    let revoke_own = ok_revoke(&server, &id("o", 2)).await;
    let mint = server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.respond_with(minting(Arc::new(AtomicUsize::new(0))));
        })
        .await;
    let out = sync_over(&server, store.clone(), opts())
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap();
    assert_eq!(out.token, TokenOutcome::Minted);
    assert_eq!(out.orphans_revoked, 1);
    list.assert_calls_async(1).await;
    revoke_dead.assert_calls_async(1).await;
    revoke_own.assert_calls_async(0).await;
    mint.assert_calls_async(1).await;
    let next = store
        .claim(&[1.into()], &Lease::new(Duration::from_secs(60)))
        .await
        .unwrap();
    assert!(!next[0].pending_intent, "settled");
}

#[tokio::test]
async fn a_lost_mint_answer_leaves_the_intent_to_the_next_sync() {
    let server = MockServer::start_async().await;
    let mm = id("u", 1);
    account(&server, &mm).await;
    let list = server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{mm}/tokens"));
            then.status(200).json_body(json!([]));
        })
        .await;
    let gateway = server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.status(504).body("gateway timeout");
        })
        .await;
    let store = linked_store(&mm).await;
    let sync = sync_over(&server, store.clone(), opts());
    let u = HostUser::new(1, "ana@example.com", "Ana");
    assert!(sync.sync_user(&u).await.is_err());
    // Released, but the intent stays: the token may exist.
    let probe = Lease::new(Duration::from_secs(60));
    let got = store.claim(&[1.into()], &probe).await.unwrap();
    assert!(got[0].pending_intent);
    store.release(&1.into(), &probe, false).await.unwrap();
    gateway.delete_async().await;
    // A definite refusal settles it.
    let refused = server
        .mock_async(|when, then| {
            when.method(POST).path(format!("/api/v4/users/{mm}/tokens"));
            then.status(403)
                .json_body(json!({"id": "api.context.permissions.app_error",
                "message": "no", "status_code": 403}));
        })
        .await;
    assert!(sync.sync_user(&u).await.is_err());
    refused.assert_calls_async(1).await;
    // Once before the first mint, once to settle its intent.
    list.assert_calls_async(2).await;
    let got = store.claim(&[1.into()], &probe).await.unwrap();
    assert!(
        !got[0].pending_intent,
        "listed, nothing found, refused: settled"
    );
}

#[tokio::test]
async fn a_bulk_run_leaves_users_another_sync_holds() {
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
            then.status(200).json_body(json!({"id": id("a", 1), "username": "admin",
                "email": "admin@example.com", "roles": "system_admin system_user", "delete_at": 0}));
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/config/client");
            then.status(200)
                .json_body(json!({"EnableUserAccessTokens": "true"}));
        })
        .await;
    let creates = Arc::new(AtomicUsize::new(0));
    let c2 = creates.clone();
    server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users");
            then.respond_with(move |req: &httpmock::HttpMockRequest| {
                let n = c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let b: Value = serde_json::from_slice(req.body().as_ref()).unwrap();
                let body = user_json(
                    &id("n", n),
                    b["username"].as_str().unwrap(),
                    b["email"].as_str().unwrap(),
                    "",
                    "",
                );
                httpmock::HttpMockResponse::builder()
                    .status(201)
                    .header("content-type", "application/json")
                    .body(body.to_string())
                    .build()
            });
        })
        .await;
    let mint = server
        .mock_async(|when, then| {
            when.method(POST)
                .path_matches(r"^/api/v4/users/[a-z0-9]+/tokens$");
            then.respond_with(minting(Arc::new(AtomicUsize::new(0))));
        })
        .await;
    let store = Arc::new(MemoryStore::with_users([1.into(), 2.into(), 3.into()]));
    let elsewhere = Lease::new(Duration::from_secs(60));
    store.claim(&[2.into()], &elsewhere).await.unwrap();
    let users =
        (1..=3).map(|i| HostUser::new(i, format!("u{i}@example.com"), "U").email_verified(true));
    let report = sync_over(&server, store.clone(), opts())
        .sync_all(stream::iter(users), |_| {})
        .await
        .unwrap();
    assert_eq!(report.summary.held_elsewhere, 1, "{report:?}");
    assert_eq!(report.summary.minted, 2, "{report:?}");
    mint.assert_calls_async(2).await;
    assert!(stored(&store, 2).token.is_none());
    assert!(stored(&store, 1).token.is_some() && stored(&store, 3).token.is_some());
}

#[tokio::test]
async fn sync_user_gives_up_on_a_held_user_after_the_wait() {
    let server = MockServer::start_async().await;
    let store = Arc::new(MemoryStore::with_users([1.into()]));
    store
        .claim(&[1.into()], &Lease::new(Duration::from_secs(60)))
        .await
        .unwrap();
    let opts = opts().claim_wait(Duration::from_millis(200));
    let e = sync_over(&server, store, opts)
        .sync_user(&HostUser::new(1, "ana@example.com", "Ana"))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::UserBusy { .. }), "{e:?}");
    assert!(e.to_string().contains("another process"), "{e}");
}
