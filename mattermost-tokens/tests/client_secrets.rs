//! No token (admin, user or freshly minted), no password and no `/tokens`
//! response body shows in any `Debug`/`Display`, any error, or any `tracing`
//! output of the client.

mod common;

use std::time::Duration;

use common::*;
use futures::StreamExt;
use httpmock::prelude::*;
use mattermost_tokens::models::{CreateToken, CreateUser, CreatedToken};
use mattermost_tokens::{
    AccessToken, ChannelId, Error, Identity, MattermostClient, NewToken, RetryPolicy, TokenId,
    TokenRecord, UserId,
};
use secrecy::SecretString;
use serde_json::json;

const PASSWORD: &str = "pa55word-very-secret-9f3k";

#[track_caller]
fn assert_clean(what: &str, s: &str) {
    assert_no_secret(what, s);
    assert!(!s.contains(PASSWORD), "{what} shows the password: {s}");
}

#[track_caller]
fn assert_error_clean(e: &Error) {
    assert_clean("Error Display", &e.to_string());
    assert_clean("Error Debug", &format!("{e:?}"));
    assert_clean("Error alternate Debug", &format!("{e:#?}"));
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        assert_clean("Error source", &s.to_string());
        assert_clean("Error source Debug", &format!("{s:?}"));
        src = s.source();
    }
}

#[test]
fn public_types_do_not_format_secrets() {
    let tok = AccessToken::new(MINTED_TOKEN);
    assert_clean("AccessToken", &format!("{tok:?}"));

    let user = Identity::User(AccessToken::new(USER_TOKEN));
    assert_clean("Identity", &format!("{user:?} {:?}", Identity::Admin));

    let builder = MattermostClient::builder("https://chat.example.com", ADMIN_TOKEN)
        .retry_policy(RetryPolicy::none());
    assert_clean("ClientBuilder", &format!("{builder:?} {builder:#?}"));
    let client = builder.build().unwrap();
    assert_clean("MattermostClient", &format!("{client:?} {client:#?}"));
    let acting = client.as_user(AccessToken::new(USER_TOKEN));
    assert_clean("Acting", &format!("{acting:?} {:?}", acting.identity()));
    assert_clean("Acting admin", &format!("{:?}", client.as_admin()));

    let created: CreatedToken = serde_json::from_value(json!({
        "id": id("tok"),
        "token": MINTED_TOKEN,
        "user_id": id("owner"),
        "description": "d"
    }))
    .unwrap();
    assert_eq!(created.token.expose_secret(), MINTED_TOKEN);
    assert_clean("CreatedToken", &format!("{created:?} {created:#?}"));

    let cu = CreateUser {
        email: "a@example.com".into(),
        username: "ada".into(),
        password: Some(SecretString::from(PASSWORD)),
        ..CreateUser::default()
    };
    assert_clean("CreateUser", &format!("{cu:?} {cu:#?}"));
    // ... while the wire form does carry it.
    assert!(serde_json::to_string(&cu).unwrap().contains(PASSWORD));

    let rec = TokenRecord {
        mattermost_user_id: Some(UserId::new(id("owner"))),
        token: Some(AccessToken::new(MINTED_TOKEN)),
        token_id: Some(TokenId::new(id("tok"))),
        token_expires_at: Some(1_700_000_000_000),
    };
    assert_clean("TokenRecord", &format!("{rec:?} {rec:#?}"));

    let nt = NewToken {
        mattermost_user_id: UserId::new(id("owner")),
        token: AccessToken::new(MINTED_TOKEN),
        token_id: TokenId::new(id("tok")),
        expires_at: None,
    };
    assert_clean("NewToken", &format!("{nt:?} {nt:#?}"));
}

fn mint() -> CreateToken {
    CreateToken {
        description: "mattermost-tokens".into(),
        expires_at: None,
    }
}

/// `create_token` answered by `status` with `body`.
async fn create_token_error(status: u16, content_type: &str, body: String) -> Error {
    let server = MockServer::start_async().await;
    let uid = id("owner");
    server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/users/{uid}/tokens"));
            then.status(status)
                .header("Content-Type", content_type)
                .header("Retry-After", "3")
                .body(body);
        })
        .await;
    client(&server)
        .as_admin()
        .create_token(&UserId::new(uid), &mint())
        .await
        .unwrap_err()
}

#[tokio::test]
async fn create_token_errors_hide_the_body() {
    let cases: Vec<(u16, &str, String)> = vec![
        // 200 with a wrong shape: serde would quote the value.
        (
            200,
            "application/json",
            json!({"id": id("tok"), "token": MINTED_TOKEN, "user_id": id("owner"), "is_active": MINTED_TOKEN}).to_string(),
        ),
        (
            200,
            "application/json",
            json!({"id": 5, "token": MINTED_TOKEN}).to_string(),
        ),
        (
            200,
            "application/json",
            json!([{"id": id("tok"), "token": MINTED_TOKEN}]).to_string(),
        ),
        (
            201,
            "application/json",
            json!({"token": MINTED_TOKEN}).to_string(),
        ),
        (
            200,
            "application/json",
            format!(r#"{{"id": "{}", "token": "{MINTED_TOKEN}"#, id("tok")),
        ),
        (
            200,
            "application/json",
            format!(r#"{{"id": "{}", "token": {MINTED_TOKEN}}}"#, id("tok")),
        ),
        // Non-JSON error bodies holding the token.
        (
            500,
            "text/html",
            format!("<html>internal error creating {MINTED_TOKEN}</html>"),
        ),
        (502, "text/plain", MINTED_TOKEN.to_owned()),
        // 429 on /tokens.
        (429, "text/plain", "limit exceeded\n".to_owned()),
        (429, "text/plain", format!("limit exceeded {MINTED_TOKEN}\n")),
    ];
    for (status, ct, body) in cases {
        let e = create_token_error(status, ct, body.clone()).await;
        assert_eq!(e.status(), Some(status), "{body}");
        if status == 429 {
            assert!(
                matches!(e, Error::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(3)),
                "{e:?}"
            );
        } else {
            assert!(matches!(e, Error::BadResponse { .. }), "{body}: {e:?}");
        }
        assert_error_clean(&e);
    }
}

/// A JSON error body whose `message`/`detailed_error` carries the value (a
/// developer-mode database error quoting the row, a proxy echoing the
/// request) is part of "the body of a /tokens call".
#[tokio::test]
async fn create_token_json_error_body_is_not_shown() {
    for status in [400u16, 500] {
        let body = json!({
            "id": "app.user_access_token.save.app_error",
            "message": format!("could not save token {MINTED_TOKEN}"),
            "detailed_error": format!("duplicate key (token)=({MINTED_TOKEN})"),
            "request_id": "rq",
            "status_code": status
        })
        .to_string();
        let e = create_token_error(status, "application/json", body).await;
        // The status and id stay usable.
        assert_eq!(e.status(), Some(status));
        assert_eq!(
            e.api_error().map(|a| a.id.as_str()),
            Some("app.user_access_token.save.app_error")
        );
        assert_error_clean(&e);
    }
}

#[tokio::test]
async fn create_token_table_errors_are_clean() {
    for (status, err_id) in [
        (403, "api.context.permissions.app_error"),
        (501, "app.user_access_token.disabled"),
        (400, "api.context.invalid_url_param.app_error"),
        (404, "app.user.missing_account.const"),
        (401, "api.context.session_expired.app_error"),
    ] {
        let e = create_token_error(
            status,
            "application/json",
            app_error(err_id, "msg", status, "rq").to_string(),
        )
        .await;
        assert_eq!(e.api_error().unwrap().id, err_id);
        assert_error_clean(&e);
    }
}

#[tokio::test]
async fn oversized_token_answer_is_clean() {
    let server = MockServer::start_async().await;
    let body = json!({"id": id("tok"), "token": MINTED_TOKEN, "user_id": id("owner"), "description": "x".repeat(4000)});
    server
        .mock_async(|when, then| {
            when.method(POST).path_suffix("/tokens");
            then.status(200).json_body(body);
        })
        .await;
    let c = MattermostClient::builder(&server.base_url(), ADMIN_TOKEN)
        .retry_policy(RetryPolicy::none())
        .max_response_bytes(512)
        .build()
        .unwrap();
    let e = c
        .as_admin()
        .create_token(&UserId::new(id("owner")), &mint())
        .await
        .unwrap_err();
    assert!(matches!(e, Error::BadResponse { .. }), "{e:?}");
    assert_error_clean(&e);
}

#[tokio::test]
async fn get_token_errors_hide_the_body() {
    let server = MockServer::start_async().await;
    let tid = id("tok");
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/tokens/{tid}"));
            then.status(200).json_body(json!({
                "id": tid, "token": MINTED_TOKEN, "user_id": 5
            }));
        })
        .await;
    let e = client(&server)
        .as_admin()
        .token(&TokenId::new(tid))
        .await
        .unwrap_err();
    assert!(matches!(e, Error::BadResponse { .. }), "{e:?}");
    assert_error_clean(&e);
}

#[tokio::test]
async fn revoke_errors_hide_the_body() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users/tokens/revoke");
            then.status(502)
                .body(format!("<html>bad gateway {MINTED_TOKEN}</html>"));
        })
        .await;
    let e = client(&server)
        .as_admin()
        .revoke_token(&TokenId::new(id("tok")))
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(502));
    assert_error_clean(&e);
}

/// Listing a user's tokens is a `/tokens` call too: a malformed answer must
/// not be quoted either, and the error URL has no query string.
#[tokio::test]
async fn token_listing_errors_hide_the_body() {
    let server = MockServer::start_async().await;
    let uid = id("owner");
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{uid}/tokens"));
            then.status(200)
                .json_body(json!([{"id": id("tok"), "token": MINTED_TOKEN, "user_id": uid, "is_active": MINTED_TOKEN}]));
        })
        .await;
    let items: Vec<_> = client(&server)
        .as_admin()
        .tokens(&UserId::new(uid), 60)
        .collect()
        .await;
    assert_eq!(items.len(), 1);
    let e = items[0].as_ref().unwrap_err();
    assert!(matches!(e, Error::BadResponse { .. }), "{e:?}");
    assert_error_clean(e);
}

#[tokio::test]
async fn token_listing_error_urls_have_no_query() {
    let server = MockServer::start_async().await;
    let uid = id("owner");
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{uid}/tokens"));
            then.status(403).json_body(app_error(
                "api.context.permissions.app_error",
                "no",
                403,
                "r",
            ));
        })
        .await;
    let items: Vec<_> = client(&server)
        .as_admin()
        .tokens(&UserId::new(uid.clone()), 60)
        .collect()
        .await;
    let e = items[0].as_ref().unwrap_err();
    assert!(matches!(e, Error::PermissionDenied(_)), "{e:?}");
    let api = e.api_error().unwrap();
    assert!(
        api.url.ends_with(&format!("/api/v4/users/{uid}/tokens")),
        "{}",
        api.url
    );
    assert!(!api.url.contains('?'));
    assert!(!e.to_string().contains("page="), "{e}");
    assert!(!format!("{e:?}").contains("per_page"), "{e:?}");
}

/// A full exchange (create user, mint a token, use it, a rate-limited retry,
/// a failed call) at TRACE level: the log is not empty, and holds no token.
#[tokio::test]
async fn trace_logs_hold_no_secret() {
    let server = MockServer::start_async().await;
    let uid = id("ada");
    let cid = id("chan");
    let create_user = server
        .mock_async(|when, then| {
            when.method(POST)
                .path("/api/v4/users")
                .and(admin_auth)
                .json_body_includes(format!(r#"{{"password": "{PASSWORD}"}}"#));
            then.status(201)
                .header("X-Version-Id", "10.6.0.1.abc.true")
                .header("X-Request-Id", "rq-create-user")
                .json_body(user_json(&uid, "ada", "ada@example.com"));
        })
        .await;
    let limited = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/users/{uid}/tokens"));
            then.status(429)
                .header("Retry-After", "1")
                .body("limit exceeded\n");
        })
        .await;
    limited.up_to_n_times_async(1).await;
    let mint_mock = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/users/{uid}/tokens"))
                .and(admin_auth)
                .json_body(json!({"description": "mattermost-tokens"}));
            then.status(200).json_body(json!({
                "id": id("tok"),
                "token": MINTED_TOKEN,
                "user_id": uid,
                "description": "mattermost-tokens",
                "is_active": true
            }));
        })
        .await;
    let join = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/channels/{cid}/members"))
                .header("authorization", format!("Bearer {MINTED_TOKEN}"));
            then.status(201)
                .json_body(json!({"channel_id": cid, "user_id": uid}));
        })
        .await;
    let fail = server
        .mock_async(|when, then| {
            when.method(GET)
                .path(format!("/api/v4/users/tokens/{}", id("gone")));
            then.status(500)
                .body(format!("<html>{MINTED_TOKEN} {ADMIN_TOKEN}</html>"));
        })
        .await;

    let (logs, guard) = capture_logs();
    let c = client_for(
        &server.base_url(),
        RetryPolicy {
            max_attempts: 2,
            base_delay: Duration::from_millis(5),
            jitter: false,
            ..RetryPolicy::default()
        },
    );
    tracing::info!("test exchange starts");
    let user = c
        .as_admin()
        .create_user(&CreateUser {
            email: "ada@example.com".into(),
            username: "ada".into(),
            password: Some(SecretString::from(PASSWORD)),
            email_verified: true,
            ..CreateUser::default()
        })
        .await
        .unwrap();
    let minted = c.as_admin().create_token(&user.id, &mint()).await.unwrap();
    assert_eq!(minted.token.expose_secret(), MINTED_TOKEN);
    c.as_user(minted.token.clone())
        .add_channel_member(&ChannelId::new(cid.clone()), &user.id)
        .await
        .unwrap();
    let e = c
        .as_admin()
        .token(&TokenId::new(id("gone")))
        .await
        .unwrap_err();
    tracing::debug!(error = %e, debug = ?e, "logged by the host app");
    drop(guard);

    create_user.assert_calls_async(1).await;
    limited.assert_calls_async(1).await;
    mint_mock.assert_calls_async(1).await;
    join.assert_calls_async(1).await;
    fail.assert_calls_async(2).await;

    let log = logs.contents();
    assert!(log.contains("test exchange starts"), "{log}");
    // The client itself logged the requests (its events carry its target).
    let client_lines: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("mattermost_tokens") && l.contains("/api/v4/"))
        .collect();
    assert!(client_lines.len() >= 6, "client logged too little: {log}");
    assert!(
        client_lines.iter().any(|l| l.contains("/tokens")),
        "no /tokens call in the log: {log}"
    );
    if std::env::var_os("SHOW_LOG").is_some() {
        eprintln!("{log}");
    }
    assert_clean("trace log", &log);
}
