//! How `MattermostClient` turns failures into typed errors: the failure table
//! of `mattermost-api.md`, non-JSON and malformed bodies, oversized bodies,
//! transport failures and invalid configuration. Retries are off here (see
//! `client_retries.rs`).

mod common;

use std::time::{Duration, Instant};

use common::*;
use futures::StreamExt;
use httpmock::prelude::*;
use mattermost_tokens::models::{CreateToken, CreateUser};
use mattermost_tokens::{
    AccessToken, ApiError, Error, MattermostClient, RetryPolicy, TokenId, UserId,
};
use serde_json::json;

fn desc() -> CreateToken {
    CreateToken {
        description: "mattermost-tokens".into(),
        expires_at: None,
    }
}

/// `create_token` for `uid` answered with `status` and Mattermost's error body.
async fn create_token_fails(status: u16, err_id: &str) -> Error {
    let server = MockServer::start_async().await;
    let uid = id("owner");
    let m = server
        .mock_async(|when, then| {
            when.method(POST)
                .path(format!("/api/v4/users/{uid}/tokens"));
            then.status(status)
                .header("X-Request-Id", "header-request-id")
                .json_body(app_error(err_id, "the message", status, "body-request-id"));
        })
        .await;
    let e = client(&server)
        .as_admin()
        .create_token(&UserId::new(uid.clone()), &desc())
        .await
        .unwrap_err();
    m.assert_calls_async(1).await;
    let api = e
        .api_error()
        .unwrap_or_else(|| panic!("no ApiError in {e:?}"));
    assert_eq!(api.status, status);
    assert_eq!(api.id, err_id);
    // A `/tokens` error keeps its id but never quotes the body's message.
    assert!(!api.message.contains("the message"), "{}", api.message);
    assert!(!e.to_string().contains("the message"), "{e}");
    assert_eq!(api.request_id.as_deref(), Some("body-request-id"));
    assert_eq!(api.method, "POST");
    assert!(
        api.url.ends_with(&format!("/api/v4/users/{uid}/tokens")),
        "{}",
        api.url
    );
    assert_eq!(e.status(), Some(status));
    e
}

#[tokio::test]
async fn create_token_403_is_permission_denied() {
    let e = create_token_fails(403, "api.context.permissions.app_error").await;
    assert!(matches!(e, Error::PermissionDenied(_)), "{e:?}");
    assert!(e.to_string().contains("permission denied"), "{e}");
}

#[tokio::test]
async fn create_token_501_is_tokens_disabled() {
    let e = create_token_fails(501, "app.user_access_token.disabled").await;
    assert!(matches!(e, Error::TokensDisabled(_)), "{e:?}");
    assert!(e.to_string().contains("EnableUserAccessTokens"), "{e}");
}

#[tokio::test]
async fn status_decides_and_the_id_must_agree() {
    // A 501 is "tokens disabled" only when Mattermost's JSON says so; a 403
    // with the 501 id is still "permission denied".
    let e = create_token_fails(501, "app.user_access_token.disabled").await;
    assert!(matches!(e, Error::TokensDisabled(_)), "{e:?}");
    let e = create_token_fails(501, "api.some_feature.not_implemented").await;
    assert!(matches!(e, Error::Api(_)), "{e:?}");
    let e = create_token_fails(403, "app.user_access_token.disabled").await;
    assert!(matches!(e, Error::PermissionDenied(_)), "{e:?}");
}

#[tokio::test]
async fn a_404_or_501_that_is_not_mattermosts_json_is_a_bad_response() {
    for (status, body) in [
        (404, "<html><body><h1>404 Not Found</h1>nginx</body></html>"),
        (404, ""),
        (501, "<html><h1>501 Not Implemented</h1></html>"),
    ] {
        let server = MockServer::start_async().await;
        server
            .mock_async(|when, then| {
                when.any_request();
                then.status(status).body(body);
            })
            .await;
        let client = MattermostClient::builder(&server.base_url(), "admintoken")
            .retry_policy(mattermost_tokens::RetryPolicy::none())
            .build()
            .unwrap();
        let e = client
            .as_admin()
            .revoke_token(&TokenId::new("t".repeat(26)))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::BadResponse { .. }), "{status}: {e:?}");
        assert!(!e.is_not_found(), "{status}");
    }
    // Mattermost's answer for a route it does not have is not "not found".
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.any_request();
            then.status(404).json_body(serde_json::json!({
                "id": "api.context.404.app_error", "message": "Sorry, we could not find the page.",
                "detailed_error": "", "request_id": "r", "status_code": 404
            }));
        })
        .await;
    let client = MattermostClient::new(&server.base_url(), "admintoken").unwrap();
    let e = client
        .as_admin()
        .revoke_token(&TokenId::new("t".repeat(26)))
        .await
        .unwrap_err();
    assert!(!e.is_not_found(), "{e:?}");
}

#[tokio::test]
async fn create_token_400_invalid_url_param_is_api_error() {
    let e = create_token_fails(400, "api.context.invalid_url_param.app_error").await;
    assert!(matches!(e, Error::Api(_)), "{e:?}");
    assert!(!e.is_not_found());
    assert!(
        e.to_string()
            .contains("api.context.invalid_url_param.app_error")
    );
}

#[tokio::test]
async fn create_token_404_is_not_found() {
    let e = create_token_fails(404, "app.user.missing_account.const").await;
    assert!(matches!(e, Error::NotFound(_)), "{e:?}");
    assert!(e.is_not_found());
}

#[tokio::test]
async fn user_token_401_is_unauthorized() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me").and(user_auth);
            then.status(401).json_body(app_error(
                "api.context.session_expired.app_error",
                "Invalid or expired session, please login again.",
                401,
                "",
            ));
        })
        .await;
    let e = client(&server)
        .as_user(AccessToken::new(USER_TOKEN))
        .me()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Unauthorized(_)), "{e:?}");
    let api = e.api_error().unwrap();
    assert_eq!(api.id, "api.context.session_expired.app_error");
    // An empty request_id in the body and no header: none.
    assert_eq!(api.request_id, None);
}

async fn create_user_fails(err_id: &str) -> Error {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users");
            then.status(400)
                .json_body(app_error(err_id, "An account with that exists.", 400, "r"));
        })
        .await;
    client(&server)
        .as_admin()
        .create_user(&CreateUser {
            email: "a@example.com".into(),
            username: "ada".into(),
            ..CreateUser::default()
        })
        .await
        .unwrap_err()
}

#[tokio::test]
async fn duplicate_email_and_username_are_already_exists() {
    let e = create_user_fails("app.user.save.email_exists.app_error").await;
    assert!(matches!(e, Error::AlreadyExists(_)), "{e:?}");
    assert!(e.is_email_exists());
    assert!(!e.is_username_exists());
    let e = create_user_fails("app.user.save.username_exists.app_error").await;
    assert!(matches!(e, Error::AlreadyExists(_)), "{e:?}");
    assert!(e.is_username_exists());
    assert!(!e.is_email_exists());
    // Another 400 is not "exists".
    let e = create_user_fails("model.user.is_valid.email.app_error").await;
    assert!(matches!(e, Error::Api(_)), "{e:?}");
    assert!(!e.is_email_exists() && !e.is_username_exists());
}

#[tokio::test]
async fn plain_text_429_is_rate_limited_with_the_wait() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me");
            then.status(429)
                .header("Content-Type", "text/plain; charset=utf-8")
                .header("Retry-After", "7")
                .header("X-RateLimit-Limit", "101")
                .header("X-RateLimit-Remaining", "0")
                .header("X-RateLimit-Reset", "7")
                .header("X-Request-Id", "rq429")
                .body("limit exceeded\n");
        })
        .await;
    let c = client(&server);
    let started = Instant::now();
    let e = c.as_admin().me().await.unwrap_err();
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no wait without retries"
    );
    m.assert_calls_async(1).await;
    match &e {
        Error::RateLimited { retry_after, error } => {
            assert_eq!(*retry_after, Duration::from_secs(7));
            assert_eq!(error.status, 429);
            assert_eq!(error.id, "");
            assert_eq!(error.message, "limit exceeded");
            assert_eq!(error.request_id.as_deref(), Some("rq429"));
        }
        other => panic!("expected RateLimited, got {other:?}"),
    }
    let rl = c.rate_limit().unwrap();
    assert_eq!(rl.remaining, 0);
}

#[tokio::test]
async fn rate_limited_without_retry_after_uses_reset() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me");
            then.status(429)
                .header("X-RateLimit-Limit", "101")
                .header("X-RateLimit-Remaining", "0")
                .header("X-RateLimit-Reset", "9")
                .body("limit exceeded\n");
        })
        .await;
    let e = client(&server).as_admin().me().await.unwrap_err();
    assert!(
        matches!(e, Error::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(9)),
        "{e:?}"
    );
}

#[tokio::test]
async fn request_id_falls_back_to_the_header_and_extra_fields_are_fine() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{}", id("x")));
            // No request_id, no detailed_error, unknown fields.
            then.status(500)
                .header("X-Request-Id", "from-header")
                .json_body(json!({
                    "id": "app.user.get.app_error",
                    "message": "boom",
                    "status_code": 500,
                    "is_oauth": false,
                    "params": {"a": 1}
                }));
        })
        .await;
    let e = client(&server)
        .as_admin()
        .user(&UserId::new(id("x")))
        .await
        .unwrap_err();
    let Error::Api(api) = &e else {
        panic!("expected Api, got {e:?}")
    };
    assert_eq!(api.status, 500);
    assert_eq!(api.id, "app.user.get.app_error");
    assert_eq!(api.message, "boom");
    assert_eq!(api.detailed_error, "");
    assert_eq!(api.request_id.as_deref(), Some("from-header"));
    assert!(e.to_string().contains("from-header"), "{e}");
}

#[tokio::test]
async fn detailed_error_is_kept() {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me");
            then.status(400).json_body(json!({
                "id": "api.context.invalid_param.app_error",
                "message": "bad",
                "detailed_error": "dev mode detail",
                "request_id": "r1",
                "status_code": 400
            }));
        })
        .await;
    let e = client(&server).as_admin().me().await.unwrap_err();
    let api: &ApiError = e.api_error().unwrap();
    assert_eq!(api.detailed_error, "dev mode detail");
    assert_eq!(api.request_id.as_deref(), Some("r1"));
}

// ---------------------------------------------------------------------------
// Bodies that are not what the API promises.

fn assert_bad_response(e: &Error, want_status: u16) -> String {
    match e {
        Error::BadResponse {
            status,
            snippet,
            reason,
            ..
        } => {
            assert_eq!(*status, want_status, "{e:?}");
            assert!(!reason.is_empty());
            assert!(
                snippet.chars().count() <= 201,
                "snippet too long: {} chars",
                snippet.chars().count()
            );
            snippet.clone()
        }
        other => panic!("expected BadResponse, got {other:?}"),
    }
}

async fn me_answered(status: u16, content_type: &str, body: Vec<u8>) -> Error {
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me");
            then.status(status)
                .header("Content-Type", content_type)
                .body(body);
        })
        .await;
    client(&server).as_admin().me().await.unwrap_err()
}

#[tokio::test]
async fn html_502_from_a_proxy_is_bad_response_with_a_bounded_snippet() {
    let page = format!(
        "<html><head><title>502 Bad Gateway</title></head><body><center><h1>502 Bad Gateway</h1></center>{}</body></html>",
        "<hr><center>nginx</center>".repeat(40)
    );
    let e = me_answered(502, "text/html", page.into_bytes()).await;
    let snip = assert_bad_response(&e, 502);
    assert!(
        snip.starts_with("<html><head><title>502 Bad Gateway"),
        "{snip}"
    );
    assert!(snip.ends_with('…'), "{snip}");
    assert_eq!(e.status(), Some(502));
    assert!(e.to_string().contains("502"), "{e}");
    // The Display is bounded too.
    assert!(e.to_string().len() < 1000, "{e}");
}

#[tokio::test]
async fn short_html_snippet_is_kept_whole() {
    let e = me_answered(503, "text/html", b"<h1>down</h1>".to_vec()).await;
    assert_eq!(assert_bad_response(&e, 503), "<h1>down</h1>");
}

#[tokio::test]
async fn snippet_cuts_on_char_boundaries_and_survives_invalid_utf8() {
    let e = me_answered(502, "text/html", "é".repeat(300).into_bytes()).await;
    let snip = assert_bad_response(&e, 502);
    assert_eq!(snip.chars().count(), 201);
    assert!(snip.starts_with("éé"));
    let e = me_answered(
        502,
        "application/octet-stream",
        vec![0xff, 0xfe, 0x00, 0x80],
    )
    .await;
    assert_bad_response(&e, 502);
}

#[tokio::test]
async fn error_status_with_empty_body_is_bad_response() {
    let e = me_answered(500, "text/plain", Vec::new()).await;
    assert_eq!(assert_bad_response(&e, 500), "");
}

#[tokio::test]
async fn empty_200_where_json_is_expected() {
    let e = me_answered(200, "application/json", Vec::new()).await;
    assert_bad_response(&e, 200);
    let Error::BadResponse { reason, .. } = &e else {
        unreachable!()
    };
    assert!(reason.contains("empty"), "{reason}");
}

#[tokio::test]
async fn truncated_json_is_bad_response() {
    let e = me_answered(
        200,
        "application/json",
        br#"{"id": "abc", "userna"#.to_vec(),
    )
    .await;
    let snip = assert_bad_response(&e, 200);
    assert!(snip.starts_with(r#"{"id": "abc""#), "{snip}");
}

#[tokio::test]
async fn wrong_shapes_are_bad_response() {
    let e = me_answered(200, "application/json", br#"{"id": 5}"#.to_vec()).await;
    assert_bad_response(&e, 200);
    let e = me_answered(200, "application/json", br#"[{"id": "x"}]"#.to_vec()).await;
    assert_bad_response(&e, 200);
    let e = me_answered(200, "application/json", b"null".to_vec()).await;
    assert_bad_response(&e, 200);

    // An object where an array is expected.
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.method(POST).path("/api/v4/users/ids");
            then.status(200)
                .json_body(user_json(&id("a"), "a", "a@example.com"));
        })
        .await;
    let e = client(&server)
        .as_admin()
        .users_by_ids(&[UserId::new(id("a"))])
        .await
        .unwrap_err();
    assert_bad_response(&e, 200);

    // A channel with an unknown type.
    let server = MockServer::start_async().await;
    server
        .mock_async(|when, then| {
            when.path_prefix("/api/v4/teams/");
            then.status(200)
                .json_body(json!({"id": id("c"), "type": "Z"}));
        })
        .await;
    let e = client(&server)
        .as_admin()
        .channel_by_name(&mattermost_tokens::TeamId::new(id("t")), "x")
        .await
        .unwrap_err();
    assert_bad_response(&e, 200);
}

#[tokio::test]
async fn body_over_the_size_limit_is_refused() {
    let server = MockServer::start_async().await;
    let mut big = user_json(&id("me"), "me", "me@example.com");
    big["position"] = json!("x".repeat(5000));
    server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me");
            then.status(200).json_body(big);
        })
        .await;
    server
        .mock_async(|when, then| {
            when.method(GET).path(format!("/api/v4/users/{}", id("x")));
            then.status(500).body("e".repeat(5000));
        })
        .await;
    let small = MattermostClient::builder(&server.base_url(), ADMIN_TOKEN)
        .retry_policy(RetryPolicy::none())
        .max_response_bytes(1024)
        .build()
        .unwrap();
    let e = small.as_admin().me().await.unwrap_err();
    assert_bad_response(&e, 200);
    assert!(e.to_string().contains("limit"), "{e}");
    let e = small
        .as_admin()
        .user(&UserId::new(id("x")))
        .await
        .unwrap_err();
    assert_bad_response(&e, 500);
    // The default limit takes the same answer.
    client(&server).as_admin().me().await.unwrap();
}

#[tokio::test]
async fn chunked_body_over_the_size_limit_is_refused() {
    // No Content-Length: the limit must hold while reading.
    let chunk = vec![b' '; 600];
    let srv = Scripted::start(vec![Reply::Chunked {
        status: 200,
        chunks: vec![chunk.clone(), chunk.clone(), chunk.clone(), chunk],
    }])
    .await;
    let c = MattermostClient::builder(&srv.url(), ADMIN_TOKEN)
        .retry_policy(RetryPolicy::none())
        .max_response_bytes(1024)
        .build()
        .unwrap();
    let e = c.as_admin().me().await.unwrap_err();
    assert_bad_response(&e, 200);
    assert_eq!(srv.hits(), 1);
}

// ---------------------------------------------------------------------------
// Transport failures.

#[tokio::test]
async fn unreachable_server_fails_fast() {
    let addr = closed_addr();
    let c = client_for(&format!("http://{addr}"), RetryPolicy::none());
    let started = Instant::now();
    let e = c.as_admin().me().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    match &e {
        Error::Unreachable { method, url, .. } => {
            assert_eq!(method, "GET");
            assert_eq!(url, &format!("http://{addr}/api/v4/users/me"));
        }
        other => panic!("expected Unreachable, got {other:?}"),
    }
    assert!(e.is_transport());
    assert_eq!(e.status(), None);
    // A paged call: no query string in the error.
    let items: Vec<_> = c.as_admin().users(10).collect().await;
    assert_eq!(items.len(), 1);
    let e = items[0].as_ref().unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert!(!e.to_string().contains('?'), "{e}");
    assert!(!format!("{e:?}").contains("page="), "{e:?}");
    // ping too.
    assert!(matches!(c.ping().await, Err(Error::Unreachable { .. })));
}

#[tokio::test]
async fn silent_server_times_out() {
    let srv = Scripted::start(vec![Reply::Hang]).await;
    let c = MattermostClient::builder(&srv.url(), ADMIN_TOKEN)
        .retry_policy(RetryPolicy::none())
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let started = Instant::now();
    let e = c.as_admin().me().await.unwrap_err();
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(5),
        "{took:?}"
    );
    match &e {
        Error::Timeout { method, url } => {
            assert_eq!(method, "GET");
            assert!(url.ends_with("/api/v4/users/me"), "{url}");
        }
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(e.is_transport());
    assert_eq!(srv.hits(), 1);
}

#[tokio::test]
async fn connection_closed_without_answer_is_transport_error() {
    let srv = Scripted::start(vec![Reply::Close]).await;
    let c = client_for(&srv.url(), fast_retry(3));
    let e = c
        .as_admin()
        .create_user(&CreateUser {
            email: "a@example.com".into(),
            username: "ada".into(),
            ..CreateUser::default()
        })
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Transport { .. }), "{e:?}");
    assert!(e.is_transport());
    // A POST that may have reached the server is not repeated.
    assert_eq!(srv.hits(), 1);
}

// ---------------------------------------------------------------------------
// Invalid configuration.

#[test]
fn bad_urls_are_invalid_config() {
    for url in [
        "",
        "   ",
        "chat.example.com",
        "ftp://chat.example.com",
        "file:///etc/passwd",
        "https://chat.example.com/?a=b",
        "https://chat.example.com/#frag",
        "https://user:pass@chat.example.com/",
        "https://user@chat.example.com/",
        "http://",
    ] {
        let r = MattermostClient::new(url, ADMIN_TOKEN);
        assert!(matches!(r, Err(Error::InvalidConfig(_))), "{url:?}: {r:?}");
    }
}

#[test]
fn good_urls_are_accepted() {
    for (url, want) in [
        ("https://chat.example.com", "https://chat.example.com/"),
        (
            "https://chat.example.com/api/v4",
            "https://chat.example.com/",
        ),
        (
            "https://chat.example.com/api/v4/",
            "https://chat.example.com/",
        ),
        ("http://127.0.0.1:8065/", "http://127.0.0.1:8065/"),
        (
            "https://example.com/mattermost",
            "https://example.com/mattermost/",
        ),
    ] {
        let c = MattermostClient::new(url, ADMIN_TOKEN).unwrap();
        assert_eq!(c.server_url().as_str(), want, "{url}");
    }
}

#[test]
fn bad_admin_tokens_are_invalid_config() {
    for tok in ["", "   ", "abc\ndef", "abc\rdef"] {
        let r = MattermostClient::new("https://chat.example.com", tok);
        match r {
            Err(Error::InvalidConfig(msg)) => {
                if !tok.trim().is_empty() {
                    assert!(!msg.contains(tok), "{msg}");
                }
            }
            other => panic!("{tok:?}: expected InvalidConfig, got {other:?}"),
        }
    }
}

#[test]
fn bad_user_agent_is_invalid_config() {
    let r = MattermostClient::builder("https://chat.example.com", ADMIN_TOKEN)
        .user_agent("bad\nagent")
        .build();
    assert!(matches!(r, Err(Error::InvalidConfig(_))), "{r:?}");
}

#[tokio::test]
async fn bad_user_token_is_invalid_input_without_a_request() {
    let server = MockServer::start_async().await;
    let any = server
        .mock_async(|when, then| {
            when.any_request();
            then.status(200).json_body(json!({}));
        })
        .await;
    let e = client(&server)
        .as_user(AccessToken::new("bad\ntoken"))
        .me()
        .await
        .unwrap_err();
    assert!(matches!(e, Error::InvalidInput(_)), "{e:?}");
    assert!(!e.to_string().contains("bad\ntoken"));
    any.assert_calls_async(0).await;
}
