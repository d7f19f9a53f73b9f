//! `MattermostClient` personal-access-token endpoints against httpmock.

mod common;

use common::*;
use futures::StreamExt;
use httpmock::prelude::*;
use mattermost_tokens::models::CreateToken;
use mattermost_tokens::{AccessToken, Error, TokenId, UserId};
use serde_json::json;

fn created(user: &str) -> serde_json::Value {
    json!({
        "id": id("tok1"),
        "token": MINTED_TOKEN,
        "user_id": user,
        "description": "mattermost-tokens: host user 7",
        "is_active": true,
        "expires_at": 0,
        "last_used_at": 0
    })
}

async fn create_answered_with(status: u16) {
    let server = MockServer::start_async().await;
    let uid = id("owner");
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/users/{uid}/tokens"))
                .and(admin_auth)
                .header("content-type", "application/json")
                .json_body(json!({"description": "mattermost-tokens: host user 7"}));
            then.status(status).json_body(created(&uid));
        })
        .await;
    let t = client(&server)
        .as_admin()
        .create_token(
            &UserId::new(uid.clone()),
            &CreateToken {
                description: "mattermost-tokens: host user 7".into(),
                expires_at: None,
            },
        )
        .await
        .unwrap();
    m.assert_calls_async(1).await;
    assert_eq!(t.id, TokenId::new(id("tok1")));
    assert_eq!(t.token.expose_secret(), MINTED_TOKEN);
    assert_eq!(t.user_id.as_str(), uid);
    assert_eq!(t.description, "mattermost-tokens: host user 7");
    assert!(t.is_active);
}

#[tokio::test]
async fn create_token_accepts_200() {
    create_answered_with(200).await;
}

#[tokio::test]
async fn create_token_accepts_201() {
    create_answered_with(201).await;
}

#[tokio::test]
async fn create_token_with_expiry_sends_expires_at() {
    let server = MockServer::start_async().await;
    let uid = id("owner");
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/users/{uid}/tokens"))
                .and(admin_auth)
                .json_body(json!({"description": "d", "expires_at": 1_900_000_000_000_i64}));
            // Minimal answer: description and is_active missing.
            then.status(200).json_body(json!({
                "id": id("tok2"),
                "token": MINTED_TOKEN,
                "user_id": uid
            }));
        })
        .await;
    let t = client(&server)
        .as_admin()
        .create_token(
            &UserId::new(uid.clone()),
            &CreateToken {
                description: "d".into(),
                expires_at: Some(1_900_000_000_000),
            },
        )
        .await
        .unwrap();
    m.assert_calls_async(1).await;
    assert_eq!(t.description, "");
    assert!(t.is_active, "is_active defaults to true");
}

#[tokio::test]
async fn create_token_validates_before_sending() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).json_body(created(&id("x")));
        })
        .await;
    let a = client(&server);
    let a = a.as_admin();
    let ok_user = UserId::new(id("owner"));
    for d in ["".to_owned(), "   ".to_owned(), "x".repeat(256)] {
        let r = a
            .create_token(
                &ok_user,
                &CreateToken {
                    description: d.clone(),
                    expires_at: None,
                },
            )
            .await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{d:?}");
    }
    for bad in ["", "..", "../tokens", "NOTLOWERCASE00000000000000"] {
        let r = a
            .create_token(
                &UserId::new(bad),
                &CreateToken {
                    description: "d".into(),
                    expires_at: None,
                },
            )
            .await;
        assert!(matches!(r, Err(Error::InvalidInput(_))), "{bad:?}");
    }
    any.assert_calls_async(0).await;
    // 255 characters (not bytes) is still fine.
    a.create_token(
        &ok_user,
        &CreateToken {
            description: "é".repeat(255),
            expires_at: None,
        },
    )
    .await
    .unwrap();
    any.assert_calls_async(1).await;
}

#[tokio::test]
async fn get_token_by_id() {
    let server = MockServer::start_async().await;
    let tid = id("tok1");
    let m = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/api/v4/users/tokens/{tid}"))
                .and(admin_auth);
            then.status(200).json_body(json!({
                "id": tid,
                "user_id": id("owner"),
                "description": "desc",
                "is_active": false,
                "expires_at": 0
            }));
        })
        .await;
    let t = client(&server)
        .as_admin()
        .token(&TokenId::new(tid.clone()))
        .await
        .unwrap();
    m.assert_calls_async(1).await;
    assert_eq!(t.id.as_str(), tid);
    assert_eq!(t.user_id.as_str(), id("owner"));
    assert_eq!(t.description, "desc");
    assert!(!t.is_active);
}

#[tokio::test]
async fn get_missing_token_is_not_found() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/api/v4/users/tokens/{}", id("gone")));
            then.status(404).json_body(app_error(
                "app.user_access_token.get_by_token.app_error",
                "not found",
                404,
                "r",
            ));
        })
        .await;
    let e = client(&server)
        .as_admin()
        .token(&TokenId::new(id("gone")))
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e:?}");
}

#[tokio::test]
async fn revoke_disable_enable_post_the_token_id() {
    let server = MockServer::start_async().await;
    let tid = id("tok9");
    let mut mocks = Vec::new();
    for op in ["revoke", "disable", "enable"] {
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method(POST)
                        .path(format!("/api/v4/users/tokens/{op}"))
                        .and(user_auth)
                        .json_body(json!({"token_id": tid}));
                    then.status(200).json_body(json!({"status": "OK"}));
                })
                .await,
        );
    }
    let c = client(&server);
    let a = c.as_user(AccessToken::new(USER_TOKEN));
    let t = TokenId::new(tid.clone());
    a.revoke_token(&t).await.unwrap();
    a.disable_token(&t).await.unwrap();
    a.enable_token(&t).await.unwrap();
    for m in &mocks {
        m.assert_calls_async(1).await;
    }
}

#[tokio::test]
async fn token_ops_refuse_malformed_ids() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).json_body(json!({"status": "OK"}));
        })
        .await;
    let c = client(&server);
    let a = c.as_admin();
    for bad in [
        "",
        "..",
        "revoke",
        "../../users",
        "UPPER00000000000000000000A",
    ] {
        let t = TokenId::new(bad);
        assert!(
            matches!(a.token(&t).await, Err(Error::InvalidInput(_))),
            "{bad}"
        );
        assert!(
            matches!(a.revoke_token(&t).await, Err(Error::InvalidInput(_))),
            "{bad}"
        );
        assert!(
            matches!(a.disable_token(&t).await, Err(Error::InvalidInput(_))),
            "{bad}"
        );
        assert!(
            matches!(a.enable_token(&t).await, Err(Error::InvalidInput(_))),
            "{bad}"
        );
    }
    any.assert_calls_async(0).await;
}

/// `tokens(user)` puts the user id into the path without checking it. With
/// `..` the segment is dropped and the request becomes
/// `GET /api/v4/users/tokens`: EVERY token on the server, listed with the
/// admin token (and a caller revoking "this user's" orphans would revoke all
/// of them).
#[tokio::test]
async fn tokens_listing_refuses_malformed_user_ids() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).json_body(json!([]));
        })
        .await;
    let c = client(&server);
    for bad in ["..", ".", "", "../x", "NOT-AN-ID"] {
        let items: Vec<_> = c.as_admin().tokens(&UserId::new(bad), 60).collect().await;
        assert_eq!(items.len(), 1, "{bad:?}: one error expected");
        assert!(matches!(items[0], Err(Error::InvalidInput(_))), "{bad:?}");
    }
    any.assert_calls_async(0).await;
}

#[tokio::test]
async fn tokens_listing_pages_until_a_short_page() {
    let server = MockServer::start_async().await;
    let uid = id("owner");
    let mut mocks = Vec::new();
    for (page, n) in [(0usize, 200usize), (1, 200), (2, 13)] {
        let body = json!(
            (0..n)
                .map(|i| json!({
                    "id": id(&format!("t{page}x{i}")),
                    "user_id": uid,
                    "description": format!("d{page}-{i}"),
                    "is_active": true
                }))
                .collect::<Vec<_>>()
        );
        mocks.push(
            server
                .mock_async(|when, then| {
                    when.method(GET)
                        .path(format!("/api/v4/users/{uid}/tokens"))
                        .query_param("page", page.to_string())
                        .query_param("per_page", "200")
                        .and(admin_auth);
                    then.status(200).json_body(body);
                })
                .await,
        );
    }
    let other = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(500);
        })
        .await;
    let toks: Vec<_> = client(&server)
        .as_admin()
        .tokens(&UserId::new(uid.clone()), 1000)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(toks.len(), 413);
    assert_eq!(toks[0].description, "d0-0");
    assert_eq!(toks[412].description, "d2-12");
    assert!(toks.iter().all(|t| t.user_id.as_str() == uid));
    for m in &mocks {
        m.assert_calls_async(1).await;
    }
    other.assert_calls_async(0).await;
}

#[tokio::test]
async fn tokens_listing_as_user_with_own_token() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET)
                .path("/api/v4/users/me/tokens")
                .query_param("page", "0")
                .query_param("per_page", "60")
                .and(user_auth);
            then.status(200)
                .json_body(json!([{"id": id("t1"), "user_id": id("me")}]));
        })
        .await;
    let toks: Vec<_> = client(&server)
        .as_user(AccessToken::new(USER_TOKEN))
        .tokens(&UserId::new("me"), 60)
        .collect()
        .await;
    assert_eq!(toks.len(), 1);
    let t = toks[0].as_ref().unwrap();
    assert_eq!(t.description, "");
    assert!(t.is_active);
    m.assert_calls_async(1).await;
}
