//! The retry policy of `MattermostClient`: 429 on any method after the wait,
//! 5xx and broken connections only for requests safe to repeat, connection
//! refused on any method, never 401/403/501, bounded attempts and wait.

mod common;

use std::time::{Duration, Instant};

use common::*;
use httpmock::prelude::*;
use mattermost_tokens::models::{CreateToken, CreateUser, UserPatch};
use mattermost_tokens::{
    AccessToken, ChannelId, Error, MattermostClient, RetryPolicy, TeamId, TokenId, UserId,
};
use serde_json::json;

fn new_user() -> CreateUser {
    CreateUser {
        email: "ada@example.com".into(),
        username: "ada".into(),
        ..CreateUser::default()
    }
}

fn new_token() -> CreateToken {
    CreateToken {
        description: "mattermost-tokens".into(),
        expires_at: None,
    }
}

fn limited() -> Reply {
    Reply::text(429, "limit exceeded\n")
        .header("Retry-After", "1")
        .header("X-RateLimit-Limit", "101")
        .header("X-RateLimit-Remaining", "0")
        .header("X-RateLimit-Reset", "1")
}

fn unavailable() -> Reply {
    Reply::json(
        503,
        &app_error("api.server.unavailable", "try later", 503, "r503"),
    )
}

fn me_ok() -> Reply {
    Reply::json(200, &user_json(&id("me"), "me", "me@example.com"))
}

fn created_token() -> Reply {
    Reply::json(
        200,
        &json!({"id": id("tok"), "token": MINTED_TOKEN, "user_id": id("owner")}),
    )
}

#[tokio::test]
async fn get_429_then_200_succeeds_after_the_wait() {
    let srv = Scripted::start(vec![limited(), me_ok()]).await;
    let c = client_for(&srv.url(), RetryPolicy::default());
    let started = Instant::now();
    let me = c.as_user(AccessToken::new(USER_TOKEN)).me().await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(950),
        "waited Retry-After"
    );
    assert_eq!(me.username, "me");
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/api/v4/users/me");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {USER_TOKEN}").as_str())
        );
    }
}

#[tokio::test]
async fn post_429_then_200_is_retried_too() {
    // A 429 means the server did nothing: safe to repeat even a mint.
    let srv = Scripted::start(vec![limited(), created_token()]).await;
    let c = client_for(&srv.url(), RetryPolicy::default());
    let t = c
        .as_admin()
        .create_token(&UserId::new(id("owner")), &new_token())
        .await
        .unwrap();
    assert_eq!(t.token.expose_secret(), MINTED_TOKEN);
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    assert_eq!(reqs[0].body, reqs[1].body);
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&reqs[1].body).unwrap(),
        json!({"description": "mattermost-tokens"})
    );
}

#[tokio::test]
async fn create_user_503_is_not_repeated() {
    let srv = Scripted::start(vec![
        unavailable(),
        Reply::json(201, &json!({"id": id("u")})),
    ])
    .await;
    let c = client_for(&srv.url(), fast_retry(4));
    let e = c.as_admin().create_user(&new_user()).await.unwrap_err();
    assert_eq!(e.status(), Some(503), "{e:?}");
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert_eq!(srv.hits(), 1);
}

#[tokio::test]
async fn create_token_5xx_is_not_repeated() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(POST).path_suffix("/tokens");
            then.status(502)
                .header("Content-Type", "text/html")
                .body("<html><body>502 Bad Gateway</body></html>");
        })
        .await;
    let c = client_for(&server.base_url(), fast_retry(4));
    let e = c
        .as_admin()
        .create_token(&UserId::new(id("owner")), &new_token())
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(502), "{e:?}");
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn get_503_then_200_succeeds() {
    let srv = Scripted::start(vec![
        Reply::text(503, "<html>Service Unavailable</html>").header("Content-Type", "text/html"),
        me_ok(),
    ])
    .await;
    let c = client_for(&srv.url(), fast_retry(3));
    assert_eq!(c.as_admin().me().await.unwrap().username, "me");
    assert_eq!(srv.hits(), 2);
}

#[tokio::test]
async fn get_always_503_stops_after_max_attempts() {
    for attempts in [1u32, 3, 5] {
        let server = MockServer::start_async().await;
        let m = server
            .mock_async(|when, then| {
                when.method(GET).path("/api/v4/users/me");
                then.status(503)
                    .json_body(app_error("api.server.unavailable", "down", 503, "r"));
            })
            .await;
        let c = client_for(&server.base_url(), fast_retry(attempts));
        let e = c.as_admin().me().await.unwrap_err();
        assert!(matches!(e, Error::Api(ref a) if a.status == 503), "{e:?}");
        m.assert_calls_async(attempts as usize).await;
    }
}

#[tokio::test]
async fn default_policy_bounds_5xx_attempts() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me");
            then.status(500).body("oops");
        })
        .await;
    let c = client_for(&server.base_url(), RetryPolicy::default());
    let e = c.as_admin().me().await.unwrap_err();
    assert_eq!(e.status(), Some(500));
    m.assert_calls_async(RetryPolicy::default().max_attempts as usize)
        .await;
}

#[tokio::test]
async fn auth_and_disabled_errors_are_never_retried() {
    for status in [400u16, 401, 403, 404, 501] {
        let server = MockServer::start_async().await;
        let get = server
            .mock_async(|when, then| {
                when.method(GET).path("/api/v4/users/me");
                then.status(status)
                    .json_body(app_error("some.error", "no", status, "r"));
            })
            .await;
        let post = server
            .mock_async(|when, then| {
                when.method(POST).path_suffix("/tokens");
                then.status(status)
                    .json_body(app_error("some.error", "no", status, "r"));
            })
            .await;
        let c = client_for(&server.base_url(), fast_retry(4));
        let e = c.as_admin().me().await.unwrap_err();
        assert_eq!(e.status(), Some(status));
        let e = c
            .as_admin()
            .create_token(&UserId::new(id("owner")), &new_token())
            .await
            .unwrap_err();
        assert_eq!(e.status(), Some(status));
        get.assert_calls_async(1).await;
        post.assert_calls_async(1).await;
    }
}

#[tokio::test]
async fn retry_policy_none_returns_the_first_429() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me");
            then.status(429)
                .header("Retry-After", "1")
                .body("limit exceeded\n");
        })
        .await;
    let c = client_for(&server.base_url(), RetryPolicy::none());
    let started = Instant::now();
    let e = c.as_admin().me().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_millis(900));
    assert!(matches!(e, Error::RateLimited { .. }), "{e:?}");
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn rate_limited_attempts_are_bounded() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me");
            then.status(429)
                .header("Retry-After", "1")
                .body("limit exceeded\n");
        })
        .await;
    let policy = RetryPolicy {
        max_rate_limited_attempts: 2,
        ..RetryPolicy::default()
    };
    let c = client_for(&server.base_url(), policy);
    let e = c.as_admin().me().await.unwrap_err();
    assert!(
        matches!(e, Error::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(1)),
        "{e:?}"
    );
    m.assert_calls_async(2).await;
}

#[tokio::test]
async fn total_wait_is_capped() {
    let server = MockServer::start_async().await;
    let m = server
        .mock_async(|when, then| {
            when.method(GET).path("/api/v4/users/me");
            then.status(429)
                .header("Retry-After", "30")
                .body("limit exceeded\n");
        })
        .await;
    let policy = RetryPolicy {
        max_total_wait: Duration::from_secs(2),
        ..RetryPolicy::default()
    };
    let c = client_for(&server.base_url(), policy);
    let started = Instant::now();
    let e = c.as_admin().me().await.unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(
        matches!(e, Error::RateLimited { retry_after, .. } if retry_after == Duration::from_secs(30)),
        "{e:?}"
    );
    m.assert_calls_async(1).await;
}

#[tokio::test]
async fn safe_writes_are_retried_on_5xx() {
    let ok = || Reply::json(200, &json!({"status": "OK"}));
    let c_for = |srv: &Scripted| client_for(&srv.url(), fast_retry(3));

    // Revoke.
    let srv = Scripted::start(vec![unavailable(), ok()]).await;
    c_for(&srv)
        .as_admin()
        .revoke_token(&TokenId::new(id("tok")))
        .await
        .unwrap();
    assert_eq!(srv.hits(), 2);

    // Patch.
    let srv = Scripted::start(vec![
        unavailable(),
        Reply::json(200, &user_json(&id("u"), "u", "u@example.com")),
    ])
    .await;
    c_for(&srv)
        .as_admin()
        .patch_user(
            &UserId::new(id("u")),
            &UserPatch {
                nickname: Some("n".into()),
                ..UserPatch::default()
            },
        )
        .await
        .unwrap();
    let reqs = srv.requests();
    assert_eq!(reqs.len(), 2);
    assert!(reqs.iter().all(|r| r.method == "PUT"));

    // Team and channel membership (adding an existing member is no error).
    let srv = Scripted::start(vec![
        unavailable(),
        Reply::json(201, &json!({"team_id": id("t"), "user_id": id("u")})),
    ])
    .await;
    c_for(&srv)
        .as_admin()
        .add_team_member(&TeamId::new(id("t")), &UserId::new(id("u")))
        .await
        .unwrap();
    assert_eq!(srv.hits(), 2);
    let srv = Scripted::start(vec![
        unavailable(),
        Reply::json(201, &json!({"channel_id": id("c"), "user_id": id("u")})),
    ])
    .await;
    c_for(&srv)
        .as_user(AccessToken::new(USER_TOKEN))
        .add_channel_member(&ChannelId::new(id("c")), &UserId::new(id("u")))
        .await
        .unwrap();
    assert_eq!(srv.hits(), 2);
}

#[tokio::test]
async fn connection_refused_is_retried_even_for_post() {
    let policy = RetryPolicy {
        max_attempts: 20,
        base_delay: Duration::from_millis(50),
        max_delay: Duration::from_millis(100),
        jitter: false,
        ..RetryPolicy::default()
    };
    // Nothing listens at first; the server comes up after ~200 ms.
    let addr = closed_addr();
    let c = client_for(&format!("http://{addr}"), policy.clone());
    let late_server = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Scripted::start_at(
            addr,
            vec![Reply::json(
                201,
                &user_json(&id("ada"), "ada", "ada@example.com"),
            )],
        )
        .await
    };
    let admin = c.as_admin();
    let user = new_user();
    let (res, srv) = tokio::join!(admin.create_user(&user), late_server);
    assert_eq!(res.unwrap().username, "ada");
    assert_eq!(srv.hits(), 1);
    drop(srv);

    let addr = closed_addr();
    let c = client_for(&format!("http://{addr}"), policy);
    let late_server = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        Scripted::start_at(addr, vec![created_token()]).await
    };
    let admin = c.as_admin();
    let (owner, tok) = (UserId::new(id("owner")), new_token());
    let (res, srv) = tokio::join!(admin.create_token(&owner, &tok), late_server);
    assert_eq!(res.unwrap().token.expose_secret(), MINTED_TOKEN);
    assert_eq!(srv.hits(), 1);
}

#[tokio::test]
async fn connection_refused_attempts_are_bounded() {
    let addr = closed_addr();
    let policy = RetryPolicy {
        max_attempts: 3,
        base_delay: Duration::from_millis(100),
        max_delay: Duration::from_millis(100),
        jitter: false,
        ..RetryPolicy::default()
    };
    let c = client_for(&format!("http://{addr}"), policy);
    let started = Instant::now();
    let e = c.as_admin().create_user(&new_user()).await.unwrap_err();
    let took = started.elapsed();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    // Two waits of 100 ms between three attempts.
    assert!(took >= Duration::from_millis(190), "{took:?}");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

fn with_timeout(url: &str, retry: RetryPolicy) -> MattermostClient {
    MattermostClient::builder(url, ADMIN_TOKEN)
        .retry_policy(retry)
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[tokio::test]
async fn get_timeout_is_retried() {
    let srv = Scripted::start(vec![Reply::Hang, me_ok()]).await;
    let c = with_timeout(&srv.url(), fast_retry(3));
    assert_eq!(c.as_admin().me().await.unwrap().username, "me");
    assert_eq!(srv.hits(), 2);
}

#[tokio::test]
async fn post_timeout_is_not_retried() {
    let srv = Scripted::start(vec![
        Reply::Hang,
        Reply::json(201, &user_json(&id("ada"), "ada", "ada@example.com")),
    ])
    .await;
    let c = with_timeout(&srv.url(), fast_retry(3));
    let e = c.as_admin().create_user(&new_user()).await.unwrap_err();
    assert!(matches!(e, Error::Timeout { .. }), "{e:?}");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(srv.hits(), 1);
    assert_eq!(srv.connections(), 1);
}

#[tokio::test]
async fn get_broken_connection_is_retried() {
    let srv = Scripted::start(vec![Reply::Close, me_ok()]).await;
    let c = client_for(&srv.url(), fast_retry(3));
    assert_eq!(c.as_admin().me().await.unwrap().username, "me");
    assert_eq!(srv.hits(), 2);
}
